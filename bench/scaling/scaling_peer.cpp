// scaling_peer.cpp — the two things the scaling curves (bench/scaling/run.sh) need that
// `bus bench` does not do. Both talk to a running busd (--bus NAME), like `bus bench`.
//
//   scaling_peer fanout --bus NAME --subs M [--msgs K] [--size B] [--warmup W] [--spin | --spin-us U]
//       Fan-out latency. Forks M subscriber processes on SUBJECT (default "scale.fan"); this
//       process publishes W + K messages, each carrying its CLOCK_MONOTONIC publish time and
//       sequence number in its first 16 bytes. Every subscriber takes CLOCK_MONOTONIC when the
//       message reaches it (try_poll handler, or right after next() returned) and stores
//       receive - publish for each of the K measured messages in shared memory. Closed loop: the
//       next message is published only once all M subscribers have the previous one, so no
//       message queues behind another (what is measured is delivery, not backlog). On one host
//       CLOCK_MONOTONIC is one clock (here backed by the invariant TSC, ~20 ns per read).
//       Prints one JSON line:
//         latency_ns {p50,p90,p99,p999,max}   over all M*K deliveries (publish -> that subscriber)
//         last_ns    {p50,...}                per message, the slowest of the M subscribers
//                                             (publish -> every subscriber has it)
//         msgs_per_s                          closed-loop rate; dropped (should be 0)
//       Publisher pinned to the first half of the allowed CPUs, subscribers round-robin over the
//       second half (as `bus bench`); subscribers use WaitStrategy::spin_then_sleep (default
//       50 us spin, or U us with --spin-us) unless --spin (busy_spin).
//
//   scaling_peer idle --bus NAME --count K [--prefix P]
//       Holds K subscriptions that no benchmark subject matches ("P.<i>.*", P default "idle")
//       on one connection, prints {"event":"ready","count":K,"seconds":S} once all are made, and
//       keeps them until SIGTERM or SIGINT (or until its parent dies). It then closes the
//       connection, so the broker reclaims them in one pass (0.3 s for 100,000, where
//       unsubscribing them one by one takes a broker round trip each, ~5 s).
//
// Exit status 0 on success, 1 on a bus error or timeout (one line on stderr), 2 on bad usage.
#include <sched.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "affinity.hpp"
#include "bus/bus.hpp"
#include "common/fork_peer.hpp"

namespace {

using namespace std::chrono_literals;

std::uint64_t now_ns() noexcept {
  timespec ts{};
  ::clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<std::uint64_t>(ts.tv_sec) * 1'000'000'000u + static_cast<std::uint64_t>(ts.tv_nsec);
}

inline void cpu_relax() noexcept {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#elif defined(__aarch64__)
  asm volatile("yield");
#endif
}

[[noreturn]] void usage(const char* why) {
  std::fprintf(stderr,
               "scaling_peer: %s\n"
               "usage: scaling_peer fanout --bus NAME --subs M [--msgs K] [--size B] [--warmup W]\n"
               "                           [--subject S] [--spin | --spin-us U] [--timeout-ms T]\n"
               "       scaling_peer idle --bus NAME --count K [--prefix P]\n",
               why);
  std::exit(2);
}

struct Args {
  std::string mode;
  std::string bus = "default";
  std::string subject = "scale.fan";
  std::string prefix = "idle";
  std::uint64_t subs = 1;
  std::uint64_t msgs = 10000;
  std::uint64_t size = 16;
  std::uint64_t warmup = 1000;
  std::uint64_t count = 0;
  std::uint64_t timeout_ms = 5000;
  std::int64_t spin_us = -1;  // -1: the default spin budget (50 us)
  bool spin = false;
};

std::uint64_t to_u64(const char* flag, const char* text) {
  char* end = nullptr;
  errno = 0;
  const unsigned long long v = std::strtoull(text, &end, 10);
  if (errno != 0 || end == text || *end != '\0') usage((std::string(flag) + ": not a number: " + text).c_str());
  return v;
}

Args parse(int argc, char** argv) {
  if (argc < 2) usage("no mode");
  Args a;
  a.mode = argv[1];
  if (a.mode != "fanout" && a.mode != "idle") usage(("unknown mode " + a.mode).c_str());
  for (int i = 2; i < argc; ++i) {
    const std::string_view f = argv[i];
    auto value = [&]() -> const char* {
      if (i + 1 >= argc) usage((std::string(f) + " needs a value").c_str());
      return argv[++i];
    };
    if (f == "--bus") a.bus = value();
    else if (f == "--subject") a.subject = value();
    else if (f == "--prefix") a.prefix = value();
    else if (f == "--subs") a.subs = to_u64("--subs", value());
    else if (f == "--msgs") a.msgs = to_u64("--msgs", value());
    else if (f == "--size") a.size = to_u64("--size", value());
    else if (f == "--warmup") a.warmup = to_u64("--warmup", value());
    else if (f == "--count") a.count = to_u64("--count", value());
    else if (f == "--timeout-ms") a.timeout_ms = to_u64("--timeout-ms", value());
    else if (f == "--spin-us") a.spin_us = static_cast<std::int64_t>(to_u64("--spin-us", value()));
    else if (f == "--spin") a.spin = true;
    else usage(("unknown flag " + std::string(f)).c_str());
  }
  return a;
}

std::vector<int> allowed_cpus() {
  std::vector<int> cpus;
  cpu_set_t set;
  CPU_ZERO(&set);
  if (::sched_getaffinity(0, sizeof set, &set) != 0) return cpus;
  for (int cpu = 0; cpu < CPU_SETSIZE; ++cpu) {
    if (CPU_ISSET(cpu, &set)) cpus.push_back(cpu);
  }
  return cpus;
}

int fail(const std::string& what) {
  std::fprintf(stderr, "scaling_peer: %s\n", what.c_str());
  return 1;
}

// ------------------------------------------------------------------------------------- fanout

// Shared between the publisher and its forked subscribers (MAP_SHARED | MAP_ANONYMOUS).
struct alignas(128) SubSlot {
  std::atomic<std::uint64_t> received{0};  // sequence number + 1 of the last message it saw
  std::atomic<std::uint64_t> dropped{0};
  std::atomic<int> state{0};  // 0 starting, 1 subscribed, -1 failed
};

struct Shared {
  alignas(128) std::atomic<int> stop{0};
  // followed by SubSlot[subs], then std::uint32_t latency[subs][msgs]
};

struct SharedLayout {
  void* base = nullptr;
  std::size_t bytes = 0;
  Shared* shared = nullptr;
  SubSlot* slots = nullptr;
  std::uint32_t* latency = nullptr;

  SharedLayout(std::uint64_t subs, std::uint64_t msgs) {
    const std::size_t slots_off = sizeof(Shared);
    const std::size_t lat_off = slots_off + sizeof(SubSlot) * subs;
    bytes = lat_off + sizeof(std::uint32_t) * subs * msgs;
    base = ::mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
    if (base == MAP_FAILED) {
      base = nullptr;
      return;
    }
    auto* p = static_cast<std::byte*>(base);
    shared = new (p) Shared();
    slots = reinterpret_cast<SubSlot*>(p + slots_off);
    for (std::uint64_t i = 0; i < subs; ++i) new (&slots[i]) SubSlot();
    latency = reinterpret_cast<std::uint32_t*>(p + lat_off);
  }
  ~SharedLayout() {
    if (base != nullptr) ::munmap(base, bytes);
  }
  SharedLayout(const SharedLayout&) = delete;
  SharedLayout& operator=(const SharedLayout&) = delete;
};

int run_subscriber(const Args& a, std::uint64_t index, SharedLayout& L) {
  SubSlot& slot = L.slots[index];
  auto conn = bus::Connection::connect(a.bus);
  if (!conn) {
    slot.state.store(-1, std::memory_order_release);
    return fail("subscriber: " + conn.error().message);
  }
  bus::SubscribeOptions options;
  options.wait = a.spin ? bus::WaitStrategy::busy_spin : bus::WaitStrategy::spin_then_sleep;
  if (a.spin_us >= 0) options.spin_budget = std::chrono::microseconds(a.spin_us);
  auto sub = conn->subscribe(a.subject, options);
  if (!sub) {
    slot.state.store(-1, std::memory_order_release);
    return fail("subscriber: " + sub.error().message);
  }
  slot.state.store(1, std::memory_order_release);  // pairs with the publisher's acquire

  const std::uint64_t total = a.warmup + a.msgs;
  std::uint32_t* lat = L.latency + index * a.msgs;
  bool finished = false;
  auto record = [&](std::string_view data, std::uint64_t t) {
    std::uint64_t stamp = 0;
    std::uint64_t seq = 0;
    if (data.size() < 16) return;
    std::memcpy(&stamp, data.data(), 8);
    std::memcpy(&seq, data.data() + 8, 8);
    if (seq >= a.warmup && seq < total) {
      const std::uint64_t d = t > stamp ? t - stamp : 0;
      lat[seq - a.warmup] = static_cast<std::uint32_t>(std::min<std::uint64_t>(d, UINT32_MAX));
    }
    // Release: the latency entry is visible to the publisher once it sees the count.
    slot.received.store(seq + 1, std::memory_order_release);
    if (seq + 1 >= total) finished = true;
  };
  const bus::MessageHandler on_view = [&](const bus::MessageView& v) { record(v.data, now_ns()); };
  while (!finished) {
    auto n = sub->try_poll(on_view, 64);
    if (!n) return fail("subscriber: " + n.error().message);
    if (*n == 0) {
      auto msg = sub->next(20ms);
      if (msg) {
        record(msg->data, now_ns());
      } else if (msg.error().code != bus::Errc::timeout) {
        return fail("subscriber: " + msg.error().message);
      }
    }
    if (L.shared->stop.load(std::memory_order_relaxed) != 0) break;
  }
  slot.dropped.store(sub->dropped_count(), std::memory_order_relaxed);
  (void)conn->close();
  return 0;
}

struct Pct {
  std::uint64_t p50 = 0, p90 = 0, p99 = 0, p999 = 0, max = 0;
};

// Nearest-rank percentiles of `v` (sorted in place).
Pct percentiles(std::vector<std::uint32_t>& v) {
  Pct p;
  if (v.empty()) return p;
  std::sort(v.begin(), v.end());
  auto at = [&](double q) {
    std::size_t rank = static_cast<std::size_t>(q / 100.0 * static_cast<double>(v.size()) + 0.999999);
    rank = std::clamp<std::size_t>(rank, 1, v.size());
    return static_cast<std::uint64_t>(v[rank - 1]);
  };
  p.p50 = at(50);
  p.p90 = at(90);
  p.p99 = at(99);
  p.p999 = at(99.9);
  p.max = v.back();
  return p;
}

std::string pct_json(const Pct& p) {
  char text[200];
  std::snprintf(text, sizeof text, "{\"p50\":%llu,\"p90\":%llu,\"p99\":%llu,\"p999\":%llu,\"max\":%llu}",
                static_cast<unsigned long long>(p.p50), static_cast<unsigned long long>(p.p90),
                static_cast<unsigned long long>(p.p99), static_cast<unsigned long long>(p.p999),
                static_cast<unsigned long long>(p.max));
  return text;
}

int run_fanout(const Args& a) {
  if (a.subs == 0 || a.subs > 1024) usage("--subs must be 1..1024");
  if (a.msgs == 0) usage("--msgs must be at least 1");
  if (a.size < 16) usage("--size must be at least 16 (the stamp and the sequence number)");
  const auto cpus = allowed_cpus();
  int pub_cpu = -1;
  std::vector<int> sub_cpus;
  if (cpus.size() >= 2) {
    const std::size_t half = cpus.size() / 2;
    pub_cpu = cpus[0];
    sub_cpus.assign(cpus.begin() + static_cast<std::ptrdiff_t>(half), cpus.end());
  }
  SharedLayout L(a.subs, a.msgs);
  if (L.base == nullptr) return fail("mmap of the shared results failed");

  // Subscribers first, before this process has a connection (fork a clean process).
  std::vector<std::unique_ptr<bus::bench::ForkPeer>> peers;
  for (std::uint64_t i = 0; i < a.subs; ++i) {
    const int cpu = sub_cpus.empty() ? -1 : sub_cpus[i % sub_cpus.size()];
    peers.push_back(std::make_unique<bus::bench::ForkPeer>(cpu, [&a, i, &L] { return run_subscriber(a, i, L); }));
  }
  auto stop_all = [&] {
    L.shared->stop.store(1, std::memory_order_relaxed);
    for (auto& p : peers) {
      if (!p->wait_for(2000ms)) p->kill_and_reap();
    }
  };
  const auto ready_deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(a.timeout_ms) + 10s;
  for (std::uint64_t i = 0; i < a.subs; ++i) {
    for (;;) {
      const int s = L.slots[i].state.load(std::memory_order_acquire);
      if (s == 1) break;
      if (s < 0 || !peers[i]->running() || std::chrono::steady_clock::now() > ready_deadline) {
        stop_all();
        return fail("subscriber " + std::to_string(i + 1) + " did not subscribe");
      }
      std::this_thread::sleep_for(200us);
    }
  }
  if (pub_cpu >= 0) (void)bus::bench::pin_to_cpu(pub_cpu);
  auto conn = bus::Connection::connect(a.bus);
  if (!conn) {
    stop_all();
    return fail(conn.error().message);
  }
  std::string payload(a.size, '\0');
  for (std::size_t i = 16; i < payload.size(); ++i) payload[i] = static_cast<char>('a' + i % 26);

  const std::uint64_t total = a.warmup + a.msgs;
  const std::uint64_t timeout_ns = a.timeout_ms * 1'000'000u;
  std::uint64_t start = 0;
  for (std::uint64_t seq = 0; seq < total; ++seq) {
    if (seq == a.warmup) start = now_ns();
    const std::uint64_t stamp = now_ns();
    std::memcpy(payload.data(), &stamp, 8);
    std::memcpy(payload.data() + 8, &seq, 8);
    if (auto sent = conn->publish(a.subject, payload); !sent) {
      stop_all();
      return fail("publish: " + sent.error().message);
    }
    // Closed loop: wait until every subscriber has this message (or had to drop it).
    for (std::uint64_t i = 0; i < a.subs; ++i) {
      for (std::uint32_t spins = 1;; ++spins) {
        // Acquire: pairs with the subscriber's release of `received`.
        if (L.slots[i].received.load(std::memory_order_acquire) > seq) break;
        cpu_relax();
        if ((spins & 4095u) == 0) {
          if (now_ns() - stamp > timeout_ns) {
            stop_all();
            return fail("subscriber " + std::to_string(i + 1) + " did not receive message " +
                        std::to_string(seq) + " within " + std::to_string(a.timeout_ms) + " ms");
          }
        }
      }
    }
  }
  const std::uint64_t end = now_ns();
  for (auto& p : peers) {
    if (!p->wait_for(std::chrono::milliseconds(a.timeout_ms))) {
      stop_all();
      return fail("a subscriber did not finish");
    }
  }
  std::uint64_t dropped = 0;
  for (std::uint64_t i = 0; i < a.subs; ++i) dropped += L.slots[i].dropped.load(std::memory_order_relaxed);

  std::vector<std::uint32_t> all(L.latency, L.latency + a.subs * a.msgs);
  std::vector<std::uint32_t> last(a.msgs, 0);
  for (std::uint64_t i = 0; i < a.subs; ++i) {
    for (std::uint64_t m = 0; m < a.msgs; ++m) last[m] = std::max(last[m], L.latency[i * a.msgs + m]);
  }
  const Pct p_all = percentiles(all);
  const Pct p_last = percentiles(last);
  const double secs = static_cast<double>(end - start) * 1e-9;
  std::printf(
      "{\"mode\":\"fanout\",\"subs\":%llu,\"msgs\":%llu,\"size\":%llu,\"warmup\":%llu,\"wait\":\"%s\","
      "\"spin_budget_us\":%lld,\"pub_cpu\":%d,\"sub_cpus\":%zu,\"msgs_per_s\":%.1f,\"dropped\":%llu,\"latency_ns\":%s,\"last_ns\":%s}\n",
      static_cast<unsigned long long>(a.subs), static_cast<unsigned long long>(a.msgs),
      static_cast<unsigned long long>(a.size), static_cast<unsigned long long>(a.warmup),
      a.spin ? "busy_spin" : "spin_then_sleep",
      static_cast<long long>(a.spin ? -1 : a.spin_us < 0 ? 50 : a.spin_us), pub_cpu, sub_cpus.size(),
      secs > 0 ? static_cast<double>(a.msgs) / secs : 0.0, static_cast<unsigned long long>(dropped),
      pct_json(p_all).c_str(), pct_json(p_last).c_str());
  std::fflush(stdout);
  return 0;
}

// --------------------------------------------------------------------------------------- idle

std::atomic<bool> g_stop{false};
std::atomic<int> g_signal{0};
std::atomic<pid_t> g_sender{0};
extern "C" void on_signal(int signo, siginfo_t* info, void*) {
  g_signal.store(signo);
  g_sender.store(info != nullptr ? info->si_pid : 0);
  g_stop.store(true);
}

// "signal 15 from pid 123 (cmdline)": who stopped us.
std::string stopped_by() {
  const pid_t pid = g_sender.load();
  std::string who = "signal " + std::to_string(g_signal.load()) + " from pid " + std::to_string(pid);
  std::FILE* f = std::fopen(("/proc/" + std::to_string(pid) + "/cmdline").c_str(), "r");
  if (f != nullptr) {
    char buf[256] = {};
    const std::size_t n = std::fread(buf, 1, sizeof buf - 1, f);
    std::fclose(f);
    for (std::size_t i = 0; i + 1 < n; ++i) {
      if (buf[i] == '\0') buf[i] = ' ';
    }
    who += std::string(" (") + buf + ")";
  }
  return who;
}

int run_idle(const Args& a) {
  if (a.count == 0) usage("--count must be at least 1");
  struct sigaction action {};
  action.sa_sigaction = on_signal;
  action.sa_flags = SA_SIGINFO;
  ::sigemptyset(&action.sa_mask);
  ::sigaction(SIGTERM, &action, nullptr);
  ::sigaction(SIGINT, &action, nullptr);
  ::signal(SIGPIPE, SIG_IGN);
  ::prctl(PR_SET_PDEATHSIG, SIGTERM);  // the script that started us is gone: leave too

  auto conn = bus::Connection::connect(a.bus);
  if (!conn) return fail(conn.error().message);
  std::vector<bus::Subscription> subs;
  subs.reserve(a.count);
  const std::uint64_t t0 = now_ns();
  for (std::uint64_t i = 0; i < a.count && !g_stop.load(); ++i) {
    auto s = conn->subscribe(a.prefix + "." + std::to_string(i) + ".*");
    if (!s) return fail("idle subscription " + std::to_string(i + 1) + " of " + std::to_string(a.count) + ": " +
                        s.error().message);
    subs.push_back(std::move(s).value());
  }
  if (subs.size() != a.count) {
    return fail("stopped by " + stopped_by() + " after " + std::to_string(subs.size()) + " of " +
                std::to_string(a.count) + " subscriptions");
  }
  const double secs = static_cast<double>(now_ns() - t0) * 1e-9;
  std::printf("{\"event\":\"ready\",\"count\":%llu,\"seconds\":%.3f}\n", static_cast<unsigned long long>(a.count), secs);
  std::fflush(stdout);
  // Hold them until a signal comes.
  while (!g_stop.load()) std::this_thread::sleep_for(50ms);
  // One close: the broker reclaims every subscription of the connection at once; the
  // Subscription objects are then detached and their destructors talk to nobody.
  (void)conn->close();
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  const Args a = parse(argc, argv);
  return a.mode == "fanout" ? run_fanout(a) : run_idle(a);
}

// bench/compare/peer_common.hpp — the driver protocol and the measurement loops every peer shares
// (peer_limit, peer_bus, peer_nats, peer_zmq), so that the four transports are measured by the very
// same code and differ only in how a message is sent and received.
//
// Driver protocol (what compare_driver / run.sh speaks):
//   peer_<transport> WORKLOAD SIZE COUNT [--seconds S] [--subs N] [--cpus A,B] [--url URL] [--dir D]
//     WORKLOAD  latency     ping-pong; reports one-way latency = RTT/2 (p50_ns, p99_ns, pcts ...)
//               throughput  1 publisher -> --subs subscribers (1 = "1->1", 4 = "1->4 fan-out");
//                           reports msgs_per_s = deliveries per second summed over subscribers
//               reqrep      request/reply; reports the round trip (not halved)
//               js_publish  acknowledged stream publishes (--pubs publishers, --sync policy):
//                           msgs_per_s, and ack_p50_ns / ack_p99_ns where each ack is awaited
//               js_replay   replay of a stored stream from the start
//               js_consume  a durable pull consumer with explicit acks drains a stored stream,
//                           acknowledging every message (peer_bus, peer_nats)
//     SIZE      payload bytes (>= 8: the first 8 carry a sequence number)
//     COUNT     upper bound of round trips / messages; --seconds bounds the measured phase in time
//     --cpus    the publisher/requester is pinned to A, every subscriber/responder process to B
//   stdout: exactly ONE JSON line: {"ok":true,"transport":...,"workload":...,<metrics>} or
//   {"ok":false,"error":"..."}; exit status 0 on success. Diagnostics go to stderr.
//
// Process model: the peer is the publisher / requester (pinned to A); it forks the subscriber /
// responder processes (ForkPeer, pinned to B) BEFORE it opens its own connection, so a library
// that starts threads (nats.c, libzmq) is never forked with them (the placement probe's child,
// forked again at the end, touches nothing but its own shared block). They talk to the parent
// through a small shared Control block (ready flags, received counts, timestamps).
//
// Throughput accounting: every payload carries a sequence number (0 = warm-up, not counted);
// subscribers copy it out, check order and length, count it, and publish (received, last_ns) into
// their SubSlot every 1024 messages, when they run dry, and (slow transports) on every message.
// The rate is total delivered / (max(last delivery, end of publishing) - first publish) on
// CLOCK_MONOTONIC, which every process reads the same way. Transports that drop (bus on a full
// ring) report drop_ratio; their publish_per_s is then mostly the cost of a dropped publish.
#pragma once

#include <sched.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cinttypes>
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
#include "common/fork_peer.hpp"
#include "common/shm_region.hpp"
#include "cycle_clock.hpp"
#include "histogram.hpp"

namespace bus::compare {

using bus::bench::CycleClock;
using bus::bench::cycle_now;
using bus::bench::cycle_now_ordered;
using bus::bench::ForkPeer;
using bus::bench::LatencyHistogram;
using bus::bench::ScopedAffinity;
using bus::bench::SharedObject;

inline std::uint64_t mono_ns() noexcept {
  timespec ts;
  ::clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<std::uint64_t>(ts.tv_sec) * 1'000'000'000u + static_cast<std::uint64_t>(ts.tv_nsec);
}

/// Nanoseconds `pid` (its main thread) has spent on a CPU: first field of /proc/<pid>/schedstat.
/// 0 if unknown. Sampled around a measurement it tells whether a spinning side had its CPU to
/// itself (share ~1.0) or shared it with other processes on the machine.
inline std::uint64_t on_cpu_ns(pid_t pid) noexcept {
  char path[64];
  std::snprintf(path, sizeof path, "/proc/%d/schedstat", static_cast<int>(pid));
  FILE* f = std::fopen(path, "r");
  if (f == nullptr) return 0;
  unsigned long long ns = 0;
  if (std::fscanf(f, "%llu", &ns) != 1) ns = 0;
  std::fclose(f);
  return ns;
}

inline void cpu_relax() noexcept {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#endif
}

// ------------------------------------------------------------------------------------ arguments
struct Args {
  std::string transport;
  std::string workload;
  std::size_t size = 16;
  std::uint64_t count = 100000;
  double seconds = 1.0;
  int subs = 1;
  int pubs = 1;                 // js_publish: publishers at once (threads, each its own connection)
  std::string sync = "never";   // js_*: the stream's sync policy (bus: never | always)
  int cpu_pub = 0;
  int cpu_sub = 1;
  std::string url = "nats://127.0.0.1:4222";
  std::string dir = "/tmp";
};

[[noreturn]] inline void usage(const char* prog, const char* why) {
  std::fprintf(stderr,
               "%s: %s\nusage: %s latency|throughput|reqrep|js_publish|js_replay|js_consume SIZE COUNT "
               "[--seconds S] [--subs N] [--pubs N] [--sync never|always] [--cpus A,B] [--url URL] [--dir DIR]\n",
               prog, why, prog);
  std::printf("{\"ok\":false,\"error\":\"bad arguments: %s\"}\n", why);
  std::exit(2);
}

inline Args parse_args(int argc, char** argv, const char* transport) {
  Args a;
  a.transport = transport;
  if (argc < 4) usage(argv[0], "need WORKLOAD SIZE COUNT");
  a.workload = argv[1];
  a.size = std::strtoull(argv[2], nullptr, 10);
  a.count = std::strtoull(argv[3], nullptr, 10);
  for (int i = 4; i < argc; ++i) {
    const std::string_view k = argv[i];
    if (i + 1 >= argc) usage(argv[0], "option without a value");
    const char* v = argv[++i];
    if (k == "--seconds") {
      a.seconds = std::strtod(v, nullptr);
    } else if (k == "--subs") {
      a.subs = std::atoi(v);
    } else if (k == "--pubs") {
      a.pubs = std::atoi(v);
    } else if (k == "--sync") {
      a.sync = v;
    } else if (k == "--cpus") {
      if (std::sscanf(v, "%d,%d", &a.cpu_pub, &a.cpu_sub) != 2) usage(argv[0], "--cpus A,B");
    } else if (k == "--url") {
      a.url = v;
    } else if (k == "--dir") {
      a.dir = v;
    } else {
      usage(argv[0], "unknown option");
    }
  }
  if (a.size < 8 || a.size > (1u << 20)) usage(argv[0], "SIZE must be 8 .. 1 MiB");
  if (a.count == 0) usage(argv[0], "COUNT must be > 0");
  if (a.pubs < 1 || a.pubs > 16) usage(argv[0], "--pubs must be 1 .. 16");
  if (a.sync != "never" && a.sync != "always") usage(argv[0], "--sync never|always");
  if (a.seconds <= 0) a.seconds = 1.0;
  return a;
}

// ------------------------------------------------------------------------------------ JSON line
class JsonLine {
 public:
  JsonLine& num(const char* key, double v) {
    char buf[64];
    std::snprintf(buf, sizeof buf, "%.6g", v);
    return raw(key, buf);
  }
  JsonLine& integer(const char* key, std::uint64_t v) { return raw(key, std::to_string(v)); }
  JsonLine& str(const char* key, std::string_view v) {
    std::string q = "\"";
    for (const char c : v) {
      if (c == '"' || c == '\\') {
        q += '\\';
        q += c;
      } else if (static_cast<unsigned char>(c) < 0x20) {
        q += ' ';
      } else {
        q += c;
      }
    }
    q += '"';
    return raw(key, q);
  }
  JsonLine& boolean(const char* key, bool v) { return raw(key, v ? "true" : "false"); }
  JsonLine& raw(const char* key, std::string_view json) {
    body_ += body_.empty() ? "{" : ",";
    body_ += '"';
    body_ += key;
    body_ += "\":";
    body_ += json;
    return *this;
  }
  /// Appends every field of `other`.
  JsonLine& merge(const JsonLine& other) {
    if (!other.body_.empty()) {
      body_ += body_.empty() ? "{" : ",";
      body_ += other.body_.substr(1);
    }
    return *this;
  }
  std::string line() const { return (body_.empty() ? std::string("{") : body_) + "}"; }

 private:
  std::string body_;
};

// ------------------------------------------------------------------------------------ shared state
constexpr int kMaxSubs = 8;

struct alignas(128) SubSlot {
  std::atomic<std::int32_t> state{0};  // 0 starting, 1 ready, -1 failed (error[] written first)
  std::atomic<std::uint32_t> warm{0};  // has seen a warm-up (sequence 0) message
  std::atomic<std::uint64_t> received{0};
  std::atomic<std::uint64_t> last_ns{0};  // CLOCK_MONOTONIC of the last counted delivery
  std::atomic<std::uint64_t> bad{0};      // wrong length or out-of-order sequence
  char error[200];
};

struct Control {
  alignas(128) std::atomic<std::uint32_t> stop{0};
  SubSlot subs[kMaxSubs];
};

// Child side ---------------------------------------------------------------------------------

/// Marks subscriber `slot` subscribed and listening (release: everything it set up is done).
inline void child_ready(SubSlot& slot) { slot.state.store(1, std::memory_order_release); }

/// Records a failure for the parent and returns the child's exit code.
inline int child_fail(SubSlot& slot, std::string_view msg) {
  const std::size_t n = std::min(msg.size(), sizeof slot.error - 1);
  std::memcpy(slot.error, msg.data(), n);
  slot.error[n] = '\0';
  slot.state.store(-1, std::memory_order_release);
  std::fprintf(stderr, "peer child: %.*s\n", static_cast<int>(msg.size()), msg.data());
  return 1;
}

inline bool stop_requested(const Control& c) { return c.stop.load(std::memory_order_acquire) != 0; }

/// Counts deliveries on the subscriber side; see the file comment.
class RecvCounter {
 public:
  /// stamp_every_message: for transports that block in the kernel between messages (no cheap
  /// "ran dry" moment); otherwise the caller calls idle() whenever a poll comes back empty.
  RecvCounter(SubSlot& slot, std::size_t expected_len, bool stamp_every_message = false)
      : slot_(slot), expected_len_(expected_len), mask_(stamp_every_message ? 0 : 1023) {}

  void on_message(const void* data, std::size_t len) noexcept {
    std::uint64_t seq = 0;
    std::memcpy(&seq, data, std::min<std::size_t>(len, sizeof seq));
    if (seq == 0) {  // warm-up
      if (!warm_) {
        warm_ = true;
        slot_.warm.store(1, std::memory_order_release);
      }
      return;
    }
    if (len != expected_len_ || seq <= last_seq_) ++bad_;
    last_seq_ = seq;
    ++received_;
    if ((received_ & mask_) == 0) stamp();
  }
  /// Call when a poll found nothing: publishes the count if it moved since the last stamp.
  void idle() noexcept {
    if (received_ != stamped_) stamp();
  }
  std::uint64_t received() const noexcept { return received_; }

 private:
  void stamp() noexcept {
    slot_.bad.store(bad_, std::memory_order_relaxed);
    slot_.last_ns.store(mono_ns(), std::memory_order_relaxed);
    slot_.received.store(received_, std::memory_order_release);  // parent acquires received first
    stamped_ = received_;
  }

  SubSlot& slot_;
  std::size_t expected_len_;
  std::uint64_t mask_;
  std::uint64_t received_ = 0;
  std::uint64_t stamped_ = 0;
  std::uint64_t last_seq_ = 0;
  std::uint64_t bad_ = 0;
  bool warm_ = false;
};

// Placement probe -----------------------------------------------------------------------------
//
// On the 2-vCPU VM the cross-core cache-line transfer flips between ~75 and ~270 ns one-way with
// vCPU placement, sometimes between two runs made seconds apart. Every peer therefore measures a
// bare cache-line ping-pong between its two CPUs right before (probe_before_ns) and right after
// (probe_after_ns) its workload; the driver only divides numbers whose probes agree.

struct ProbeShared {
  alignas(128) std::atomic<std::uint64_t> ping{0};
  alignas(128) std::atomic<std::uint64_t> pong{0};
  alignas(128) std::atomic<std::uint32_t> stop{0};
};

/// One-way p50 (ns) of `rounds` bare ping-pongs between the calling thread and a child pinned to
/// `cpu_sub`; 0 if the child did not answer. ~1-5 ms. Call only while no other process of this
/// run spins on `cpu_sub`.
inline std::uint64_t probe_one_way_p50(int cpu_sub, int rounds = 3000) {
  SharedObject<ProbeShared> shared;
  ProbeShared& p = *shared;
  ForkPeer child(cpu_sub, [&p] {
    std::uint64_t seen = 0;
    const std::uint64_t give_up = mono_ns() + 5'000'000'000ull;
    for (std::uint32_t spins = 0;; ++spins) {
      const std::uint64_t v = p.ping.load(std::memory_order_acquire);
      if (v != seen) {
        seen = v;
        p.pong.store(v, std::memory_order_release);
        continue;
      }
      if ((spins & 0xFFFFu) == 0 && (p.stop.load(std::memory_order_acquire) != 0 || mono_ns() > give_up)) return 0;
    }
  });
  std::vector<std::uint64_t> ticks;
  ticks.reserve(static_cast<std::size_t>(rounds));
  const std::uint64_t limit = CycleClock::from_ns(1e9);
  bool ok = true;
  for (int i = 1; i <= rounds + 200 && ok; ++i) {
    const auto seq = static_cast<std::uint64_t>(i);
    const std::uint64_t t0 = cycle_now();
    p.ping.store(seq, std::memory_order_release);
    for (std::uint32_t spins = 0; p.pong.load(std::memory_order_acquire) != seq; ++spins) {
      if ((spins & 1023u) == 0 && cycle_now() - t0 > limit) {
        ok = false;
        break;
      }
    }
    if (i > 200) ticks.push_back(cycle_now_ordered() - t0);
  }
  p.stop.store(1, std::memory_order_release);
  if (!child.wait_for(std::chrono::seconds(1))) child.kill_and_reap();
  if (!ok || ticks.empty()) return 0;
  std::nth_element(ticks.begin(), ticks.begin() + static_cast<std::ptrdiff_t>(ticks.size() / 2), ticks.end());
  return static_cast<std::uint64_t>(CycleClock::to_ns(ticks[ticks.size() / 2]) / 2 + 0.5);
}

// Parent side --------------------------------------------------------------------------------

class Harness {
 public:
  /// Pins the calling thread to cpu_pub and runs the "before" placement probe (so construct it
  /// before starting anything that spins on cpu_sub, and before threads are started).
  explicit Harness(const Args& a) : a_(a), pin_(a.cpu_pub) { probe_before_ = probe_one_way_p50(a.cpu_sub); }
  ~Harness() { stop_children(); }
  Harness(const Harness&) = delete;
  Harness& operator=(const Harness&) = delete;

  const Args& args() const { return a_; }
  Control& control() { return *ctl_; }

  /// Forks `n` children pinned to cpu_sub; child i runs body(i, control) and exits with its result.
  template <class F>
  void spawn(int n, F&& body) {
    n = std::clamp(n, 1, kMaxSubs);
    for (int i = 0; i < n; ++i) {
      Control* ctl = ctl_.get();
      children_.push_back(std::make_unique<ForkPeer>(a_.cpu_sub, [&body, i, ctl] { return body(i, *ctl); }));
    }
  }
  int children() const { return static_cast<int>(children_.size()); }

  /// Waits until every child is ready. On failure fills `err`.
  bool wait_ready(std::string& err, std::chrono::milliseconds timeout = std::chrono::seconds(10)) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    for (;;) {
      bool all = true;
      for (int i = 0; i < children(); ++i) {
        const int s = ctl_->subs[i].state.load(std::memory_order_acquire);
        if (s < 0) {
          err = std::string("subscriber ") + std::to_string(i) + ": " + ctl_->subs[i].error;
          return false;
        }
        if (s == 0) {
          all = false;
          if (!children_[static_cast<std::size_t>(i)]->running()) {
            err = "subscriber " + std::to_string(i) + " exited before it was ready";
            return false;
          }
        }
      }
      if (all) return true;
      if (std::chrono::steady_clock::now() > deadline) {
        err = "subscribers not ready in time";
        return false;
      }
      std::this_thread::sleep_for(std::chrono::microseconds(200));
    }
  }

  /// On-CPU shares over a window: start() samples the parent (this thread is the process's main
  /// thread) and every child; pub_end() closes the parent's window, subs_end() the children's.
  /// A spinning side (limit, bus) should show ~1.0; less means other processes took its CPU.
  /// Blocking transports (nats, zmq) are below 1 by design.
  class CpuShare {
   public:
    explicit CpuShare(Harness& h) : h_(h) {}
    void start() {
      wall0_ = mono_ns();
      self0_ = on_cpu_ns(::getpid());
      kids0_.clear();
      for (auto& c : h_.children_) kids0_.push_back(on_cpu_ns(c->pid()));
    }
    void pub_end() { pub_ = share(on_cpu_ns(::getpid()), self0_); }
    /// The children's shares are summed: 4 subscribers sharing CPU B have ~0.25 each.
    void subs_end() {
      sub_ = 0;
      for (std::size_t i = 0; i < h_.children_.size() && i < kids0_.size(); ++i) {
        const double s = share(on_cpu_ns(h_.children_[i]->pid()), kids0_[i]);
        if (s < 0) {
          sub_ = -1;
          return;
        }
        sub_ += s;
      }
    }
    void add_to(JsonLine& m) const {
      m.num("cpu_share_pub", pub_);
      if (!kids0_.empty()) m.num("cpu_share_sub", sub_);
    }

   private:
    double share(std::uint64_t now_cpu, std::uint64_t then_cpu) const {
      const std::uint64_t wall = mono_ns() - wall0_;
      if (now_cpu == 0 || then_cpu == 0 || wall == 0) return -1;
      return static_cast<double>(now_cpu - then_cpu) / static_cast<double>(wall);
    }
    Harness& h_;
    std::uint64_t wall0_ = 0;
    std::uint64_t self0_ = 0;
    std::vector<std::uint64_t> kids0_;
    double pub_ = -1;
    double sub_ = -1;
  };

  /// Sets stop and reaps every child (SIGKILL those still there after 3 s in all). Returns false
  /// if one failed or had to be killed.
  bool stop_children() {
    if (ctl_.get() == nullptr) return true;
    ctl_->stop.store(1, std::memory_order_release);
    bool ok = true;
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(3);
    for (auto& c : children_) {
      const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
      auto st = c->wait_for(std::max(left, std::chrono::milliseconds(0)));
      if (!st) {
        c->kill_and_reap();
        ok = false;
      } else if (*st != 0) {
        ok = false;
      }
    }
    children_.clear();
    return ok;
  }

  /// Prints the failure line; returns the process exit code.
  int fail(std::string_view msg) {
    stop_children();
    JsonLine j;
    j.boolean("ok", false).str("transport", a_.transport).str("workload", a_.workload).integer("size", a_.size);
    j.str("error", msg);
    std::printf("%s\n", j.line().c_str());
    std::fflush(stdout);
    return 1;
  }

  /// Prints a success line: the common fields, then every field of `metrics`. Stops the children
  /// first and runs the "after" placement probe.
  int emit(const JsonLine& metrics) {
    stop_children();
    const std::uint64_t probe_after = probe_one_way_p50(a_.cpu_sub);
    JsonLine j;
    j.boolean("ok", true).str("transport", a_.transport).str("workload", a_.workload).integer("size", a_.size);
    j.num("subs", a_.subs).num("cpu_pub", a_.cpu_pub).num("cpu_sub", a_.cpu_sub);
    j.integer("probe_before_ns", probe_before_).integer("probe_after_ns", probe_after);
    j.merge(metrics);
    const std::string line = j.line();
    std::printf("%s\n", line.c_str());
    std::fflush(stdout);
    return 0;
  }

  /// Round-trip loop. `rtt()` sends one message and waits for the answer (false = timeout or error).
  /// Samples are RTT/2 when `halve` (one-way latency), the RTT otherwise (request/reply).
  template <class RoundTrip>
  int run_latency(RoundTrip&& rtt, bool halve, const JsonLine& extra = JsonLine()) {
    (void)CycleClock::ns_per_tick();  // calibrate outside the loop
    const std::uint64_t warm_end = mono_ns() + static_cast<std::uint64_t>(std::max(0.02, a_.seconds * 0.1) * 1e9);
    for (std::uint64_t i = 0; i < 200 || (i < 5000 && mono_ns() < warm_end); ++i) {
      if (!rtt()) return fail("round trip failed during warm-up");
    }
    auto hist = std::make_unique<LatencyHistogram>();
    CpuShare cpu(*this);
    cpu.start();
    const std::uint64_t end = mono_ns() + static_cast<std::uint64_t>(a_.seconds * 1e9);
    std::uint64_t n = 0;
    double total = 0;
    while (n < a_.count) {
      const std::uint64_t t0 = cycle_now();
      if (!rtt()) return fail("round trip failed (timeout or error)");
      const std::uint64_t t1 = cycle_now_ordered();
      double ns = CycleClock::to_ns(t1 - t0);
      if (halve) ns /= 2;
      hist->record(static_cast<std::uint64_t>(ns + 0.5));
      total += ns;
      if ((++n & 31u) == 0 && mono_ns() > end) break;
    }
    cpu.pub_end();
    cpu.subs_end();
    const bool children_ok = stop_children();
    static constexpr double kPcts[] = {0, 10, 25, 50, 75, 90, 95, 99, 99.5, 99.9, 99.95, 99.99, 100};
    std::string pcts = "[";
    for (const double p : kPcts) {
      if (pcts.size() > 1) pcts += ",";
      char buf[64];
      std::snprintf(buf, sizeof buf, "[%g,%" PRIu64 "]", p, hist->percentile(p));
      pcts += buf;
    }
    pcts += "]";
    JsonLine m;
    m.integer("samples", n).num("mean_ns", total / static_cast<double>(n));
    m.integer("p50_ns", hist->percentile(50)).integer("p90_ns", hist->percentile(90));
    m.integer("p99_ns", hist->percentile(99)).integer("p999_ns", hist->percentile(99.9));
    m.integer("max_ns", hist->max()).boolean("halved", halve).raw("pcts", pcts);
    m.boolean("children_ok", children_ok).num("ns_per_tick", CycleClock::ns_per_tick());
    cpu.add_to(m);
    m.merge(extra);
    return emit(m);
  }

  /// Publish loop, 1 -> children() subscribers. pub(data, len) sends one message (false = error);
  /// flush() pushes out anything the client buffered. Rates: see the file comment.
  template <class Publish, class Flush>
  int run_throughput(Publish&& pub, Flush&& flush) {
    const int nsubs = children();
    std::vector<char> buf(a_.size, 'x');
    auto put_seq = [&](std::uint64_t s) { std::memcpy(buf.data(), &s, sizeof s); };
    // Warm-up: sequence-0 messages until every subscriber has seen one (connections made, routes
    // resolved, subscriptions propagated), at least 1000 of them.
    put_seq(0);
    const auto warm_deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
    for (std::uint64_t sent = 0;;) {
      for (int k = 0; k < 100; ++k) {
        if (!pub(buf.data(), buf.size())) return fail("publish failed during warm-up");
      }
      sent += 100;
      flush();
      bool all = true;
      for (int i = 0; i < nsubs; ++i) all = all && ctl_->subs[i].warm.load(std::memory_order_acquire) != 0;
      if (all && sent >= 1000) break;
      if (std::chrono::steady_clock::now() > warm_deadline) return fail("subscribers saw no warm-up message");
      if (sent >= 1000) std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));  // let the warm-up drain

    CpuShare cpu(*this);
    cpu.start();
    const std::uint64_t t0 = mono_ns();
    const std::uint64_t end = t0 + static_cast<std::uint64_t>(a_.seconds * 1e9);
    std::uint64_t sent = 0;
    while (sent < a_.count) {
      put_seq(++sent);
      if (!pub(buf.data(), buf.size())) return fail("publish failed");
      if ((sent & 1023u) == 0 && mono_ns() > end) break;
    }
    flush();
    const std::uint64_t t_pub = mono_ns();
    cpu.pub_end();
    cpu.subs_end();

    // Wait for the deliveries: until all arrived, or nothing moved for 300 ms (drops), or 60 s.
    const std::uint64_t expected = sent * static_cast<std::uint64_t>(nsubs);
    std::uint64_t total = 0;
    std::uint64_t last_change = mono_ns();
    for (;;) {
      std::uint64_t t = 0;
      for (int i = 0; i < nsubs; ++i) t += ctl_->subs[i].received.load(std::memory_order_acquire);
      const std::uint64_t now = mono_ns();
      if (t != total) {
        total = t;
        last_change = now;
      }
      if (total >= expected || now - last_change > 300'000'000u || now - t_pub > 60'000'000'000u) break;
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    std::uint64_t last = 0;
    std::uint64_t bad = 0;
    for (int i = 0; i < nsubs; ++i) {
      last = std::max(last, ctl_->subs[i].last_ns.load(std::memory_order_relaxed));
      bad += ctl_->subs[i].bad.load(std::memory_order_relaxed);
    }
    const bool children_ok = stop_children();
    if (total == 0 || last <= t0) return fail("nothing was delivered");
    // The window ends at the last delivery, or at the end of publishing if deliveries stopped
    // earlier (a lossy transport whose subscriber fell behind for good).
    const double secs = static_cast<double>(std::max(last, t_pub) - t0) * 1e-9;
    const double rate = static_cast<double>(total) / secs;
    JsonLine m;
    m.num("msgs_per_s", rate).num("per_sub_msgs_per_s", rate / nsubs);
    m.num("bytes_per_s", rate * static_cast<double>(a_.size));
    m.integer("published", sent).integer("delivered", total);
    m.num("drop_ratio", 1.0 - static_cast<double>(total) / static_cast<double>(expected));
    m.num("publish_per_s", static_cast<double>(sent) / (static_cast<double>(t_pub - t0) * 1e-9));
    m.num("seconds", secs).integer("bad", bad).boolean("children_ok", children_ok);
    cpu.add_to(m);
    if (bad != 0) return fail("subscribers saw " + std::to_string(bad) + " bad messages (length/order)");
    return emit(m);
  }

 private:
  Args a_;
  ScopedAffinity pin_;
  std::uint64_t probe_before_ = 0;
  SharedObject<Control> ctl_;
  std::vector<std::unique_ptr<ForkPeer>> children_;
};

/// Spin-wait helper for busy-polling children. `stop` sits on a line nobody writes until the
/// end, so reading it is an L1 hit: every yield checks it (a yield may give the CPU away for a
/// whole time slice), a plain spin every 64 calls.
class IdleSpin {
 public:
  explicit IdleSpin(const Control& c, bool yield) : c_(c), yield_(yield) {}
  /// Call when a poll found nothing. Returns true when the child should leave.
  bool idle() noexcept {
    if (yield_) {
      ::sched_yield();
      return stop_requested(c_);
    }
    cpu_relax();
    return (++spins_ & 63u) == 0 && stop_requested(c_);
  }

 private:
  const Control& c_;
  bool yield_;
  std::uint32_t spins_ = 0;
};

}  // namespace bus::compare

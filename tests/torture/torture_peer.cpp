// torture_peer.cpp — one client process of the kill-torture test (torture_test.cpp).
//
//   bus_torture_peer pub       --bus B --dir D --id N [--count C] [--sleep-us U]
//       publishes 1,2,3... on t.p<N>.s0 and t.p<N>.s1 (one sequence per subject), storing
//       "about to publish n" / "published n" in D/pub-<N>.ctr around each publish(); prints
//       "ready" after its first round; stops after C rounds (0 = until SIGTERM).
//   bus_torture_peer sub       --bus B --dir D --name X --pattern P [--unblock-ms M]
//       subscribes to P, reads every publisher's counter (the baseline: numbers above it must
//       arrive), prints "ready", then checks every message: intact payload, per (publisher,
//       subject) increasing, no duplicate, and every gap covered by the subscription's
//       counted losses (dropped_count() + skipped_count()).
//   bus_torture_peer member    --bus B --dir D --name X --pattern P --group G
//       queue member: intact, increasing per (publisher, subject), no duplicate.
//   bus_torture_peer responder --bus B --dir D --name X --subject S --group G
//       answers each request with "re:" + body.
//   bus_torture_peer requester --bus B --dir D --name X --subject S [--timeout-ms T] [--sleep-us U]
//       requests in a loop; a reply must answer its own request; timeouts and no-responders
//       are counted (responders get killed), a request() that overruns its timeout by 2 s is a
//       hang.
//
// Every role keeps its figures in D/peer-<X>.stats (publishers in their counter file, see
// torture_files.hpp), prints "reconnected" when its connection got its slot back from a
// restarted broker, and on SIGUSR1 (sub, member) probes the control path with a fresh
// subscribe + unsubscribe ("probe ok us=..." or "probe failed ..."). On SIGTERM it stops,
// drains (sub, member: until its ring is quiet for 1 s, at most 8 s), checks what is left
// (sub: publishers' final counters against what arrived) and prints one line
// "final role=... key=value ..." before exiting 0. Every wait is bounded; nothing spins.
// Exit codes: 0 stopped cleanly, 1 a libbus call failed at start-up, 2 usage.
#include <dirent.h>
#include <pthread.h>
#include <signal.h>
#include <time.h>
#include <unistd.h>

#include <array>
#include <atomic>
#include <chrono>
#include <cinttypes>
#include <cstdarg>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "bus/bus.hpp"
#include "torture_files.hpp"

namespace {

using namespace std::chrono_literals;
using bus::torture::Counter;
using bus::torture::kMaxPublishers;
using bus::torture::kMaxSubjects;
using bus::torture::PeerStats;
using bus::torture::PubCounter;
using Clock = std::chrono::steady_clock;

std::atomic<bool> g_stop{false};
std::atomic<bool> g_probe{false};
std::atomic<bool> g_quit_signals{false};
std::mutex g_out_mutex;

// One line on stdout (the driver reads it), flushed; safe from the supervisor thread's callbacks.
void say(const char* fmt, ...) __attribute__((format(printf, 1, 2)));
void say(const char* fmt, ...) {
  std::lock_guard lock(g_out_mutex);
  va_list ap;
  va_start(ap, fmt);
  std::vprintf(fmt, ap);
  va_end(ap);
  std::fputc('\n', stdout);
  std::fflush(stdout);
}

void complain(const char* fmt, ...) __attribute__((format(printf, 1, 2)));
void complain(const char* fmt, ...) {
  std::lock_guard lock(g_out_mutex);
  std::fputs("torture_peer: ", stderr);
  va_list ap;
  va_start(ap, fmt);
  std::vfprintf(stderr, fmt, ap);
  va_end(ap);
  std::fputc('\n', stderr);
}

std::uint64_t monotonic_ns() {
  timespec ts{};
  ::clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<std::uint64_t>(ts.tv_sec) * 1'000'000'000ull + static_cast<std::uint64_t>(ts.tv_nsec);
}

void bump(Counter& c, std::uint64_t by = 1) { c.fetch_add(by, std::memory_order_relaxed); }
std::uint64_t get(const Counter& c) { return c.load(std::memory_order_relaxed); }
unsigned long long ull(std::uint64_t v) { return static_cast<unsigned long long>(v); }

// SIGTERM/SIGINT/SIGUSR1 are blocked in every thread (libbus's included) and taken here, so
// no libbus call is ever interrupted by a handler.
void signal_thread(sigset_t set) {
  const timespec slice{0, 100'000'000};
  while (!g_quit_signals.load()) {
    const int sig = ::sigtimedwait(&set, nullptr, &slice);
    if (sig == SIGTERM || sig == SIGINT) g_stop.store(true);
    if (sig == SIGUSR1) g_probe.store(true);
  }
}

struct Args {
  std::string role;
  std::map<std::string, std::string> kv;
  std::string str(const std::string& key, const std::string& fallback = {}) const {
    auto it = kv.find(key);
    return it == kv.end() ? fallback : it->second;
  }
  long num(const std::string& key, long fallback) const {
    auto it = kv.find(key);
    return it == kv.end() ? fallback : std::atol(it->second.c_str());
  }
};

struct Common {
  std::string bus;
  std::string dir;
  std::string name;
  bus::Connection conn;
  PeerStats* stats = nullptr;    // sub, member, responder, requester
  PubCounter* counter = nullptr;  // pub
  std::atomic<bool> closing{false};  // our own close(): its closed_cb is expected
};

bus::ConnectOptions connect_options(Common& c, const std::string& label) {
  bus::ConnectOptions o;
  o.name = label;
  o.max_reconnects = -1;  // the broker is killed over and over; it always comes back
  o.reconnect_wait = 50ms;
  o.disconnected_cb = [&c] {
    if (c.stats != nullptr) bump(c.stats->disconnects);
    if (c.counter != nullptr) bump(c.counter->disconnects);
    say("disconnected");
  };
  o.reconnected_cb = [&c] {
    std::uint64_t n = 0;
    if (c.stats != nullptr) n = c.stats->reconnects.fetch_add(1) + 1;
    if (c.counter != nullptr) n = c.counter->reconnects.fetch_add(1) + 1;
    say("reconnected %llu", ull(n));
  };
  o.closed_cb = [&c] {
    if (c.closing.load()) return;
    // Lost for good: never expected here (every restarted broker adopts the segment).
    if (c.stats != nullptr) bump(c.stats->api_errors);
    if (c.counter != nullptr) bump(c.counter->publish_errors);
    say("closed");
    complain("%s: connection closed for good", c.name.c_str());
  };
  return o;
}

void heartbeat(PeerStats* s) { s->heartbeat_ns.store(monotonic_ns(), std::memory_order_relaxed); }

// ------------------------------------------------------------------------------ publisher

int run_pub(Common& c, const Args& a) {
  const long id = a.num("id", 0);
  const long count = a.num("count", 0);
  const long sleep_us = a.num("sleep-us", 2000);
  if (id <= 0 || id >= static_cast<long>(kMaxPublishers)) return 2;
  const auto uid = static_cast<std::uint64_t>(id);
  PubCounter* ctr = c.counter;
  std::array<std::string, kMaxSubjects> subjects;
  for (std::uint32_t s = 0; s < kMaxSubjects; ++s) subjects[s] = bus::torture::pub_subject(uid, s);

  std::uint64_t n = 0;
  std::uint64_t errors = 0;
  while (!g_stop.load(std::memory_order_relaxed) && (count == 0 || n < static_cast<std::uint64_t>(count))) {
    ++n;
    for (std::uint32_t s = 0; s < kMaxSubjects; ++s) {
      const std::string payload = bus::torture::make_payload(uid, s, n);
      // seq_cst: a subscriber that reads `about` right after its subscribe() returned and does
      // not see n knows this publish started after that point (test_peer's pubseq does the same).
      ctr->about[s].store(n, std::memory_order_seq_cst);
      if (auto st = c.conn.publish(subjects[s], payload); !st) {
        bump(ctr->publish_errors);
        if (++errors <= 5) complain("pub %ld: publish %s #%llu: %s: %s", id, subjects[s].c_str(), ull(n),
                                    bus::errc_name(st.error().code), st.error().message.c_str());
      }
      ctr->done[s].store(n, std::memory_order_seq_cst);
    }
    if (n == 1) say("ready");
    if (sleep_us > 0) std::this_thread::sleep_for(std::chrono::microseconds(sleep_us));
  }
  ctr->finished.store(1);
  say("final role=pub id=%ld published=%llu publish_errors=%llu disconnects=%llu reconnects=%llu", id, ull(n),
      ull(get(ctr->publish_errors)), ull(get(ctr->disconnects)), ull(get(ctr->reconnects)));
  return 0;
}

// ---------------------------------------------------------------------- subscriber, member

struct SeqChecker {
  Common& c;
  std::string pattern;
  bool count_gaps = true;  // plain subscriber: every gap must be a counted loss
  bus::Subscription* sub = nullptr;
  std::vector<std::array<std::uint64_t, kMaxSubjects>> baseline =
      std::vector<std::array<std::uint64_t, kMaxSubjects>>(kMaxPublishers);
  std::uint64_t reports = 0;

  // Every publisher's "about to publish" now: numbers above it started after our subscribe().
  void read_baseline() {
    // A counter still being created has published nothing yet.
    for_each_publisher([&](unsigned long id, PubCounter& p) {
      for (std::uint32_t s = 0; s < kMaxSubjects; ++s) baseline[id][s] = p.about[s].load(std::memory_order_seq_cst);
    });
  }

  // Calls fn(id, counter) for every publisher's counter file (pub-<id>.ctr) in the run's dir.
  template <class Fn>
  void for_each_publisher(Fn&& fn) {
    DIR* d = ::opendir(c.dir.c_str());
    if (d == nullptr) return;
    while (dirent* e = ::readdir(d)) {
      unsigned long id = 0;
      char tail = 0;
      if (std::sscanf(e->d_name, "pub-%lu.ct%c", &id, &tail) != 2 || tail != 'r' || id == 0 || id >= kMaxPublishers) continue;
      if (std::strlen(e->d_name) != std::strlen("pub-.ctr") + std::to_string(id).size()) continue;
      PubCounter* p = bus::torture::map_file<PubCounter>(c.dir + "/" + e->d_name, false);
      if (p == nullptr) continue;
      fn(id, *p);
      bus::torture::unmap_file(p);
    }
    ::closedir(d);
  }

  void refresh_losses() {
    c.stats->dropped.store(sub->dropped_count(), std::memory_order_relaxed);
    c.stats->skipped.store(sub->skipped_count(), std::memory_order_relaxed);
  }

  void check(const bus::Message& msg) {
    PeerStats* st = c.stats;
    bus::torture::ParsedPayload p;
    if (!bus::torture::parse_payload(msg.data, p) || msg.subject != bus::torture::pub_subject(p.id, p.s) ||
        !bus::subject_matches(pattern, msg.subject)) {
      bump(st->corrupt);
      if (++reports <= 20) complain("%s: corrupt or misrouted: subject '%s' payload (%zu bytes) '%.80s'", c.name.c_str(),
                                    msg.subject.c_str(), msg.data.size(), msg.data.c_str());
      bump(st->received);
      return;
    }
    Counter& last_slot = st->last[p.id][p.s];
    const std::uint64_t last = last_slot.load(std::memory_order_relaxed);
    if (p.n == last) {
      bump(st->duplicates);
      if (++reports <= 20) complain("%s: duplicate %s #%llu", c.name.c_str(), msg.subject.c_str(), ull(p.n));
    } else if (p.n < last) {
      bump(st->order_violations);
      if (++reports <= 20) complain("%s: out of order on %s: #%llu after #%llu", c.name.c_str(), msg.subject.c_str(),
                                    ull(p.n), ull(last));
    } else {
      const std::uint64_t from = std::max(last, baseline[p.id][p.s]);
      if (count_gaps && p.n > from + 1) {
        const std::uint64_t gap = p.n - from - 1;
        const std::uint64_t gaps = st->gaps.fetch_add(gap, std::memory_order_relaxed) + gap;
        refresh_losses();
        const std::uint64_t lost = get(st->dropped) + get(st->skipped);
        if (gaps > lost) {
          bump(st->uncovered);
          if (++reports <= 20) complain("%s: uncounted loss on %s: #%llu after #%llu (baseline %llu): gaps %llu > dropped %llu + skipped %llu",
                                        c.name.c_str(), msg.subject.c_str(), ull(p.n), ull(last),
                                        ull(baseline[p.id][p.s]), ull(gaps), ull(get(st->dropped)), ull(get(st->skipped)));
        }
      }
      last_slot.store(p.n, std::memory_order_relaxed);
    }
    bump(st->received);
  }

  // After the publishers are gone: what each one finished publishing must have arrived, unless
  // counted as lost. Returns the numbers missing at the tail.
  std::uint64_t tail_missing() {
    std::uint64_t missing = 0;
    for_each_publisher([&](unsigned long id, PubCounter& p) {
      if (p.magic.load() != bus::torture::kPubMagic) return;
      const auto subjects = std::min<std::uint64_t>(p.subjects.load(), kMaxSubjects);
      for (std::uint32_t s = 0; s < subjects; ++s) {
        if (!bus::subject_matches(pattern, bus::torture::pub_subject(id, s))) continue;
        const std::uint64_t done = p.done[s].load();
        const std::uint64_t have = std::max(get(c.stats->last[id][s]), baseline[id][s]);
        if (done > have) {
          missing += done - have;
          if (++reports <= 40) complain("%s: %s ends at #%llu, last received #%llu (baseline %llu)", c.name.c_str(),
                                        bus::torture::pub_subject(id, s).c_str(), ull(done),
                                        ull(get(c.stats->last[id][s])), ull(baseline[id][s]));
        }
      }
    });
    return missing;
  }
};

void probe(Common& c, std::uint64_t k) {
  const auto t0 = Clock::now();
  auto p = c.conn.subscribe("probe." + c.name + "." + std::to_string(k));
  if (p) {
    if (auto st = p->unsubscribe(); !st) {
      bump(c.stats->probes_failed);
      say("probe failed unsubscribe %s: %s", bus::errc_name(st.error().code), st.error().message.c_str());
      return;
    }
    bump(c.stats->probes_ok);
    say("probe ok us=%lld",
        static_cast<long long>(std::chrono::duration_cast<std::chrono::microseconds>(Clock::now() - t0).count()));
  } else {
    bump(c.stats->probes_failed);
    say("probe failed %s: %s", bus::errc_name(p.error().code), p.error().message.c_str());
  }
}

int run_consumer(Common& c, const Args& a, bool member) {
  SeqChecker checker{c, a.str("pattern", "t.>")};
  checker.count_gaps = !member;
  bus::SubscribeOptions options;
  options.unblock_timeout = std::chrono::milliseconds(a.num("unblock-ms", 1000));
  auto sub = member ? c.conn.queue_subscribe(checker.pattern, a.str("group", "workers"), options)
                    : c.conn.subscribe(checker.pattern, options);
  if (!sub) {
    complain("%s: subscribe %s: %s", c.name.c_str(), checker.pattern.c_str(), sub.error().message.c_str());
    return 1;
  }
  checker.sub = &*sub;
  if (!member) checker.read_baseline();
  c.stats->ready.store(1);
  heartbeat(c.stats);
  say("ready");

  std::uint64_t probes = 0;
  std::uint64_t errors = 0;
  auto receive = [&](std::chrono::milliseconds wait) -> bool {  // false: nothing came in `wait`
    auto msg = sub->next(wait);
    heartbeat(c.stats);
    if (msg) {
      checker.check(*msg);
      checker.refresh_losses();
      return true;
    }
    if (msg.error().code != bus::Errc::timeout) {
      bump(c.stats->api_errors);
      if (++errors <= 5) complain("%s: next(): %s: %s", c.name.c_str(), bus::errc_name(msg.error().code), msg.error().message.c_str());
      std::this_thread::sleep_for(10ms);  // a persistent error must not turn into a spin
    }
    checker.refresh_losses();
    return false;
  };

  while (!g_stop.load(std::memory_order_relaxed)) {
    if (g_probe.exchange(false)) probe(c, ++probes);
    (void)receive(50ms);
  }
  // Drain: the driver stopped every publisher first. Quiet for 1 s (longer than the dead-claim
  // grace and the unblock timeout) means nothing more is coming; 8 s bounds it regardless.
  const auto drain_end = Clock::now() + 8s;
  auto quiet_since = Clock::now();
  while (Clock::now() < drain_end && Clock::now() - quiet_since < 1s) {
    if (receive(100ms)) quiet_since = Clock::now();
  }
  checker.refresh_losses();
  PeerStats* st = c.stats;
  const std::uint64_t tail = member ? 0 : checker.tail_missing();
  const std::uint64_t missing = get(st->gaps) + tail;
  const std::uint64_t lost = get(st->dropped) + get(st->skipped);
  say("final role=%s name=%s pattern=%s received=%llu gaps=%llu tail_missing=%llu missing=%llu dropped=%llu "
      "skipped=%llu lost_counted=%llu order_violations=%llu duplicates=%llu corrupt=%llu uncovered=%llu "
      "api_errors=%llu reconnects=%llu probes_ok=%llu probes_failed=%llu covered=%d",
      member ? "member" : "sub", c.name.c_str(), checker.pattern.c_str(), ull(get(st->received)), ull(get(st->gaps)),
      ull(tail), ull(missing), ull(get(st->dropped)), ull(get(st->skipped)), ull(lost), ull(get(st->order_violations)),
      ull(get(st->duplicates)), ull(get(st->corrupt)), ull(get(st->uncovered)), ull(get(st->api_errors)),
      ull(get(st->reconnects)), ull(get(st->probes_ok)), ull(get(st->probes_failed)), member || missing <= lost ? 1 : 0);
  return 0;
}

// --------------------------------------------------------------------- responder, requester

int run_responder(Common& c, const Args& a) {
  const std::string subject = a.str("subject", "rpc.echo");
  auto sub = c.conn.queue_subscribe(subject, a.str("group", "responders"));
  if (!sub) {
    complain("%s: queue_subscribe %s: %s", c.name.c_str(), subject.c_str(), sub.error().message.c_str());
    return 1;
  }
  c.stats->ready.store(1);
  heartbeat(c.stats);
  say("ready");
  std::uint64_t errors = 0;
  while (!g_stop.load(std::memory_order_relaxed)) {
    auto msg = sub->next(50ms);
    heartbeat(c.stats);
    if (!msg) {
      if (msg.error().code != bus::Errc::timeout) {
        bump(c.stats->api_errors);
        if (++errors <= 5) complain("%s: next(): %s", c.name.c_str(), msg.error().message.c_str());
        std::this_thread::sleep_for(10ms);
      }
      continue;
    }
    bump(c.stats->received);
    if (msg->data.rfind("q", 0) != 0) bump(c.stats->corrupt);
    // A requester that gave up (timeout) or died leaves an inbox nobody reads: a failed respond
    // is counted, not an error of ours.
    if (auto st = msg->respond("re:" + msg->data); st) {
      bump(c.stats->replies_sent);
    } else {
      bump(c.stats->reply_errors);
    }
  }
  PeerStats* st = c.stats;
  say("final role=responder name=%s received=%llu replies_sent=%llu reply_errors=%llu corrupt=%llu api_errors=%llu "
      "reconnects=%llu",
      c.name.c_str(), ull(get(st->received)), ull(get(st->replies_sent)), ull(get(st->reply_errors)),
      ull(get(st->corrupt)), ull(get(st->api_errors)), ull(get(st->reconnects)));
  return 0;
}

int run_requester(Common& c, const Args& a) {
  const std::string subject = a.str("subject", "rpc.echo");
  const auto timeout = std::chrono::milliseconds(a.num("timeout-ms", 500));
  const long sleep_us = a.num("sleep-us", 5000);
  c.stats->ready.store(1);
  heartbeat(c.stats);
  say("ready");
  PeerStats* st = c.stats;
  std::uint64_t n = 0;
  std::uint64_t reports = 0;
  while (!g_stop.load(std::memory_order_relaxed)) {
    ++n;
    std::string body = "q" + std::to_string(n) + ":";
    body.append(static_cast<std::size_t>(n % 64), static_cast<char>('a' + n % 26));
    bump(st->req_sent);
    const auto t0 = Clock::now();
    auto reply = c.conn.request(subject, body, timeout);
    const auto took = Clock::now() - t0;
    heartbeat(st);
    if (took > timeout + 2s) {
      bump(st->req_overdue);
      if (++reports <= 20) complain("%s: request #%llu took %lld ms (timeout %lld ms)", c.name.c_str(), ull(n),
                                    static_cast<long long>(std::chrono::duration_cast<std::chrono::milliseconds>(took).count()),
                                    static_cast<long long>(timeout.count()));
    }
    if (reply) {
      if (reply->data == "re:" + body) {
        bump(st->req_ok);
      } else {
        bump(st->req_mismatch);
        if (++reports <= 20) complain("%s: request '%s' got reply '%.80s'", c.name.c_str(), body.c_str(), reply->data.c_str());
      }
    } else if (reply.error().code == bus::Errc::timeout) {
      bump(st->req_timeout);
    } else if (reply.error().code == bus::Errc::no_responders) {
      bump(st->req_no_responders);
      std::this_thread::sleep_for(20ms);
    } else {
      bump(st->req_error);
      if (++reports <= 20) complain("%s: request #%llu: %s: %s", c.name.c_str(), ull(n), bus::errc_name(reply.error().code),
                                    reply.error().message.c_str());
      std::this_thread::sleep_for(20ms);
    }
    if (sleep_us > 0) std::this_thread::sleep_for(std::chrono::microseconds(sleep_us));
  }
  say("final role=requester name=%s sent=%llu ok=%llu timeout=%llu no_responders=%llu errors=%llu mismatch=%llu "
      "overdue=%llu api_errors=%llu reconnects=%llu",
      c.name.c_str(), ull(get(st->req_sent)), ull(get(st->req_ok)), ull(get(st->req_timeout)),
      ull(get(st->req_no_responders)), ull(get(st->req_error)), ull(get(st->req_mismatch)),
      ull(get(st->req_overdue)), ull(get(st->api_errors)), ull(get(st->reconnects)));
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) return 2;
  Args a;
  a.role = argv[1];
  for (int i = 2; i + 1 < argc; i += 2) {
    if (std::strncmp(argv[i], "--", 2) != 0) return 2;
    a.kv[argv[i] + 2] = argv[i + 1];
  }

  // Block the signals before libbus starts any thread, so they all inherit the mask.
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGUSR1);
  ::pthread_sigmask(SIG_BLOCK, &set, nullptr);
  std::thread signals(signal_thread, set);

  Common c;
  c.bus = a.str("bus");
  c.dir = a.str("dir");
  c.name = a.role == "pub" ? "pub" + a.str("id") : a.str("name", a.role);
  int rc = 2;
  if (c.bus.empty() || c.dir.empty()) {
    g_quit_signals.store(true);
    signals.join();
    return 2;
  }
  if (a.role == "pub") {
    const long id = a.num("id", 0);
    if (id > 0 && id < static_cast<long>(kMaxPublishers)) {
      c.counter = bus::torture::map_file<PubCounter>(bus::torture::pub_counter_path(c.dir, static_cast<std::uint64_t>(id)), true);
    }
    if (c.counter == nullptr) rc = 1;
    else {
      c.counter->pid.store(static_cast<std::uint64_t>(::getpid()));
      c.counter->subjects.store(kMaxSubjects);
      c.counter->magic.store(bus::torture::kPubMagic);
    }
  } else {
    c.stats = bus::torture::map_file<PeerStats>(bus::torture::stats_path(c.dir, c.name), true);
    if (c.stats == nullptr) rc = 1;
    else {
      c.stats->pid.store(static_cast<std::uint64_t>(::getpid()));
      c.stats->magic.store(bus::torture::kStatsMagic);
    }
  }
  if (c.counter != nullptr || c.stats != nullptr) {
    auto conn = bus::Connection::connect(c.bus, connect_options(c, "torture " + c.name));
    if (!conn) {
      complain("%s: connect %s: %s", c.name.c_str(), c.bus.c_str(), conn.error().message.c_str());
      rc = 1;
    } else {
      c.conn = std::move(conn).value();
      if (a.role == "pub") rc = run_pub(c, a);
      else if (a.role == "sub") rc = run_consumer(c, a, false);
      else if (a.role == "member") rc = run_consumer(c, a, true);
      else if (a.role == "responder") rc = run_responder(c, a);
      else if (a.role == "requester") rc = run_requester(c, a);
      else rc = 2;
      c.closing.store(true);
      if (auto st = c.conn.close(); !st) complain("%s: close: %s", c.name.c_str(), st.error().message.c_str());
    }
  }
  g_quit_signals.store(true);
  signals.join();
  return rc;
}

// torture_test.cpp — kill torture: clients and the broker are SIGKILLed and SIGSTOPped at random
// while traffic flows, and the bus must keep every promise after every event.
//
// The cast, each a bus_torture_peer process (torture_peer.cpp) on one busd:
//   3 publishers     per-(publisher, subject) sequences 1,2,3... on t.p<id>.s0 / t.p<id>.s1
//   3 subscribers    t.>, t.*.s0, t.*.* — order, duplicates, every gap a counted loss
//   2 queue members  t.*.* in group "workers" — order and duplicates per member
//   2 responders     rpc.echo in group "responders"; 1 requester (500 ms timeouts)
// Then, EVENTS times (env BUS_TORTURE_EVENTS, default 200; the full run is 1000), one of, at
// random (seeded; BUS_TORTURE_SEED replays a run):
//   * SIGKILL a publisher, subscriber, queue member or responder, and start a replacement;
//   * SIGSTOP any client, SIGCONT it 50-1500 ms later;
//   * SIGKILL busd and start a new one on the bus: it must adopt the segment (sometimes a
//     client is SIGKILLed too while no broker runs: the new broker must reclaim it);
//   * SIGSTOP busd, SIGCONT it 50-1500 ms later (sometimes killing a client meanwhile);
//   * start a publisher with the crash-injection hook (stops itself after its first claim,
//     after the record header, or before the commit), then SIGKILL it (dead writer mid-claim)
//     or SIGCONT it 50-1500 ms later (stalled writer, skipped after the unblock timeout);
//     sometimes busd is killed and restarted while it is stopped, so the new broker adopts a
//     client that is stopped mid-claim.
// After every event: no peer died or hung (each one's loop heartbeat is fresh, every wait in
// it is bounded), no order violation, duplicate, torn payload or uncounted gap anywhere, a
// killed client was reclaimed by the broker within 1 s (kill -> its "reclaimed" log line), a
// restarted broker adopted the bus, every client reconnected and a fresh subscribe works
// through an old connection, and traffic flows again: every subscriber receives new numbers
// from every publisher, members, responders and the requester make progress. While a client or
// the broker is stopped, and while no broker runs at all, the others must keep going too.
// At the end everything is stopped with SIGTERM (publishers first), each survivor drains and
// checks its sequences against the publishers' final counters, and the figures are printed.
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <deque>
#include <filesystem>
#include <map>
#include <memory>
#include <random>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "bus/bus.hpp"
#include "mp/process_harness.hpp"
#include "torture_files.hpp"

namespace bus::test {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;
using torture::kMaxSubjects;
using torture::PeerStats;
using torture::PubCounter;

const std::vector<std::string> kBrokerFlags = {"--ring-bytes", "256KiB", "--max-payload", "16KiB",
                                               "--max-subscriptions", "64", "--max-fanout", "32",
                                               "--max-clients", "64"};
constexpr int kPublishers = 3;
constexpr int kSubscribers = 3;
constexpr int kMembers = 2;
constexpr int kResponders = 2;
const char* const kPatterns[] = {"t.>", "t.*.s0", "t.*.*"};
constexpr auto kReadyTimeout = 10s;
constexpr auto kReapTimeout = 5s;
constexpr auto kReclaimLimit = 1000ms;    // the issue's bound: kill -> broker reclaimed it
constexpr auto kProgressTimeout = 10s;    // traffic must flow again within this after an event
constexpr auto kHeartbeatLimit = 8s;      // a peer's loop turns at least this often (control_timeout 5 s)
constexpr auto kReconnectTimeout = 10s;

std::string torture_peer_path() { return BUS_TORTURE_PEER; }

long env_long(const char* name, long fallback) {
  const char* v = std::getenv(name);
  return v != nullptr && *v != '\0' ? std::atol(v) : fallback;
}

double ms(Clock::duration d) { return std::chrono::duration<double, std::milli>(d).count(); }

std::uint64_t monotonic_ns() {
  timespec ts{};
  ::clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<std::uint64_t>(ts.tv_sec) * 1'000'000'000ull + static_cast<std::uint64_t>(ts.tv_nsec);
}

// key=value fields of a peer's "final ..." line.
std::map<std::string, std::string> parse_fields(const std::string& line) {
  std::map<std::string, std::string> out;
  std::istringstream in(line);
  std::string word;
  while (in >> word) {
    const auto eq = word.find('=');
    if (eq != std::string::npos) out[word.substr(0, eq)] = word.substr(eq + 1);
  }
  return out;
}
std::uint64_t field(const std::map<std::string, std::string>& f, const std::string& key) {
  auto it = f.find(key);
  return it == f.end() ? ~0ull : std::strtoull(it->second.c_str(), nullptr, 10);
}

std::size_t count_lines_with(ChildProcess& p, std::string_view what) {
  p.pump();
  std::size_t n = 0;
  for (const auto& line : p.lines(Stream::out)) n += line.find(what) != std::string::npos ? 1 : 0;
  return n;
}

enum class Role { pub, sub, member, responder, requester };
const char* role_name(Role r) {
  switch (r) {
    case Role::pub: return "pub";
    case Role::sub: return "sub";
    case Role::member: return "member";
    case Role::responder: return "responder";
    case Role::requester: return "requester";
  }
  return "?";
}

struct Peer {
  Role role = Role::pub;
  std::string name;
  std::uint64_t pub_id = 0;
  std::string pattern;
  bool transient = false;  // a hooked publisher: publishes a bounded count, then exits by itself
  bool alive = true;       // not killed, not exited
  ChildProcess proc;
  PeerStats* stats = nullptr;
  PubCounter* counter = nullptr;
  ~Peer() {
    torture::unmap_file(stats);
    torture::unmap_file(counter);
  }
};

enum class Event { kill_pub, kill_sub, kill_member, kill_responder, stop_client, kill_broker, stop_broker, hooked_pub };
const char* event_name(Event e) {
  switch (e) {
    case Event::kill_pub: return "kill-publisher";
    case Event::kill_sub: return "kill-subscriber";
    case Event::kill_member: return "kill-member";
    case Event::kill_responder: return "kill-responder";
    case Event::stop_client: return "stop-client";
    case Event::kill_broker: return "kill-broker";
    case Event::stop_broker: return "stop-broker";
    case Event::hooked_pub: return "hooked-publisher";
  }
  return "?";
}
// Weights of the events, in the order above.
const std::vector<int> kEventWeights = {12, 12, 8, 8, 24, 12, 6, 18};

struct Figures {
  std::map<std::string, int> events;
  int broker_restarts = 0;
  int restarts_with_traffic = 0;
  int kills_reclaimed = 0;
  double max_reclaim_ms = 0;
  double sum_reclaim_ms = 0;
  double max_restart_ms = 0;    // start of the new busd -> it logged that it adopted the bus
  double max_reconnect_ms = 0;  // the new busd adopted -> the last client's "reconnected"
  double max_probe_ms = 0;      // the new busd adopted -> a fresh subscribe through an old connection
  double max_recovery_ms = 0;   // end of an event -> traffic flowing everywhere again
  int hooked_killed = 0;
  int hooked_resumed = 0;
  int killed_while_broker_away = 0;  // reclaimed when a broker runs again (timed from then)
};

class Torture {
 public:
  Torture(std::uint64_t seed, int events) : rng_(seed), events_(events) {
    bus_ = unique_bus_name();
    dir_ = (std::filesystem::temp_directory_path() / ("bus-torture-" + bus_)).string();
    std::filesystem::create_directories(dir_);
  }
  ~Torture() {
    peers_.clear();  // SIGKILLs anything left (ChildProcess destructor)
    broker_ = ChildProcess();
    ::unlink(segment_path(bus_).c_str());
    if (!::testing::Test::HasFailure()) {
      std::error_code ec;
      std::filesystem::remove_all(dir_, ec);
    } else {
      std::printf("torture: peer files kept in %s\n", dir_.c_str());
    }
  }

  void run();

 private:
  // ---- helpers
  int uniform(int lo, int hi) { return std::uniform_int_distribution<int>(lo, hi)(rng_); }
  bool fail(const std::string& what);
  std::string recent_events() const;
  std::string dump_all();
  void note(const std::string& what) {
    history_.push_back(what);
    if (history_.size() > 12) history_.pop_front();
  }

  bool start_broker(bool adopt, pid_t previous_pid);
  Peer* spawn(Role role, bool transient = false, const char* hook = nullptr);
  std::vector<Peer*> alive(Role role, bool include_transient = false);
  bool kill_and_reclaim(Peer& p);
  bool wait_reclaimed(pid_t pid, Clock::time_point since);
  Peer* kill_one_while_broker_away();

  bool check_health(const std::string& context, const Peer* stopped = nullptr);
  bool check_counters(const std::string& context);
  bool wait_progress(const std::string& context, const Peer* stopped, bool broker_away,
                     Clock::duration* took = nullptr);
  bool reap_finished(const std::string& context);

  bool event_kill(Role role);
  bool event_stop_client();
  bool event_kill_broker(const Peer* stopped = nullptr);
  bool check_traffic_after_restart();
  bool event_stop_broker();
  bool event_hooked_pub();

  void teardown_and_check();

  std::mt19937_64 rng_;
  int events_;
  std::string bus_;
  std::string dir_;
  ChildProcess broker_;
  std::vector<ChildProcess> dead_brokers_;
  std::vector<std::unique_ptr<Peer>> peers_;
  std::uint64_t next_pub_id_ = 1;
  int next_name_ = 1;
  std::deque<std::string> history_;
  Figures fig_;
  bool failed_ = false;
};

bool Torture::fail(const std::string& what) {
  failed_ = true;
  ADD_FAILURE() << what << "\nrecent events:\n" << recent_events() << dump_all();
  return false;
}

std::string Torture::recent_events() const {
  std::string out;
  for (const auto& e : history_) out += "  " + e + "\n";
  return out;
}

std::string Torture::dump_all() {
  std::string out = "\n=== busd ===\n" + broker_.describe() + "\n";
  for (auto& p : peers_) {
    if (!p->alive) continue;
    p->proc.pump();
    const std::string& err = p->proc.err();
    if (!err.empty()) out += "=== " + p->name + " stderr ===\n" + err.substr(err.size() > 2000 ? err.size() - 2000 : 0) + "\n";
  }
  return out;
}

bool Torture::start_broker(bool adopt, pid_t previous_pid) {
  std::vector<std::string> argv{busd_path(), "--bus", bus_};
  argv.insert(argv.end(), kBrokerFlags.begin(), kBrokerFlags.end());
  if (broker_.started()) dead_brokers_.push_back(std::move(broker_));
  broker_ = ChildProcess::spawn(std::move(argv));
  if (!broker_.started()) return fail("cannot spawn busd");
  auto line = broker_.wait_for_line_if(
      Stream::err,
      [](std::string_view l) {
        return l.find("serving bus") != std::string_view::npos || l.find("adopted bus") != std::string_view::npos;
      },
      kReadyTimeout);
  if (!line) return fail("busd did not get ready");
  // "adopted bus 'NAME'" or "serving bus 'NAME': adopted segment ..." (wordings of the log).
  const bool adopted = line->find("adopted") != std::string::npos;
  if (adopt) {
    if (!adopted) {
      return fail("the restarted busd did not adopt the segment: " + *line);
    }
    const std::string want = "adopting segment of broker pid " + std::to_string(previous_pid);
    if (broker_.err().find(want) == std::string::npos) return fail("busd's log does not say '" + want + "'");
  } else if (adopted) {
    return fail("the first busd did not create a fresh bus: " + *line);
  }
  return true;
}

Peer* Torture::spawn(Role role, bool transient, const char* hook) {
  auto peer = std::make_unique<Peer>();
  peer->role = role;
  peer->transient = transient;
  std::vector<std::string> argv{torture_peer_path(), role_name(role), "--bus", bus_, "--dir", dir_};
  const int n = next_name_++;
  switch (role) {
    case Role::pub:
      peer->pub_id = next_pub_id_++;
      peer->name = "pub" + std::to_string(peer->pub_id);
      argv.insert(argv.end(), {"--id", std::to_string(peer->pub_id), "--sleep-us", "2000"});
      if (transient) argv.insert(argv.end(), {"--count", "300"});
      break;
    case Role::sub:
      peer->name = "sub" + std::to_string(n);
      peer->pattern = kPatterns[static_cast<std::size_t>(n) % std::size(kPatterns)];
      argv.insert(argv.end(), {"--name", peer->name, "--pattern", peer->pattern});
      break;
    case Role::member:
      peer->name = "member" + std::to_string(n);
      peer->pattern = "t.*.*";
      argv.insert(argv.end(), {"--name", peer->name, "--pattern", peer->pattern, "--group", "workers"});
      break;
    case Role::responder:
      peer->name = "responder" + std::to_string(n);
      argv.insert(argv.end(), {"--name", peer->name, "--subject", "rpc.echo", "--group", "responders"});
      break;
    case Role::requester:
      peer->name = "requester" + std::to_string(n);
      argv.insert(argv.end(), {"--name", peer->name, "--subject", "rpc.echo", "--timeout-ms", "500"});
      break;
  }
  ChildProcess::Env env;
  if (hook != nullptr) env.emplace_back("BUS_TEST_PAUSE_AFTER_CLAIM", hook);
  peer->proc = ChildProcess::spawn(std::move(argv), env);
  if (!peer->proc.started()) {
    fail("cannot spawn " + peer->name);
    return nullptr;
  }
  if (hook != nullptr) {
    if (!peer->proc.wait_stopped(kReadyTimeout)) {
      fail(peer->name + " with BUS_TEST_PAUSE_AFTER_CLAIM=" + hook + " did not stop at its first publish: " +
           peer->proc.describe());
      return nullptr;
    }
  } else if (!peer->proc.wait_for_line(Stream::out, "ready", kReadyTimeout)) {
    fail(peer->name + " did not get ready: " + peer->proc.describe());
    return nullptr;
  }
  if (role == Role::pub) {
    peer->counter = torture::map_file<PubCounter>(torture::pub_counter_path(dir_, peer->pub_id), false);
  } else {
    peer->stats = torture::map_file<PeerStats>(torture::stats_path(dir_, peer->name), false);
  }
  if (peer->counter == nullptr && peer->stats == nullptr) {
    fail("cannot map the figures of " + peer->name);
    return nullptr;
  }
  peers_.push_back(std::move(peer));
  return peers_.back().get();
}

std::vector<Peer*> Torture::alive(Role role, bool include_transient) {
  std::vector<Peer*> out;
  for (auto& p : peers_) {
    if (p->alive && p->role == role && (include_transient || !p->transient)) out.push_back(p.get());
  }
  return out;
}

bool Torture::wait_reclaimed(pid_t pid, Clock::time_point since) {
  const std::string who = "(pid " + std::to_string(pid) + ")";
  auto line = broker_.wait_for_line_if(
      Stream::err,
      [&](std::string_view l) { return l.find(who) != std::string_view::npos && l.find("reclaimed") != std::string_view::npos; },
      kReapTimeout);
  const auto took = Clock::now() - since;
  if (!line) return fail("the broker did not reclaim killed client " + who + " within " + std::to_string(kReapTimeout.count()) + " s");
  fig_.kills_reclaimed++;
  fig_.sum_reclaim_ms += ms(took);
  fig_.max_reclaim_ms = std::max(fig_.max_reclaim_ms, ms(took));
  if (took > kReclaimLimit) {
    return fail("killed client " + who + " was reclaimed only after " + std::to_string(ms(took)) + " ms: " + *line);
  }
  return true;
}

Peer* Torture::kill_one_while_broker_away() {
  std::vector<Peer*> candidates;
  for (auto& p : peers_) {
    if (p->alive && !p->transient && p->role != Role::requester) candidates.push_back(p.get());
  }
  if (candidates.empty()) return nullptr;
  Peer* victim = candidates[static_cast<std::size_t>(uniform(0, static_cast<int>(candidates.size()) - 1))];
  note("  SIGKILL " + victim->name + " (pid " + std::to_string(victim->proc.pid()) + ") while the broker is away");
  fig_.killed_while_broker_away++;
  if (!victim->proc.kill(SIGKILL)) {
    fail(victim->name + " was already gone before its SIGKILL: " + victim->proc.describe());
    return nullptr;
  }
  const auto status = victim->proc.wait_exit(kReapTimeout);
  if (!status || status->signal != SIGKILL) {
    fail(victim->name + " did not die of its SIGKILL: " + victim->proc.describe());
    return nullptr;
  }
  victim->alive = false;
  return victim;
}

bool Torture::kill_and_reclaim(Peer& p) {
  const pid_t pid = p.proc.pid();
  if (!p.proc.kill(SIGKILL)) return fail(p.name + " was already gone before its SIGKILL: " + p.proc.describe());
  const auto t0 = Clock::now();
  const auto status = p.proc.wait_exit(kReapTimeout);
  if (!status || status->signal != SIGKILL) return fail(p.name + " did not die of its SIGKILL: " + p.proc.describe());
  p.alive = false;
  return wait_reclaimed(pid, t0);
}

// ----------------------------------------------------------------------------- invariants

bool Torture::check_counters(const std::string& context) {
  // Publishers first: a failed publish explains the gap its subscribers then report.
  for (auto& p : peers_) {
    if (p->counter != nullptr && p->counter->publish_errors.load() != 0) {
      return fail(context + ": " + p->name + " had " + std::to_string(p->counter->publish_errors.load()) +
                  " publish error(s): " + p->proc.describe());
    }
  }
  for (auto& p : peers_) {
    PeerStats* s = p->stats;
    if (s == nullptr) continue;
    const std::pair<const char*, std::uint64_t> checks[] = {
        {"order violations", s->order_violations.load()},   {"duplicates", s->duplicates.load()},
        {"corrupt messages", s->corrupt.load()},            {"uncounted gaps", s->uncovered.load()},
        {"libbus errors", s->api_errors.load()},            {"mismatched replies", s->req_mismatch.load()},
        {"overdue requests", s->req_overdue.load()},        {"request errors", s->req_error.load()},
        {"failed probes", s->probes_failed.load()},
    };
    for (const auto& [what, value] : checks) {
      if (value != 0) return fail(context + ": " + p->name + " counts " + std::to_string(value) + " " + what + ": " + p->proc.describe());
    }
  }
  return true;
}

bool Torture::reap_finished(const std::string& context) {
  broker_.pump();
  if (broker_.wait_exit(0ms)) return fail(context + ": busd died: " + broker_.describe());
  for (auto& p : peers_) {
    if (!p->alive) continue;
    if (auto st = p->proc.wait_exit(0ms)) {
      p->alive = false;
      if (!(p->transient && st->success())) return fail(context + ": " + p->name + " ended unexpectedly: " + p->proc.describe());
    }
  }
  return true;
}

bool Torture::wait_progress(const std::string& context, const Peer* stopped, bool broker_away, Clock::duration* took) {
  struct Need {
    Peer* peer;
    const Peer* pub = nullptr;  // for subscribers: new numbers from this publisher...
    std::uint32_t subject = 0;  // ...on this subject
    std::uint64_t above = 0;
  };
  std::vector<Need> needs;
  const auto pubs = alive(Role::pub);
  for (Peer* s : alive(Role::sub)) {
    if (s == stopped) continue;
    for (Peer* p : pubs) {
      if (p == stopped) continue;
      for (std::uint32_t i = 0; i < kMaxSubjects; ++i) {
        if (subject_matches(s->pattern, torture::pub_subject(p->pub_id, i))) {
          needs.push_back({s, p, i, p->counter->done[i].load()});
        }
      }
    }
  }
  const bool publishers_run = std::any_of(pubs.begin(), pubs.end(), [&](Peer* p) { return p != stopped; });
  if (publishers_run) {
    for (Peer* m : alive(Role::member)) {
      if (m != stopped) needs.push_back({m, nullptr, 0, m->stats->received.load()});
    }
  }
  const auto requesters = alive(Role::requester);
  const bool requests_run = std::any_of(requesters.begin(), requesters.end(), [&](Peer* r) { return r != stopped; });
  if (requests_run) {
    for (Peer* r : requesters) {
      if (r != stopped) needs.push_back({r, nullptr, 0, r->stats->req_ok.load()});
    }
    for (Peer* r : alive(Role::responder)) {
      if (r != stopped) needs.push_back({r, nullptr, 0, r->stats->received.load()});
    }
  }
  auto value = [](const Need& n) {
    if (n.pub != nullptr) return n.peer->stats->last[n.pub->pub_id][n.subject].load();
    if (n.peer->role == Role::requester) return n.peer->stats->req_ok.load();
    return n.peer->stats->received.load();
  };
  const auto t0 = Clock::now();
  const auto deadline = t0 + kProgressTimeout;
  while (true) {
    needs.erase(std::remove_if(needs.begin(), needs.end(), [&](const Need& n) { return value(n) > n.above; }), needs.end());
    if (needs.empty()) break;
    if (Clock::now() > deadline) {
      std::string what = context + ": traffic did not flow again within " + std::to_string(kProgressTimeout.count()) +
                         " s" + (broker_away ? " (no broker serving)" : "") + "; still waiting for:";
      for (const auto& n : needs) {
        what += "\n  " + n.peer->name + (n.pub != nullptr ? " <- " + torture::pub_subject(n.pub->pub_id, n.subject) +
                                                                 " (publisher at " + std::to_string(n.pub->counter->done[n.subject].load()) + ")"
                                                           : std::string()) +
                " stuck at " + std::to_string(value(n)) + " (needs > " + std::to_string(n.above) + ")";
      }
      return fail(what);
    }
    std::this_thread::sleep_for(5ms);
  }
  const auto elapsed = Clock::now() - t0;
  if (took != nullptr) *took = elapsed;
  return true;
}

bool Torture::check_health(const std::string& context, const Peer* stopped) {
  if (!reap_finished(context)) return false;
  if (!check_counters(context)) return false;
  // Nothing hangs: every running peer's loop turned recently (its waits are all bounded).
  const std::uint64_t now = monotonic_ns();
  for (auto& p : peers_) {
    if (!p->alive || p.get() == stopped || p->stats == nullptr) continue;
    const std::uint64_t beat = p->stats->heartbeat_ns.load();
    if (beat != 0 && now > beat && now - beat > static_cast<std::uint64_t>(std::chrono::nanoseconds(kHeartbeatLimit).count())) {
      return fail(context + ": " + p->name + " has not turned its loop for " + std::to_string((now - beat) / 1'000'000) +
                  " ms (a wait that does not return): " + p->proc.describe());
    }
  }
  Clock::duration took{};
  if (!wait_progress(context, stopped, false, &took)) return false;
  fig_.max_recovery_ms = std::max(fig_.max_recovery_ms, ms(took));
  return check_counters(context);
}

// --------------------------------------------------------------------------------- events

bool Torture::event_kill(Role role) {
  auto candidates = alive(role);
  if (candidates.empty()) return true;
  Peer* victim = candidates[static_cast<std::size_t>(uniform(0, static_cast<int>(candidates.size()) - 1))];
  note(std::string("SIGKILL ") + victim->name + " (pid " + std::to_string(victim->proc.pid()) + ")");
  if (!kill_and_reclaim(*victim)) return false;
  const std::string pattern = victim->pattern;
  Peer* replacement = spawn(role);
  if (replacement == nullptr) return false;
  note("  replaced by " + replacement->name + (pattern.empty() ? "" : " on " + replacement->pattern));
  return true;
}

bool Torture::event_stop_client() {
  std::vector<Peer*> candidates;
  for (auto& p : peers_) {
    if (p->alive && !p->transient) candidates.push_back(p.get());
  }
  if (candidates.empty()) return true;
  Peer* victim = candidates[static_cast<std::size_t>(uniform(0, static_cast<int>(candidates.size()) - 1))];
  const auto pause = std::chrono::milliseconds(uniform(50, 1500));
  note("SIGSTOP " + victim->name + " for " + std::to_string(pause.count()) + " ms");
  const auto t0 = Clock::now();
  if (!victim->proc.kill(SIGSTOP) || !victim->proc.wait_stopped(5s)) {
    return fail("cannot SIGSTOP " + victim->name + ": " + victim->proc.describe());
  }
  // Everyone else goes on while it is stopped (a publisher stopped mid-message holds up the
  // ring it claimed in until the unblock timeout, 1 s; after the skip that ring carries about
  // one more lap, enough for this check).
  if (!wait_progress("while " + victim->name + " is stopped", victim, false)) return false;
  std::this_thread::sleep_until(t0 + pause);
  if (!victim->proc.kill(SIGCONT)) return fail("cannot SIGCONT " + victim->name + ": " + victim->proc.describe());
  return true;
}

// `stopped`: a (hooked, transient) publisher that stays stopped mid-message across the restart.
bool Torture::event_kill_broker(const Peer* stopped) {
  const pid_t old_pid = broker_.pid();
  note("SIGKILL busd (pid " + std::to_string(old_pid) + ")" + (stopped != nullptr ? " while " + stopped->name + " is stopped" : ""));
  fig_.broker_restarts++;
  const auto t_kill = Clock::now();
  if (!broker_.kill(SIGKILL)) return fail("busd was gone before its SIGKILL: " + broker_.describe());
  if (!broker_.wait_exit(kReapTimeout)) return fail("busd did not die of SIGKILL");
  // No broker at all: routes already in use keep delivering, subscriptions keep receiving.
  if (uniform(0, 1) == 1) {
    note("  data path checked with no broker");
    if (!wait_progress("while no broker runs", stopped, true)) return false;
  }
  // A client may die while no broker runs: the new one must reclaim it as it adopts.
  Peer* died_meanwhile = uniform(0, 2) == 0 ? kill_one_while_broker_away() : nullptr;
  if (failed_) return false;
  std::map<Peer*, std::size_t> reconnects_before;
  for (auto& p : peers_) {
    if (p->alive && !p->transient) reconnects_before[p.get()] = count_lines_with(p->proc, "reconnected");
  }
  const auto t_spawn = Clock::now();
  if (!start_broker(true, old_pid)) return false;
  const auto t_adopted = Clock::now();
  if (died_meanwhile != nullptr) {
    if (!wait_reclaimed(died_meanwhile->proc.pid(), t_spawn)) return false;
    Peer* replacement = spawn(died_meanwhile->role);
    if (replacement == nullptr) return false;
    note("  replaced by " + replacement->name);
  }
  fig_.max_restart_ms = std::max(fig_.max_restart_ms, ms(t_adopted - t_spawn));
  note("  busd pid " + std::to_string(broker_.pid()) + " adopted the bus " + std::to_string(ms(t_adopted - t_kill)) +
       " ms after the kill, " + std::to_string(ms(t_adopted - t_spawn)) + " ms after its start");

  // Every client gets its slot back.
  const auto deadline = t_adopted + kReconnectTimeout;
  for (auto& [peer, before] : reconnects_before) {
    while (count_lines_with(peer->proc, "reconnected") <= before) {
      if (Clock::now() > deadline) {
        return fail(peer->name + " did not reconnect within " + std::to_string(kReconnectTimeout.count()) +
                    " s of the new broker's start: " + peer->proc.describe());
      }
      (void)peer->proc.wait_for_lines(Stream::out, peer->proc.lines(Stream::out).size() + 1, 20ms);
    }
  }
  fig_.max_reconnect_ms = std::max(fig_.max_reconnect_ms, ms(Clock::now() - t_adopted));
  // And the control path works through an old connection: a fresh subscribe.
  auto subs = alive(Role::sub);
  if (!subs.empty()) {
    Peer* prober = subs[static_cast<std::size_t>(uniform(0, static_cast<int>(subs.size()) - 1))];
    const std::size_t before = count_lines_with(prober->proc, "probe ");
    if (!prober->proc.kill(SIGUSR1)) return fail("cannot signal " + prober->name);
    const auto probe_deadline = Clock::now() + kReconnectTimeout;
    while (count_lines_with(prober->proc, "probe ") <= before) {
      if (Clock::now() > probe_deadline) return fail(prober->name + " did not answer its probe: " + prober->proc.describe());
      (void)prober->proc.wait_for_lines(Stream::out, prober->proc.lines(Stream::out).size() + 1, 20ms);
    }
    const auto lines = prober->proc.lines(Stream::out);
    const auto last_probe = std::find_if(lines.rbegin(), lines.rend(), [](const std::string& l) { return l.rfind("probe ", 0) == 0; });
    if (last_probe == lines.rend() || last_probe->rfind("probe ok", 0) != 0) {
      return fail("a subscribe through " + prober->name + "'s old connection failed after the restart: " + prober->proc.describe());
    }
    fig_.max_probe_ms = std::max(fig_.max_probe_ms, ms(Clock::now() - t_adopted));
  }
  // A writer stopped mid-message pins the ring it claimed in once skipped: that ring carries
  // one more lap and then drops (counted) until the writer resumes or dies (docs/design/ring.md,
  // Pins). So with one stopped, the traffic check waits until the caller has dealt with it.
  if (stopped != nullptr) return true;
  return check_traffic_after_restart();
}

bool Torture::check_traffic_after_restart() {
  if (!wait_progress("after the broker restart", nullptr, false)) return false;
  fig_.restarts_with_traffic++;
  return true;
}

bool Torture::event_stop_broker() {
  const auto pause = std::chrono::milliseconds(uniform(50, 1500));
  note("SIGSTOP busd for " + std::to_string(pause.count()) + " ms");
  const auto t0 = Clock::now();
  if (!broker_.kill(SIGSTOP) || !broker_.wait_stopped(5s)) return fail("cannot SIGSTOP busd: " + broker_.describe());
  if (!wait_progress("while busd is stopped", nullptr, true)) return false;
  // A client may die while the broker is stopped: it is reclaimed once the broker runs again.
  Peer* died_meanwhile = uniform(0, 2) == 0 ? kill_one_while_broker_away() : nullptr;
  if (failed_) return false;
  std::this_thread::sleep_until(t0 + pause);
  if (!broker_.kill(SIGCONT)) return fail("cannot SIGCONT busd: " + broker_.describe());
  if (died_meanwhile != nullptr) {
    if (!wait_reclaimed(died_meanwhile->proc.pid(), Clock::now())) return false;
    Peer* replacement = spawn(died_meanwhile->role);
    if (replacement == nullptr) return false;
    note("  replaced by " + replacement->name);
  }
  return true;
}

bool Torture::event_hooked_pub() {
  static const char* const kHooks[] = {"1", "2", "3"};
  const char* hook = kHooks[uniform(0, 2)];
  Peer* p = spawn(Role::pub, /*transient=*/true, hook);
  if (p == nullptr) return false;
  const auto pause = std::chrono::milliseconds(uniform(50, 1500));
  const bool kill = uniform(0, 1) == 1;
  const bool restart = uniform(0, 3) == 0;
  note("hooked " + p->name + " (BUS_TEST_PAUSE_AFTER_CLAIM=" + hook + ") stopped mid-message; " +
       (restart ? "busd restarted, then " : "") + (kill ? "SIGKILL" : "SIGCONT") + " after " +
       std::to_string(pause.count()) + " ms");
  const auto t0 = Clock::now();
  // The new broker adopts a client that is stopped mid-claim and cannot reconnect yet.
  if (restart && !event_kill_broker(p)) return false;
  std::this_thread::sleep_until(t0 + pause);
  if (kill) {
    fig_.hooked_killed++;
    if (!kill_and_reclaim(*p)) return false;
  } else {
    fig_.hooked_resumed++;
    if (!p->proc.kill(SIGCONT)) return fail("cannot SIGCONT " + p->name + ": " + p->proc.describe());
    if (restart && !p->proc.wait_for_line(Stream::out, "reconnected", kReconnectTimeout)) {
      return fail(p->name + ", stopped across the broker restart, did not reconnect once resumed: " + p->proc.describe());
    }
  }
  return !restart || check_traffic_after_restart();
}

// ------------------------------------------------------------------------------ the run

void Torture::run() {
  ASSERT_TRUE(start_broker(false, 0));
  for (int i = 0; i < kSubscribers; ++i) ASSERT_NE(spawn(Role::sub), nullptr);
  for (int i = 0; i < kMembers; ++i) ASSERT_NE(spawn(Role::member), nullptr);
  for (int i = 0; i < kResponders; ++i) ASSERT_NE(spawn(Role::responder), nullptr);
  ASSERT_NE(spawn(Role::requester), nullptr);
  for (int i = 0; i < kPublishers; ++i) ASSERT_NE(spawn(Role::pub), nullptr);
  ASSERT_TRUE(check_health("at start"));

  std::discrete_distribution<int> pick(kEventWeights.begin(), kEventWeights.end());
  const auto t_start = Clock::now();
  int done = 0;
  for (int e = 1; e <= events_ && !failed_; ++e) {
    const auto event = static_cast<Event>(pick(rng_));
    fig_.events[event_name(event)]++;
    note("#" + std::to_string(e) + " " + event_name(event));
    bool ok = false;
    switch (event) {
      case Event::kill_pub: ok = event_kill(Role::pub); break;
      case Event::kill_sub: ok = event_kill(Role::sub); break;
      case Event::kill_member: ok = event_kill(Role::member); break;
      case Event::kill_responder: ok = event_kill(Role::responder); break;
      case Event::stop_client: ok = event_stop_client(); break;
      case Event::kill_broker: ok = event_kill_broker(); break;
      case Event::stop_broker: ok = event_stop_broker(); break;
      case Event::hooked_pub: ok = event_hooked_pub(); break;
    }
    if (!ok) break;
    if (!check_health("after event #" + std::to_string(e) + " (" + event_name(event) + ")")) break;
    done = e;
    if (e % 50 == 0) {
      std::printf("torture: %d/%d events, %.0f s\n", e, events_, std::chrono::duration<double>(Clock::now() - t_start).count());
      std::fflush(stdout);
    }
  }
  EXPECT_EQ(done, events_) << "the run stopped at the first failed event";
  teardown_and_check();
  std::printf("torture: %d events in %.1f s\n", done, std::chrono::duration<double>(Clock::now() - t_start).count());
}

void Torture::teardown_and_check() {
  // Publishers first (their final counters are what the subscribers check against), then the
  // rest: each drains, checks and prints its final line.
  auto stop_all = [&](bool publishers) {
    for (auto& p : peers_) {
      if (p->alive && (p->role == Role::pub) == publishers) (void)p->proc.kill(SIGTERM);
    }
    for (auto& p : peers_) {
      if (!p->alive || (p->role == Role::pub) != publishers) continue;
      EXPECT_TRUE(exits_ok(p->proc, 30s)) << p->name;
      p->alive = false;
    }
  };
  // Nothing is stopped between events, unless the run ended inside one: resume everyone.
  (void)broker_.kill(SIGCONT);
  for (auto& p : peers_) {
    if (p->alive) (void)p->proc.kill(SIGCONT);
  }
  stop_all(true);
  stop_all(false);

  std::uint64_t checked = 0, lost = 0, missing = 0, survivors = 0, req_ok = 0, req_timeout = 0, req_nr = 0;
  for (auto& p : peers_) {
    if (p->stats != nullptr && (p->role == Role::sub || p->role == Role::member)) checked += p->stats->received.load();
    if (!p->proc.status() || !p->proc.status()->success()) continue;  // killed: its final line never came
    const auto lines = p->proc.lines(Stream::out);
    const auto final_line = std::find_if(lines.rbegin(), lines.rend(), [](const std::string& l) { return l.rfind("final ", 0) == 0; });
    if (final_line == lines.rend()) {
      ADD_FAILURE() << p->name << " printed no final figures: " << p->proc.describe();
      continue;
    }
    const auto f = parse_fields(*final_line);
    switch (p->role) {
      case Role::pub:
        EXPECT_EQ(field(f, "publish_errors"), 0u) << *final_line;
        break;
      case Role::sub:
        ++survivors;
        EXPECT_EQ(field(f, "order_violations"), 0u) << *final_line;
        EXPECT_EQ(field(f, "duplicates"), 0u) << *final_line;
        EXPECT_EQ(field(f, "corrupt"), 0u) << *final_line;
        EXPECT_EQ(field(f, "uncovered"), 0u) << *final_line;
        EXPECT_EQ(field(f, "api_errors"), 0u) << *final_line;
        EXPECT_LE(field(f, "missing"), field(f, "lost_counted")) << "losses nobody counted: " << *final_line << "\n" << p->proc.err();
        EXPECT_GT(field(f, "received"), 0u) << *final_line;
        lost += field(f, "lost_counted");
        missing += field(f, "missing");
        break;
      case Role::member:
        EXPECT_EQ(field(f, "order_violations"), 0u) << *final_line;
        EXPECT_EQ(field(f, "duplicates"), 0u) << *final_line;
        EXPECT_EQ(field(f, "corrupt"), 0u) << *final_line;
        EXPECT_EQ(field(f, "api_errors"), 0u) << *final_line;
        break;
      case Role::responder:
        EXPECT_EQ(field(f, "corrupt"), 0u) << *final_line;
        EXPECT_EQ(field(f, "api_errors"), 0u) << *final_line;
        break;
      case Role::requester:
        EXPECT_EQ(field(f, "mismatch"), 0u) << *final_line;
        EXPECT_EQ(field(f, "overdue"), 0u) << *final_line;
        EXPECT_EQ(field(f, "errors"), 0u) << *final_line;
        EXPECT_GT(field(f, "ok"), 0u) << *final_line;
        req_ok += field(f, "ok");
        req_timeout += field(f, "timeout");
        req_nr += field(f, "no_responders");
        break;
    }
  }
  (void)check_counters("at the end");  // the killed ones too, from their files
  EXPECT_EQ(survivors, static_cast<std::uint64_t>(kSubscribers));
  EXPECT_EQ(fig_.restarts_with_traffic, fig_.broker_restarts) << "traffic must go on after every broker restart";

  broker_.kill(SIGTERM);
  const auto st = broker_.wait_exit(10s);
  EXPECT_TRUE(st && st->success()) << "busd did not stop cleanly: " << broker_.describe();

  std::string kinds;
  for (const auto& [k, v] : fig_.events) kinds += " " + k + "=" + std::to_string(v);
  std::printf("torture figures: events:%s\n", kinds.c_str());
  std::printf("torture figures: messages checked=%llu, surviving subscribers: losses counted=%llu missing=%llu\n",
              static_cast<unsigned long long>(checked), static_cast<unsigned long long>(lost),
              static_cast<unsigned long long>(missing));
  std::printf("torture figures: kills reclaimed=%d (%d while the broker was away) max reclaim=%.1f ms mean=%.1f ms; "
              "hooked publishers killed=%d resumed=%d\n",
              fig_.kills_reclaimed, fig_.killed_while_broker_away, fig_.max_reclaim_ms,
              fig_.kills_reclaimed > 0 ? fig_.sum_reclaim_ms / fig_.kills_reclaimed : 0.0, fig_.hooked_killed, fig_.hooked_resumed);
  std::printf("torture figures: broker restarts=%d (traffic after each: %d) max restart=%.1f ms max reconnect=%.1f ms "
              "max probe=%.1f ms; max recovery after an event=%.1f ms\n",
              fig_.broker_restarts, fig_.restarts_with_traffic, fig_.max_restart_ms, fig_.max_reconnect_ms,
              fig_.max_probe_ms, fig_.max_recovery_ms);
  std::printf("torture figures: requests ok=%llu timeouts=%llu no_responders=%llu\n",
              static_cast<unsigned long long>(req_ok), static_cast<unsigned long long>(req_timeout),
              static_cast<unsigned long long>(req_nr));
  std::fflush(stdout);
  ::testing::Test::RecordProperty("events", static_cast<int>(events_));
  ::testing::Test::RecordProperty("messages_checked", std::to_string(checked));
  ::testing::Test::RecordProperty("losses_counted", std::to_string(lost));
  ::testing::Test::RecordProperty("max_reclaim_ms", std::to_string(fig_.max_reclaim_ms));
  ::testing::Test::RecordProperty("max_reconnect_ms", std::to_string(fig_.max_reconnect_ms));
}

TEST(Torture, should_keep_every_invariant_while_clients_and_the_broker_are_killed_and_stopped_at_random) {
  const int events = static_cast<int>(env_long("BUS_TORTURE_EVENTS", 200));
  std::uint64_t seed = static_cast<std::uint64_t>(env_long("BUS_TORTURE_SEED", 0));
  if (seed == 0) seed = std::random_device{}() | 1u;
  std::printf("torture: seed=%llu events=%d (replay: BUS_TORTURE_SEED=%llu BUS_TORTURE_EVENTS=%d)\n",
              static_cast<unsigned long long>(seed), events, static_cast<unsigned long long>(seed), events);
  std::fflush(stdout);
  ::testing::Test::RecordProperty("seed", std::to_string(seed));
  ASSERT_GT(events, 0);
  Torture torture(seed, events);
  torture.run();
}

}  // namespace
}  // namespace bus::test

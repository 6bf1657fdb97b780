// reqrep_mp_test.cpp — queue groups and request/reply across real processes: busd, the bus CLI,
// test_peer (modes qsub, reply, req, sub, pub) and the test process itself as a client.
//
// Semantics reference, sections 2-3: each message matching a queue group goes to exactly one
// member (plain subscribers all get their copy); a group is identified by its name alone, so
// members on different patterns are merged; a request is a publish with a reply subject, the
// timeout is client-side, and a request nobody subscribes to fails at once with "no responders".
//
// Every test runs its own broker on its own bus name, so ctest may run them in parallel. Waits
// are generous (they only cost time when something is broken); the only speed assertions are
// the documented ones (no responders comes back at once, a timeout is honoured), with bounds far
// from the expected values.
#include <gtest/gtest.h>
#include <signal.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <future>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "bus/bus.hpp"
#include "process_harness.hpp"

namespace bus::test {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

// Behaviour tests: small rings.
const std::vector<std::string> kSmallBroker = {"--ring-bytes", "1MiB", "--max-payload", "16KiB",
                                               "--max-subscriptions", "32", "--max-fanout", "32"};
// Queue-group tests: rings that hold a whole run (3000 short messages are ~200 KiB), so nothing is
// dropped as a slow consumer even if a member is descheduled for a while.
const std::vector<std::string> kBigRings = {"--ring-bytes", "4MiB", "--max-payload", "16KiB",
                                            "--max-subscriptions", "32", "--max-fanout", "32"};
constexpr auto kStartTimeout = 10s;  // a process to come up and subscribe, on a loaded machine
constexpr auto kExitTimeout = 20s;   // a process to finish work that takes well under a second
// A qsub member exits once nothing arrived for this long. Long enough that a loaded machine
// (ctest -j2 on 2 cores) never starves a run in progress for that long.
constexpr const char* kMemberIdleMs = "3000";

// A test_peer in a mode that prints "ready" once subscribed, returned once it did.
ChildProcess start_peer(std::vector<std::string> args) {
  auto p = spawn_peer(std::move(args));
  EXPECT_TRUE(p.wait_for_line(Stream::out, "ready", kStartTimeout)) << p.describe();
  return p;
}

ChildProcess start_member(const std::string& bus, const std::string& pattern, const std::string& group) {
  return start_peer({"qsub", bus, pattern, group, kMemberIdleMs});
}

// Payload lines a test_peer printed after its "ready" line.
std::vector<std::string> payloads(const ChildProcess& p) {
  auto lines = p.lines(Stream::out);
  if (!lines.empty() && lines.front() == "ready") lines.erase(lines.begin());
  return lines;
}

std::size_t payload_count(ChildProcess& p) {
  p.pump();
  const auto n = p.lines(Stream::out).size();
  return n == 0 ? 0 : n - 1;  // minus "ready"
}

// How often each payload was received, over all of `lists`.
std::map<std::string, int> tally(const std::vector<std::vector<std::string>>& lists) {
  std::map<std::string, int> counts;
  for (const auto& list : lists) {
    for (const auto& s : list) ++counts[s];
  }
  return counts;
}

std::vector<std::string> duplicates(const std::map<std::string, int>& counts) {
  std::vector<std::string> out;
  for (const auto& [s, n] : counts) {
    if (n > 1) out.push_back(s + " x" + std::to_string(n));
  }
  return out;
}

std::string join(const std::vector<std::string>& items, std::size_t max = 20) {
  std::string out;
  for (std::size_t i = 0; i < items.size() && i < max; ++i) out += (i ? ", " : "") + items[i];
  if (items.size() > max) out += ", ... (" + std::to_string(items.size()) + " in all)";
  return out;
}

// busd's log line for a reclaimed client: "client N (pid P) <reason>: reclaimed its slot, ...".
bool reclaim_logged(BrokerProcess& broker, pid_t pid) {
  const std::string& log = broker.log();
  const std::string needle = "(pid " + std::to_string(pid) + ")";
  std::size_t pos = 0;
  while ((pos = log.find(needle, pos)) != std::string::npos) {
    const auto eol = log.find('\n', pos);
    if (log.substr(pos, eol == std::string::npos ? std::string::npos : eol - pos).find("reclaimed its slot") !=
        std::string::npos) {
      return true;
    }
    pos += needle.size();
  }
  return false;
}

bool wait_reclaim(BrokerProcess& broker, pid_t pid, std::chrono::milliseconds timeout) {
  const auto deadline = Clock::now() + timeout;
  while (!reclaim_logged(broker, pid)) {
    if (Clock::now() > deadline) return false;
    std::this_thread::sleep_for(5ms);
  }
  return true;
}

double ms_since(Clock::time_point t0) {
  return std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
}

std::string header_or(const Message& m, std::string_view key, std::string fallback = "<none>") {
  auto h = m.header();
  if (!h) return "<bad headers: " + h.error().message + ">";
  auto v = h->get(key);
  return v ? std::string(*v) : fallback;
}

std::string describe(const Error& e) { return std::string(errc_name(e.code)) + ": " + e.message; }

// Does `bus VERB` exist yet? (`bus req` / `bus reply` are being written concurrently.)
bool cli_has_verb(const std::string& verb) {
  auto p = spawn_cli({verb, "--help"});
  const auto status = p.wait_exit(kExitTimeout);
  if (!status) return false;
  return p.err().find("unknown verb") == std::string::npos;
}

// =================================================================================== queue groups

TEST(QueueGroupMp, should_give_each_message_to_exactly_one_member_and_every_message_to_a_plain_subscriber) {
  const std::string bus = unique_bus_name();
  BrokerProcess broker(bus, kBigRings);
  ASSERT_TRUE(broker.ready()) << broker.process().describe();
  constexpr std::size_t kCount = 3000;

  std::vector<ChildProcess> members;
  for (int i = 0; i < 3; ++i) members.push_back(start_member(bus, "jobs", "workers"));
  auto plain = start_peer({"sub", bus, "jobs", std::to_string(kCount), "20000"});

  // 100 us between messages: the members keep up easily (and the 4 MiB rings could hold the whole
  // run anyway), so no message is lost as a slow consumer's.
  auto pub = spawn_peer({"pub", bus, "jobs", std::to_string(kCount), "100", "m"});
  ASSERT_TRUE(exits_ok(pub));
  ASSERT_TRUE(exits_ok(plain));
  EXPECT_EQ(payloads(plain), numbered("m", kCount)) << "the plain subscriber must get every message, in order";

  std::vector<std::vector<std::string>> got;
  for (auto& m : members) {
    ASSERT_TRUE(exits_ok(m)) << "members exit once idle for " << kMemberIdleMs << " ms";
    got.push_back(payloads(m));
  }
  const auto counts = tally(got);
  EXPECT_TRUE(duplicates(counts).empty()) << "delivered to more than one member: " << join(duplicates(counts));
  std::vector<std::string> missing;
  for (const auto& s : numbered("m", kCount)) {
    if (!counts.contains(s)) missing.push_back(s);
  }
  EXPECT_TRUE(missing.empty()) << "delivered to no member: " << join(missing);
  EXPECT_EQ(counts.size(), kCount);
  std::size_t total = 0;
  for (std::size_t i = 0; i < got.size(); ++i) {
    total += got[i].size();
    // A fair share: at least half of an even split.
    EXPECT_GE(got[i].size(), kCount / 3 / 2) << "member " << i << " got " << got[i].size() << " of " << kCount;
    // Each member still sees its share in publish order (one publisher thread).
    std::vector<std::string> sorted = got[i];
    std::sort(sorted.begin(), sorted.end(), [](const std::string& a, const std::string& b) {
      return std::stoul(a.substr(1)) < std::stoul(b.substr(1));
    });
    EXPECT_EQ(got[i], sorted) << "member " << i << " received its messages out of publish order";
  }
  EXPECT_EQ(total, kCount);
  std::printf("[ info     ] shares: %zu / %zu / %zu of %zu\n", got[0].size(), got[1].size(), got[2].size(), kCount);
}

TEST(QueueGroupMp, should_lose_only_the_dead_members_in_flight_messages_when_a_member_is_killed) {
  const std::string bus = unique_bus_name();
  BrokerProcess broker(bus, kBigRings);
  ASSERT_TRUE(broker.ready()) << broker.process().describe();
  constexpr std::size_t kMinCount = 3000;
  constexpr std::size_t kKillAfter = 200;    // victim's lines before we SIGKILL it
  constexpr std::size_t kAfterReclaim = 300;  // messages to publish after the reclaim was logged
  constexpr std::size_t kMaxLoss = 50;

  std::vector<ChildProcess> members;
  for (int i = 0; i < 3; ++i) members.push_back(start_member(bus, "work", "workers"));
  ChildProcess& victim = members[0];
  const pid_t victim_pid = victim.pid();

  // The test process publishes, so it knows exactly which messages started after busd logged the
  // reclaim: those must reach the survivors (the route no longer names the dead ring).
  auto conn = Connection::connect(bus);
  ASSERT_TRUE(conn) << conn.error().message;
  std::size_t published = 0;
  std::size_t killed_at = 0;     // messages published when SIGKILL was sent
  std::size_t reclaimed_at = 0;  // messages published when the reclaim line was seen
  const auto hard_deadline = Clock::now() + 60s;
  while (published < kMinCount || reclaimed_at == 0 || published - reclaimed_at < kAfterReclaim) {
    ASSERT_TRUE(Clock::now() < hard_deadline) << "published " << published << ", killed at " << killed_at
                                           << ", reclaim seen at " << reclaimed_at << "\n" << broker.log();
    ++published;
    auto st = conn->publish("work", "m" + std::to_string(published));
    ASSERT_TRUE(st) << st.error().message;
    std::this_thread::sleep_for(500us);
    if (killed_at == 0) {
      if (payload_count(victim) >= kKillAfter) {
        ASSERT_TRUE(victim.kill(SIGKILL));
        killed_at = published;
      }
    } else if (reclaimed_at == 0 && reclaim_logged(broker, victim_pid)) {
      reclaimed_at = published;
    }
    if ((published & 63) == 0) {
      for (auto& m : members) m.pump();  // keep their pipes drained
    }
  }
  const auto victim_status = victim.wait_exit(kExitTimeout);
  ASSERT_TRUE(victim_status && victim_status->signal == SIGKILL) << victim.describe();
  std::vector<std::vector<std::string>> got;
  got.push_back(payloads(victim));
  for (std::size_t i = 1; i < members.size(); ++i) {
    ASSERT_TRUE(exits_ok(members[i]));
    got.push_back(payloads(members[i]));
  }

  const auto counts = tally(got);
  EXPECT_TRUE(duplicates(counts).empty()) << "delivered to more than one member: " << join(duplicates(counts));

  // After the reclaim: every message reaches one of the two survivors.
  std::set<std::string> survivors;
  for (std::size_t i = 1; i < got.size(); ++i) survivors.insert(got[i].begin(), got[i].end());
  std::vector<std::string> missed_after_reclaim;
  for (std::size_t n = reclaimed_at + 1; n <= published; ++n) {
    if (!survivors.contains("m" + std::to_string(n))) missed_after_reclaim.push_back("m" + std::to_string(n));
  }
  EXPECT_TRUE(missed_after_reclaim.empty())
      << "published after busd reclaimed the dead member, yet not received by a survivor: "
      << join(missed_after_reclaim);

  // Messages the route gave to the victim that it had not printed when it died are lost: the
  // ones already in its ring (and the one it was printing), plus those published between its
  // death and busd's reclaim, while the route still named its ring. NATS behaves the same: what
  // the server already wrote towards a dead client is gone, nothing redelivers it to the group.
  // So every lost message was published after the victim's last printed one and before the
  // reclaim; with 500 us between publishes and a reclaim that takes milliseconds, few.
  std::size_t victim_last = 0;
  for (const auto& s : got[0]) victim_last = std::max<std::size_t>(victim_last, std::stoul(s.substr(1)));
  std::vector<std::string> lost;
  std::vector<std::string> lost_outside_window;
  for (std::size_t n = 1; n <= published; ++n) {
    const std::string s = "m" + std::to_string(n);
    if (counts.contains(s)) continue;
    lost.push_back(s);
    if (n <= victim_last || n > reclaimed_at) lost_outside_window.push_back(s);
  }
  std::printf("[ info     ] published %zu, victim killed at %zu after %zu lines (last m%zu), reclaim seen at %zu, "
              "lost %zu, survivors %zu + %zu\n",
              published, killed_at, got[0].size(), victim_last, reclaimed_at, lost.size(), got[1].size(),
              got[2].size());
  EXPECT_LE(lost.size(), kMaxLoss) << "lost: " << join(lost);
  EXPECT_TRUE(lost_outside_window.empty())
      << "lost messages that the dead member could not have held (before its last printed one or "
         "after the reclaim): "
      << join(lost_outside_window);
  EXPECT_GE(got[1].size() + got[2].size() + got[0].size() + kMaxLoss, published);
  EXPECT_GE(got[0].size(), kKillAfter);
}

TEST(QueueGroupMp, should_merge_members_on_different_patterns_into_one_group_by_name) {
  const std::string bus = unique_bus_name();
  BrokerProcess broker(bus, kSmallBroker);
  ASSERT_TRUE(broker.ready()) << broker.process().describe();
  constexpr std::size_t kCount = 200;

  auto one = start_member(bus, "a.*", "q");
  auto rest = start_member(bus, "a.>", "q");
  auto conn = Connection::connect(bus);
  ASSERT_TRUE(conn) << conn.error().message;
  auto plain = conn->subscribe("a.>");  // a plain subscription still gets everything
  ASSERT_TRUE(plain) << plain.error().message;

  for (std::size_t i = 1; i <= kCount; ++i) {
    ASSERT_TRUE(conn->publish("a.b", "ab" + std::to_string(i)));
    if (i % 2 == 0) {
      ASSERT_TRUE(conn->publish("a.b.c", "abc" + std::to_string(i / 2)));  // only a.> matches
    }
  }
  ASSERT_TRUE(exits_ok(one));
  ASSERT_TRUE(exits_ok(rest));
  const auto got_one = payloads(one);
  const auto got_rest = payloads(rest);

  const auto counts = tally({got_one, got_rest});
  EXPECT_TRUE(duplicates(counts).empty())
      << "a message on a.b reached both members of group q (NATS merges a group by name): "
      << join(duplicates(counts));
  for (const auto& s : numbered("ab", kCount)) EXPECT_EQ(counts.count(s), 1u) << s << " reached no member";
  for (const auto& s : numbered("abc", kCount / 2)) {
    EXPECT_NE(std::find(got_rest.begin(), got_rest.end(), s), got_rest.end()) << s << " missing on a.>";
  }
  for (const auto& s : got_one) EXPECT_EQ(s.rfind("abc", 0), std::string::npos) << "a.* got " << s;
  EXPECT_EQ(got_one.size() + got_rest.size(), kCount + kCount / 2);
  std::printf("[ info     ] a.* member %zu, a.> member %zu\n", got_one.size(), got_rest.size());

  std::size_t plain_got = 0;
  auto polled = plain->try_poll([&](const MessageView&) { ++plain_got; }, 10 * kCount);
  ASSERT_TRUE(polled) << polled.error().message;
  EXPECT_EQ(plain_got, kCount + kCount / 2);
}

// ================================================================================== request/reply

TEST(RequestReplyMp, should_answer_sequential_requests_with_headers_from_another_process) {
  const std::string bus = unique_bus_name();
  BrokerProcess broker(bus, kSmallBroker);
  ASSERT_TRUE(broker.ready()) << broker.process().describe();
  auto responder = start_peer({"reply", bus, "svc.echo"});
  auto conn = Connection::connect(bus);
  ASSERT_TRUE(conn) << conn.error().message;

  const auto t0 = Clock::now();
  for (int i = 0; i < 200; ++i) {
    Headers h;
    ASSERT_TRUE(h.add("X-Req", "req-" + std::to_string(i)));
    ASSERT_TRUE(h.add("X-Other", "ignored"));
    auto reply = conn->request("svc.echo", "body-" + std::to_string(i), 5s, &h);
    ASSERT_TRUE(reply) << "request " << i << ": " << describe(reply.error()) << "\n" << responder.describe();
    EXPECT_EQ(reply->data, "re:body-" + std::to_string(i));
    EXPECT_EQ(header_or(*reply, "X-Req"), "req-" + std::to_string(i));
    EXPECT_EQ(header_or(*reply, "X-Responder"), std::to_string(responder.pid()));
    EXPECT_EQ(header_or(*reply, "X-Other"), "<none>") << "the responder copies X-Req only";
  }
  std::printf("[ info     ] 200 sequential requests in %.1f ms\n", ms_since(t0));

  // Both sides in other processes: test_peer req -> test_peer reply.
  auto req = spawn_peer({"req", bus, "svc.echo", "hello", "5000"});
  ASSERT_TRUE(exits_ok(req));
  EXPECT_EQ(req.lines(Stream::out), std::vector<std::string>{"re:hello"});
}

TEST(RequestReplyMp, should_serve_requests_from_other_processes_with_an_in_process_handler) {
  const std::string bus = unique_bus_name();
  BrokerProcess broker(bus, kSmallBroker);
  ASSERT_TRUE(broker.ready()) << broker.process().describe();
  auto conn = Connection::connect(bus);
  ASSERT_TRUE(conn) << conn.error().message;
  auto sub = conn->subscribe("svc.local", [](const MessageView& m) {
    Headers h;
    (void)h.add("Served-By", "handler");
    (void)m.respond("local:" + std::string(m.data), h);
  });
  ASSERT_TRUE(sub) << sub.error().message;

  std::vector<ChildProcess> reqs;
  for (int i = 0; i < 3; ++i) reqs.push_back(spawn_peer({"req", bus, "svc.local", "r" + std::to_string(i), "5000"}));
  for (int i = 0; i < 3; ++i) {
    ASSERT_TRUE(exits_ok(reqs[i]));
    EXPECT_EQ(reqs[i].lines(Stream::out), std::vector<std::string>{"local:r" + std::to_string(i)});
  }
}

TEST(RequestReplyMp, should_complete_500_async_requests_in_flight_across_a_queue_group_of_responders) {
  const std::string bus = unique_bus_name();
  BrokerProcess broker(bus, kSmallBroker);
  ASSERT_TRUE(broker.ready()) << broker.process().describe();
  auto r1 = start_peer({"reply", bus, "svc.pool", "pool"});
  auto r2 = start_peer({"reply", bus, "svc.pool", "pool"});
  auto conn = Connection::connect(bus);
  ASSERT_TRUE(conn) << conn.error().message;
  constexpr int kRequests = 500;

  const auto t0 = Clock::now();
  std::vector<std::future<Result<Message>>> futures;
  futures.reserve(kRequests);
  for (int i = 0; i < kRequests; ++i) {
    Headers h;
    ASSERT_TRUE(h.add("X-Req", std::to_string(i)));
    futures.push_back(conn->request_async("svc.pool", "b" + std::to_string(i), 20s, &h));
  }
  std::map<std::string, int> served;
  for (int i = 0; i < kRequests; ++i) {
    ASSERT_EQ(futures[i].wait_for(30s), std::future_status::ready) << "request " << i << " never completed";
    auto reply = futures[i].get();
    ASSERT_TRUE(reply) << "request " << i << ": " << describe(reply.error());
    EXPECT_EQ(reply->data, "re:b" + std::to_string(i));
    EXPECT_EQ(header_or(*reply, "X-Req"), std::to_string(i));
    ++served[header_or(*reply, "X-Responder")];
  }
  std::printf("[ info     ] %d async requests in %.1f ms; served: %d by %d, %d by %d\n", kRequests, ms_since(t0),
              served[std::to_string(r1.pid())], r1.pid(), served[std::to_string(r2.pid())], r2.pid());
  EXPECT_EQ(served.size(), 2u) << "responders other than the two members answered";
  EXPECT_GT(served[std::to_string(r1.pid())], 0);
  EXPECT_GT(served[std::to_string(r2.pid())], 0);
  EXPECT_EQ(served[std::to_string(r1.pid())] + served[std::to_string(r2.pid())], kRequests);
}

TEST(RequestReplyMp, should_fail_with_no_responders_at_once_when_nobody_subscribes) {
  const std::string bus = unique_bus_name();
  BrokerProcess broker(bus, kSmallBroker);
  ASSERT_TRUE(broker.ready()) << broker.process().describe();
  auto conn = Connection::connect(bus);
  ASSERT_TRUE(conn) << conn.error().message;

  // The first request also creates the connection's inbox subscription and resolves the route
  // (two broker round trips): bounded loosely. Later ones must come back well under 50 ms,
  // however long the timeout.
  auto t0 = Clock::now();
  auto first = conn->request("nobody.home", "x", 5s);
  const double first_ms = ms_since(t0);
  ASSERT_FALSE(first);
  EXPECT_EQ(first.error().code, Errc::no_responders) << describe(first.error());
  EXPECT_LT(first_ms, 1000.0);
  double worst_ms = 0;
  for (int i = 0; i < 10; ++i) {
    t0 = Clock::now();
    auto r = conn->request(i % 2 ? "nobody.home" : "nobody.else." + std::to_string(i), "x", 5s);
    const double ms = ms_since(t0);
    worst_ms = std::max(worst_ms, ms);
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error().code, Errc::no_responders) << describe(r.error());
    EXPECT_LT(ms, 50.0) << "request " << i;
  }
  t0 = Clock::now();
  auto fut = conn->request_async("nobody.home", "x", 5s);
  ASSERT_EQ(fut.wait_for(1s), std::future_status::ready);
  auto async_result = fut.get();
  const double async_ms = ms_since(t0);
  ASSERT_FALSE(async_result);
  EXPECT_EQ(async_result.error().code, Errc::no_responders) << describe(async_result.error());
  EXPECT_LT(async_ms, 50.0);
  std::printf("[ info     ] no responders: first %.2f ms, worst of 10 %.2f ms, async %.2f ms\n", first_ms, worst_ms,
              async_ms);

  auto peer = spawn_peer({"req", bus, "nobody.home", "x", "5000"});
  ASSERT_TRUE(exits_with(peer, 5, 4s)) << "test_peer req must not wait for its 5 s timeout";
  EXPECT_EQ(peer.lines(Stream::out), std::vector<std::string>{"no_responders"});

  if (!cli_has_verb("req")) {
    GTEST_SKIP() << "`bus req` does not exist yet; the library part passed";
  }
  t0 = Clock::now();
  auto cli = spawn_cli({"req", "--bus", bus, "nobody.home", "x"});
  const auto status = cli.wait_exit(kExitTimeout);
  ASSERT_TRUE(status) << cli.describe();
  EXPECT_FALSE(status->success()) << cli.describe();
  EXPECT_TRUE(status->exited) << cli.describe();
  EXPECT_NE(cli.err().find("no responders"), std::string::npos) << cli.describe();
  EXPECT_LT(ms_since(t0), 4000.0) << "bus req waited for its timeout instead of failing at once";
}

TEST(RequestReplyMp, should_honour_the_timeout_when_a_subscriber_never_replies) {
  const std::string bus = unique_bus_name();
  BrokerProcess broker(bus, kSmallBroker);
  ASSERT_TRUE(broker.ready()) << broker.process().describe();
  auto silent = start_peer({"sub", bus, "svc.silent", "1000", "60000"});
  auto conn = Connection::connect(bus);
  ASSERT_TRUE(conn) << conn.error().message;

  auto t0 = Clock::now();
  auto r = conn->request("svc.silent", "sync", 300ms);
  const double sync_ms = ms_since(t0);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, Errc::timeout) << describe(r.error());
  EXPECT_GE(sync_ms, 300.0);
  EXPECT_LT(sync_ms, 3000.0);

  t0 = Clock::now();
  auto fut = conn->request_async("svc.silent", "async", 300ms);
  ASSERT_EQ(fut.wait_for(10s), std::future_status::ready) << "async request never completed";
  auto ar = fut.get();
  const double async_ms = ms_since(t0);
  ASSERT_FALSE(ar);
  EXPECT_EQ(ar.error().code, Errc::timeout) << describe(ar.error());
  EXPECT_GE(async_ms, 300.0);
  EXPECT_LT(async_ms, 3000.0);
  std::printf("[ info     ] 300 ms timeout: sync %.1f ms, async %.1f ms\n", sync_ms, async_ms);

  auto peer = spawn_peer({"req", bus, "svc.silent", "peer", "300"});
  ASSERT_TRUE(exits_with(peer, 3));
  EXPECT_EQ(peer.lines(Stream::out), std::vector<std::string>{"timeout"});

  // The requests did reach the subscriber: this was a timeout, not "no responders".
  ASSERT_TRUE(silent.wait_for_lines(Stream::out, 4, kStartTimeout)) << silent.describe();
  EXPECT_EQ(payloads(silent), (std::vector<std::string>{"sync", "async", "peer"}));
}

TEST(RequestReplyMp, should_time_out_a_request_whose_responder_stops_and_dies_then_work_with_a_new_one) {
  const std::string bus = unique_bus_name();
  BrokerProcess broker(bus, kSmallBroker);
  ASSERT_TRUE(broker.ready()) << broker.process().describe();
  auto stuck = start_peer({"reply", bus, "svc.flaky"});
  auto conn = Connection::connect(bus);
  ASSERT_TRUE(conn) << conn.error().message;
  {
    auto warm = conn->request("svc.flaky", "warm", 5s);  // it does answer while running
    ASSERT_TRUE(warm) << describe(warm.error());
    EXPECT_EQ(warm->data, "re:warm");
  }

  // Stopped, it still holds a matching subscription: the requests are delivered into its ring
  // and never answered.
  ASSERT_TRUE(stuck.kill(SIGSTOP));
  ASSERT_TRUE(stuck.wait_stopped(5s)) << stuck.describe();
  const auto t0 = Clock::now();
  auto sync_pending = std::async(std::launch::async, [&] { return conn->request("svc.flaky", "lost-sync", 1s); });
  auto async_pending = conn->request_async("svc.flaky", "lost-async", 1s);
  std::this_thread::sleep_for(200ms);  // both requests are out
  ASSERT_TRUE(stuck.kill(SIGKILL));
  const auto status = stuck.wait_exit(kExitTimeout);
  ASSERT_TRUE(status && status->signal == SIGKILL) << stuck.describe();

  ASSERT_EQ(sync_pending.wait_for(10s), std::future_status::ready) << "sync request hangs after its responder died";
  ASSERT_EQ(async_pending.wait_for(10s), std::future_status::ready) << "async request hangs after its responder died";
  const double elapsed_ms = ms_since(t0);
  auto sync_result = sync_pending.get();
  auto async_result = async_pending.get();
  ASSERT_FALSE(sync_result);
  EXPECT_EQ(sync_result.error().code, Errc::timeout) << describe(sync_result.error());
  ASSERT_FALSE(async_result);
  EXPECT_EQ(async_result.error().code, Errc::timeout) << describe(async_result.error());
  EXPECT_GE(elapsed_ms, 1000.0);
  EXPECT_LT(elapsed_ms, 5000.0);

  // A fresh responder takes over once busd dropped the dead one's subscription.
  ASSERT_TRUE(wait_reclaim(broker, stuck.pid(), 5s)) << broker.log();
  auto fresh = start_peer({"reply", bus, "svc.flaky"});
  auto reply = conn->request("svc.flaky", "again", 5s);
  ASSERT_TRUE(reply) << describe(reply.error()) << "\n" << fresh.describe();
  EXPECT_EQ(reply->data, "re:again");
  EXPECT_EQ(header_or(*reply, "X-Responder"), std::to_string(fresh.pid()));
}

// ========================================================================== bus reply / bus req

TEST(RequestReplyMp, should_answer_bus_req_with_bus_reply) {
  if (!cli_has_verb("reply") || !cli_has_verb("req")) {
    GTEST_SKIP() << "`bus reply` / `bus req` do not exist yet";
  }
  const std::string bus = unique_bus_name();
  BrokerProcess broker(bus, kSmallBroker);
  ASSERT_TRUE(broker.ready()) << broker.process().describe();
  auto replier = spawn_cli({"reply", "--bus", bus, "svc.ping", "pong", "--count", "3"});

  // We do not rely on the wording of its "listening" line: a `bus req` that comes before the
  // subscription exists fails with "no responders" without reaching the replier (so it does not
  // use up one of its three answers); retry those.
  int answered = 0;
  const auto deadline = Clock::now() + 20s;
  while (answered < 3) {
    ASSERT_TRUE(Clock::now() < deadline) << replier.describe();
    auto req = spawn_cli({"req", "--bus", bus, "svc.ping", "ping"});
    const auto status = req.wait_exit(kExitTimeout);
    ASSERT_TRUE(status) << req.describe();
    if (status->success()) {
      EXPECT_NE(req.out().find("pong"), std::string::npos) << req.describe();
      ++answered;
      continue;
    }
    ASSERT_EQ(answered, 0) << "bus req failed after the replier was up: " << req.describe();
    ASSERT_NE(req.err().find("no responders"), std::string::npos) << req.describe();
    replier.pump();
    ASSERT_FALSE(replier.exited()) << replier.describe();
    std::this_thread::sleep_for(20ms);
  }
  ASSERT_TRUE(exits_ok(replier)) << "bus reply --count 3 must exit after three answers";
}

}  // namespace
}  // namespace bus::test

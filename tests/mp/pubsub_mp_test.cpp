// pubsub_mp_test.cpp — publish/subscribe across real processes: busd, the bus CLI, test_peer
// and the test process itself as a client.
//
// Every test runs its own broker on its own bus name, so ctest may run them in parallel. Waits
// are generous (they only cost time when something is broken) and nothing asserts on speed,
// except the documented 1 s bound on reclaiming a dead client.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "bus/bus.hpp"
#include "process_harness.hpp"

namespace bus::test {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

// Small brokers: the tests are about behaviour, not capacity, and rings are touched memory.
const std::vector<std::string> kSmallBroker = {"--ring-bytes", "256KiB", "--max-payload", "16KiB",
                                               "--max-subscriptions", "32", "--max-fanout", "32"};
constexpr auto kStartTimeout = 10s;  // a process to come up and subscribe, on a loaded machine
constexpr auto kExitTimeout = 20s;   // a process to finish work that takes well under a second

// `bus sub --bus B PATTERN --raw --count N`, returned once it printed "Listening on".
ChildProcess start_cli_sub(const std::string& bus, const std::string& pattern, std::size_t count) {
  auto sub = spawn_cli({"sub", "--bus", bus, pattern, "--raw", "--count", std::to_string(count)});
  EXPECT_TRUE(sub.wait_for_line(Stream::err, "Listening on [" + pattern + "]", kStartTimeout))
      << sub.describe();
  return sub;
}

// `test_peer sub BUS PATTERN COUNT TIMEOUT_MS`, returned once it printed "ready".
ChildProcess start_peer_sub(const std::string& bus, const std::string& pattern, std::size_t count) {
  auto sub = spawn_peer({"sub", bus, pattern, std::to_string(count), "10000"});
  EXPECT_TRUE(sub.wait_for_line(Stream::out, "ready", kStartTimeout)) << sub.describe();
  return sub;
}

::testing::AssertionResult exits_nonzero(ChildProcess& p) {
  const auto status = p.wait_exit(kExitTimeout);
  if (!status) return ::testing::AssertionFailure() << "did not exit in time: " << p.describe();
  if (!status->exited || status->code == 0) {
    return ::testing::AssertionFailure() << "expected a non-zero exit: " << p.describe();
  }
  return ::testing::AssertionSuccess();
}

// Payload lines a test_peer sub printed after its "ready" line.
std::vector<std::string> peer_payloads(const ChildProcess& p) {
  auto lines = p.lines(Stream::out);
  if (!lines.empty() && lines.front() == "ready") lines.erase(lines.begin());
  return lines;
}

bool segment_exists(const std::string& bus) {
  struct stat st {};
  return ::stat(segment_path(bus).c_str(), &st) == 0;
}

// --------------------------------------------------------------------------------- fan-out

TEST(PubSubMp, should_deliver_every_message_in_order_to_each_of_three_subscriber_processes) {
  const std::string bus = unique_bus_name();
  BrokerProcess broker(bus, kSmallBroker);
  ASSERT_TRUE(broker.ready()) << broker.process().describe();
  constexpr std::size_t kCount = 200;

  std::vector<ChildProcess> subs;
  for (int i = 0; i < 3; ++i) subs.push_back(start_cli_sub(bus, "fan.out", kCount));
  auto pub = spawn_cli({"pub", "--bus", bus, "fan.out", "msg-{{Count}}", "--count", std::to_string(kCount)});
  ASSERT_TRUE(exits_ok(pub));

  for (auto& sub : subs) {
    ASSERT_TRUE(exits_ok(sub));
    EXPECT_EQ(sub.lines(Stream::out), numbered("msg-", kCount)) << sub.describe();
  }
}

// ------------------------------------------------------------------------------- wildcards

TEST(PubSubMp, should_route_each_subject_to_exactly_the_nats_matching_patterns) {
  const std::string bus = unique_bus_name();
  BrokerProcess broker(bus, kSmallBroker);
  ASSERT_TRUE(broker.ready()) << broker.process().describe();

  const std::vector<std::string> patterns = {"a.*", "a.>", "a.b.c", "*.b.*"};
  const std::vector<std::string> subjects = {"a.b", "a.b.c", "a.x.y.z", "b.b.b"};

  // NATS semantics, written out by hand for the one set we check literally.
  const std::map<std::string, std::vector<std::string>> hard_coded = {
      {"a.*", {"a.b"}},
      {"a.>", {"a.b", "a.b.c", "a.x.y.z"}},
      {"a.b.c", {"a.b.c"}},
      {"*.b.*", {"a.b.c", "b.b.b"}},
  };
  std::map<std::string, std::vector<std::string>> expected;
  for (const auto& p : patterns) {
    for (const auto& s : subjects) {
      if (subject_matches(p, s)) expected[p].push_back(s);
    }
  }
  ASSERT_EQ(expected, hard_coded) << "bus::subject_matches disagrees with NATS";

  // The test process subscribes too: once the publishers have exited, everything is in its rings
  // (publish returns after writing every ring), so draining them shows there is nothing extra.
  auto conn = Connection::connect(bus);
  ASSERT_TRUE(conn) << conn.error().message;
  std::map<std::string, Subscription> local;
  for (const auto& p : patterns) {
    auto sub = conn->subscribe(p);
    ASSERT_TRUE(sub) << sub.error().message;
    local.emplace(p, std::move(*sub));
  }
  std::map<std::string, ChildProcess> procs;
  for (const auto& p : patterns) procs.emplace(p, start_cli_sub(bus, p, expected[p].size()));

  for (const auto& s : subjects) {  // one publisher after the other: a global order
    auto pub = spawn_cli({"pub", "--bus", bus, s, s});  // body = subject
    ASSERT_TRUE(exits_ok(pub));
  }

  for (const auto& p : patterns) {
    auto& proc = procs.at(p);
    ASSERT_TRUE(exits_ok(proc)) << "pattern " << p;
    EXPECT_EQ(proc.lines(Stream::out), expected[p]) << "pattern " << p << "\n" << proc.describe();

    std::vector<std::string> got;
    std::vector<std::string> subjects_seen;
    auto polled = local.at(p).try_poll([&](const MessageView& m) {
      got.emplace_back(m.data);
      subjects_seen.emplace_back(m.subject);
    });
    ASSERT_TRUE(polled) << polled.error().message;
    EXPECT_EQ(got, expected[p]) << "in-process subscription on " << p;
    EXPECT_EQ(subjects_seen, expected[p]) << "in-process subscription on " << p;
  }
}

// --------------------------------------------------------------------- subscribe visibility

// Maps test_peer's counter file (the sequence number pubseq is about to publish).
class CounterFile {
 public:
  explicit CounterFile(std::string path) : path_(std::move(path)) {
    const int fd = ::open(path_.c_str(), O_RDWR | O_CREAT | O_TRUNC, 0600);
    if (fd < 0) return;
    if (::ftruncate(fd, 4096) == 0) {
      void* p = ::mmap(nullptr, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
      if (p != MAP_FAILED) counter_ = static_cast<std::atomic<std::uint64_t>*>(p);
    }
    ::close(fd);
  }
  ~CounterFile() {
    if (counter_ != nullptr) ::munmap(counter_, 4096);
    ::unlink(path_.c_str());
  }
  CounterFile(const CounterFile&) = delete;
  CounterFile& operator=(const CounterFile&) = delete;

  bool ok() const { return counter_ != nullptr; }
  const std::string& path() const { return path_; }
  std::uint64_t value() const { return counter_->load(); }

 private:
  std::string path_;
  std::atomic<std::uint64_t>* counter_ = nullptr;
};

TEST(PubSubMp, should_deliver_every_publish_started_after_subscribe_returned) {
  const std::string bus = unique_bus_name();
  // Bigger rings than elsewhere: a subcheck that drops a message (slow consumer on a busy
  // 2-core machine) fails, and the publisher runs flat out, so give the consumers slack.
  BrokerProcess broker(bus, {"--ring-bytes", "4MiB", "--max-payload", "16KiB", "--max-subscriptions", "8",
                          "--max-fanout", "8"});
  ASSERT_TRUE(broker.ready()) << broker.process().describe();
  CounterFile counter(std::filesystem::temp_directory_path() / (bus + ".counter"));
  ASSERT_TRUE(counter.ok());

  auto pubseq = spawn_peer({"pubseq", bus, "seq.x", counter.path(), "1500"});
  // Subscribe only once the publisher is really publishing, so the check has teeth.
  const auto deadline = Clock::now() + kStartTimeout;
  while (counter.value() == 0 && Clock::now() < deadline && !pubseq.wait_exit(10ms)) {
  }
  ASSERT_GT(counter.value(), 0u) << pubseq.describe();

  std::vector<ChildProcess> checkers;
  for (int i = 0; i < 3; ++i) {
    checkers.push_back(spawn_peer({"subcheck", bus, "seq.x", counter.path(), "10000"}));
    // Stagger the subscribes across the publishing run (no correctness depends on the pause).
    std::this_thread::sleep_for(150ms);
  }
  ASSERT_TRUE(exits_ok(pubseq));
  for (auto& c : checkers) {
    ASSERT_TRUE(exits_ok(c)) << "exit 4 = a gap or a drop after subscribe() returned";
    EXPECT_TRUE(c.wait_for_line(Stream::out, "ok after=", 0ms)) << c.describe();
  }
}

// ---------------------------------------------------------------------------- unsubscribe

TEST(PubSubMp, should_stop_delivery_after_unsubscribe_and_reuse_the_subscription_slot) {
  const std::string bus = unique_bus_name();
  constexpr int kMaxSubscriptions = 4;
  BrokerProcess broker(bus, {"--ring-bytes", "256KiB", "--max-payload", "16KiB", "--max-subscriptions",
                             std::to_string(kMaxSubscriptions), "--max-fanout", std::to_string(kMaxSubscriptions)});
  ASSERT_TRUE(broker.ready()) << broker.process().describe();

  auto conn = Connection::connect(bus);
  ASSERT_TRUE(conn) << conn.error().message;
  auto sub = conn->subscribe("unsub.>");
  ASSERT_TRUE(sub) << sub.error().message;

  // Publishes every 1 ms for far longer than the test: unsubscribe races with live publishes.
  auto pub = spawn_peer({"pub", bus, "unsub.x", "1000000", "1000"});
  auto first = sub->next(kStartTimeout);
  ASSERT_TRUE(first) << first.error().message << "\n" << pub.describe();

  ASSERT_TRUE(sub->unsubscribe());
  for (int i = 0; i < 3; ++i) {  // publishes keep arriving in the old ring; none may surface
    auto after = sub->next(50ms);
    ASSERT_FALSE(after) << "delivered after unsubscribe: " << after->data;
    EXPECT_EQ(after.error().code, Errc::closed) << errc_name(after.error().code);
  }

  {
    auto again = conn->subscribe("unsub.>");
    ASSERT_TRUE(again) << again.error().message;
    auto msg = again->next(kStartTimeout);
    ASSERT_TRUE(msg) << msg.error().message;
    EXPECT_EQ(msg->subject, "unsub.x");
    ASSERT_TRUE(again->unsubscribe());
  }

  // Each round needs a slot; only a broker that recycles unsubscribed slots gets through 3x.
  for (int round = 0; round < 3 * kMaxSubscriptions; ++round) {
    auto s = conn->subscribe("unsub.>");
    ASSERT_TRUE(s) << "round " << round << ": " << s.error().message << "\n" << broker.log();
    auto msg = s->next(kStartTimeout);
    ASSERT_TRUE(msg) << "round " << round << ": " << msg.error().message;
    ASSERT_TRUE(s->unsubscribe());
  }

  // And the limit is real: all slots held, one more is refused.
  std::vector<Subscription> held;
  for (int i = 0; i < kMaxSubscriptions; ++i) {
    auto s = conn->subscribe("unsub.>");
    ASSERT_TRUE(s) << "slot " << i << ": " << s.error().message << "\n" << broker.log();
    held.push_back(std::move(*s));
  }
  auto over = conn->subscribe("unsub.>");
  ASSERT_FALSE(over);
  EXPECT_EQ(over.error().code, Errc::resource_exhausted) << over.error().message;

  EXPECT_FALSE(pub.exited()) << pub.describe();  // it was publishing all along
}

// -------------------------------------------------------------------- dead subscriber

TEST(PubSubMp, should_keep_serving_others_and_reclaim_a_subscriber_killed_mid_stream) {
  const std::string bus = unique_bus_name();
  BrokerProcess broker(bus, kSmallBroker);
  ASSERT_TRUE(broker.ready()) << broker.process().describe();
  constexpr std::size_t kCount = 400;

  auto survivor = start_peer_sub(bus, "kill.s", kCount);
  auto victim = start_peer_sub(bus, "kill.s", kCount);
  auto pub = spawn_peer({"pub", bus, "kill.s", std::to_string(kCount), "2000", "m"});

  // Mid-stream: the victim has consumed some messages, the publisher has more to send.
  ASSERT_TRUE(victim.wait_for_lines(Stream::out, 1 + 50, kExitTimeout)) << victim.describe();
  const pid_t victim_pid = victim.pid();
  ASSERT_TRUE(victim.kill(SIGKILL));
  const auto killed_at = Clock::now();

  // busd notices through the victim's pidfd; look for its reclaim line.
  const std::string tag = "(pid " + std::to_string(victim_pid) + ")";
  auto reclaimed = broker.process().wait_for_line_if(
      Stream::err,
      [&](std::string_view line) {
        return line.find(tag) != std::string_view::npos &&
               line.find("reclaimed its slot") != std::string_view::npos;
      },
      kExitTimeout);
  const auto reclaim_delay = Clock::now() - killed_at;
  ASSERT_TRUE(reclaimed) << broker.log();
  EXPECT_LT(reclaim_delay, 1s) << "reclaim took "
                               << std::chrono::duration_cast<std::chrono::milliseconds>(reclaim_delay).count()
                               << " ms: " << *reclaimed;
  EXPECT_NE(reclaimed->find("1 subscription(s)"), std::string::npos) << *reclaimed;

  auto victim_status = victim.wait_exit(kExitTimeout);
  ASSERT_TRUE(victim_status);
  EXPECT_EQ(victim_status->signal, SIGKILL);

  ASSERT_TRUE(exits_ok(pub));
  ASSERT_TRUE(exits_ok(survivor));
  EXPECT_EQ(peer_payloads(survivor), numbered("m", kCount)) << survivor.describe();
}

// --------------------------------------------------------------------- dead publisher

// BUS_TEST_PAUSE_AFTER_CLAIM=1: stopped after claiming ring space, before writing a byte;
// =2: after writing the record header (negative length), before commit.
void check_consumers_survive_a_publisher_killed_mid_claim(const char* pause_mode) {
  const std::string bus = unique_bus_name();
  BrokerProcess broker(bus, kSmallBroker);
  ASSERT_TRUE(broker.ready()) << broker.process().describe();
  constexpr std::size_t kCount = 100;

  auto conn = Connection::connect(bus);
  ASSERT_TRUE(conn) << conn.error().message;
  auto local = conn->subscribe("claim.x");
  ASSERT_TRUE(local) << local.error().message;
  auto remote = start_peer_sub(bus, "claim.x", kCount);

  auto dead = spawn_peer({"pub", bus, "claim.x", "5", "0", "dead"}, {{"BUS_TEST_PAUSE_AFTER_CLAIM", pause_mode}});
  ASSERT_TRUE(dead.wait_stopped(kStartTimeout)) << dead.describe();
  ASSERT_TRUE(dead.kill(SIGKILL));
  auto dead_status = dead.wait_exit(kExitTimeout);
  ASSERT_TRUE(dead_status);
  EXPECT_EQ(dead_status->signal, SIGKILL);

  auto pub = spawn_peer({"pub", bus, "claim.x", std::to_string(kCount), "0", "m"});
  ASSERT_TRUE(exits_ok(pub));

  // The consumer must skip the dead claim (it may have to wait for the broker's reap and a
  // grace period); a few seconds is plenty, forever is the bug.
  const auto got = receive(*local, kCount, 5s);
  EXPECT_EQ(got, numbered("m", kCount)) << "pause mode " << pause_mode << "\n" << broker.log();
  ASSERT_TRUE(exits_ok(remote)) << "pause mode " << pause_mode;
  EXPECT_EQ(peer_payloads(remote), numbered("m", kCount));
}

TEST(PubSubMp, should_unblock_consumers_when_a_publisher_dies_after_claiming_before_writing) {
  check_consumers_survive_a_publisher_killed_mid_claim("1");
}

TEST(PubSubMp, should_unblock_consumers_when_a_publisher_dies_after_writing_the_header_before_commit) {
  check_consumers_survive_a_publisher_killed_mid_claim("2");
}

// ---------------------------------------------------------------------------------- broker

TEST(BrokerMp, should_refuse_a_second_broker_on_the_same_bus) {
  const std::string bus = unique_bus_name();
  BrokerProcess broker(bus, kSmallBroker);
  ASSERT_TRUE(broker.ready()) << broker.process().describe();

  auto second = ChildProcess::spawn({busd_path(), "--bus", bus});
  ASSERT_TRUE(exits_nonzero(second));
  EXPECT_NE(second.err().find("already running"), std::string::npos) << second.describe();
  // The refused broker must not have touched the running one's segment.
  EXPECT_TRUE(segment_exists(bus));
  auto status = broker.stop();
  ASSERT_TRUE(status);
  EXPECT_TRUE(status->success()) << broker.process().describe();
}

TEST(BrokerMp, should_fail_to_publish_when_no_broker_serves_the_bus) {
  const std::string bus = unique_bus_name();
  auto pub = spawn_cli({"pub", "--bus", bus, "s", "x"});
  ASSERT_TRUE(exits_nonzero(pub));
  EXPECT_NE(pub.err().find("no broker"), std::string::npos) << pub.describe();
}

TEST(BrokerMp, should_reject_an_invalid_subject_and_an_oversize_payload_with_a_one_line_error) {
  const std::string bus = unique_bus_name();
  BrokerProcess broker(bus, kSmallBroker);
  ASSERT_TRUE(broker.ready()) << broker.process().describe();

  auto bad_subject = spawn_cli({"pub", "--bus", bus, "a..b", "x"});
  ASSERT_TRUE(exits_nonzero(bad_subject));
  ASSERT_EQ(bad_subject.lines(Stream::err).size(), 1u) << bad_subject.describe();
  EXPECT_NE(bad_subject.err().find("a..b"), std::string::npos) << bad_subject.describe();

  auto too_big = spawn_cli({"pub", "--bus", bus, "s", std::string(20000, 'x')});
  ASSERT_TRUE(exits_nonzero(too_big));
  ASSERT_EQ(too_big.lines(Stream::err).size(), 1u) << too_big.describe();
  EXPECT_NE(too_big.err().find("max_payload"), std::string::npos) << too_big.describe();
}

TEST(BrokerMp, should_replace_a_stale_segment_left_by_a_dead_broker) {
  const std::string bus = unique_bus_name();
  const std::string path = segment_path(bus);
  {
    const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL, 0600);
    ASSERT_GE(fd, 0) << path << ": " << std::strerror(errno);
    const std::string junk(8192, 'J');
    ASSERT_EQ(::write(fd, junk.data(), junk.size()), static_cast<ssize_t>(junk.size()));
    ::close(fd);
  }
  BrokerProcess broker(bus, kSmallBroker);
  ASSERT_TRUE(broker.ready()) << broker.process().describe();
  EXPECT_NE(broker.log().find("replacing stale segment"), std::string::npos) << broker.log();

  // The replacement is a working bus.
  auto sub = start_cli_sub(bus, "stale.x", 1);
  auto pub = spawn_cli({"pub", "--bus", bus, "stale.x", "fresh"});
  ASSERT_TRUE(exits_ok(pub));
  ASSERT_TRUE(exits_ok(sub));
  EXPECT_EQ(sub.out(), "fresh\n");
}

TEST(BrokerMp, should_create_a_private_segment_and_remove_it_on_sigterm) {
  const std::string bus = unique_bus_name();
  BrokerProcess broker(bus, kSmallBroker);
  ASSERT_TRUE(broker.ready()) << broker.process().describe();

  struct stat st {};
  ASSERT_EQ(::stat(segment_path(bus).c_str(), &st), 0) << segment_path(bus);
  EXPECT_EQ(st.st_mode & 07777, 0600u) << std::oct << (st.st_mode & 07777);
  EXPECT_EQ(st.st_uid, ::getuid());

  auto status = broker.stop();
  ASSERT_TRUE(status) << broker.process().describe();
  EXPECT_TRUE(status->success()) << broker.process().describe();
  EXPECT_FALSE(segment_exists(bus));
}

// ---------------------------------------------------------------------- embedded broker

TEST(BrokerMp, should_serve_cli_subscribers_from_a_broker_embedded_in_the_test_process) {
  const std::string bus = unique_bus_name();
  auto broker = Broker::start({.bus_name = bus, .ring_bytes = 256u << 10, .max_payload = 16u << 10});
  ASSERT_TRUE(broker) << broker.error().message;
  ASSERT_TRUE(broker->running());

  auto sub = start_cli_sub(bus, "embedded.>", 1);
  {
    auto conn = Connection::connect(bus);
    ASSERT_TRUE(conn) << conn.error().message;
    ASSERT_TRUE(conn->publish("embedded.hello", "from the test process"));
    ASSERT_TRUE(exits_ok(sub));
    EXPECT_EQ(sub.out(), "from the test process\n");
    ASSERT_TRUE(conn->close());
  }

  ASSERT_TRUE(segment_exists(bus));
  ASSERT_TRUE(broker->stop());
  EXPECT_FALSE(broker->running());
  EXPECT_FALSE(segment_exists(bus));
}

}  // namespace
}  // namespace bus::test

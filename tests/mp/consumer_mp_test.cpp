// Consumers across real processes (issue 8). busd runs every consumer (its engine is a bus client
// inside the broker's process); this process administers them, pulls, acknowledges and subscribes
// with the library, or runs the `bus consumer` verbs. Covered: the CLI round trip; redelivery
// after ack_wait and after each backoff step; max_deliver and its advisory; max_ack_pending; the
// ack policies and every acknowledgement (+ACK, -NAK with and without delay, +TERM and its
// advisory, +WPI); the deliver policies and filters; push consumers, plain and in a queue group;
// a durable's state across kill -9 of the broker (exactly once with double acks); ephemeral
// inactivity; refusals; consumers going with their stream.
//
// Timing: only lower bounds that follow from the semantics are asserted exactly (a redelivery is
// never handed out before its deadline, and the deadline is set after this process asked for
// the delivery); waits for things that must happen are generous (seconds), so that two ctest
// runs side by side on two cores do not make the tests flaky.
#include <time.h>

#include <gtest/gtest.h>

#include <chrono>
#include <cstdlib>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "bus/bus.hpp"
#include "bus/consumer.hpp"
#include "mp/process_harness.hpp"

namespace bus::test {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;
using nlohmann::json;

std::int64_t realtime_ns() {
  timespec ts{};
  ::clock_gettime(CLOCK_REALTIME, &ts);
  return static_cast<std::int64_t>(ts.tv_sec) * 1'000'000'000 + ts.tv_nsec;
}

std::chrono::milliseconds since(Clock::time_point t) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - t);
}

std::vector<std::uint64_t> seqs(const std::vector<Message>& batch) {
  std::vector<std::uint64_t> out;
  for (const auto& m : batch) {
    auto meta = metadata(m);
    out.push_back(meta ? meta->stream_seq : 0);
  }
  return out;
}

std::vector<std::string> bodies(const std::vector<Message>& batch) {
  std::vector<std::string> out;
  for (const auto& m : batch) out.push_back(m.data);
  return out;
}

std::uint64_t deliveries_of(const Message& m) {
  auto meta = metadata(m);
  return meta ? meta->num_delivered : 0;
}

std::vector<std::uint64_t> range(std::uint64_t first, std::uint64_t last) {
  std::vector<std::uint64_t> out;
  for (std::uint64_t s = first; s <= last; ++s) out.push_back(s);
  return out;
}

json parse_json(const std::string& text) {
  json j = json::parse(text, nullptr, /*allow_exceptions=*/false);
  EXPECT_FALSE(j.is_discarded()) << "not JSON: " << text;
  return j;
}

std::string read_text(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

ConsumerConfig durable(const std::string& name) {
  ConsumerConfig c;
  c.durable_name = name;
  return c;
}

// A broker with a store directory, and a connection of this process to it.
class ConsumerMp : public ::testing::Test {
 protected:
  void SetUp() override {
    bus_ = unique_bus_name();
    ASSERT_NO_FATAL_FAILURE(start_broker());
  }

  void TearDown() override { disconnect(); }  // before the broker stops

  void start_broker() {
    // The old one first: a BrokerProcess that stopped cleanly removes the bus's segment when
    // destroyed, which must not be the new broker's.
    broker_.reset();
    broker_ = std::make_unique<BrokerProcess>(bus_, std::vector<std::string>{"--store-dir", store_.path});
    ASSERT_TRUE(broker_->ready()) << broker_->log();
    ASSERT_NO_FATAL_FAILURE(connect());
  }

  void connect() {
    disconnect();
    auto c = Connection::connect(bus_);
    ASSERT_TRUE(c) << c.error().message;
    conn_.emplace(std::move(c).value());
    consumers_.emplace(*conn_);
  }

  void disconnect() {
    consumers_.reset();
    if (conn_) (void)conn_->close();
    conn_.reset();
  }

  // kill -9 of busd, then a new busd on the same store; this process connects to it afresh.
  void crash_and_restart() {
    disconnect();
    ASSERT_TRUE(broker_->crash());
    ASSERT_NO_FATAL_FAILURE(start_broker());
  }

  void add_stream(const std::string& name, std::vector<std::string> subjects, Retention retention = Retention::limits) {
    StreamConfig config;
    config.name = name;
    config.subjects = std::move(subjects);
    config.retention = retention;
    auto added = Streams(*conn_).add(config);
    ASSERT_TRUE(added) << added.error().message;
  }

  std::uint64_t publish(const std::string& subject, const std::string& body, const Headers* headers = nullptr) {
    auto ack = conn_->stream_publish(subject, body, headers);
    EXPECT_TRUE(ack) << subject << ": " << ack.error().message;
    return ack ? ack->sequence : 0;
  }

  ConsumerInfo add(const std::string& stream, const ConsumerConfig& config) {
    auto info = consumers_->add(stream, config);
    EXPECT_TRUE(info) << info.error().message;
    return info ? info.value() : ConsumerInfo{};
  }

  ConsumerInfo info(const std::string& stream, const std::string& name) {
    auto i = consumers_->info(stream, name);
    EXPECT_TRUE(i) << i.error().message;
    return i ? i.value() : ConsumerInfo{};
  }

  std::vector<Message> fetch(const std::string& stream, const std::string& name, std::size_t batch,
                             std::chrono::milliseconds expires) {
    auto got = consumers_->fetch(stream, name, batch, expires);
    EXPECT_TRUE(got) << got.error().message;
    return got ? std::move(got).value() : std::vector<Message>{};
  }

  std::string consumer_dir(const std::string& stream, const std::string& name) const {
    return store_.path + "/streams/" + stream + "/consumers/" + name;
  }

  StoreDir store_;
  std::string bus_;
  std::unique_ptr<BrokerProcess> broker_;
  std::optional<Connection> conn_;
  std::optional<Consumers> consumers_;
};

// ------------------------------------------------------------------------------------ the CLI

TEST_F(ConsumerMp, should_round_trip_through_the_consumer_verbs) {
  EXPECT_TRUE(holds(cli_ok(bus_, {"stream", "add", "ORDERS", "--subjects", "orders.>"}), "Stream ORDERS was created"));
  cli_ok(bus_, {"pub", "--ack", "orders.new", "order {{Count}}", "--count", "5"});

  EXPECT_TRUE(holds(cli_ok(bus_, {"consumer", "add", "ORDERS", "worker", "--pull"}), "Pull Mode"));
  EXPECT_TRUE(std::filesystem::exists(consumer_dir("ORDERS", "worker") + "/consumer.json")) << "durable: on disk";

  EXPECT_EQ(cli_ok(bus_, {"consumer", "next", "ORDERS", "worker", "--count", "2", "--raw"}), "order 1\norder 2\n");

  json i = parse_json(cli_ok(bus_, {"consumer", "info", "ORDERS", "worker", "--json"}));
  EXPECT_EQ(i["delivered"]["stream_seq"], 2) << i.dump();
  EXPECT_EQ(i["ack_floor"]["stream_seq"], 2) << i.dump() << "\n(bus consumer next acknowledges with a double ack)";
  EXPECT_EQ(i["num_pending"], 3) << i.dump();
  EXPECT_EQ(i["num_ack_pending"], 0) << i.dump();
  EXPECT_EQ(i["name"], "worker");
  EXPECT_EQ(i["config"]["durable_name"], "worker");

  EXPECT_EQ(parse_json(cli_ok(bus_, {"consumer", "ls", "ORDERS", "--json"})), json::array({"worker"}));
  json s = parse_json(cli_ok(bus_, {"stream", "info", "ORDERS", "--json"}));
  EXPECT_EQ(s["state"]["consumer_count"], 1) << s.dump();

  // The human form: one header line per message with its place in the stream and consumer.
  const std::string third = cli_ok(bus_, {"consumer", "next", "ORDERS", "worker"});
  EXPECT_TRUE(holds(third, "subj: orders.new / tries: 1 / cons seq: 3 / str seq: 3")) << third;
  EXPECT_TRUE(holds(third, "order 3")) << third;
  EXPECT_TRUE(holds(third, "Acknowledged message")) << third;
  EXPECT_EQ(cli_ok(bus_, {"consumer", "next", "ORDERS", "worker", "--count", "2", "--raw"}), "order 4\norder 5\n");

  // Nothing left: exit 1, one line.
  auto empty = spawn_cli({"consumer", "next", "ORDERS", "worker", "--timeout", "300ms", "--bus", bus_});
  ASSERT_TRUE(exits_with(empty, 1));
  EXPECT_EQ(empty.lines(Stream::err).size(), 1u) << empty.describe();
  EXPECT_TRUE(empty.err().rfind("bus: ", 0) == 0) << empty.describe();
  EXPECT_TRUE(empty.out().empty()) << empty.describe();

  EXPECT_TRUE(holds(cli_ok(bus_, {"consumer", "rm", "ORDERS", "worker"}), "removed"));
  auto gone = spawn_cli({"consumer", "info", "ORDERS", "worker", "--bus", bus_});
  ASSERT_TRUE(gone.wait_exit(kChildExitTimeout));
  EXPECT_FALSE(gone.status()->success()) << gone.describe();
  EXPECT_EQ(gone.lines(Stream::err).size(), 1u) << gone.describe();
  EXPECT_TRUE(holds(gone.err(), "bus: ")) << gone.describe();
  EXPECT_TRUE(holds(gone.err(), "worker")) << "names the consumer: " << gone.describe();
  EXPECT_EQ(parse_json(cli_ok(bus_, {"consumer", "ls", "ORDERS", "--json"})), json::array());
  EXPECT_EQ(parse_json(cli_ok(bus_, {"stream", "info", "ORDERS", "--json"}))["state"]["consumer_count"], 0);
  EXPECT_FALSE(std::filesystem::exists(consumer_dir("ORDERS", "worker"))) << "its state went with it";
}

TEST_F(ConsumerMp, should_nak_term_or_leave_unacknowledged_what_consumer_next_is_told_to) {
  cli_ok(bus_, {"stream", "add", "TASKS", "--subjects", "tasks.>"});
  cli_ok(bus_, {"pub", "--ack", "tasks.run", "task {{Count}}", "--count", "3"});
  cli_ok(bus_, {"consumer", "add", "TASKS", "w", "--pull", "--wait", "30s"});

  EXPECT_EQ(cli_ok(bus_, {"consumer", "next", "TASKS", "w", "--no-ack", "--raw"}), "task 1\n");
  EXPECT_EQ(info("TASKS", "w").num_ack_pending, 1u) << "--no-ack left it pending";
  EXPECT_EQ(cli_ok(bus_, {"consumer", "next", "TASKS", "w", "--nak", "--raw"}), "task 2\n");
  const std::string again = cli_ok(bus_, {"consumer", "next", "TASKS", "w"});
  EXPECT_TRUE(holds(again, "tries: 2 / cons seq: 3 / str seq: 2")) << "--nak: redelivered at once\n" << again;
  EXPECT_TRUE(holds(again, "task 2")) << again;
  const std::string third = cli_ok(bus_, {"consumer", "next", "TASKS", "w", "--term"});
  EXPECT_TRUE(holds(third, "task 3")) << third;
  EXPECT_TRUE(holds(third, "Terminated message")) << third;

  // 1 waits out its 30 s ack wait, 2 is acknowledged, 3 terminated: nothing to fetch now.
  auto none = spawn_cli({"consumer", "next", "TASKS", "w", "--timeout", "300ms", "--bus", bus_});
  ASSERT_TRUE(exits_with(none, 1));
  const ConsumerInfo i = info("TASKS", "w");
  EXPECT_EQ(i.num_ack_pending, 1u);
  EXPECT_EQ(i.ack_floor.stream_seq, 0u) << "1 is still pending";
  EXPECT_EQ(i.delivered.stream_seq, 3u);
}

TEST_F(ConsumerMp, should_make_the_consumer_the_add_flags_describe) {
  cli_ok(bus_, {"stream", "add", "S", "--subjects", "s.>"});
  auto config_of = [&](std::vector<std::string> args) {
    std::vector<std::string> argv{"consumer", "add", "S"};
    argv.insert(argv.end(), args.begin(), args.end());
    argv.push_back("--json");
    json j = parse_json(cli_ok(bus_, argv));
    return j["config"];
  };
  json pull = config_of({"all_flags", "--pull", "--deliver", "3", "--ack", "all", "--wait", "2s", "--backoff", "1s,2s",
                         "--max-deliver", "5", "--max-pending", "7", "--filter", "s.a,s.b", "--replay", "original"});
  EXPECT_EQ(pull["durable_name"], "all_flags") << pull.dump();
  EXPECT_EQ(pull["deliver_subject"], "") << pull.dump();
  EXPECT_EQ(pull["deliver_policy"], "by_start_sequence") << pull.dump();
  EXPECT_EQ(pull["opt_start_seq"], 3) << pull.dump();
  EXPECT_EQ(pull["ack_policy"], "all") << pull.dump();
  EXPECT_EQ(pull["ack_wait"], 2'000'000'000LL) << pull.dump();
  EXPECT_EQ(pull["backoff"], json::array({1'000'000'000LL, 2'000'000'000LL})) << pull.dump();
  EXPECT_EQ(pull["max_deliver"], 5) << pull.dump();
  EXPECT_EQ(pull["max_ack_pending"], 7) << pull.dump();
  EXPECT_EQ(pull["filter_subjects"], json::array({"s.a", "s.b"})) << pull.dump();
  EXPECT_EQ(pull["replay_policy"], "original") << pull.dump();

  EXPECT_EQ(config_of({"last", "--deliver", "last"})["deliver_policy"], "last");
  EXPECT_EQ(config_of({"new", "--deliver", "new"})["deliver_policy"], "new");
  EXPECT_EQ(config_of({"per_subject", "--deliver", "subject"})["deliver_policy"], "last_per_subject");
  const std::int64_t an_hour_ago = realtime_ns() - 3'600'000'000'000LL;
  json since = config_of({"since", "--deliver", "1h"});
  EXPECT_EQ(since["deliver_policy"], "by_start_time") << since.dump();
  const std::int64_t start = since.value("opt_start_time_ns", std::int64_t{0});
  EXPECT_LT(std::llabs(start - an_hour_ago), 60'000'000'000LL) << "--deliver 1h: from an hour ago; " << since.dump();

  json push = config_of({"pusher", "--target", "out.s", "--deliver-group", "g"});
  EXPECT_EQ(push["deliver_subject"], "out.s") << push.dump();
  EXPECT_EQ(push["deliver_group"], "g") << push.dump();
  json eph = config_of({"eph", "--ephemeral", "--inactive-threshold", "10s"});
  EXPECT_EQ(eph["durable_name"], "") << eph.dump();
  EXPECT_EQ(eph["name"], "eph") << eph.dump();
  EXPECT_EQ(eph["inactive_threshold"], 10'000'000'000LL) << eph.dump();
  EXPECT_FALSE(std::filesystem::exists(consumer_dir("S", "eph"))) << "ephemeral: nothing on disk";
  EXPECT_TRUE(std::filesystem::exists(consumer_dir("S", "pusher")));

  auto both = spawn_cli({"consumer", "add", "S", "x", "--pull", "--target", "out.x", "--bus", bus_});
  ASSERT_TRUE(exits_with(both, 2)) << "--pull and --target exclude each other";
  auto bad_deliver = spawn_cli({"consumer", "add", "S", "x", "--deliver", "sometimes", "--bus", bus_});
  ASSERT_TRUE(exits_with(bad_deliver, 2));
  auto no_stream = spawn_cli({"consumer", "add", "NOPE", "x", "--bus", bus_});
  ASSERT_TRUE(exits_with(no_stream, 1));
  EXPECT_EQ(no_stream.lines(Stream::err).size(), 1u) << no_stream.describe();
  EXPECT_EQ(parse_json(cli_ok(bus_, {"consumer", "ls", "S", "--json"})).size(), 7u) << "the refused ones were not made";
}

TEST_F(ConsumerMp, should_hand_each_message_to_exactly_one_of_several_fetching_processes) {
  ASSERT_NO_FATAL_FAILURE(add_stream("JOBS", {"jobs.>"}));
  constexpr int kCount = 40;
  for (int i = 1; i <= kCount; ++i) publish("jobs.run", "job " + std::to_string(i));
  add("JOBS", durable("shared"));

  std::vector<ChildProcess> workers;
  for (int w = 0; w < 2; ++w) {
    workers.push_back(spawn_cli({"consumer", "next", "JOBS", "shared", "--count", std::to_string(kCount / 2), "--raw",
                                 "--timeout", "5s", "--bus", bus_}));
  }
  std::multiset<std::string> got;
  for (auto& w : workers) {
    ASSERT_TRUE(exits_ok(w));
    const auto lines = w.lines(Stream::out);
    EXPECT_EQ(lines.size(), static_cast<std::size_t>(kCount / 2)) << w.describe();
    got.insert(lines.begin(), lines.end());
  }
  const std::set<std::string> distinct(got.begin(), got.end());
  EXPECT_EQ(got.size(), static_cast<std::size_t>(kCount));
  EXPECT_EQ(distinct.size(), static_cast<std::size_t>(kCount)) << "a message went to both";
  const ConsumerInfo i = info("JOBS", "shared");
  EXPECT_EQ(i.num_ack_pending, 0u);
  EXPECT_EQ(i.ack_floor.stream_seq, static_cast<std::uint64_t>(kCount));
}

// ------------------------------------------------------------------------ redelivery, backoff

TEST_F(ConsumerMp, should_redeliver_what_is_not_acknowledged_within_ack_wait) {
  ASSERT_NO_FATAL_FAILURE(add_stream("TASKS", {"tasks.>"}));
  publish("tasks.a", "t1");
  ConsumerConfig config = durable("w");
  config.ack_wait = 300ms;
  add("TASKS", config);

  const auto asked = Clock::now();
  const auto first = fetch("TASKS", "w", 1, 2s);
  ASSERT_EQ(seqs(first), (std::vector<std::uint64_t>{1}));
  EXPECT_EQ(deliveries_of(first[0]), 1u);

  // Not acknowledged: back after ack_wait, never before (the deadline starts after we asked).
  const auto again = fetch("TASKS", "w", 1, 3s);
  const auto waited = since(asked);
  ASSERT_EQ(seqs(again), (std::vector<std::uint64_t>{1})) << "redelivered after ack_wait";
  EXPECT_EQ(deliveries_of(again[0]), 2u);
  EXPECT_EQ(again[0].data, "t1");
  EXPECT_GE(waited, 300ms) << "redelivered before ack_wait ran out";
  EXPECT_EQ(info("TASKS", "w").num_redelivered, 1u);

  ASSERT_TRUE(ack_sync(again[0]));
  EXPECT_TRUE(fetch("TASKS", "w", 1, 700ms).empty()) << "acknowledged: never again";
  const ConsumerInfo i = info("TASKS", "w");
  EXPECT_EQ(i.num_ack_pending, 0u);
  EXPECT_EQ(i.num_redelivered, 0u);
  EXPECT_EQ(i.ack_floor.stream_seq, 1u);
}

TEST_F(ConsumerMp, should_redeliver_after_each_backoff_step_and_stop_at_max_deliver) {
  ASSERT_NO_FATAL_FAILURE(add_stream("TASKS", {"tasks.>"}));
  publish("tasks.a", "t1");
  ConsumerConfig config = durable("b");
  config.backoff = {200ms, 600ms};  // replaces ack_wait (30 s): a redelivery in seconds is the backoff's
  config.max_deliver = 3;
  add("TASKS", config);

  const auto asked = Clock::now();
  const auto d1 = fetch("TASKS", "b", 1, 2s);
  const auto d2 = fetch("TASKS", "b", 1, 3s);
  const auto at2 = since(asked);
  const auto d3 = fetch("TASKS", "b", 1, 3s);
  const auto at3 = since(asked);
  ASSERT_EQ(d1.size(), 1u);
  ASSERT_EQ(d2.size(), 1u) << "first backoff step (200 ms)";
  ASSERT_EQ(d3.size(), 1u) << "second backoff step (600 ms)";
  EXPECT_EQ(deliveries_of(d1[0]), 1u);
  EXPECT_EQ(deliveries_of(d2[0]), 2u);
  EXPECT_EQ(deliveries_of(d3[0]), 3u);
  EXPECT_GE(at2, 200ms) << "the first redelivery waits the first backoff";
  EXPECT_GE(at3, 800ms) << "the second waits the first plus the second backoff";
  EXPECT_GE(at3 - at2, 400ms) << "the second redelivery waits about 600 ms, not the first step again";

  EXPECT_TRUE(fetch("TASKS", "b", 1, 1200ms).empty()) << "max_deliver 3: no fourth delivery";
  EXPECT_EQ(info("TASKS", "b").num_ack_pending, 0u) << "given up on";
}

TEST_F(ConsumerMp, should_give_up_after_max_deliver_and_publish_an_advisory) {
  ASSERT_NO_FATAL_FAILURE(add_stream("TASKS", {"tasks.>"}));
  auto advisories = conn_->subscribe("$JS.EVENT.ADVISORY.CONSUMER.MAX_DELIVERIES.TASKS.w");
  ASSERT_TRUE(advisories) << advisories.error().message;
  publish("tasks.a", "t1");
  ConsumerConfig config = durable("w");
  config.ack_wait = 200ms;
  config.max_deliver = 2;
  add("TASKS", config);

  const auto d1 = fetch("TASKS", "w", 1, 2s);
  const auto d2 = fetch("TASKS", "w", 1, 3s);
  ASSERT_EQ(seqs(d1), (std::vector<std::uint64_t>{1}));
  ASSERT_EQ(seqs(d2), (std::vector<std::uint64_t>{1}));
  EXPECT_EQ(deliveries_of(d2[0]), 2u);

  auto advisory = advisories->next(5s);
  ASSERT_TRUE(advisory) << "no MAX_DELIVERIES advisory: " << broker_->log();
  json a = parse_json(advisory->data);
  EXPECT_EQ(a["stream_seq"], 1) << a.dump();
  EXPECT_EQ(a["deliveries"], 2) << a.dump();
  EXPECT_EQ(a["stream"], "TASKS") << a.dump();
  EXPECT_EQ(a["consumer"], "w") << a.dump();

  // The advisory is sent at the moment it would have been redelivered: nothing comes now.
  EXPECT_TRUE(fetch("TASKS", "w", 1, 600ms).empty()) << "delivered a third time past max_deliver 2";
  EXPECT_EQ(info("TASKS", "w").num_ack_pending, 0u);
  EXPECT_FALSE(advisories->next(100ms)) << "one advisory per message";

  // The consumer goes on with the next message.
  publish("tasks.a", "t2");
  const auto next = fetch("TASKS", "w", 1, 2s);
  ASSERT_EQ(seqs(next), (std::vector<std::uint64_t>{2}));
  EXPECT_EQ(deliveries_of(next[0]), 1u);
}

// --------------------------------------------------------------------------- max_ack_pending

TEST_F(ConsumerMp, should_hand_out_no_more_than_max_ack_pending_unacknowledged_messages) {
  ASSERT_NO_FATAL_FAILURE(add_stream("TASKS", {"tasks.>"}));
  for (int i = 1; i <= 10; ++i) publish("tasks.a", "t" + std::to_string(i));
  ConsumerConfig config = durable("w");
  config.max_ack_pending = 3;
  add("TASKS", config);

  const auto first = fetch("TASKS", "w", 10, 500ms);
  EXPECT_EQ(seqs(first), (std::vector<std::uint64_t>{1, 2, 3}));
  const ConsumerInfo held = info("TASKS", "w");
  EXPECT_EQ(held.num_ack_pending, 3u);
  EXPECT_EQ(held.num_pending, 7u);
  EXPECT_TRUE(fetch("TASKS", "w", 10, 300ms).empty()) << "three unacknowledged: nothing more";

  for (const auto& m : first) ASSERT_TRUE(ack(m));
  const auto second = fetch("TASKS", "w", 10, 1s);
  EXPECT_EQ(seqs(second), (std::vector<std::uint64_t>{4, 5, 6}));
}

// ------------------------------------------------------------------------------ ack policies

// The stream's message count once it reaches `want` (the broker deletes on its consumer engine's
// turns and its ticks), or what it was after `within`.
std::uint64_t messages_when(Connection& conn, const std::string& stream, std::uint64_t want,
                            std::chrono::milliseconds within) {
  const auto until = Clock::now() + within;
  std::uint64_t n = UINT64_MAX;
  while (Clock::now() < until) {
    auto i = Streams(conn).info(stream);
    if (i) n = i->state.messages;
    if (n == want) break;
    std::this_thread::sleep_for(20ms);
  }
  return n;
}

TEST_F(ConsumerMp, should_remove_from_a_workqueue_what_its_consumer_acknowledged) {
  ASSERT_NO_FATAL_FAILURE(add_stream("WQ", {"wq.>"}, Retention::workqueue));
  for (int i = 1; i <= 5; ++i) publish("wq.job", "j" + std::to_string(i));
  add("WQ", durable("workers"));
  auto refused = consumers_->add("WQ", durable("second"));
  EXPECT_FALSE(refused) << "a work queue's consumers may not overlap";
  const auto batch = fetch("WQ", "workers", 5, 2s);
  ASSERT_EQ(seqs(batch), range(1, 5));
  for (std::size_t i : {0u, 1u, 3u}) ASSERT_TRUE(ack_sync(batch[i]));
  EXPECT_EQ(messages_when(*conn_, "WQ", 2, 5s), 2u) << "acknowledged work is gone; 3 and 5 stay";
  EXPECT_TRUE(Streams(*conn_).get("WQ", 3)) << "not acknowledged: kept";
  EXPECT_FALSE(Streams(*conn_).get("WQ", 4)) << "acknowledged: deleted";
  ASSERT_TRUE(ack_sync(batch[2]));
  ASSERT_TRUE(ack_sync(batch[4]));
  EXPECT_EQ(messages_when(*conn_, "WQ", 0, 5s), 0u);
}

TEST_F(ConsumerMp, should_keep_an_interest_message_until_every_consumer_acknowledged_it_and_none_without_consumers) {
  ASSERT_NO_FATAL_FAILURE(add_stream("INT", {"int.>"}, Retention::interest));
  for (int i = 1; i <= 3; ++i) publish("int.e", "nobody " + std::to_string(i));
  EXPECT_EQ(messages_when(*conn_, "INT", 0, 5s), 0u) << "no consumer: nobody is interested, nothing is kept";
  add("INT", durable("a"));
  add("INT", durable("b"));
  for (int i = 4; i <= 7; ++i) publish("int.e", "e" + std::to_string(i));
  const auto got_a = fetch("INT", "a", 4, 2s);
  const auto got_b = fetch("INT", "b", 4, 2s);
  ASSERT_EQ(seqs(got_a), range(4, 7));
  ASSERT_EQ(seqs(got_b), range(4, 7));
  for (const auto& m : got_a) ASSERT_TRUE(ack_sync(m));
  std::this_thread::sleep_for(300ms);  // a few engine turns and ticks
  EXPECT_EQ(Streams(*conn_).info("INT")->state.messages, 4u) << "b has acknowledged none of them";
  ASSERT_TRUE(ack_sync(got_b[0]));
  ASSERT_TRUE(ack_sync(got_b[1]));
  EXPECT_EQ(messages_when(*conn_, "INT", 2, 5s), 2u) << "below b's ack floor (5): gone; 6 and 7 stay";
  EXPECT_TRUE(Streams(*conn_).get("INT", 6));
  // A restarted broker does not mistake its durable consumers, not loaded yet, for none.
  ASSERT_NO_FATAL_FAILURE(crash_and_restart());
  std::this_thread::sleep_for(500ms);
  EXPECT_EQ(Streams(*conn_).info("INT")->state.messages, 2u) << "kept for b across the restart";
}

TEST_F(ConsumerMp, should_acknowledge_everything_up_to_a_message_with_ack_all) {
  ASSERT_NO_FATAL_FAILURE(add_stream("TASKS", {"tasks.>"}));
  for (int i = 1; i <= 3; ++i) publish("tasks.a", "t" + std::to_string(i));
  ConsumerConfig config = durable("all");
  config.ack_policy = AckPolicy::all;
  config.ack_wait = 300ms;
  add("TASKS", config);

  const auto batch = fetch("TASKS", "all", 3, 2s);
  ASSERT_EQ(seqs(batch), (std::vector<std::uint64_t>{1, 2, 3}));
  EXPECT_EQ(info("TASKS", "all").num_ack_pending, 3u);
  ASSERT_TRUE(ack_sync(batch[2]));
  const ConsumerInfo i = info("TASKS", "all");
  EXPECT_EQ(i.num_ack_pending, 0u) << "acking the third acknowledged the first two too";
  EXPECT_EQ(i.ack_floor.stream_seq, 3u);
  EXPECT_TRUE(fetch("TASKS", "all", 3, 700ms).empty()) << "nothing redelivered after ack_wait";
}

TEST_F(ConsumerMp, should_track_nothing_with_ack_none) {
  ASSERT_NO_FATAL_FAILURE(add_stream("TASKS", {"tasks.>"}));
  for (int i = 1; i <= 3; ++i) publish("tasks.a", "t" + std::to_string(i));
  ConsumerConfig config = durable("none");
  config.ack_policy = AckPolicy::none;
  config.ack_wait = 200ms;
  add("TASKS", config);

  ASSERT_EQ(seqs(fetch("TASKS", "none", 3, 2s)), (std::vector<std::uint64_t>{1, 2, 3}));
  const ConsumerInfo i = info("TASKS", "none");
  EXPECT_EQ(i.num_ack_pending, 0u);
  EXPECT_EQ(i.delivered.stream_seq, 3u);
  EXPECT_EQ(i.ack_floor.stream_seq, 3u);
  EXPECT_TRUE(fetch("TASKS", "none", 3, 600ms).empty()) << "ack none: never redelivered";
}

TEST_F(ConsumerMp, should_redeliver_a_nak_at_once_or_after_its_delay) {
  ASSERT_NO_FATAL_FAILURE(add_stream("TASKS", {"tasks.>"}));
  publish("tasks.a", "t1");
  add("TASKS", durable("n"));  // ack_wait 30 s: whatever comes back within seconds came back for the nak

  const auto d1 = fetch("TASKS", "n", 1, 2s);
  ASSERT_EQ(d1.size(), 1u);
  ASSERT_TRUE(nak(d1[0]));
  const auto d2 = fetch("TASKS", "n", 1, 3s);
  ASSERT_EQ(seqs(d2), (std::vector<std::uint64_t>{1})) << "-NAK: redelivered at once";
  EXPECT_EQ(deliveries_of(d2[0]), 2u);

  const auto nacked = Clock::now();
  ASSERT_TRUE(nak(d2[0], 500ms));
  const auto d3 = fetch("TASKS", "n", 1, 3s);
  const auto waited = since(nacked);
  ASSERT_EQ(seqs(d3), (std::vector<std::uint64_t>{1})) << "-NAK {delay}: redelivered after the delay";
  EXPECT_EQ(deliveries_of(d3[0]), 3u);
  EXPECT_GE(waited, 500ms) << "redelivered before the nak's delay";
  ASSERT_TRUE(ack_sync(d3[0]));
  EXPECT_EQ(info("TASKS", "n").num_ack_pending, 0u);
}

TEST_F(ConsumerMp, should_never_redeliver_a_terminated_message_and_publish_an_advisory) {
  ASSERT_NO_FATAL_FAILURE(add_stream("TASKS", {"tasks.>"}));
  auto advisories = conn_->subscribe("$JS.EVENT.ADVISORY.CONSUMER.MSG_TERMINATED.TASKS.t");
  ASSERT_TRUE(advisories) << advisories.error().message;
  publish("tasks.a", "t1");
  ConsumerConfig config = durable("t");
  config.ack_wait = 200ms;
  add("TASKS", config);

  const auto d1 = fetch("TASKS", "t", 1, 2s);
  ASSERT_EQ(seqs(d1), (std::vector<std::uint64_t>{1}));
  ASSERT_TRUE(term(d1[0]));
  auto advisory = advisories->next(5s);
  ASSERT_TRUE(advisory) << "no MSG_TERMINATED advisory: " << broker_->log();
  json a = parse_json(advisory->data);
  EXPECT_EQ(a["stream_seq"], 1) << a.dump();
  EXPECT_EQ(a["deliveries"], 1) << a.dump();
  EXPECT_EQ(a["stream"], "TASKS") << a.dump();
  EXPECT_EQ(a["consumer"], "t") << a.dump();

  // Without the +TERM it would be back after 200 ms.
  EXPECT_TRUE(fetch("TASKS", "t", 1, 700ms).empty()) << "+TERM: never redelivered";
  EXPECT_EQ(info("TASKS", "t").num_ack_pending, 0u);
  publish("tasks.a", "t2");
  const auto d2 = fetch("TASKS", "t", 1, 2s);
  EXPECT_EQ(seqs(d2), (std::vector<std::uint64_t>{2})) << "and the consumer goes on";
}

TEST_F(ConsumerMp, should_restart_the_ack_wait_on_in_progress) {
  ASSERT_NO_FATAL_FAILURE(add_stream("TASKS", {"tasks.>"}));
  publish("tasks.a", "t1");
  ConsumerConfig config = durable("p");
  config.ack_wait = 800ms;
  add("TASKS", config);

  const auto d1 = fetch("TASKS", "p", 1, 2s);
  ASSERT_EQ(d1.size(), 1u);
  // +WPI about every 150 ms for 2 s, 2.5 times ack_wait: the message is not redelivered (each
  // short fetch in between would receive it).
  const auto kept_from = Clock::now();
  auto last_wpi = Clock::now();
  std::chrono::milliseconds widest_gap{0};
  while (since(kept_from) < 2000ms) {
    widest_gap = std::max(widest_gap, since(last_wpi));
    ASSERT_TRUE(in_progress(d1[0]));
    last_wpi = Clock::now();
    const auto meanwhile = fetch("TASKS", "p", 1, 150ms);
    ASSERT_TRUE(meanwhile.empty()) << "redelivered while in progress (widest gap between +WPI so far: "
                                   << widest_gap.count() << " ms of an ack_wait of 800 ms)";
  }
  // No more +WPI: it comes back after ack_wait.
  const auto d2 = fetch("TASKS", "p", 1, 3s);
  ASSERT_EQ(seqs(d2), (std::vector<std::uint64_t>{1})) << "redelivered once the +WPI stopped";
  EXPECT_EQ(deliveries_of(d2[0]), 2u);
  EXPECT_GE(since(last_wpi), 800ms) << "redelivered before the last +WPI's ack_wait ran out";
}

// ---------------------------------------------------------------------------- deliver policies

TEST_F(ConsumerMp, should_start_where_the_deliver_policy_says_and_deliver_only_what_the_filter_matches) {
  ASSERT_NO_FATAL_FAILURE(add_stream("PRICES", {"p.>"}));
  // Subjects a, b, a, b, c: sequences 1..5.
  publish("p.a", "a1");
  publish("p.b", "b1");
  publish("p.a", "a2");
  publish("p.b", "b2");
  publish("p.c", "c1");

  auto with = [](const std::string& name, DeliverPolicy policy) {
    ConsumerConfig c = durable(name);
    c.deliver_policy = policy;
    return c;
  };
  add("PRICES", with("all", DeliverPolicy::all));
  add("PRICES", with("last", DeliverPolicy::last));
  ConsumerConfig from3 = with("from3", DeliverPolicy::by_start_sequence);
  from3.opt_start_seq = 3;
  add("PRICES", from3);
  add("PRICES", with("lps", DeliverPolicy::last_per_subject));
  add("PRICES", with("new", DeliverPolicy::new_messages));
  ConsumerConfig only_a = durable("only_a");
  only_a.filter_subjects = {"p.a"};
  add("PRICES", only_a);
  ConsumerConfig a_and_c = durable("a_and_c");
  a_and_c.filter_subjects = {"p.a", "p.c"};
  add("PRICES", a_and_c);

  // Before anything was delivered: what each has still to deliver.
  EXPECT_EQ(info("PRICES", "all").num_pending, 5u);
  EXPECT_EQ(info("PRICES", "last").num_pending, 1u);
  EXPECT_EQ(info("PRICES", "from3").num_pending, 3u);
  EXPECT_EQ(info("PRICES", "lps").num_pending, 3u);
  EXPECT_EQ(info("PRICES", "new").num_pending, 0u);
  EXPECT_EQ(info("PRICES", "only_a").num_pending, 2u);
  EXPECT_EQ(info("PRICES", "a_and_c").num_pending, 3u);

  // A point in time after the first five, then two more: d (6) and a (7).
  const std::int64_t after_five = realtime_ns();
  std::this_thread::sleep_for(2ms);  // not an assertion: a clear gap between the time stamps
  ConsumerConfig since_then = with("since", DeliverPolicy::by_start_time);
  since_then.opt_start_time_ns = after_five;
  publish("p.d", "d1");
  publish("p.a", "a3");
  add("PRICES", since_then);

  struct Case {
    std::string consumer;
    std::vector<std::uint64_t> expected;
  };
  const std::vector<Case> cases{
      {"all", range(1, 7)},
      {"last", {5, 6, 7}},
      {"from3", range(3, 7)},
      {"lps", {3, 4, 5, 6, 7}},  // the last a, b and c in stream order, then what came after
      {"new", {6, 7}},
      {"since", {6, 7}},
      {"only_a", {1, 3, 7}},
      {"a_and_c", {1, 3, 5, 7}},
  };
  for (const auto& c : cases) {
    const auto got = fetch("PRICES", c.consumer, c.expected.size(), 2s);
    EXPECT_EQ(seqs(got), c.expected) << c.consumer;
    const ConsumerInfo i = info("PRICES", c.consumer);
    EXPECT_EQ(i.num_pending, 0u) << c.consumer << ": more to deliver than expected";
    EXPECT_EQ(i.delivered.stream_seq, c.expected.back()) << c.consumer;
    if (c.consumer == "only_a") {
      for (const auto& m : got) EXPECT_EQ(m.subject, "p.a");
      EXPECT_EQ(bodies(got), (std::vector<std::string>{"a1", "a2", "a3"}));
    }
    if (c.consumer == "lps") {
      EXPECT_EQ(bodies(got), (std::vector<std::string>{"a2", "b2", "c1", "d1", "a3"}));
    }
  }
}

// ----------------------------------------------------------------------------------- push

TEST_F(ConsumerMp, should_push_stored_messages_with_their_subjects_and_ack_replies_to_the_deliver_subject) {
  ASSERT_NO_FATAL_FAILURE(add_stream("ORDERS", {"orders.>"}));
  Headers trace;
  ASSERT_TRUE(trace.add("Trace", "o1"));
  publish("orders.eu.new", "o1", &trace);
  publish("orders.us.new", "o2");
  publish("orders.eu.paid", "o3");

  // Made with the CLI; nobody listens yet (the engine looks again every 250 ms).
  EXPECT_TRUE(holds(cli_ok(bus_, {"consumer", "add", "ORDERS", "pusher", "--target", "deliver.x"}), "deliver.x"));
  auto sub = conn_->subscribe("deliver.x");
  ASSERT_TRUE(sub) << sub.error().message;

  const std::vector<std::string> subjects{"orders.eu.new", "orders.us.new", "orders.eu.paid"};
  for (std::size_t i = 0; i < subjects.size(); ++i) {
    auto m = sub->next(5s);
    ASSERT_TRUE(m) << "push delivery " << i + 1 << ": " << m.error().message;
    EXPECT_EQ(m->subject, subjects[i]) << "the stored message's own subject, not the deliver subject";
    EXPECT_EQ(m->data, "o" + std::to_string(i + 1));
    EXPECT_EQ(m->reply.rfind("$JS.ACK._.bus.ORDERS.pusher.", 0), 0u) << "JetStream's v2 ack subject: " << m->reply;
    auto meta = metadata(*m);
    ASSERT_TRUE(meta) << m->reply;
    EXPECT_EQ(meta->stream_seq, i + 1);
    EXPECT_EQ(meta->consumer_seq, i + 1);
    EXPECT_EQ(meta->num_delivered, 1u);
    if (i == 0) {
      auto h = m->header();
      ASSERT_TRUE(h);
      EXPECT_EQ(h->get("Trace").value_or(""), "o1") << "stored headers travel with the message";
    }
    ASSERT_TRUE(ack_sync(*m));
  }
  // Live: stored now, pushed now.
  publish("orders.us.paid", "o4");
  auto live = sub->next(5s);
  ASSERT_TRUE(live) << live.error().message;
  EXPECT_EQ(live->subject, "orders.us.paid");
  EXPECT_EQ(metadata(*live)->stream_seq, 4u);
  ASSERT_TRUE(ack_sync(*live));

  const ConsumerInfo i = info("ORDERS", "pusher");
  EXPECT_EQ(i.config.deliver_subject, "deliver.x");
  EXPECT_EQ(i.delivered.stream_seq, 4u);
  EXPECT_EQ(i.num_ack_pending, 0u);
  EXPECT_EQ(i.num_pending, 0u);
  EXPECT_FALSE(sub->next(300ms)) << "nothing twice";
}

TEST_F(ConsumerMp, should_split_a_push_consumer_between_the_members_of_its_deliver_group) {
  ASSERT_NO_FATAL_FAILURE(add_stream("JOBS", {"jobs.>"}));
  constexpr int kCount = 20;
  for (int i = 1; i <= kCount; ++i) publish("jobs.run", "job " + std::to_string(i));

  std::mutex mutex;
  std::vector<std::string> got[2];
  int acked_errors = 0;
  auto member = [&](int which) {
    return [&, which](const MessageView& m) {
      const bool acked = ack(m).ok();  // promptly, from the handler
      std::lock_guard lock(mutex);
      got[which].emplace_back(m.data);
      if (!acked) ++acked_errors;
    };
  };
  auto first = conn_->queue_subscribe("deliver.g", "workers", member(0));
  auto second = conn_->queue_subscribe("deliver.g", "workers", member(1));
  ASSERT_TRUE(first && second);

  ConsumerConfig config = durable("grouped");
  config.deliver_subject = "deliver.g";
  config.deliver_group = "workers";
  config.ack_wait = 1s;
  add("JOBS", config);

  auto total = [&] {
    std::lock_guard lock(mutex);
    return got[0].size() + got[1].size();
  };
  const auto start = Clock::now();
  while (total() < static_cast<std::size_t>(kCount) && since(start) < 10s) std::this_thread::sleep_for(10ms);
  // Longer than ack_wait: a message whose ack was lost would come again meanwhile.
  std::this_thread::sleep_for(1500ms);
  (void)first->unsubscribe();
  (void)second->unsubscribe();

  std::lock_guard lock(mutex);
  EXPECT_EQ(acked_errors, 0);
  EXPECT_GE(got[0].size(), 1u) << "the group is shared";
  EXPECT_GE(got[1].size(), 1u) << "the group is shared";
  EXPECT_EQ(got[0].size() + got[1].size(), static_cast<std::size_t>(kCount)) << "every message once, none twice";
  std::set<std::string> distinct(got[0].begin(), got[0].end());
  distinct.insert(got[1].begin(), got[1].end());
  EXPECT_EQ(distinct.size(), static_cast<std::size_t>(kCount));
  const ConsumerInfo i = info("JOBS", "grouped");
  EXPECT_EQ(i.delivered.stream_seq, static_cast<std::uint64_t>(kCount));
  EXPECT_EQ(i.num_ack_pending, 0u);
}

// ----------------------------------------------------------------------- durable across kill -9

TEST_F(ConsumerMp, should_resume_a_durable_after_kill_9_of_the_broker_without_redelivering_what_was_double_acked) {
  ASSERT_NO_FATAL_FAILURE(add_stream("JOBS", {"jobs.>"}));
  for (int i = 1; i <= 6; ++i) publish("jobs.run", "job " + std::to_string(i));
  ConsumerConfig config = durable("worker");
  config.ack_wait = 1s;
  add("JOBS", config);
  ConsumerConfig ephemeral;
  ephemeral.inactive_threshold = 30s;
  add("JOBS", ephemeral);

  const auto first = fetch("JOBS", "worker", 3, 2s);
  ASSERT_EQ(seqs(first), (std::vector<std::uint64_t>{1, 2, 3}));
  for (const auto& m : first) ASSERT_TRUE(ack_sync(m));
  ASSERT_NO_FATAL_FAILURE(crash_and_restart());  // at once: only the double acks made it safe

  auto resumed = consumers_->list("JOBS");
  ASSERT_TRUE(resumed) << resumed.error().message;
  ASSERT_EQ(resumed->size(), 1u) << "the durable, not the ephemeral, is back";
  EXPECT_EQ(resumed->front().name, "worker");
  EXPECT_EQ(resumed->front().ack_floor.stream_seq, 3u);

  const auto after = fetch("JOBS", "worker", 3, 3s);
  ASSERT_EQ(seqs(after), (std::vector<std::uint64_t>{4, 5, 6})) << "never 1-3 again: " << broker_->log();
  for (const auto& m : after) EXPECT_EQ(deliveries_of(m), 1u);
  EXPECT_EQ(bodies(after), (std::vector<std::string>{"job 4", "job 5", "job 6"}));

  // 4-6 stay unacknowledged. Once the engine saved that (at most 20 ms later), kill -9 again.
  const std::string state_file = consumer_dir("JOBS", "worker") + "/state.json";
  const auto saving = Clock::now();
  for (;;) {
    const json st = json::parse(read_text(state_file), nullptr, false);
    if (!st.is_discarded() && st.contains("pending") && st["pending"].size() == 3) break;
    ASSERT_LT(since(saving), 5s) << "state.json never listed the 3 pending: " << read_text(state_file);
    std::this_thread::sleep_for(10ms);
  }
  const auto restarted = Clock::now();
  ASSERT_NO_FATAL_FAILURE(crash_and_restart());

  // A worker that got 4 from the broker before this one acknowledges it now (on a connection of
  // its own: the one that received it is gone), with a double ack.
  // The new broker's consumer engine subscribes a moment after it starts: until then nobody
  // answers (no responders), as bus::ack_sync also retries.
  auto acked4 = conn_->request(after[0].reply, "+ACK", 5s);
  for (const auto t0 = Clock::now(); !acked4 && acked4.error().code == Errc::no_responders && since(t0) < 5s;) {
    std::this_thread::sleep_for(20ms);
    acked4 = conn_->request(after[0].reply, "+ACK", 5s);
  }
  ASSERT_TRUE(acked4) << "a message delivered before the restart is acknowledged after it: " << acked4.error().message;

  const auto redelivered = fetch("JOBS", "worker", 2, 5s);
  ASSERT_EQ(seqs(redelivered), (std::vector<std::uint64_t>{5, 6})) << "pending ones come back: " << broker_->log();
  EXPECT_GE(since(restarted), 1s) << "pending ones come back after ack_wait, not at once";
  for (const auto& m : redelivered) {
    EXPECT_EQ(deliveries_of(m), 2u);
    ASSERT_TRUE(ack_sync(m));
  }
  const ConsumerInfo i = info("JOBS", "worker");
  EXPECT_EQ(i.num_ack_pending, 0u);
  EXPECT_EQ(i.ack_floor.stream_seq, 6u);
  EXPECT_EQ(i.num_pending, 0u);

  publish("jobs.run", "job 7");
  EXPECT_EQ(seqs(fetch("JOBS", "worker", 2, 500ms)), (std::vector<std::uint64_t>{7}));
}

// ------------------------------------------------------------------------------- ephemeral

TEST_F(ConsumerMp, should_remove_an_ephemeral_consumer_after_its_inactive_threshold) {
  ASSERT_NO_FATAL_FAILURE(add_stream("TASKS", {"tasks.>"}));
  publish("tasks.a", "t1");
  ConsumerConfig config;  // no durable_name: ephemeral, named by the broker
  config.inactive_threshold = 500ms;
  const ConsumerInfo made = add("TASKS", config);
  const std::string name = made.name;
  ASSERT_FALSE(name.empty());
  EXPECT_TRUE(made.config.durable_name.empty());
  EXPECT_FALSE(std::filesystem::exists(consumer_dir("TASKS", name))) << "ephemeral: nothing on disk";

  // Used: fetches keep it (1.2 s, over twice the threshold).
  const auto used_from = Clock::now();
  auto last_fetch = Clock::now();
  std::chrono::milliseconds widest_gap{0};
  while (since(used_from) < 1200ms) {
    widest_gap = std::max(widest_gap, since(last_fetch));
    last_fetch = Clock::now();
    for (const auto& m : fetch("TASKS", name, 1, 200ms)) ASSERT_TRUE(ack(m));
  }
  ASSERT_TRUE(consumers_->info("TASKS", name)) << "removed although fetched from (widest gap between fetches "
                                                << widest_gap.count() << " ms): " << broker_->log();

  // Unused: gone after the threshold (info does not count as use).
  const auto idle_from = Clock::now();
  for (;;) {
    auto i = consumers_->info("TASKS", name);
    if (!i) {
      EXPECT_EQ(i.error().code, Errc::not_found) << i.error().message;
      break;
    }
    ASSERT_LT(since(idle_from), 5s) << "ephemeral consumer never removed: " << broker_->log();
    std::this_thread::sleep_for(100ms);
  }
  EXPECT_GE(since(last_fetch), 500ms) << "removed before its inactive_threshold";
  EXPECT_LE(since(idle_from), 3s) << "removed long after its inactive threshold of 500 ms";
  auto fetched = consumers_->fetch("TASKS", name, 1, 300ms);
  ASSERT_FALSE(fetched);
  EXPECT_EQ(fetched.error().code, Errc::not_found);
  auto list = consumers_->list("TASKS");
  ASSERT_TRUE(list);
  EXPECT_TRUE(list->empty());
}

// ------------------------------------------------------------------------------ refusals

TEST_F(ConsumerMp, should_refuse_bad_consumers_and_bad_requests) {
  ASSERT_NO_FATAL_FAILURE(add_stream("ORDERS", {"orders.>"}));

  auto missing_stream = consumers_->add("NOPE", durable("c"));
  ASSERT_FALSE(missing_stream);
  EXPECT_EQ(missing_stream.error().code, Errc::not_found) << missing_stream.error().message;

  for (const char* bad : {"a.b", "a*", "a>", "a b"}) {
    auto named = consumers_->add("ORDERS", durable(bad));
    ASSERT_FALSE(named) << bad;
    EXPECT_EQ(named.error().code, Errc::invalid_argument) << bad << ": " << named.error().message;
  }
  auto bad_cli = spawn_cli({"consumer", "add", "ORDERS", "a.b", "--bus", bus_});
  ASSERT_TRUE(exits_with(bad_cli, 2)) << "a usage error for the CLI";

  ConsumerConfig config = durable("c");
  config.ack_wait = 1s;
  const ConsumerInfo made = add("ORDERS", config);
  ConsumerConfig other = config;
  other.ack_wait = 2s;
  auto clash = consumers_->add("ORDERS", other);
  ASSERT_FALSE(clash);
  EXPECT_EQ(clash.error().code, Errc::already_exists) << clash.error().message;
  auto same = consumers_->add("ORDERS", config);
  ASSERT_TRUE(same) << "the same configuration again is no error: " << same.error().message;
  EXPECT_EQ(same->created_ns, made.created_ns) << "the existing consumer, not a new one";
  EXPECT_EQ(same->config.ack_wait, 1s) << "unchanged by the refused add";

  ConsumerConfig outside = durable("outside");
  outside.filter_subjects = {"invoices.>"};
  auto filtered = consumers_->add("ORDERS", outside);
  ASSERT_FALSE(filtered);
  EXPECT_EQ(filtered.error().code, Errc::invalid_argument) << filtered.error().message;
  ConsumerConfig inside = durable("inside");
  inside.filter_subjects = {"orders.eu.*"};
  EXPECT_TRUE(consumers_->add("ORDERS", inside)) << "a filter within the stream's subjects";

  ConsumerConfig short_max = durable("short");
  short_max.backoff = {100ms, 200ms};
  short_max.max_deliver = 2;
  auto backoff = consumers_->add("ORDERS", short_max);
  ASSERT_FALSE(backoff);
  EXPECT_EQ(backoff.error().code, Errc::invalid_argument) << "max_deliver must exceed the backoff's length";

  ConsumerConfig group_only = durable("group");
  group_only.deliver_group = "g";
  auto grouped = consumers_->add("ORDERS", group_only);
  ASSERT_FALSE(grouped);
  EXPECT_EQ(grouped.error().code, Errc::invalid_argument) << "deliver_group needs a deliver_subject";

  ConsumerConfig cycle = durable("cycle");
  cycle.deliver_subject = "orders.loop";
  auto looped = consumers_->add("ORDERS", cycle);
  ASSERT_FALSE(looped);
  EXPECT_EQ(looped.error().code, Errc::invalid_argument) << "a deliver subject the stream captures is a cycle";

  ConsumerConfig push = durable("pushy");
  push.deliver_subject = "deliver.pushy";
  add("ORDERS", push);
  const auto asked = Clock::now();
  auto pulled = consumers_->fetch("ORDERS", "pushy", 1, 2s);
  ASSERT_FALSE(pulled) << "a fetch from a push consumer";
  EXPECT_NE(pulled.error().code, Errc::timeout) << pulled.error().message;
  EXPECT_LT(since(asked), 2s) << "refused at once, not after the expiry";

  auto no_consumer = consumers_->fetch("ORDERS", "nobody", 1, 500ms);
  ASSERT_FALSE(no_consumer);
  EXPECT_EQ(no_consumer.error().code, Errc::not_found) << no_consumer.error().message;
  auto no_info = consumers_->info("ORDERS", "nobody");
  ASSERT_FALSE(no_info);
  EXPECT_EQ(no_info.error().code, Errc::not_found);
  auto no_remove = consumers_->remove("ORDERS", "nobody");
  ASSERT_FALSE(no_remove);
  EXPECT_EQ(no_remove.error().code, Errc::not_found);

  auto list = consumers_->list("ORDERS");
  ASSERT_TRUE(list);
  std::set<std::string> names;
  for (const auto& i : *list) names.insert(i.name);
  EXPECT_EQ(names, (std::set<std::string>{"c", "inside", "pushy"})) << "the refused ones were not made";
}

// ------------------------------------------------------------------------ with their stream

TEST_F(ConsumerMp, should_drop_the_consumers_of_a_removed_stream) {
  ASSERT_NO_FATAL_FAILURE(add_stream("ORDERS", {"orders.>"}));
  publish("orders.x", "o1");
  add("ORDERS", durable("keep"));
  ConsumerConfig ephemeral;
  ephemeral.inactive_threshold = 30s;
  add("ORDERS", ephemeral);
  auto before = Streams(*conn_).info("ORDERS");
  ASSERT_TRUE(before);
  EXPECT_EQ(before->state.consumer_count, 2u);

  ASSERT_TRUE(Streams(*conn_).remove("ORDERS"));
  ASSERT_NO_FATAL_FAILURE(add_stream("ORDERS", {"orders.>"}));
  auto list = consumers_->list("ORDERS");
  ASSERT_TRUE(list) << list.error().message;
  EXPECT_TRUE(list->empty()) << "the new stream of that name has no consumers";
  EXPECT_EQ(parse_json(cli_ok(bus_, {"consumer", "ls", "ORDERS", "--json"})), json::array());
  auto after = Streams(*conn_).info("ORDERS");
  ASSERT_TRUE(after);
  EXPECT_EQ(after->state.consumer_count, 0u);
  auto old = consumers_->info("ORDERS", "keep");
  ASSERT_FALSE(old);
  EXPECT_EQ(old.error().code, Errc::not_found);
  EXPECT_FALSE(std::filesystem::exists(consumer_dir("ORDERS", "keep")));

  // Nor does the durable come back from the store with the next broker.
  disconnect();
  ASSERT_TRUE(broker_->stop());
  ASSERT_NO_FATAL_FAILURE(start_broker());
  auto relisted = consumers_->list("ORDERS");
  ASSERT_TRUE(relisted);
  EXPECT_TRUE(relisted->empty());
}

// ------------------------------------------------------------- found while writing these tests
// Each failed against the consumer engine as first committed (1bd7fe0): the first two pass since
// ecd1a19, the third since 7dcb296.

// `bus stream add S ...; bus consumer add S C` is the first thing anyone types; the stream add
// returns before the engine (started by that first stream) answers the consumer API, and the
// consumer add failed with no_responders ("the broker serves no streams yet").
TEST_F(ConsumerMp, should_serve_a_consumer_add_right_after_the_first_stream_add) {
  StreamConfig config;
  config.name = "FIRST";
  config.subjects = {"first.>"};
  ASSERT_TRUE(Streams(*conn_).add(config));
  auto made = consumers_->add("FIRST", durable("c"));
  EXPECT_TRUE(made) << made.error().message;
}

// JetStream removes an ephemeral push consumer after inactive_threshold without interest; while
// someone subscribes to its deliver subject it stays, however quiet the stream. (`bus sub
// --stream S` makes such a consumer: on a stream quiet for 5 s it stopped receiving.)
TEST_F(ConsumerMp, should_keep_an_ephemeral_push_consumer_while_its_deliver_subject_has_a_subscriber) {
  ASSERT_NO_FATAL_FAILURE(add_stream("TASKS", {"tasks.>"}));
  auto sub = conn_->subscribe("deliver.eph");
  ASSERT_TRUE(sub);
  ConsumerConfig config;
  config.deliver_subject = "deliver.eph";
  config.inactive_threshold = 300ms;
  const std::string name = add("TASKS", config).name;
  ASSERT_FALSE(name.empty());
  publish("tasks.a", "t1");
  auto m = sub->next(5s);
  ASSERT_TRUE(m);
  ASSERT_TRUE(ack(*m));

  std::this_thread::sleep_for(1200ms);  // quiet, four times the threshold, with a subscriber
  auto i = consumers_->info("TASKS", name);
  EXPECT_TRUE(i) << "removed although its deliver subject has a subscriber: " << broker_->log();
  publish("tasks.a", "t2");
  auto later = sub->next(2s);
  ASSERT_TRUE(later) << "the subscriber no longer receives the stream";
  EXPECT_EQ(later->data, "t2");
}

// A delivered message's metadata counts what is still pending after it, as JetStream's ack
// reply subject does (the first of 3 says 2, the last says 0); `bus consumer next` prints it.
TEST_F(ConsumerMp, should_count_in_the_metadata_the_messages_still_pending_after_this_one) {
  ASSERT_NO_FATAL_FAILURE(add_stream("TASKS", {"tasks.>"}));
  for (int i = 1; i <= 3; ++i) publish("tasks.a", "t" + std::to_string(i));
  add("TASKS", durable("w"));
  const auto batch = fetch("TASKS", "w", 3, 2s);
  ASSERT_EQ(batch.size(), 3u);
  std::vector<std::uint64_t> pending;
  for (const auto& m : batch) pending.push_back(metadata(m)->num_pending);
  EXPECT_EQ(pending, (std::vector<std::uint64_t>{2, 1, 0}));
  EXPECT_EQ(info("TASKS", "w").num_pending, 0u);
}

}  // namespace
}  // namespace bus::test

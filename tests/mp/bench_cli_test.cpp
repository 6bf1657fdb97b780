// bench_cli_test.cpp — `bus bench` end to end: a real busd, the bus CLI as the coordinator, and
// the publisher/subscriber/pinger/echo processes it re-executes itself as.
//
// The checks are about what the benchmark reports (counts, the JSON shape, percentiles in order,
// errors), never about how fast this machine is: every rate only has to be above zero. Rings of
// 4 MiB hold a whole 20,000-message run of 64-byte messages, so no subscriber can drop even if it
// is descheduled for the whole run, and "each subscriber received everything" is exact.
#include <gtest/gtest.h>

#include <chrono>
#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "process_harness.hpp"

namespace bus::test {
namespace {

using json = nlohmann::json;
using namespace std::chrono_literals;

const std::vector<std::string> kBroker = {"--ring-bytes", "4MiB", "--max-payload", "16KiB",
                                          "--max-subscriptions", "32", "--max-fanout", "32"};
constexpr auto kRunTimeout = 60s;  // a run takes well under a second; generous for ctest -j

struct BenchRun {
  ExitStatus status;
  std::string out;
  std::string err;
  std::string describe;
};

// Runs `bus bench ARGS...` to completion.
BenchRun bench(const std::vector<std::string>& args) {
  std::vector<std::string> argv{bus_cli_path(), "bench"};
  argv.insert(argv.end(), args.begin(), args.end());
  auto p = ChildProcess::spawn(argv);
  BenchRun run;
  const auto status = p.wait_exit(kRunTimeout);
  p.pump();
  run.out = p.out();
  run.err = p.err();
  run.describe = p.describe();
  if (!status) {
    ADD_FAILURE() << "bus bench did not finish in time: " << p.describe();
    return run;
  }
  run.status = *status;
  return run;
}

// Runs a --json benchmark that must succeed; returns the one JSON object it printed.
json bench_json(const std::vector<std::string>& args) {
  const BenchRun run = bench(args);
  EXPECT_TRUE(run.status.success()) << run.describe;
  // Exactly one line on stdout, and it is the object.
  EXPECT_EQ(run.out.find('\n'), run.out.size() - 1) << run.describe;
  json j = json::parse(run.out, nullptr, /*allow_exceptions=*/false);
  EXPECT_TRUE(j.is_object()) << run.describe;
  return j.is_object() ? j : json::object();
}

std::uint64_t u64(const json& j, const char* key) { return j.value(key, std::uint64_t{0}); }
double num(const json& j, const char* key) { return j.value(key, 0.0); }

void expect_percentiles(const json& j, const char* key) {
  ASSERT_TRUE(j.contains(key)) << j.dump();
  const json& p = j[key];
  EXPECT_GT(u64(p, "p50"), 0u) << key;
  EXPECT_LE(u64(p, "p50"), u64(p, "p90")) << key;
  EXPECT_LE(u64(p, "p90"), u64(p, "p99")) << key;
  EXPECT_LE(u64(p, "p99"), u64(p, "p999")) << key;
  EXPECT_LE(u64(p, "p999"), u64(p, "max")) << key;
}

// Round trips: one-way is half the round trip, key by key.
void expect_latency(const json& j) {
  expect_percentiles(j, "latency_ns");
  expect_percentiles(j, "rtt_ns");
  if (!j.contains("latency_ns") || !j.contains("rtt_ns")) return;
  for (const char* key : {"p50", "p90", "p99", "p999", "max"}) {
    const std::uint64_t one_way = u64(j["latency_ns"], key);
    const std::uint64_t rtt = u64(j["rtt_ns"], key);
    EXPECT_EQ(one_way, (rtt + 1) / 2) << key;
  }
}

TEST(BenchCli, PubSubJsonEverySubscriberGetsEverything) {
  BrokerProcess broker(unique_bus_name(), kBroker);
  ASSERT_TRUE(broker.ready()) << broker.log();
  const json j = bench_json({"s", "--msgs", "20000", "--size", "64", "--pub", "1", "--sub", "2",
                             "--json", "--bus", broker.bus_name()});
  EXPECT_EQ(j.value("mode", ""), "pubsub");
  EXPECT_EQ(u64(j, "msgs"), 20000u);
  EXPECT_EQ(u64(j, "size"), 64u);
  EXPECT_EQ(u64(j, "publishers"), 1u);
  EXPECT_EQ(u64(j, "subscribers"), 2u);
  EXPECT_GT(num(j, "pub_msgs_per_s"), 0);
  EXPECT_GT(num(j, "sub_msgs_per_s"), 0);
  EXPECT_DOUBLE_EQ(num(j, "pub_bytes_per_s"), num(j, "pub_msgs_per_s") * 64);
  EXPECT_DOUBLE_EQ(num(j, "sub_bytes_per_s"), num(j, "sub_msgs_per_s") * 64);
  EXPECT_EQ(u64(j, "published"), 20000u);
  EXPECT_EQ(u64(j, "dropped"), 0u);
  EXPECT_EQ(u64(j, "received"), 40000u);
  ASSERT_TRUE(j.contains("subs") && j["subs"].is_array()) << j.dump();
  ASSERT_EQ(j["subs"].size(), 2u);
  for (const auto& sub : j["subs"]) {
    EXPECT_EQ(u64(sub, "msgs"), 20000u) << sub.dump();
    EXPECT_EQ(u64(sub, "dropped"), 0u) << sub.dump();
    EXPECT_GT(num(sub, "msgs_per_s"), 0) << sub.dump();
  }
  EXPECT_FALSE(j.contains("latency_ns"));
}

TEST(BenchCli, ReportLikeNatsBench) {
  BrokerProcess broker(unique_bus_name(), kBroker);
  ASSERT_TRUE(broker.ready()) << broker.log();
  const BenchRun run = bench({"s", "--msgs", "10000", "--size", "64", "--pub", "2", "--sub", "2",
                         "--bus", broker.bus_name()});
  ASSERT_TRUE(run.status.success()) << run.describe;
  for (const char* expected :
       {"Starting bus pub/sub benchmark [subject=s, msgs=10,000, msgsize=64 B, pubs=2, subs=2",
        "Pub/Sub stats: ", " Pub stats: ", " Sub stats: ", " msgs/sec ~ ", "/sec (5,000 msgs)",
        "/sec (10,000 msgs)", "  [2] ", "  min ", " | avg ", " | max ", " | stddev ",
        " Received: 20,000 of 20,000 msgs"}) {
    EXPECT_NE(run.out.find(expected), std::string::npos) << expected << "\n" << run.describe;
  }
  // Not a terminal: no progress bar.
  EXPECT_EQ(run.err.find("Publishing"), std::string::npos) << run.describe;
}

TEST(BenchCli, LatencyPercentiles) {
  BrokerProcess broker(unique_bus_name(), kBroker);
  ASSERT_TRUE(broker.ready()) << broker.log();
  const json j = bench_json({"s", "--latency", "--msgs", "2000", "--json", "--bus", broker.bus_name()});
  EXPECT_EQ(j.value("mode", ""), "latency");
  EXPECT_EQ(u64(j, "msgs"), 2000u);
  EXPECT_EQ(u64(j, "size"), 128u);
  EXPECT_GT(num(j, "pub_msgs_per_s"), 0);
  expect_latency(j);

  // And the human report prints both rows.
  const BenchRun run = bench({"s", "--latency", "--msgs", "200", "--bus", broker.bus_name()});
  ASSERT_TRUE(run.status.success()) << run.describe;
  for (const char* expected : {"Latency: 200 round trips", "p50", "p99.9", "max", "one-way", "RTT"}) {
    EXPECT_NE(run.out.find(expected), std::string::npos) << expected << "\n" << run.describe;
  }
}

TEST(BenchCli, RequestReply) {
  BrokerProcess broker(unique_bus_name(), kBroker);
  ASSERT_TRUE(broker.ready()) << broker.log();
  const json j = bench_json({"s", "--request", "--msgs", "500", "--json", "--bus", broker.bus_name()});
  EXPECT_EQ(j.value("mode", ""), "request");
  EXPECT_EQ(u64(j, "msgs"), 500u);
  EXPECT_EQ(u64(j, "published"), 500u);
  EXPECT_EQ(u64(j, "subscribers"), 1u);  // one responder by default
  EXPECT_GT(num(j, "pub_msgs_per_s"), 0);
  // The responder answered the measured requests and the warm-up ones.
  EXPECT_EQ(u64(j, "received"), 500u + u64(j, "warmup"));
  expect_latency(j);
}

TEST(BenchCli, QueueGroupSharesTheMessages) {
  BrokerProcess broker(unique_bus_name(), kBroker);
  ASSERT_TRUE(broker.ready()) << broker.log();
  const json j = bench_json({"s", "--queue", "g", "--sub", "2", "--msgs", "20000", "--size", "64",
                             "--json", "--bus", broker.bus_name()});
  EXPECT_EQ(j.value("queue", ""), "g");
  EXPECT_EQ(u64(j, "subscribers"), 2u);
  // Each message reached one member: the members' total is the messages published (nothing
  // dropped with these rings), not twice that.
  EXPECT_EQ(u64(j, "received") + u64(j, "dropped"), 20000u) << j.dump();
  EXPECT_EQ(u64(j, "dropped"), 0u) << j.dump();
  ASSERT_EQ(j["subs"].size(), 2u);
  EXPECT_EQ(u64(j["subs"][0], "msgs") + u64(j["subs"][1], "msgs"), u64(j, "received"));
}

TEST(BenchCli, StreamMeasuresAcknowledgedPublishesAndTheirReplay) {
  StoreDir store;
  std::vector<std::string> args = kBroker;
  args.insert(args.end(), {"--store-dir", store.path});
  BrokerProcess broker(unique_bus_name(), args);
  ASSERT_TRUE(broker.ready()) << broker.log();
  cli_ok(broker.bus_name(), {"stream", "add", "B", "--subjects", "b.>"});
  const BenchRun run = bench({"b.x", "--stream", "B", "--msgs", "2000", "--size", "64", "--json", "--bus", broker.bus_name()});
  ASSERT_TRUE(run.status.exited && run.status.code == 0) << run.describe;
  json j = json::parse(run.out, nullptr, /*allow_exceptions=*/false);
  ASSERT_TRUE(j.is_object()) << run.out;
  EXPECT_EQ(j["mode"], "stream");
  EXPECT_EQ(j["msgs"], 2000);
  EXPECT_EQ(j["replay_msgs"], 2000) << "the replay reads back every message of the run";
  EXPECT_GT(j["ack_msgs_per_s"].get<double>(), 0.0);
  EXPECT_GT(j["replay_msgs_per_s"].get<double>(), 0.0);
  const auto& lat = j["ack_latency_ns"];
  EXPECT_LE(lat["p50"].get<std::uint64_t>(), lat["p99"].get<std::uint64_t>());
  EXPECT_LE(lat["p99"].get<std::uint64_t>(), lat["max"].get<std::uint64_t>());
  EXPECT_TRUE(holds(cli_ok(broker.bus_name(), {"stream", "info", "B", "--json"}), "\"messages\": 2000"))
      << "every acknowledged publish is stored";
  // A subject another stream (or none) captures: one line, non-zero.
  const BenchRun wrong = bench({"elsewhere", "--stream", "B", "--bus", broker.bus_name()});
  EXPECT_TRUE(wrong.status.exited && wrong.status.code != 0) << wrong.describe;
  EXPECT_NE(wrong.err.find("no stream captures subject 'elsewhere'"), std::string::npos) << wrong.describe;
  const BenchRun missing = bench({"b.x", "--stream", "NOPE", "--bus", broker.bus_name()});
  EXPECT_TRUE(missing.status.exited && missing.status.code == 1) << missing.describe;
  EXPECT_NE(missing.err.find("stream not found"), std::string::npos) << missing.describe;
}

TEST(BenchCli, ErrorsAreOneLine) {
  // No broker: exit 1, one line.
  const BenchRun none = bench({"s", "--bus", unique_bus_name(), "--json"});
  EXPECT_TRUE(none.status.exited && none.status.code == 1) << none.describe;
  EXPECT_NE(none.err.find("no broker"), std::string::npos) << none.describe;
  EXPECT_EQ(none.err.find('\n'), none.err.size() - 1) << none.describe;
  EXPECT_EQ(none.out, "");

  BrokerProcess broker(unique_bus_name(), kBroker);
  ASSERT_TRUE(broker.ready()) << broker.log();
  struct Case {
    std::vector<std::string> args;
    int code;
    const char* message;
  };
  const std::vector<Case> cases = {
      {{"a.*"}, 2, "invalid subject"},
      {{"s", "--size", "32KiB"}, 1, "max_payload"},
      {{"s", "--bogus"}, 2, "--bogus"},
      {{"s", "--latency", "--request"}, 2, "--latency and --request"},
      {{"s", "--sub", "1", "--queue", "bad group"}, 2, "queue group"},
  };
  for (const auto& c : cases) {
    auto args = c.args;
    args.insert(args.end(), {"--bus", broker.bus_name()});
    const BenchRun run = bench(args);
    EXPECT_TRUE(run.status.exited && run.status.code == c.code) << run.describe;
    EXPECT_NE(run.err.find(c.message), std::string::npos) << run.describe;
    EXPECT_EQ(run.err.find('\n'), run.err.size() - 1) << "one line: " << run.describe;
    EXPECT_EQ(run.out, "") << run.describe;
  }
}

}  // namespace
}  // namespace bus::test

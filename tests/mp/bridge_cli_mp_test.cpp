// bridge_cli_mp_test — the bridge as busd embeds it (`busd --nats ...`), and the one-line
// refusals of `bus bridge` and `busd` for bad flags, a bad configuration file and a missing
// broker. Real processes: a nats-server on a free port, busd, bus bridge; the bus side of the
// test is this process's own connections. (tests/mp/bridge_mp_test.cpp has the cluster tests.)
#include <gtest/gtest.h>

#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include "bus/bus.hpp"
#include "mp/process_harness.hpp"

namespace bus::test {
namespace {

std::string nats_server_binary() {
  for (const char* p : {"/usr/bin/nats-server", "/usr/sbin/nats-server"}) {
    if (::access(p, X_OK) == 0) return p;
  }
  return {};
}

std::size_t lines_of(const std::string& text) {
  return static_cast<std::size_t>(std::count(text.begin(), text.end(), '\n'));
}

/// `nats-server -a 127.0.0.1 -p -1` (any free port), and the URL it listens on.
struct NatsServer {
  ChildProcess process;
  std::string url;
  bool start() {
    const std::string binary = nats_server_binary();
    if (binary.empty()) return false;
    process = ChildProcess::spawn({binary, "-a", "127.0.0.1", "-p", "-1"});
    const auto line = process.wait_for_line(Stream::err, "Listening for client connections on", 10s);
    if (!line) return false;
    url = "nats://" + line->substr(line->rfind(' ') + 1);
    return true;
  }
};

Result<Connection> connect_with_retry(const std::string& bus) {
  const auto deadline = std::chrono::steady_clock::now() + 10s;
  for (;;) {
    auto c = Connection::connect(bus);
    if (c || std::chrono::steady_clock::now() > deadline) return c;
    std::this_thread::sleep_for(50ms);
  }
}

/// Up to `count` messages other than probes (a late probe may still arrive), each within 5 s.
std::vector<std::string> receive_data(Subscription& sub, std::size_t count) {
  std::vector<std::string> out;
  while (out.size() < count) {
    auto m = sub.next(5s);
    if (!m) break;
    if (m->data != "probe") out.push_back(m->data);
  }
  return out;
}

/// Publishes a probe on `from` until `to` receives one (interest crosses asynchronously), then
/// drains the probes.
::testing::AssertionResult probe(Connection& from, Subscription& to, const std::string& subject) {
  const auto deadline = std::chrono::steady_clock::now() + 10s;
  for (;;) {
    (void)from.publish(subject, "probe");
    if (auto got = to.next(100ms); got && got->data == "probe") break;
    if (std::chrono::steady_clock::now() > deadline) return ::testing::AssertionFailure() << "no probe on " << subject << " crossed";
  }
  while (to.next(200ms)) {
  }
  return ::testing::AssertionSuccess();
}

TEST(BridgeCliMp, busd_runs_the_bridge_in_process_and_stops_it_on_sigterm) {
  NatsServer nats;
  if (nats_server_binary().empty()) GTEST_SKIP() << "no nats-server";
  ASSERT_TRUE(nats.start()) << nats.process.describe();
  const std::string a = unique_bus_name(), b = unique_bus_name();
  BrokerProcess busd_a(a, {"--nats", nats.url, "--export", "x.>", "--import", "x.>", "--bridge-name", "embedded"});
  ASSERT_TRUE(busd_a.ready()) << busd_a.log();
  BrokerProcess busd_b(b);
  ASSERT_TRUE(busd_b.ready());
  auto bridge_b = spawn_cli({"bridge", "--bus", b, "--nats", nats.url, "--export", "x.>", "--import", "x.>",
                             "--bridge-name", "b"});
  ASSERT_TRUE(bridge_b.wait_for_line(Stream::err, "bridging bus", 10s)) << bridge_b.describe();

  auto on_a = connect_with_retry(a);
  auto on_b = connect_with_retry(b);
  ASSERT_TRUE(on_a && on_b);
  auto sub_b = on_b->subscribe("x.>");
  auto sub_a = on_a->subscribe("x.>");
  ASSERT_TRUE(sub_b && sub_a);
  ASSERT_TRUE(probe(*on_a, *sub_b, "x.probe.a"));
  ASSERT_TRUE(probe(*on_b, *sub_a, "x.probe.b"));
  while (sub_a->next(200ms)) {
  }
  for (int i = 1; i <= 50; ++i) ASSERT_TRUE(on_a->publish("x.data", "m" + std::to_string(i)));
  const auto got = receive_data(*sub_b, 50);
  EXPECT_EQ(got, numbered("m", 50)) << "bus B, through busd A's embedded bridge";
  const auto own = receive_data(*sub_a, 50);
  EXPECT_EQ(own, numbered("m", 50)) << "bus A's own subscriber, once each";
  EXPECT_FALSE(sub_a->next(300ms)) << "an extra message on bus A: a loop";

  (void)sub_a->unsubscribe();
  (void)sub_b->unsubscribe();
  (void)on_a->close();
  (void)on_b->close();
  const auto stopped = busd_a.stop();
  ASSERT_TRUE(stopped && stopped->success()) << busd_a.log();
  EXPECT_TRUE(holds(busd_a.log(), "bus bridge embedded: stopped")) << busd_a.log();
  bridge_b.kill(SIGTERM);
  EXPECT_TRUE(exits_ok(bridge_b));
}

TEST(BridgeCliMp, bad_flags_and_files_are_one_line_errors_with_exit_2) {
  const std::string bus = unique_bus_name();
  struct Case {
    std::vector<std::string> args;
    std::string says;
  };
  StoreDir dir;
  const std::string config = dir.path + "/bridge.json";
  std::ofstream(config) << R"({"nats": "nats://127.0.0.1:4222", "export": ["x.>"], "exprt": ["y"]})";
  const std::string broken = dir.path + "/broken.json";
  std::ofstream(broken) << "{ not json";
  const std::vector<Case> cases = {
      {{"bridge", "--bus", bus}, "nothing to bridge"},
      {{"bridge", "--bus", bus, "--nats", "nats://127.0.0.1:1", "--export", "a..b"}, "export 'a..b'"},
      {{"bridge", "--bus", bus, "--nats", "nats://127.0.0.1:1", "--import", "x.>", "--prefix", "host1"}, "must end with '.'"},
      {{"bridge", "--bus", bus, "--bridge-config", config}, "unknown field 'exprt'"},
      {{"bridge", "--bus", bus, "--bridge-config", broken}, "not JSON"},
      {{"bridge", "--bus", bus, "--nats", "nats://127.0.0.1:1", "--export", "x", "--bridge-name", "a.b"}, "one subject token"},
      {{"bridge", "--bus", bus, "--nats", "nats://127.0.0.1:1", "--export-stream", "A.B"}, "one subject token"},
  };
  for (const auto& c : cases) {
    auto p = spawn_cli(c.args);
    EXPECT_TRUE(exits_with(p, 2)) << c.says;
    EXPECT_TRUE(holds(p.err(), c.says)) << p.describe();
    EXPECT_EQ(lines_of(p.err()), 1u) << p.describe();
  }
  // busd refuses the same way, before it serves anything.
  auto busd = ChildProcess::spawn({busd_path(), "--bus", bus, "--nats", "nats://127.0.0.1:1", "--import", "x.>.y"});
  EXPECT_TRUE(exits_with(busd, 2));
  EXPECT_TRUE(holds(busd.err(), "import 'x.>.y'")) << busd.describe();
  EXPECT_EQ(lines_of(busd.err()), 1u) << busd.describe();
}

TEST(BridgeCliMp, no_broker_is_a_one_line_error_with_exit_1_and_a_down_nats_is_retried) {
  const std::string bus = unique_bus_name();
  auto p = spawn_cli({"bridge", "--bus", bus, "--nats", "nats://127.0.0.1:1", "--export", "x.>"});
  EXPECT_TRUE(exits_with(p, 1));
  EXPECT_EQ(lines_of(p.err()), 1u) << p.describe();
  // A NATS that is not there is not an error: the bridge starts and keeps trying.
  BrokerProcess busd(bus);
  ASSERT_TRUE(busd.ready());
  auto bridge = spawn_cli({"bridge", "--bus", bus, "--nats", "nats://127.0.0.1:1", "--export", "x.>", "--reconnect-wait", "100ms"});
  // start() logs "not reachable yet" while connecting, "bridging bus" once it serves STATUSZ.
  ASSERT_TRUE(bridge.wait_for_line(Stream::err, "bridging bus", 10s)) << bridge.describe();
  EXPECT_TRUE(holds(bridge.err(), "not reachable yet")) << bridge.describe();
  auto status = cli_ok(bus, {"req", "$BUS.BRIDGE.bridge.STATUSZ", "", "--raw"});
  EXPECT_TRUE(holds(status, "\"nats_connected\":false")) << status;
  bridge.kill(SIGTERM);
  EXPECT_TRUE(exits_ok(bridge));
}

}  // namespace
}  // namespace bus::test

// monitoring_mp_test.cpp — monitoring across real processes: busd with its HTTP port, the bus CLI
// (server info/report/ls/clean, top, events, sub, pub), curl and promtool.
//
// The workload is known exactly, so the counters are checked for equality, not plausibility.
// Every broker runs with --statsz 0 and no streams unless a test needs them: its own clients
// then publish only the events the test causes.
#include <gtest/gtest.h>
#include <signal.h>
#include <unistd.h>

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "process_harness.hpp"

namespace bus::test {
namespace {

using namespace std::chrono_literals;
using nlohmann::json;

constexpr auto kStartTimeout = 10s;
constexpr auto kExitTimeout = 20s;

std::vector<std::string> broker_flags(std::vector<std::string> more = {}) {
  std::vector<std::string> f = {"--ring-bytes", "64KiB", "--max-payload", "16KiB", "--max-subscriptions", "32",
                                "--max-fanout", "32", "--max-streams", "0", "--statsz", "0", "--http",
                                "127.0.0.1:0"};
  f.insert(f.end(), more.begin(), more.end());
  return f;
}

struct Ran {
  ExitStatus status;
  std::string out, err;
};

Ran run(std::vector<std::string> argv) {
  auto p = ChildProcess::spawn(std::move(argv));
  auto st = p.wait_exit(kExitTimeout);
  EXPECT_TRUE(st) << "did not exit: " << p.describe();
  return {st.value_or(ExitStatus{}), p.out(), p.err()};
}

Ran cli(std::vector<std::string> args) {
  args.insert(args.begin(), bus_cli_path());
  return run(std::move(args));
}

json cli_json(std::vector<std::string> args) {
  const Ran r = cli(std::move(args));
  EXPECT_TRUE(r.status.success()) << r.err;
  return json::parse(r.out, nullptr, false);
}

/// GET url: (HTTP status, body).
std::pair<int, std::string> http_get(const std::string& url) {
  const Ran r = run({"/usr/bin/curl", "-s", "-w", "\n%{http_code}", url});
  const auto nl = r.out.rfind('\n');
  if (nl == std::string::npos) return {0, r.out};
  return {std::atoi(r.out.c_str() + nl + 1), r.out.substr(0, nl)};
}

std::string base_url(const std::string& bus) {
  const json v = cli_json({"server", "info", "--bus", bus, "--json"});
  return "http://127.0.0.1:" + std::to_string(v.value("http_port", 0));
}

/// The subscriptions on `pattern` in subsz order (by sid).
std::vector<json> subs_on(const std::string& bus, const std::string& pattern) {
  std::vector<json> out;
  const json j = cli_json({"server", "report", "subscriptions", "--bus", bus, "--json"});
  for (const json& s : j.value("subscriptions_list", json::array())) {
    if (s.value("subject", "") == pattern) out.push_back(s);
  }
  return out;
}

/// Waits (bounded) until `done` holds.
template <typename F>
bool eventually(F done, std::chrono::milliseconds within = 15s) {
  const auto deadline = std::chrono::steady_clock::now() + within;
  while (std::chrono::steady_clock::now() < deadline) {
    if (done()) return true;
    std::this_thread::sleep_for(50ms);
  }
  return done();
}

std::uint64_t internal_clients(const json& connz) {
  std::uint64_t n = 0;
  for (const json& c : connz["connections"]) n += c.value("kind", "") == "System" ? 1 : 0;
  return n;
}

ChildProcess start_sub(const std::string& bus, const std::string& pattern) {
  auto sub = spawn_cli({"sub", "--bus", bus, pattern, "--raw"});
  EXPECT_TRUE(sub.wait_for_line(Stream::err, "Listening on [" + pattern + "]", kStartTimeout)) << sub.describe();
  return sub;
}

// 1,000 messages to two subscribers, one of them stopped (SIGSTOP) so that its 64 KiB ring
// fills: every surface reports exactly what happened.
TEST(MonitoringMp, should_report_exactly_a_known_workload_with_one_slow_subscriber) {
  const std::string bus = unique_bus_name();
  BrokerProcess broker(bus, broker_flags());
  ASSERT_TRUE(broker.ready()) << broker.process().describe();
  auto fast = start_sub(bus, "known.work");
  auto slow = start_sub(bus, "known.work");
  ASSERT_TRUE(slow.kill(SIGSTOP));
  ASSERT_TRUE(slow.wait_stopped(5s));
  // 1,000 x ~150-byte records: far more than the stopped one's 64 KiB ring holds. In four
  // batches, each drained by the reading one before the next, so only the stopped one drops.
  const std::string body(100, 'p');
  for (int batch = 1; batch <= 4; ++batch) {
    const Ran pub = cli({"pub", "--bus", bus, "known.work", body, "--count", "250"});
    ASSERT_TRUE(pub.status.success()) << pub.err;
    ASSERT_TRUE(fast.wait_for_lines(Stream::out, 250u * batch, kExitTimeout)) << fast.describe();
  }
  ASSERT_TRUE(slow.kill(SIGCONT));

  // The slow one drains what its ring held; the broker marks the episode on its next tick.
  std::vector<json> subs;
  ASSERT_TRUE(eventually([&] {
    subs = subs_on(bus, "known.work");
    return subs.size() == 2 && subs[1].value("pending_bytes", 1) == 0 &&
           subs[1].value("msgs", 0) + subs[1].value("dropped_msgs", 0) == 1000 &&
           subs[1].value("slow_consumer_marks", 0) >= 1;
  })) << json(subs).dump(2);
  EXPECT_EQ(subs[0].value("msgs", 0), 1000) << "the draining subscriber got every message";
  EXPECT_EQ(subs[0].value("bytes", 0), 100'000);
  EXPECT_EQ(subs[0].value("dropped_msgs", -1), 0);
  const std::uint64_t slow_msgs = subs[1].value("msgs", 0u);
  const std::uint64_t slow_dropped = subs[1].value("dropped_msgs", 0u);
  EXPECT_GT(slow_dropped, 0u) << "a stopped subscriber's 64 KiB ring cannot hold 1,000 messages";
  EXPECT_GT(slow_msgs, 0u);
  EXPECT_LE(subs[1].value("high_water_bytes", 0), 64 * 1024);
  EXPECT_GT(subs[1].value("high_water_bytes", 0), 32 * 1024) << "the ring was full once";

  // The totals: the publishers have left, so their 1,000 are in the departed totals; the broker's
  // own client published the events (its in_msgs), and nothing else published.
  const json connz = cli_json({"server", "report", "connections", "--bus", bus, "--json"});
  std::uint64_t internal_in = 0;
  for (const json& c : connz["connections"]) {
    if (c.value("kind", "") == "System") internal_in += c.value("in_msgs", 0u);
  }
  const json varz = cli_json({"server", "info", "--bus", bus, "--json"});
  EXPECT_EQ(varz.value("in_msgs", 0u) - internal_in, 1000u) << varz.dump(2);
  EXPECT_EQ(varz.value("out_msgs", 0u), 1000u + slow_msgs);
  EXPECT_EQ(varz.value("dropped_msgs", 0u), slow_dropped);
  EXPECT_EQ(varz.value("undelivered_msgs", 0u), slow_dropped) << "the publishers saw each drop";
  EXPECT_EQ(varz.value("total_connections", 0u), 2u + 4u + internal_clients(connz)) << "2 subscribers, 4 publishers";
  EXPECT_GE(varz.value("slow_consumers", 0), 1);
  EXPECT_EQ(varz.value("connections", 0), 2) << "the two subscribers (the broker's own client is not counted)";
  EXPECT_EQ(varz.value("subscriptions", 0), 2);

  // The HTTP port reports the same.
  const auto [code, body_text] = http_get(base_url(bus) + "/varz");
  ASSERT_EQ(code, 200) << body_text;
  const json http_varz = json::parse(body_text, nullptr, false);
  EXPECT_EQ(http_varz.value("out_msgs", 0u), varz.value("out_msgs", 1u));
  EXPECT_EQ(http_varz.value("dropped_msgs", 0u), slow_dropped);
  EXPECT_EQ(http_varz.value("server_name", ""), bus);
}

std::optional<json> event_where(ChildProcess& events, const std::function<bool(const json&)>& match,
                                std::chrono::milliseconds within = 10s) {
  std::optional<json> found;
  events.wait_for_line_if(
      Stream::out,
      [&](std::string_view line) {
        json j = json::parse(line, nullptr, false);
        if (j.is_discarded() || !match(j)) return false;
        found = std::move(j);
        return true;
      },
      within);
  return found;
}

TEST(MonitoringMp, should_publish_connect_disconnect_slow_consumer_and_shutdown_events) {
  const std::string bus = unique_bus_name();
  BrokerProcess broker(bus, broker_flags());
  ASSERT_TRUE(broker.ready()) << broker.process().describe();
  auto events = spawn_cli({"events", "--bus", bus, "--json"});
  ASSERT_TRUE(events.wait_for_line(Stream::err, "Listening on", kStartTimeout)) << events.describe();

  // A client that closes: CONNECT, then DISCONNECT "closed" with what it published.
  auto pub = spawn_cli({"pub", "--bus", bus, "ev.closed", "hello", "--count", "3"});
  const pid_t pub_pid = pub.pid();
  ASSERT_TRUE(pub.wait_exit(kExitTimeout).value_or(ExitStatus{}).success()) << pub.describe();
  auto by_pid = [](pid_t pid, const char* type) {
    return [pid, type](const json& e) {
      return e.value("type", "") == type && e["client"].value("pid", 0) == pid;
    };
  };
  ASSERT_TRUE(event_where(events, by_pid(pub_pid, "io.nats.server.advisory.v1.client_connect"))) << events.describe();
  auto closed = event_where(events, by_pid(pub_pid, "io.nats.server.advisory.v1.client_disconnect"));
  ASSERT_TRUE(closed) << events.describe();
  EXPECT_EQ(closed->value("reason", ""), "closed");
  EXPECT_EQ((*closed)["received"].value("msgs", 0), 3);
  EXPECT_EQ((*closed)["client"].value("name", ""), "bus pub");

  // A client killed: DISCONNECT "died".
  auto victim = start_sub(bus, "ev.victim");
  const pid_t victim_pid = victim.pid();
  ASSERT_TRUE(victim.kill(SIGKILL));
  auto died = event_where(events, by_pid(victim_pid, "io.nats.server.advisory.v1.client_disconnect"));
  ASSERT_TRUE(died) << events.describe();
  EXPECT_EQ(died->value("reason", ""), "died");

  // A subscriber that stops reading: one SLOW_CONSUMER naming its subscription.
  auto slow = start_sub(bus, "ev.slow");
  ASSERT_TRUE(slow.kill(SIGSTOP));
  ASSERT_TRUE(slow.wait_stopped(5s));
  ASSERT_TRUE(cli({"pub", "--bus", bus, "ev.slow", std::string(200, 's'), "--count", "2000"}).status.success());
  auto slow_event = event_where(events, [](const json& e) {
    return e.value("type", "") == "io.bus.advisory.v1.slow_consumer" && e["subscription"].value("subject", "") == "ev.slow";
  });
  ASSERT_TRUE(slow_event) << events.describe();
  EXPECT_GT(slow_event->value("dropped", 0), 0);
  EXPECT_EQ((*slow_event)["client"].value("pid", 0), slow.pid());
  ASSERT_TRUE(slow.kill(SIGCONT));

  // Nobody but the broker publishes on $SYS.
  const Ran forged = cli({"pub", "--bus", bus, "$SYS.SERVER.x.SHUTDOWN", "{}"});
  EXPECT_FALSE(forged.status.success());
  EXPECT_NE(forged.err.find("$SYS"), std::string::npos) << forged.err;
  EXPECT_EQ(std::count(forged.err.begin(), forged.err.end(), '\n'), 1) << "one line: " << forged.err;

  // The broker stopping says so.
  ASSERT_TRUE(broker.stop().value_or(ExitStatus{}).success()) << broker.log();
  EXPECT_TRUE(event_where(events, [](const json& e) { return e.value("reason", "") == "shutdown"; }))
      << events.describe();
}

TEST(MonitoringMp, should_show_the_clients_in_one_frame_of_bus_top) {
  const std::string bus = unique_bus_name();
  BrokerProcess broker(bus, broker_flags());
  ASSERT_TRUE(broker.ready()) << broker.process().describe();
  auto sub = start_sub(bus, "top.watch");
  const Ran top = cli({"top", "--once", "--bus", bus, "--interval", "100ms"});
  ASSERT_TRUE(top.status.success()) << top.err;
  EXPECT_NE(top.out.find("bus sub top.watch"), std::string::npos) << top.out;
  EXPECT_NE(top.out.find(std::to_string(sub.pid())), std::string::npos) << top.out;
  EXPECT_NE(top.out.find("top.watch"), std::string::npos) << top.out;
  const Ran bad = cli({"top", "--once", "--bus", bus, "--sort", "nonsense"});
  EXPECT_EQ(bad.status.code, 2) << bad.err;
}

TEST(MonitoringMp, should_serve_nats_endpoints_and_prometheus_text_over_http) {
  const std::string bus = unique_bus_name();
  const std::string store = std::filesystem::temp_directory_path() / ("bus-mon-" + bus);
  std::filesystem::remove_all(store);
  auto flags = broker_flags({"--store-dir", store});
  flags.erase(std::find(flags.begin(), flags.end(), "--max-streams"), std::find(flags.begin(), flags.end(), "--max-streams") + 2);
  BrokerProcess broker(bus, flags);
  ASSERT_TRUE(broker.ready()) << broker.process().describe();
  auto orders = start_sub(bus, "orders.*");
  auto other = start_sub(bus, "other.>");
  ASSERT_TRUE(cli({"stream", "add", "--bus", bus, "KEEP", "--subjects", "kept.>"}).status.success());
  ASSERT_TRUE(cli({"pub", "--bus", bus, "--ack", "kept.x", "k", "--count", "3"}).status.success());
  const std::string url = base_url(bus);

  auto [hcode, health] = http_get(url + "/healthz");
  EXPECT_EQ(hcode, 200);
  EXPECT_EQ(json::parse(health, nullptr, false).value("status", ""), "ok") << health;

  auto [scode, subsz] = http_get(url + "/subsz?test=orders.eu");
  ASSERT_EQ(scode, 200) << subsz;
  const json s = json::parse(subsz, nullptr, false);
  ASSERT_EQ(s["subscriptions_list"].size(), 1u) << subsz;
  EXPECT_EQ(s["subscriptions_list"][0].value("subject", ""), "orders.*");
  EXPECT_EQ(s["subscriptions_list"][0].value("pid", 0), orders.pid());

  auto [jcode, jsz] = http_get(url + "/jsz?streams=1");
  ASSERT_EQ(jcode, 200) << jsz;
  const json j = json::parse(jsz, nullptr, false);
  EXPECT_EQ(j.value("streams", 0), 1) << jsz;
  EXPECT_EQ(j.value("messages", 0), 3) << jsz;

  EXPECT_EQ(http_get(url + "/connz?sort=bogus").first, 400);
  EXPECT_EQ(http_get(url + "/subsz?test=bad..subject").first, 400);

  auto [mcode, metrics] = http_get(url + "/metrics");
  ASSERT_EQ(mcode, 200);
  EXPECT_NE(metrics.find("bus_subscription_msgs_total{bus=\"" + bus + "\",sid="), std::string::npos) << metrics;
  const Ran check = run({"/bin/sh", "-c", "/usr/bin/curl -sf " + url + "/metrics | /usr/bin/promtool check metrics"});
  EXPECT_TRUE(check.status.success()) << check.out << check.err;
  (void)other;
  broker.stop();
  std::filesystem::remove_all(store);
}

TEST(MonitoringMp, should_clean_a_stale_segment_and_keep_live_and_adoptable_ones) {
  const std::string stale = unique_bus_name(), adoptable = unique_bus_name(), live = unique_bus_name();
  BrokerProcess dying(stale, broker_flags());
  ASSERT_TRUE(dying.ready());
  ASSERT_TRUE(dying.crash());  // kill -9: its segment stays in /dev/shm
  ASSERT_TRUE(std::filesystem::exists(segment_path(stale)));

  BrokerProcess orphaning(adoptable, broker_flags());
  ASSERT_TRUE(orphaning.ready());
  auto client = start_sub(adoptable, "still.here");
  ASSERT_TRUE(orphaning.crash());

  BrokerProcess serving(live, broker_flags());
  ASSERT_TRUE(serving.ready());

  const json ls = cli_json({"server", "ls", "--json"});
  auto state_of = [&](const std::string& name) {
    for (const json& b : ls) {
      if (b.value("name", "") == name) return b.value("state", "");
    }
    return std::string("absent");
  };
  EXPECT_EQ(state_of(stale), "stale");
  EXPECT_EQ(state_of(adoptable), "stale");
  EXPECT_EQ(state_of(live), "live");

  const json cleaned = cli_json({"server", "clean", "--json", stale, adoptable, live});
  ASSERT_EQ(cleaned.size(), 3u) << cleaned.dump(2);
  EXPECT_FALSE(std::filesystem::exists(segment_path(stale))) << cleaned.dump(2);
  EXPECT_TRUE(std::filesystem::exists(segment_path(adoptable))) << "a live client still uses it: " << cleaned.dump(2);
  EXPECT_TRUE(std::filesystem::exists(segment_path(live)));

  // The adoptable bus: a new broker takes it, the client comes back and says so.
  BrokerProcess adopting(adoptable, broker_flags());
  ASSERT_TRUE(adopting.ready()) << adopting.process().describe();
  json client_entry;
  EXPECT_TRUE(eventually([&] {
    const json connz = cli_json({"server", "report", "connections", "--bus", adoptable, "--json"});
    for (const json& c : connz["connections"]) {
      if (c.value("pid", 0) == client.pid()) client_entry = c;
    }
    return client_entry.value("reconnects", 0) == 1;
  })) << client_entry.dump(2);
  const json info = cli_json({"server", "info", "--bus", adoptable, "--json"});
  EXPECT_EQ(info.value("broker_restarts", 0), 1);
}

}  // namespace
}  // namespace bus::test

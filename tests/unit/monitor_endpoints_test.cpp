// monitor_endpoints_test.cpp — the monitoring documents rendered from a snapshot made by hand:
// sorting and paging of /connz, /subsz?test=, /healthz, Prometheus escaping, NATS's durations,
// and the --http address forms.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <string>

#include "bus/monitor.hpp"
#include "monitor/endpoints.hpp"
#include "monitor/http_server.hpp"
#include "monitor/snapshot.hpp"

namespace bus::detail::monitor {
namespace {

using nlohmann::json;

BusSnapshot sample() {
  BusSnapshot s;
  s.bus_name = "unit";
  s.server_id = "00000000000000AB";
  s.broker_alive = true;
  s.now_unix_ns = 2'000'000'000'000'000'000ull;
  s.broker_start_unix_ns = s.now_unix_ns - 3'723'000'000'000ull;
  for (std::uint32_t i = 0; i < 3; ++i) {
    ClientSnapshot c;
    c.cid = i;
    c.pid = 100 + i;
    c.name = "client " + std::to_string(i);
    c.in_msgs = (i + 1) * 10;  // 10, 20, 30
    c.out_msgs = 100 - i;
    c.start_unix_ns = s.broker_start_unix_ns + i;
    s.clients.push_back(c);
  }
  s.clients[1].name = "quote\" back\\slash";
  const char* patterns[] = {"orders.*", "orders.>", "other.>"};
  for (std::uint32_t i = 0; i < 3; ++i) {
    SubscriptionSnapshot x;
    x.sid = i;
    x.pattern = patterns[i];
    x.owner_cid = i;
    x.owner_live = true;
    x.delivered_msgs = 5 * (i + 1);
    x.ring_bytes = 4096;
    s.subscriptions.push_back(x);
  }
  return s;
}

TEST(MonitorEndpoints, should_sort_and_page_connections_by_nats_keys) {
  const BusSnapshot s = sample();
  const json all = connz(s, {ConnSort::msgs_from, 0, 1024, false});
  ASSERT_EQ(all["connections"].size(), 3u);
  EXPECT_EQ(all["connections"][0]["cid"], 2) << "msgs_from sorts the busiest publisher first";
  EXPECT_EQ(all["connections"][2]["cid"], 0);
  const json page = connz(s, {ConnSort::cid, 1, 1, false});
  ASSERT_EQ(page["connections"].size(), 1u);
  EXPECT_EQ(page["connections"][0]["cid"], 1);
  EXPECT_EQ(page["total"], 3);
  EXPECT_FALSE(parse_conn_sort("bogus"));
  EXPECT_EQ(parse_conn_sort("bytes_to"), ConnSort::bytes_to);
}

TEST(MonitorEndpoints, should_list_only_the_subscriptions_a_subject_reaches) {
  const json j = subsz(sample(), {false, SubSort::sid, 0, 1024, "orders.eu"});
  ASSERT_EQ(j["subscriptions_list"].size(), 2u) << j.dump(2);
  EXPECT_EQ(j["subscriptions_list"][0]["subject"], "orders.*");
  EXPECT_EQ(j["subscriptions_list"][1]["subject"], "orders.>");
  EXPECT_EQ(j["num_subscriptions"], 3);
  const json deep = subsz(sample(), {false, SubSort::msgs, 0, 1024, "orders.eu.new"});
  ASSERT_EQ(deep["subscriptions_list"].size(), 1u) << "'*' is one token only";
  EXPECT_EQ(deep["subscriptions_list"][0]["subject"], "orders.>");
  EXPECT_FALSE(subsz(sample(), {false, SubSort::sid, 0, 1024, {}}).contains("subscriptions_list"));
}

TEST(MonitorEndpoints, should_say_unhealthy_without_a_live_broker) {
  BusSnapshot s = sample();
  EXPECT_EQ(healthz(s)["status"], "ok");
  s.broker_alive = false;
  EXPECT_EQ(healthz(s)["status"], "unavailable");
  EXPECT_FALSE(bus::monitor::healthy(s));
  s.broker_alive = true;
  s.heartbeat_age_ns = 5'000'000'000ull;
  EXPECT_FALSE(bus::monitor::healthy(s)) << "a broker that stopped stamping its heartbeat";
}

TEST(MonitorEndpoints, should_escape_prometheus_label_values) {
  const std::string text = prometheus(sample());
  EXPECT_NE(text.find("name=\"quote\\\" back\\\\slash\""), std::string::npos) << text;
  EXPECT_NE(text.find("# TYPE bus_in_msgs_total counter"), std::string::npos);
  EXPECT_NE(text.find("bus_subscription_msgs_total{bus=\"unit\",sid=\"2\",subject=\"other.>\""), std::string::npos);
}

TEST(MonitorEndpoints, should_print_durations_as_nats_does) {
  EXPECT_EQ(duration_text(3'723'000'000'000ull), "1h2m3s");
  EXPECT_EQ(duration_text(61'000'000'000ull), "1m1s");
  EXPECT_EQ(duration_text(1'500'000'000ull), "1.5s");
  EXPECT_EQ(duration_text(250'000'000ull), "250ms");
  EXPECT_EQ(varz(sample())["uptime"], "1h2m3s");
}

TEST(MonitorEndpoints, should_parse_the_monitoring_address_forms) {
  auto port_only = parse_http_address("8222");
  ASSERT_TRUE(port_only);
  EXPECT_EQ(port_only->first, "127.0.0.1") << "loopback unless told";
  EXPECT_EQ(port_only->second, 8222);
  EXPECT_EQ(parse_http_address(":9")->first, "127.0.0.1");
  EXPECT_EQ(parse_http_address("0.0.0.0:80")->first, "0.0.0.0");
  EXPECT_EQ(parse_http_address("[::1]:80")->first, "::1");
  EXPECT_FALSE(parse_http_address("eighty"));
  EXPECT_FALSE(parse_http_address("70000"));
  EXPECT_FALSE(parse_http_address("host:"));
}

}  // namespace
}  // namespace bus::detail::monitor

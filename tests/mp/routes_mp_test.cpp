// routes_mp_test.cpp — the broker's route table under pressure: more subjects in flight than
// `--max-routes`. The broker takes routes back; publishers notice (the route's version changes,
// its subject no longer matches) and resolve again. Nothing may be lost or misdelivered, in
// this process or in another one whose route was taken.
#include <gtest/gtest.h>

#include <chrono>
#include <map>
#include <string>

#include "bus/bus.hpp"
#include "process_harness.hpp"

using namespace std::chrono_literals;
using namespace bus::test;

TEST(RoutesMp, should_deliver_every_message_when_subjects_outnumber_the_route_table) {
  const std::string bus_name = unique_bus_name();
  BrokerProcess broker(bus_name, {"--ring-bytes", "1MiB", "--max-payload", "16KiB", "--max-routes", "4",
                                  "--max-subscriptions", "8", "--max-fanout", "8"});
  ASSERT_TRUE(broker.ready()) << broker.process().describe();
  auto conn = bus::Connection::connect(bus_name);
  ASSERT_TRUE(conn) << conn.error().message;
  auto sub = conn->subscribe("ev.>");
  ASSERT_TRUE(sub) << sub.error().message;

  // Another process keeps publishing on its own subject; its route gets taken back too.
  auto other = ChildProcess::spawn({test_peer_path(), "pub", bus_name, "ev.other", "400", "500", "other-"});

  constexpr int kSubjects = 40;
  constexpr int kRounds = 5;
  std::map<std::string, int> next_expected;
  int own = 0;
  int from_other = 0;
  for (int round = 0; round < kRounds; ++round) {
    for (int k = 0; k < kSubjects; ++k) {
      const std::string subject = "ev.s" + std::to_string(k);
      ASSERT_TRUE(conn->publish(subject, std::to_string(round))) << subject;
      // Our own message must arrive before the next publish (messages from `other` may too).
      for (;;) {
        auto msg = sub->next(2s);
        ASSERT_TRUE(msg) << "round " << round << " subject " << subject << ": " << msg.error().message;
        if (msg->subject == "ev.other") {
          ASSERT_EQ(msg->data, "other-" + std::to_string(++from_other));
          continue;
        }
        ASSERT_EQ(msg->subject, subject);
        ASSERT_EQ(msg->data, std::to_string(round));
        ++own;
        break;
      }
    }
  }
  EXPECT_EQ(own, kSubjects * kRounds);
  auto status = other.wait_exit(30s);
  ASSERT_TRUE(status) << other.describe();
  ASSERT_TRUE(status->success()) << other.describe();
  while (from_other < 400) {
    auto msg = sub->next(2s);
    ASSERT_TRUE(msg) << "missing messages from the other process after " << from_other;
    ASSERT_EQ(msg->data, "other-" + std::to_string(++from_other));
  }
  EXPECT_EQ(sub->dropped_count(), 0u);
}

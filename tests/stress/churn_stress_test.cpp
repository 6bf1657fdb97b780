// churn_stress_test.cpp — subscriptions come and go, rings are recycled under live publishers.
//
// The hazards: a publisher holding a stale route to a ring that was recycled for another
// subscription (ABA), a record torn by recycling, a subscription that stops receiving after a
// slot was reused. Two publisher processes publish flat out on `churn.a.*` and `churn.b.*`;
// the test process subscribes to one family, reads a few messages, unsubscribes, switches to the
// other family, thousands of times, with only 4 subscription slots so every ring is reused over
// and over. Every message must match the pattern of the subscription it arrived on and carry
// its own subject as payload prefix (a misrouted or torn record fails one of the two).
#include <gtest/gtest.h>

#include <chrono>
#include <string>

#include "bus/bus.hpp"
#include "mp/process_harness.hpp"

using namespace std::chrono_literals;
using namespace bus::test;

TEST(ChurnStress, should_never_deliver_a_message_to_the_wrong_subscription_while_rings_are_recycled) {
  const std::string bus_name = unique_bus_name();
  BrokerProcess broker(bus_name, {"--ring-bytes", "64KiB", "--max-payload", "4KiB", "--max-subscriptions", "4",
                                  "--max-fanout", "4"});
  ASSERT_TRUE(broker.ready()) << broker.process().describe();
  auto conn = bus::Connection::connect(bus_name);
  ASSERT_TRUE(conn) << conn.error().message;

  // Publishers: PREFIX = subject, so a payload always starts with the subject it was sent on.
  auto pub_a = ChildProcess::spawn({test_peer_path(), "pub", bus_name, "churn.a.x", "100000000", "20", "churn.a.x:"});
  auto pub_b = ChildProcess::spawn({test_peer_path(), "pub", bus_name, "churn.b.y", "100000000", "20", "churn.b.y:"});

  const auto end = std::chrono::steady_clock::now() + 8s;
  int rounds = 0;
  long received = 0;
  while (std::chrono::steady_clock::now() < end) {
    const std::string pattern = (rounds % 2 == 0) ? "churn.a.*" : "churn.b.*";
    auto sub = conn->subscribe(pattern);
    ASSERT_TRUE(sub) << "round " << rounds << ": " << sub.error().message << "\n" << broker.log();
    for (int i = 0; i < 3; ++i) {
      auto msg = sub->next(2s);
      ASSERT_TRUE(msg) << "round " << rounds << " (" << pattern << "): " << msg.error().message
                       << "\n" << pub_a.describe() << pub_b.describe();
      ASSERT_TRUE(bus::subject_matches(pattern, msg->subject)) << msg->subject << " on " << pattern;
      ASSERT_EQ(msg->data.rfind(msg->subject + ":", 0), 0u) << "torn or misrouted: " << msg->data;
      ++received;
    }
    ASSERT_TRUE(sub->unsubscribe());
    ++rounds;
  }
  EXPECT_GT(rounds, 50) << "too few rounds to have recycled every ring many times";
  EXPECT_FALSE(pub_a.exited()) << pub_a.describe();
  EXPECT_FALSE(pub_b.exited()) << pub_b.describe();
  RecordProperty("rounds", rounds);
  RecordProperty("received", static_cast<int>(received));
}

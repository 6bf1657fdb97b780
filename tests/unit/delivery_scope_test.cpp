// delivery_scope_test — the two things the NATS bridge asks of the publish path
// (client/connection_impl.hpp: DeliveryScope, proxy subscriptions), with an embedded broker:
//   * a scoped publish reaches only the plain subscriptions, or only one member of one group;
//   * a queue group with a proxy is left to NATS: plain publishers deliver to none of its
//     members, while a scoped publish for the group still picks one.
#include <gtest/gtest.h>

#include <unistd.h>

#include <chrono>
#include <string>

#include "bus/bus.hpp"
#include "client/connection_impl.hpp"
#include "client/subscription_impl.hpp"

namespace bus {
namespace {

using namespace std::chrono_literals;

std::string bus_name(const char* what) { return std::string("scope-") + what + "-" + std::to_string(::getpid()); }

/// How many messages `sub` holds right now (without waiting).
std::size_t drain(Subscription& sub) {
  std::size_t n = 0;
  for (;;) {
    auto got = sub.try_poll([](const MessageView&) {}, 64);
    if (!got || got.value() == 0) return n;
    n += got.value();
  }
}

struct DeliveryScopeTest : ::testing::Test {
  void start(const char* what) {
    auto b = Broker::start({.bus_name = bus_name(what), .ring_bytes = 64u << 10, .max_payload = 4096, .log = false});
    ASSERT_TRUE(b) << b.error().message;
    broker = std::move(b).value();
    auto c = Connection::connect(bus_name(what));
    ASSERT_TRUE(c) << c.error().message;
    conn = std::move(c).value();
  }
  detail::ConnectionImpl& impl() { return *detail::ConnectionAccess::impl(conn); }
  Broker broker;
  Connection conn;
};

TEST_F(DeliveryScopeTest, ScopedPublishReachesPlainOrOneGroup) {
  start("scoped");
  auto plain = conn.subscribe("x.>");
  auto w1 = conn.queue_subscribe("x.jobs", "workers");
  auto w2 = conn.queue_subscribe("x.jobs", "workers");
  auto other = conn.queue_subscribe("x.jobs", "others");
  ASSERT_TRUE(plain && w1 && w2 && other);

  const detail::DeliveryScope plain_only{true, {}};
  for (int i = 0; i < 10; ++i) ASSERT_TRUE(impl().publish("x.jobs", {}, {}, "p", nullptr, {}, &plain_only));
  EXPECT_EQ(drain(*plain), 10u);
  EXPECT_EQ(drain(*w1) + drain(*w2) + drain(*other), 0u);

  const detail::DeliveryScope workers{false, "workers"};
  for (int i = 0; i < 10; ++i) {
    auto n = impl().publish("x.jobs", {}, {}, "w", nullptr, {}, &workers);
    ASSERT_TRUE(n);
    EXPECT_EQ(n.value(), 1u);
  }
  EXPECT_EQ(drain(*plain), 0u);
  EXPECT_EQ(drain(*other), 0u);
  const std::size_t a = drain(*w1), b = drain(*w2);
  EXPECT_EQ(a + b, 10u);
  EXPECT_GT(a, 0u);  // round robin: both members work
  EXPECT_GT(b, 0u);

  const detail::DeliveryScope nobody{false, "nosuchgroup"};
  auto none = impl().publish("x.jobs", {}, {}, "n", nullptr, {}, &nobody);
  ASSERT_TRUE(none);
  EXPECT_EQ(none.value(), 0u);
}

TEST_F(DeliveryScopeTest, AProxyLeavesTheGroupToNats) {
  start("proxy");
  auto plain = conn.subscribe("x.>");
  auto w1 = conn.queue_subscribe("x.jobs", "workers");
  auto w2 = conn.queue_subscribe("x.jobs", "workers");
  ASSERT_TRUE(plain && w1 && w2);
  SubscribeOptions so;
  so.queue_group = "workers";
  auto proxy = impl().subscribe("x.*", so, /*proxy=*/true);
  ASSERT_TRUE(proxy) << proxy.error().message;

  for (int i = 0; i < 10; ++i) ASSERT_TRUE(conn.publish("x.jobs", "m"));
  EXPECT_EQ(drain(*plain), 10u);
  EXPECT_EQ(drain(*w1) + drain(*w2), 0u);  // the bridge's export carries them to NATS's pick
  // A subject the proxy's pattern does not cover keeps the local pick.
  auto w3 = conn.queue_subscribe("y.jobs", "workers");
  ASSERT_TRUE(w3);
  ASSERT_TRUE(conn.publish("y.jobs", "m"));
  EXPECT_EQ(drain(*w3), 1u);

  // What NATS picked for this bus comes back scoped to the group: one member here.
  const detail::DeliveryScope workers{false, "workers"};
  for (int i = 0; i < 10; ++i) ASSERT_TRUE(impl().publish("x.jobs", {}, {}, "w", nullptr, {}, &workers));
  EXPECT_EQ(drain(*w1) + drain(*w2), 10u);
  EXPECT_EQ(drain(*plain), 0u);

  // Without the proxy (NATS away), the bus picks its own members again.
  ASSERT_TRUE((*proxy)->unsubscribe());
  for (int i = 0; i < 10; ++i) ASSERT_TRUE(conn.publish("x.jobs", "m"));
  EXPECT_EQ(drain(*w1) + drain(*w2), 10u);
  EXPECT_EQ(drain(*plain), 10u);
}

TEST_F(DeliveryScopeTest, ImportedRecordsAreMarked) {
  start("origin");
  auto sub = conn.subscribe("x.>");
  ASSERT_TRUE(sub);
  ASSERT_TRUE(conn.publish("x.local", "a"));
  auto other = Connection::connect(bus_name("origin"));
  ASSERT_TRUE(other);
  detail::ConnectionAccess::impl(*other)->set_origin(7);
  ASSERT_TRUE(other->publish("x.imported", "b"));
  auto first = sub->next(1s);
  auto second = sub->next(1s);
  ASSERT_TRUE(first && second);
  EXPECT_EQ(first->imported_by, 0u);
  EXPECT_EQ(second->subject, "x.imported");
  EXPECT_EQ(second->imported_by, 7u);
}

}  // namespace
}  // namespace bus

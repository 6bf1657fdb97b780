// drain_mp_test.cpp — Subscription::drain() on a handler subscription: stops new deliveries,
// hands over what is already in the ring, returns promptly (it once deadlocked on the dispatch
// thread's lock), and leaves the slot reusable.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <string>
#include <thread>

#include "bus/bus.hpp"
#include "process_harness.hpp"

using namespace std::chrono_literals;
using namespace bus::test;

TEST(DrainMp, should_deliver_what_is_in_the_ring_then_stop_and_return_promptly) {
  const std::string bus_name = unique_bus_name();
  BrokerProcess broker(bus_name, {"--ring-bytes", "1MiB", "--max-payload", "16KiB"});
  ASSERT_TRUE(broker.ready()) << broker.process().describe();
  auto conn = bus::Connection::connect(bus_name);
  ASSERT_TRUE(conn) << conn.error().message;

  std::atomic<int> handled{0};
  std::atomic<bool> gate{false};
  auto sub = conn->subscribe("drain.>", [&](const bus::MessageView&) {
    while (!gate.load()) std::this_thread::sleep_for(1ms);  // hold the first message: a backlog forms
    handled.fetch_add(1);
  });
  ASSERT_TRUE(sub) << sub.error().message;

  auto pub = ChildProcess::spawn({test_peer_path(), "pub", bus_name, "drain.x", "200", "0", "m"});
  auto status = pub.wait_exit(10s);
  ASSERT_TRUE(status && status->success()) << pub.describe();

  gate.store(true);
  const auto start = std::chrono::steady_clock::now();
  ASSERT_TRUE(sub->drain());
  const auto took = std::chrono::steady_clock::now() - start;
  EXPECT_EQ(handled.load(), 200) << "drain must hand over every message already in the ring";
  EXPECT_LT(took, 900ms) << "drain waited for claims that could not exist";

  // Nothing more arrives after drain(), and the slot can be used again.
  ASSERT_TRUE(conn->publish("drain.x", "late"));
  std::this_thread::sleep_for(50ms);
  EXPECT_EQ(handled.load(), 200);
  auto again = conn->subscribe("drain.>");
  ASSERT_TRUE(again) << again.error().message;
  ASSERT_TRUE(conn->publish("drain.y", "fresh"));
  auto msg = again->next(2s);
  ASSERT_TRUE(msg) << msg.error().message;
  EXPECT_EQ(msg->data, "fresh");
}

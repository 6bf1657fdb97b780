// msg_ids_test.cpp — the Nats-Msg-Id table (journal/msg_ids.hpp): once per id within the
// window, across handles and threads; collisions, expiry, stale claims, a full table, damage.
#include <gtest/gtest.h>

#include <atomic>
#include <cstdio>
#include <ctime>
#include <string>
#include <thread>
#include <vector>

#include "journal/msg_ids.hpp"
#include "temp_dir.hpp"

namespace bus::detail::journal {
namespace {

std::uint64_t now_ns() {
  timespec ts{};
  ::clock_gettime(CLOCK_REALTIME, &ts);
  return static_cast<std::uint64_t>(ts.tv_sec) * 1'000'000'000ull + static_cast<std::uint64_t>(ts.tv_nsec);
}

const auto kAlwaysSame = [](std::uint64_t) { return true; };
constexpr std::uint64_t kMinute = 60'000'000'000ull;

TEST(MsgIdTable, should_report_an_id_stored_within_the_window_as_a_duplicate_of_its_sequence) {
  bus::test::TempDir dir;
  auto t = MsgIdTable::open(dir.sub("ids"), kMinute);
  ASSERT_TRUE(t) << t.error().message;
  auto first = t->claim("order-1", now_ns(), kAlwaysSame);
  ASSERT_TRUE(first);
  EXPECT_EQ(first->duplicate_of, 0u) << "new";
  ASSERT_GE(first->slot, 0);
  t->commit(*first, 7, now_ns());
  // Another handle (another process maps the same file) sees it.
  auto other = MsgIdTable::attach(dir.sub("ids"));
  ASSERT_TRUE(other) << other.error().message;
  auto again = other->claim("order-1", now_ns(), kAlwaysSame);
  ASSERT_TRUE(again);
  EXPECT_EQ(again->duplicate_of, 7u);
  EXPECT_EQ(other->window_ns(), kMinute);
  auto different = other->claim("order-2", now_ns(), kAlwaysSame);
  ASSERT_TRUE(different);
  EXPECT_EQ(different->duplicate_of, 0u);
}

TEST(MsgIdTable, should_store_again_after_the_window_a_release_or_a_hash_collision) {
  bus::test::TempDir dir;
  auto t = MsgIdTable::open(dir.sub("ids"), 1'000'000'000ull);
  ASSERT_TRUE(t);
  const std::uint64_t then = now_ns() - 5'000'000'000ull;  // stored 5 s ago; the window is 1 s
  auto c = t->claim("a", then, kAlwaysSame);
  ASSERT_TRUE(c);
  t->commit(*c, 3, then);
  auto later = t->claim("a", now_ns(), kAlwaysSame);
  ASSERT_TRUE(later);
  EXPECT_EQ(later->duplicate_of, 0u) << "outside the window: stored again";
  t->release(*later);  // its append failed
  auto retry = t->claim("a", now_ns(), kAlwaysSame);
  ASSERT_TRUE(retry);
  EXPECT_EQ(retry->duplicate_of, 0u) << "a released claim is no duplicate";
  t->commit(*retry, 9, now_ns());
  auto collision = t->claim("a", now_ns(), [](std::uint64_t) { return false; });
  ASSERT_TRUE(collision);
  EXPECT_EQ(collision->duplicate_of, 0u) << "the stored message does not carry the id: not a duplicate";
}

TEST(MsgIdTable, should_take_over_a_claim_its_publisher_never_finished) {
  bus::test::TempDir dir;
  auto t = MsgIdTable::open(dir.sub("ids"), kMinute);
  ASSERT_TRUE(t);
  auto dead = t->claim("x", now_ns() - 3'000'000'000ull, kAlwaysSame);  // claimed 3 s ago, never committed
  ASSERT_TRUE(dead);
  const auto start = std::chrono::steady_clock::now();
  auto c = t->claim("x", now_ns(), kAlwaysSame);
  ASSERT_TRUE(c);
  EXPECT_EQ(c->duplicate_of, 0u);
  EXPECT_GE(c->slot, 0) << "taken over";
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(1)) << "no wait for a stale claim";
  // A fresh unfinished claim is waited for, within a bound, and then taken over too.
  auto live = t->claim("y", now_ns(), kAlwaysSame);
  ASSERT_TRUE(live);
  const auto t0 = std::chrono::steady_clock::now();
  auto waited = t->claim("y", now_ns(), kAlwaysSame);
  ASSERT_TRUE(waited);
  const auto took = std::chrono::steady_clock::now() - t0;
  EXPECT_GE(took, std::chrono::milliseconds(500));
  EXPECT_LT(took, std::chrono::seconds(5));
}

TEST(MsgIdTable, should_let_concurrent_publishers_of_one_id_store_it_once) {
  bus::test::TempDir dir;
  auto t = MsgIdTable::open(dir.sub("ids"), kMinute);
  ASSERT_TRUE(t);
  constexpr int kIds = 2000;
  std::atomic<int> stored{0}, duplicates{0};
  std::atomic<std::uint64_t> next_seq{1};
  std::vector<std::thread> threads;
  for (int th = 0; th < 3; ++th) {
    threads.emplace_back([&] {
      auto mine = MsgIdTable::attach(dir.sub("ids"));
      ASSERT_TRUE(mine);
      for (int i = 0; i < kIds; ++i) {
        auto c = mine->claim("id-" + std::to_string(i), now_ns(), kAlwaysSame);
        ASSERT_TRUE(c);
        if (c->duplicate_of != 0) {
          ++duplicates;
        } else {
          ++stored;
          mine->commit(*c, next_seq++, now_ns());
        }
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(stored.load(), kIds) << "each id stored once";
  EXPECT_EQ(duplicates.load(), 2 * kIds);
  EXPECT_EQ(t->forgotten(), 0u);
}

TEST(MsgIdTable, should_forget_the_oldest_id_when_every_slot_in_reach_is_live) {
  bus::test::TempDir dir;
  auto t = MsgIdTable::open(dir.sub("ids"), kMinute, /*slots=*/32);
  ASSERT_TRUE(t);
  for (int i = 0; i < 40; ++i) {
    auto c = t->claim("id-" + std::to_string(i), now_ns(), kAlwaysSame);
    ASSERT_TRUE(c);
    ASSERT_EQ(c->duplicate_of, 0u);
    t->commit(*c, static_cast<std::uint64_t>(i) + 1, now_ns());
  }
  EXPECT_EQ(t->forgotten(), 8u) << "32 slots: 8 ids pushed out, counted";
  auto newest = t->claim("id-39", now_ns(), kAlwaysSame);
  ASSERT_TRUE(newest);
  EXPECT_EQ(newest->duplicate_of, 40u) << "the newest are kept";
}

TEST(MsgIdTable, should_refuse_a_damaged_file) {
  bus::test::TempDir dir;
  ASSERT_TRUE(MsgIdTable::open(dir.sub("ids"), kMinute, 64));
  std::FILE* f = std::fopen(dir.sub("ids").c_str(), "r+b");
  ASSERT_NE(f, nullptr);
  const std::uint32_t bad_slots = 1u << 30;  // would put slots far past the end of the file
  std::fseek(f, 12, SEEK_SET);
  std::fwrite(&bad_slots, sizeof bad_slots, 1, f);
  std::fclose(f);
  auto t = MsgIdTable::attach(dir.sub("ids"));
  ASSERT_FALSE(t);
  EXPECT_EQ(t.error().code, Errc::journal_corrupt);
  EXPECT_FALSE(MsgIdTable::attach(dir.sub("missing")));
}

}  // namespace
}  // namespace bus::detail::journal

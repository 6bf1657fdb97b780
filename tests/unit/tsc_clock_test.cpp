// The journal's record clock (os/tsc_clock.hpp): CLOCK_REALTIME from the TSC must stay within
// a re-anchoring span of clock_gettime, never go back within a thread, and keep up across
// threads and idle spells.
#include <gtest/gtest.h>

#include <chrono>
#include <cstdio>
#include <string>
#include <cstdint>
#include <thread>
#include <vector>

#include "os/process.hpp"
#include "os/tsc_clock.hpp"

namespace bus::detail {
namespace {

using namespace std::chrono_literals;

// How far a reading may be outside the clock_gettime calls around it: the rate's error over
// one span between anchors (1 ms) is a few microseconds at most; preemption only widens the
// window, so it cannot fail this.
constexpr std::uint64_t kTolerance = 100'000;

// Reads the fast clock between two clock_gettime calls for `span`, checking each reading.
void check_against_clock_gettime(std::chrono::nanoseconds span) {
  const std::uint64_t end = monotonic_ns() + static_cast<std::uint64_t>(span.count());
  std::uint64_t last = 0, readings = 0;
  while (monotonic_ns() < end) {
    const std::uint64_t before = realtime_ns();
    const std::uint64_t fast = fast_realtime_ns();
    const std::uint64_t after = realtime_ns();
    ASSERT_GE(fast + kTolerance, before) << "reading " << readings << " is behind clock_gettime";
    ASSERT_LE(fast, after + kTolerance) << "reading " << readings << " is ahead of clock_gettime";
    ASSERT_GE(fast, last) << "reading " << readings << " went back";
    last = fast;
    ++readings;
  }
  EXPECT_GT(readings, 1000u);
}

TEST(TscClock, should_stay_within_100_us_of_clock_gettime_and_never_go_back) {
  check_against_clock_gettime(50ms);  // many re-anchorings, the rate measured and re-measured
}

TEST(TscClock, should_catch_up_after_a_thread_sleeps_past_its_anchor) {
  (void)fast_realtime_ns();
  std::this_thread::sleep_for(20ms);  // far past the span: the next reading re-anchors
  const std::uint64_t before = realtime_ns();
  const std::uint64_t fast = fast_realtime_ns();
  EXPECT_GE(fast + kTolerance, before);
  EXPECT_LE(fast, realtime_ns() + kTolerance);
}

TEST(TscClock, should_agree_with_clock_gettime_on_every_thread) {
  std::vector<std::thread> threads;
  std::vector<int> failures(4, 0);
  for (std::size_t i = 0; i < failures.size(); ++i) {
    threads.emplace_back([&failures, i] {
      const std::uint64_t end = monotonic_ns() + 20'000'000;
      while (monotonic_ns() < end) {
        const std::uint64_t before = realtime_ns();
        const std::uint64_t fast = fast_realtime_ns();
        if (fast + kTolerance < before || fast > realtime_ns() + kTolerance) ++failures[i];
      }
    });
  }
  for (auto& t : threads) t.join();
  for (std::size_t i = 0; i < failures.size(); ++i) EXPECT_EQ(failures[i], 0) << "thread " << i;
}

TEST(TscClock, should_read_the_tsc_where_the_kernel_keeps_time_with_it) {
  // Not a check of this machine's hardware: that the choice follows the kernel's clocksource.
  std::FILE* f = std::fopen("/sys/devices/system/clocksource/clocksource0/current_clocksource", "re");
  char name[32] = {};
  const bool read = f != nullptr && std::fgets(name, sizeof name, f) != nullptr;
  if (f != nullptr) std::fclose(f);
#if defined(__x86_64__)
  EXPECT_EQ(fast_realtime_uses_tsc(), read && std::string(name) == "tsc\n");
#else
  EXPECT_FALSE(fast_realtime_uses_tsc());
#endif
}

}  // namespace
}  // namespace bus::detail

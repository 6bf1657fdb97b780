// os/futex.hpp — shared (inter-process) futex wait/wake on a 32-bit word in the segment.
//
// Shared, not FUTEX_PRIVATE: the waiter and the waker are different processes mapping the same
// pages at different addresses; the kernel keys shared futexes by the backing page.
#pragma once

#include <linux/futex.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <climits>
#include <cstdint>
#include <ctime>

namespace bus::detail {

/// Sleeps while *word == expected, at most `timeout` (negative = no limit). Returns on wake-up,
/// value change, timeout or signal; callers re-check their condition in every case.
inline void futex_wait(std::uint32_t* word, std::uint32_t expected,
                       std::chrono::nanoseconds timeout) noexcept {
  timespec ts{};
  timespec* tsp = nullptr;
  if (timeout.count() >= 0) {
    ts.tv_sec = static_cast<time_t>(timeout.count() / 1'000'000'000);
    ts.tv_nsec = static_cast<long>(timeout.count() % 1'000'000'000);
    tsp = &ts;
  }
  ::syscall(SYS_futex, word, FUTEX_WAIT, expected, tsp, nullptr, 0);
}

/// Wakes every waiter on `word`.
inline void futex_wake_all(std::uint32_t* word) noexcept {
  ::syscall(SYS_futex, word, FUTEX_WAKE, INT_MAX, nullptr, nullptr, 0);
}

}  // namespace bus::detail

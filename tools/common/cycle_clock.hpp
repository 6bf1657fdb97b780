// tools/common/cycle_clock.hpp — a cheap timestamp for per-iteration latency samples.
//
// Provides
//   cycle_now()           TSC read (rdtsc); on non-x86, steady_clock nanoseconds
//   cycle_now_ordered()   rdtscp: waits until earlier instructions have executed — use it for the
//                         "after" stamp so the spin that ended the interval is really counted
//   CycleClock::to_ns()   ticks -> ns, calibrated once per process against steady_clock (~20 ms)
//
// Why: on the 2-vCPU VM steady_clock::now() costs ~44 ns per call, rdtsc ~16 ns; against a
// ~100-200 ns cross-core round trip the difference matters. Needs an invariant TSC
// (constant_tsc + nonstop_tsc in /proc/cpuinfo), which the kernel also relies on for clocksource=tsc.
#pragma once

#include <chrono>
#include <cstdint>
#include <thread>

#if defined(__x86_64__) || defined(__i386__)
#include <x86intrin.h>
#define BUS_BENCH_HAVE_TSC 1
#else
#define BUS_BENCH_HAVE_TSC 0
#endif

namespace bus::bench {

inline std::uint64_t cycle_now() noexcept {
#if BUS_BENCH_HAVE_TSC
  return __rdtsc();
#else
  return static_cast<std::uint64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(
                                        std::chrono::steady_clock::now().time_since_epoch())
                                        .count());
#endif
}

inline std::uint64_t cycle_now_ordered() noexcept {
#if BUS_BENCH_HAVE_TSC
  unsigned aux;
  return __rdtscp(&aux);
#else
  return cycle_now();
#endif
}

class CycleClock {
 public:
  /// Nanoseconds per tick, measured on first use.
  static double ns_per_tick() noexcept {
    static const double value = calibrate();
    return value;
  }
  static double to_ns(std::uint64_t ticks) noexcept {
    return static_cast<double>(ticks) * ns_per_tick();
  }
  static std::uint64_t from_ns(double ns) noexcept {
    return static_cast<std::uint64_t>(ns / ns_per_tick());
  }

 private:
  static double calibrate() noexcept {
#if BUS_BENCH_HAVE_TSC
    using Clock = std::chrono::steady_clock;
    const auto w0 = Clock::now();
    const std::uint64_t c0 = cycle_now_ordered();
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    const auto w1 = Clock::now();
    const std::uint64_t c1 = cycle_now_ordered();
    const double ns = std::chrono::duration<double, std::nano>(w1 - w0).count();
    return c1 > c0 ? ns / static_cast<double>(c1 - c0) : 1.0;
#else
    return 1.0;
#endif
  }
};

}  // namespace bus::bench

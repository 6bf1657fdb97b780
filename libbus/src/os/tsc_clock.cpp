// os/tsc_clock.cpp — see tsc_clock.hpp.
#include "os/tsc_clock.hpp"

#include <atomic>
#include <cstdio>
#include <cstring>

#include "os/process.hpp"

#if defined(__x86_64__)
#include <x86intrin.h>
#endif

namespace bus::detail {

namespace {

// How old an anchor may get before it is renewed with clock_gettime. The rate is measured over
// the same span: 1 ms of ticks against 1 ms of clock_gettime, each read within kMaxReadGapTicks.
constexpr std::uint64_t kReanchorNs = 1'000'000;
// A clock_gettime that took longer than this many ticks (preempted between the two TSC reads
// around it) makes no anchor: its time could belong anywhere in the gap.
constexpr std::uint64_t kMaxReadGapTicks = 4096;

bool kernel_keeps_time_with_tsc() noexcept {
#if defined(__x86_64__)
  std::FILE* f = std::fopen("/sys/devices/system/clocksource/clocksource0/current_clocksource", "re");
  if (f == nullptr) return false;
  char name[32] = {};
  const bool read = std::fgets(name, sizeof name, f) != nullptr;
  std::fclose(f);
  return read && std::strncmp(name, "tsc", 3) == 0 && (name[3] == '\n' || name[3] == '\0');
#else
  return false;
#endif
}

// 0: not looked yet, 1: yes, 2: no. An atomic rather than a guarded static: threads that race
// to look find the same answer, and a child forked meanwhile never inherits a half-taken guard.
std::atomic<int> g_tsc_usable{0};

bool tsc_usable() noexcept {
  int v = g_tsc_usable.load(std::memory_order_relaxed);
  if (v == 0) [[unlikely]] {
    v = kernel_keeps_time_with_tsc() ? 1 : 2;
    g_tsc_usable.store(v, std::memory_order_relaxed);  // relaxed: the value is all it carries
  }
  return v == 1;
}

#if defined(__x86_64__)
struct Anchor {
  std::uint64_t tsc = 0;  // the anchor: a TSC reading and the CLOCK_REALTIME read with it
  std::uint64_t ns = 0;
  std::uint64_t base_tsc = 0;  // where the rate is measured from (0: nowhere yet)
  std::uint64_t base_ns = 0;
  std::uint64_t ns_per_tick_q32 = 0;  // 32.32 fixed point; 0: no rate yet
  std::uint64_t max_ticks = 0;        // kReanchorNs in ticks, at that rate
  int rejected = 0;                   // rates refused in a row (see below)
  std::uint64_t last = 0;             // the last value handed out (never go back)
};

thread_local Anchor t_anchor;

// Never backwards by the little an extrapolation may be ahead of the next anchor; a real step
// of the clock back (more than a re-anchoring span) is followed, as clock_gettime follows it.
std::uint64_t hand_out(Anchor& a, std::uint64_t ns) noexcept {
  if (ns > a.last || ns + kReanchorNs < a.last) a.last = ns;
  return a.last;
}

// Takes a new anchor, and from the span since the rate's base a new rate. A rate more than
// 1% off the one in use is a clock step (settimeofday, NTP) inside the span, not the TSC's
// rate changing: refused, unless three in a row say so (then the old one was the odd one).
std::uint64_t reanchor(Anchor& a) noexcept {
  const std::uint64_t before = __rdtsc();
  const std::uint64_t ns = realtime_ns();
  const std::uint64_t after = __rdtsc();
  if (after - before <= kMaxReadGapTicks) {
    const std::uint64_t tsc = before + (after - before) / 2;
    if (a.base_tsc == 0 || tsc <= a.base_tsc || ns <= a.base_ns || ns - a.base_ns > 4 * kReanchorNs) {
      a.base_tsc = tsc;  // (re)start measuring from here
      a.base_ns = ns;
    } else if (ns - a.base_ns >= kReanchorNs / 2) {
      const std::uint64_t dt = tsc - a.base_tsc, dn = ns - a.base_ns;
      const std::uint64_t rate = (dn << 32) / dt;  // dn <= 4 ms < 2^22: no overflow
      const std::uint64_t old = a.ns_per_tick_q32;
      const bool close = old == 0 || (rate > old - old / 100 && rate < old + old / 100);
      if (rate != 0 && (close || ++a.rejected >= 3)) {
        a.ns_per_tick_q32 = rate;
        a.max_ticks = (kReanchorNs << 32) / rate;
        a.rejected = 0;
      }
      a.base_tsc = tsc;
      a.base_ns = ns;
    }
    a.tsc = tsc;
    a.ns = ns;
  }
  return hand_out(a, ns);
}
#endif

}  // namespace

bool fast_realtime_uses_tsc() noexcept { return tsc_usable(); }

std::uint64_t fast_realtime_ns() noexcept {
#if defined(__x86_64__)
  if (!tsc_usable()) return realtime_ns();
  Anchor& a = t_anchor;
  const std::uint64_t ticks = __rdtsc() - a.tsc;  // wraps to huge if the TSC read went back
  if (a.ns_per_tick_q32 == 0 || ticks >= a.max_ticks) [[unlikely]] return reanchor(a);
  // ticks < max_ticks (~3 M at 3 GHz) times a rate below 2^32 (~1.4e9): no overflow.
  return hand_out(a, a.ns + ((ticks * a.ns_per_tick_q32) >> 32));
#else
  return realtime_ns();
#endif
}

}  // namespace bus::detail

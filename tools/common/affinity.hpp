// tools/common/affinity.hpp — pinning the calling thread (or a single-threaded process, e.g. a
// freshly forked child) to one CPU, for benchmarks that put each side of a channel on its own core.
//
//   pin_to_cpu(cpu)      pins the calling thread; if the CPU does not exist or is not allowed
//                        here it prints a warning, changes nothing and returns false
//   ScopedAffinity       pins for a scope and restores the previous mask on destruction
//   current_cpu()        the CPU the caller runs on right now (sched_getcpu), -1 if unknown
//   configured_cpu_count()
//
// Linux only. Nothing here allocates after construction; warnings go to stderr.
#pragma once

#include <sched.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>

namespace bus::bench {

/// How many CPUs the kernel knows (online or not); 0 if it cannot tell.
inline int configured_cpu_count() noexcept {
  const long n = ::sysconf(_SC_NPROCESSORS_CONF);
  return n > 0 ? static_cast<int>(n) : 0;
}

/// The CPU the caller is running on at this instant, or -1.
inline int current_cpu() noexcept { return ::sched_getcpu(); }

/// Pins the calling thread to `cpu`. Returns true on success. If `cpu` does not exist, is offline
/// or is outside this process's cpuset, prints a warning and leaves the affinity as it was.
/// A negative `cpu` means "don't pin" and returns false without a warning.
inline bool pin_to_cpu(int cpu) noexcept {
  if (cpu < 0) return false;
  const int known = configured_cpu_count();
  if (cpu >= CPU_SETSIZE || (known > 0 && cpu >= known)) {
    std::fprintf(stderr, "warning: pin_to_cpu(%d): no such CPU (%d configured); not pinned\n", cpu,
                 known);
    return false;
  }
  cpu_set_t set;
  CPU_ZERO(&set);
  CPU_SET(cpu, &set);
  // pid 0 = the calling thread. The kernel migrates the thread before returning.
  if (::sched_setaffinity(0, sizeof(set), &set) != 0) {
    std::fprintf(stderr, "warning: pin_to_cpu(%d): sched_setaffinity: %s; not pinned\n", cpu,
                 std::strerror(errno));
    return false;
  }
  return true;
}

/// Pins the calling thread for the lifetime of the object, then restores the mask it had.
/// Construct and destroy on the same thread.
class ScopedAffinity {
 public:
  explicit ScopedAffinity(int cpu) noexcept {
    CPU_ZERO(&saved_);
    have_saved_ = ::sched_getaffinity(0, sizeof(saved_), &saved_) == 0;
    pinned_ = pin_to_cpu(cpu);
  }
  ~ScopedAffinity() {
    if (pinned_ && have_saved_) ::sched_setaffinity(0, sizeof(saved_), &saved_);
  }
  ScopedAffinity(const ScopedAffinity&) = delete;
  ScopedAffinity& operator=(const ScopedAffinity&) = delete;

  /// False if pin_to_cpu() refused (the warning has been printed).
  bool pinned() const noexcept { return pinned_; }

 private:
  cpu_set_t saved_;
  bool have_saved_ = false;
  bool pinned_ = false;
};

}  // namespace bus::bench

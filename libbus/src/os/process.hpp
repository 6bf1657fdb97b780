// os/process.hpp — process identity that survives pid reuse, and small OS helpers.
//
// A pid alone is not an identity: after a process dies the kernel may hand its pid to an
// unrelated process. pid + start time (field 22 of /proc/<pid>/stat, clock ticks since boot) is
// unique for the life of the machine, and a pidfd refers to exactly one process.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <optional>
#include <string>

namespace bus::detail {

/// Start time of `pid` in clock ticks since boot, or nullopt if it does not exist.
std::optional<std::uint64_t> process_start_ticks(pid_t pid) noexcept;

/// Opens a pidfd (readable once the process exits), or -1.
int open_pidfd(pid_t pid) noexcept;

/// True if the process (pid, start_ticks) is still running.
bool process_alive(pid_t pid, std::uint64_t start_ticks) noexcept;

/// True if `pid`'s real, effective or supplementary groups include `gid` (/proc/<pid>/status).
bool process_in_group(pid_t pid, gid_t gid) noexcept;

/// CLOCK_MONOTONIC and CLOCK_REALTIME in nanoseconds.
std::uint64_t monotonic_ns() noexcept;
std::uint64_t realtime_ns() noexcept;

/// "what: strerror(errno)".
std::string errno_message(const char* what, int err);

}  // namespace bus::detail

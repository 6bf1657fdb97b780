#include "os/process.hpp"

#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <ctime>

namespace bus::detail {

namespace {

// Field `wanted` (1-based, as in proc(5)) of /proc/<pid>/stat; `p` points at the space after ')'.
std::optional<std::uint64_t> parse_stat_field(const char* p, int wanted) noexcept {
  // At the space after ')' we are still in field 2 (the command); each space moves one on.
  int field = 2;
  while (*p != '\0' && field < wanted) {
    if (*p == ' ') ++field;
    ++p;
  }
  if (field != wanted) return std::nullopt;
  char* end = nullptr;
  const unsigned long long value = std::strtoull(p, &end, 10);
  if (end == p) return std::nullopt;
  return static_cast<std::uint64_t>(value);
}

std::optional<std::uint64_t> parse_start_ticks(const char* p) noexcept { return parse_stat_field(p, 22); }

}  // namespace

std::optional<std::uint64_t> process_start_ticks(pid_t pid) noexcept {
  char path[64];
  std::snprintf(path, sizeof path, "/proc/%d/stat", static_cast<int>(pid));
  std::FILE* f = std::fopen(path, "re");
  if (f == nullptr) return std::nullopt;
  char buf[1024];
  const std::size_t n = std::fread(buf, 1, sizeof buf - 1, f);
  std::fclose(f);
  buf[n] = '\0';
  // The command name (field 2) may contain spaces and ')'; fields resume after the last ')'.
  const char* p = std::strrchr(buf, ')');
  if (p == nullptr) return std::nullopt;
  return parse_start_ticks(p + 1);
}

int open_pidfd(pid_t pid) noexcept {
#ifdef SYS_pidfd_open
  return static_cast<int>(::syscall(SYS_pidfd_open, pid, 0));
#else
  (void)pid;
  errno = ENOSYS;
  return -1;
#endif
}

bool process_alive(pid_t pid, std::uint64_t start_ticks) noexcept {
  // Dead only on positive evidence: callers skip a dead writer's record at once, so a process
  // we merely failed to look at (EMFILE, a sandbox) must count as alive.
  char path[64];
  std::snprintf(path, sizeof path, "/proc/%d/stat", static_cast<int>(pid));
  std::FILE* f = std::fopen(path, "re");
  if (f == nullptr) return errno != ENOENT && errno != ESRCH;
  char buf[1024];
  const std::size_t n = std::fread(buf, 1, sizeof buf - 1, f);
  std::fclose(f);
  buf[n] = '\0';
  const char* p = std::strrchr(buf, ')');
  if (p == nullptr || p[1] != ' ') return n == 0;  // vanished while we read it: gone
  // A zombie (exited, not yet reaped by its parent) still has a /proc entry: it is dead to us,
  // unless only its main thread exited (pthread_exit) and other threads, which may be
  // publishing, still run: then num_threads (field 20) counts them.
  if (p[2] == 'X') return false;
  if (p[2] == 'Z') {
    const auto threads = parse_stat_field(p + 1, 20);
    if (!threads || *threads <= 1) return false;
  }
  const auto ticks = parse_start_ticks(p + 1);
  return !ticks || *ticks == start_ticks;  // another start time: the pid was reused
}

bool process_in_group(pid_t pid, gid_t gid) noexcept {
  char path[64];
  std::snprintf(path, sizeof path, "/proc/%d/status", static_cast<int>(pid));
  std::FILE* f = std::fopen(path, "re");
  if (f == nullptr) return false;
  char line[4096];
  bool found = false;
  while (!found && std::fgets(line, sizeof line, f) != nullptr) {
    // "Gid:\treal\teffective\tsaved\tfs" and "Groups:\tg1 g2 ...".
    const bool gids = std::strncmp(line, "Gid:", 4) == 0;
    const bool groups = std::strncmp(line, "Groups:", 7) == 0;
    if (!gids && !groups) continue;
    const char* p = line + (gids ? 4 : 7);
    for (int field = 0; *p != '\0' && (groups || field < 2); ++field) {
      char* end = nullptr;
      const unsigned long value = std::strtoul(p, &end, 10);
      if (end == p) break;
      if (static_cast<gid_t>(value) == gid) found = true;
      p = end;
    }
  }
  std::fclose(f);
  return found;
}

std::uint64_t monotonic_ns() noexcept {
  timespec ts{};
  ::clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<std::uint64_t>(ts.tv_sec) * 1'000'000'000ull + static_cast<std::uint64_t>(ts.tv_nsec);
}

std::uint64_t realtime_ns() noexcept {
  timespec ts{};
  ::clock_gettime(CLOCK_REALTIME, &ts);
  return static_cast<std::uint64_t>(ts.tv_sec) * 1'000'000'000ull + static_cast<std::uint64_t>(ts.tv_nsec);
}

std::string errno_message(const char* what, int err) {
  return std::string(what) + ": " + std::strerror(err);
}

}  // namespace bus::detail

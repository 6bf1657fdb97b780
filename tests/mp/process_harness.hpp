// process_harness.hpp — child processes for the multi-process tests.
//
//   ChildProcess p = ChildProcess::spawn({bus_cli(), "sub", "--bus", name, "a.>"});
//   ASSERT_TRUE(p.wait_for_line(Stream::err, "Listening on", 5s));
//   auto status = p.wait_exit(5s);                 // nullopt on timeout
//
// A child is started with fork+exec; its stdout and stderr go to pipes that the harness reads
// without blocking into buffers, whenever a wait_*() call runs (children never block on a full
// pipe for long, because every wait pumps). Every wait takes a timeout: nothing here can hang.
// The destructor SIGKILLs and reaps a child that is still around, so a failed ASSERT leaves no
// orphans behind.
//
// BrokerProcess runs `busd --bus NAME [flags]` and waits until it logs `serving bus`.
#pragma once

#include <sys/types.h>

#include <gtest/gtest.h>

#include "bus/subscription.hpp"

#include <chrono>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace bus::test {

using namespace std::chrono_literals;

enum class Stream { out, err };

/// How a child ended.
struct ExitStatus {
  bool exited = false;  ///< normal exit (then `code` is valid), else killed by `signal`
  int code = -1;
  int signal = 0;

  bool success() const noexcept { return exited && code == 0; }
  std::string describe() const;
};

class ChildProcess {
 public:
  using Env = std::vector<std::pair<std::string, std::string>>;  ///< added to (or overriding) ours
  using LinePredicate = std::function<bool(std::string_view line)>;

  /// Starts argv[0] (a path) with argv. A failed fork/pipe is reported as pid() == -1; a failed
  /// exec makes the child exit 127 with the reason on its stderr.
  static ChildProcess spawn(std::vector<std::string> argv, const Env& env = {});

  ChildProcess() = default;
  ChildProcess(ChildProcess&& other) noexcept;
  ChildProcess& operator=(ChildProcess&& other) noexcept;
  ChildProcess(const ChildProcess&) = delete;
  ChildProcess& operator=(const ChildProcess&) = delete;
  ~ChildProcess();  ///< SIGKILL + reap if still running

  pid_t pid() const noexcept { return pid_; }
  bool started() const noexcept { return pid_ > 0; }
  const std::vector<std::string>& argv() const noexcept { return argv_; }

  /// Waits until a complete line of `stream` contains `substring` (or satisfies `predicate`);
  /// returns that line, or nullopt on timeout or when the stream ended without one.
  std::optional<std::string> wait_for_line(Stream stream, std::string_view substring,
                                           std::chrono::milliseconds timeout);
  std::optional<std::string> wait_for_line_if(Stream stream, const LinePredicate& predicate,
                                              std::chrono::milliseconds timeout);
  /// Waits until `stream` holds at least `count` complete lines; false on timeout/EOF.
  bool wait_for_lines(Stream stream, std::size_t count, std::chrono::milliseconds timeout);

  /// Waits for the child to end (reaping it). nullopt on timeout; the child keeps running.
  std::optional<ExitStatus> wait_exit(std::chrono::milliseconds timeout);
  /// Waits until the child is stopped (e.g. it raised SIGSTOP). False on timeout or if it ended.
  bool wait_stopped(std::chrono::milliseconds timeout);
  /// Sends `signal`; false when the child was already reaped (no pid-reuse accidents).
  bool kill(int signal);
  /// Reaped already?
  bool exited() const noexcept { return status_.has_value(); }
  const std::optional<ExitStatus>& status() const noexcept { return status_; }

  /// Reads whatever the pipes hold now (no waiting).
  void pump();
  /// Everything captured so far.
  const std::string& output(Stream stream) const noexcept { return stream == Stream::out ? out_ : err_; }
  const std::string& out() const noexcept { return out_; }
  const std::string& err() const noexcept { return err_; }
  /// Complete lines captured so far (a trailing partial line counts once its stream ended).
  std::vector<std::string> lines(Stream stream) const;
  /// "argv... | stdout: ... | stderr: ..." for assertion messages.
  std::string describe() const;

 private:
  // Reads the pipes, waiting at most `wait` for data; also notices the child's exit/stop.
  void pump_for(std::chrono::milliseconds wait);
  void poll_status(bool untraced);
  void close_fds();
  void reset();  // SIGKILL + reap if still running, close the pipes
  bool stream_open(Stream stream) const noexcept { return (stream == Stream::out ? out_fd_ : err_fd_) >= 0; }

  pid_t pid_ = -1;
  std::vector<std::string> argv_;
  int out_fd_ = -1;
  int err_fd_ = -1;
  std::string out_;
  std::string err_;
  std::optional<ExitStatus> status_;
  bool stopped_ = false;
};

/// Directory of busd and bus, and the test_peer helper, from the build.
std::string busd_path();
std::string bus_cli_path();
std::string test_peer_path();

/// A unique bus name for this process: "t-<pid>-<counter>".
std::string unique_bus_name();
/// /dev/shm path of a bus's segment.
std::string segment_path(std::string_view bus_name);

/// `busd --bus NAME [flags]` run as a child; ready() once it logged "serving bus". Meant for
/// GoogleTest tests: its destructor reports a busd that does not stop cleanly as a failure.
class BrokerProcess {
 public:
  explicit BrokerProcess(std::string bus_name, std::vector<std::string> extra_flags = {},
                         std::chrono::milliseconds ready_timeout = 10s);
  BrokerProcess(BrokerProcess&&) noexcept = default;
  BrokerProcess& operator=(BrokerProcess&&) noexcept = default;
  /// stop() if still running, and a gtest failure unless busd then exits 0 (SIGKILL if it
  /// hangs); removes a leftover segment.
  ~BrokerProcess();

  bool ready() const noexcept { return ready_; }
  const std::string& bus_name() const noexcept { return bus_name_; }
  ChildProcess& process() noexcept { return process_; }
  const std::string& log() { process_.pump(); return process_.err(); }

  /// SIGTERM, then waits for the exit; nullopt on timeout.
  std::optional<ExitStatus> stop(std::chrono::milliseconds timeout = 10s);
  /// kill -9, reaped; the segment is left for the next broker to adopt (the destructor then
  /// neither expects a clean exit nor removes the segment).
  bool crash(std::chrono::milliseconds timeout = 10s);

 private:
  std::string bus_name_;
  ChildProcess process_;
  bool ready_ = false;
  bool stop_requested_ = false;
  bool crashed_ = false;
};

/// Time a child gets to finish work that takes well under a second.
inline constexpr std::chrono::milliseconds kChildExitTimeout = std::chrono::seconds(20);

/// Succeeds when `p` exits with `code` within `timeout`; the failure message describes the child.
inline ::testing::AssertionResult exits_with(ChildProcess& p, int code,
                                             std::chrono::milliseconds timeout = kChildExitTimeout) {
  const auto status = p.wait_exit(timeout);
  if (!status) return ::testing::AssertionFailure() << "did not exit in time: " << p.describe();
  if (!status->exited || status->code != code) {
    return ::testing::AssertionFailure() << "expected exit " << code << ": " << p.describe();
  }
  return ::testing::AssertionSuccess();
}

inline ::testing::AssertionResult exits_ok(ChildProcess& p, std::chrono::milliseconds timeout = kChildExitTimeout) {
  return exits_with(p, 0, timeout);
}

/// `test_peer ARGS...` and `bus ARGS...` from the build, as children.
ChildProcess spawn_peer(std::vector<std::string> args, const ChildProcess::Env& env = {});
ChildProcess spawn_cli(std::vector<std::string> args, const ChildProcess::Env& env = {});

/// {prefix1, prefix2, ..., prefixN}: what `test_peer pub` and `bus pub` with {{Count}} send.
std::vector<std::string> numbered(const std::string& prefix, std::size_t count);

/// Receives `count` messages in this process, each within `per_message`; stops at the first
/// failure (so a short answer says how far it got).
std::vector<std::string> receive(Subscription& sub, std::size_t count, std::chrono::milliseconds per_message);

/// A fresh directory under /tmp (a broker's --store-dir), removed with everything in it.
struct StoreDir {
  StoreDir();
  ~StoreDir();
  StoreDir(const StoreDir&) = delete;
  StoreDir& operator=(const StoreDir&) = delete;
  std::string path;
};

/// Runs `bus ARGS --bus NAME` to its end; returns its stdout (the test fails on a non-zero exit).
std::string cli_ok(const std::string& bus, std::vector<std::string> args);

inline bool holds(const std::string& text, const std::string& needle) { return text.find(needle) != std::string::npos; }

}  // namespace bus::test

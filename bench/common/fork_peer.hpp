// bench/common/fork_peer.hpp — a forked child process running a lambda, owned RAII-style.
//
// Provides ForkPeer:
//   ForkPeer peer(cpu, [&] { ...; return 0; });   fork; the child pins itself to `cpu` (warning and
//                                                 no pin if it doesn't exist; cpu < 0 = no pin),
//                                                 runs the lambda and _exit()s with its int result
//                                                 (0 for a void lambda, kExitException if it threw)
//   wait_for(timeout)   reap the child if it exits within `timeout`; returns its status
//   kill_and_reap()     SIGKILL + blocking waitpid
//   ~ForkPeer()         kill_and_reap() if the child is still there: a benchmark that bails out
//                       early never leaves a spinning child behind
//
// Status encoding (shell style): the exit code if the child exited, 128 + signal if a signal
// killed it. The child also gets PR_SET_PDEATHSIG = SIGKILL, so it dies with the parent.
// The child inherits the parent's memory as a copy: it may read captured locals, but only memory
// in a ShmRegion is seen by both. Fork from a single-threaded benchmark thread.
#pragma once

#include <signal.h>
#include <sys/prctl.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <optional>
#include <system_error>
#include <thread>
#include <type_traits>
#include <utility>

#include "affinity.hpp"

namespace bus::bench {

class ForkPeer {
 public:
  static constexpr int kExitException = 70;  // the lambda threw
  static constexpr int kExitOrphaned = 71;   // the parent was gone before the child started

  template <class F>
  ForkPeer(int cpu, F&& body) {
    const pid_t parent = ::getpid();
    std::fflush(nullptr);  // don't let buffered parent output be written twice
    const pid_t pid = ::fork();
    if (pid < 0) throw std::system_error(errno, std::generic_category(), "fork");
    if (pid == 0) {
      ::prctl(PR_SET_PDEATHSIG, SIGKILL);
      if (::getppid() != parent) ::_exit(kExitOrphaned);  // parent died before prctl took hold
      pin_to_cpu(cpu);
      int rc = 0;
      try {
        if constexpr (std::is_void_v<std::invoke_result_t<F&>>) {
          body();
        } else {
          rc = static_cast<int>(body());
        }
      } catch (...) {
        rc = kExitException;
      }
      ::_exit(rc);  // no atexit handlers, no stdio flush, no parent-owned destructors
    }
    pid_ = pid;
  }

  ~ForkPeer() { kill_and_reap(); }
  ForkPeer(const ForkPeer&) = delete;
  ForkPeer& operator=(const ForkPeer&) = delete;

  pid_t pid() const noexcept { return pid_; }

  /// True until the child has been reaped (by wait_for, kill_and_reap or the destructor).
  bool running() noexcept {
    if (!status_) try_reap(WNOHANG);
    return !status_.has_value();
  }

  /// Waits up to `timeout` for the child to exit; returns its status, or nullopt if it is still
  /// running (it is left running: call kill_and_reap() or let the destructor do it).
  std::optional<int> wait_for(std::chrono::milliseconds timeout) noexcept {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    for (;;) {
      if (status_ || try_reap(WNOHANG)) return status_;
      if (std::chrono::steady_clock::now() >= deadline) return std::nullopt;
      std::this_thread::sleep_for(std::chrono::microseconds(200));
    }
  }

  /// SIGKILLs the child if it has not been reaped yet and waits for it; returns its status.
  std::optional<int> kill_and_reap() noexcept {
    if (status_ || pid_ <= 0) return status_;
    if (try_reap(WNOHANG)) return status_;
    ::kill(pid_, SIGKILL);
    try_reap(0);
    return status_;
  }

 private:
  // Returns true once status_ is known. With flags == 0 it blocks.
  bool try_reap(int flags) noexcept {
    int raw = 0;
    pid_t r;
    do {
      r = ::waitpid(pid_, &raw, flags);
    } while (r < 0 && errno == EINTR);
    if (r == pid_) {
      if (WIFEXITED(raw)) {
        status_ = WEXITSTATUS(raw);
      } else if (WIFSIGNALED(raw)) {
        status_ = 128 + WTERMSIG(raw);
      } else {
        return false;  // stopped/continued: not gone
      }
      return true;
    }
    if (r < 0) {  // ECHILD: someone else reaped it; treat as gone
      status_ = -1;
      return true;
    }
    return false;
  }

  pid_t pid_ = -1;
  std::optional<int> status_;
};

}  // namespace bus::bench

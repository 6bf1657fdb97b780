// os/membarrier.hpp — an asymmetric fence: nearly free on the hot side, a syscall on the cold.
//
// Dekker's pattern (each side stores its flag, then loads the other's) needs a full fence on
// both sides. publish() runs millions of times a second and close() once, so the publisher
// side uses a compiler barrier only and close() makes the kernel run a full barrier on every
// thread of the process (membarrier(2), MEMBARRIER_CMD_PRIVATE_EXPEDITED): a publisher is
// then either past its flag store (close() sees it) or not yet at its closed_ load (it sees
// closed_). Where the kernel refuses membarrier, both sides fall back to a seq_cst fence.
#pragma once

#include <linux/membarrier.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <atomic>

namespace bus::detail {

inline std::atomic<bool>& membarrier_ready() noexcept {
  static std::atomic<bool> ready{false};
  return ready;
}

/// The process that registered (0: none yet). A plain atomic, constant-initialized: no static
/// guard, which a fork could copy half-taken (a thread of the parent inside the first
/// registration when another forks: the child then waited on the guard forever).
inline std::atomic<pid_t>& membarrier_owner() noexcept {
  static std::atomic<pid_t> owner{0};
  return owner;
}

/// Registers the process for expedited membarriers (before any light_barrier() it pairs with).
/// Again in a forked child: the registration belongs to the parent's address space, not ours.
inline void register_heavy_barrier() noexcept {
  const pid_t self = ::getpid();
  // Acquire: pairs with the release below; whoever sees its pid sees the registration done.
  if (membarrier_owner().load(std::memory_order_acquire) == self) return;
  const bool registered = ::syscall(SYS_membarrier, MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED, 0, 0) == 0;
  // Release/acquire: a thread that sees `true` in light_barrier() sees the registration done.
  membarrier_ready().store(registered, std::memory_order_release);
  membarrier_owner().store(self, std::memory_order_release);
}

inline void light_barrier() noexcept {
  if (membarrier_ready().load(std::memory_order_acquire)) [[likely]] {
    std::atomic_signal_fence(std::memory_order_seq_cst);  // the compiler must not reorder
  } else {
    std::atomic_thread_fence(std::memory_order_seq_cst);
  }
}

inline void heavy_barrier() noexcept {
  if (!membarrier_ready().load(std::memory_order_acquire) ||
      ::syscall(SYS_membarrier, MEMBARRIER_CMD_PRIVATE_EXPEDITED, 0, 0) != 0) {
    std::atomic_thread_fence(std::memory_order_seq_cst);
  }
}

}  // namespace bus::detail

// shm/seqlock.hpp — the single writer's side of a seqlock word in the segment (a route, a stream
// slot): the version is odd while the entry is rewritten, and even again, with release, once it
// is whole. Readers copy the entry between two loads of the version (acquire) and keep the copy
// only if both saw the same even value.
#pragma once

#include <atomic>
#include <cstdint>

namespace bus::detail {

/// Opens the write on construction, closes it on destruction; the entry's fields are stored
/// (relaxed) in between.
class SeqlockWrite {
 public:
  explicit SeqlockWrite(std::atomic<std::uint32_t>& version) noexcept : version_(version) {
    const std::uint32_t seen = version.load(std::memory_order_relaxed);
    // Odd already only if a broker died mid-write (we are adopting): stay odd while rewriting.
    even_ = (seen & 1u) != 0 ? seen - 1 : seen;
    version.store(even_ + 1, std::memory_order_relaxed);
    // Orders the odd version before every field store that follows, so a reader that sees a new
    // field also sees the version changed.
    std::atomic_thread_fence(std::memory_order_release);
  }
  /// The release store the readers' acquire pairs with (labelled at each use: [R6], [R8]).
  ~SeqlockWrite() { version_.store(even_ + 2, std::memory_order_release); }
  SeqlockWrite(const SeqlockWrite&) = delete;
  SeqlockWrite& operator=(const SeqlockWrite&) = delete;

 private:
  std::atomic<std::uint32_t>& version_;
  std::uint32_t even_ = 0;
};

}  // namespace bus::detail

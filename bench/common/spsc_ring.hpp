// bench/common/spsc_ring.hpp — the minimal single-producer single-consumer byte ring of
// bench_baseline (BM_SpscRingThroughput), factored out so that other programs can put the same
// physical limit next to their own numbers (bench/compare/peer_limit.cpp). Same protocol as
// bench_baseline's ring; only the capacity is a template parameter and the payload bound is
// capacity / 2 instead of 1024.
//
// Provides
//   SpscRingShared<Cap>   the shared part (tail, head, data); put it in a ShmRegion / SharedObject
//                         created before fork()
//   SpscProducer<Cap>     producer state in the producer's own memory: try_push(payload, n)
//   SpscConsumer<Cap>     consumer state in the consumer's own memory: poll(handler, max)
//   spsc_record_bytes(n)  bytes one n-byte message takes: a 4-byte length word + payload, padded to 8
//
// Protocol (rigtorp-style): the producer writes length word + payload at `tail`, then
// release-stores the new tail [R4]; the consumer acquire-loads tail [A4], reads records up to it and
// release-stores its head [R5] every kHeadBatch messages or when it runs dry; the producer
// acquire-loads head [A5] only when its cached copy says the ring is full. A record never wraps: a
// record that would cross the end is preceded by a pad length word (0xFFFFFFFF) and starts at 0.
// tail, head and data each own a 128-byte block (the adjacent-line prefetcher pairs lines).
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <cstring>

namespace bus::bench {

inline constexpr std::size_t kSpscBlock = 128;
inline constexpr std::uint32_t kSpscPadLength = 0xFFFFFFFFu;
inline constexpr std::size_t kSpscLengthWord = sizeof(std::uint32_t);
inline constexpr std::size_t kSpscRecordAlign = 8;
inline constexpr std::uint32_t kSpscHeadBatch = 32;

inline constexpr std::uint64_t spsc_record_bytes(std::size_t payload) noexcept {
  return (kSpscLengthWord + payload + kSpscRecordAlign - 1) / kSpscRecordAlign * kSpscRecordAlign;
}

template <std::size_t Cap>
struct SpscRingShared {
  static_assert(Cap >= 1024 && (Cap & (Cap - 1)) == 0, "capacity: a power of two >= 1 KiB");
  static constexpr std::size_t kCapacity = Cap;
  static constexpr std::size_t kMaxPayload = Cap / 2 - kSpscLengthWord;

  alignas(kSpscBlock) std::atomic<std::uint64_t> tail{0};  // bytes ever written; producer only
  alignas(kSpscBlock) std::atomic<std::uint64_t> head{0};  // bytes ever consumed; consumer only
  alignas(kSpscBlock) std::byte data[Cap];
};

template <std::size_t Cap>
class SpscProducer {
 public:
  static constexpr std::uint64_t kMask = Cap - 1;
  explicit SpscProducer(SpscRingShared<Cap>& r) noexcept : r_(r) {}

  /// Appends one message; false if the ring lacks room even after refreshing the head.
  bool try_push(const void* payload, std::uint32_t n) noexcept {
    const std::uint64_t rec = spsc_record_bytes(n);
    std::uint64_t off = tail_ & kMask;
    const std::uint64_t pad = Cap - off < rec ? Cap - off : 0;
    if (tail_ + pad + rec - cached_head_ > Cap) {
      cached_head_ = r_.head.load(std::memory_order_acquire);  // [A5] pairs with consumer's [R5]
      if (tail_ + pad + rec - cached_head_ > Cap) return false;
    }
    if (pad != 0) {
      std::memcpy(&r_.data[off], &kSpscPadLength, kSpscLengthWord);
      tail_ += pad;
      off = 0;
    }
    std::memcpy(&r_.data[off + kSpscLengthWord], payload, n);
    std::memcpy(&r_.data[off], &n, kSpscLengthWord);
    tail_ += rec;
    r_.tail.store(tail_, std::memory_order_release);  // [R4] pairs with consumer's [A4]
    return true;
  }
  std::uint64_t tail() const noexcept { return tail_; }

 private:
  SpscRingShared<Cap>& r_;
  std::uint64_t tail_ = 0;
  std::uint64_t cached_head_ = 0;
};

template <std::size_t Cap>
class SpscConsumer {
 public:
  static constexpr std::uint64_t kMask = Cap - 1;
  explicit SpscConsumer(SpscRingShared<Cap>& r) noexcept : r_(r) {}

  /// Hands up to `max` messages to handler(const std::byte* payload, std::uint32_t len) (the
  /// pointer is into the ring: copy what you keep). Returns how many; 0 when the ring is empty
  /// (head has then been published) or corrupt() (a length the producer cannot have written).
  template <class F>
  std::size_t poll(F&& handler, std::size_t max) noexcept {
    std::size_t n = 0;
    while (n < max && !corrupt_) {
      if (head_ == cached_tail_) {
        if (head_ != published_) publish();  // running dry: hand back every byte read so far
        cached_tail_ = r_.tail.load(std::memory_order_acquire);  // [A4] pairs with [R4]
        if (head_ == cached_tail_) break;
      }
      const std::uint64_t off = head_ & kMask;
      std::uint32_t len;
      std::memcpy(&len, &r_.data[off], kSpscLengthWord);
      if (len == kSpscPadLength) {
        head_ += Cap - off;
        continue;
      }
      if (len > SpscRingShared<Cap>::kMaxPayload || head_ + spsc_record_bytes(len) > cached_tail_) {
        corrupt_ = true;
        break;
      }
      handler(&r_.data[off + kSpscLengthWord], len);
      head_ += spsc_record_bytes(len);
      ++n;
      if (++since_publish_ == kSpscHeadBatch) publish();
    }
    return n;
  }
  bool corrupt() const noexcept { return corrupt_; }

 private:
  void publish() noexcept {
    r_.head.store(head_, std::memory_order_release);  // [R5] pairs with producer's [A5]
    published_ = head_;
    since_publish_ = 0;
  }

  SpscRingShared<Cap>& r_;
  std::uint64_t head_ = 0;
  std::uint64_t cached_tail_ = 0;
  std::uint64_t published_ = 0;
  std::uint32_t since_publish_ = 0;
  bool corrupt_ = false;
};

}  // namespace bus::bench

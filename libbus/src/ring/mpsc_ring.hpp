// ring/mpsc_ring.hpp — the lock-free many-producer, single-consumer ring of one subscription.
//
// Provides MpscRing, a view over a SubscriptionLayout's ring control words and its data bytes:
//   producers: try_claim() -> begin_write() -> write the record -> commit()   (no lock, no syscall)
//   consumer:  poll()  /  prepare_sleep() + futex  /  try_unblock() for claims left by the dead
// Header-only, no OS calls: waking and sleeping are the caller's (client/subscription.cpp).
//
// Memory-ordering labels (docs/design/ring.md keeps the table):
//   [R1] producer commit: release-store of the record's state word; pairs with [A1] in poll().
//   [R2] consumer frees space: release-store of head; pairs with [A2] in try_claim(): the
//        consumer's reads of those bytes happen before producers overwrite them.
//   [R3] claim CAS (release half): the claim-lane store is ordered before the claim; pairs with
//        [A7], the broker's RMW on the tail when it removes a subscription.
//   [A3] tail loads (acquire): pair with [A7]'s release half (the bumped incarnation) and with
//        [R7], the broker's store of a recycled ring's fresh tail, so a claim never sees a stale
//        incarnation together with a new tail.
//   [R4] consumer's sleeping-bit CAS; totally ordered with every claim CAS on the tail word.
//
// Every length read from the ring is checked against the capacity before it is used; a record
// that fails a check makes poll() return PollStatus::corrupt instead of reading out of bounds.
#pragma once

#include <algorithm>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <cstring>

#include "ring/record.hpp"
#include "shm/layout.hpp"

namespace bus::detail {

enum class ClaimStatus { claimed, full, stale, too_large };
enum class PollStatus { delivered, empty, in_progress, corrupt };

/// What a producer keeps per target ring, in its own process memory.
struct ProducerCursor {
  std::uint32_t incarnation = 0;  // the incarnation its route was resolved for
  std::uint64_t cached_head = 0;  // a head it saw (<= the real one); refreshed when space looks short
};

struct Claim {
  RecordHeader* record = nullptr;
  std::uint64_t position = 0;      // the record's ring position (its state word's tag)
  std::uint32_t bytes = 0;
  bool consumer_sleeping = false;  // the claim cleared the sleeping bit: wake after commit
};

/// A committed message as the consumer sees it (points into the ring until poll() returns).
/// The lengths are copies taken once and checked: the writer (or a scribbler) may change the
/// shared header meanwhile, and nothing here re-reads it.
struct RecordView {
  const RecordHeader* header;
  std::uint16_t subject_len;
  std::uint16_t reply_len;
  std::uint32_t headers_len;
  std::uint32_t payload_len;
  const char* subject;
  const char* reply;
  const std::byte* headers;
  const std::byte* payload;
};

class MpscRing {
 public:
  MpscRing() = default;
  MpscRing(SubscriptionLayout* control, std::byte* data, std::uint32_t capacity) noexcept
      : ctl_(control), data_(data), capacity_(capacity), mask_(capacity - 1) {}

  std::uint32_t capacity() const noexcept { return capacity_; }
  SubscriptionLayout* control() const noexcept { return ctl_; }
  /// Largest record a ring accepts: half its capacity, so that one always fits in an empty ring
  /// whatever the wrap point (a record plus the padding before it).
  std::uint32_t max_record_bytes() const noexcept { return capacity_ / 2; }

  // ------------------------------------------------------------------------------- producers

  /// Claims `bytes` (a multiple of 8) for a record, owned by the caller until commit(). Never
  /// blocks: full and stale are normal outcomes.
  ClaimStatus try_claim(ProducerCursor& cursor, std::uint32_t bytes, Claim& out) noexcept {
    if (bytes > max_record_bytes() || bytes < kRecordHeaderBytes) return ClaimStatus::too_large;
    // [A3] acquire: see the header comment.
    std::uint64_t word = ctl_->tail_word.load(std::memory_order_acquire);
    std::uint32_t padding = 0;
    std::uint64_t position = 0;
    for (;;) {
      // Relaxed: ordered after the acquire load of `word` that this check belongs to ([A3]).
      if (ctl_->incarnation.load(std::memory_order_relaxed) != cursor.incarnation) {
        return ClaimStatus::stale;
      }
      position = tail_position(word);
      const auto index = static_cast<std::uint32_t>(position & mask_);
      const std::uint32_t to_end = capacity_ - index;
      padding = bytes > to_end ? to_end : 0;
      const std::uint64_t total = std::uint64_t{padding} + bytes;
      if (position - cursor.cached_head + total > capacity_) {
        // [A2] acquire: pairs with [R2]; the consumer is done with every byte below head.
        cursor.cached_head = ctl_->head_position.load(std::memory_order_acquire);
        // A head ahead of the tail can only be a scribble: treat as full, never write.
        if (cursor.cached_head > position || position - cursor.cached_head + total > capacity_) {
          return ClaimStatus::full;
        }
      }
      const std::uint64_t next = position + total;  // sleeping bit cleared: we wake the consumer
      // [R3] release: our claim-lane store is visible to the broker's [A7] RMW that follows.
      // [A3] acquire (both outcomes): a retry re-checks the incarnation against a fresh tail.
      if (ctl_->tail_word.compare_exchange_weak(word, next, std::memory_order_acq_rel,
                                                std::memory_order_acquire)) {
        break;
      }
    }
    out.consumer_sleeping = tail_sleeping(word);
    if (padding != 0) {
      auto* pad = header_at(position);
      if (padding >= 16) pad->length = padding;
      // [R1] release: the padding's length is visible before its state commits it.
      pad->state.store(position | kRecordPadding, std::memory_order_release);
      position += padding;
    }
    out.record = header_at(position);
    out.position = position;
    out.bytes = bytes;
    return ClaimStatus::claimed;
  }

  /// Fills the record header and marks the claim as being written by (client, epoch): if the
  /// writer dies before commit(), the consumer can prove it dead and skip the record
  /// (try_unblock). Every field is written: the ring is not zeroed between laps.
  static void begin_write(Claim& claim, std::uint32_t client, std::uint32_t epoch,
                          std::uint16_t subject_len, std::uint16_t reply_len,
                          std::uint32_t headers_len, std::uint32_t payload_len) noexcept {
    RecordHeader* r = claim.record;
    r->length = claim.bytes;
    r->subject_len = subject_len;
    r->reply_len = reply_len;
    r->headers_len = headers_len;
    r->payload_len = payload_len;
    r->producer_client = client;
    r->producer_epoch = epoch;
    // Release: length and owner are visible to a consumer that sees the writing state.
    r->state.store(claim.position | kRecordWriting, std::memory_order_release);
  }

  static std::byte* body(const Claim& claim) noexcept {
    return reinterpret_cast<std::byte*>(claim.record) + kRecordHeaderBytes;
  }

  static void commit(const Claim& claim) noexcept {
    // [R1] release: every byte of the record is visible before the consumer sees it committed.
    claim.record->state.store(claim.position | kRecordMessage, std::memory_order_release);
  }

  /// Address of the 32-bit futex word: the high half of tail_word, which holds the sleeping bit.
  /// A claim that clears the bit changes the word, so a FUTEX_WAIT racing with it returns.
  std::uint32_t* futex_word() const noexcept {
    static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "futex word is the high half");
    return reinterpret_cast<std::uint32_t*>(&ctl_->tail_word) + 1;
  }

  // -------------------------------------------------------------------------------- consumer

  /// Delivers up to `max_records` committed messages to `on_message(const RecordView&)`, then
  /// releases their space to producers. Returns in_progress when the head record is being
  /// written, empty when nothing is written at the head yet. `head` is the consumer's own copy
  /// of its position (single writer).
  template <class OnMessage>
  PollStatus poll(std::uint64_t& head, std::uint32_t max_records, std::uint32_t& delivered,
                  OnMessage&& on_message) noexcept {
    delivered = 0;
    PollStatus status = PollStatus::empty;
    const std::uint64_t start = head;
    while (delivered < max_records) {
      const auto index = static_cast<std::uint32_t>(head & mask_);
      const auto* rec = header_at(head);
      // [A1] acquire: pairs with [R1]; everything the producer wrote before committing is visible.
      const std::uint64_t state = rec->state.load(std::memory_order_acquire);
      if (!tagged(state, head)) break;  // not written yet (an older lap's bytes, or zeroes)
      const std::uint64_t kind = state & kRecordKindMask;
      if (kind == kRecordWriting) {
        status = PollStatus::in_progress;
        break;
      }
      std::uint32_t bytes = 0;  // read once: checked below, then used
      if (kind == kRecordPadding) {
        bytes = capacity_ - index < 16 ? capacity_ - index : rec->length;
      } else if (kind == kRecordMessage) {
        bytes = rec->length;
      } else {
        status = PollStatus::corrupt;
        break;
      }
      if (bytes == 0 || bytes % kRecordAlign != 0 || bytes > capacity_ - index) {
        status = PollStatus::corrupt;
        break;
      }
      if (kind == kRecordMessage) {
        // One read of each length, then only the copies are checked and used.
        const std::uint16_t subject_len = rec->subject_len;
        const std::uint16_t reply_len = rec->reply_len;
        const std::uint32_t headers_len = rec->headers_len;
        const std::uint32_t payload_len = rec->payload_len;
        const std::uint64_t used = std::uint64_t{kRecordHeaderBytes} + subject_len + reply_len +
                                   headers_len + payload_len;
        if (bytes < kRecordHeaderBytes || used > bytes) {
          status = PollStatus::corrupt;
          break;
        }
        const char* base = reinterpret_cast<const char*>(rec) + kRecordHeaderBytes;
        const char* headers = base + subject_len + reply_len;
        on_message(RecordView{rec, subject_len, reply_len, headers_len, payload_len, base,
                              base + subject_len, reinterpret_cast<const std::byte*>(headers),
                              reinterpret_cast<const std::byte*>(headers + headers_len)});
        ++delivered;
        status = PollStatus::delivered;
      }
      head += bytes;
    }
    if (head != start) {
      // [R2] release: our reads of the consumed bytes are done before producers may reuse them.
      ctl_->head_position.store(head, std::memory_order_release);
      if (delivered != 0) {
        // Relaxed: a statistic with one writer (this consumer).
        ctl_->delivered_msgs.store(ctl_->delivered_msgs.load(std::memory_order_relaxed) + delivered,
                                   std::memory_order_relaxed);
      }
    }
    // An empty answer does not look at the tail: that line belongs to the producers, and
    // reading it on every idle poll would cost them a cache miss on every claim. Callers that
    // need to know about claims not yet written (to sleep, or to spot a dead writer) ask
    // claimed_beyond() on their slow path.
    return status;
  }

  /// True when the record at `head` is committed (what a spinning consumer watches).
  bool committed_at(std::uint64_t head) const noexcept {
    // Relaxed: a hint to stop spinning; poll() re-reads the state with acquire ([A1]).
    const std::uint64_t state = header_at(head)->state.load(std::memory_order_relaxed);
    return tagged(state, head) && (state & kRecordKindMask) != kRecordWriting;
  }

  /// True when producers have claimed space past `head` (committed or not).
  bool claimed_beyond(std::uint64_t head) const noexcept {
    // Relaxed: a hint for choosing how to wait; no data is read on its strength.
    return tail_position(ctl_->tail_word.load(std::memory_order_relaxed)) != head;
  }

  /// Announces that the consumer is about to sleep. Succeeds only when no claim is outstanding
  /// (tail == head); then any later claim clears the bit and its producer wakes the consumer.
  /// Returns the futex value to wait on, or false if the consumer must not sleep now.
  bool prepare_sleep(std::uint64_t head, std::uint32_t& futex_value) noexcept {
    std::uint64_t word = ctl_->tail_word.load(std::memory_order_acquire);
    for (;;) {
      if (tail_position(word) != head) return false;
      if (tail_sleeping(word)) break;
      // [R4] release/acquire: totally ordered with every claim CAS on this word, which is the
      // whole lost-wake-up argument: a claim either precedes this CAS (then tail != head and we
      // do not sleep) or follows it (then it sees the bit and wakes us).
      if (ctl_->tail_word.compare_exchange_weak(word, word | kTailSleepingBit,
                                                std::memory_order_acq_rel,
                                                std::memory_order_acquire)) {
        word |= kTailSleepingBit;
        break;
      }
    }
    futex_value = static_cast<std::uint32_t>(word >> 32);
    return true;
  }

  /// Clears our sleeping bit after a timed-out or spurious wake-up (saves a producer a syscall).
  void cancel_sleep() noexcept {
    std::uint64_t word = ctl_->tail_word.load(std::memory_order_relaxed);
    while (tail_sleeping(word) &&
           !ctl_->tail_word.compare_exchange_weak(word, word & ~kTailSleepingBit,
                                                  std::memory_order_relaxed)) {
    }
  }

  /// Skips a record at `head` whose writer died before committing it. `is_dead(client, epoch)`
  /// says whether a writer identity is gone. `allow_gap_scan` permits the heuristic case of a
  /// writer that died between its claim CAS and begin_write() (only when the broker has
  /// reported a dead client that was claiming in this ring). Returns true if it unblocked.
  /// `scan_end` bounds the gap scan (the tail seen when the dead client was reported), so a
  /// claim made after that — a live writer's — is never padded over.
  template <class IsDead>
  bool try_unblock(std::uint64_t head, bool allow_gap_scan, IsDead&& is_dead,
                   std::uint64_t scan_end = ~0ull) noexcept {
    const auto index = static_cast<std::uint32_t>(head & mask_);
    auto* rec = header_at(head);
    const std::uint64_t state = rec->state.load(std::memory_order_acquire);
    if (state == (head | kRecordWriting)) {
      const std::uint32_t bytes = rec->length;
      if (bytes < kRecordHeaderBytes || bytes % kRecordAlign != 0 || bytes > capacity_ - index) return false;
      if (!is_dead(rec->producer_client, rec->producer_epoch)) return false;
      // The record is a padding of the same length now. [R1] release: length before state.
      rec->state.store(head | kRecordPadding, std::memory_order_release);
      return true;
    }
    if (tagged(state, head) || !allow_gap_scan) return false;
    // The dead writer claimed [head, X) and wrote nothing. X is the next record start: the first
    // 8-byte position P whose state word is tagged P, or the tail, or the end of the ring.
    const std::uint64_t tail =
        std::min(scan_end, tail_position(ctl_->tail_word.load(std::memory_order_acquire)));
    if (tail <= head || tail - head > capacity_) return false;
    const auto limit = static_cast<std::uint32_t>(std::min<std::uint64_t>(capacity_ - index, tail - head));
    std::uint32_t gap = kRecordAlign;
    while (gap < limit &&
           !tagged(header_at(head + gap)->state.load(std::memory_order_acquire), head + gap)) {
      gap += kRecordAlign;
    }
    if (gap < 16 && gap != capacity_ - index) return false;  // a real claim is never this short
    // Re-check the head: a live writer would have tagged it by now.
    if (tagged(rec->state.load(std::memory_order_acquire), head)) return false;
    if (gap >= 16) rec->length = gap;
    rec->state.store(head | kRecordPadding, std::memory_order_release);  // [R1]
    return true;
  }

 private:
  /// Was this state word written for the record at `position`? (Zeroes never are: kind 0.)
  static bool tagged(std::uint64_t state, std::uint64_t position) noexcept {
    return (state & ~kRecordKindMask) == position && (state & kRecordKindMask) != 0;
  }

  RecordHeader* header_at(std::uint64_t position) const noexcept {
    return reinterpret_cast<RecordHeader*>(data_ + (position & mask_));
  }

  SubscriptionLayout* ctl_ = nullptr;
  std::byte* data_ = nullptr;
  std::uint32_t capacity_ = 0;
  std::uint32_t mask_ = 0;
};

}  // namespace bus::detail

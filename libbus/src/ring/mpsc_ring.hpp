// ring/mpsc_ring.hpp — the lock-free many-producer, single-consumer ring of one subscription.
//
// Provides MpscRing, a view over a SubscriptionLayout's ring control words and its data bytes:
//   producers: try_claim() -> begin_write() -> write the record -> commit()   (no lock, no syscall)
//   consumer:  poll()  /  prepare_sleep() + futex  /  skip_claim() and skip_gap() for claims a
//              writer left stuck
// Header-only, no OS calls: waking and sleeping are the caller's (client/subscription.cpp).
//
// A producer touches a record's lines only with stores, never a load or a locked instruction:
// a store to a line the consumer last read retires into the store buffer while the line is
// fetched, a load or a CAS would wait for it (a cross-core transfer per message). So the claim
// CAS (on the tail, a line producers keep) is the one locked instruction of a publish, and the
// consumer's "I gave up on your claim" goes to the writer's own claim lane, which it checks.
//
// Memory-ordering labels (docs/design/ring.md keeps the table):
//   [R1] producer commit: release-store of the record's state word; pairs with [A1] in poll().
//   [R2] consumer frees space: release-store of head; pairs with [A2] in try_claim(): the
//        consumer's reads of those bytes happen before producers overwrite them.
//   [R3] claim CAS (release half): the claim-lane stores are ordered before the claim; pairs with
//        [A7], the broker's RMW on the tail when it removes a subscription, and with [A3] of a
//        consumer judging stuck writers.
//   [A3] tail loads (acquire): pair with [A7]'s release half (the bumped incarnation) and with
//        [R7], the broker's store of a recycled ring's fresh tail, so a claim never sees a stale
//        incarnation together with a new tail.
//   [R4] consumer's sleeping-bit CAS; totally ordered with every claim CAS on the tail word.
//   [S1] skips: the consumer marks the writer's lane (CAS, skipped bit), then CASes the record's
//        state word; the writer checks its lane before its commit store. A late writer and the
//        consumer agree on one outcome, except when the writer's check and store straddle the
//        consumer's two steps: the consumer alone then counts the loss (docs/design/ring.md).
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
enum class PollStatus { delivered, empty, corrupt };

/// What begin_write() puts in a record header (see ring/record.hpp).
struct RecordFields {
  std::uint8_t subject_len = 0;
  std::uint8_t reply_len = 0;
  std::uint16_t flags = 0;
  std::uint16_t origin = 0;
  std::uint16_t producer_client = 0;
  std::uint32_t producer_epoch = 0;
  std::uint32_t headers_len = 0;
  std::uint32_t payload_len = 0;
};

/// Outcome of try_skip(): how many bytes from the head the consumer may step over.
struct SkipResult {
  enum class Kind { none, skipped, corrupt } kind = Kind::none;
  std::uint32_t bytes = 0;
};

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
  std::uint16_t flags;
  std::uint16_t origin;
  std::uint16_t subject_len;
  std::uint16_t reply_len;
  std::uint32_t headers_len;
  std::uint32_t payload_len;
  const char* subject;
  const char* reply;
  const std::byte* headers;
  const std::byte* payload;
  std::uint64_t timestamp_ns;  // 0 unless kFlagTimestamp
  std::uint64_t sequence;      // 0 unless kFlagSequence
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
  /// blocks: full and stale are normal outcomes. Before each CAS attempt the caller's claim
  /// `lane` is set to this ring (`tag` = lane_tag(ring index)), the position claimed at and the
  /// claim's end, so the broker and the consumer can tell where a live writer may still be
  /// writing, and the consumer can step over exactly that claim if it must.
  ClaimStatus try_claim(ProducerCursor& cursor, std::uint32_t bytes, ClaimLane& lane, std::uint64_t tag,
                        Claim& out) noexcept {
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
      // Seqlock write of (claim, claim_end), all on our own line: 0 first, a release fence (no
      // instruction on x86), the end, then the word. A reader that re-reads the word unchanged
      // has this attempt's end ([A3a]).
      lane.claim.store(0, std::memory_order_relaxed);
      std::atomic_thread_fence(std::memory_order_release);
      lane.claim_end.store(next, std::memory_order_relaxed);
      // [R3a] release: our writes to the ring named before (a fan-out's previous target) are
      // done before a reader that acquires this word sees the lane leave it.
      lane.claim.store(lane_word(tag, position), std::memory_order_release);
      // [R3] release: our claim-lane stores are visible to the broker's [A7] RMW and to any
      // consumer whose acquire load of the tail reads this claim or a later one.
      // [A3] acquire (both outcomes): a retry re-checks the incarnation against a fresh tail.
      // seq_cst (the same instruction as acq_rel on x86): also orders the claim before the
      // publisher's superseded check that follows it ([SC2] in client/connection.cpp).
      if (ctl_->tail_word.compare_exchange_weak(word, next, std::memory_order_seq_cst,
                                                std::memory_order_acquire)) {
        break;
      }
    }
    out.consumer_sleeping = tail_sleeping(word);
    // [R3b] release: this attempt won. A lane without the bit names a claim its writer may not
    // own (it lost the CAS and has not retried yet), so a consumer never takes its end for a
    // claim's; between the CAS and this store a live writer is treated as "unknown".
    lane.claim.store(lane_word(tag, position) | kLaneWonBit, std::memory_order_release);
    if (padding != 0) {
      auto* pad = header_at(position);
      std::uint64_t old = pad->state.load(std::memory_order_relaxed);
      if (!tagged(old, position)) {  // the consumer may have skipped it already ([S1])
        if (padding >= 16) std::atomic_ref<std::uint32_t>(pad->length).store(padding, std::memory_order_relaxed);
        // [R1] release: the padding's length is visible before its state commits it.
        (void)pad->state.compare_exchange_strong(old, position | kRecordPadding, std::memory_order_release,
                                                 std::memory_order_relaxed);
      }
      position += padding;
    }
    out.record = header_at(position);
    out.position = position;
    out.bytes = bytes;
    return ClaimStatus::claimed;
  }

  /// Fills the record header. Plain stores, and no state change: nothing reads a claim's
  /// header before its commit, and a consumer that gives up on the claim never looks inside it
  /// (it steps over it by the length in our lane). Every field is written: the ring is not
  /// zeroed between laps.
  static void begin_write(const Claim& claim, const RecordFields& f) noexcept {
    RecordHeader* r = claim.record;
    r->length = claim.bytes;
    r->flags = f.flags;
    r->subject_len = f.subject_len;
    r->reply_len = f.reply_len;
    r->headers_len = f.headers_len;
    r->payload_len = f.payload_len;
    r->producer_client = f.producer_client;
    r->origin = f.origin;
    r->producer_epoch = f.producer_epoch;
  }

  static std::byte* body(const Claim& claim) noexcept {
    return reinterpret_cast<std::byte*>(claim.record) + kRecordHeaderBytes;
  }

  /// Publishes the record. False: the consumer gave up on this claim (we stalled past its
  /// unblock timeout, or died in its eyes) and marked our `lane`; nothing of it is delivered
  /// and the caller counts the loss. The check is a load of our own lane's line (in our cache);
  /// the commit a release store. A skip whose two steps straddle them is counted by the
  /// consumer only ([S1]; docs/design/ring.md, "State words").
  static bool commit(const Claim& claim, const ClaimLane& lane) noexcept {
    // Relaxed: the consumer sets the bit with a CAS on this word; whichever we see decides.
    if (lane_skipped(lane.claim.load(std::memory_order_relaxed))) [[unlikely]] return false;
    // [R1] release: every byte of the record is visible before the consumer sees it committed.
    claim.record->state.store(claim.position | kRecordMessage, std::memory_order_release);
    return true;
  }

  /// Address of the 32-bit futex word: the high half of tail_word, which holds the sleeping bit.
  /// A claim that clears the bit changes the word, so a FUTEX_WAIT racing with it returns.
  std::uint32_t* futex_word() const noexcept {
    static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "futex word is the high half");
    return reinterpret_cast<std::uint32_t*>(&ctl_->tail_word) + 1;
  }
  /// The futex word's present value (to wait for any change of it).
  std::uint32_t futex_value() const noexcept {
    // Relaxed: FUTEX_WAIT re-compares atomically; a stale value only returns at once.
    return static_cast<std::uint32_t>(ctl_->tail_word.load(std::memory_order_relaxed) >> 32);
  }

  // -------------------------------------------------------------------------------- consumer

  /// Delivers up to `max_records` committed messages to `on_message(const RecordView&)`, then
  /// releases their space to producers. Returns empty when nothing is committed at the head
  /// (claimed and being written looks the same: claimed_beyond() tells them apart). `head` is
  /// the consumer's own copy of its position (single writer). Space at and above `reuse_floor`
  /// stays reserved: the consumer passes it as the start of the oldest skipped record a live
  /// writer may still touch (see skip_claim()).
  template <class OnMessage>
  PollStatus poll(std::uint64_t& head, std::uint32_t max_records, std::uint32_t& delivered,
                  OnMessage&& on_message, std::uint64_t reuse_floor = ~0ull) noexcept {
    delivered = 0;
    PollStatus status = PollStatus::empty;
    const std::uint64_t start = head;
    std::uint64_t message_bytes = 0;  // headers + payload handed out (monitoring)
    while (delivered < max_records) {
      const auto index = static_cast<std::uint32_t>(head & mask_);
      const auto* rec = header_at(head);
      // [A1] acquire: pairs with [R1]; everything the producer wrote before committing is visible.
      const std::uint64_t state = rec->state.load(std::memory_order_acquire);
      if (!tagged(state, head)) break;  // not written yet (an older lap's bytes, or zeroes)
      const std::uint64_t kind = state & kRecordKindMask;
      std::uint32_t bytes = 0;  // read once: checked below, then used
      if (kind == kRecordPadding) {
        bytes = capacity_ - index < 16 ? capacity_ - index : rec->length;
      } else if (kind == kRecordMessage && capacity_ - index >= kRecordHeaderBytes) {
        bytes = rec->length;
      } else {
        status = PollStatus::corrupt;  // kSkipped at the head (only this consumer writes it), or a kind nobody writes
        break;
      }
      if (bytes == 0 || bytes % kRecordAlign != 0 || bytes > capacity_ - index) {
        status = PollStatus::corrupt;
        break;
      }
      if (kind == kRecordMessage) {
        // One read of each length, then only the copies are checked and used.
        const std::uint16_t flags = rec->flags;
        const std::uint16_t subject_len = rec->subject_len;
        const std::uint16_t reply_len = rec->reply_len;
        const std::uint32_t headers_len = rec->headers_len;
        const std::uint32_t payload_len = rec->payload_len;
        const std::uint32_t extension = extension_bytes(flags);
        const std::uint64_t used = std::uint64_t{kRecordHeaderBytes} + extension + subject_len + reply_len +
                                   headers_len + payload_len;
        if (bytes < kRecordHeaderBytes || used > bytes) {
          status = PollStatus::corrupt;
          break;
        }
        const char* words = reinterpret_cast<const char*>(rec) + kRecordHeaderBytes;
        std::uint64_t timestamp = 0, sequence = 0;
        if (flags & kFlagTimestamp) {
          std::memcpy(&timestamp, words, 8);
          words += 8;
        }
        if (flags & kFlagSequence) {
          std::memcpy(&sequence, words, 8);
          words += 8;
        }
        const char* base = words;
        const char* headers = base + subject_len + reply_len;
        on_message(RecordView{rec, flags, rec->origin, subject_len, reply_len, headers_len, payload_len, base,
                              base + subject_len, reinterpret_cast<const std::byte*>(headers),
                              reinterpret_cast<const std::byte*>(headers + headers_len), timestamp, sequence});
        ++delivered;
        message_bytes += std::uint64_t{headers_len} + payload_len;
        status = PollStatus::delivered;
      }
      head += bytes;
    }
    if (head != start) {
      // [R2] release: our reads of the consumed bytes are done before producers may reuse them.
      ctl_->head_position.store(std::min(head, reuse_floor), std::memory_order_release);
      if (delivered != 0) {
        // Relaxed: statistics with one writer (this consumer), on the line head is on.
        const std::uint64_t before = ctl_->delivered_msgs.load(std::memory_order_relaxed);
        ctl_->delivered_msgs.store(before + delivered, std::memory_order_relaxed);
        ctl_->delivered_bytes.store(ctl_->delivered_bytes.load(std::memory_order_relaxed) + message_bytes,
                                    std::memory_order_relaxed);
        // The depth at the start of this batch: what it consumed, or, when it stopped at its
        // limit (a backlog), up to the tail. The tail is the producers' line: looked at only
        // under a backlog, and then once per 64 messages (next() polls one at a time).
        std::uint64_t depth = head - start;
        if (delivered == max_records && ((before + delivered) >> 6) != (before >> 6)) {
          depth = tail_position(ctl_->tail_word.load(std::memory_order_relaxed)) - start;  // relaxed: a statistic
        }
        if (depth > ctl_->depth_high_water.load(std::memory_order_relaxed)) {
          ctl_->depth_high_water.store(depth, std::memory_order_relaxed);
        }
      }
    }
    // An empty answer does not look at the tail: that line belongs to the producers, and
    // reading it on every idle poll would cost them a cache miss on every claim. Callers that
    // need to know about claims not yet written (to sleep, or to spot a stuck writer) ask
    // claimed_beyond() on their slow path.
    return status;
  }

  /// Publishes how far producers may reuse space (after pins were released).
  void release_space(std::uint64_t head, std::uint64_t reuse_floor) noexcept {
    // [R2] release: as in poll().
    ctl_->head_position.store(std::min(head, reuse_floor), std::memory_order_release);
  }

  /// True when the record at `head` is committed (what a spinning consumer watches).
  bool committed_at(std::uint64_t head) const noexcept {
    // Relaxed: a hint to stop spinning; poll() re-reads the state with acquire ([A1]).
    const std::uint64_t state = header_at(head)->state.load(std::memory_order_relaxed);
    return tagged(state, head);
  }

  /// True when producers have claimed space past `head` (committed or not).
  bool claimed_beyond(std::uint64_t head) const noexcept {
    // Relaxed: a hint for choosing how to wait; no data is read on its strength.
    return tail_position(ctl_->tail_word.load(std::memory_order_relaxed)) != head;
  }

  /// The tail position, with acquire ([A3]): every claim below it has its claim-lane stores
  /// visible ([R3]), which is what a consumer judging stuck writers relies on.
  std::uint64_t tail_acquire() const noexcept {
    return tail_position(ctl_->tail_word.load(std::memory_order_acquire));
  }
  /// The tail position, seq_cst: for a consumer leaving a superseded segment ([SC3]).
  std::uint64_t tail_seq_cst() const noexcept {
    return tail_position(ctl_->tail_word.load(std::memory_order_seq_cst));
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

  /// Gives up on the claim at `head` whose writer stalled or died (the caller has decided that:
  /// docs/design/ring.md, "skips"), knowing where it ends: `end`, from the `lane` that names it
  /// (`word` is what the caller read there; null for none). First the lane's skipped bit (so a
  /// writer that comes back sees it before it commits), then the state word at the head, each
  /// by CAS. Returns the bytes to step over, none if the writer committed meanwhile or moved on,
  /// corrupt if `end` cannot be a claim's end.
  SkipResult skip_claim(std::uint64_t head, std::uint64_t end, ClaimLane* lane, std::uint64_t word) noexcept {
    using Kind = SkipResult::Kind;
    if (end <= head || end - head > capacity_ || (end - head) % kRecordAlign != 0) return {Kind::corrupt, 0};
    // [S1] acq_rel: fails if the writer moved on to another claim (it finished this one).
    if (lane != nullptr && !lane->claim.compare_exchange_strong(word, word | kLaneSkippedBit, std::memory_order_acq_rel,
                                                                std::memory_order_relaxed)) {
      return {};
    }
    auto& state = header_at(head)->state;
    std::uint64_t seen = state.load(std::memory_order_acquire);
    if (tagged(seen, head)) return {};  // committed (or padding) meanwhile: poll() takes it
    // [S1] fails if the writer's commit store landed just now.
    if (!state.compare_exchange_strong(seen, head | kRecordSkipped, std::memory_order_acq_rel, std::memory_order_acquire)) {
      return {};
    }
    return {Kind::skipped, static_cast<std::uint32_t>(end - head)};
  }

  /// Gives up on an uncommitted claim at `head` that no claim lane names any more: its writer
  /// died and the broker has cleared its lanes, so nobody writes there and nothing says how long
  /// it is. The gap runs to the next record start: the first 8-byte position P whose state is
  /// tagged P, or `limit` (the caller passes the tail, or the first live writer's claim past the
  /// head, which is a claim boundary too), or the end of the ring. Every 8-byte word of it is
  /// marked skipped, so a claim of another dead writer inside it can never look committed.
  /// Returns the bytes the consumer steps over (none when a record was committed at the head
  /// meanwhile).
  SkipResult skip_gap(std::uint64_t head, std::uint64_t limit) noexcept {
    using Kind = SkipResult::Kind;
    if (limit <= head || limit - head > capacity_) return {};
    const auto index = static_cast<std::uint32_t>(head & mask_);
    auto* rec = header_at(head);
    std::uint64_t state = rec->state.load(std::memory_order_acquire);
    if (tagged(state, head)) return {};  // committed: poll() takes it
    const auto bound = static_cast<std::uint32_t>(std::min<std::uint64_t>(capacity_ - index, limit - head));
    // A claim is a padding to the end of the ring or a record of at least a header; a tagged
    // word inside the head claim's header words means that is not what we are looking at.
    if (bound < kRecordHeaderBytes && bound != capacity_ - index) return {};
    for (std::uint32_t off = kRecordAlign; off < std::min(bound, kRecordHeaderBytes); off += kRecordAlign) {
      if (tagged(header_at(head + off)->state.load(std::memory_order_acquire), head + off)) return {};
    }
    // acq_rel: against a late padding CAS of the head's writer (try_claim()).
    if (!rec->state.compare_exchange_strong(state, head | kRecordSkipped, std::memory_order_acq_rel,
                                            std::memory_order_acquire)) {
      return {};
    }
    for (std::uint32_t off = kRecordAlign; off < bound; off += kRecordAlign) {
      auto& word = header_at(head + off)->state;
      std::uint64_t v = word.load(std::memory_order_acquire);
      for (;;) {
        if (tagged(v, head + off)) return {Kind::skipped, off};  // a record begins there: gap ends
        if (word.compare_exchange_weak(v, (head + off) | kRecordSkipped, std::memory_order_acq_rel,
                                       std::memory_order_acquire)) {
          break;
        }
      }
    }
    return {Kind::skipped, bound};
  }

 private:
  /// Was this state word written for the record at `position`? (Zeroes never are: kind 0.)
 public:
  static bool tagged(std::uint64_t state, std::uint64_t position) noexcept {
    return (state & ~kRecordKindMask) == position && (state & kRecordKindMask) != 0;
  }

 private:

  RecordHeader* header_at(std::uint64_t position) const noexcept {
    return reinterpret_cast<RecordHeader*>(data_ + (position & mask_));
  }

  SubscriptionLayout* ctl_ = nullptr;
  std::byte* data_ = nullptr;
  std::uint32_t capacity_ = 0;
  std::uint32_t mask_ = 0;
};

}  // namespace bus::detail

// ring/record.hpp — RecordDescriptor: the framing of one message inside a subscriber ring.
//
// Records are 8-byte aligned and never straddle the end of the ring: a producer that would
// cross the end first claims the rest of the ring as a padding record and puts its message at
// index 0, in one CAS.
//
//   0                 8        12       14  15  16       20       24   26   28       32
//   +-----------------+--------+--------+---+---+--------+--------+----+----+--------+
//   | state           | length | flags  |sl |rl |hdrs_len|pay_len |clnt|orig| epoch  |
//   +-----------------+--------+--------+---+---+--------+--------+----+----+--------+
//   32: [timestamp u64 if kFlagTimestamp] [sequence u64 if kFlagSequence]
//       subject (sl) | reply (rl) | headers | payload | pad to 8
//
// `state` is the commit word: the record's own ring position (a multiple of 8) with the record
// kind in the low 3 bits. Positions only grow and never repeat, so the consumer at position P
// accepts a record only if state == P | kind: bytes left over from earlier laps carry older
// positions and cannot be mistaken for a record, and the consumer need not zero what it read.
// The transitions (docs/design/ring.md, "State words"):
//   (older value) -> P | kMessage    producer, commit(), a release store after it checked its
//                                    claim lane for the consumer's skipped bit: everything
//                                    below `length` is valid
//   (older value) -> P | kPadding    producer (CAS), the rest of the ring before a wrapping
//                                    record; `length` is valid if 16 bytes are left at this
//                                    index, else the padding runs to the end of the ring
//   (older value) -> P | kSkipped    consumer (CAS), skip_claim()/skip_gap(): the writer stalled
//                                    or died; a writer that comes back finds its lane marked and
//                                    counts the loss
// Kind 1 (kRecordWriting, "being written") is retired: no writer stores it, since a record's
// lines are written by producers with stores only (a load would wait for the line). A reader
// that finds it treats the ring as corrupt.
// Anything else is "not written yet".
//
// Room for what later issues need, at no cost to a message that uses none of it: `flags` says
// which optional 8-byte words follow the header (a timestamp, a sequence), and `origin` names
// the bus a message came from (0 = this one; the NATS bridge uses it against loops).
#pragma once

#include <atomic>
#include <bit>
#include <cstddef>
#include <cstdint>

namespace bus::detail {

inline constexpr std::uint64_t kRecordWriting = 1;  // retired: never written (see above)
inline constexpr std::uint64_t kRecordMessage = 2;
inline constexpr std::uint64_t kRecordPadding = 3;
inline constexpr std::uint64_t kRecordSkipped = 4;
inline constexpr std::uint64_t kRecordKindMask = 7;

inline constexpr std::uint16_t kFlagTimestamp = 1u << 0;  // u64 CLOCK_REALTIME ns follows
inline constexpr std::uint16_t kFlagSequence = 1u << 1;   // u64 publisher sequence follows
inline constexpr std::uint16_t kFlagExtensionMask = kFlagTimestamp | kFlagSequence;

struct RecordHeader {
  std::atomic<std::uint64_t> state;
  std::uint32_t length;
  std::uint16_t flags;
  std::uint8_t subject_len;
  std::uint8_t reply_len;
  std::uint32_t headers_len;
  std::uint32_t payload_len;
  std::uint16_t producer_client;
  std::uint16_t origin;
  std::uint32_t producer_epoch;
};
static_assert(offsetof(RecordHeader, state) == 0);
static_assert(offsetof(RecordHeader, length) == 8);
static_assert(offsetof(RecordHeader, flags) == 12);
static_assert(offsetof(RecordHeader, subject_len) == 14);
static_assert(offsetof(RecordHeader, reply_len) == 15);
static_assert(offsetof(RecordHeader, headers_len) == 16);
static_assert(offsetof(RecordHeader, payload_len) == 20);
static_assert(offsetof(RecordHeader, producer_client) == 24);
static_assert(offsetof(RecordHeader, origin) == 26);
static_assert(offsetof(RecordHeader, producer_epoch) == 28);
static_assert(sizeof(RecordHeader) == 32);

inline constexpr std::uint32_t kRecordAlign = 8;
inline constexpr std::uint32_t kRecordHeaderBytes = sizeof(RecordHeader);

/// Bytes of the optional words that `flags` announces.
constexpr std::uint32_t extension_bytes(std::uint16_t flags) noexcept {
  // Not std::popcount: without -mpopcnt that is a library call, on every poll and publish.
  return ((flags & kFlagTimestamp) != 0 ? 8u : 0u) + ((flags & kFlagSequence) != 0 ? 8u : 0u);
}

/// Bytes a message occupies in a ring, header, optional words and alignment included.
constexpr std::uint64_t record_bytes(std::uint64_t subject_len, std::uint64_t reply_len,
                                     std::uint64_t headers_len, std::uint64_t payload_len,
                                     std::uint16_t flags = 0) noexcept {
  return (kRecordHeaderBytes + extension_bytes(flags) + subject_len + reply_len + headers_len +
          payload_len + kRecordAlign - 1) /
         kRecordAlign * kRecordAlign;
}

}  // namespace bus::detail

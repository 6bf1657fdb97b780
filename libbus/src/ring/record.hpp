// ring/record.hpp — RecordDescriptor: the framing of one message inside a subscriber ring.
//
// Records are 8-byte aligned and never straddle the end of the ring: a producer that would
// cross the end first claims the rest of the ring as a padding record and puts its message at
// index 0, in one CAS.
//
//   0                 8        12       14       16       20       24       28       32
//   +-----------------+--------+--------+--------+--------+--------+--------+-----------
//   | state           | length |subj_len|rply_len|hdrs_len|pay_len | client | epoch  | subject
//   +-----------------+--------+--------+--------+--------+--------+--------+  | reply | headers
//                                                                              | payload | pad to 8
//
// `state` is the commit word: the record's own ring position (a multiple of 8) with the record
// kind in the low 3 bits. Positions only grow and never repeat, so the consumer at position P
// accepts a record only if state == P | kind: bytes left over from earlier laps carry older
// positions and cannot be mistaken for a record, and the consumer need not zero what it read.
//   P | kWriting   claimed and being written; length and producer fields are valid
//   P | kMessage   committed message; everything below `length` is valid
//   P | kPadding   committed padding; `length` is valid if the ring has 16 bytes left at this
//                  index, else the padding runs to the end of the ring
//   anything else  not written yet
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>

namespace bus::detail {

inline constexpr std::uint64_t kRecordWriting = 1;
inline constexpr std::uint64_t kRecordMessage = 2;
inline constexpr std::uint64_t kRecordPadding = 3;
inline constexpr std::uint64_t kRecordKindMask = 7;

struct RecordHeader {
  std::atomic<std::uint64_t> state;
  std::uint32_t length;
  std::uint16_t subject_len;
  std::uint16_t reply_len;
  std::uint32_t headers_len;
  std::uint32_t payload_len;
  std::uint32_t producer_client;
  std::uint32_t producer_epoch;
};
static_assert(offsetof(RecordHeader, state) == 0);
static_assert(offsetof(RecordHeader, length) == 8);
static_assert(offsetof(RecordHeader, subject_len) == 12);
static_assert(offsetof(RecordHeader, reply_len) == 14);
static_assert(offsetof(RecordHeader, headers_len) == 16);
static_assert(offsetof(RecordHeader, payload_len) == 20);
static_assert(offsetof(RecordHeader, producer_client) == 24);
static_assert(offsetof(RecordHeader, producer_epoch) == 28);
static_assert(sizeof(RecordHeader) == 32);

inline constexpr std::uint32_t kRecordAlign = 8;
inline constexpr std::uint32_t kRecordHeaderBytes = sizeof(RecordHeader);

/// Bytes a message occupies in a ring, header and alignment included.
constexpr std::uint64_t record_bytes(std::uint64_t subject_len, std::uint64_t reply_len,
                                     std::uint64_t headers_len, std::uint64_t payload_len) noexcept {
  return (kRecordHeaderBytes + subject_len + reply_len + headers_len + payload_len + kRecordAlign - 1) /
         kRecordAlign * kRecordAlign;
}

}  // namespace bus::detail

// ring/record.hpp — RecordDescriptor: the framing of one message inside a subscriber ring.
//
// Records are 8-byte aligned and never straddle the end of the ring: a producer that would
// cross the end first claims the rest of the ring as a padding record (type kPadding) and puts
// its message at index 0, in one CAS.
//
//   0        4        6        8                12               16       18       20
//   +--------+--------+--------+----------------+----------------+--------+--------+------------
//   | length | type   | flags  | producer_client| producer_epoch |subj_len|reply_len| headers_len
//   +--------+--------+--------+----------------+----------------+--------+--------+------------
//   24               28               32
//   | payload_len    | reserved       | subject | reply | headers | payload | pad to 8
//
// `length` is the commit word (Aeron's scheme):
//   0    nothing written yet (the consumer zeroes every byte it has consumed)
//   < 0  claimed and being written; -length is the record size; producer fields are valid
//   > 0  committed; the consumer may read everything below `length`
// A padding record only has `length` and `type` (it can be as short as 8 bytes).
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>

namespace bus::detail {

enum class RecordType : std::uint16_t { message = 1, padding = 2 };

struct RecordHeader {
  std::atomic<std::int32_t> length;
  std::uint16_t type;
  std::uint16_t flags;
  std::uint32_t producer_client;
  std::uint32_t producer_epoch;
  std::uint16_t subject_len;
  std::uint16_t reply_len;
  std::uint32_t headers_len;
  std::uint32_t payload_len;
  std::uint32_t reserved;
};
static_assert(offsetof(RecordHeader, length) == 0);
static_assert(offsetof(RecordHeader, type) == 4);
static_assert(offsetof(RecordHeader, producer_client) == 8);
static_assert(offsetof(RecordHeader, subject_len) == 16);
static_assert(offsetof(RecordHeader, headers_len) == 20);
static_assert(offsetof(RecordHeader, payload_len) == 24);
static_assert(sizeof(RecordHeader) == 32);

inline constexpr std::uint32_t kRecordAlign = 8;
inline constexpr std::uint32_t kRecordHeaderBytes = sizeof(RecordHeader);
inline constexpr std::uint32_t kMinPaddingBytes = 8;

/// Bytes a message occupies in a ring, header and alignment included.
constexpr std::uint64_t record_bytes(std::uint64_t subject_len, std::uint64_t reply_len,
                                     std::uint64_t headers_len, std::uint64_t payload_len) noexcept {
  return (kRecordHeaderBytes + subject_len + reply_len + headers_len + payload_len + kRecordAlign - 1) /
         kRecordAlign * kRecordAlign;
}

}  // namespace bus::detail

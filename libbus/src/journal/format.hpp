// journal/format.hpp — the on-disk layout of a stream's journal: segment files and records.
//
// A stream's journal is a directory of segment files. Each is named by the sequence of its first
// record (20 decimal digits + ".jrnl"), created at a fixed size (written with zeros: a mapped file
// never grows under a reader, so no SIGBUS from a short file), mapped whole, and appended to in
// place by every process that publishes to the stream: no lock, no broker hop. The layout is
// documented with diagrams in docs/design/journal.md; tests/unit/journal_test.cpp freezes it.
//
// Segment file header (4096 bytes; little-endian):
//   off size field            notes
//     0    8 magic            "BUSJRNL1", written last at creation (release)
//     8    2 major            kJournalMajor: a reader refuses another major
//    10    2 minor
//    12    4 header_bytes     4096
//    16    8 capacity         the file's size in bytes, fixed at creation
//    24    8 first_seq        sequence of the segment's first record (>= 1)
//    32    8 created_unix_ns
//    40    8 stream_id        random, the same in every segment of one stream
//    48   80 reserved (zero)
//   128    8 claim            appenders' CAS word: bits 63..32 = next free offset / 8,
//                             bit 31 = sealed, bits 30..0 = records claimed
//   136  120 reserved (zero)
//   256    8 skipped_below    readers' word: every sequence below it that was not committed
//                             when it was raised is abandoned (CAS-max; see append and Cursor)
//   264    4 readers_waiting  readers asleep on commit_wake (minor 1); an appender that sees it
//                             non-zero after its commit bumps commit_wake and wakes them
//   268  116 reserved (zero)
//   384    4 commit_wake      futex word: bumped after a commit or the seal while readers wait
//   388  124 reserved (zero)
//   512    4 sync_owner       group commit (minor 2): thread id of the appender flushing the file
//                             now, 0 when none; taken by CAS (journal/segment_file.cpp, make_durable)
//   516    4 sync_waiters     appenders asleep on sync_done
//   520    8 sync_since_ns    CLOCK_MONOTONIC when sync_owner was taken: a stopped owner is
//                             bypassed after kSyncTakeoverNs
//   528    4 dir_synced       1 once the file's name is on disk (its directory was fsync'd)
//   532    4 sync_failed      errno of a flush that failed (minor 3), sticky: the kernel reports
//                             a writeback error once, so a later msync's success proves nothing;
//                             the segment is sealed and every later make_durable() fails
//   536  104 reserved (zero)
//   640    4 sync_started     flushes begun (wrapping): an appender needs one begun after its commit
//   644  124 reserved (zero)
//   768    4 sync_done        futex word: the latest flush finished (wrapping; only raised)
//   772  252 reserved (zero)
//  1024    4 index_stride     position index (minor 4): every index_stride-th record's place is
//                             noted below; a power of two set at creation (0: the file has none)
//  1028  124 reserved (zero)
//  1152 2944 positions        184 entries of 16 bytes; entry k is record first_seq + k * stride:
//                               0 4 offset / 8   0: not noted yet; stored last (release)
//                               4 4 reserved
//                               8 8 timestamp_ns the record's
//                             written by its appender (and by any reader that walked past it):
//                             a read seeks from the nearest entry, a time by their timestamps;
//                             untrusted like the rest (the record there must verify)
//  4096      records, 8-byte aligned, one after another
//
// Record (40-byte header, then the body, padded to 8):
//   off size field            notes
//     0    8 commit           the record's sequence, stored last (release); anything else =
//                             not committed (being written, or its writer died)
//     8    4 length           bytes of the record, header and padding included
//    12    2 subject_len
//    14    2 flags            kRecordDeleted (set after commit; not under the checksum)
//    16    8 timestamp_ns     CLOCK_REALTIME when appended
//    24    4 headers_len      NATS/1.0 header block, as in ring records
//    28    4 payload_len
//    32    8 checksum         XXH3-64 seeded with the sequence, over bytes 8..11, 12..13,
//                             16..31 and the body: a torn or flipped record never verifies
//    40      subject | headers | payload | pad to 8
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>

namespace bus::detail::journal {

inline constexpr std::uint64_t kSegmentMagic = 0x314C4E524A535542ull;  // "BUSJRNL1"
inline constexpr std::uint16_t kJournalMajor = 2;  // 2: sealed is bit 31 of the claim word
// 1: readers_waiting, commit_wake; 2: group commit; 3: sync_failed; 4: the position index
inline constexpr std::uint16_t kJournalMinor = 4;
inline constexpr std::uint32_t kSegmentHeaderBytes = 4096;
inline constexpr std::uint32_t kRecordHeaderBytes = 40;
inline constexpr std::uint32_t kRecordAlign = 8;
inline constexpr std::uint16_t kRecordDeleted = 1u << 0;
// Offsets are kept in 8-byte units in 32 bits: a segment holds at most 32 GiB.
inline constexpr std::uint64_t kMaxSegmentBytes = (std::uint64_t{0xFFFF'FFFE} * kRecordAlign);
// Set in the claim word once the segment is full: no more appends; the offset stays (the end of
// its records) and so does the count (the next segment starts at first_seq + count).
inline constexpr std::uint32_t kSealedBit = 0x8000'0000u;
inline constexpr std::uint32_t kMaxClaimCount = kSealedBit - 1;
// Sequences stop at 2^63: first_seq + a count never wraps, and a forged name or header above
// it is refused.
inline constexpr std::uint64_t kMaxSequence = std::uint64_t{1} << 63;
inline constexpr std::uint32_t kPositionEntries = 184;

/// The position index's stride for a segment of `capacity` bytes: the smallest power of two
/// for which kPositionEntries entries cover the most records the file can hold (48 bytes each
/// at least: a header and a one-byte subject, padded). 64 MiB: 8192.
constexpr std::uint32_t position_stride(std::uint64_t capacity) noexcept {
  const std::uint64_t most = capacity > kSegmentHeaderBytes ? (capacity - kSegmentHeaderBytes) / 48 : 0;
  std::uint64_t stride = 1;
  while (stride * kPositionEntries < most) stride <<= 1;
  return static_cast<std::uint32_t>(stride);
}

struct PositionEntry {
  std::atomic<std::uint32_t> offset_units;
  std::uint32_t reserved;
  std::atomic<std::uint64_t> timestamp_ns;
};
static_assert(sizeof(PositionEntry) == 16);

struct SegmentHeader {
  std::uint64_t magic;
  std::uint16_t major;
  std::uint16_t minor;
  std::uint32_t header_bytes;
  std::uint64_t capacity;
  std::uint64_t first_seq;
  std::uint64_t created_unix_ns;
  std::uint64_t stream_id;
  std::uint8_t reserved0[80];
  alignas(128) std::atomic<std::uint64_t> claim;
  std::uint8_t reserved1[120];
  alignas(128) std::atomic<std::uint64_t> skipped_below;
  std::atomic<std::uint32_t> readers_waiting;
  std::uint8_t reserved2[116];
  alignas(128) std::atomic<std::uint32_t> commit_wake;
  std::uint8_t reserved3[124];
  alignas(128) std::atomic<std::uint32_t> sync_owner;
  std::atomic<std::uint32_t> sync_waiters;
  std::atomic<std::uint64_t> sync_since_ns;
  std::atomic<std::uint32_t> dir_synced;
  std::atomic<std::uint32_t> sync_failed;
  std::uint8_t reserved4[104];
  alignas(128) std::atomic<std::uint32_t> sync_started;
  std::uint8_t reserved5[124];
  alignas(128) std::atomic<std::uint32_t> sync_done;
  std::uint8_t reserved6[252];
  alignas(128) std::uint32_t index_stride;
  std::uint8_t reserved7[124];
  alignas(128) PositionEntry positions[kPositionEntries];
};
static_assert(offsetof(SegmentHeader, capacity) == 16);
static_assert(offsetof(SegmentHeader, first_seq) == 24);
static_assert(offsetof(SegmentHeader, stream_id) == 40);
static_assert(offsetof(SegmentHeader, claim) == 128);
static_assert(offsetof(SegmentHeader, skipped_below) == 256);
static_assert(offsetof(SegmentHeader, readers_waiting) == 264);
static_assert(offsetof(SegmentHeader, commit_wake) == 384);
static_assert(offsetof(SegmentHeader, sync_owner) == 512);
static_assert(offsetof(SegmentHeader, sync_waiters) == 516);
static_assert(offsetof(SegmentHeader, sync_since_ns) == 520);
static_assert(offsetof(SegmentHeader, dir_synced) == 528);
static_assert(offsetof(SegmentHeader, sync_failed) == 532);
static_assert(offsetof(SegmentHeader, sync_started) == 640);
static_assert(offsetof(SegmentHeader, sync_done) == 768);
static_assert(offsetof(SegmentHeader, index_stride) == 1024);
static_assert(offsetof(SegmentHeader, positions) == 1152);
static_assert(sizeof(std::atomic<std::uint32_t>) == 4 && std::atomic<std::uint32_t>::is_always_lock_free);
static_assert(sizeof(SegmentHeader) == kSegmentHeaderBytes);

struct RecordHeader {
  std::atomic<std::uint64_t> commit;
  std::uint32_t length;
  std::uint16_t subject_len;
  std::atomic<std::uint16_t> flags;
  std::uint64_t timestamp_ns;
  std::uint32_t headers_len;
  std::uint32_t payload_len;
  std::uint64_t checksum;
};
static_assert(offsetof(RecordHeader, length) == 8);
static_assert(offsetof(RecordHeader, subject_len) == 12);
static_assert(offsetof(RecordHeader, flags) == 14);
static_assert(offsetof(RecordHeader, timestamp_ns) == 16);
static_assert(offsetof(RecordHeader, headers_len) == 24);
static_assert(offsetof(RecordHeader, payload_len) == 28);
static_assert(offsetof(RecordHeader, checksum) == 32);
static_assert(sizeof(RecordHeader) == kRecordHeaderBytes);

/// The claim word: next free offset (in 8-byte units) and records claimed, in one CAS.
constexpr std::uint64_t claim_word(std::uint32_t offset_units, std::uint32_t claimed) noexcept {
  return (std::uint64_t{offset_units} << 32) | claimed;
}
constexpr std::uint32_t claim_units(std::uint64_t word) noexcept { return static_cast<std::uint32_t>(word >> 32); }
constexpr std::uint32_t claim_count(std::uint64_t word) noexcept { return static_cast<std::uint32_t>(word) & kMaxClaimCount; }
constexpr bool claim_sealed(std::uint64_t word) noexcept { return (static_cast<std::uint32_t>(word) & kSealedBit) != 0; }
constexpr std::uint64_t sealed_word(std::uint64_t word) noexcept { return word | kSealedBit; }

/// Bytes a record with these lengths occupies.
constexpr std::uint64_t record_bytes(std::uint64_t subject, std::uint64_t headers, std::uint64_t payload) noexcept {
  return (kRecordHeaderBytes + subject + headers + payload + kRecordAlign - 1) / kRecordAlign * kRecordAlign;
}

/// The record's checksum (see the layout above). `body` is subject | headers | payload.
std::uint64_t record_checksum(std::uint64_t sequence, const RecordHeader& header, const std::byte* body,
                              std::size_t body_len) noexcept;

}  // namespace bus::detail::journal

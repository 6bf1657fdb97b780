// journal/journal.hpp — a stream's journal: a directory of segment files (journal/format.hpp)
// that any thread of any process that has it open appends to without a lock, and reads back
// by sequence. A segment that fills is sealed by whoever first finds it full; the next one is
// created by whoever gets there first (O_EXCL), named by the sealed segment's next sequence.
//
// What it does not do yet (issue 8 goes on): stream limits and retention (segments are never
// removed), the on-disk index (positions are found by walking records from the last known
// one), holes left by a writer that died mid-append while the journal stays open (recovery at
// open steps over them), the interval sync policy and group commit.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <shared_mutex>
#include <string>
#include <string_view>
#include <vector>

#include "bus/result.hpp"
#include "journal/segment_file.hpp"

namespace bus::detail::journal {

enum class SyncPolicy {
  never,   // the page cache: survives the death of any process, not of the machine
  always,  // msync before append() returns: an acknowledged record survives a power cut
};

struct JournalOptions {
  std::uint64_t segment_bytes = 64ull << 20;
  SyncPolicy sync = SyncPolicy::never;
};

class Journal {
 public:
  /// Opens the journal in `directory` (made, mode 0700, if missing; the first segment then
  /// starts at sequence 1), verifying every segment (SegmentFile::recover). Precondition: no
  /// process appends while it opens. What recovery dropped is in recovery().
  static Result<std::unique_ptr<Journal>> open(const std::string& directory, const JournalOptions& options);

  /// Appends one record; returns its sequence once it is stored under the sync policy.
  Result<std::uint64_t> append(std::string_view subject, std::string_view headers, std::string_view payload);

  /// The record with `sequence`, verified (a corrupt one is an error, never a view).
  /// not found: below the first or above the last sequence, or dropped by recovery.
  Result<RecordView> read(std::uint64_t sequence) const;

  std::uint64_t first_seq() const;
  /// The last sequence appended (claimed) so far, by anyone; first_seq() - 1 when empty.
  std::uint64_t last_seq() const;
  const Recovery& recovery() const noexcept { return recovery_; }
  const std::string& directory() const noexcept { return directory_; }
  std::size_t segment_count() const;

 private:
  // In Segment::offsets: recovery dropped this record (offsets are >= 4096, multiples of 8).
  static constexpr std::uint64_t kDroppedOffset = 1;
  struct Segment {
    SegmentFile file;
    // Offsets of records by sequence - first_seq (0: not known yet; kDroppedOffset),
    // filled by recovery and extended by walking committed records' lengths.
    mutable std::mutex index_mutex;
    mutable std::vector<std::uint64_t> offsets;
  };
  Journal() = default;
  /// The segment after `full` (sealed): opened if another writer made it, else created.
  Result<Segment*> next_segment(Segment* full);
  Status add_segment(SegmentFile file, std::vector<std::pair<std::uint64_t, std::uint64_t>> index);
  const Segment* segment_for(std::uint64_t sequence) const;

  std::string directory_;
  JournalOptions options_;
  std::uint64_t stream_id_ = 0;
  Recovery recovery_;
  mutable std::shared_mutex segments_mutex_;  // guards segments_ (a roll appends to it)
  std::vector<std::unique_ptr<Segment>> segments_;  // by first_seq; never removed yet
  std::atomic<Segment*> tail_{nullptr};             // where appends go
};

}  // namespace bus::detail::journal

// journal/segment_file.hpp — one journal segment file (layout in journal/format.hpp): create or
// open it, append to it from any thread of any process without a lock, read records back with
// every length and the checksum verified, and recover it after a crash.
#pragma once

#include <fcntl.h>

#include <chrono>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "bus/result.hpp"
#include "os/futex.hpp"
#include "journal/format.hpp"

namespace bus::detail::journal {

/// What recover() found: how much was kept, what was lost, and where.
struct Recovery {
  std::uint64_t records = 0;       // valid records kept
  std::uint64_t lost_records = 0;  // sequences with no valid record (torn, flipped, never committed)
  std::uint64_t lost_bytes = 0;    // bytes of damaged or unfinished records stepped over or cut off
  std::uint64_t truncated_at = 0;  // offset after the last valid record, when the tail was cut (else 0)
  std::vector<std::string> damage;  // one line per damaged range, for the log
};

/// A record as stored, viewed in place (valid while the SegmentFile lives).
struct RecordView {
  std::uint64_t sequence = 0;
  std::uint64_t timestamp_ns = 0;
  std::uint16_t flags = 0;
  std::string_view subject, headers, payload;
  std::uint64_t offset = 0;  // of the record in its segment
  std::uint32_t bytes = 0;   // the record's length
  // Journal::read()'s views keep their segment mapped (a handle lets go of the segments the
  // broker removed); a cursor's do not need to (the cursor holds its segment).
  std::shared_ptr<const void> keep;
};

// abandoned: committed too late: a reader had given up waiting for it (raise_skip) and may have
// gone past it; the caller must not report it as stored.
enum class AppendStatus { appended, full, too_large, abandoned, wrong_last };
enum class ReadStatus { ok, not_committed, corrupt };

/// The page-cache pages a new segment is made of. Where the filesystem has large folios (ext4
/// on Linux 6.16 and later) the kernel sizes them by the writes that zero-fill the file; where
/// it has not, every page is 4 KiB whatever this says (a memory stream's tmpfs follows its
/// `huge=` mount option instead). Measured on this VM (Linux 6.18, ext4; docs/design/journal.md):
/// 2 MiB folios map a 64 MiB segment in 1 ms, 1 MiB ones in 3.4 ms, 4 KiB pages in 25 ms; but
/// a sync writes each dirty folio back whole, so one record synced alone cost a 1 MiB write
/// with 1 MiB folios (2.2 k acks/s, against 6.6-8.0 k with 4 KiB pages).
enum class PageShape : std::uint8_t {
  appends,  // 2 MiB folios: streams that sync never or at an interval (fewest faults, TLB misses)
  syncs,    // 4 KiB pages: streams that sync every append (sync always)
};

class SegmentFile {
 public:
  SegmentFile() = default;
  SegmentFile(SegmentFile&& other) noexcept { *this = std::move(other); }
  SegmentFile& operator=(SegmentFile&& other) noexcept;
  SegmentFile(const SegmentFile&) = delete;
  SegmentFile& operator=(const SegmentFile&) = delete;
  ~SegmentFile();

  /// Creates `path` (O_EXCL, mode 0600) of `capacity` bytes, allocated on disk before it is
  /// mapped, and publishes its magic last. Fails with Errc::already_exists if it exists.
  /// With `dirfd` (a directory's descriptor), the file is the last component of `path` in that
  /// directory, whatever the path names now (a journal keeps working in its own directory after
  /// a rename; `path` is only for messages).
  static Result<SegmentFile> create(const std::string& path, std::uint64_t first_seq, std::uint64_t capacity,
                                    std::uint64_t stream_id, PageShape shape, int dirfd = AT_FDCWD);
  /// Prepares a spare segment file, `directory`/`name`: allocated and zero-filled into the page
  /// cache, header not written (magic zero), unless there is one already. Slow (it touches every
  /// page): made off the publishing path, so that a roll-over only renames and maps it.
  static Status make_spare(const std::string& directory, std::uint64_t capacity, PageShape shape, int dirfd,
                           const char* name = "spare");
  /// create(), from the spare if there is one (renamed to `path`, never over an existing
  /// file); Errc::not_found when there is none (the caller creates), already_exists as create.
  static Result<SegmentFile> create_from_spare(const std::string& path, std::uint64_t first_seq,
                                               std::uint64_t capacity, std::uint64_t stream_id, int dirfd);
  /// Maps an existing segment and checks its header against the file: magic, major, header size,
  /// capacity == file size, a first sequence >= 1. The records are checked when read.
  static Result<SegmentFile> open(const std::string& path, int dirfd = AT_FDCWD);
  /// True when `path` is a file whose creator never published its magic (died in create()).
  static bool unfinished(const std::string& path, int dirfd = AT_FDCWD) noexcept;

  /// Appends one record. Lock-free: one CAS on the claim word takes the space and the sequence
  /// together, so sequence order is file order. full: the record does not fit (the segment is
  /// sealed now, by us or before); too_large: it would not fit in an empty segment either.
  /// expected_next != 0: claim only if the record would get that sequence (wrong_last
  /// otherwise): the same CAS makes the check and the claim one step (Nats-Expected-*).
  AppendStatus append(std::string_view subject, std::string_view headers, std::string_view payload,
                      std::uint64_t timestamp_ns, std::uint64_t& sequence, std::uint64_t& offset,
                      std::uint64_t expected_next = 0) noexcept;

  /// Reads the record at `offset` that must carry `sequence`, checking its lengths against the
  /// segment and its checksum. corrupt: it fails a check (never handed out); not_committed: it
  /// is being written, or its writer died.
  ReadStatus read(std::uint64_t offset, std::uint64_t sequence, RecordView& out) const noexcept;

  /// Steps over the record at `offset` that must carry `sequence`: committed, and a length
  /// (`bytes`) that stays inside the file; nothing else is checked (a walk to another record,
  /// which is then read()). corrupt: the length is impossible; not_committed as read().
  ReadStatus step(std::uint64_t offset, std::uint64_t sequence, std::uint32_t& bytes) const noexcept;

  /// Verifies every record from the start (precondition: nobody appends meanwhile: it rewrites
  /// the claim word). A record that fails is stepped over by searching, 8 bytes at a time, for
  /// the next record that verifies (its writer may have been the only one to die); nothing
  /// valid after it: the tail is cut there. `index` gets (sequence, offset) of every valid record.
  Recovery recover(std::vector<std::pair<std::uint64_t, std::uint64_t>>& index);

  /// Where the record carrying `sequence` starts, found by searching every 8-byte position
  /// of the claimed bytes for one that verifies as that sequence (for stepping past a damaged
  /// record, whose length cannot be trusted); 0 when there is none (yet).
  std::uint64_t find(std::uint64_t sequence, std::uint64_t from = 0) const noexcept;

  /// A reader gives up on `sequence` (claimed, not committed for too long: its writer died or
  /// is stopped): raises skipped_below past it ([SJ3], seq_cst). A writer that commits it after
  /// this learns it (AppendStatus::abandoned); the reader re-checks the record after the call.
  void raise_skip(std::uint64_t sequence) const noexcept;  // const: writes the mapping only
  /// Position index (format.hpp): notes where record `sequence` is if it is one the index
  /// keeps (every index_stride()-th) and nobody noted it yet. Appends do it themselves.
  void note_position(std::uint64_t sequence, std::uint64_t offset, std::uint64_t timestamp_ns) const noexcept;
  /// Entry `entry` (record first_seq() + entry * index_stride()): its offset, inside the claimed
  /// records, and timestamp; false if not noted (or not plausible). The record is unverified.
  bool noted_position(std::uint64_t entry, std::uint64_t& offset, std::uint64_t& timestamp_ns) const noexcept;
  /// Records between position entries; 0 when the file has no position index.
  std::uint64_t index_stride() const noexcept { return stride_; }
  /// Marks the record at `offset` (a verified read's) deleted; false if it was already.
  bool mark_deleted(std::uint64_t offset) const noexcept;
  /// Whether the record at `offset` (one recovery verified) is marked deleted, and its length.
  bool deleted_at(std::uint64_t offset, std::uint32_t& bytes) const noexcept;
  std::uint64_t skipped_below() const noexcept;

  /// Sleeps at most `timeout` until an appender commits a record here or seals the segment,
  /// unless `nothing_new()` (called after this reader is counted as waiting) says there is
  /// something already: what a caught-up reader does instead of polling ([SJ4]).
  template <class NothingNew>
  void wait_for_commit(std::chrono::nanoseconds timeout, NothingNew nothing_new) const noexcept {
    SegmentHeader* h = header();
    // [AJ4] acquire: pairs with the appender's release bump in wake_readers().
    const std::uint32_t ticket = h->commit_wake.load(std::memory_order_acquire);
    // [SJ4] seq_cst count, then the re-check: pairs with [SJ5] (commit, then load of the count):
    // either this re-check sees the commit, or the appender sees the count and bumps the ticket.
    h->readers_waiting.fetch_add(1, std::memory_order_seq_cst);
    std::atomic_thread_fence(std::memory_order_seq_cst);
    if (nothing_new()) futex_wait(reinterpret_cast<std::uint32_t*>(&h->commit_wake), ticket, timeout);
    h->readers_waiting.fetch_sub(1, std::memory_order_relaxed);
  }

  /// Group commit: returns once every record committed here before the call is on disk. An
  /// appender takes the file's flush (sync_owner) and msyncs every claimed byte, or sleeps while
  /// another one (of any process) does and uses the first flush begun after its own commit:
  /// concurrent appenders share one flush. Errc::timeout after `timeout` (the disk is stuck; the
  /// record is stored but must not be reported as synced).
  Status make_durable(std::chrono::nanoseconds timeout) const;
  /// Flushes every claimed byte now (msync; the interval policy's flush, and after deletes), and
  /// counts as a flush for make_durable()'s waiters.
  Status flush() const;
  /// The error of an earlier failed flush of this file (by any process), if there was one.
  Status failed() const;
  bool has_failed() const noexcept;
  /// Seals the segment (no more appends here; the next one starts at next_seq()).
  void seal() const noexcept;
  /// Whether this file's name is known to be on disk (the directory was fsync'd after it was
  /// made), and the mark that says so once it is.
  bool directory_synced() const noexcept;
  void mark_directory_synced() const noexcept;

  const std::string& path() const noexcept { return path_; }
  std::uint64_t first_seq() const noexcept { return header()->first_seq; }
  std::uint64_t capacity() const noexcept { return size_; }
  std::uint64_t stream_id() const noexcept { return header()->stream_id; }
  /// Sequence the next appended record gets here (first_seq + records claimed).
  std::uint64_t next_seq() const noexcept;
  /// End of the claimed bytes (sealed or not).
  std::uint64_t claimed_end() const noexcept;
  bool sealed() const noexcept;

 private:
  SegmentHeader* header() const noexcept { return reinterpret_cast<SegmentHeader*>(base_); }
  /// After a commit or the seal: wakes readers asleep in wait_for_commit(), if any ([SJ5]).
  void wake_readers() const noexcept;
  /// After a flush finished or failed: wakes appenders asleep in make_durable(), if any ([SG3]).
  void wake_syncers() const noexcept;
  /// msync of every claimed byte, as flush `epoch` (taken here); on failure the file is marked
  /// failed for good and sealed.
  Status flush_pages(std::uint32_t& epoch, std::uint64_t deadline_ns) const;
  /// Announces flush `epoch` as done to make_durable()'s waiters.
  void publish_flush(std::uint32_t epoch) const;
  /// Maps a new (or spare) file of `capacity` bytes and publishes its header; on failure the
  /// file, never published, is removed.
  static Result<SegmentFile> map_new(int fd, const std::string& path, int dirfd, std::uint64_t first_seq,
                                     std::uint64_t capacity, std::uint64_t stream_id);
  /// Fills in a freshly mapped file's header and publishes its magic last ([RJ0]).
  void publish_header(std::uint64_t first_seq, std::uint64_t stream_id) noexcept;
  /// Full check of the record at `offset` as sequence `sequence` (recovery and reads).
  ReadStatus check(std::uint64_t offset, std::uint64_t sequence, RecordView& out) const noexcept;

  std::string path_;
  std::byte* base_ = nullptr;
  std::uint64_t size_ = 0;
  std::uint32_t stride_ = 0;  // the header's index_stride, once checked (0: no position index)
  // One msync of this file at a time in this process: the kernel reports a lost writeback to
  // one caller only, and an overlapping one that got 0 must not publish before the failure is
  // marked. Taken with a deadline: a flush stuck in the kernel makes the others time out.
  std::unique_ptr<std::mutex> flush_mutex_ = std::make_unique<std::mutex>();
};

/// "00000000000000000001.jrnl": the file name of the segment whose first record is `first_seq`.
std::string segment_file_name(std::uint64_t first_seq);

}  // namespace bus::detail::journal

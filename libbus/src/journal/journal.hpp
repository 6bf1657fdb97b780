// journal/journal.hpp — a stream's journal: a directory of segment files (journal/format.hpp)
// that any thread of any process that has it open appends to without a lock, and reads back
// by sequence. A segment that fills is sealed by whoever first finds it full; the next one is
// created by whoever gets there first (O_EXCL), named by the sealed segment's next sequence.
//
// Limits and retention are the broker's (stream/limits.hpp): it deletes records (marks) and
// drops segments left with none. A sequence is found from the segment's position index
// (format.hpp) and a walk of at most a stride; a time likewise; a subject's last message from
// the subject index (subject_index.hpp).
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <mutex>
#include <shared_mutex>
#include <string>
#include <string_view>
#include <vector>

#include "bus/result.hpp"
#include "bus/stream.hpp"
#include "journal/segment_file.hpp"
#include "journal/subject_index.hpp"

namespace bus::detail::journal {

// never: the page cache (survives the death of any process, not of the machine); always: the
// record, its segment file's name and the journal directory's are on disk before append()
// returns, with concurrent appenders sharing one flush (SegmentFile::make_durable); interval:
// as never, plus flush() called on a timer (the broker's).
using bus::SyncPolicy;

struct JournalOptions {
  std::uint64_t segment_bytes = 64ull << 20;
  SyncPolicy sync = SyncPolicy::never;
  /// How long open/attach wait while another process recovers the journal (recovery takes
  /// time in proportion to its size). A publisher attaching on its publishing thread passes a
  /// short one: it must stay well inside Connection::close()'s wait for publishers.
  std::uint64_t lock_wait_ns = 60'000'000'000ull;
};

class Journal {
  struct Segment;  // below: one segment file and its index

 public:
  /// Opens the journal in `directory` (made, mode 0700, if missing; the first segment then
  /// starts at sequence 1), verifying every segment (SegmentFile::recover) unless another
  /// process has the journal open (then as attach(); see recovered()). What recovery dropped is
  /// in recovery().
  static Result<std::unique_ptr<Journal>> open(const std::string& directory, const JournalOptions& options);
  /// Maps the journal in `directory` as it is, for a process that appends or reads while others
  /// may append too: no recovery (that rewrites claim words; only open() does it, with nobody
  /// else holding the journal). The journal must exist.
  static Result<std::unique_ptr<Journal>> attach(const std::string& directory, const JournalOptions& options);

  /// Reads records in sequence order from a starting sequence, without locks: what replays
  /// and consumers use. Valid while the Journal lives.
  class Cursor {
   public:
    /// The next record. not_committed: nothing more yet (or its writer is still writing);
    /// corrupt: the next record fails its checks (the cursor stays on it). Records recovery
    /// dropped are stepped over (their sequences are never returned).
    ReadStatus next(RecordView& out);
    /// Steps past the record next() found corrupt: the next sequence is searched for in the
    /// bytes after it (its length cannot be trusted), as recovery resyncs.
    void skip() noexcept;
    /// Whether next() would return something other than not_committed now (it does not move).
    bool ready() const;
    /// Sleeps until next() may have something (a commit or a seal where the cursor stands), at
    /// most `timeout`: a futex wait in the segment file, no polling. Returns at once if ready().
    void wait(std::chrono::nanoseconds timeout);
    /// Where next() reads from: the record it returns, or a deleted one before it that it steps over.
    std::uint64_t sequence() const noexcept { return sequence_; }

   private:
    friend class Journal;
    const Journal* journal_ = nullptr;
    std::shared_ptr<const Segment> segment_;  // kept mapped while the cursor is in it
    std::uint64_t offset_ = 0;  // of sequence_'s record; 0 after skip() until it is found
    std::uint64_t sequence_ = 0;
    std::uint64_t search_from_ = 0;  // while offset_ is 0: sequence_'s record is after this
    // Waiting for a claimed record to be committed: since when, and the last search for it.
    std::uint64_t stall_sequence_ = 0;
    std::uint64_t stall_since_ns_ = 0;
    std::uint64_t last_search_ns_ = 0;
  };
  /// A cursor at `sequence` (clamped to the first sequence; past the last, it waits there).
  Result<Cursor> cursor(std::uint64_t sequence) const;

  /// Appends one record; returns its sequence once it is stored under the sync policy.
  /// `expected_last` (not kAnyLast): only if the journal's last sequence is that one, checked
  /// and claimed in one CAS; Errc::expectation_failed "wrong last sequence: N" otherwise.
  static constexpr std::uint64_t kAnyLast = UINT64_MAX;
  Result<std::uint64_t> append(std::string_view subject, std::string_view headers, std::string_view payload,
                               std::uint64_t expected_last = kAnyLast);

  /// The record with `sequence`, verified (a corrupt one is an error, never a view).
  /// not found: below the first or above the last sequence, deleted, or dropped by recovery.
  Result<RecordView> read(std::uint64_t sequence) const;

  /// Deletes message `sequence` (JetStream's delete; purges and limits are made of it): its
  /// record is marked, readers step over it, read() says not found. Errc::not_found if it is not
  /// stored or deleted already. deleted_*() count what this handle deleted or found deleted
  /// when it opened the journal (the broker's handle: every delete is the broker's).
  Status remove(std::uint64_t sequence);
  std::uint64_t deleted_count() const noexcept { return deleted_.load(std::memory_order_relaxed); }
  std::uint64_t deleted_bytes() const noexcept { return deleted_bytes_.load(std::memory_order_relaxed); }
  /// Puts on disk every record appended and every delete made so far (msync of each segment
  /// that changed since this handle's last flush; the directory for new files): the interval
  /// sync policy's flush, and what makes deletes durable on a stream that syncs. Slow; for a
  /// background thread (the broker's).
  Status flush();
  /// Whether this handle deleted records that flush() has not put on disk yet.
  bool has_unflushed_deletes() const;
  /// The last sequence stored (not deleted) at or below `last` whose subject is `subject`; 0
  /// when there is none. Exact while others append: the subject index (journal/subject_index.hpp)
  /// is brought up to `last` first, waiting for records still being written (bounded: one given
  /// up on after kAbandonAfterNs is not stored). Above `last` when the subject got a message
  /// after it (the journal moved on: look again with a newer last).
  Result<std::uint64_t> last_on_subject(std::string_view subject, std::uint64_t last) const;
  /// Every subject's last stored message, in sequence order (deliver policy last_per_subject).
  /// Errc::resource_exhausted when the index is full (more subjects than it holds): scan.
  Result<std::vector<std::uint64_t>> last_per_subject() const;
  /// Notes at most `budget` records the subject index has not seen, if the journal has one
  /// (made by a first last_on_subject()), not waiting for any: the broker's tick, which keeps
  /// the walk left to a publisher short.
  void index_subjects(std::uint64_t budget) const;
  /// The first sequence stored (and not deleted) with a timestamp at or after `time_ns`
  /// (CLOCK_REALTIME, as records are stamped); last_seq() + 1 when there is none. Found from
  /// each segment's first record and its position index, then a walk of at most a stride.
  /// Appenders stamp their own clock reads just before they claim, so times follow sequence
  /// order to within that moment (as in JetStream, whose start time is a search too).
  std::uint64_t sequence_at_time(std::uint64_t time_ns) const;
  /// The first sequence stored and not deleted (last_seq() + 1 when there is none).
  std::uint64_t first_live_seq() const;
  /// Removes the files of the oldest sealed segments whose every record is deleted (never the
  /// tail). Their disk space returns once every process that mapped them has let go. Only the
  /// broker's handle, on one thread, with no cursor of this handle in them.
  std::size_t drop_deleted_segments();

  std::uint64_t first_seq() const;
  /// The last sequence appended (claimed) so far, by anyone; first_seq() - 1 when empty.
  std::uint64_t last_seq() const;
  const Recovery& recovery() const noexcept { return recovery_; }
  const std::string& directory() const noexcept { return directory_; }
  /// Random at creation; every segment file of the journal carries it.
  std::uint64_t stream_id() const noexcept { return stream_id_; }
  std::size_t segment_count() const;
  /// Makes a spare segment file when the tail is an eighth full and there is none, so the next
  /// roll-over (by whichever process) renames it instead of allocating on its publishing
  /// thread. Slow; for a background thread (the broker's). `sync` is the stream's policy now
  /// (an edit may have changed it since the journal was opened): it sets the spare's PageShape.
  Status prepare_spare(SyncPolicy sync);
  /// Bytes of records claimed so far in every segment (headers and padding included).
  std::uint64_t stored_bytes() const;
  /// The same, over the segments that start at `first_seq` or later (a publisher's handle
  /// still maps segments the broker has dropped).
  std::uint64_t stored_bytes_from(std::uint64_t first_seq) const;
  /// Whether open() verified the journal (false: other processes had it open, so it was
  /// attached as it is; attach() never recovers).
  bool recovered() const noexcept { return recovered_; }

  ~Journal();
  Journal(const Journal&) = delete;
  Journal& operator=(const Journal&) = delete;

 private:
  // In Segment::offsets: recovery dropped this record (offsets are >= 4096, multiples of 8).
  static constexpr std::uint64_t kDroppedOffset = 1;
  struct Segment {
    SegmentFile file;
    // Offsets of records by sequence - first_seq (0: not known yet; kDroppedOffset),
    // filled by recovery and extended by walking committed records' lengths.
    mutable std::mutex index_mutex;
    mutable std::vector<std::uint64_t> offsets;
    // What flush() last put on disk: the claimed end; until when it flushes again anyway (a
    // record claimed before that end may still be committed, within kAbandonAfterNs or never;
    // 0 once a flush came after that); whether deletes came since; whether a failed flush of
    // the file was reported.
    std::atomic<std::uint64_t> flushed_end{0};
    std::atomic<std::uint64_t> settle_until_ns{0};
    mutable std::atomic<bool> deleted_since_flush{false};
    std::atomic<bool> failure_reported{false};
  };
  Journal() = default;
  struct Lock {
    int fd;
    bool exclusive;
  };
  /// `directory`/lock, held exclusive if `want_exclusive` and nobody else holds it, else shared
  /// (waiting at most `wait_ns` for another opener's recovery).
  static Result<Lock> take_lock(int dir_fd, const std::string& directory, bool want_exclusive, std::uint64_t wait_ns);
  /// flock(fd, LOCK_SH), waiting at most `wait_ns`.
  static Status share_lock(int fd, const std::string& directory, std::uint64_t wait_ns);
 public:
  /// A claimed record not committed for this long is given up on by readers (its writer died,
  /// or is stopped): they go past it, and a late commit is refused (SegmentFile::raise_skip),
  /// as a ring's unblock_timeout does.
  static constexpr std::uint64_t kAbandonAfterNs = 1'000'000'000ull;
  /// How long an appender to a sync-always journal waits for its record to reach the disk
  /// before it reports a timeout (the record is stored, but not known to be synced).
  static constexpr std::uint64_t kDurableWaitNs = 10'000'000'000ull;

 private:
  /// Every segment file's first sequence in the directory, in order (sweeping dead spares'
  /// temporary files if asked: recovery).
  static Result<std::vector<std::uint64_t>> list_segments(int dir_fd, const std::string& directory, bool sweep_spares);
  /// Whether the segment file starting at `first` is sealed, read from the file's header.
  bool sealed_on_disk(std::uint64_t first) const;
  /// Whether `seg`'s file is still in the directory (the broker removes dropped segments).
  bool still_listed(const Segment& seg) const;
  /// The first segment in the directory starting at `first` or later (the last one if `last`),
  /// mapped.
  Result<std::shared_ptr<Segment>> segment_from(std::uint64_t first, bool last) const;
  /// The segment after `full` (sealed): opened if another writer made it, else created.
  Result<std::shared_ptr<Segment>> next_segment(Segment* full);
  /// The segment starting at `first`: ours, or opened (made first if `create`).
  /// With `after` (its predecessor), a file made or found on disk while `after` is no longer
  /// listed is refused (Errc::not_found): a fork of a stale handle, or dropped already.
  Result<std::shared_ptr<Segment>> next_segment_at(std::uint64_t first, bool create, const Segment* after = nullptr);
  Status add_segment(SegmentFile file, std::vector<std::pair<std::uint64_t, std::uint64_t>> index);
  static Result<std::unique_ptr<Journal>> load(const std::string& directory, const JournalOptions& options, bool recover);
  /// The segment that starts at `first_seq`, if this process has it mapped, else maps it.
  /// The segment after `seg`: the next one this process has mapped (a gap recovery reported
  /// between them is stepped over), else the one starting at seg's next sequence, mapped now.
  std::shared_ptr<const Segment> segment_after(const Segment& seg) const;
  /// After a record recovery dropped at `sequence` in `seg`: the next kept one, if known.
  static bool skip_dropped(const Segment& seg, std::uint64_t& sequence, std::uint64_t& offset);
  std::shared_ptr<const Segment> segment_for(std::uint64_t sequence) const;
  /// `raw`'s entry in segments_ if it is still there, else the current tail's.
  std::shared_ptr<Segment> pinned(const Segment* raw) const;
  /// The tail, kept mapped by this thread's pin (pin_slot) until its next pinned_tail(): what
  /// appenders and current_tail() use, so that no thread's release unmaps it under them.
  Segment* pinned_tail() const;
  struct TailPin {
    std::uint64_t journal_id = 0;
    std::shared_ptr<Segment> segment;
  };
  /// This thread's pin for journal `journal_id`; a new one (taking over the oldest) if `take`.
  /// nullptr once the thread's pins are gone (it is exiting), or if none and not `take`.
  static TailPin* pin_slot(std::uint64_t journal_id, bool take);
  /// Unmaps the segments before the tail that the broker has removed, unless something here
  /// still holds them (a cursor, a thread's pin): the disk space and the mapping come back.
  void release_dropped() const;
  /// Unless the segment's header says it was done already: its predecessor (sealed) flushed,
  /// seal included, and the directory fsync'd (the segment file's name), so that after a power
  /// cut recovery finds the journal whole up to a record acknowledged as synced.
  Status sync_name(const Segment& seg) const;
  /// Group commit of what this thread just committed in `seg` (sync always).
  Status make_durable(const Segment& seg) const;
  /// read(), deleted records included.
  /// `place` (if given) gets where the record starts when the walk got to it, readable or not.
  Result<RecordView> read_record(std::uint64_t sequence, std::uint64_t* place = nullptr) const;
  /// The subject index, mapped on first use; made if missing when `make`. nullptr: there is none
  /// (or it could not be made: callers walk, as before it existed).
  SubjectIndex* subject_index(bool make) const;
  /// Notes the records after index.indexed_upto() up to `upto` (at most `budget` if non-zero),
  /// then raises indexed_upto. With `wait`, waits (bounded) for records still being written;
  /// without, stops at the first.
  Status index_upto(SubjectIndex& index, std::uint64_t upto, std::uint64_t budget, bool wait) const;
  /// The last stored sequence at or below `from` on `subject`, by reading back (0: none).
  std::uint64_t walk_back(std::string_view subject, std::uint64_t from) const;
  void count_deleted();  // at open: what earlier handles deleted
  std::atomic<std::uint64_t> deleted_{0};
  std::atomic<std::uint64_t> deleted_bytes_{0};
  mutable std::atomic<std::uint64_t> first_live_hint_{0};

  std::string directory_;
  JournalOptions options_;
  int dir_fd_ = -1;   // the journal's directory (files are made and opened relative to it)
  int lock_fd_ = -1;
  bool recovered_ = false;
  std::uint64_t stream_id_ = 0;
  // Unique per handle in this process (threads' pins are found by it; an address may be reused).
  const std::uint64_t id_ = next_id_.fetch_add(1, std::memory_order_relaxed) + 1;
  static inline std::atomic<std::uint64_t> next_id_{0};
  Recovery recovery_;
  mutable std::mutex subject_index_mutex_;  // guards subject_index_ (mapped once, then kept)
  mutable std::unique_ptr<SubjectIndex> subject_index_;
  mutable std::shared_mutex segments_mutex_;  // guards segments_ (a roll appends to it)
  // By first_seq. Shared: flush() keeps the ones it syncs mapped while
  // drop_deleted_segments() removes them from the list.
  // mutable: readers map segments other processes made, and let go of those the broker removed.
  mutable std::vector<std::shared_ptr<Segment>> segments_;
  // A segment file was removed since the last flush(): the directory needs an fsync.
  std::atomic<bool> dir_dirty_{false};
  mutable std::atomic<Segment*> tail_{nullptr};     // where appends go
  /// tail_, moved on past segments other processes sealed (mapping what they made).
  Segment* current_tail() const;
};

}  // namespace bus::detail::journal

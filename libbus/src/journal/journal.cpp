// journal/journal.cpp — a directory of segment files: open and recover, append with roll-over,
// read by sequence.
#include "journal/journal.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <sys/file.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <thread>
#include <cerrno>
#include <cstdlib>

#include "os/files.hpp"
#include "os/process.hpp"
#include "os/tsc_clock.hpp"

namespace bus::detail::journal {

namespace {

// A sync writes back each dirty folio whole: small ones for a stream that syncs each append.
// One that syncs at an interval keeps large ones: a flush writes what its appends dirtied
// anyway, plus up to 2 MiB around each end and around each record deleted since the last one.
PageShape page_shape(SyncPolicy sync) { return sync == SyncPolicy::always ? PageShape::syncs : PageShape::appends; }

// "00000000000000000001.jrnl" -> 1; anything else -> 0 (not a segment file).
std::uint64_t parse_segment_name(const std::string& name) {
  if (name.size() != 25 || name.compare(20, 5, ".jrnl") != 0) return 0;
  std::uint64_t value = 0;
  for (std::size_t i = 0; i < 20; ++i) {
    if (name[i] < '0' || name[i] > '9') return 0;
    const auto digit = static_cast<std::uint64_t>(name[i] - '0');
    if (value > (kMaxSequence - digit) / 10) return 0;  // above the largest sequence (never wraps)
    value = value * 10 + digit;
  }
  return value;
}

std::uint64_t random_id() {
  std::uint64_t v = 0;
  if (::getrandom(&v, sizeof v, 0) != static_cast<ssize_t>(sizeof v)) v = realtime_ns() ^ std::uint64_t(::getpid());
  return v == 0 ? 1 : v;
}

// Makes the journal's directory if missing; with `durable`, a new one's name is put on disk
// (its parent fsync'd) before any record in it is acknowledged as synced.
Status make_directory(const std::string& directory, bool durable) {
  if (::mkdir(directory.c_str(), 0700) == 0) {
    if (durable) {
      const std::size_t slash = directory.find_last_of('/');
      if (auto st = sync_directory(slash == std::string::npos ? "." : directory.substr(0, slash)); !st) return st;
    }
  } else if (errno != EEXIST) {
    return make_error(Errc::io_error, errno_message(("create " + directory).c_str(), errno));
  }
  struct stat st{};
  if (::stat(directory.c_str(), &st) != 0 || !S_ISDIR(st.st_mode)) {
    return make_error(Errc::io_error, directory + " is not a directory");
  }
  if (st.st_uid != ::geteuid()) return make_error(Errc::permission_denied, directory + " belongs to another user");
  return {};
}

}  // namespace

Result<std::vector<std::uint64_t>> Journal::list_segments(int dir_fd, const std::string& directory, bool sweep_spares) {
  std::vector<std::uint64_t> firsts;
  const int list_fd = ::dup(dir_fd);  // fdopendir takes it over
  DIR* d = list_fd >= 0 ? ::fdopendir(list_fd) : nullptr;
  if (d == nullptr) {
    const int err = errno;
    if (list_fd >= 0) ::close(list_fd);
    return make_error(Errc::io_error, errno_message(("read " + directory).c_str(), err));
  }
  ::rewinddir(d);  // the duplicate shares the descriptor's position: an earlier listing's end
  while (dirent* e = ::readdir(d)) {
    if (const std::uint64_t first = parse_segment_name(e->d_name)) firsts.push_back(first);
    // A spare whose maker died half-way (make_spare): never a segment, swept by a recovery.
    if (sweep_spares && std::string_view(e->d_name).starts_with("spare.tmp-")) ::unlinkat(dir_fd, e->d_name, 0);
  }
  ::closedir(d);
  std::sort(firsts.begin(), firsts.end());
  return firsts;
}

bool Journal::sealed_on_disk(std::uint64_t first) const {
  // Only a header that says so is unsealed: a file that cannot be opened or read (out of
  // descriptors, say) is taken as sealed, never passed over with its records.
  const int fd = ::openat(dir_fd_, segment_file_name(first).c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
  if (fd < 0) return errno != ENOENT;
  std::uint64_t word = 0;
  const bool read = ::pread(fd, &word, sizeof word, offsetof(SegmentHeader, claim)) == static_cast<ssize_t>(sizeof word);
  ::close(fd);
  return !read || claim_sealed(word);
}

bool Journal::still_listed(const Segment& seg) const {
  struct stat st{};
  return ::fstatat(dir_fd_, segment_file_name(seg.file.first_seq()).c_str(), &st, AT_SYMLINK_NOFOLLOW) == 0;
}

Result<std::shared_ptr<Journal::Segment>> Journal::segment_from(std::uint64_t first, bool last) const {
  auto listed = list_segments(dir_fd_, directory_, /*sweep_spares=*/false);
  if (!listed) return std::move(listed).error();
  const std::vector<std::uint64_t>& firsts = listed.value();
  auto at = std::lower_bound(firsts.begin(), firsts.end(), first);
  if (at == firsts.end()) return make_error(Errc::not_found, "no segment of " + directory_ + " from " + std::to_string(first));
  if (last) return const_cast<Journal*>(this)->next_segment_at(firsts.back(), /*create=*/false);
  // A segment with a later file after it is sealed (a roll seals before it makes the next one);
  // an unsealed one there is a stale handle's fork being removed: passed over, never mapped.
  while (std::next(at) != firsts.end() && !sealed_on_disk(*at)) ++at;
  return const_cast<Journal*>(this)->next_segment_at(*at, /*create=*/false);
}

Result<std::unique_ptr<Journal>> Journal::open(const std::string& directory, const JournalOptions& options) {
  auto j = load(directory, options, /*recover=*/true);
  if (j) j.value()->count_deleted();
  return j;
}

Result<std::unique_ptr<Journal>> Journal::attach(const std::string& directory, const JournalOptions& options) {
  struct stat st{};
  if (::stat(directory.c_str(), &st) != 0) {
    return make_error(Errc::invalid_argument, "no journal in " + directory);
  }
  return load(directory, options, /*recover=*/false);
}

Result<std::unique_ptr<Journal>> Journal::load(const std::string& directory, const JournalOptions& options,
                                               bool recover) {
  if (auto st = make_directory(directory, options.sync != SyncPolicy::never); !st) return std::move(st).error();
  std::unique_ptr<Journal> j(new Journal());
  j->directory_ = directory;
  j->options_ = options;
  // Recovery rewrites claim words, so it runs only with nobody else holding the journal: every
  // handle holds the lock file shared, recovery needs it exclusive. The kernel drops a dead
  // process's lock, so a crash never leaves the journal unrecoverable; live (or stopped) holders
  // mean the journal is in use as it is, and it is attached without recovery.
  // The directory by descriptor from here on: a stream removed (renamed aside) while we still
  // append never gets our segment files in the directory of a new stream of the same name.
  j->dir_fd_ = ::open(directory.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (j->dir_fd_ < 0) return make_error(Errc::io_error, errno_message(("open " + directory).c_str(), errno));
  auto lock = take_lock(j->dir_fd_, directory, recover, options.lock_wait_ns);
  if (!lock) return std::move(lock).error();
  j->lock_fd_ = lock->fd;
  recover = lock->exclusive;
  j->recovered_ = recover;
  // Recovery may cut records the subject index points at: it is made again, from the records.
  if (recover) ::unlinkat(j->dir_fd_, SubjectIndex::kFileName, 0);
  auto listed = list_segments(j->dir_fd_, directory, /*sweep_spares=*/recover);
  if (!listed) return std::move(listed).error();
  const std::vector<std::uint64_t> firsts = std::move(listed).value();
  for (const std::uint64_t first : firsts) {
    const std::string path = directory + "/" + segment_file_name(first);
    auto file = SegmentFile::open(path, j->dir_fd_);
    if (!file && first == firsts.back() && SegmentFile::unfinished(path, j->dir_fd_)) {
      // Its creator died between creating it and writing its header (nothing was ever in it),
      // or, with others attached, is writing the header now: an appender maps it on its roll.
      if (recover) {
        j->recovery_.damage.push_back(path + " was never finished by its creator: removed");
        ::unlinkat(j->dir_fd_, segment_file_name(first).c_str(), 0);
      }
      continue;
    }
    if (!file) return std::move(file).error();
    if (file->first_seq() != first) {
      return make_error(Errc::journal_corrupt, path + " says it starts at " + std::to_string(file->first_seq()));
    }
    if (!recover && first != firsts.back() && !file->sealed()) {
      // Unsealed with a later file after it (a roll seals first): a stale handle's fork, about
      // to be removed (or left by one killed before it could). Never read; recovery removes it.
      continue;
    }
    if (j->stream_id_ == 0) j->stream_id_ = file->stream_id();
    if (file->stream_id() != j->stream_id_) {
      return make_error(Errc::journal_corrupt, path + " belongs to another stream's journal");
    }
    std::vector<std::pair<std::uint64_t, std::uint64_t>> index;
    Recovery r = recover ? file->recover(index) : Recovery{};
    j->recovery_.records += r.records;
    j->recovery_.lost_records += r.lost_records;
    j->recovery_.lost_bytes += r.lost_bytes;
    if (r.truncated_at != 0) j->recovery_.truncated_at = r.truncated_at;
    for (auto& line : r.damage) j->recovery_.damage.push_back(std::move(line));
    if (recover && !j->segments_.empty()) {
      const SegmentFile& prev = j->segments_.back()->file;
      if (!prev.sealed() && first >= prev.next_seq()) {
        // A roll creates the next file only after the seal, so the seal was lost: its header
        // page did not reach the disk before a power cut (or a scribble cleared it). Every record
        // recovery kept is before this file's first: sealed again where they end.
        prev.seal();
        j->recovery_.damage.push_back(prev.path() + " was not sealed although " + path +
                                      " follows it (a seal lost in a crash): sealed after sequence " +
                                      std::to_string(prev.next_seq() - 1));
      }
      if (first < prev.next_seq()) {
        return make_error(Errc::journal_corrupt, path + " starts at " + std::to_string(first) + " inside " +
                                                     prev.path() + " (which ends at " +
                                                     std::to_string(prev.next_seq() - 1) + ")");
      }
      if (prev.next_seq() < first) {
        j->recovery_.lost_records += first - prev.next_seq();
        j->recovery_.damage.push_back("sequences " + std::to_string(prev.next_seq()) + ".." + std::to_string(first - 1) +
                                      " are in no segment file: lost");
      }
    }
    if (auto st = j->add_segment(std::move(file).value(), std::move(index)); !st) return std::move(st).error();
  }
  if (j->segments_.empty() && !recover) return make_error(Errc::invalid_argument, "no journal in " + directory);
  if (j->segments_.empty()) {
    j->stream_id_ = random_id();
    auto file = SegmentFile::create(directory + "/" + segment_file_name(1), 1, options.segment_bytes, j->stream_id_,
                                    page_shape(options.sync), j->dir_fd_);
    if (!file) return std::move(file).error();
    if (auto st = j->add_segment(std::move(file).value(), {}); !st) return std::move(st).error();
  }
  j->tail_.store(j->segments_.back().get(), std::memory_order_release);
  // The exclusive lock becomes shared (not atomically: another opener may take it exclusive in
  // between and recover what we left, a recovered journal, changing nothing; we wait for it).
  if (recover) {
    if (auto st = share_lock(j->lock_fd_, directory, options.lock_wait_ns); !st) return std::move(st).error();
  }
  return j;
}

Journal::~Journal() {
  // This thread's pin goes with the handle (other threads' go when they pin something else).
  if (TailPin* p = pin_slot(id_, /*take=*/false)) *p = TailPin{};
  if (lock_fd_ >= 0) ::close(lock_fd_);  // drops the shared lock
  if (dir_fd_ >= 0) ::close(dir_fd_);
}

Result<Journal::Lock> Journal::take_lock(int dir_fd, const std::string& directory, bool want_exclusive,
                                         std::uint64_t wait_ns) {
  const std::string path = directory + "/lock";
  const int fd = ::openat(dir_fd, "lock", O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
  if (fd < 0) return make_error(Errc::io_error, errno_message(("open " + path).c_str(), errno));
  if (want_exclusive && ::flock(fd, LOCK_EX | LOCK_NB) == 0) return Lock{fd, true};
  if (auto st = share_lock(fd, directory, wait_ns); !st) {
    ::close(fd);
    return std::move(st).error();
  }
  return Lock{fd, false};
}

Status Journal::share_lock(int fd, const std::string& directory, std::uint64_t wait_ns) {
  // Shared: blocked only while another opener recovers, which takes time in proportion to the
  // journal's size, so the wait is long but bounded.
  const std::uint64_t deadline = monotonic_ns() + wait_ns;
  for (;;) {
    if (::flock(fd, LOCK_SH | LOCK_NB) == 0) return {};
    const int err = errno;
    if (err != EWOULDBLOCK && err != EINTR) {
      return make_error(Errc::io_error, errno_message(("lock " + directory + "/lock").c_str(), err));
    }
    if (monotonic_ns() > deadline) {
      return make_error(Errc::timeout, "journal " + directory + " stayed locked for recovery by another process");
    }
    ::usleep(2000);
  }
}

Status Journal::add_segment(SegmentFile file, std::vector<std::pair<std::uint64_t, std::uint64_t>> index) {
  auto seg = std::make_shared<Segment>();
  seg->file = std::move(file);
  // Recovery lists every record it kept: the sequences between them were dropped.
  for (const auto& [sequence, offset] : index) {
    const std::uint64_t i = sequence - seg->file.first_seq();
    if (seg->offsets.size() <= i) seg->offsets.resize(i + 1, kDroppedOffset);
    seg->offsets[i] = offset;
  }
  const std::uint64_t claimed = seg->file.next_seq() - seg->file.first_seq();
  if (!index.empty() && seg->offsets.size() < claimed) seg->offsets.resize(claimed, kDroppedOffset);
  std::unique_lock lock(segments_mutex_);
  segments_.push_back(std::move(seg));
  return {};
}

Result<std::shared_ptr<Journal::Segment>> Journal::next_segment(Segment* full) {
  // Sealed, and its file gone: the broker dropped it (every record deleted) while this handle
  // last appended there, so the journal has moved on, and its successor may be gone too. Made
  // again, that successor would fork the journal with sequences already used: appends go on in
  // the journal's last segment instead. (Segments are dropped oldest first and never the tail,
  // so while `full` is listed its successor either exists or is the next to be made.)
  if (!still_listed(*full)) return segment_from(full->file.next_seq(), /*last=*/true);
  // Dropped between that look and the creation (this thread was stopped for that long):
  // next_segment_at looks again before anyone here can see the new file (a fork is only ever
  // made after its predecessor went, so that look catches it) and removes it.
  auto next = next_segment_at(full->file.next_seq(), /*create=*/true, full);  // sealed: next_seq is final
  if (!next && next.error().code == Errc::not_found && !still_listed(*full)) {
    return segment_from(full->file.next_seq(), /*last=*/true);
  }
  return next;
}

std::shared_ptr<Journal::Segment> Journal::pinned(const Segment* raw) const {
  std::shared_lock lock(segments_mutex_);
  // By address only: `raw` may be gone (released after tail_ moved on), and is then not here;
  // the tail always is (it is never released).
  for (const Segment* want : {raw, static_cast<const Segment*>(tail_.load(std::memory_order_acquire))}) {
    for (const auto& s : segments_) {
      if (s.get() == want) return s;
    }
  }
  return segments_.back();
}

Journal::Segment* Journal::pinned_tail() const {
  // Acquire: the segment's fields are visible (it was published after it was filled in).
  Segment* raw = tail_.load(std::memory_order_acquire);
  TailPin* pin = pin_slot(id_, /*take=*/true);
  // No pin (this thread is exiting and its pins are gone): the tail as it is, unpinned. Nothing
  // releases the tail itself, only segments behind it.
  if (pin == nullptr) return raw;
  if (pin->segment.get() != raw) pin->segment = pinned(raw);
  return pin->segment.get();
}

Journal::TailPin* Journal::pin_slot(std::uint64_t journal_id, bool take) {
  // A thread appends to few journals at a time: four pins, the oldest taken over for a fifth.
  // A publishing loop asks for the same pin each time: `recent` (a plain pointer, so reading it
  // needs no thread_local initialization check) answers that without touching the array.
  thread_local TailPin* recent = nullptr;
  thread_local bool gone = false;  // the pins below were destroyed (this thread is exiting)
  if (recent != nullptr && recent->journal_id == journal_id) return recent;
  if (gone) return nullptr;
  // At thread exit (before static objects, whose journals then ask again) the pins go, and say
  // so: a slot destroyed once must not be handed out and released a second time.
  struct Pins {
    TailPin slot[4];
    ~Pins() {
      for (TailPin& p : slot) p = TailPin{};
      recent = nullptr;
      gone = true;
    }
  };
  thread_local Pins pins;
  thread_local unsigned next_pin = 0;
  for (TailPin& p : pins.slot) {
    if (p.journal_id == journal_id) return recent = &p;
  }
  if (!take) return nullptr;
  TailPin& p = pins.slot[next_pin++ % 4];
  p.journal_id = journal_id;
  p.segment.reset();
  return recent = &p;
}

void Journal::release_dropped() const {
  current_tail();  // this handle's tail may be behind (a reader never appends): brought up first
  std::unique_lock lock(segments_mutex_);
  const Segment* tail = tail_.load(std::memory_order_acquire);
  // Before the tail, held by nobody but this list (no cursor, no appender's pin: use_count is
  // exact here, as new references are only taken from the list under its lock), and removed
  // from the directory by the broker: its records were all deleted.
  // Files are removed oldest first: the first one still listed ends the look.
  for (auto it = segments_.begin(); it != segments_.end() && it->get() != tail;) {
    if ((*it)->file.first_seq() >= tail->file.first_seq() || still_listed(**it)) break;
    it = it->use_count() == 1 ? segments_.erase(it) : std::next(it);
  }
}

Result<std::shared_ptr<Journal::Segment>> Journal::next_segment_at(std::uint64_t first, bool create,
                                                                   const Segment* after) {
  {
    std::shared_lock lock(segments_mutex_);
    for (const auto& s : segments_) {
      if (s->file.first_seq() == first) return s;
    }
  }
  const std::string path = directory_ + "/" + segment_file_name(first);
  Result<SegmentFile> file = make_error(Errc::already_exists, path);
  if (create) {
    // The spare the broker prepared, if any: a rename instead of 64 MiB of page faults.
    file = SegmentFile::create_from_spare(path, first, options_.segment_bytes, stream_id_, dir_fd_);
    if (!file && file.error().code == Errc::not_found) {
      file = SegmentFile::create(path, first, options_.segment_bytes, stream_id_, page_shape(options_.sync), dir_fd_);
    }
    if (file && after != nullptr && !still_listed(*after)) {
      // `after` went before we made its successor: ours is a fork (sequences the journal has
      // used already), removed before anyone appends to it.
      ::unlinkat(dir_fd_, segment_file_name(first).c_str(), 0);
      return make_error(Errc::not_found, path + " follows a segment that was dropped: not made");
    }
  }
  if (!file && file.error().code == Errc::already_exists) {
    // Another writer made it first; it may still be writing its header: open retries briefly.
    for (int attempt = 0; attempt < 1000; ++attempt) {
      file = SegmentFile::open(path, dir_fd_);
      if (file || file.error().code != Errc::journal_corrupt || !create) break;
      ::usleep(1000);
    }
  }
  if (!file) return std::move(file).error();
  if (after != nullptr && !still_listed(*after)) {
    // Found on disk after its predecessor went: a stale handle's fork, about to be removed, or
    // a successor dropped since; either way not where the journal goes on.
    return make_error(Errc::not_found, path + " follows a segment that was dropped");
  }
  if (file->first_seq() != first || file->stream_id() != stream_id_) {
    return make_error(Errc::journal_corrupt, path + " does not continue this stream's journal (its header says otherwise)");
  }
  std::unique_lock lock(segments_mutex_);
  for (const auto& s : segments_) {
    if (s->file.first_seq() == first) return s;  // a thread of ours got there meanwhile (the same file)
  }
  auto seg = std::make_shared<Segment>();
  seg->file = std::move(file).value();
  // In order (segment_for searches): usually at the end, but a gap recovery left may be filled.
  auto at = std::upper_bound(segments_.begin(), segments_.end(), first,
                             [](std::uint64_t seq, const auto& s) { return seq < s->file.first_seq(); });
  segments_.insert(at, seg);
  return seg;
}

Result<std::uint64_t> Journal::append(std::string_view subject, std::string_view headers, std::string_view payload,
                                      std::uint64_t expected_last) {
  // This thread's pin keeps the segment mapped while it appends, whoever releases what.
  Segment* seg = pinned_tail();
  const std::uint64_t now = fast_realtime_ns();  // the record's time: from the TSC (os/tsc_clock.hpp)
  for (int rolls = 0; rolls < 64; ++rolls) {
    std::uint64_t sequence = 0, offset = 0;
    const std::uint64_t expected_next = expected_last == kAnyLast ? 0 : expected_last + 1;
    switch (seg->file.append(subject, headers, payload, now, sequence, offset, expected_next)) {
      case AppendStatus::wrong_last:
        return make_error(Errc::expectation_failed, "wrong last sequence: " + std::to_string(sequence - 1));
      case AppendStatus::appended:
        if (options_.sync == SyncPolicy::always) {
          if (auto st = make_durable(*seg); !st) return std::move(st).error();
        }
        return sequence;
      case AppendStatus::abandoned:
        return make_error(Errc::timeout, "message " + std::to_string(sequence) + " of " + directory_ +
                                             " was finished after readers had given up on it (unfinished for over " +
                                             std::to_string(kAbandonAfterNs / 1'000'000) +
                                             " ms: was this publisher stopped?): it may not be delivered");
      case AppendStatus::too_large:
        return make_error(Errc::payload_too_large, "a record of " + std::to_string(payload.size() + headers.size()) +
                                                       " bytes does not fit in a journal segment of " +
                                                       std::to_string(seg->file.capacity()) + " bytes");
      case AppendStatus::full: {
        auto next = next_segment(seg);
        if (!next) return std::move(next).error();
        Segment* expected = seg;
        // Release: publishes the new segment to appenders that load tail_ with acquire.
        tail_.compare_exchange_strong(expected, next->get(), std::memory_order_acq_rel);
        release_dropped();  // what the broker removed behind us is unmapped here too (it re-pins)
        seg = pinned_tail();
        break;
      }
    }
  }
  return make_error(Errc::resource_exhausted, "journal " + directory_ + " kept filling its segments during one append");
}

Status Journal::sync_name(const Segment& seg) const {
  if (seg.file.directory_synced()) return {};
  // The seal of the segment before it: a sync-always stream flushes only the segment it appends
  // to, and without the seal on disk recovery would find an unsealed segment followed by this one.
  std::shared_ptr<Segment> before;
  {
    std::shared_lock lock(segments_mutex_);
    for (std::size_t i = 1; i < segments_.size(); ++i) {
      if (segments_[i].get() == &seg) before = segments_[i - 1];
    }
  }
  if (before && !before->file.has_failed() && before->file.next_seq() == seg.file.first_seq()) {
    if (auto st = before->file.flush(); !st) return st;
  }
  if (::fsync(dir_fd_) != 0) return make_error(Errc::io_error, errno_message(("sync " + directory_).c_str(), errno));
  seg.file.mark_directory_synced();
  return {};
}

Status Journal::make_durable(const Segment& seg) const {
  // A new segment file's name must be on disk before a record in it is: whoever of its
  // appenders gets here first fsyncs the directory (once; the header remembers).
  if (auto st = sync_name(seg); !st) return st;
  return seg.file.make_durable(std::chrono::nanoseconds(kDurableWaitNs));
}

Status Journal::flush() {
  std::vector<std::shared_ptr<Segment>> all;  // mapped until we are done, dropped or not
  {
    std::shared_lock lock(segments_mutex_);
    all = segments_;
  }
  Status first_error;  // every segment gets its flush; the first failure is what is reported
  auto note = [&first_error](Status st) {
    if (!st && first_error) first_error = std::move(st);
  };
  // Files removed since the last flush: gone for good only once the directory is on disk.
  if (dir_dirty_.exchange(false, std::memory_order_relaxed) && ::fsync(dir_fd_) != 0) {
    dir_dirty_.store(true, std::memory_order_relaxed);
    note(make_error(Errc::io_error, errno_message(("sync " + directory_).c_str(), errno)));
  }
  const std::uint64_t now = monotonic_ns();
  for (const auto& seg : all) {
    // A failed flush is sticky (appenders of a sync-always stream get it every time): reported
    // here once, and nothing more is flushed in that file.
    if (seg->file.has_failed()) {
      seg->deleted_since_flush.store(false, std::memory_order_relaxed);
      if (!seg->failure_reported.exchange(true, std::memory_order_relaxed)) note(seg->file.failed());
      continue;
    }
    // Only what changed since our last flush: new records (claimed bytes grew), deletes, or
    // records claimed before an earlier flush and perhaps committed after it (settling: one
    // more flush at least once the window in which they could commit has passed).
    const std::uint64_t end = seg->file.claimed_end();
    const bool deleted = seg->deleted_since_flush.exchange(false, std::memory_order_relaxed);
    const bool grew = end != seg->flushed_end.load(std::memory_order_relaxed);
    const std::uint64_t settle_until = seg->settle_until_ns.load(std::memory_order_relaxed);
    if (!grew && !deleted && settle_until == 0) continue;
    Status st = sync_name(*seg);
    if (st) st = seg->file.flush();
    if (!st) {
      if (deleted) seg->deleted_since_flush.store(true, std::memory_order_relaxed);
      if (seg->file.has_failed()) seg->failure_reported.store(true, std::memory_order_relaxed);
      note(std::move(st));
      continue;
    }
    seg->flushed_end.store(end, std::memory_order_relaxed);
    if (grew) {
      seg->settle_until_ns.store(now + 2 * kAbandonAfterNs, std::memory_order_relaxed);
    } else if (settle_until != 0 && now >= settle_until) {
      seg->settle_until_ns.store(0, std::memory_order_relaxed);  // every late commit is covered
    }
  }
  return first_error;
}

bool Journal::has_unflushed_deletes() const {
  // A removed segment file counts too: its marks went with it, its unlink is not on disk yet.
  if (dir_dirty_.load(std::memory_order_relaxed)) return true;
  std::shared_lock lock(segments_mutex_);
  return std::any_of(segments_.begin(), segments_.end(),
                     [](const auto& s) { return s->deleted_since_flush.load(std::memory_order_relaxed); });
}

std::shared_ptr<const Journal::Segment> Journal::segment_for(std::uint64_t sequence) const {
  std::shared_lock lock(segments_mutex_);
  // Sorted by first_seq: the last one starting at or below `sequence`.
  auto after = std::upper_bound(segments_.begin(), segments_.end(), sequence,
                                [](std::uint64_t seq, const auto& s) { return seq < s->file.first_seq(); });
  return after == segments_.begin() ? nullptr : *std::prev(after);
}

Result<RecordView> Journal::read(std::uint64_t sequence) const {
  auto r = read_record(sequence);
  if (r && (r->flags & kRecordDeleted) != 0) {
    return make_error(Errc::invalid_argument, "message " + std::to_string(sequence) + " of " + directory_ + " was deleted");
  }
  return r;
}

Status Journal::remove(std::uint64_t sequence) {
  auto r = read_record(sequence);
  if (!r) {
    if (r.error().code == Errc::invalid_argument) return make_error(Errc::not_found, r.error().message);
    return std::move(r).error();
  }
  // The segment the record was read in (looked up again, it could be another by now).
  const auto seg = std::static_pointer_cast<const Segment>(r->keep);
  if (seg == nullptr || !seg->file.mark_deleted(r->offset)) {
    return make_error(Errc::not_found, "message " + std::to_string(sequence) + " is deleted already");
  }
  seg->deleted_since_flush.store(true, std::memory_order_relaxed);
  deleted_.fetch_add(1, std::memory_order_relaxed);
  deleted_bytes_.fetch_add(r->bytes, std::memory_order_relaxed);
  return {};
}

std::uint64_t Journal::first_live_seq() const {
  const std::uint64_t last = last_seq();
  std::uint64_t seq = std::max(first_seq(), first_live_hint_.load(std::memory_order_relaxed));
  for (; seq <= last; ++seq) {
    auto r = read_record(seq);
    if (!r && r.error().code == Errc::timeout) break;  // not written yet: it is not deleted
    if (r && (r->flags & kRecordDeleted) == 0) break;
  }
  first_live_hint_.store(seq, std::memory_order_relaxed);  // deletes are never undone
  return seq;
}

SubjectIndex* Journal::subject_index(bool make) const {
  std::lock_guard lock(subject_index_mutex_);
  if (subject_index_) return subject_index_.get();
  auto index = make ? SubjectIndex::open_or_make(dir_fd_, directory_, stream_id_)
                    : SubjectIndex::open(dir_fd_, directory_, stream_id_);
  if (!index && make && index.error().code == Errc::journal_corrupt) {
    // Derived data, damaged: made again. A process that mapped the old file goes on with it,
    // which is as consistent as the new one (each has its own indexed_upto).
    ::unlinkat(dir_fd_, SubjectIndex::kFileName, 0);
    index = SubjectIndex::open_or_make(dir_fd_, directory_, stream_id_);
  }
  if (!index) return nullptr;
  subject_index_ = std::make_unique<SubjectIndex>(std::move(index).value());
  return subject_index_.get();
}

Status Journal::index_upto(SubjectIndex& index, std::uint64_t upto, std::uint64_t budget, bool wait) const {
  const std::uint64_t from = index.indexed_upto() + 1;
  if (from > upto) return {};
  auto c = cursor(from);
  if (!c) return std::move(c).error();
  // A record still being written is waited for until the cursor gives up on it (its writer
  // died or is stopped: kAbandonAfterNs, then it is never stored), and a little more.
  const std::uint64_t deadline = monotonic_ns() + kAbandonAfterNs + kAbandonAfterNs / 2;
  RecordView v;
  std::uint64_t noted = 0;
  while (c->sequence() <= upto && (budget == 0 || noted < budget)) {
    const ReadStatus st = c->next(v);
    if (st == ReadStatus::ok) {
      index.note(v.subject, v.sequence);  // a full table says so itself: lookups walk then
      ++noted;
      continue;
    }
    if (st == ReadStatus::corrupt) {
      c->skip();  // never delivered, so on no subject
      continue;
    }
    if (!wait) break;
    if (monotonic_ns() > deadline) {
      return make_error(Errc::timeout, "message " + std::to_string(c->sequence()) + " of " + directory_ +
                                           " stayed unfinished: the subject index cannot pass it");
    }
    c->wait(std::chrono::milliseconds(1));
  }
  index.raise_indexed_upto(c->sequence() - 1);  // every record below the cursor is noted
  return {};
}

std::uint64_t Journal::walk_back(std::string_view subject, std::uint64_t from) const {
  const std::uint64_t first = first_seq();
  for (std::uint64_t seq = from; seq >= first && seq != 0; --seq) {
    auto r = read(seq);
    if (r && r->subject == subject) return seq;
  }
  return 0;
}

Result<std::uint64_t> Journal::last_on_subject(std::string_view subject, std::uint64_t last) const {
  SubjectIndex* index = subject_index(/*make=*/true);
  if (index == nullptr) return walk_back(subject, last);
  if (auto st = index_upto(*index, last, 0, /*wait=*/true); !st) return std::move(st).error();
  std::uint64_t seq = 0;
  switch (index->last(subject, seq)) {
    case SubjectIndex::Lookup::absent: return 0;
    case SubjectIndex::Lookup::unknown: return walk_back(subject, last);
    case SubjectIndex::Lookup::found: break;
  }
  if (seq == 0 || seq > last) return seq;
  auto r = read(seq);
  if (r && r->subject == subject) return seq;
  // Deleted since (or another subject with the same hash): the one before it on the subject.
  const std::uint64_t before = walk_back(subject, seq - 1);
  if (!r) index->replace(subject, seq, before);
  return before;
}

Result<std::vector<std::uint64_t>> Journal::last_per_subject() const {
  SubjectIndex* index = subject_index(/*make=*/true);
  if (index == nullptr) return make_error(Errc::io_error, "journal " + directory_ + " has no subject index");
  if (auto st = index_upto(*index, last_seq(), 0, /*wait=*/true); !st) return std::move(st).error();
  if (index->full()) return make_error(Errc::resource_exhausted, "the subject index of " + directory_ + " is full");
  std::vector<std::uint64_t> seqs;
  index->for_each([&seqs](std::uint64_t seq) { seqs.push_back(seq); });
  for (std::uint64_t& seq : seqs) {
    auto r = read_record(seq);
    if (!r) {
      seq = 0;  // in a dropped segment (every earlier message went with it) or damaged
      continue;
    }
    if ((r->flags & kRecordDeleted) != 0) {
      const std::string subject(r->subject);
      const std::uint64_t before = walk_back(subject, seq - 1);
      index->replace(subject, seq, before);
      seq = before;
    }
  }
  std::erase(seqs, 0);
  std::sort(seqs.begin(), seqs.end());
  return seqs;
}

void Journal::index_subjects(std::uint64_t budget) const {
  if (SubjectIndex* index = subject_index(/*make=*/false)) (void)index_upto(*index, last_seq(), budget, /*wait=*/false);
}

std::uint64_t Journal::sequence_at_time(std::uint64_t time_ns) const {
  current_tail();
  std::vector<std::shared_ptr<Segment>> all;
  {
    std::shared_lock lock(segments_mutex_);
    all = segments_;
  }
  // A segment's first record's time (deleted or not); an unreadable one counts as early, so the
  // search looks in it rather than past it.
  auto first_time = [this](const Segment& seg) -> std::uint64_t {
    auto r = read_record(seg.file.first_seq());
    return r ? r->timestamp_ns : 0;
  };
  // The last segment that starts before `time_ns`: the answer is in it or starts the next one.
  std::size_t lo = 0, hi = all.size();
  while (hi - lo > 1) {
    const std::size_t mid = lo + (hi - lo) / 2;
    if (first_time(*all[mid]) < time_ns) lo = mid; else hi = mid;
  }
  const Segment& seg = *all[lo];
  std::uint64_t from = seg.file.first_seq();
  if (first_time(seg) >= time_ns) return lo == 0 ? first_live_seq() : from;
  // The last position entry stamped before it; the walk starts there.
  if (const std::uint64_t stride = seg.file.index_stride(); stride != 0) {
    for (std::uint64_t k = 1; k < kPositionEntries; ++k) {
      std::uint64_t offset = 0, ts = 0;
      if (!seg.file.noted_position(k, offset, ts)) continue;  // not noted: the walk goes past it
      if (ts >= time_ns) break;
      from = seg.file.first_seq() + k * stride;
    }
  }
  auto c = cursor(from);
  if (!c) return last_seq() + 1;
  RecordView v;
  for (;;) {
    const ReadStatus st = c->next(v);
    if (st == ReadStatus::corrupt) {
      c->skip();
      continue;
    }
    if (st != ReadStatus::ok) return c->sequence();  // the end (or a record not written yet)
    if (v.timestamp_ns >= time_ns) return v.sequence;
  }
}

std::size_t Journal::drop_deleted_segments() {
  const std::uint64_t live = first_live_seq();
  std::size_t dropped = 0;
  std::unique_lock lock(segments_mutex_);
  while (segments_.size() > 1 && segments_.front()->file.sealed() && segments_.front()->file.next_seq() <= live &&
         segments_.front().get() != tail_.load(std::memory_order_acquire)) {
    Segment& s = *segments_.front();
    const std::uint64_t records = s.file.next_seq() - s.file.first_seq();
    const std::uint64_t bytes = s.file.claimed_end() - kSegmentHeaderBytes;
    if (::unlinkat(dir_fd_, segment_file_name(s.file.first_seq()).c_str(), 0) == 0) {
      dir_dirty_.store(true, std::memory_order_relaxed);
    }
    deleted_.fetch_sub(std::min(records, deleted_.load(std::memory_order_relaxed)), std::memory_order_relaxed);
    deleted_bytes_.fetch_sub(std::min(bytes, deleted_bytes_.load(std::memory_order_relaxed)), std::memory_order_relaxed);
    segments_.erase(segments_.begin());
    ++dropped;
  }
  return dropped;
}

void Journal::count_deleted() {
  if (recovered_) {
    // Recovery has just verified every record and noted where each starts: the marks are read
    // there, without checking every record a second time.
    std::shared_lock lock(segments_mutex_);
    for (const auto& seg : segments_) {
      std::lock_guard index_lock(seg->index_mutex);
      for (const std::uint64_t offset : seg->offsets) {
        std::uint32_t bytes = 0;
        if (offset > kDroppedOffset && seg->file.deleted_at(offset, bytes)) {
          deleted_.fetch_add(1, std::memory_order_relaxed);
          deleted_bytes_.fetch_add(bytes, std::memory_order_relaxed);
        }
      }
    }
    return;
  }
  const std::uint64_t last = last_seq();
  for (std::uint64_t seq = first_seq(); seq <= last; ++seq) {
    auto r = read_record(seq);
    if (r && (r->flags & kRecordDeleted) != 0) {
      deleted_.fetch_add(1, std::memory_order_relaxed);
      deleted_bytes_.fetch_add(r->bytes, std::memory_order_relaxed);
    }
  }
}

Result<RecordView> Journal::read_record(std::uint64_t sequence, std::uint64_t* place) const {
  if (place != nullptr) *place = 0;
  const std::shared_ptr<const Segment> seg = segment_for(sequence);
  if (seg == nullptr || sequence >= seg->file.next_seq()) {
    return make_error(Errc::invalid_argument, "no message " + std::to_string(sequence) + " in " + directory_);
  }
  const std::uint64_t first = seg->file.first_seq();
  const std::uint64_t i = sequence - first;
  std::lock_guard lock(seg->index_mutex);
  std::vector<std::uint64_t>& offsets = seg->offsets;
  // Start at the nearest record at or below `sequence` whose position is known (the first
  // record's is the end of the header); each committed record's length gives the next one's.
  std::uint64_t at = std::min<std::uint64_t>(i, offsets.size());
  while (at > 0 && (at >= offsets.size() || offsets[at] == 0)) --at;
  std::uint64_t offset = at < offsets.size() && offsets[at] != 0 ? offsets[at] : kSegmentHeaderBytes;
  RecordView view;
  // Further than a stride on: from the nearest position entry after `at` (another process's
  // appends noted them; this process has walked none of it), verified before it is trusted.
  if (const std::uint64_t stride = seg->file.index_stride(); stride != 0 && i - at >= stride) {
    for (std::uint64_t k = i / stride; k * stride > at; --k) {
      std::uint64_t noted = 0, ts = 0;
      if (seg->file.noted_position(k, noted, ts) && seg->file.read(noted, first + k * stride, view) == ReadStatus::ok) {
        at = k * stride;
        offset = noted;
        break;
      }
    }
  }
  for (;; ++at) {
    if (at < offsets.size() && offsets[at] == kDroppedOffset) {
      return make_error(Errc::journal_corrupt, "message " + std::to_string(first + at) + " of " + directory_ +
                                                   " was dropped when the journal was recovered (damaged)");
    }
    if (at < offsets.size() && offsets[at] != 0) offset = offsets[at];
    // The records on the way are only stepped over: committed, and a length inside the file.
    // The one asked for is verified whole (a wrong length on the way lands where no record
    // verifies as the next sequence, and the search below takes over).
    std::uint32_t bytes = 0;
    const ReadStatus st = at == i ? seg->file.read(offset, first + at, view) : seg->file.step(offset, first + at, bytes);
    if (at == i && place != nullptr) *place = offset;  // where it is, readable or not
    if (st == ReadStatus::corrupt) {
      return make_error(Errc::journal_corrupt, "message " + std::to_string(first + at) + " of " + seg->file.path() +
                                                   " fails its checksum or bounds: not delivered");
    }
    if (st == ReadStatus::not_committed) {
      // A record before ours is unfinished (its writer is writing, died or is stopped): ours
      // may be complete all the same; search for it past the gap.
      if (at != i) {
        const std::uint64_t found = seg->file.find(sequence, offset);
        if (found != 0 && seg->file.read(found, sequence, view) == ReadStatus::ok) {
          view.keep = seg;
          return view;
        }
      }
      return make_error(Errc::timeout, "message " + std::to_string(first + i) + " of " + directory_ +
                                           " is not completely written yet");
    }
    if (offsets.size() <= at) offsets.resize(at + 1, 0);
    offsets[at] = offset;
    if (at == i) {
      seg->file.note_position(first + at, offset, view.timestamp_ns);  // its appender may have died first
      view.keep = seg;
      return view;
    }
    offset += bytes;
  }
}

std::shared_ptr<const Journal::Segment> Journal::segment_after(const Segment& seg) const {
  {
    std::shared_lock lock(segments_mutex_);
    for (std::size_t i = 0; i + 1 < segments_.size(); ++i) {
      if (segments_[i].get() == &seg) return segments_[i + 1];
    }
  }
  // Another process rolled over to it: map it too (the same as an appender's roll).
  auto next = const_cast<Journal*>(this)->next_segment_at(seg.file.next_seq(), /*create=*/false, &seg);
  if (next) return std::move(next).value();
  // Gone: dropped by the broker while we were behind it (its records were all deleted), as may
  // be more after it. The reader goes on at the first segment still there after `seg`.
  if (!still_listed(seg)) {
    auto later = segment_from(seg.file.next_seq(), /*last=*/false);
    if (later) return std::move(later).value();
  }
  return nullptr;
}

bool Journal::skip_dropped(const Segment& seg, std::uint64_t& sequence, std::uint64_t& offset) {
  std::lock_guard lock(seg.index_mutex);
  std::uint64_t i = sequence - seg.file.first_seq();
  if (i >= seg.offsets.size() || seg.offsets[i] != kDroppedOffset) return false;
  while (i < seg.offsets.size() && seg.offsets[i] == kDroppedOffset) ++i;
  if (i >= seg.offsets.size() || seg.offsets[i] == 0) return false;
  sequence = seg.file.first_seq() + i;
  offset = seg.offsets[i];
  return true;
}

Result<Journal::Cursor> Journal::cursor(std::uint64_t sequence) const {
  Cursor c;
  c.journal_ = this;
  std::shared_ptr<const Segment> seg = segment_for(std::max(sequence, first_seq()));
  if (seg == nullptr) return make_error(Errc::invalid_argument, "journal " + directory_ + " has no segment");
  c.segment_ = seg;
  c.sequence_ = seg->file.first_seq();
  c.offset_ = kSegmentHeaderBytes;
  // Straight to `sequence` when its record can be read, deleted or not (next() steps over a
  // deleted one); else searched for where it stands (not written yet, or damaged), as after a
  // skip: a walk from the segment's start could stop at an earlier unfinished record.
  if (sequence > c.sequence_ && sequence < seg->file.next_seq()) {
    std::uint64_t place = 0;
    auto view = read_record(sequence, &place);
    c.sequence_ = sequence;
    // Readable, or found where it is but not committed yet (next() waits for it, woken by its
    // commit) or damaged (next() says so): from there; past an earlier unfinished record, its
    // place is unknown and next() searches.
    c.offset_ = view ? view->offset : place;
    if (c.offset_ == 0) c.search_from_ = kSegmentHeaderBytes;
    return c;
  }
  // From the segment's start; next() steps over deleted records, so the first one it returns at
  // or past `sequence` is where the cursor stands (not one past it).
  RecordView v;
  while (c.sequence_ < sequence && c.next(v) == ReadStatus::ok) {
    if (v.sequence >= sequence) {
      c.sequence_ = v.sequence;
      c.offset_ = v.offset;
      break;
    }
  }
  return c;
}

bool Journal::Cursor::ready() const {
  Cursor probe = *this;
  RecordView v;
  return probe.next(v) != ReadStatus::not_committed;
}

void Journal::Cursor::wait(std::chrono::nanoseconds timeout) {
  // Past the end of a sealed segment: move on to the next one, so the sleep is on the futex
  // of the segment the next commit lands in. Not made yet (its maker is between the seal and
  // the file, or died there): look again in a millisecond, never a sleep nobody will end.
  if (segment_->file.sealed() && sequence_ >= segment_->file.next_seq() && offset_ != 0) {
    auto following = journal_->segment_after(*segment_);
    if (following == nullptr) {
      std::this_thread::sleep_for(std::min<std::chrono::nanoseconds>(timeout, std::chrono::milliseconds(1)));
      return;
    }
    sequence_ = following->file.first_seq();
    segment_ = std::move(following);
    offset_ = kSegmentHeaderBytes;
    search_from_ = 0;
  }
  // Sealed meanwhile: the seal woke nobody who counted in after it; look again instead.
  segment_->file.wait_for_commit(timeout, [this] { return !segment_->file.sealed() && !ready(); });
}

ReadStatus Journal::Cursor::next(RecordView& out) {
  for (;;) {
    const Segment* seg = segment_.get();
    // Sealed first, then the count: once sealed the count no longer changes, so a count read
    // after the seal is the final one (two loads in the other order could pair an old count
    // with a new seal and skip the records claimed in between).
    const bool sealed = seg->file.sealed();
    if (sealed && sequence_ >= seg->file.next_seq()) {
      // The segment is done: go on in the next one (mapped on first use).
      auto following = journal_->segment_after(*seg);
      if (following == nullptr) return ReadStatus::not_committed;
      sequence_ = following->file.first_seq();
      segment_ = std::move(following);
      journal_->release_dropped();  // the one left behind, if the broker removed it
      offset_ = kSegmentHeaderBytes;
      search_from_ = 0;
      continue;
    }
    ReadStatus st = ReadStatus::not_committed;
    if (offset_ == 0) {
      // After a skip: where sequence_ starts is searched for (the bytes before it cannot be
      // trusted for a length), at most once a millisecond while it is not there.
      const std::uint64_t now = monotonic_ns();
      if (now - last_search_ns_ >= 1'000'000) {
        last_search_ns_ = now;
        offset_ = seg->file.find(sequence_, search_from_);
      }
      if (offset_ != 0) st = seg->file.read(offset_, sequence_, out);
    } else {
      st = seg->file.read(offset_, sequence_, out);
    }
    if (st == ReadStatus::ok) {
      stall_sequence_ = 0;
      offset_ += out.bytes;
      ++sequence_;
      if ((out.flags & kRecordDeleted) != 0) continue;  // deleted: stepped over, never handed out
      return ReadStatus::ok;
    }
    if (st == ReadStatus::corrupt) {
      if (skip_dropped(*seg, sequence_, offset_)) continue;  // recovery dropped it: go past
      return st;
    }
    if (skip_dropped(*seg, sequence_, offset_)) continue;
    // Not committed. Claimed (a writer took it) but unfinished for too long: give up on it.
    if (sequence_ >= seg->file.next_seq()) return ReadStatus::not_committed;  // nobody wrote it yet
    const std::uint64_t now = monotonic_ns();
    if (stall_sequence_ != sequence_) {
      stall_sequence_ = sequence_;
      stall_since_ns_ = now;
    }
    if (now - stall_since_ns_ < kAbandonAfterNs && seg->file.skipped_below() <= sequence_) {
      return ReadStatus::not_committed;
    }
    seg->file.raise_skip(sequence_);  // [SJ3]; then the re-check below
    const std::uint64_t at = offset_ != 0 ? offset_ : seg->file.find(sequence_, search_from_);
    if (at != 0 && seg->file.read(at, sequence_, out) == ReadStatus::ok) {
      offset_ = at;  // committed after all: delivered as usual (its writer was told nothing)
      continue;
    }
    if (offset_ != 0) search_from_ = offset_ + kRecordAlign;
    skip();
  }
}

void Journal::Cursor::skip() noexcept {
  if (offset_ != 0) search_from_ = offset_ + kRecordAlign;
  ++sequence_;
  offset_ = 0;
  last_search_ns_ = 0;
}

std::uint64_t Journal::first_seq() const {
  std::shared_lock lock(segments_mutex_);
  return segments_.front()->file.first_seq();
}

Journal::Segment* Journal::current_tail() const {
  Segment* seg = pinned_tail();
  // Another process may have rolled over: follow the seals to the segment appends go to now.
  while (seg->file.sealed()) {
    auto next = const_cast<Journal*>(this)->next_segment_at(seg->file.next_seq(), /*create=*/false, seg);
    // Not there: not made yet (this is still the end), or dropped with this one while this
    // handle looked elsewhere (then the journal's end is its last file).
    if (!next && !still_listed(*seg)) next = segment_from(seg->file.next_seq(), /*last=*/true);
    if (!next) break;
    Segment* expected = seg;
    tail_.compare_exchange_strong(expected, next->get(), std::memory_order_acq_rel);
    seg = pinned_tail();
  }
  return seg;
}

std::uint64_t Journal::last_seq() const { return current_tail()->file.next_seq() - 1; }

Status Journal::prepare_spare(SyncPolicy sync) {
  const Segment* tail = current_tail();
  // Once the tail is an eighth full, and only while there is no spare (one stat, no allocation).
  // A journal that has rolled over before keeps two from the start: at 6 M msg/s a 64 MiB
  // segment fills in ~100 ms, about what making one takes on a machine whose memory is fresh,
  // and with one spare a slow round left publishers zero-filling the next segment themselves.
  const bool rolling = tail->file.first_seq() != first_seq();
  if (tail->file.claimed_end() < tail->file.capacity() / 8 && !rolling) return {};
  struct stat st{};
  if (::fstatat(dir_fd_, "spare", &st, AT_SYMLINK_NOFOLLOW) != 0) {
    // The second one moves up (a rename), if there is one; else one is made now.
    if (::renameat2(dir_fd_, "spare.next", dir_fd_, "spare", RENAME_NOREPLACE) != 0) {
      if (auto made = SegmentFile::make_spare(directory_, options_.segment_bytes, page_shape(sync), dir_fd_); !made) {
        return made;
      }
    }
  }
  if (!rolling || ::fstatat(dir_fd_, "spare.next", &st, AT_SYMLINK_NOFOLLOW) == 0) return {};
  return SegmentFile::make_spare(directory_, options_.segment_bytes, page_shape(sync), dir_fd_, "spare.next");
}

std::uint64_t Journal::stored_bytes() const { return stored_bytes_from(0); }

std::uint64_t Journal::stored_bytes_from(std::uint64_t first_seq) const {
  current_tail();
  std::shared_lock lock(segments_mutex_);
  std::uint64_t bytes = 0;
  for (const auto& s : segments_) {
    if (s->file.first_seq() >= first_seq) bytes += s->file.claimed_end() - kSegmentHeaderBytes;
  }
  return bytes;
}

std::size_t Journal::segment_count() const {
  std::shared_lock lock(segments_mutex_);
  return segments_.size();
}

}  // namespace bus::detail::journal

// journal/subject_index.hpp — the last sequence stored on each subject of a journal: what
// Nats-Expected-Last-Subject-Sequence checks, "the last message on a subject" (JetStream's
// last_by_subj) and deliver policy last_per_subject read, in a few probes instead of a walk.
//
// A hash table in the file `subjects` beside the segments, shared by every process that has
// the journal open. It is derived: made on first use, removed by a recovery (which may cut
// records it points at), rebuilt from the records. The publishing path never writes it: whoever
// needs it exact up to a sequence first notes the records after indexed_upto itself (walking
// them, waiting for any still being written), then raises indexed_upto (CAS-max). The broker
// does that on its tick for journals that have an index, so the walk left to a publisher is
// short.
//
// File `subjects` (little-endian; mode 0600; made whole aside and linked into place):
//   off size field
//     0    8 magic            "BUSSUBJ1"
//     8    4 version          1
//    12    4 slot_count       power of two
//    16    8 stream_id        the journal's (a table of another stream is never used)
//    24  104 reserved (zero)
//   128    8 indexed_upto     every record up to this sequence is noted (CAS-max, release)
//   136  120 reserved (zero)
//   256    4 full             1 once a subject found no slot within kProbe: from then on a
//                             subject not found is unknown, not absent (the caller walks)
//   260 3836 reserved (zero)
//  4096      slots, 16 bytes each:
//              0 8 key        XXH3-64 of the subject, never 0 (0: free); taken by CAS
//              8 8 last       the highest sequence noted on it (CAS-max); 0: none left
#pragma once

#include <atomic>
#include <cstdint>
#include <string>
#include <string_view>

#include "bus/result.hpp"
#include "journal/table_file.hpp"

namespace bus::detail::journal {

class SubjectIndex {
 public:
  static constexpr std::uint32_t kDefaultSlots = 1u << 18;  // 4 MiB; up to ~200 K subjects
  static constexpr std::uint32_t kProbe = 64;
  static constexpr const char* kFileName = "subjects";

  /// Maps the index of the journal in `dirfd` (stream `stream_id`), making it if missing.
  static Result<SubjectIndex> open_or_make(int dirfd, const std::string& directory, std::uint64_t stream_id,
                                           std::uint32_t slots = kDefaultSlots);
  /// Maps it only if it exists (Errc::not_found otherwise).
  static Result<SubjectIndex> open(int dirfd, const std::string& directory, std::uint64_t stream_id);

  SubjectIndex() = default;

  /// Record `sequence` is on `subject`. False when the table had no room for a new subject
  /// (it is full from then on).
  bool note(std::string_view subject, std::uint64_t sequence) noexcept;
  enum class Lookup { found, absent, unknown };
  /// The highest sequence noted on `subject` (or on a subject with the same hash: the caller
  /// checks the record). unknown: not found, and the table is full.
  Lookup last(std::string_view subject, std::uint64_t& sequence) const noexcept;
  /// The subject's last message `stale` was deleted: `replacement` (its last one before, 0 for
  /// none) instead, unless a later one was noted meanwhile.
  void replace(std::string_view subject, std::uint64_t stale, std::uint64_t replacement) noexcept;

  std::uint64_t indexed_upto() const noexcept;
  void raise_indexed_upto(std::uint64_t sequence) noexcept;
  bool full() const noexcept;

  /// Calls f(last) for every subject's last sequence (unordered; 0s left out).
  template <class F>
  void for_each(F f) const {
    for (std::uint64_t i = 0; i <= mask_; ++i) {
      const Slot& s = slot(i);
      if (s.key.load(std::memory_order_relaxed) == 0) continue;
      if (const std::uint64_t seq = s.last.load(std::memory_order_relaxed); seq != 0) f(seq);
    }
  }

  struct Header;
  struct Slot {
    std::atomic<std::uint64_t> key;
    std::atomic<std::uint64_t> last;
  };

 private:
  static Result<SubjectIndex> checked(TableMapping file, const std::string& path, std::uint64_t stream_id);
  Header* header() const noexcept { return reinterpret_cast<Header*>(file_.data()); }
  Slot& slot(std::uint64_t i) const noexcept;
  /// The slot holding `key`, or nullptr; `free_at` gets the first free slot met (else nullptr).
  Slot* find(std::uint64_t key, Slot** free_at) const noexcept;
  TableMapping file_;
  std::uint64_t mask_ = 0;
};

}  // namespace bus::detail::journal

// journal/msg_ids.hpp — a stream's Nats-Msg-Id table: which message ids were stored in the
// duplicate window, shared by every process that publishes to the stream (JetStream's
// de-duplication, without a broker hop). A fixed-size open-addressing hash table in a file beside
// the segments, mapped by each publisher; lock-free, and nothing a dead process holds blocks
// anyone for longer than kClaimTimeoutNs.
//
// File `msgids` (little-endian; mode 0600; made whole aside and renamed into place):
//   off size field
//     0    8 magic            "BUSMSGID"
//     8    4 version          1
//    12    4 slot_count       power of two
//    16    8 window_ns        the stream's duplicate_window (the broker rewrites it at each start)
//    24    8 forgotten        ids pushed out before their window ended (the table was full)
//    32   32 reserved (zero)
//    64      slots, 32 bytes each:
//              0 8 key        XXH3-64 of the id | 1 (odd); 0 empty; even: being rewritten
//                             (the time it was taken, / 1024, shifted left 1; stale after 100 ms)
//              8 8 sequence   of the stored message; 0 while its publisher is storing it
//             16 8 time_ns    CLOCK_REALTIME when claimed / stored
//             24 8 reserved
//
// A publisher with an id: looks it up (at most kProbe slots from its hash). Found and stored
// within the window: a duplicate (the caller checks the stored message really carries the id,
// so a hash collision is never taken for one). Found and still being stored: waits for it
// (bounded). Otherwise claims a free or expired slot (CAS key -> kBusyKey, fill, release-store
// the key), appends, and stores the sequence (release).
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <string>
#include <string_view>

#include "bus/result.hpp"
#include "journal/table_file.hpp"

namespace bus::detail::journal {

class MsgIdTable {
 public:
  static constexpr std::uint32_t kDefaultSlots = 1u << 16;
  static constexpr std::uint32_t kProbe = 32;
  /// A claim not finished for this long was left by a dead (or stopped) publisher: taken over.
  static constexpr std::uint64_t kClaimTimeoutNs = 1'000'000'000ull;

  /// The broker: opens `path` (making it, 0600, if missing) and sets its window.
  static Result<MsgIdTable> open(const std::string& path, std::uint64_t window_ns,
                                 std::uint32_t slots = kDefaultSlots);
  /// A publisher: maps the table the broker made.
  static Result<MsgIdTable> attach(const std::string& path);

  MsgIdTable() = default;

  struct Claim {
    std::uint64_t duplicate_of = 0;  ///< non-zero: the id was stored as this sequence
    std::int64_t slot = -1;          ///< >= 0: ours to fill with commit() (or release())
  };
  /// Looks `id` up at `now_ns`. `stored_with_id(seq)` tells whether message seq carries the id.
  /// An error only when the table is damaged.
  Result<Claim> claim(std::string_view id, std::uint64_t now_ns,
                      const std::function<bool(std::uint64_t)>& stored_with_id);
  /// The claimed id was stored as `sequence` at `time_ns`.
  void commit(const Claim& claim, std::uint64_t sequence, std::uint64_t time_ns) noexcept;
  /// The claimed id was not stored: the slot is free again.
  void release(const Claim& claim) noexcept;

  std::uint64_t window_ns() const noexcept;
  std::uint64_t forgotten() const noexcept;
  bool valid() const noexcept { return base() != nullptr; }

  struct Header;  // the layout above (msg_ids.cpp)
  struct Slot;

 private:
  /// The table in `file`, if its header describes it exactly.
  static Result<MsgIdTable> checked(TableMapping file, const std::string& path);
  Header* header() const noexcept { return reinterpret_cast<Header*>(base()); }
  Slot* slot(std::uint64_t i) const noexcept;
  std::byte* base() const noexcept { return file_.data(); }
  TableMapping file_;
  std::uint64_t mask_ = 0;
};

}  // namespace bus::detail::journal

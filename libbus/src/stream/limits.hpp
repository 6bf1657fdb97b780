// stream/limits.hpp — what a stream keeps: its limits (max_msgs, max_bytes, max_age,
// max_msgs_per_subject; with discard new only the age and per-subject ones: publishers refuse
// the rest themselves) and purges, applied to its journal by deleting records
// (journal::Journal::remove) and then the files of segments left with none.
//
// The broker applies the limits on its tick (every 100 ms): a stream may hold more than a
// limit for up to a tick, as the publishers append without asking anyone (docs/streams.md).
#pragma once

#include <cstdint>
#include <deque>
#include <string>
#include <string_view>
#include <unordered_map>

#include "bus/result.hpp"
#include "bus/stream.hpp"
#include "journal/journal.hpp"

namespace bus::detail::stream {

/// What the per-subject limit has seen of a stream: each subject's stored sequences, oldest
/// first, and where the scan of new records stands.
struct SubjectIndex {
  std::uint64_t next_seq = 0;  // 0: not scanned yet
  std::unordered_map<std::string, std::deque<std::uint64_t>> by_subject;
};

/// Messages (and their bytes) stored and not deleted, as the broker's handle counts them.
std::uint64_t live_messages(const journal::Journal& journal);
std::uint64_t live_bytes(const journal::Journal& journal);

/// Deletes what the stream's limits no longer allow, oldest first; returns how many messages.
std::uint64_t enforce_limits(journal::Journal& journal, const StreamConfig& config, SubjectIndex& index,
                             std::int64_t now_ns);

/// JetStream's purge: every message (below `upto` if non-zero), only those on subjects matching
/// `filter` if it is set, keeping the newest `keep` of them. Returns how many were deleted.
std::uint64_t purge(journal::Journal& journal, std::string_view filter, std::uint64_t keep, std::uint64_t upto);

}  // namespace bus::detail::stream

// stream/limits.cpp — limits and purges (limits.hpp).
#include "stream/limits.hpp"

#include <vector>

#include "subject/subject.hpp"

namespace bus::detail::stream {

// Messages stored and not deleted, as the broker's handle counts them.
std::uint64_t live_messages(const journal::Journal& j) {
  const std::uint64_t first = j.first_seq(), last = j.last_seq();
  if (last < first) return 0;
  const std::uint64_t span = last - first + 1;
  const std::uint64_t gone = j.deleted_count() + j.recovery().lost_records;
  return span > gone ? span - gone : 0;
}

std::uint64_t live_bytes(const journal::Journal& j) {
  const std::uint64_t stored = j.stored_bytes(), gone = j.deleted_bytes();
  return stored > gone ? stored - gone : 0;
}

std::uint64_t enforce_limits(journal::Journal& j, const StreamConfig& c, SubjectIndex& index, std::int64_t now_ns) {
  // Discard new: publishers refuse what would pass max_msgs or max_bytes (client/streams.cpp),
  // so only the age and the per-subject limit delete here, as in JetStream.
  const bool discard_old = c.discard == Discard::old_messages;
  std::uint64_t deleted = 0;
  // Bounded per tick: the broker's loop (heartbeat, control requests) must go on; the rest
  // is for the next tick.
  constexpr std::uint64_t kMaxWorkPerTick = 1'000'000;
  // Oldest first while over a limit. A message not completely written yet (its writer is
  // writing, or died: readers give up on it after 1 s) stops this tick's pass.
  for (;;) {
    const bool over_count = discard_old && c.max_msgs >= 0 && live_messages(j) > static_cast<std::uint64_t>(c.max_msgs);
    const bool over_bytes = discard_old && c.max_bytes >= 0 && live_bytes(j) > static_cast<std::uint64_t>(c.max_bytes);
    const std::uint64_t first = j.first_live_seq();
    if (first > j.last_seq()) break;
    bool too_old = false;
    if (c.max_age.count() > 0) {
      auto r = j.read(first);
      too_old = r && static_cast<std::int64_t>(r->timestamp_ns) < now_ns - c.max_age.count();
    }
    if ((!over_count && !over_bytes && !too_old) || deleted >= kMaxWorkPerTick) break;
    if (!j.remove(first)) break;
    ++deleted;
  }
  if (c.max_msgs_per_subject > 0) {
    const std::uint64_t last = j.last_seq();
    std::uint64_t seq = std::max(index.next_seq, j.first_live_seq());
    const std::uint64_t stop = seq + kMaxWorkPerTick;
    for (; seq <= last && seq < stop; ++seq) {
      auto r = j.read(seq);
      if (!r) {
        if (r.error().code == Errc::timeout) break;  // not written yet: next tick
        continue;  // deleted or damaged: not counted
      }
      auto& seqs = index.by_subject[std::string(r->subject)];
      seqs.push_back(seq);
      while (seqs.size() > static_cast<std::uint64_t>(c.max_msgs_per_subject)) {
        if (j.remove(seqs.front())) ++deleted;
        seqs.pop_front();
      }
    }
    index.next_seq = seq;
  }
  if (deleted > 0) j.drop_deleted_segments();
  return deleted;
}

std::uint64_t purge(journal::Journal& j, std::string_view filter, std::uint64_t keep, std::uint64_t upto) {
  const std::uint64_t last = j.last_seq();
  const std::uint64_t end = upto != 0 ? std::min(upto - 1, last) : last;  // JetStream's seq: below it
  std::vector<std::uint64_t> matching;
  for (std::uint64_t seq = j.first_live_seq(); seq <= end && seq != 0; ++seq) {
    auto r = j.read(seq);
    if (!r) continue;
    if (!filter.empty() && !subject_matches(filter, r->subject)) continue;
    matching.push_back(seq);
  }
  const std::size_t remove_count = matching.size() > keep ? matching.size() - keep : 0;
  std::uint64_t deleted = 0;
  for (std::size_t i = 0; i < remove_count; ++i) {
    if (j.remove(matching[i])) ++deleted;
  }
  if (deleted > 0) j.drop_deleted_segments();
  return deleted;
}

}  // namespace bus::detail::stream

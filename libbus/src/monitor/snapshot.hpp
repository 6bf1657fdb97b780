// monitor/snapshot.hpp — one look at a bus (bus/monitor.hpp's BusSnapshot), from its segment.
//
// Read straight from the segment (a read-only mapping is enough), so it works without asking
// the broker anything, and also when the broker is gone (it then says so). Every index and
// length in the segment is untrusted: a slot whose fields fail their checks is skipped and
// counted in `unreadable_slots`, never followed. Counters are read one by one (relaxed), so
// under traffic the totals are a moment's approximation; at rest they are exact.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "bus/monitor.hpp"
#include "shm/segment.hpp"

namespace bus::detail::monitor {

using bus::monitor::BusSnapshot;
using bus::monitor::ClientSnapshot;
using bus::monitor::SubscriptionSnapshot;

/// The segment's identity as NATS's server_id shows it (16 hex digits; kept across adoptions).
std::string server_id_of(const Segment& segment);

/// Reads everything a monitor shows from `segment` of bus `bus_name`.
BusSnapshot take_snapshot(const Segment& segment, const std::string& bus_name);

/// NATS's duration text: "1h2m3s", "2m0s", "1.5s", "250ms".
std::string duration_text(std::uint64_t ns);
/// RFC 3339 in UTC (bus::rfc3339), of an unsigned time.
std::string time_text(std::uint64_t unix_ns);

}  // namespace bus::detail::monitor

// monitor/accounting.hpp — the broker's share of the bus's counters (shm/layout.hpp).
//
// Clients count what they do in their own lines of the segment (claim lanes, their rings'
// consumer blocks), one writer each. The broker does the rest here, at the moments it already
// handles: it zeroes a slot's counters when it hands the slot out, and when a client or a ring
// goes it adds what they counted to the bus's totals (BusTotals), so the totals stay whole
// after the live tables forget them. All relaxed: statistics, with one writer (the broker).
#pragma once

#include <cstdint>
#include <vector>

#include "shm/segment.hpp"

namespace bus::detail::monitor {

/// What a client has published, summed over its claim lanes.
struct PublishTally {
  std::uint64_t msgs = 0;
  std::uint64_t bytes = 0;
  std::uint64_t undelivered = 0;
};
PublishTally publish_tally(const ClientLayout& client) noexcept;

/// What a subscription's ring has handed out and lost.
struct DeliveryTally {
  std::uint64_t msgs = 0;
  std::uint64_t bytes = 0;
  std::uint64_t dropped = 0;  // full ring + abandoned by a stalled writer
};
DeliveryTally delivery_tally(const SubscriptionLayout& subscription) noexcept;

/// What client slot `slot`'s subscriptions have delivered and dropped (live and recycled ones).
DeliveryTally client_delivery_tally(const Segment& segment, std::uint32_t slot) noexcept;

/// The broker is starting to serve `segment` (created or adopted).
void broker_started(Segment& segment) noexcept;
/// The broker gave client slot `slot` to a new client: its counters start at zero.
void client_admitted(Segment& segment, std::uint32_t slot) noexcept;
/// The broker reclaimed client slot `slot`: what it published joins the totals. Returns that.
PublishTally client_departed(Segment& segment, std::uint32_t slot) noexcept;
/// Subscription slot `index` was given to a new subscription.
void subscription_made(Segment& segment, std::uint32_t index) noexcept;
/// Subscription slot `index`'s ring is being recycled: what it delivered and dropped joins the
/// totals, and its owner's, if that client still holds the slot it subscribed from.
void subscription_recycled(Segment& segment, std::uint32_t index) noexcept;

/// A subscription whose ring began dropping messages (one per episode: an episode ends at a
/// look that finds no new drops).
struct SlowConsumer {
  std::uint32_t subscription = 0;
  std::uint64_t new_drops = 0;    // since the last look
  std::uint64_t total_drops = 0;  // this subscription's, ever
};
/// Looks at every active subscription's drops (the broker's tick). `in_episode`: one flag per
/// subscription slot, the broker's memory between looks. Marks each new episode in the slot and
/// in the totals, and returns them.
std::vector<SlowConsumer> find_slow_consumers(Segment& segment, std::vector<bool>& in_episode);

}  // namespace bus::detail::monitor

// monitor/accounting.cpp — see accounting.hpp.
#include "monitor/accounting.hpp"

#include "os/process.hpp"

namespace bus::detail::monitor {
namespace {

constexpr auto kRelaxed = std::memory_order_relaxed;

/// `counter += n` for a counter with one writer (the broker): no RMW needed.
void add(std::atomic<std::uint64_t>& counter, std::uint64_t n) noexcept {
  if (n != 0) counter.store(counter.load(kRelaxed) + n, kRelaxed);
}

}  // namespace

PublishTally publish_tally(const ClientLayout& client) noexcept {
  PublishTally t;
  for (const ClaimLane& lane : client.claim_lanes) {
    t.msgs += lane.published_msgs.load(kRelaxed);
    t.bytes += lane.published_bytes.load(kRelaxed);
    t.undelivered += lane.undelivered_msgs.load(kRelaxed);
  }
  return t;
}

DeliveryTally delivery_tally(const SubscriptionLayout& s) noexcept {
  return {s.delivered_msgs.load(kRelaxed), s.delivered_bytes.load(kRelaxed),
          s.dropped_msgs.load(kRelaxed) + s.abandoned_msgs.load(kRelaxed)};
}

DeliveryTally client_delivery_tally(const Segment& segment, std::uint32_t slot) noexcept {
  const ClientLayout* c = segment.client(slot);
  if (c == nullptr) return {};
  DeliveryTally t{c->closed_out_msgs.load(kRelaxed), c->closed_out_bytes.load(kRelaxed),
                  c->closed_dropped_msgs.load(kRelaxed)};
  const std::uint32_t epoch = c->epoch.load(kRelaxed);
  for (std::uint32_t i = 0; i < segment.config().max_subscriptions; ++i) {
    const SubscriptionLayout* s = segment.subscription(i);
    if (s == nullptr || s->state.load(kRelaxed) == static_cast<std::uint32_t>(SubscriptionState::free) ||
        s->owner_client != slot || s->owner_epoch != epoch) {
      continue;
    }
    const DeliveryTally d = delivery_tally(*s);
    t.msgs += d.msgs;
    t.bytes += d.bytes;
    t.dropped += d.dropped;
  }
  return t;
}

void broker_started(Segment& segment) noexcept {
  segment.header()->totals.broker_start_unix_ns.store(realtime_ns(), kRelaxed);
}

void client_admitted(Segment& segment, std::uint32_t slot) noexcept {
  ClientLayout* c = segment.client(slot);
  if (c == nullptr) return;
  for (ClaimLane& lane : c->claim_lanes) {
    lane.published_msgs.store(0, kRelaxed);
    lane.published_bytes.store(0, kRelaxed);
    lane.undelivered_msgs.store(0, kRelaxed);
  }
  c->reconnects.store(0, kRelaxed);
  c->pending_requests.store(0, kRelaxed);
  c->closed_out_msgs.store(0, kRelaxed);
  c->closed_out_bytes.store(0, kRelaxed);
  c->closed_dropped_msgs.store(0, kRelaxed);
  c->goodbye.store(0, kRelaxed);
  add(segment.header()->totals.total_connections, 1);
}

PublishTally client_departed(Segment& segment, std::uint32_t slot) noexcept {
  const ClientLayout* c = segment.client(slot);
  if (c == nullptr) return {};
  const PublishTally t = publish_tally(*c);
  BusTotals& totals = segment.header()->totals;
  add(totals.departed_in_msgs, t.msgs);
  add(totals.departed_in_bytes, t.bytes);
  add(totals.departed_undelivered_msgs, t.undelivered);
  return t;
}

void subscription_made(Segment& segment, std::uint32_t index) noexcept {
  SubscriptionLayout* s = segment.subscription(index);
  if (s == nullptr) return;
  s->delivered_bytes.store(0, kRelaxed);
  s->depth_high_water.store(0, kRelaxed);
  s->slow_consumer_marks.store(0, kRelaxed);
  s->drops_seen.store(0, kRelaxed);
  s->subscribed_unix_ns.store(realtime_ns(), kRelaxed);
}

void subscription_recycled(Segment& segment, std::uint32_t index) noexcept {
  const SubscriptionLayout* s = segment.subscription(index);
  if (s == nullptr) return;
  const DeliveryTally t = delivery_tally(*s);
  BusTotals& totals = segment.header()->totals;
  add(totals.departed_out_msgs, t.msgs);
  add(totals.departed_out_bytes, t.bytes);
  add(totals.departed_dropped_msgs, t.dropped);
  ClientLayout* owner = segment.client(s->owner_client);
  if (owner != nullptr && owner->state.load(kRelaxed) == static_cast<std::uint32_t>(ClientState::live) &&
      owner->epoch.load(kRelaxed) == s->owner_epoch) {
    add(owner->closed_out_msgs, t.msgs);
    add(owner->closed_out_bytes, t.bytes);
    add(owner->closed_dropped_msgs, t.dropped);
  }
}

std::vector<SlowConsumer> find_slow_consumers(Segment& segment, std::vector<bool>& in_episode) {
  std::vector<SlowConsumer> found;
  const std::uint32_t n = segment.config().max_subscriptions;
  in_episode.resize(n, false);
  for (std::uint32_t i = 0; i < n; ++i) {
    SubscriptionLayout* s = segment.subscription(i);
    if (s == nullptr || s->state.load(kRelaxed) != static_cast<std::uint32_t>(SubscriptionState::active)) {
      in_episode[i] = false;
      continue;
    }
    const std::uint64_t drops = delivery_tally(*s).dropped;
    const std::uint64_t seen = s->drops_seen.load(kRelaxed);
    if (drops <= seen) {
      in_episode[i] = false;  // a look without new drops ends the episode
      continue;
    }
    s->drops_seen.store(drops, kRelaxed);
    if (in_episode[i]) continue;
    in_episode[i] = true;
    add(s->slow_consumer_marks, 1);
    add(segment.header()->totals.slow_consumers, 1);
    found.push_back({i, drops - seen, drops});
  }
  return found;
}

}  // namespace bus::detail::monitor

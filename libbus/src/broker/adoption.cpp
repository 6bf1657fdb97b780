// broker/adoption.cpp — a new broker takes over the segment of one that died.
//
// The data path never needed the old broker: publishers hold routes, subscribers read their
// rings. So the new broker must not disturb either; it rebuilds its in-process tables from the
// segment and fixes only what the dead broker (or anyone else) may have left inconsistent:
//   * clients: a live slot whose process (pid + start ticks) still runs is kept, awaiting its
//     reconnect (hello with resume); the others are reaped as if they had just died;
//   * subscriptions: an active one is kept if its owner was kept and its pattern and group
//     pass the subject rules; anything else is removed (incarnation bumped, ring quarantined);
//   * routes: an active one is kept if its subject is a valid literal and not a duplicate, and
//     its targets are recomputed from the kept subscriptions, never trusted; every route is
//     rewritten, which also closes a seqlock the dead broker left odd.
// Everything read here is untrusted: lengths are bounded before strings are built from them.
#include <sys/epoll.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <string>

#include "broker/broker_core.hpp"
#include "os/process.hpp"
#include "shm/shared_text.hpp"
#include "subject/subject.hpp"

namespace bus::detail {

Status BrokerCore::adopt(Segment segment) {
  segment_ = std::move(segment);
  SegmentHeader* h = segment_.header();
  if (h->owner_uid != static_cast<std::uint32_t>(::geteuid())) {
    return make_error(Errc::permission_denied, "the segment belongs to uid " + std::to_string(h->owner_uid));
  }
  const std::uint32_t previous_pid = h->broker_pid.load(std::memory_order_relaxed);
  adopt_clients();
  adopt_subscriptions();
  // Streams before routes: an adopted route is republished with the stream that captures it.
  if (segment_.config().max_streams > 0) streams_.load(segment_, /*adopted=*/true);
  adopt_routes();
  // We are the broker now. Relaxed: clients read these for liveness only (heartbeat + pid).
  const pid_t self = ::getpid();
  h->broker_start_ticks.store(process_start_ticks(self).value_or(0), std::memory_order_relaxed);
  h->broker_pid.store(static_cast<std::uint32_t>(self), std::memory_order_relaxed);
  h->broker_epoch.fetch_add(1, std::memory_order_relaxed);
  h->broker_heartbeat_ns.store(monotonic_ns(), std::memory_order_relaxed);
  bump_generation();
  const auto kept = std::count_if(clients_.begin(), clients_.end(), [](const ClientRecord& c) { return c.in_use; });
  const auto subs = std::count_if(subscriptions_.begin(), subscriptions_.end(),
                                  [](const SubscriptionRecord& r) { return r.active; });
  const auto routes = std::count_if(routes_.begin(), routes_.end(), [](const RouteRecord& r) { return r.active; });
  log("adopting segment of broker pid " + std::to_string(previous_pid) + " (epoch " +
      std::to_string(h->broker_epoch.load(std::memory_order_relaxed)) + "): " + std::to_string(kept) +
      " live client(s) awaiting reconnect, " + std::to_string(subs) + " subscription(s), " +
      std::to_string(routes) + " route(s)");
  return {};
}

void BrokerCore::adopt_clients() {
  for (std::uint32_t slot = 0; slot < clients_.size(); ++slot) {
    ClientLayout* layout = segment_.client(slot);
    // [A8] acquire: pairs with the old broker's [R8]; the identity below is the one it published.
    if (layout->state.load(std::memory_order_acquire) != static_cast<std::uint32_t>(ClientState::live)) continue;
    const auto pid = static_cast<pid_t>(layout->pid.load(std::memory_order_relaxed));
    const std::uint64_t ticks = layout->start_ticks.load(std::memory_order_relaxed);
    // Open the pidfd before the liveness check: if the process is the one named (start ticks
    // still match after opening), the pidfd pins it and tells us when it dies.
    const int pidfd = pid > 0 ? open_pidfd(pid) : -1;
    if (pid <= 0 || !process_alive(pid, ticks)) {
      if (pidfd >= 0) ::close(pidfd);
      ClientRecord& rec = clients_[slot];
      rec.in_use = true;  // so reap_client() reclaims it like any dead client
      rec.pid = pid;
      reap_client(slot, "died while no broker ran");
      continue;
    }
    ClientRecord& rec = clients_[slot];
    rec = ClientRecord{};
    rec.in_use = true;
    rec.fd = -1;  // until it reconnects
    rec.pidfd = pidfd;
    rec.pid = pid;
    rec.start_ticks = ticks;
    if (auto name = load_text(layout->name, sizeof layout->name,
                              static_cast<std::uint32_t>(::strnlen(layout->name, sizeof layout->name - 1)))) {
      rec.name = *name;
    }
    if (pidfd >= 0) pidfds_[pidfd] = slot;
  }
}

void BrokerCore::adopt_subscriptions() {
  free_subscriptions_.clear();
  for (std::uint32_t index = 0; index < subscriptions_.size(); ++index) {
    SubscriptionLayout* layout = segment_.subscription(index);
    SubscriptionRecord& rec = subscriptions_[index];
    const auto state = static_cast<SubscriptionState>(layout->state.load(std::memory_order_acquire));
    if (state == SubscriptionState::quarantined) {
      rec.ring_reserved = true;
      rec.quarantined = true;
      quarantine_.push_back(index);
      continue;
    }
    if (state != SubscriptionState::active) {
      if (state != SubscriptionState::free) {
        log("subscription slot " + std::to_string(index) + " has an unknown state: freed");
        layout->state.store(static_cast<std::uint32_t>(SubscriptionState::free), std::memory_order_release);
      }
      continue;  // free: handed out again below (its ring is reserved again on first use)
    }
    const std::uint32_t owner = layout->owner_client;
    auto pattern = load_text(layout->pattern, sizeof layout->pattern, layout->pattern_len);
    auto group = load_text(layout->group, sizeof layout->group, layout->group_len);
    const bool owner_kept = owner < clients_.size() && clients_[owner].in_use &&
                            layout->owner_epoch == segment_.client(owner)->epoch.load(std::memory_order_relaxed);
    const bool valid = pattern && group && validate_subscribe_subject(*pattern) &&
                       (group->empty() || validate_queue_group(*group));
    rec.ring_reserved = true;
    if (!owner_kept || !valid) {
      // Mark it as routed so stop_routing() bumps the incarnation and moves the tail: a
      // publisher still holding a route to it must not write into a ring nobody reads.
      rec.active = true;
      rec.owner = owner;
      if (!valid) log("subscription slot " + std::to_string(index) + " fails validation: removed");
      stop_routing(index);
      quarantine(index);
      continue;
    }
    rec.active = true;
    rec.quarantined = false;
    rec.owner = owner;
    rec.pattern = *pattern;
    rec.group = *group;
    rec.proxy = !rec.group.empty() &&
                (std::atomic_ref<std::uint32_t>(layout->flags).load(std::memory_order_relaxed) & kSubscriptionProxy) != 0;
    sublist_.insert(rec.pattern, index);
    clients_[owner].subscriptions.push_back(index);
  }
  // Free slots, low indices on top of the stack.
  for (std::uint32_t i = static_cast<std::uint32_t>(subscriptions_.size()); i-- > 0;) {
    const SubscriptionRecord& rec = subscriptions_[i];
    if (!rec.active && !rec.quarantined) free_subscriptions_.push_back(i);
  }
}

void BrokerCore::adopt_routes() {
  free_routes_.clear();
  for (std::uint32_t index = 0; index < routes_.size(); ++index) {
    RouteLayout* layout = segment_.route(index);
    RouteRecord& route = routes_[index];
    route = RouteRecord{};
    if (layout->state.load(std::memory_order_relaxed) == static_cast<std::uint32_t>(RouteState::active)) {
      auto subject = load_text(layout->subject, sizeof layout->subject, load_length(layout->subject_len));
      if (subject && validate_publish_subject(*subject) && !route_by_subject_.contains(*subject)) {
        route.active = true;
        route.subject = *subject;
        route.refs = 0;  // clients take their references again when they reconnect
        match_scratch_.clear();
        sublist_.match(route.subject, match_scratch_);
        if (match_scratch_.size() > segment_.config().max_fanout) match_scratch_.resize(segment_.config().max_fanout);
        route.targets = match_scratch_;
        route_by_subject_.emplace(route.subject, index);
      }
    }
    // Rewritten either way: the targets come from our tables, the seqlock ends even, and a
    // publisher holding a route we dropped sees it freed and resolves again.
    publish_route(index);
  }
  for (std::uint32_t i = static_cast<std::uint32_t>(routes_.size()); i-- > 0;) {
    if (!routes_[i].active) free_routes_.push_back(i);
  }
}

}  // namespace bus::detail

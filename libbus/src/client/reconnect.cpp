// client/reconnect.cpp — a connection outlives its broker.
//
// The data path needs no broker, so when busd dies (or is restarted) nothing changes for
// publishes on routes already in use and for subscriptions already made: they keep going on
// the shared segment. What needs the broker is control: subscribe, unsubscribe, the first
// publish to a subject. The supervisor thread of each connection watches the control socket;
// when the broker's end goes away it reconnects with backoff, and a broker that adopted our
// segment (broker/adoption.cpp) gives us back our slot (hello with resume): subscriptions
// stay, route references are taken again. Control calls made meanwhile wait for that, within
// control_timeout. If the new broker replaced our segment instead (superseded), we attach to
// its new segment with a new slot and subscribe every subscription again there; meanwhile
// publishes fail with broker_gone, and each subscription delivers what its old ring still
// holds before it moves over. If resuming is refused, the connection is lost for good.
#include <unistd.h>

#include "client/connection_impl.hpp"
#include "client/inbox.hpp"
#include "client/subscription_impl.hpp"
#include "os/process.hpp"

namespace bus::detail {

namespace {
constexpr std::chrono::milliseconds kHangupPoll{200};
// Attempts back off from reconnect_wait, doubling, up to this.
constexpr std::chrono::milliseconds kMaxReconnectWait{2000};
constexpr int kFastAttempts = 10;
}  // namespace

Result<ControlMessage> ConnectionImpl::control_call(const ControlMessage& request, Attachment** used) {
  const std::uint64_t generation = control_generation_.load(std::memory_order_acquire);
  Attachment* a = &attachment();
  if (used != nullptr) *used = a;
  // On the attachment's own connection only: the supervisor may be making a new one right now,
  // and until it has finished, a request for this attachment must not reach that broker.
  auto reply = control_.call(request, options_.control_timeout, a->session.load(std::memory_order_acquire));
  if (reply || reply.error().code != Errc::broker_gone || !options_.allow_reconnect || closed()) return reply;
  // The broker is away. Wait until the supervisor has connected anew (a later generation: the
  // flag alone may still say "up" if the supervisor has not seen the hang-up yet, e.g. when
  // the whole process was stopped across the restart), then try once more.
  std::unique_lock lock(reconnect_mutex_);
  const bool back = reconnect_cv_.wait_for(lock, options_.control_timeout, [&] {
    return closed() || lost_.load(std::memory_order_acquire) ||
           control_generation_.load(std::memory_order_acquire) != generation;
  });
  lock.unlock();
  if (closed()) return make_error(Errc::closed, "connection is closed");
  if (!back || control_generation_.load(std::memory_order_acquire) == generation) {
    return make_error(Errc::broker_gone, "the broker of bus '" + bus_name_ + "' is away and did not come back within " +
                                             std::to_string(options_.control_timeout.count()) + " ms");
  }
  a = &attachment();
  if (used != nullptr) *used = a;
  return control_.call(request, options_.control_timeout, a->session.load(std::memory_order_acquire));
}

void ConnectionImpl::supervise() {
  while (!closed()) {
    if (!control_.wait_hangup(kHangupPoll)) {
      // Subscriptions a re-attach could not move yet (the broker was slow, or a subscribe
      // raced it): try again on this connection.
      if (needs_resubscribe_.exchange(false, std::memory_order_acq_rel)) (void)resubscribe();
      continue;
    }
    if (closed()) return;
    control_up_.store(false, std::memory_order_release);
    if (options_.disconnected_cb) options_.disconnected_cb();
    if (!options_.allow_reconnect) {
      lost_for_good();
      return;
    }
    bool resumed = false;
    std::chrono::milliseconds wait = options_.reconnect_wait;
    for (int attempt = 0; !closed() && (options_.max_reconnects < 0 || attempt < options_.max_reconnects); ++attempt) {
      {
        std::unique_lock lock(reconnect_mutex_);
        reconnect_cv_.wait_for(lock, wait, [&] { return closed(); });
      }
      // A broker restart takes well under a second: try at the base pace that long, then back off.
      if (attempt >= kFastAttempts) wait = std::min(wait * 2, std::max(kMaxReconnectWait, options_.reconnect_wait));
      if (closed()) return;
      const Status st = try_resume();
      if (st) {
        resumed = true;
        break;
      }
      // A broker that answered but will not give us our slot back will not change its mind.
      // (A segment that changed under a re-attach is only a broker restarting again.)
      const Errc code = st.error().code;
      if (code != Errc::broker_not_running && code != Errc::timeout && code != Errc::io_error &&
          !(code == Errc::broker_gone && segment().superseded())) {
        lost_for_good();
        return;
      }
    }
    if (closed()) return;
    if (!resumed) {
      lost_for_good();
      return;
    }
    // Monitoring: the slot we hold now says how often this connection came back (relaxed: a
    // statistic; only this thread writes it, once the broker has handed the slot over).
    if (ClientLayout* slot = segment().client(attachment().slot)) {
      slot->reconnects.store(++reconnects_, std::memory_order_relaxed);
    }
    {
      std::lock_guard lock(reconnect_mutex_);
      control_generation_.fetch_add(1, std::memory_order_acq_rel);
      control_up_.store(true, std::memory_order_release);
      reconnect_cv_.notify_all();
    }
    if (options_.reconnected_cb) options_.reconnected_cb();
  }
}

Status ConnectionImpl::try_resume() {
  if (segment().superseded()) return reattach();
  if (auto st = control_.connect(bus_name_); !st) return st;
  auto welcome = say_hello(/*resume=*/true);
  if (!welcome) {
    control_.close();
    // The new broker says it serves another segment: it has marked ours superseded.
    if (segment().superseded()) return reattach();
    return std::move(welcome).error();
  }
  Attachment& a = attachment();
  if (welcome->c != 1 || welcome->a != a.slot || welcome->b != a.epoch || welcome->u64 != a.segment.id()) {
    control_.close();
    return make_error(Errc::broker_gone, "the new broker did not give this connection its slot back");
  }
  // Release: requests for this attachment go to the new connection from now on.
  a.session.store(control_.session(), std::memory_order_release);
  retake_route_references();
  // Subscriptions a re-attach interrupted by another restart did not get to. From here on a
  // failure is not the resume's: the supervisor tries again (needs_resubscribe_).
  (void)resubscribe();
  return {};
}

Status ConnectionImpl::reattach() {
  if (auto st = control_.connect(bus_name_); !st) return st;
  auto attached = attach();
  if (!attached) {
    control_.close();
    return std::move(attached).error();
  }
  Attachment* fresh = attached.value().get();
  {
    std::lock_guard lock(attach_mutex_);
    attachments_.push_back(std::move(attached).value());
  }
  // Release: pairs with attachment()'s acquire; the new attachment is complete.
  attached_.store(fresh, std::memory_order_release);
  {
    // Route references and unsubscribes were the old broker's; thread caches of the old
    // attachment are never used again (their serial is not the new one). (After the store:
    // acquire_route() inserts only for the present attachment, under this lock.)
    std::lock_guard lock(routes_mutex_);
    held_routes_.clear();
    pending_unsubscribes_.clear();
  }
  (void)resubscribe();  // a failure is retried by the supervisor (needs_resubscribe_)
  // The inbox's address names its old ring: requests in flight fail; the next makes a new one.
  std::shared_ptr<Inbox> inbox;
  {
    std::lock_guard lock(inbox_mutex_);
    inbox = std::move(inbox_);
  }
  if (inbox) inbox->close();
  return {};
}

Status ConnectionImpl::resubscribe() {
  Attachment& a = attachment();
  std::lock_guard lock(subscriptions_mutex_);
  for (SubscriptionImpl* sub : subscriptions_) {
    if (!sub->rebindable() || sub->destination() == &a) continue;
    ControlMessage request;
    request.type = ControlType::subscribe;
    request.set_s1(sub->pattern());
    request.set_s2(sub->queue_group());
    auto reply = control_.call(request, options_.control_timeout);
    if (!reply) {
      const Errc code = reply.error().code;
      // The broker is slow or went away again: the supervisor carries on from here later.
      if (code == Errc::broker_gone || code == Errc::timeout || code == Errc::io_error) {
        request_resubscribe();
        return std::move(reply).error();
      }
      sub->strand(reply.error());  // refused (e.g. the new broker has fewer subscription slots)
      continue;
    }
    if (a.segment.subscription(reply->a) == nullptr) {
      sub->strand(make_error(Errc::protocol_error, "broker returned a subscription outside the segment"));
      continue;
    }
    sub->offer_rebind(a, reply->a, reply->b);
  }
  return {};
}

void ConnectionImpl::retake_route_references() {
  // The adopting broker kept the routes but not who references them: take ours again. A route
  // it dropped comes back under a new slot; publishers find out through the route versions.
  // (routes_mutex_ also guards pending_unsubscribes_.)
  std::lock_guard lock(routes_mutex_);
  for (auto& [subject, held] : held_routes_) {
    ControlMessage request;
    request.type = ControlType::resolve;
    request.set_s1(subject);
    auto reply = control_.call(request, options_.control_timeout);
    if (reply && segment().route(reply->a) != nullptr) held.index = reply->a;
  }
  // Unsubscribes made while the broker was away (for this attachment's broker only).
  for (const auto& [owner, request] : pending_unsubscribes_) {
    if (owner == &attachment()) (void)control_.call(request, options_.control_timeout);
  }
  pending_unsubscribes_.clear();
}

void ConnectionImpl::lost_for_good() {
  // Wake control calls waiting for a reconnect; they report broker_gone. The data path goes
  // on working until the application closes us, unless the segment was superseded.
  lost_.store(true, std::memory_order_release);
  {
    std::lock_guard lock(reconnect_mutex_);
    reconnect_cv_.notify_all();
  }
  fire_closed_cb();
}

void ConnectionImpl::fire_closed_cb() {
  if (options_.closed_cb && !closed_cb_fired_.exchange(true, std::memory_order_acq_rel)) options_.closed_cb();
}

}  // namespace bus::detail

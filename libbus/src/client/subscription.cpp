// client/subscription.cpp — consuming a subscription ring: poll, wait, recover, dispatch.
#include <algorithm>
#include <atomic>
#include <thread>

#include "bus/subscription.hpp"
#include "client/connection_impl.hpp"
#include "client/subscription_impl.hpp"
#include "os/futex.hpp"
#include "os/process.hpp"

namespace bus::detail {

namespace {

// A record left unfinished at the head for this long makes the consumer ask whether a live
// writer can still be inside it (a scan of the claim lanes naming this ring).
constexpr std::uint64_t kStuckCheckNs = 20'000'000;
// How often skipped records still pinned by a live writer are looked at again.
constexpr std::uint64_t kPinCheckNs = 10'000'000;
// Longest single sleep: bounds how long a lost wake-up (which the protocol rules out) or a
// close could go unnoticed, at one wake-up per second per idle subscription.
constexpr std::uint64_t kMaxSleepNs = 1'000'000'000;
// A claim is outstanding but not committed: sleep briefly, nobody will wake us.
constexpr std::uint64_t kOutstandingSleepNs = 200'000;
// ... and once that claim has been outstanding for kStuckCheckNs, a longer one.
constexpr std::uint64_t kStalledSleepNs = 2'000'000;

inline void cpu_relax() noexcept {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#elif defined(__aarch64__)
  asm volatile("yield");
#endif
}

std::uint64_t deadline_after(std::chrono::nanoseconds timeout) {
  const std::uint64_t now = monotonic_ns();
  if (timeout.count() < 0) return now;
  const auto t = static_cast<std::uint64_t>(timeout.count());
  return t > UINT64_MAX - now ? UINT64_MAX : now + t;
}

}  // namespace

SubscriptionImpl::SubscriptionImpl(std::shared_ptr<ConnectionImpl> connection, Attachment& attachment,
                                   std::uint32_t index, std::uint32_t incarnation, std::string pattern,
                                   SubscribeOptions options)
    : connection_(std::move(connection)), pattern_(std::move(pattern)), options_(std::move(options)) {
  bindings_.push_back(std::make_unique<Binding>(Binding{&attachment, attachment.segment.ring(index), index, incarnation}));
  binding_.store(bindings_.back().get(), std::memory_order_release);
  // Acquire: pairs with the broker's [R7] release of a recycled ring's tail; head is current.
  attachment.segment.prefault_ring(index);
  head_ = ring().control()->head_position.load(std::memory_order_acquire);
  head_hint_.store(head_, std::memory_order_relaxed);
}

void SubscriptionImpl::offer_rebind(Attachment& attachment, std::uint32_t index, std::uint32_t incarnation) {
  MpscRing old_ring = ring();
  {
    std::lock_guard lock(rebind_mutex_);
    bindings_.push_back(std::make_unique<Binding>(Binding{&attachment, attachment.segment.ring(index), index, incarnation}));
    offered_ = bindings_.back().get();
    stranded_.reset();
  }
  // A consumer asleep on the old ring (nobody publishes there any more) looks again now; one
  // that misses this wake-up naps at most kPinCheckNs while its segment is superseded.
  futex_wake_all(old_ring.futex_word());
}

void SubscriptionImpl::strand(Error why) {
  std::lock_guard lock(rebind_mutex_);
  stranded_ = std::move(why);
}

const Attachment* SubscriptionImpl::destination() const {
  std::lock_guard lock(rebind_mutex_);
  return offered_ != nullptr ? offered_->attachment : bound().attachment;
}

bool SubscriptionImpl::reattaching(const Error& error) const {
  if (error.code != Errc::broker_gone || !bound().attachment->segment.superseded()) return false;
  if (connection_->status() == ConnectionStatus::closed) return false;
  std::lock_guard lock(rebind_mutex_);
  return !stranded_.has_value();
}

bool SubscriptionImpl::leave_superseded_locked() {
  // A drain finishes the ring it began on: its end is a position of that ring.
  if (draining_.load(std::memory_order_relaxed)) return false;
  Binding* next = nullptr;
  {
    std::lock_guard lock(rebind_mutex_);
    next = offered_;
  }
  if (next == nullptr) return false;
  // An offer is good only for the attachment in use and while its ring is still ours (relaxed:
  // the broker bumps the incarnation when it takes the ring back; a stale read errs towards
  // moving, and the publishers' own incarnation check keeps them out of a recycled ring). One
  // that is not goes back to the supervisor, which subscribes us again.
  if (next->attachment != &connection_->attachment() ||
      next->ring.control()->incarnation.load(std::memory_order_relaxed) != next->incarnation) {
    {
      std::lock_guard lock(rebind_mutex_);
      if (offered_ == next) offered_ = nullptr;
    }
    connection_->request_resubscribe();
    return false;
  }
  // [SC3] seq_cst: we saw the segment superseded (seq_cst) before this load of the tail. A
  // publisher whose claim is not below this tail does its claim CAS after it in the total
  // order, and its superseded check after that ([SC2]) reports the message as not delivered.
  // Claims below it are delivered (or skipped and counted, if their writers died) first.
  if (!bound().attachment->segment.superseded(std::memory_order_seq_cst)) return false;
  if (ring().tail_seq_cst() != head_) return false;
  // Relaxed: statistics, one writer (us).
  const SubscriptionLayout* old = ring().control();
  left_dropped_.fetch_add(old->dropped_msgs.load(std::memory_order_relaxed), std::memory_order_relaxed);
  left_skipped_.fetch_add(old->skipped_records.load(std::memory_order_relaxed), std::memory_order_relaxed);
  left_delivered_.fetch_add(old->delivered_msgs.load(std::memory_order_relaxed), std::memory_order_relaxed);
  {
    // One step for destination(): never "neither the old nor the offered one".
    std::lock_guard lock(rebind_mutex_);
    if (offered_ == next) offered_ = nullptr;
    binding_.store(next, std::memory_order_release);
  }
  pins_.clear();  // they named the old ring
  stuck_head_ = ~0ull;
  next->attachment->segment.prefault_ring(next->index);
  // Acquire: as in the constructor.
  head_ = ring().control()->head_position.load(std::memory_order_acquire);
  head_hint_.store(head_, std::memory_order_relaxed);
  return true;
}

SubscriptionImpl::~SubscriptionImpl() {
  // First leave the connection's list, so a concurrent Connection::close() cannot reach us
  // while we are being torn down (it holds the list's lock while it detaches members).
  connection_->forget(this);
  (void)unsubscribe();
  // Only when destroyed from its own handler (documented as not allowed): avoid terminate().
  if (dispatch_.joinable()) dispatch_.detach();
}

// Statistics (relaxed), summed over the rings we left and the one in use.
std::uint64_t SubscriptionImpl::dropped_count() const noexcept {
  return left_dropped_.load(std::memory_order_relaxed) + ring().control()->dropped_msgs.load(std::memory_order_relaxed);
}

std::uint64_t SubscriptionImpl::skipped_count() const noexcept {
  return left_skipped_.load(std::memory_order_relaxed) + ring().control()->skipped_records.load(std::memory_order_relaxed);
}

std::uint64_t SubscriptionImpl::delivered_count() const noexcept {
  return left_delivered_.load(std::memory_order_relaxed) + ring().control()->delivered_msgs.load(std::memory_order_relaxed);
}

Result<std::size_t> SubscriptionImpl::poll_locked(const MessageHandler& handler, std::size_t max) {
  if (corrupt_) {
    return make_error(Errc::segment_corrupt, "subscription '" + pattern_ + "': ring is corrupt");
  }
  std::uint32_t delivered = 0;
  const PollStatus status = ring().poll(
      head_, static_cast<std::uint32_t>(max), delivered,
      [&](const RecordView& r) {
        handler(MessageView{std::string_view(r.subject, r.subject_len),
                            std::string_view(r.reply, r.reply_len),
                            std::string_view(reinterpret_cast<const char*>(r.headers), r.headers_len),
                            std::string_view(reinterpret_cast<const char*>(r.payload), r.payload_len),
                            connection_.get(), r.origin});
      },
      reuse_floor());
  head_hint_.store(head_, std::memory_order_relaxed);
  if (status == PollStatus::corrupt) {
    corrupt_ = true;
    return make_error(Errc::segment_corrupt,
                      "subscription '" + pattern_ + "': record at ring position " +
                          std::to_string(head_) + " fails its bounds checks");
  }
  if (status == PollStatus::empty && (++empty_polls_ & 63u) == 0 && ring().claimed_beyond(head_)) {
    // A caller that only ever try_poll()s still gets stuck writers skipped; the tail (the
    // producers' line) is looked at once per 64 idle slow-path polls (try_poll takes the slow
    // path once per 1024 idle calls), not on each.
    check_stuck_head_locked();
  }
  if (!pins_.empty()) release_pins_locked();  // rate-limited; under load too, or producers starve
  // A broker that could not adopt our segment replaced it: once the old ring is empty, move to
  // the new segment, or say why nothing comes. (One load of a read-mostly line.)
  if (delivered == 0 && bound().attachment->segment.superseded()) [[unlikely]] {
    if (!leave_superseded_locked()) {
      {
        std::lock_guard lock(rebind_mutex_);
        if (stranded_) return make_error(stranded_->code, "subscription '" + pattern_ + "' could not move to the new segment: " + stranded_->message);
      }
      return make_error(Errc::broker_gone, "subscription '" + pattern_ + "': the bus was restarted with a new segment" +
                                               (connection_->status() == ConnectionStatus::closed ? "" : "; re-attaching"));
    }
  }
  return std::size_t{delivered};
}

void SubscriptionImpl::check_stuck_head_locked() {
  const std::uint64_t now = monotonic_ns();
  if (head_ != stuck_head_) {
    stuck_head_ = head_;
    stuck_since_ns_ = now;
    return;
  }
  const std::uint64_t stuck_for = now - stuck_since_ns_;
  if (stuck_for < kStuckCheckNs) return;
  // [A3] acquire: every claim below this tail has its lane word visible ([R3], [A3a]). While
  // draining, the broker moved the tail on by a ring's length: the claims end at drain_end_.
  std::uint64_t tail = ring().tail_acquire();
  if (draining_.load(std::memory_order_relaxed)) tail = std::min(tail, drain_end_.load(std::memory_order_relaxed));
  if (tail <= head_) return;
  ConnectionImpl::lane_claims(bound().attachment->segment, bound().index, tail, lanes_);
  // The owner of the head claim is the lane whose claim won and contains the head (it starts
  // at the head, or at the padding just before it when the claim wrapped); a lane whose claim
  // ends at or before the head is a writer that finished there and has not moved on yet. A lane
  // that has not (yet) won may be a writer that lost the CAS, or the owner in the instructions
  // between its CAS and the won store: not trusted, only waited for. Live claims past the head
  // are healthy writers: a gap we may skip ends at the first of them.
  const LaneClaim* owner = nullptr;
  const LaneClaim* maybe = nullptr;  // a live lane that has not won, at or below the head
  int maybes = 0;
  std::uint64_t gap_end = tail;
  for (const LaneClaim& c : lanes_) {
    if (c.position > head_) {
      if (c.alive) gap_end = std::min(gap_end, c.position);
    } else if (c.won && c.end != 0 && head_ < c.end) {
      owner = &c;
    } else if (c.alive && (!c.won || c.end == 0) && (c.end == 0 || head_ < c.end)) {
      maybe = &c;
      ++maybes;
    }
  }
  // A dead owner: nobody can write there any more, skip now. A live one is stalled (stopped,
  // swapped out, in a debugger): skip only after the unblock timeout, and keep the space from
  // producers until it has left (its late writes must land in bytes nobody else uses).
  const auto timeout = static_cast<std::uint64_t>(std::max<std::int64_t>(0, options_.unblock_timeout.count()));
  const bool owner_alive = owner != nullptr && owner->alive;
  if ((owner_alive || maybes != 0) && stuck_for < timeout) return;
  if (owner == nullptr && maybes != 0) {
    // Only one live lane could own the head and its end is a claim boundary (the tail, another
    // lane's claim, or a committed record): it is the owner, stopped before its won store.
    // Anything else: never guess a length; wait for the writers to move on or die.
    if (maybes != 1 || maybe->end == 0 || maybe->end > tail || !is_claim_boundary(maybe->end, tail)) return;
    owner = maybe;
  }
  const bool pin = owner != nullptr && owner->alive;
  // With an owner's lane: exactly its claim, the lane marked first so the writer sees it. With
  // none (its writer died, and lost its lane to the broker's reaping or never won the store):
  // the gap up to the next record.
  const SkipResult skip = owner != nullptr ? ring().skip_claim(head_, owner->end, owner->lane, owner->word)
                                           : ring().skip_gap(head_, gap_end);
  if (skip.kind == SkipResult::Kind::corrupt) {
    corrupt_ = true;
    return;
  }
  if (skip.kind != SkipResult::Kind::skipped) return;
  if (pin) pins_.push_back({head_, head_ + skip.bytes});
  head_ += skip.bytes;
  head_hint_.store(head_, std::memory_order_relaxed);
  // Relaxed: a statistic with one writer (this consumer).
  ring().control()->skipped_records.store(ring().control()->skipped_records.load(std::memory_order_relaxed) + 1,
                                         std::memory_order_relaxed);
  ring().release_space(head_, reuse_floor());
  stuck_head_ = ~0ull;
}

bool SubscriptionImpl::is_claim_boundary(std::uint64_t position, std::uint64_t tail) const {
  if (position == tail || ring().committed_at(position)) return true;
  return std::any_of(lanes_.begin(), lanes_.end(), [&](const LaneClaim& c) { return c.position == position; });
}

void SubscriptionImpl::release_pins_locked() {
  const std::uint64_t now = monotonic_ns();
  if (now - pins_checked_ns_ < kPinCheckNs) return;
  pins_checked_ns_ = now;
  // A live writer whose claim began at P may still write anywhere from P on: pins that end at
  // or before the oldest such P are free. [A3] as in check_stuck_head_locked().
  ConnectionImpl::lane_claims(bound().attachment->segment, bound().index, ring().tail_acquire(), lanes_);
  std::uint64_t oldest_live = ~0ull;
  for (const LaneClaim& c : lanes_) {
    if (c.alive) oldest_live = std::min(oldest_live, c.position);
  }
  std::size_t freed = 0;
  while (freed < pins_.size() && pins_[freed].end <= oldest_live) ++freed;
  if (freed == 0) return;
  pins_.erase(pins_.begin(), pins_.begin() + static_cast<std::ptrdiff_t>(freed));
  ring().release_space(head_, reuse_floor());
}

void SubscriptionImpl::wait_locked(std::uint64_t deadline_ns) {
  const bool busy = options_.wait == WaitStrategy::busy_spin;
  std::uint64_t now = monotonic_ns();
  const std::uint64_t spin_ns = static_cast<std::uint64_t>(std::max<std::int64_t>(0, options_.spin_budget.count()));
  // A busy-spinning consumer still comes up for air every kStuckCheckNs to look for dead writers.
  const std::uint64_t spin_end = std::min(deadline_ns, now + (busy ? kStuckCheckNs : spin_ns));
  // Spin: watch the head record's length word (a line the producer will write), nothing else.
  for (unsigned i = 0; now < spin_end; ++i) {
    if (ring().committed_at(head_) || closing_.load(std::memory_order_relaxed)) return;
    cpu_relax();
    if ((i & 63) == 63) now = monotonic_ns();
  }
  if (busy) {
    if (ring().claimed_beyond(head_)) check_stuck_head_locked();
    return;
  }
  if (now >= deadline_ns) return;
  // Pinned records are given back only when we look: do not sleep long while there are any.
  // Nor while our segment is superseded: the move to the new one may be offered any moment.
  const bool short_sleep = !pins_.empty() || bound().attachment->segment.superseded();
  const std::uint64_t slice = std::min(deadline_ns - now, short_sleep ? kPinCheckNs : kMaxSleepNs);
  std::uint32_t futex_value = 0;
  if (ring().prepare_sleep(head_, futex_value)) {
    // Full fence: orders our sleeping-bit CAS before the closing_ load, against close's store
    // of closing_ before its cancel_sleep() (store-buffer pattern; both sides fence).
    std::atomic_thread_fence(std::memory_order_seq_cst);
    if (!closing_.load(std::memory_order_relaxed)) {
      futex_wait(ring().futex_word(), futex_value, std::chrono::nanoseconds(slice));
    }
    ring().cancel_sleep();
  } else {
    // A claim is outstanding: its writer will commit without waking us (it saw no sleeping bit),
    // so take a timed nap (on the word's present value: FUTEX_WAIT sleeps, rather than failing
    // at once as it did when we passed a value the word never holds).
    check_stuck_head_locked();
    if (!pins_.empty()) release_pins_locked();
    // Naps grow once the head has been stuck a while (a stalled writer): bounded CPU meanwhile.
    const std::uint64_t nap = monotonic_ns() - stuck_since_ns_ > kStuckCheckNs ? kStalledSleepNs : kOutstandingSleepNs;
    futex_wait(ring().futex_word(), ring().futex_value(), std::chrono::nanoseconds(std::min(slice, nap)));
  }
}

Result<Message> SubscriptionImpl::next(std::chrono::nanoseconds timeout) {
  std::lock_guard lock(consume_mutex_);
  if (unsubscribed_) return make_error(Errc::closed, "subscription '" + pattern_ + "' is closed");
  const std::uint64_t deadline = deadline_after(timeout);
  Message out;
  bool got = false;
  const MessageHandler take = [&](const MessageView& v) {
    out = Message::from(v);
    got = true;
  };
  for (;;) {
    auto polled = poll_locked(take, 1);
    if (!polled) {
      // Re-attaching to a new segment: wait for the move within our timeout, as for a message.
      if (!reattaching(polled.error()) || monotonic_ns() >= deadline) return std::move(polled).error();
      if (closing_.load(std::memory_order_relaxed)) {
        return make_error(Errc::closed, "subscription '" + pattern_ + "' is closed");
      }
      wait_locked(deadline);
      continue;
    }
    if (got) return out;
    if (closing_.load(std::memory_order_relaxed)) {
      if (draining_.load(std::memory_order_relaxed) && head_ < drain_end_.load(std::memory_order_relaxed)) {
        // drain(): claims made before routing stopped are still being finished.
      } else {
        return make_error(Errc::closed, "subscription '" + pattern_ + "' is closed");
      }
    }
    if (monotonic_ns() >= deadline) {
      return make_error(Errc::timeout, "no message on '" + pattern_ + "' within the timeout");
    }
    wait_locked(deadline);
  }
}

Result<std::size_t> SubscriptionImpl::try_poll(const MessageHandler& handler, std::size_t max) {
  // An empty poll takes no lock: busy-spinning callers would otherwise spend a quarter of their
  // cycles on an uncontended mutex. Relaxed: a stale hint only sends us to the locked path.
  // (A superseded segment takes the locked path, which says so or moves us to the new one.)
  const Binding& b = bound();
  if (!b.ring.committed_at(head_hint_.load(std::memory_order_relaxed)) && !b.attachment->segment.superseded() &&
      (empty_polls_hint_.fetch_add(1, std::memory_order_relaxed) & 1023u) != 1023u) {
    return std::size_t{0};
  }
  std::lock_guard lock(consume_mutex_);
  if (unsubscribed_) return make_error(Errc::closed, "subscription '" + pattern_ + "' is closed");
  return poll_locked(handler, max);
}

void SubscriptionImpl::start_dispatch(MessageHandler handler) {
  dispatch_ = std::thread([this, handler = std::move(handler)] {
    // Drops messages still in a batch once unsubscribe() began: nothing is delivered after it.
    const MessageHandler guarded = [&](const MessageView& v) {
      if (!closing_.load(std::memory_order_relaxed) || draining_.load(std::memory_order_relaxed)) handler(v);
    };
    std::unique_lock lock(consume_mutex_);
    std::uint64_t drain_deadline = 0;
    for (;;) {
      auto polled = poll_locked(guarded, 64);
      if (!polled) {
        if (!reattaching(polled.error())) break;  // corrupt ring, or lost for good: stop
        if (closing_.load(std::memory_order_relaxed)) break;
        wait_locked(monotonic_ns() + kPinCheckNs);
        continue;
      }
      if (polled.value() != 0) continue;
      if (closing_.load(std::memory_order_relaxed)) {
        if (!draining_.load(std::memory_order_relaxed)) break;
        // Draining: finish claims made before routing stopped, bounded by one second.
        if (head_ >= drain_end_.load(std::memory_order_relaxed)) break;
        if (drain_deadline == 0) drain_deadline = monotonic_ns() + 1'000'000'000ull;
        if (monotonic_ns() > drain_deadline) break;
      }
      wait_locked(monotonic_ns() + kMaxSleepNs);
    }
  });
}

void SubscriptionImpl::stop_dispatch() noexcept {
  closing_.store(true, std::memory_order_relaxed);
  // Full fence: pairs with the one in wait_locked() (store-buffer pattern).
  std::atomic_thread_fence(std::memory_order_seq_cst);
  ring().cancel_sleep();
  futex_wake_all(ring().futex_word());
  join_dispatch();
}

void SubscriptionImpl::join_dispatch() noexcept {
  // close(), unsubscribe() and drain() may race to join from different threads: one joins.
  std::lock_guard lock(join_mutex_);
  if (dispatch_.joinable() && dispatch_.get_id() != std::this_thread::get_id()) dispatch_.join();
}

void SubscriptionImpl::detach() noexcept {
  stop_dispatch();
  std::lock_guard lock(consume_mutex_);  // waits for a next() in progress to leave
  unsubscribed_ = true;
  unsubscribed_flag_.store(true, std::memory_order_release);
}

Status SubscriptionImpl::unsubscribe() {
  const bool on_dispatch_thread = dispatch_.joinable() && dispatch_.get_id() == std::this_thread::get_id();
  if (on_dispatch_thread) {
    // Called from our own handler: the dispatch loop holds consume_mutex_. Stop delivery now;
    // the loop exits after this batch and the destructor finishes the job.
    closing_.store(true, std::memory_order_relaxed);
    draining_.store(false, std::memory_order_relaxed);
    return {};
  }
  draining_.store(false, std::memory_order_relaxed);
  stop_dispatch();
  // Off the connection's list before we take consume_mutex_: close() holds the list's lock
  // while it takes each member's consume_mutex_ (detach()), so the other order deadlocks.
  connection_->forget(this);
  std::lock_guard lock(consume_mutex_);
  if (unsubscribed_) return {};
  unsubscribed_ = true;
  unsubscribed_flag_.store(true, std::memory_order_release);
  if (connection_->closed()) return {};
  // Nobody in this process reads the ring any more: the broker may recycle it. That is the
  // broker we were subscribed with last (moved to, or offered a move to); one we left is gone.
  Binding last = bound();
  {
    std::lock_guard rebind_lock(rebind_mutex_);
    if (offered_ != nullptr) last = *offered_;
  }
  if (last.attachment != &connection_->attachment()) return {};
  return connection_->unsubscribe(*last.attachment, last.index, last.incarnation, /*keep_ring=*/false);
}

Status SubscriptionImpl::drain() {
  if (unsubscribed_flag_.load(std::memory_order_acquire)) return {};
  if (dispatch_.joinable() && dispatch_.get_id() == std::this_thread::get_id()) {
    return make_error(Errc::invalid_argument, "drain() cannot be called from the subscription's own handler");
  }
  // 1. No new messages: the broker drops us from every route, bumps the incarnation and moves
  //    the tail on by one ring's length; claims made before that end at tail - capacity.
  //    A subscription of a superseded segment: nobody routes to its ring any more, so the claims
  //    to finish are those below its tail ([SC3], as when it leaves the ring).
  if (bound().attachment->segment.superseded(std::memory_order_seq_cst)) {
    drain_end_.store(ring().tail_seq_cst(), std::memory_order_relaxed);
  } else if (!connection_->closed()) {
    if (auto st = connection_->unsubscribe(*bound().attachment, bound().index, bound().incarnation, /*keep_ring=*/true);
        !st) {
      return st;
    }
    const std::uint64_t tail = tail_position(ring().control()->tail_word.load(std::memory_order_acquire));
    drain_end_.store(tail - ring().capacity(), std::memory_order_relaxed);
  }
  // 2. Let the dispatch thread deliver what is already in the ring (it never takes the lock
  //    away from us: we do not take consume_mutex_ until it has left).
  draining_.store(true, std::memory_order_relaxed);
  closing_.store(true, std::memory_order_relaxed);
  std::atomic_thread_fence(std::memory_order_seq_cst);
  ring().cancel_sleep();
  futex_wake_all(ring().futex_word());
  join_dispatch();
  // 3. Release the ring.
  return unsubscribe();
}

}  // namespace bus::detail

// ------------------------------------------------------------------------------ public facade

namespace bus {

Subscription::Subscription() noexcept = default;
Subscription::Subscription(std::unique_ptr<detail::SubscriptionImpl> impl) noexcept : impl_(std::move(impl)) {}
Subscription::Subscription(Subscription&&) noexcept = default;
Subscription& Subscription::operator=(Subscription&&) noexcept = default;
Subscription::~Subscription() = default;

Result<Message> Subscription::next(std::chrono::nanoseconds timeout) {
  if (!impl_) return make_error(Errc::closed, "subscription is closed");
  return impl_->next(timeout);
}

Result<std::size_t> Subscription::try_poll(const MessageHandler& handler, std::size_t max) {
  if (!impl_) return make_error(Errc::closed, "subscription is closed");
  return impl_->try_poll(handler, max);
}

Status Subscription::unsubscribe() {
  if (!impl_) return {};
  return impl_->unsubscribe();
}

Status Subscription::drain() {
  if (!impl_) return {};
  return impl_->drain();
}

const std::string& Subscription::pattern() const noexcept {
  static const std::string kEmpty;
  return impl_ ? impl_->pattern() : kEmpty;
}

const std::string& Subscription::queue_group() const noexcept {
  static const std::string kEmpty;
  return impl_ ? impl_->queue_group() : kEmpty;
}

std::uint64_t Subscription::dropped_count() const noexcept { return impl_ ? impl_->dropped_count() : 0; }
std::uint64_t Subscription::delivered_count() const noexcept { return impl_ ? impl_->delivered_count() : 0; }
std::uint64_t Subscription::skipped_count() const noexcept { return impl_ ? impl_->skipped_count() : 0; }

}  // namespace bus

// client/subscription_impl.hpp — the consumer side of one subscription ring.
//
// Owns the ring's head, the wait strategy (spin, then futex sleep), recovery from records left
// unfinished by dead publishers, and the optional dispatch thread. Consumer operations hold
// consume_mutex_, so unsubscribe() can be sure nobody in this process still reads the ring
// before it lets the broker recycle it.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "bus/message.hpp"
#include "bus/options.hpp"
#include "bus/result.hpp"
#include "bus/subscription.hpp"
#include "ring/mpsc_ring.hpp"

namespace bus::detail {

class ConnectionImpl;
struct Attachment;
struct LaneClaim;

class SubscriptionImpl {
 public:
  SubscriptionImpl(std::shared_ptr<ConnectionImpl> connection, Attachment& attachment, std::uint32_t index,
                   std::uint32_t incarnation, std::string pattern, SubscribeOptions options);
  ~SubscriptionImpl();

  Result<Message> next(std::chrono::nanoseconds timeout);
  Result<std::size_t> try_poll(const MessageHandler& handler, std::size_t max);
  void start_dispatch(MessageHandler handler);
  Status unsubscribe();
  Status drain();
  /// The connection is closing: stop consuming (the broker reclaims the ring).
  void detach() noexcept;

  /// The connection attached to a new segment and subscribed us there: we move over once we
  /// have delivered what the old ring holds (its publishers stopped when it was superseded).
  void offer_rebind(Attachment& attachment, std::uint32_t index, std::uint32_t incarnation);
  /// The new broker refused to subscribe us again: polls report `why` from now on.
  void strand(Error why);
  /// The attachment we consume from, or will once we have moved.
  const Attachment* destination() const;
  /// False for a request inbox's subscription: a new inbox replaces it after a re-attach.
  bool rebindable() const noexcept { return rebindable_; }
  void set_rebindable(bool on) noexcept { rebindable_ = on; }

  const std::string& pattern() const noexcept { return pattern_; }
  std::uint32_t index() const noexcept { return bound().index; }
  std::uint32_t incarnation() const noexcept { return bound().incarnation; }
  const std::string& queue_group() const noexcept { return options_.queue_group; }
  std::uint64_t dropped_count() const noexcept;
  std::uint64_t delivered_count() const noexcept;
  std::uint64_t skipped_count() const noexcept;

 private:
  /// Delivers what is committed; handles dead writers' records. Caller holds consume_mutex_.
  Result<std::size_t> poll_locked(const MessageHandler& handler, std::size_t max);
  /// Waits until a record may be ready, the deadline passes or we are closing.
  void wait_locked(std::uint64_t deadline_ns);
  /// The head record is claimed but not committed: if that has lasted, skip it when no live
  /// writer can be inside it (its writer died: hazard 4), or when it has lasted past the unblock
  /// timeout (its writer is stopped). Slow path only: it reads the clock and the claim lanes.
  void check_stuck_head_locked();
  /// `position` (at or below `tail`) is where a claim starts: the tail, a committed record, or
  /// a position a claim lane names (uses lanes_ from the last scan).
  bool is_claim_boundary(std::uint64_t position, std::uint64_t tail) const;
  /// Gives skipped records back to producers once no live writer may still touch them.
  void release_pins_locked();
  std::uint64_t reuse_floor() const noexcept { return pins_.empty() ? ~0ull : pins_.front().start; }
  /// Our segment was superseded and everything its ring holds is delivered: move to the binding
  /// offered by the connection. False: not yet (nothing offered, or claims still outstanding).
  bool leave_superseded_locked();
  /// `error` came from a superseded segment while the connection re-attaches: wait, not fail.
  bool reattaching(const Error& error) const;
  void stop_dispatch() noexcept;
  void join_dispatch() noexcept;

  /// A ring this subscription consumes: the first one, then one per segment it moved to.
  struct Binding {
    Attachment* attachment;
    MpscRing ring;
    std::uint32_t index;
    std::uint32_t incarnation;
  };
  const Binding& bound() const noexcept { return *binding_.load(std::memory_order_acquire); }
  /// The ring in use; stable while consume_mutex_ is held (only a consumer changes it).
  MpscRing& ring() const noexcept { return binding_.load(std::memory_order_acquire)->ring; }

  std::shared_ptr<ConnectionImpl> connection_;
  // Release/acquire: a Binding is filled before it is published here; threads without
  // consume_mutex_ (statistics, try_poll's peek, stop_dispatch's wake-up) only read it.
  std::atomic<Binding*> binding_{nullptr};
  mutable std::mutex rebind_mutex_;                 // guards bindings_ and offered_
  std::vector<std::unique_ptr<Binding>> bindings_;  // all of them, until we are destroyed
  Binding* offered_ = nullptr;                      // where to move once drained
  std::optional<Error> stranded_;                   // refused a move (under rebind_mutex_)
  bool rebindable_ = true;                          // set before the subscription is shared
  // Counts of the rings we left (statistics carry on across a move).
  std::atomic<std::uint64_t> left_dropped_{0}, left_skipped_{0}, left_delivered_{0};
  std::string pattern_;
  SubscribeOptions options_;

  std::mutex consume_mutex_;
  std::uint64_t head_ = 0;                 // own position; single writer (under consume_mutex_)
  // head_ published for try_poll()'s lock-free "anything there?" check (same process only).
  std::atomic<std::uint64_t> head_hint_{0};
  std::atomic<std::uint32_t> empty_polls_hint_{0};  // every 1024th empty try_poll takes the slow path
  std::uint64_t stuck_head_ = ~0ull;       // head position check_stuck_head_locked() last saw
  std::uint64_t stuck_since_ns_ = 0;       // since when the head has not moved
  std::uint32_t empty_polls_ = 0;          // every 64th empty slow-path poll looks for stuck writers
  // Records skipped while a live writer may still write into them (it stalled): their space is
  // not given back to producers until that writer is gone or has moved on. Oldest first.
  struct Pin {
    std::uint64_t start, end;
  };
  std::vector<Pin> pins_;
  std::vector<LaneClaim> lanes_;  // scratch for ConnectionImpl::lane_claims()
  std::uint64_t pins_checked_ns_ = 0;
  bool corrupt_ = false;

  std::atomic<bool> closing_{false};
  std::atomic<bool> draining_{false};
  bool unsubscribed_ = false;  // under consume_mutex_
  std::atomic<bool> unsubscribed_flag_{false};  // the same, readable without the lock
  std::atomic<std::uint64_t> drain_end_{0};     // drain(): claims made before routing stopped end here
  std::mutex join_mutex_;
  std::thread dispatch_;
};

/// The implementation behind a public Subscription, for the library's own modules (the
/// consumer engine addresses its ack ring).
struct SubscriptionAccess {
  static SubscriptionImpl* of(const Subscription& s) noexcept { return s.impl_.get(); }
};

}  // namespace bus::detail

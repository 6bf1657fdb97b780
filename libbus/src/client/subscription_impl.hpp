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

class SubscriptionImpl {
 public:
  SubscriptionImpl(std::shared_ptr<ConnectionImpl> connection, std::uint32_t index,
                   std::uint32_t incarnation, std::string pattern, SubscribeOptions options);
  ~SubscriptionImpl();

  Result<Message> next(std::chrono::nanoseconds timeout);
  Result<std::size_t> try_poll(const MessageHandler& handler, std::size_t max);
  void start_dispatch(MessageHandler handler);
  Status unsubscribe();
  Status drain();
  /// The connection is closing: stop consuming (the broker reclaims the ring).
  void detach() noexcept;

  const std::string& pattern() const noexcept { return pattern_; }
  std::uint32_t index() const noexcept { return index_; }
  std::uint32_t incarnation() const noexcept { return incarnation_; }
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
  /// Gives skipped records back to producers once no live writer may still touch them.
  void release_pins_locked();
  std::uint64_t reuse_floor() const noexcept { return pins_.empty() ? ~0ull : pins_.front().start; }
  void stop_dispatch() noexcept;
  void join_dispatch() noexcept;

  std::shared_ptr<ConnectionImpl> connection_;
  MpscRing ring_;
  std::uint32_t index_;
  std::uint32_t incarnation_;
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
  std::vector<std::uint64_t> live_;  // scratch for ConnectionImpl::live_claims()
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

}  // namespace bus::detail

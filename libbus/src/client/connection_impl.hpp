// client/connection_impl.hpp — what a Connection is made of, and the publish hot path.
//
// A connection = a mapped segment + a control channel to the broker + a client slot. Publishing
// threads each get a ThreadPublisher (thread-local): their own claim lane in the client slot and
// their own cache of routes, so publish() needs no lock. The connection-wide route table (which
// routes this connection holds a broker reference to) is touched only on a thread's first
// publish to a subject.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <future>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "bus/message.hpp"
#include "bus/options.hpp"
#include "bus/result.hpp"
#include "proto/control_channel.hpp"
#include "ring/mpsc_ring.hpp"
#include "shm/segment.hpp"

namespace bus::detail {

class SubscriptionImpl;
class Inbox;

/// Heterogeneous lookup: find(std::string_view) without building a std::string.
struct StringHash {
  using is_transparent = void;
  std::size_t operator()(std::string_view s) const noexcept { return std::hash<std::string_view>{}(s); }
};

/// One route as a publishing thread sees it: a private copy of the broker's RouteLayout.
struct LocalRoute {
  struct Target {
    MpscRing ring;
    ProducerCursor cursor;
    std::uint32_t subscription = 0;
    std::uint32_t group = 0;  // 0 = plain; else queue-group ordinal (members are contiguous)
  };
  RouteLayout* layout = nullptr;
  std::uint32_t version = 0;      // layout->version the targets were copied at
  std::vector<Target> targets;    // capacity max_fanout, reserved once: refresh never allocates
  std::vector<Target> scratch;    // refresh() fills this, then swaps it with targets
  std::uint32_t next_member = 0;  // round-robin start for queue groups (random first, then +1)
};

/// Claim lanes of one connection, shared with the ThreadPublishers that hold one, so a thread
/// that outlives the connection can still give its lane back.
struct LaneSet {
  std::atomic<std::uint32_t> in_use{0};  // bit i = lane i taken
};

struct ThreadPublisher {
  std::uint64_t connection_serial = 0;
  std::weak_ptr<void> connection_alive;  // expired once the ConnectionImpl is gone
  std::shared_ptr<LaneSet> lanes;
  std::uint32_t lane = 0;
  ClaimLane* claim_lane = nullptr;  // this thread's lane in the client slot
  std::unordered_map<std::string, LocalRoute, StringHash, std::equal_to<>> routes;
  // The route used last: a thread publishing to one subject in a loop skips the hash lookup.
  // Nodes of `routes` never move, so the pointer stays valid until the entry is erased.
  std::string last_subject;  // capacity reserved for the longest subject: assign never allocates
  LocalRoute* last_route = nullptr;
  ~ThreadPublisher();
};

class ConnectionImpl : public std::enable_shared_from_this<ConnectionImpl> {
 public:
  static Result<std::shared_ptr<ConnectionImpl>> connect(std::string_view bus_name,
                                                         const ConnectOptions& options);
  ~ConnectionImpl();

  /// Publishes; returns how many subscriptions the subject matched (0 = no interest).
  Result<std::size_t> publish(std::string_view subject, std::string_view reply,
                              std::string_view headers, std::string_view data);
  Result<std::unique_ptr<SubscriptionImpl>> subscribe(std::string_view pattern,
                                                      const SubscribeOptions& options);
  /// Called by a subscription that unsubscribes itself. keep_ring: stop routing only (drain).
  Status unsubscribe(std::uint32_t subscription, std::uint32_t incarnation, bool keep_ring);
  void forget(SubscriptionImpl* subscription);
  Status close();
  bool broker_alive() const noexcept;

  Result<Message> request(std::string_view subject, std::string_view data, std::string_view headers,
                          std::chrono::nanoseconds timeout);
  std::future<Result<Message>> request_async(std::string_view subject, std::string_view data,
                                             std::string_view headers, std::chrono::nanoseconds timeout);

  /// The oldest claim position below `below` that a live writer may still be working on in
  /// ring `subscription` (from the claim lanes; a lane whose process is gone does not count),
  /// or nullopt when no live writer is inside a claim there. Slow path: reads every lane.
  std::optional<std::uint64_t> oldest_live_claim(std::uint32_t subscription, std::uint64_t below) const;

  const Segment& segment() const noexcept { return segment_; }
  const std::string& bus_name() const noexcept { return bus_name_; }
  bool closed() const noexcept { return closed_.load(std::memory_order_acquire); }
  std::uint32_t slot() const noexcept { return slot_; }
  std::uint32_t epoch() const noexcept { return epoch_; }

 private:
  ConnectionImpl() = default;
  ThreadPublisher* thread_publisher();
  Result<LocalRoute*> route_for(ThreadPublisher& tp, std::string_view subject);
  Result<std::uint32_t> acquire_route(std::string_view subject);
  /// Re-copies a route under its seqlock. false: the slot no longer holds `subject`'s route
  /// (the broker freed or reused it); the caller resolves again.
  Result<bool> refresh(LocalRoute& route, std::string_view subject);
  void forget_route(std::string_view subject);
  /// A reply to an inbox made by a bus requester goes straight to that inbox's ring (see
  /// client/inbox.hpp); returns false when `subject` is not such an inbox.
  bool try_deliver_to_inbox(ThreadPublisher& tp, std::string_view subject, std::string_view reply,
                            std::string_view headers, std::string_view data);
  void abandoned(LocalRoute::Target& target) noexcept;
  bool deliver(LocalRoute::Target& target, ThreadPublisher& tp, std::uint32_t bytes,
               std::string_view subject, std::string_view reply, std::string_view headers,
               std::string_view data);

  std::string bus_name_;
  ConnectOptions options_;
  Segment segment_;
  ControlChannel control_;
  std::uint32_t slot_ = 0;
  std::uint32_t epoch_ = 0;
  std::uint64_t serial_ = 0;
  std::atomic<bool> closed_{false};
  std::atomic<std::uint64_t> abandoned_msgs_{0};  // our claims a subscriber skipped (we stalled)
  std::shared_ptr<LaneSet> lanes_ = std::make_shared<LaneSet>();
  std::shared_ptr<int> alive_token_ = std::make_shared<int>(0);
#ifdef BUS_TEST_HOOKS
  // BUS_TEST_PAUSE_AFTER_CLAIM=1|2|3: stop (SIGSTOP) once, after the claim, after
  // begin_write, or before commit. Crash-injection tests only; compiled out of libbus.
  int test_pause_after_claim_ = 0;
  void test_pause() noexcept;
#endif
  // Rings this process has prefaulted (publishers do it when a route first names a ring).
  std::unique_ptr<std::atomic<bool>[]> prefaulted_;

  std::mutex routes_mutex_;
  std::unordered_map<std::string, std::uint32_t, StringHash, std::equal_to<>> held_routes_;

  std::mutex subscriptions_mutex_;
  std::set<SubscriptionImpl*> subscriptions_;

  std::mutex inbox_mutex_;
  std::shared_ptr<Inbox> inbox_;  // made by the first request; requests in flight hold a copy
};

}  // namespace bus::detail

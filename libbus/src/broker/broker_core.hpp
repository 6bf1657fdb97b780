// broker/broker_core.hpp — the broker's state machine and event loop.
//
// Single-threaded: one epoll loop owns every table, so the broker needs no locks and is the
// single writer of the segment's control tables (subscriptions, routes, client identities).
// It is never on the data path. Events: control requests, client sockets closing, client
// pidfds becoming readable (the process died), a 100 ms tick (heartbeat, ring recycling, a
// /proc liveness backstop) and a stop eventfd.
#pragma once

#include <sys/socket.h>
#include <sys/types.h>

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "bus/options.hpp"
#include "bus/result.hpp"
#include "broker/streams.hpp"
#include "consumer/engine.hpp"
#include "monitor/broker_monitor.hpp"
#include "proto/control.hpp"
#include "shm/segment.hpp"
#include "subject/sublist.hpp"

namespace bus::detail {

class BrokerCore {
 public:
  /// Takes the bus name (socket lock), replaces a stale segment, creates the segment.
  static Result<std::unique_ptr<BrokerCore>> create(const BrokerOptions& options);
  ~BrokerCore();

  /// Serves until request_stop(). Returns an error only if the event loop itself failed.
  Status run();
  /// Thread-safe and async-signal-safe.
  void request_stop() noexcept;

  /// Asks every BrokerCore running in this process to stop (signal handlers).
  static void request_stop_all() noexcept;

 private:
  struct ClientRecord {
    bool in_use = false;
    int fd = -1;  // -1 while in use: adopted from a dead broker, not reconnected yet
    int pidfd = -1;
    pid_t pid = 0;
    std::uint64_t start_ticks = 0;
    std::string name;
    bool misbehaved = false;  // its control channel was dropped for what it sent (it kept its slot)
    std::vector<std::uint32_t> subscriptions;
    std::unordered_map<std::uint32_t, std::uint32_t> route_refs;  // route slot -> refs held
  };
  struct SubscriptionRecord {
    bool active = false;
    bool quarantined = false;
    bool ring_reserved = false;
    std::uint32_t owner = 0;
    std::string pattern;
    std::string group;
    bool proxy = false;  // kSubscriptionProxy: the bridge shares the group with NATS
  };
  struct RouteRecord {
    bool active = false;
    std::string subject;
    std::uint32_t refs = 0;
    std::vector<std::uint32_t> targets;  // subscription slots
  };

  BrokerCore() = default;
  void log(const std::string& line) const;

  /// Sizes the in-process tables for a segment of `config`, all free.
  void prepare_tables(const SegmentConfig& config);
  /// Takes over a segment left by a broker that died (broker/adoption.cpp): validates every
  /// table as untrusted input, keeps the clients that are still alive (they reconnect), their
  /// subscriptions and the routes, and reclaims the rest. An error: the segment cannot be
  /// adopted (the caller replaces it).
  Status adopt(Segment segment);
  void adopt_clients();
  void adopt_subscriptions();
  void adopt_routes();

  void accept_clients();
  /// Closes `fd` after the current epoll batch (its events may still be in the batch).
  void close_later(int fd);
  void close_deferred() noexcept;
  void on_readable(int fd);
  /// keep_live_slot: the client misbehaved on the control channel; if its process still runs,
  /// keep its slot (and data path) awaiting a reconnect instead of reaping it.
  void drop_connection(int fd, const char* reason, bool keep_live_slot = false);
  /// `misbehaved`: dropped for what it did on the control channel (the event says "evicted").
  void reap_client(std::uint32_t slot, const char* reason, bool misbehaved = false);
  void on_tick();

  ControlMessage handle(int fd, const ControlMessage& request, std::string_view body);
  Result<ControlMessage> on_hello(int fd, const ControlMessage& request);
  Result<ControlMessage> on_resume(int fd, const ControlMessage& request, const ucred& cred);
  Result<ControlMessage> on_subscribe(std::uint32_t client, const ControlMessage& request);
  Result<ControlMessage> on_unsubscribe(std::uint32_t client, const ControlMessage& request);
  Result<ControlMessage> on_resolve(std::uint32_t client, const ControlMessage& request);
  Result<ControlMessage> on_release(std::uint32_t client, const ControlMessage& request);
  /// Stream administration (broker/streams.cpp); the reply's body goes in reply_body_.
  Result<ControlMessage> on_stream_request(const ControlMessage& request, std::string_view body);
  /// Rewrites every active route (the streams capturing subjects changed).
  void republish_routes();
  /// Targets a route takes in the segment: its subscriptions and the stream capturing it.
  std::size_t route_width(const RouteRecord& route) const;

  Result<std::uint32_t> allocate_subscription();
  /// Removes a subscription from every route and invalidates its ring's incarnation.
  void stop_routing(std::uint32_t index);
  /// Hands the ring to the recycler (its owner no longer reads it).
  void quarantine(std::uint32_t index);
  void remove_subscription(std::uint32_t index);  // stop_routing + quarantine
  bool claimed_by_live_client(std::uint32_t subscription) const noexcept;
  void recycle_quarantined();
  void release_route(std::uint32_t route, std::uint32_t refs);
  void free_route(std::uint32_t route);
  /// Takes a route back when the table is full (see the comment in the .cpp).
  void evict_route();
  /// Rewrites a route's targets in the segment under its seqlock.
  void publish_route(std::uint32_t route);
  void bump_generation() noexcept;

  BrokerOptions options_;
  Segment segment_;
  /// Counters, $SYS events and the HTTP port (monitor/broker_monitor.hpp). Holds a reference to
  /// segment_ (declared after it: destroyed first).
  std::unique_ptr<monitor::BrokerMonitor> monitor_;
  Sublist sublist_;
  int listen_fd_ = -1;
  int epoll_fd_ = -1;
  int timer_fd_ = -1;
  int stop_fd_ = -1;
  int stop_registry_slot_ = -1;
  std::vector<ClientRecord> clients_;
  std::unordered_map<int, std::int64_t> connections_;  // socket fd -> client slot (-1 before hello)
  std::unordered_map<int, std::uint32_t> pidfds_;      // pidfd -> client slot
  std::vector<SubscriptionRecord> subscriptions_;
  std::vector<std::uint32_t> free_subscriptions_;  // LIFO stack of free slots
  std::vector<std::uint32_t> quarantine_;          // unsubscribed, ring not yet recyclable
  std::vector<RouteRecord> routes_;
  std::vector<std::uint32_t> free_routes_;
  std::uint32_t next_eviction_ = 0;
  std::unordered_map<std::string, std::uint32_t> route_by_subject_;
  std::vector<std::uint32_t> match_scratch_;
  std::vector<int> deferred_closes_;
  BrokerStreams streams_;
  /// The consumers (consumer/engine.hpp): made with the store, started once a stream exists.
  /// Declared after streams_: destroyed first.
  std::unique_ptr<consumer::ConsumerEngine> consumers_;
  bool stopping_ = false;              // asked to stop; serving until the engine has left
  bool final_pass_ = false;            // stopping, and one last look at the sockets is under way
  std::uint64_t stop_deadline_ns_ = 0;
  std::string receive_buffer_;  // one control datagram (kControlDatagramBytes)
  std::string reply_body_;      // the body of the reply being built
};

}  // namespace bus::detail

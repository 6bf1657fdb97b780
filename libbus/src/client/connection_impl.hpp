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
#include <condition_variable>
#include <future>
#include <thread>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "bus/connection.hpp"
#include "bus/message.hpp"
#include "bus/options.hpp"
#include "bus/result.hpp"
#include "bus/stream.hpp"
#include "journal/msg_ids.hpp"
#include "proto/control_channel.hpp"
#include "ring/mpsc_ring.hpp"
#include "shm/segment.hpp"

namespace bus::detail {

class SubscriptionImpl;
class Inbox;
struct InboxAddress;
struct Attachment;
namespace journal {
class Journal;
}

/// A claim a claim lane names (ConnectionImpl::lane_claims()).
struct LaneClaim {
  std::uint64_t position;  // where the claim starts (a padding before a wrapping record, maybe)
  std::uint64_t end;       // where it ends; 0 when the lane's end is not believable
  ClaimLane* lane;         // the writer's lane, for skip_claim() to mark
  std::uint64_t word;      // the lane word read
  bool alive;              // the writer's process is alive (fail-closed: alive unless proven gone)
  bool won;                // the writer's claim CAS won this position (else it may have lost it)
};

/// Heterogeneous lookup: find(std::string_view) without building a std::string.
struct StringHash {
  using is_transparent = void;
  std::size_t operator()(std::string_view s) const noexcept { return std::hash<std::string_view>{}(s); }
};

/// One route as a publishing thread sees it: a private copy of the broker's RouteLayout.
/// A stream this process appends to or reads: its journal, attached once (client/streams.cpp).
struct StreamHandle {
  const Attachment* attachment = nullptr;  // whose segment's stream table named it
  std::uint32_t slot = 0;
  std::uint32_t incarnation = 0;
  std::string name;
  std::int64_t max_msg_size = -1;
  bool allow_rollup = false;  // Nats-Rollup honoured (allow_rollup_hdrs)
  // Discard new with max_msgs or max_bytes: the slot whose usage words appends check; else null.
  const StreamLayout* usage = nullptr;
  std::int64_t max_msgs = -1, max_bytes = -1;
  std::unique_ptr<journal::Journal> journal;
  journal::MsgIdTable msg_ids;  // Nats-Msg-Id de-duplication (the broker made it beside the journal)
  ~StreamHandle();
};

struct LocalRoute {
  struct Target {
    MpscRing ring;
    ProducerCursor cursor;
    std::uint32_t subscription = 0;
    std::uint32_t group = 0;  // 0 = plain; else queue-group ordinal (members are contiguous)
    bool proxy = false;       // TargetKind::bridge: the group is picked beyond the bus (no ring)
  };
  RouteLayout* layout = nullptr;
  StreamHandle* stream = nullptr;  // the stream capturing the subject, if any (client/streams.cpp)
  // The route names a stream this process could not open: publishes still reach the rings and
  // say the message was not stored; the journal is tried again after stream_retry_ns.
  std::shared_ptr<const Error> stream_error;
  std::uint64_t stream_retry_ns = 0;
  std::uint32_t version = 0;      // layout->version the targets were copied at
  std::vector<Target> targets;    // capacity max_fanout, reserved once: refresh never allocates
  std::vector<Target> scratch;    // refresh() fills this, then swaps it with targets
  std::uint32_t next_member = 0;  // round-robin start for queue groups (random first, then +1)
  std::uint64_t held_generation = 0;  // which HeldRoute entry this copy took a reference on
};

/// A route this connection holds a broker reference to, and how many thread caches use it.
struct Attachment;
struct HeldRoute {
  std::uint32_t index = 0;
  std::uint32_t users = 0;
  std::uint64_t generation = 0;  // distinguishes a re-resolved entry from the one it replaced
  const Attachment* owner = nullptr;  // whose broker holds the reference
};

/// Which of a route's targets a publish reaches. Every one, normally; the NATS bridge's imports
/// are narrower (bridge/bridge.cpp): a NATS message that came on a plain NATS subscription goes
/// to the plain subscriptions and the stream, one that came on a queue subscription to one
/// member of that group only, so a message NATS hands the bridge twice reaches nobody twice.
struct DeliveryScope {
  bool plain = true;       ///< plain subscriptions and the capturing stream
  std::string_view group;  ///< empty: no queue group; else only this one
};

/// Claim lanes of one connection, shared with the ThreadPublishers that hold one, so a thread
/// that outlives the connection can still give its lane back.
struct LaneSet {
  std::atomic<std::uint32_t> in_use{0};  // bit i = lane i taken
  /// busy[i] = lane i's thread is inside publish(): close() waits until every lane is idle.
  struct alignas(64) Busy {
    std::atomic<std::uint32_t> flag{0};
  };
  Busy busy[32];
};

/// One attachment of a connection to a segment: the mapping, our client slot in it, and the
/// claim lanes of our publishing threads. A connection attaches anew when a new broker
/// supersedes its segment (client/reconnect.cpp); the attachments it leaves stay mapped until
/// the connection is destroyed, since other threads may still be reading them.
struct Attachment {
  Segment segment;
  std::uint32_t slot = 0;
  std::uint32_t epoch = 0;
  std::uint64_t serial = 0;  // process-unique: ThreadPublishers of this attachment carry it
  // The control connection (ControlChannel::session()) to the broker of this segment; a resume
  // after an adopting restart moves it on. Requests for this attachment go only there.
  std::atomic<std::uint64_t> session{0};
  std::shared_ptr<LaneSet> lanes = std::make_shared<LaneSet>();
  std::shared_ptr<int> alive_token = std::make_shared<int>(0);  // reset when the connection closes
  // Rings this process has prefaulted (publishers do it when a route first names a ring).
  std::unique_ptr<std::atomic<bool>[]> prefaulted;
};

struct ThreadPublisher {
  std::uint64_t connection_serial = 0;  // the Attachment's serial
  Attachment* attachment = nullptr;      // valid while connection_alive has not expired
  std::weak_ptr<void> connection_alive;  // expired once the attachment is left or closed
  std::weak_ptr<ConnectionImpl> connection;  // to give route references back at thread exit
  std::shared_ptr<LaneSet> lanes;
  std::uint32_t lane = 0;
  ClaimLane* claim_lane = nullptr;  // this thread's lane in the client slot
  /// One publish() done: the lane's counters (shm/layout.hpp), on the line the claim word is
  /// on. Relaxed load + store: this thread is their only writer, so no RMW is needed.
  void count_published(std::size_t bytes) noexcept {
    claim_lane->published_msgs.store(claim_lane->published_msgs.load(std::memory_order_relaxed) + 1,
                                     std::memory_order_relaxed);
    claim_lane->published_bytes.store(claim_lane->published_bytes.load(std::memory_order_relaxed) + bytes,
                                      std::memory_order_relaxed);
  }
  void count_undelivered() noexcept {
    claim_lane->undelivered_msgs.store(claim_lane->undelivered_msgs.load(std::memory_order_relaxed) + 1,
                                       std::memory_order_relaxed);
  }
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

  /// Publishes; returns how many subscriptions and streams the subject matched (0 = no
  /// interest). `ack`: set when a stream stored it. `shown_subject`: what subscribers see as
  /// the subject instead of `subject` (a consumer delivering a stored message under its own).
  Result<std::size_t> publish(std::string_view subject, std::string_view reply,
                              std::string_view headers, std::string_view data, PubAck* ack = nullptr,
                              std::string_view shown_subject = {}, const DeliveryScope* scope = nullptr);
  /// Marks every record this connection publishes as imported by bridge `id` (nonzero;
  /// MessageView::imported_by). Before the first publish.
  void set_origin(std::uint16_t id) noexcept { origin_ = id; }
  /// Lets this connection publish on `$SYS.` subjects, which others may not (the broker's
  /// event publisher, monitor/broker_monitor.hpp). Before its first publish.
  void grant_system_subjects() noexcept { system_subjects_ = true; }
  /// Publish counters on or off (bench_bus prices them); before the first publish.
  void set_counting(bool on) noexcept { counting_ = on; }
  /// How many subscriptions a publish to `subject` would reach now (0: nobody listens),
  /// without publishing (a consumer's push interest).
  Result<std::size_t> interest(std::string_view subject);
  /// A stream request to the broker (broker/streams.hpp): the reply's JSON body.
  Result<std::string> stream_request(StreamOp op, std::string_view name, std::string_view body);
  /// The stream `name` as the present attachment's stream table has it, attached.
  Result<StreamHandle*> stream_named(std::string_view name);
  /// `proxy`: a queue-group proxy (kSubscriptionProxy; the bridge's): publishers leave the
  /// group's pick to NATS and its ring is never written.
  Result<std::unique_ptr<SubscriptionImpl>> subscribe(std::string_view pattern,
                                                      const SubscribeOptions& options, bool proxy = false);
  /// Called by a subscription that unsubscribes itself from the broker of `owner` (nothing is
  /// sent if that broker is gone). keep_ring: stop routing only (drain).
  Status unsubscribe(const Attachment& owner, std::uint32_t subscription, std::uint32_t incarnation, bool keep_ring);
  /// A subscription could not move to the present attachment: subscribe it again (supervisor).
  void request_resubscribe() noexcept { needs_resubscribe_.store(true, std::memory_order_release); }
  void forget(SubscriptionImpl* subscription);
  Status close();
  bool broker_alive() const noexcept;

  Result<Message> request(std::string_view subject, std::string_view data, std::string_view headers,
                          std::chrono::nanoseconds timeout);
  std::future<Result<Message>> request_async(std::string_view subject, std::string_view data,
                                             std::string_view headers, std::chrono::nanoseconds timeout);

  /// The claims below `tail` that claim lanes name in ring `subscription` of `segment`,
  /// ascending by position, with whether the writer's process is alive. `tail` is one the
  /// caller read with acquire. Slow path: reads every lane of every client slot.
  static void lane_claims(const Segment& segment, std::uint32_t subscription, std::uint64_t tail,
                          std::vector<LaneClaim>& out);

  /// The attachment in use (it changes only when the broker superseded the segment; earlier
  /// ones stay valid until the connection is destroyed).
  Attachment& attachment() const noexcept { return *attached_.load(std::memory_order_acquire); }
  const Segment& segment() const noexcept { return attachment().segment; }
  const std::string& bus_name() const noexcept { return bus_name_; }
  bool closed() const noexcept { return closed_.load(std::memory_order_acquire); }
  /// Monitoring (shm/layout.hpp, client slot +80): requests waiting for a reply now. One
  /// writer at a time: the inbox calls it under its lock.
  void note_pending_requests(std::size_t n) noexcept;

 private:
  ConnectionImpl() = default;
  // A publish's thread lane and route: a short path it takes nearly always, and an out-of-line
  // one (`_slow`) for the rest: the slow parts' prologues and Result<> returns were a tenth of
  // an acknowledged publish's instructions.
  ThreadPublisher* thread_publisher(Attachment& a);
  ThreadPublisher* thread_publisher_slow(Attachment& a);
  /// This thread's copy of `subject`'s route (made, asking the broker, the first time).
  Result<LocalRoute*> route_for(ThreadPublisher& tp, std::string_view subject);
  /// route_for(), refreshed if the broker changed it since: what a publish writes to. Null
  /// from the short path: ask current_route_slow().
  static LocalRoute* current_route_fast(ThreadPublisher& tp, std::string_view subject) noexcept;
  Result<LocalRoute*> current_route_slow(Attachment& a, ThreadPublisher& tp, std::string_view subject);
  /// Takes a reference for one thread cache on `subject`'s route (asking the broker the first
  /// time); `generation` identifies the entry for release_route_ref().
  Result<std::uint32_t> acquire_route(const Attachment& attachment, std::string_view subject, std::uint64_t& generation);
  /// A thread cache dropped its copy: the last one gives the broker its reference back.
  void release_route_ref(const std::string& subject, std::uint64_t generation);
 public:
  /// A publishing thread is exiting: its cached routes' references go (ThreadPublisher).
  void release_thread_routes(ThreadPublisher& tp);
  /// Sends a control request to the broker of the present attachment; while the broker is away
  /// (reconnecting) waits for it to come back, within control_timeout, and tries once more.
  /// `used`: the attachment whose broker answered (the one the reply's indices belong to).
  Result<ControlMessage> control_call(const ControlMessage& request, Attachment** used = nullptr);
  bool control_connected() const noexcept { return control_up_.load(std::memory_order_acquire); }
  ConnectionStatus status() const noexcept {
    if (closed() || lost_.load(std::memory_order_acquire)) return ConnectionStatus::closed;
    if (segment().superseded()) return ConnectionStatus::reconnecting;  // re-attaching
    return control_connected() ? ConnectionStatus::connected : ConnectionStatus::reconnecting;
  }
 private:
  /// Hello (or, with resume, the reconnect hello) on a freshly connected control channel.
  Result<ControlMessage> say_hello(bool resume);
  /// The supervisor thread: notices the broker going away and reconnects (client/reconnect.cpp).
  void supervise();
  Status try_resume();
  /// Hello on the open control channel, then maps the segment it names (checking its identity).
  Result<std::unique_ptr<Attachment>> attach();
  /// The broker replaced our segment: attach to its new one, re-subscribe every subscription
  /// (each moves over once it has delivered what its old ring holds), forget route references.
  Status reattach();
  /// Subscribes again, on the present attachment, every subscription not bound to it.
  Status resubscribe();
  void retake_route_references();
  void lost_for_good();
  void fire_closed_cb();
  /// Re-copies a route under its seqlock. false: the slot no longer holds `subject`'s route
  /// (the broker freed or reused it); the caller resolves again.
  Result<bool> refresh(Attachment& a, LocalRoute& route, std::string_view subject);
  static Error superseded_error();
  void forget_route(std::string_view subject, std::uint64_t generation);
  /// A reply to an inbox made by a bus requester, or an acknowledgement to the consumer engine,
  /// goes straight to the ring its subject names (client/inbox.hpp); false when that ring is not
  /// (or no longer) the address's: the caller routes it. `exact_incarnation`: a ring given to
  /// another subscription since counts as gone (else the claim drops it as stale).
  bool try_deliver_direct(ThreadPublisher& tp, const InboxAddress& to, bool exact_incarnation, std::string_view label,
                          std::string_view reply, std::string_view headers, std::string_view data);
  void abandoned(LocalRoute::Target& target, ThreadPublisher& tp, bool last_chance) noexcept;
  /// The stream in slot `slot` of `a`'s table if it still has `incarnation` (nullptr: it was
  /// removed or replaced meanwhile), its journal attached on first use.
  Result<StreamHandle*> stream_handle(const Attachment& a, std::uint32_t slot, std::uint32_t incarnation);
  /// Appends a message to the route's stream: its sequence.
  /// Appends to the stream, honouring the NATS publish headers (Nats-Msg-Id within the
  /// duplicate window: stored once, `duplicate` set and the first sequence returned;
  /// Nats-Expected-Stream / -Last-Sequence / -Last-Subject-Sequence / -Last-Msg-Id:
  /// Errc::expectation_failed when they do not hold). client/streams.cpp.
  Result<std::uint64_t> store(StreamHandle& stream, std::string_view subject, std::string_view headers,
                              std::string_view data, bool* duplicate = nullptr);
  /// Whether a message of `bytes` exceeds the stream's max_msg_size (refused before any ring
  /// gets it), and the error that says so. Inline: every stream publish asks.
  static bool over_stream_size(const StreamHandle& stream, std::size_t bytes) noexcept {
    return stream.max_msg_size >= 0 && bytes > static_cast<std::uint64_t>(stream.max_msg_size);
  }
  static Error stream_size_error(const StreamHandle& stream, std::size_t bytes);
  /// Writes one record into `target`'s ring. `last_chance`: nobody else will take the message
  /// if this ring refuses it (false for a queue-group member another member may still take),
  /// so a full ring counts it as dropped.
  bool deliver(LocalRoute::Target& target, ThreadPublisher& tp, std::uint32_t bytes,
               std::string_view subject, std::string_view reply, std::string_view headers,
               std::string_view data, bool last_chance = true);

  std::string bus_name_;
  ConnectOptions options_;
  std::atomic<Attachment*> attached_{nullptr};
  std::mutex attach_mutex_;  // guards attachments_ (not attached_: readers load it lock-free)
  std::vector<std::unique_ptr<Attachment>> attachments_;  // every one made; only the supervisor adds
  ControlChannel control_;
  std::atomic<bool> closed_{false};
  /// Publish counters on (the default); off only for the benchmark that prices them.
  bool counting_ = true;
  std::uint16_t origin_ = 0;  // record origin of our publishes (0: this bus; set_origin)
  /// May publish on $SYS.> (the broker's own event publisher only).
  bool system_subjects_ = false;
#ifdef BUS_TEST_HOOKS
  // BUS_TEST_PAUSE_AFTER_CLAIM=1|2|3: stop (SIGSTOP) once, after the claim, after
  // begin_write, or before commit. Crash-injection tests only; compiled out of libbus.
  int test_pause_after_claim_ = 0;
  void test_pause() noexcept;
#endif

  std::mutex routes_mutex_;
  std::unordered_map<std::string, HeldRoute, StringHash, std::equal_to<>> held_routes_;
  std::uint64_t next_route_generation_ = 1;
  // Made while the broker was away, with the attachment whose broker they are for.
  std::vector<std::pair<const Attachment*, ControlMessage>> pending_unsubscribes_;
  std::atomic<bool> needs_resubscribe_{false};  // a subscription is not yet on the present attachment

  // Reconnecting (client/reconnect.cpp).
  std::thread supervisor_;
  std::atomic<bool> control_up_{true};  // the control channel to a broker is open
  std::atomic<std::uint64_t> control_generation_{0};  // +1 per successful reconnect
  std::uint32_t reconnects_ = 0;                      // the supervisor's; shown in the client slot
  std::atomic<bool> closed_cb_fired_{false};
  std::atomic<bool> lost_{false};  // the broker is gone for good (no reconnect possible)
  std::mutex reconnect_mutex_;
  std::condition_variable reconnect_cv_;  // control_up_ changed, or closing

  std::mutex subscriptions_mutex_;
  std::set<SubscriptionImpl*> subscriptions_;

  std::mutex streams_mutex_;
  // Kept while the connection lives: thread route caches point into them.
  std::vector<std::unique_ptr<StreamHandle>> stream_handles_;

  std::mutex inbox_mutex_;
  std::shared_ptr<Inbox> inbox_;  // made by the first request; requests in flight hold a copy
};

/// How the library's own modules (consumer/) reach a Connection's implementation.
struct ConnectionAccess {
  static const std::shared_ptr<ConnectionImpl>& impl(const Connection& c) noexcept { return c.impl_; }
  /// bench_bus: publish with and without the monitoring counters (before the first publish).
  static void set_counting(const Connection& c, bool on) noexcept;
};

/// Whether subscription `index` of `segment` is a member of queue group `group`, as its slot
/// says (false for a slot out of range): the bridge's scoped imports deliver to one group.
bool subscription_in_group(const Segment& segment, std::uint32_t index, std::string_view group) noexcept;

}  // namespace bus::detail

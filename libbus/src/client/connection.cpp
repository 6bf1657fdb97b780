// client/connection.cpp — attaching to a bus, resolving routes, and the publish hot path.
#include <sys/types.h>
#include <unistd.h>

#include <csignal>
#include <cstdlib>
#include <cstring>
#include <algorithm>
#include <thread>

#include <nlohmann/json.hpp>

#include "bus/connection.hpp"
#include "client/connection_impl.hpp"
#include "client/inbox.hpp"
#include "client/subscription_impl.hpp"
#include "os/futex.hpp"
#include "os/membarrier.hpp"
#include "os/process.hpp"
#include "shm/shared_text.hpp"
#include "stream/config.hpp"
#include "subject/subject.hpp"

namespace bus::detail {

namespace {

std::atomic<std::uint64_t> g_next_serial{1};
// Routes one publishing thread keeps before it starts over (a thread publishing to ever new
// subjects, e.g. one per request id, must not grow without bound).
constexpr std::size_t kMaxThreadRoutes = 4096;
constexpr int kResolveAttempts = 16;

// The ThreadPublishers of the calling thread, one per connection it has published on.
thread_local std::vector<std::unique_ptr<ThreadPublisher>> t_publishers;

}  // namespace

ThreadPublisher::~ThreadPublisher() {
  // The thread is exiting: its route references go back while the connection is open.
  if (!connection_alive.expired()) {
    if (auto conn = connection.lock()) conn->release_thread_routes(*this);
  }
  // Give the lane back; the LaneSet outlives the connection if we do.
  if (lanes) lanes->in_use.fetch_and(~(1u << lane), std::memory_order_acq_rel);
}

Result<std::shared_ptr<ConnectionImpl>> ConnectionImpl::connect(std::string_view bus_name,
                                                                 const ConnectOptions& options) {
  if (auto st = validate_bus_name(bus_name); !st) return std::move(st).error();
  std::shared_ptr<ConnectionImpl> impl(new ConnectionImpl());
  impl->bus_name_ = std::string(bus_name);
  impl->options_ = options;
#ifdef BUS_TEST_HOOKS
  if (const char* pause = std::getenv("BUS_TEST_PAUSE_AFTER_CLAIM")) impl->test_pause_after_claim_ = std::atoi(pause);
#endif

  register_heavy_barrier();
  // The welcome names the segment the broker serves. A broker restart between the welcome and
  // our open would attach us to the wrong segment with a slot from the old one: the identity
  // check catches it, and we simply start over.
  for (int attempt = 0;; ++attempt) {
    if (auto st = impl->control_.connect(bus_name); !st) return std::move(st).error();
    auto attached = impl->attach();
    if (attached) {
      impl->attached_.store(attached.value().get(), std::memory_order_release);
      impl->attachments_.push_back(std::move(attached).value());
      break;
    }
    if (attached.error().code != Errc::broker_gone || attempt == 3) return std::move(attached).error();
  }
  impl->supervisor_ = std::thread([raw = impl.get()] { raw->supervise(); });
  return impl;
}

Result<std::unique_ptr<Attachment>> ConnectionImpl::attach() {
  auto welcome = say_hello(/*resume=*/false);
  if (!welcome) return std::move(welcome).error();
  auto a = std::make_unique<Attachment>();
  a->slot = welcome->a;
  a->epoch = welcome->b;
  a->serial = g_next_serial.fetch_add(1, std::memory_order_relaxed);
  auto segment = Segment::open(bus_name_, control_.peer_uid());
  if (!segment) return std::move(segment).error();
  if (segment->id() != welcome->u64) {
    control_.close();
    return make_error(Errc::broker_gone, "the broker of bus '" + bus_name_ + "' kept changing while we attached");
  }
  a->segment = std::move(segment).value();
  a->session.store(control_.session(), std::memory_order_release);  // the hello's connection
  if (a->segment.client(a->slot) == nullptr) {
    return make_error(Errc::protocol_error, "broker assigned a client slot outside the segment");
  }
  a->prefaulted = std::make_unique<std::atomic<bool>[]>(a->segment.config().max_subscriptions);
  return a;
}

Result<ControlMessage> ConnectionImpl::say_hello(bool resume) {
  ControlMessage hello;
  hello.type = ControlType::hello;
  hello.a = static_cast<std::uint32_t>(::getpid());
  hello.u64 = process_start_ticks(::getpid()).value_or(0);
  hello.set_s1(options_.name);
  if (resume) {
    const Attachment& a = attachment();
    hello.b = a.slot + 1;
    hello.c = a.epoch;
    hello.u64b = a.segment.id();
  }
  return control_.call(hello, options_.control_timeout);
}

ConnectionImpl::~ConnectionImpl() { (void)close(); }

void ConnectionImpl::lane_claims(const Segment& segment, std::uint32_t subscription, std::uint64_t tail,
                                 std::vector<LaneClaim>& out) {
  out.clear();
  const std::uint32_t marker = subscription + 1;
  const std::uint64_t capacity = segment.config().ring_bytes;
  for (std::uint32_t slot = 0; slot < segment.config().max_clients; ++slot) {
    ClientLayout* client = segment.client(slot);
    bool checked = false, alive = false;
    for (ClaimLane& lane : client->claim_lanes) {
      // [A3a] acquire: pairs with [R3a] (this claim's word, or the writer's later 0 or next
      // ring's word, which are release stores too: whatever the writer did before them is
      // visible). With the caller's acquire load of the tail ([A3] via [R3]), a writer inside a
      // claim below `tail` shows that claim here, or a later word.
      const std::uint64_t word = lane.claim.load(std::memory_order_acquire);
      if (lane_ring_plus1(word) != marker) continue;
      const std::uint64_t position = lane_position(word, tail);
      // A claim at or past the caller's tail came after its look; one more than a ring behind it
      // is a position rebuilt from a claim past the tail (2^43 bytes later).
      if (position >= tail || tail - position > capacity) continue;
      // Seqlock read ([R3a]): the end, then the word again; a word that changed (other than its
      // won bit, or our own skipped mark) means the writer moved on: its claim here is done.
      std::uint64_t end = lane.claim_end.load(std::memory_order_relaxed);
      std::atomic_thread_fence(std::memory_order_acquire);
      const std::uint64_t again = lane.claim.load(std::memory_order_relaxed);
      if ((again | kLaneWonBit | kLaneSkippedBit) != (word | kLaneWonBit | kLaneSkippedBit)) continue;
      if (end <= position || end - position > capacity) end = 0;  // scribbled: not an end we trust
      if (!checked) {
        // Relaxed: the broker wrote the identity before it made the slot live ([R8]); a torn
        // or reused identity only makes a dead writer look alive until its lane is cleared.
        alive = process_alive(static_cast<pid_t>(client->pid.load(std::memory_order_relaxed)),
                              client->start_ticks.load(std::memory_order_relaxed));
        checked = true;
      }
      out.push_back({position, end, &lane, again, alive, lane_won(again)});
    }
  }
  std::sort(out.begin(), out.end(), [](const LaneClaim& x, const LaneClaim& y) { return x.position < y.position; });
}

// ------------------------------------------------------------------------------------ publish

ThreadPublisher* ConnectionImpl::thread_publisher(Attachment& a) {
  for (auto& tp : t_publishers) {
    if (tp->connection_serial == a.serial) return tp.get();
  }
  return thread_publisher_slow(a);
}

[[gnu::noinline]] ThreadPublisher* ConnectionImpl::thread_publisher_slow(Attachment& a) {
  // First publish from this thread on this attachment: sweep entries of closed connections
  // and left attachments, then take a free lane.
  std::erase_if(t_publishers, [](const auto& tp) { return tp->connection_alive.expired(); });
  std::uint32_t used = a.lanes->in_use.load(std::memory_order_relaxed);
  for (;;) {
    if (used == 0xFFFF'FFFFu) return nullptr;
    const std::uint32_t lane = static_cast<std::uint32_t>(__builtin_ctz(~used));
    if (a.lanes->in_use.compare_exchange_weak(used, used | (1u << lane), std::memory_order_acq_rel)) {
      auto tp = std::make_unique<ThreadPublisher>();
      tp->connection_serial = a.serial;
      tp->attachment = &a;
      tp->connection_alive = a.alive_token;
      tp->connection = weak_from_this();
      tp->lanes = a.lanes;
      tp->lane = lane;
      tp->claim_lane = &a.segment.client(a.slot)->claim_lanes[lane];
      tp->last_subject.reserve(kPatternBytes);
      t_publishers.push_back(std::move(tp));
      return t_publishers.back().get();
    }
  }
}

Result<std::uint32_t> ConnectionImpl::acquire_route(const Attachment& attachment_of_caller, std::string_view subject,
                                                    std::uint64_t& generation) {
  {
    std::lock_guard lock(routes_mutex_);
    if (auto it = held_routes_.find(subject); it != held_routes_.end()) {
      if (it->second.owner != &attachment_of_caller) return superseded_error();  // re-attached meanwhile
      ++it->second.users;
      generation = it->second.generation;
      return it->second.index;
    }
  }
  // Not under routes_mutex_: the call may wait for a reconnect, and the supervisor needs that
  // lock to finish one (retake_route_references()).
  ControlMessage request;
  request.type = ControlType::resolve;
  request.set_s1(subject);
  Attachment* used = nullptr;
  auto reply = control_call(request, &used);
  if (!reply) return std::move(reply).error();
  std::unique_lock lock(routes_mutex_);
  if (used != &attachment_of_caller || used != &attachment()) {
    // We re-attached meanwhile: the index is not one of the caller's segment. Give it back.
    lock.unlock();
    ControlMessage release;
    release.type = ControlType::release;
    release.a = reply->a;
    (void)control_.call(release, options_.control_timeout, used->session.load(std::memory_order_acquire));
    return superseded_error();
  }
  if (used->segment.route(reply->a) == nullptr) {
    return make_error(Errc::protocol_error, "broker returned a route outside the segment");
  }
  if (auto it = held_routes_.find(subject); it != held_routes_.end()) {
    // Another thread resolved it meanwhile: use its entry and give our extra reference back.
    ++it->second.users;
    generation = it->second.generation;
    const std::uint32_t index = it->second.index;
    lock.unlock();
    ControlMessage release;
    release.type = ControlType::release;
    release.a = reply->a;
    (void)control_.call(release, options_.control_timeout, used->session.load(std::memory_order_acquire));
    return index;
  }
  generation = next_route_generation_++;
  held_routes_.emplace(std::string(subject), HeldRoute{reply->a, 1, generation, used});
  return reply->a;
}

void ConnectionImpl::release_route_ref(const std::string& subject, std::uint64_t generation) {
  std::lock_guard lock(routes_mutex_);
  auto it = held_routes_.find(subject);
  if (it == held_routes_.end() || it->second.generation != generation) return;  // already forgotten
  if (--it->second.users != 0) return;
  ControlMessage request;
  request.type = ControlType::release;
  request.a = it->second.index;
  const std::uint64_t session = it->second.owner->session.load(std::memory_order_acquire);
  held_routes_.erase(it);
  // No waiting for a reconnect: a broker that comes back re-counts references from scratch.
  // Only to the broker that gave us the reference: a later one never heard of it.
  if (!closed()) (void)control_.call(request, options_.control_timeout, session);
}

void ConnectionImpl::release_thread_routes(ThreadPublisher& tp) {
  for (auto& [subject, route] : tp.routes) release_route_ref(subject, route.held_generation);
  tp.routes.clear();
  tp.last_route = nullptr;
}

Result<LocalRoute*> ConnectionImpl::route_for(ThreadPublisher& tp, std::string_view subject) {
  if (tp.last_route != nullptr && subject == tp.last_subject) return tp.last_route;
  if (auto it = tp.routes.find(subject); it != tp.routes.end()) {
    tp.last_subject.assign(subject);
    tp.last_route = &it->second;
    return tp.last_route;
  }
  // Slow path, once per (thread, subject): validate, ask the broker, copy the route.
  if (auto st = validate_publish_subject(subject); !st) return std::move(st).error();
  // A thread that publishes to ever new subjects must not grow its cache (nor the broker's
  // route table) without bound: past the limit, each new subject pushes an old one out.
  if (tp.routes.size() >= kMaxThreadRoutes) {
    auto victim = tp.routes.begin();
    release_route_ref(victim->first, victim->second.held_generation);
    tp.routes.erase(victim);
    tp.last_route = nullptr;
  }
  // The broker may take a route back (table full) between our resolve and our copy; then ask
  // again. Only a table thrashing far beyond its size keeps that up.
  for (int attempt = 0; attempt < kResolveAttempts; ++attempt) {
    std::uint64_t generation = 0;
    auto index = acquire_route(*tp.attachment, subject, generation);
    if (!index) return std::move(index).error();
    const Segment& segment = tp.attachment->segment;
    LocalRoute route;
    route.held_generation = generation;
    route.layout = segment.route(index.value());
    route.version = 1;  // never even: forces the first refresh
    // Queue groups start at a random member (as NATS does), then rotate.
    route.next_member = static_cast<std::uint32_t>(monotonic_ns() ^ (reinterpret_cast<std::uintptr_t>(&tp) >> 4));
    route.targets.reserve(segment.config().max_fanout);
    route.scratch.reserve(segment.config().max_fanout);
    auto [it, inserted] = tp.routes.emplace(std::string(subject), std::move(route));
    auto valid = refresh(*tp.attachment, it->second, subject);
    if (valid && valid.value()) {
      tp.last_subject.assign(subject);
      tp.last_route = &it->second;
      return tp.last_route;
    }
    tp.routes.erase(it);
    tp.last_route = nullptr;
    if (!valid) {
      release_route_ref(std::string(subject), generation);
      return std::move(valid).error();
    }
    forget_route(subject, generation);
  }
  return make_error(Errc::resource_exhausted,
                    "the route of '" + std::string(subject) +
                        "' was taken back before it could be used, again and again: far more subjects are in "
                        "flight than the broker's route table holds (busd --max-routes)");
}


void ConnectionImpl::forget_route(std::string_view subject, std::uint64_t generation) {
  // The broker took the route back (and our reference with it): every cache of it is stale.
  std::lock_guard lock(routes_mutex_);
  if (auto it = held_routes_.find(subject); it != held_routes_.end() && it->second.generation == generation) {
    held_routes_.erase(it);
  }
}

Result<bool> ConnectionImpl::refresh(Attachment& a, LocalRoute& route, std::string_view subject) {
  const Segment& segment = a.segment;
  RouteLayout* layout = route.layout;
  RouteTarget* targets = segment.route_targets(layout);
  const std::uint32_t max_fanout = segment.config().max_fanout;
  // Seqlock read. The broker never holds the version odd for more than a few microseconds; a
  // version stuck odd means the broker died mid-write, so the wait is bounded.
  const std::uint64_t deadline = monotonic_ns() + 1'000'000'000ull;
  struct Raw {
    std::uint32_t subscription, incarnation, group, kind;
  };
  std::vector<LocalRoute::Target>& next = route.scratch;  // reserved once: no allocation here
  for (;;) {
    // [A6] acquire: pairs with [R6]; the targets read below are at least this version's.
    const std::uint32_t v1 = layout->version.load(std::memory_order_acquire);
    if ((v1 & 1u) == 0) {
      std::uint32_t count = layout->target_count.load(std::memory_order_relaxed);
      if (count > max_fanout) count = 0;  // torn or scribbled; the version check decides
      next.clear();
      bool valid = true;
      bool has_stream = false;
      Raw stream_target{};
      for (std::uint32_t i = 0; i < count; ++i) {
        // Relaxed: inside the seqlock; validated by the version re-check below.
        const Raw t{targets[i].subscription.load(std::memory_order_relaxed),
                    targets[i].incarnation.load(std::memory_order_relaxed),
                    targets[i].group.load(std::memory_order_relaxed),
                    targets[i].kind.load(std::memory_order_relaxed)};
        if (t.kind == static_cast<std::uint32_t>(TargetKind::stream)) {
          has_stream = true;  // attached below, once the copy is known to be consistent
          stream_target = t;
          continue;
        }
        if (t.kind == static_cast<std::uint32_t>(TargetKind::bridge)) {
          if (t.group == 0) continue;  // only a queue group has a proxy
          LocalRoute::Target proxy;
          proxy.subscription = t.subscription;
          proxy.group = t.group;
          proxy.proxy = true;
          next.push_back(proxy);
          continue;
        }
        // Kinds a newer broker may add are not ours to deliver to.
        if (t.kind != static_cast<std::uint32_t>(TargetKind::ring)) continue;
        LocalRoute::Target target;
        target.ring = segment.ring(t.subscription);
        if (target.ring.control() == nullptr) {
          valid = false;
          break;
        }
        target.subscription = t.subscription;
        target.group = t.group;
        target.cursor.incarnation = t.incarnation;
        next.push_back(target);
      }
      // Is this slot still the route of our subject? (The broker may have freed or reused it.)
      // Relaxed atomic loads: the broker may be rewriting these under the seqlock right now.
      const std::uint32_t subject_len = load_length(layout->subject_len);
      const bool ours = layout->state.load(std::memory_order_relaxed) == static_cast<std::uint32_t>(RouteState::active) &&
                        subject_len == subject.size() && subject_len < sizeof layout->subject &&
                        text_equals(layout->subject, sizeof layout->subject, subject);
      // Acquire fence: the loads above complete before the version is re-read.
      std::atomic_thread_fence(std::memory_order_acquire);
      if (layout->version.load(std::memory_order_relaxed) == v1) {
        if (!ours) return false;
        if (!valid) {
          return make_error(Errc::segment_corrupt, "route lists a subscription outside the segment");
        }
        // The stream's journal, attached the first time this process meets it (the control
        // path: a publish on a known route never comes here). nullptr: the stream was removed
        // meanwhile and the broker is rewriting this route.
        StreamHandle* stream = nullptr;
        route.stream_error.reset();
        if (has_stream) {
          auto handle = stream_handle(a, stream_target.subscription, stream_target.incarnation);
          if (handle) {
            stream = handle.value();
          } else {
            // The rings still get what is published; only storing fails, and says so.
            route.stream_error = std::make_shared<const Error>(std::move(handle).error());
            route.stream_retry_ns = monotonic_ns() + 1'000'000'000ull;
          }
        }
        route.stream = stream;
        // A fresh head for every ring: a cached head must never be ahead of the real one.
        for (auto& target : next) {
          if (target.proxy) continue;
          if (!a.prefaulted[target.subscription].exchange(true, std::memory_order_relaxed)) {
            segment.prefault_ring(target.subscription);  // once per ring per process
          }
          target.cursor.cached_head =
              target.ring.control()->head_position.load(std::memory_order_acquire);  // [A2]
        }
        route.targets.swap(next);
        route.version = v1;
        return true;
      }
    }
    if (monotonic_ns() > deadline) {
      return make_error(Errc::broker_gone, "route stayed locked by the broker for a second");
    }
    std::this_thread::yield();
  }
}

bool ConnectionImpl::deliver(LocalRoute::Target& target, ThreadPublisher& tp, std::uint32_t bytes,
                             std::string_view subject, std::string_view reply,
                             std::string_view headers, std::string_view data, bool last_chance) {
  // try_claim() names this ring and the claim's position in our lane before its CAS ([R3a]).
  Claim claim;
  const ClaimStatus status =
      target.ring.try_claim(target.cursor, bytes, *tp.claim_lane, lane_tag(target.subscription), claim);
  if (status != ClaimStatus::claimed) {
    if (status == ClaimStatus::full && last_chance) {
      // Relaxed: a statistic; the consumer reads it as a count only. (An RMW: every publisher
      // into this ring may write it, but only when the ring is full, off the fast path.)
      target.ring.control()->dropped_msgs.fetch_add(1, std::memory_order_relaxed);
      if (counting_) tp.count_undelivered();
    }
    return false;
  }
#ifdef BUS_TEST_HOOKS
  if (test_pause_after_claim_ == 1) [[unlikely]] test_pause();
#endif
  RecordFields fields;
  fields.subject_len = static_cast<std::uint8_t>(subject.size());
  fields.reply_len = static_cast<std::uint8_t>(reply.size());
  fields.producer_client = static_cast<std::uint16_t>(tp.attachment->slot);
  fields.producer_epoch = tp.attachment->epoch;
  fields.origin = origin_;
  fields.headers_len = static_cast<std::uint32_t>(headers.size());
  fields.payload_len = static_cast<std::uint32_t>(data.size());
  MpscRing::begin_write(claim, fields);
#ifdef BUS_TEST_HOOKS
  if (test_pause_after_claim_ == 2) [[unlikely]] test_pause();
#endif
  char* out = reinterpret_cast<char*>(MpscRing::body(claim));
  std::memcpy(out, subject.data(), subject.size());
  out += subject.size();
  if (!reply.empty()) std::memcpy(out, reply.data(), reply.size());
  out += reply.size();
  if (!headers.empty()) std::memcpy(out, headers.data(), headers.size());
  out += headers.size();
  if (!data.empty()) std::memcpy(out, data.data(), data.size());
#ifdef BUS_TEST_HOOKS
  if (test_pause_after_claim_ == 3) [[unlikely]] test_pause();
#endif
  if (!MpscRing::commit(claim, *tp.claim_lane)) [[unlikely]] {
    abandoned(target, tp, last_chance);
    return false;
  }
  if (claim.consumer_sleeping) futex_wake_all(target.ring.futex_word());
  return true;
}

#ifdef BUS_TEST_HOOKS
void ConnectionImpl::test_pause() noexcept {
  test_pause_after_claim_ = 0;  // once: a test that resumes us wants the rest to flow
  ::raise(SIGSTOP);
}
#endif

void ConnectionImpl::abandoned(LocalRoute::Target& target, ThreadPublisher& tp, bool last_chance) noexcept {
  // We stalled past the subscriber's unblock timeout and it skipped our claim: the message is
  // lost for that subscriber, and counted (relaxed: a statistic). A queue group's next member
  // may still take it: then it is not undelivered.
  target.ring.control()->abandoned_msgs.fetch_add(1, std::memory_order_relaxed);
  if (counting_ && last_chance) tp.count_undelivered();
}

void ConnectionImpl::note_pending_requests(std::size_t n) noexcept {
  // Relaxed: a statistic; the inbox's lock orders its writers.
  if (ClientLayout* slot = segment().client(attachment().slot)) {
    slot->pending_requests.store(static_cast<std::uint32_t>(n), std::memory_order_relaxed);
  }
}

void ConnectionAccess::set_counting(const Connection& c, bool on) noexcept { c.impl_->set_counting(on); }

Result<std::size_t> ConnectionImpl::publish(std::string_view subject, std::string_view reply,
                                            std::string_view headers, std::string_view data, PubAck* ack,
                                            std::string_view shown_subject, const DeliveryScope* scope) {
  // What subscribers see as the subject: the routing subject, unless the caller delivers a
  // message under its own (a consumer's delivery on a deliver subject or inbox).
  const std::string_view label = shown_subject.empty() ? subject : shown_subject;
  if (closed_.load(std::memory_order_relaxed)) return make_error(Errc::closed, "connection is closed");
  if (subject.size() > kSystemPrefix.size() && subject[0] == '$' && !system_subjects_ &&
      subject.compare(0, kSystemPrefix.size(), kSystemPrefix) == 0) {
    return make_error(Errc::permission_denied, "subject '" + std::string(subject) +
                                                   "': $SYS subjects carry the broker's system events; clients may "
                                                   "subscribe to them, not publish");
  }
  Attachment& a = attachment();
  // A broker that could not adopt our segment replaced it: nothing we write here is read. The
  // supervisor attaches to the new one (client/reconnect.cpp); until then we say so.
  if (a.segment.superseded()) [[unlikely]] return superseded_error();
  const std::uint64_t max_payload = a.segment.config().max_payload;
  if (headers.size() + data.size() > max_payload) {
    return make_error(Errc::payload_too_large,
                      "message of " + std::to_string(headers.size() + data.size()) +
                          " bytes exceeds the bus's max_payload of " + std::to_string(max_payload) + " bytes");
  }
  if (!reply.empty()) {
    if (auto st = validate_publish_subject(reply); !st) return std::move(st).error();
  }
  ThreadPublisher* tp = thread_publisher(a);
  if (tp == nullptr) {
    return make_error(Errc::resource_exhausted, "more than 32 threads publish on one connection");
  }
  // close() must not let the broker reclaim our slot (lanes, rings) while this thread is still
  // writing: it sets closed_, then waits for every busy flag to drop. Dekker's pattern with an
  // asymmetric fence: this side pays a compiler barrier, close() a process-wide membarrier.
  auto& busy = tp->lanes->busy[tp->lane].flag;
  busy.store(1, std::memory_order_relaxed);  // own flag, single writer
  light_barrier();                           // [F1] pairs with heavy_barrier() in close()
  struct Idle {
    std::atomic<std::uint32_t>& flag;
    // Release: our shared-memory writes are done before close() sees the lane idle.
    ~Idle() { flag.store(0, std::memory_order_release); }
  } idle{busy};
  if (closed_.load(std::memory_order_relaxed)) return make_error(Errc::closed, "connection is closed");
  // Addressed subjects (a reply to an inbox, an acknowledgement to the consumer engine) go
  // straight to the ring they name; anything else, or an address that no longer holds, is routed.
  if (subject.size() > kInboxPrefix.size() && subject[0] == kInboxPrefix[0] &&
      subject.compare(0, kInboxPrefix.size(), kInboxPrefix) == 0) {
    if (const auto address = parse_inbox_address(subject);
        address && try_deliver_direct(*tp, *address, /*exact_incarnation=*/false, label, reply, headers, data)) {
      if (counting_) tp->count_published(headers.size() + data.size());
      if (a.segment.superseded(std::memory_order_seq_cst)) [[unlikely]] return superseded_error();  // [SC2]
      return std::size_t{1};
    }
  } else if (subject.size() > kAckPrefix.size() && subject[0] == kAckPrefix[0] &&
             subject.compare(0, kAckPrefix.size(), kAckPrefix) == 0) {
    if (const auto address = parse_ack_address(subject);
        address && try_deliver_direct(*tp, *address, /*exact_incarnation=*/true, label, reply, headers, data)) {
      if (counting_) tp->count_published(headers.size() + data.size());
      if (a.segment.superseded(std::memory_order_seq_cst)) [[unlikely]] return superseded_error();  // [SC2]
      return std::size_t{1};
    }
  }
  LocalRoute* route = current_route_fast(*tp, subject);
  if (route == nullptr) [[unlikely]] {
    auto found = current_route_slow(a, *tp, subject);
    if (!found) return std::move(found).error();
    route = found.value();
  }
  // A scoped publish (the bridge's) leaves out the stream unless it reaches plain targets.
  const bool to_plain = scope == nullptr || scope->plain;
  StreamHandle* const stream = to_plain ? route->stream : nullptr;
  if (stream != nullptr && over_stream_size(*stream, headers.size() + data.size())) [[unlikely]] {
    return stream_size_error(*stream, headers.size() + data.size());
  }
  const auto bytes = static_cast<std::uint32_t>(
      record_bytes(label.size(), reply.size(), headers.size(), data.size()));
  auto& targets = route->targets;
  const std::size_t count = targets.size();
  std::size_t n = count;  // what this publish reached (a scoped one counts below)
  std::size_t i = 0;
  while (i < count && targets[i].group == 0) {
    if (to_plain) deliver(targets[i], *tp, bytes, label, reply, headers, data);
    ++i;
  }
  if (scope != nullptr) [[unlikely]] n = to_plain ? i : 0;
  // Queue groups: one member each. Start round-robin at a rotating member and take the first
  // that accepts (skipping full and stale rings); drop for the group only if all refuse.
  while (i < count) {
    std::size_t end = i;
    while (end < count && targets[end].group == targets[i].group) ++end;
    if (scope != nullptr) [[unlikely]] {
      if (scope->group.empty() || !subscription_in_group(a.segment, targets[i].subscription, scope->group)) {
        i = end;
        continue;
      }
      ++n;
      while (i < end && targets[i].proxy) ++i;  // the bridge brings NATS's pick: a member here
      if (i == end) continue;
    } else if (targets[i].proxy) {
      i = end;  // NATS picks the member (the bridge exports it); none of ours takes it here
      continue;
    }
    const std::size_t members = end - i;
    const std::size_t first = route->next_member++ % members;
    for (std::size_t k = 0; k < members; ++k) {
      if (deliver(targets[i + (first + k) % members], *tp, bytes, label, reply, headers, data,
                  /*last_chance=*/k + 1 == members)) {
        break;
      }
    }
    i = end;
  }
  if (counting_) tp->count_published(headers.size() + data.size());
  // Release: pairs with the broker's acquire scan in claimed_by_live_client(); all our record
  // bytes are written before the broker may see the lane empty and recycle a ring.
  tp->claim_lane->claim.store(0, std::memory_order_release);
  // [SC2] seq_cst, after our claim CASes (seq_cst): a subscriber that left this segment after it
  // saw it superseded read a tail without our claim only if this load sees superseded too
  // (SubscriptionImpl::leave_superseded_locked). Then what we wrote may never be read: say so.
  if (a.segment.superseded(std::memory_order_seq_cst)) [[unlikely]] return superseded_error();
  if (stream == nullptr) [[likely]] {
    if (route->stream_error && to_plain) {
      return make_error(route->stream_error->code, "delivered to " + std::to_string(n) +
                                                        " subscription(s) but not stored: " + route->stream_error->message);
    }
    return n;
  }
  // A stream captures the subject: the journal append is ours too (client/streams.cpp).
  bool duplicate = false;
  auto sequence = store(*stream, subject, headers, data, &duplicate);
  if (!sequence) return std::move(sequence).error();
  if (!reply.empty()) {
    // As JetStream answers a core request to a stream's subject: the acknowledgement, as JSON.
    nlohmann::json j{{"stream", stream->name}, {"seq", sequence.value()}};
    if (duplicate) j["duplicate"] = true;
    (void)publish(reply, {}, {}, stream::json_text(j));
  }
  if (ack != nullptr) {
    ack->stream = stream->name;  // only when asked: stream_publish()
    ack->sequence = sequence.value();
    ack->duplicate = duplicate;
  }
  return n + 1;
}

bool subscription_in_group(const Segment& segment, std::uint32_t index, std::string_view group) noexcept {
  SubscriptionLayout* slot = segment.subscription(index);
  if (slot == nullptr) return false;
  // Relaxed: the broker rewrites the slot only after the route stopped naming it ([R6]).
  return load_length(slot->group_len) == group.size() && text_equals(slot->group, sizeof slot->group, group);
}

LocalRoute* ConnectionImpl::current_route_fast(ThreadPublisher& tp, std::string_view subject) noexcept {
  LocalRoute* route = tp.last_route;
  if (route == nullptr || subject != tp.last_subject || route->stream_error) return nullptr;
  // [A6] acquire: pairs with [R6]; one shared load per publish tells whether the route changed.
  return route->layout->version.load(std::memory_order_acquire) == route->version ? route : nullptr;
}

[[gnu::noinline]] Result<LocalRoute*> ConnectionImpl::current_route_slow(Attachment& a, ThreadPublisher& tp,
                                                                         std::string_view subject) {
  auto found = route_for(tp, subject);  // route_for and refresh use tp's attachment
  if (!found) return std::move(found).error();
  LocalRoute* route = found.value();
  // [A6] acquire: as in current_route_fast().
  if (route->layout->version.load(std::memory_order_acquire) != route->version ||
      (route->stream_error && monotonic_ns() > route->stream_retry_ns)) [[unlikely]] {
    auto valid = refresh(a, *route, subject);
    if (!valid) return std::move(valid).error();
    if (!valid.value()) {
      // The broker took the route back (its table was full): resolve the subject again.
      const std::uint64_t generation = route->held_generation;
      tp.routes.erase(tp.routes.find(subject));
      tp.last_route = nullptr;
      forget_route(subject, generation);
      auto again = route_for(tp, subject);
      if (!again) return std::move(again).error();
      route = again.value();
    }
  }
  return route;
}

Result<std::size_t> ConnectionImpl::interest(std::string_view subject) {
  if (closed_.load(std::memory_order_relaxed)) return make_error(Errc::closed, "connection is closed");
  Attachment& a = attachment();
  if (a.segment.superseded()) [[unlikely]] return superseded_error();
  ThreadPublisher* tp = thread_publisher(a);
  if (tp == nullptr) return make_error(Errc::resource_exhausted, "more than 32 threads publish on one connection");
  // As publish(): close() waits for this lane before the broker may reclaim our routes.
  auto& busy = tp->lanes->busy[tp->lane].flag;
  busy.store(1, std::memory_order_relaxed);
  light_barrier();  // [F1]
  struct Idle {
    std::atomic<std::uint32_t>& flag;
    ~Idle() { flag.store(0, std::memory_order_release); }
  } idle{busy};
  if (closed_.load(std::memory_order_relaxed)) return make_error(Errc::closed, "connection is closed");
  auto route = current_route_slow(a, *tp, subject);
  if (!route) return std::move(route).error();
  return route.value()->targets.size();
}

Error ConnectionImpl::superseded_error() {
  return make_error(Errc::broker_gone,
                    "the bus was restarted with a new segment; this message may not have been delivered (re-attaching)");
}

bool ConnectionImpl::try_deliver_direct(ThreadPublisher& tp, const InboxAddress& to, bool exact_incarnation,
                                        std::string_view label, std::string_view reply, std::string_view headers,
                                        std::string_view data) {
  const InboxAddress* address = &to;
  const Segment& segment = tp.attachment->segment;
  SubscriptionLayout* layout = segment.subscription(address->ring);
  if (layout == nullptr) return false;
  // Acquire: pairs with the broker's release of `active` after it wrote the pattern.
  if (layout->state.load(std::memory_order_acquire) != static_cast<std::uint32_t>(SubscriptionState::active)) {
    return false;
  }
  // An acknowledgement to a ring that is not the addressed one any more (the engine
  // resubscribed) is routed instead, to whoever subscribes now. Relaxed: the claim re-checks.
  if (exact_incarnation && layout->incarnation.load(std::memory_order_relaxed) != address->incarnation) return false;
  // The ring must be exactly the address's: pattern "_INBOX.<random>.>" or "$JS.ACK.>".
  // Relaxed atomic loads (shm/shared_text.hpp): the broker may be reassigning the slot.
  const std::uint32_t len = load_length(layout->pattern_len);
  if (len != address->pattern_prefix.size() + 1 || len >= sizeof layout->pattern ||
      !text_equals(layout->pattern, sizeof layout->pattern, address->pattern_prefix) ||
      std::atomic_ref<char>(layout->pattern[len - 1]).load(std::memory_order_relaxed) != '>') {
    return false;
  }
  LocalRoute::Target target;
  target.ring = segment.ring(address->ring);
  target.subscription = address->ring;
  // A stale incarnation (the requester left) makes the claim fail as `stale`: nothing delivered.
  target.cursor.incarnation = address->incarnation;
  // [A2] acquire: a head that is never ahead of the real one.
  target.cursor.cached_head = layout->head_position.load(std::memory_order_acquire);
  const auto bytes = static_cast<std::uint32_t>(record_bytes(label.size(), reply.size(), headers.size(), data.size()));
  deliver(target, tp, bytes, label, reply, headers, data);
  tp.claim_lane->claim.store(0, std::memory_order_release);  // as at the end of publish()
  return true;
}

bool ConnectionImpl::broker_alive() const noexcept {
  if (closed()) return false;
  // The broker stamps its heartbeat every 100 ms; CLOCK_MONOTONIC is the same in every process.
  const SegmentHeader* header = segment().header();
  const std::uint64_t beat = header->broker_heartbeat_ns.load(std::memory_order_relaxed);
  const std::uint64_t now = monotonic_ns();
  // Relaxed: the broker's identity, rewritten only when a broker adopts the segment.
  return beat + 1'500'000'000ull > now &&
         process_alive(static_cast<pid_t>(header->broker_pid.load(std::memory_order_relaxed)),
                       header->broker_start_ticks.load(std::memory_order_relaxed));
}

// ----------------------------------------------------------------------------- request/reply

Result<Message> ConnectionImpl::request(std::string_view subject, std::string_view data,
                                        std::string_view headers, std::chrono::nanoseconds timeout) {
  std::shared_ptr<Inbox> inbox;  // keeps it alive past a concurrent close()
  {
    std::lock_guard lock(inbox_mutex_);
    if (closed()) return make_error(Errc::closed, "connection is closed");
    if (!inbox_) {
      auto made = std::make_shared<Inbox>(*this);
      if (auto st = made->open(); !st) return std::move(st).error();
      inbox_ = std::move(made);
    }
    inbox = inbox_;
  }
  return inbox->request(subject, data, headers, timeout);
}

std::future<Result<Message>> ConnectionImpl::request_async(std::string_view subject, std::string_view data,
                                                           std::string_view headers,
                                                           std::chrono::nanoseconds timeout) {
  std::shared_ptr<Inbox> inbox;  // keeps it alive past a concurrent close()
  {
    std::lock_guard lock(inbox_mutex_);
    Status st = closed() ? Status(make_error(Errc::closed, "connection is closed")) : Status();
    if (st && !inbox_) {
      auto made = std::make_shared<Inbox>(*this);
      st = made->open();
      if (st) inbox_ = std::move(made);
    }
    if (!st) {
      std::promise<Result<Message>> failed;
      failed.set_value(std::move(st).error());
      return failed.get_future();
    }
    inbox = inbox_;
  }
  return inbox->request_async(subject, data, headers, timeout);
}

// ------------------------------------------------------------------------------ subscriptions

Result<std::unique_ptr<SubscriptionImpl>> ConnectionImpl::subscribe(std::string_view pattern,
                                                                    const SubscribeOptions& options, bool proxy) {
  if (closed()) return make_error(Errc::closed, "connection is closed");
  if (auto st = validate_subscribe_subject(pattern); !st) return std::move(st).error();
  if (!options.queue_group.empty()) {
    if (auto st = validate_queue_group(options.queue_group); !st) return std::move(st).error();
  }
  ControlMessage request;
  request.type = ControlType::subscribe;
  request.set_s1(pattern);
  request.set_s2(options.queue_group);
  request.c = proxy && !options.queue_group.empty() ? 1 : 0;
  if (segment().superseded()) return superseded_error();
  Attachment* used = nullptr;  // the reply's indices are of this attachment's segment
  auto reply = control_call(request, &used);
  if (!reply) return std::move(reply).error();
  if (used->segment.subscription(reply->a) == nullptr) {
    return make_error(Errc::protocol_error, "broker returned a subscription outside the segment");
  }
  auto sub = std::make_unique<SubscriptionImpl>(shared_from_this(), *used, reply->a, reply->b,
                                                std::string(pattern), options);
  // A proxy names the bridge's view of one segment: after a re-attach the bridge makes new ones.
  if (request.c != 0) sub->set_rebindable(false);
  std::unique_lock lock(subscriptions_mutex_);
  // Re-attached since the reply: that re-attach's resubscribe() may have gone through the list
  // before we are on it. The supervisor goes through it again.
  if (used != &attachment()) request_resubscribe();
  // close() sets closed_ before it takes this lock to detach every listed subscription: a
  // subscription that missed that list must not go on reading a ring the broker will recycle.
  if (closed()) {
    lock.unlock();
    sub->detach();
    return make_error(Errc::closed, "connection closed during subscribe");
  }
  subscriptions_.insert(sub.get());
  return sub;
}

Status ConnectionImpl::unsubscribe(const Attachment& owner, std::uint32_t subscription, std::uint32_t incarnation,
                                   bool keep_ring) {
  ControlMessage request;
  request.type = ControlType::unsubscribe;
  request.a = subscription;
  request.b = incarnation;
  request.c = keep_ring ? 1 : 0;
  // No waiting for a broker that is away: the request is kept and sent once we are back
  // (retake_route_references), so unsubscribe() and destructors never block on a restart.
  // Only on the control connection of `owner`'s broker: indices mean nothing to another one.
  auto reply = control_.call(request, options_.control_timeout, owner.session.load(std::memory_order_acquire));
  // (Not a drain's stop-routing step: drain() needs the broker's answer to know where to stop.)
  if (!reply && !keep_ring && reply.error().code == Errc::broker_gone && options_.allow_reconnect && !closed()) {
    std::lock_guard lock(routes_mutex_);
    pending_unsubscribes_.emplace_back(&owner, request);
    return {};
  }
  if (!reply) return std::move(reply).error();
  return {};
}

void ConnectionImpl::forget(SubscriptionImpl* subscription) {
  std::lock_guard lock(subscriptions_mutex_);
  subscriptions_.erase(subscription);
}

Status ConnectionImpl::close() {
  if (closed_.exchange(true, std::memory_order_acq_rel)) return {};
  // [F1] Every publish() that did not see closed_ has its busy flag visible now: wait for them
  // to finish (they never block; a bound in case a thread is stopped in a debugger).
  heavy_barrier();
  const std::uint64_t deadline = monotonic_ns() + 5'000'000'000ull;
  {
    // Every attachment's: a publish racing a re-attach may be on either.
    std::lock_guard lock(attach_mutex_);
    for (auto& attached : attachments_) {
      for (auto& lane : attached->lanes->busy) {
        // Acquire: pairs with the release in publish()'s Idle guard.
        while (lane.flag.load(std::memory_order_acquire) != 0 && monotonic_ns() < deadline) std::this_thread::yield();
      }
    }
  }
  {
    std::lock_guard lock(reconnect_mutex_);
    reconnect_cv_.notify_all();
  }
  std::shared_ptr<Inbox> inbox;
  {
    std::lock_guard lock(inbox_mutex_);
    inbox = std::move(inbox_);
  }
  if (inbox) inbox->close();
  {
    std::lock_guard lock(subscriptions_mutex_);
    for (SubscriptionImpl* sub : subscriptions_) sub->detach();
    subscriptions_.clear();
  }
  // Closing the socket is the goodbye: the broker reclaims the slot, subscriptions and routes.
  // [R9] release, first: the flag tells the broker's disconnect event this was a close, not a
  // death (acquire in monitor/broker_monitor.cpp).
  if (Attachment* a = attached_.load(std::memory_order_acquire); a != nullptr) {
    if (ClientLayout* slot = a->segment.client(a->slot)) slot->goodbye.store(1, std::memory_order_release);
  }
  control_.shut_down();
  {
    std::lock_guard lock(attach_mutex_);
    for (auto& a : attachments_) a->alive_token.reset();
  }
  if (supervisor_.joinable()) {
    if (supervisor_.get_id() == std::this_thread::get_id()) {
      supervisor_.detach();  // close() from a callback: the supervisor returns by itself
    } else {
      supervisor_.join();
    }
  }
  fire_closed_cb();
  return {};
}

}  // namespace bus::detail

// ------------------------------------------------------------------------------ public facade

namespace bus {

Connection::Connection() noexcept = default;
Connection::Connection(Connection&&) noexcept = default;
Connection& Connection::operator=(Connection&&) noexcept = default;
Connection::~Connection() {
  if (impl_) (void)impl_->close();
}

Result<Connection> Connection::connect(std::string_view bus_name, const ConnectOptions& options) {
  auto impl = detail::ConnectionImpl::connect(bus_name, options);
  if (!impl) return std::move(impl).error();
  Connection c;
  c.impl_ = std::move(impl).value();
  return c;
}

Status Connection::publish(std::string_view subject, std::string_view data, std::string_view reply) {
  if (!impl_) return make_error(Errc::closed, "connection is closed");
  auto matched = impl_->publish(subject, reply, {}, data);
  if (!matched) return std::move(matched).error();
  return {};
}

Status Connection::publish(std::string_view subject, std::string_view data, const Headers& headers,
                           std::string_view reply) {
  if (!impl_) return make_error(Errc::closed, "connection is closed");
  auto matched = impl_->publish(subject, reply, headers.encoded(), data);
  if (!matched) return std::move(matched).error();
  return {};
}

Result<Message> Connection::request(std::string_view subject, std::string_view data,
                                    std::chrono::nanoseconds timeout, const Headers* headers) {
  if (!impl_) return make_error(Errc::closed, "connection is closed");
  return impl_->request(subject, data, headers != nullptr ? std::string_view(headers->encoded()) : std::string_view{},
                        timeout);
}

std::future<Result<Message>> Connection::request_async(std::string_view subject, std::string_view data,
                                                       std::chrono::nanoseconds timeout,
                                                       const Headers* headers) {
  if (!impl_) {
    std::promise<Result<Message>> failed;
    failed.set_value(make_error(Errc::closed, "connection is closed"));
    return failed.get_future();
  }
  return impl_->request_async(subject, data,
                              headers != nullptr ? std::string_view(headers->encoded()) : std::string_view{}, timeout);
}

Result<Subscription> Connection::queue_subscribe(std::string_view pattern, std::string_view group,
                                                 const SubscribeOptions& options) {
  if (group.empty()) return make_error(Errc::invalid_argument, "queue group is empty");
  SubscribeOptions with_group = options;
  with_group.queue_group = std::string(group);
  return subscribe(pattern, with_group);
}

Result<Subscription> Connection::queue_subscribe(std::string_view pattern, std::string_view group,
                                                 MessageHandler handler, const SubscribeOptions& options) {
  if (group.empty()) return make_error(Errc::invalid_argument, "queue group is empty");
  SubscribeOptions with_group = options;
  with_group.queue_group = std::string(group);
  return subscribe(pattern, std::move(handler), with_group);
}

Result<Subscription> Connection::subscribe(std::string_view pattern, const SubscribeOptions& options) {
  if (!impl_) return make_error(Errc::closed, "connection is closed");
  auto sub = impl_->subscribe(pattern, options);
  if (!sub) return std::move(sub).error();
  return Subscription(std::move(sub).value());
}

Result<Subscription> Connection::subscribe(std::string_view pattern, MessageHandler handler,
                                           const SubscribeOptions& options) {
  if (!handler) return make_error(Errc::invalid_argument, "handler is empty");
  if (!impl_) return make_error(Errc::closed, "connection is closed");
  auto sub = impl_->subscribe(pattern, options);
  if (!sub) return std::move(sub).error();
  sub.value()->start_dispatch(std::move(handler));
  return Subscription(std::move(sub).value());
}

std::uint64_t Connection::max_payload() const noexcept {
  return impl_ ? impl_->segment().config().max_payload : 0;
}

const std::string& Connection::bus_name() const noexcept {
  static const std::string kEmpty;
  return impl_ ? impl_->bus_name() : kEmpty;
}

bool Connection::connected() const noexcept { return impl_ && impl_->control_connected() && impl_->broker_alive(); }

ConnectionStatus Connection::status() const noexcept {
  if (!impl_) return ConnectionStatus::closed;
  return impl_->status();
}

Status Connection::close() {
  if (!impl_) return {};
  return impl_->close();
}

// ------------------------------------------------------------------------------- responding

Message Message::from(const MessageView& v) {
  Message m{std::string(v.subject), std::string(v.reply), std::string(v.headers), std::string(v.data), {},
            v.imported_by};
  if (v.origin != nullptr) m.origin = v.origin->weak_from_this();
  return m;
}

namespace {
Status respond_via(detail::ConnectionImpl* origin, std::string_view reply, std::string_view headers,
                   std::string_view data) {
  if (reply.empty()) return make_error(Errc::invalid_argument, "message has no reply subject to respond to");
  if (origin == nullptr) return make_error(Errc::closed, "the connection that received the message is closed");
  auto matched = origin->publish(reply, {}, headers, data);
  if (!matched) return std::move(matched).error();
  return {};
}
}  // namespace

Status MessageView::respond(std::string_view response) const { return respond_via(origin, reply, {}, response); }
Status MessageView::respond(std::string_view response, const Headers& response_headers) const {
  return respond_via(origin, reply, response_headers.encoded(), response);
}
Status Message::respond(std::string_view response) const {
  return respond_via(origin.lock().get(), reply, {}, response);
}
Status Message::respond(std::string_view response, const Headers& response_headers) const {
  return respond_via(origin.lock().get(), reply, response_headers.encoded(), response);
}

}  // namespace bus

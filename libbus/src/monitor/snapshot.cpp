// monitor/snapshot.cpp — see snapshot.hpp.
#include "monitor/snapshot.hpp"

#include <sys/stat.h>

#include <cinttypes>
#include <cstdio>
#include <fstream>

#include "bus/stream.hpp"
#include "monitor/accounting.hpp"
#include "monitor/internal_clients.hpp"
#include "os/process.hpp"
#include "shm/shared_text.hpp"

namespace bus::detail::monitor {
namespace {

constexpr auto kRelaxed = std::memory_order_relaxed;

std::string process_name(std::uint32_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/comm");
  std::string name;
  std::getline(in, name);
  return name;
}

/// A NUL-terminated name field of fixed size (the broker writes it before publishing the slot).
std::string fixed_text(char* field, std::size_t capacity) {
  std::size_t len = 0;
  while (len + 1 < capacity && std::atomic_ref<char>(field[len]).load(kRelaxed) != '\0') ++len;
  return load_text(field, capacity, static_cast<std::uint32_t>(len)).value_or("");
}

}  // namespace

std::string server_id_of(const Segment& segment) {
  char id[24];
  std::snprintf(id, sizeof id, "%016" PRIX64, segment.id());
  return id;
}

BusSnapshot take_snapshot(const Segment& segment, const std::string& bus_name) {
  BusSnapshot s;
  const SegmentHeader* h = segment.header();
  const SegmentConfig& config = segment.config();
  s.bus_name = bus_name;
  s.server_id = server_id_of(segment);
  s.now_unix_ns = realtime_ns();
  s.created_unix_ns = h->created_unix_ns;
  s.broker_start_unix_ns = h->totals.broker_start_unix_ns.load(kRelaxed);
  s.broker_pid = h->broker_pid.load(kRelaxed);
  s.broker_epoch = h->broker_epoch.load(kRelaxed);
  const std::uint64_t beat = h->broker_heartbeat_ns.load(kRelaxed);
  const std::uint64_t mono = monotonic_ns();
  s.heartbeat_age_ns = mono > beat ? mono - beat : 0;
  s.broker_alive = process_alive(static_cast<pid_t>(s.broker_pid), h->broker_start_ticks.load(kRelaxed));
  s.layout_major = h->layout_major;
  s.layout_minor = h->layout_minor;
  s.limits.max_clients = config.max_clients;
  s.limits.max_subscriptions = config.max_subscriptions;
  s.limits.max_routes = config.max_routes;
  s.limits.max_fanout = config.max_fanout;
  s.limits.max_streams = config.max_streams;
  s.limits.ring_bytes = config.ring_bytes;
  s.limits.max_payload = config.max_payload;
  s.segment_bytes = segment.size();
  struct stat st {};
  if (::stat(("/dev/shm/" + segment_object_name(bus_name)).c_str(), &st) == 0) {
    s.segment_resident = static_cast<std::uint64_t>(st.st_blocks) * 512;
  }
  for (std::uint32_t i = 0; i < config.max_streams; ++i) {
    const StreamLayout* stream = segment.stream(i);
    if (stream != nullptr && stream->state.load(kRelaxed) == static_cast<std::uint32_t>(StreamSlotState::active)) {
      ++s.streams;
    }
  }

  const BusTotals& totals = h->totals;
  s.total_connections = totals.total_connections.load(kRelaxed);
  s.in_msgs = totals.departed_in_msgs.load(kRelaxed);
  s.in_bytes = totals.departed_in_bytes.load(kRelaxed);
  s.out_msgs = totals.departed_out_msgs.load(kRelaxed);
  s.out_bytes = totals.departed_out_bytes.load(kRelaxed);
  s.dropped_msgs = totals.departed_dropped_msgs.load(kRelaxed);
  s.undelivered_msgs = totals.departed_undelivered_msgs.load(kRelaxed);
  s.slow_consumers = totals.slow_consumers.load(kRelaxed);
  s.events_published = totals.events_published.load(kRelaxed);
  s.http_port = totals.http_port.load(kRelaxed);

  for (std::uint32_t cid = 0; cid < config.max_clients; ++cid) {
    ClientLayout* c = segment.client(cid);
    // Acquire: pairs with the broker's release of `live` after it wrote the identity ([R8]).
    if (c == nullptr || c->state.load(std::memory_order_acquire) != static_cast<std::uint32_t>(ClientState::live)) {
      continue;
    }
    ClientSnapshot cs;
    cs.cid = cid;
    cs.epoch = c->epoch.load(kRelaxed);
    cs.pid = c->pid.load(kRelaxed);
    cs.alive = process_alive(static_cast<pid_t>(cs.pid), c->start_ticks.load(kRelaxed));
    cs.name = fixed_text(c->name, sizeof c->name);
    cs.internal = cs.pid == s.broker_pid && s.broker_alive && is_internal_client_name(cs.name);
    if (cs.alive) cs.process = process_name(cs.pid);
    cs.start_unix_ns = std::atomic_ref<std::uint64_t>(c->connected_unix_ns).load(kRelaxed);
    const PublishTally t = publish_tally(*c);
    cs.in_msgs = t.msgs;
    cs.in_bytes = t.bytes;
    cs.undelivered_msgs = t.undelivered;
    cs.out_msgs = c->closed_out_msgs.load(kRelaxed);
    cs.out_bytes = c->closed_out_bytes.load(kRelaxed);
    cs.dropped_msgs = c->closed_dropped_msgs.load(kRelaxed);
    cs.reconnects = c->reconnects.load(kRelaxed);
    cs.pending_requests = c->pending_requests.load(kRelaxed);
    s.in_msgs += t.msgs;
    s.in_bytes += t.bytes;
    s.undelivered_msgs += t.undelivered;
    s.clients.push_back(std::move(cs));
  }

  for (std::uint32_t sid = 0; sid < config.max_subscriptions; ++sid) {
    SubscriptionLayout* l = segment.subscription(sid);
    if (l == nullptr) continue;
    // Acquire: pairs with the broker's release of `active` after it wrote pattern and owner.
    const std::uint32_t state = l->state.load(std::memory_order_acquire);
    if (state != static_cast<std::uint32_t>(SubscriptionState::active) &&
        state != static_cast<std::uint32_t>(SubscriptionState::quarantined)) {
      continue;
    }
    auto pattern = load_text(l->pattern, sizeof l->pattern, load_length(l->pattern_len));
    auto group = load_text(l->group, sizeof l->group, load_length(l->group_len));
    if (!pattern || !group) {
      ++s.unreadable_slots;
      continue;
    }
    SubscriptionSnapshot ss;
    ss.sid = sid;
    ss.pattern = std::move(*pattern);
    ss.queue_group = std::move(*group);
    ss.draining = state == static_cast<std::uint32_t>(SubscriptionState::quarantined);
    // The broker may be reusing the slot: these only count if `state` (re-read by nobody)
    // held; the atomic_ref loads keep the reads defined meanwhile.
    ss.owner_cid = std::atomic_ref<std::uint32_t>(l->owner_client).load(kRelaxed);
    const std::uint32_t owner_epoch = std::atomic_ref<std::uint32_t>(l->owner_epoch).load(kRelaxed);
    ss.subscribed_unix_ns = l->subscribed_unix_ns.load(kRelaxed);
    ss.delivered_msgs = l->delivered_msgs.load(kRelaxed);
    ss.delivered_bytes = l->delivered_bytes.load(kRelaxed);
    ss.dropped_msgs = l->dropped_msgs.load(kRelaxed);
    ss.abandoned_msgs = l->abandoned_msgs.load(kRelaxed);
    ss.skipped_records = l->skipped_records.load(kRelaxed);
    ss.slow_consumer_marks = l->slow_consumer_marks.load(kRelaxed);
    ss.ring_bytes = config.ring_bytes;
    // Head first: the tail only grows, so tail - head is never below the truth's... except for
    // a removed subscription's tail, moved a lap ahead: capped at the ring.
    const std::uint64_t head = l->head_position.load(kRelaxed);
    const std::uint64_t tail = tail_position(l->tail_word.load(kRelaxed));
    ss.pending_bytes = tail > head ? std::min(tail - head, config.ring_bytes) : 0;
    ss.high_water_bytes = std::min(l->depth_high_water.load(kRelaxed), config.ring_bytes);
    s.out_msgs += ss.delivered_msgs;
    s.out_bytes += ss.delivered_bytes;
    s.dropped_msgs += ss.dropped_msgs + ss.abandoned_msgs;
    for (ClientSnapshot& c : s.clients) {
      if (c.cid != ss.owner_cid || c.epoch != owner_epoch) continue;
      ss.owner_live = true;
      ss.owner_pid = c.pid;
      ss.owner_name = c.name;
      c.out_msgs += ss.delivered_msgs;
      c.out_bytes += ss.delivered_bytes;
      c.dropped_msgs += ss.dropped_msgs + ss.abandoned_msgs;
      if (!ss.draining) ++c.subscriptions;
    }
    s.subscriptions.push_back(std::move(ss));
  }
  return s;
}

std::string duration_text(std::uint64_t ns) {
  // As Go's time.Duration.String(), which NATS prints: truncated to what a person reads.
  const std::uint64_t total_s = ns / 1'000'000'000ull;
  char out[64];
  if (total_s >= 3600) {
    std::snprintf(out, sizeof out, "%" PRIu64 "h%" PRIu64 "m%" PRIu64 "s", total_s / 3600, total_s / 60 % 60,
                  total_s % 60);
  } else if (total_s >= 60) {
    std::snprintf(out, sizeof out, "%" PRIu64 "m%" PRIu64 "s", total_s / 60, total_s % 60);
  } else if (ns >= 1'000'000'000ull) {
    std::snprintf(out, sizeof out, "%.3gs", static_cast<double>(ns) / 1e9);
  } else if (ns >= 1'000'000ull) {
    std::snprintf(out, sizeof out, "%.3gms", static_cast<double>(ns) / 1e6);
  } else if (ns >= 1'000ull) {
    std::snprintf(out, sizeof out, "%.3gus", static_cast<double>(ns) / 1e3);
  } else {
    std::snprintf(out, sizeof out, "%" PRIu64 "ns", ns);
  }
  return out;
}

std::string time_text(std::uint64_t unix_ns) { return bus::rfc3339(static_cast<std::int64_t>(unix_ns)); }

}  // namespace bus::detail::monitor

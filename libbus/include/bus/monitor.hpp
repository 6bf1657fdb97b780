// bus/monitor.hpp — watching a bus: what `bus server`, `bus top` and busd's HTTP port show.
//
//   auto snap = bus::monitor::snapshot("default");     // no broker needed: read from the segment
//   std::puts(bus::monitor::varz_json(*snap).c_str());  // nats-server's /varz document
//
// A snapshot is read from the bus's shared memory through a read-only mapping: it works for
// any user who may read the segment, costs the bus nothing but a cache miss per counter line,
// and still answers when the broker is dead (broker_alive says so). The counters have one
// writer each (docs/monitoring.md says which); under traffic a snapshot is a moment's
// approximation, at rest it is exact. The JSON documents use nats-server's field names.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "bus/result.hpp"

namespace bus::monitor {

struct ClientSnapshot {
  std::uint32_t cid = 0;  // client slot
  std::uint32_t epoch = 0;
  std::uint32_t pid = 0;
  bool alive = false;     // the process named (pid + start time) still runs
  bool internal = false;  // the broker's own (consumer engine, system events)
  std::string name;       // ConnectOptions::name
  std::string process;    // /proc/<pid>/comm
  std::uint64_t start_unix_ns = 0;
  std::uint64_t in_msgs = 0, in_bytes = 0;    // published (NATS: received from the client)
  std::uint64_t out_msgs = 0, out_bytes = 0;  // delivered to its subscriptions (NATS: sent to it)
  std::uint64_t dropped_msgs = 0;             // lost by its subscriptions (full ring, abandoned)
  std::uint64_t undelivered_msgs = 0;         // its publishes some ring refused
  std::uint32_t subscriptions = 0;
  std::uint32_t reconnects = 0;
  std::uint32_t pending_requests = 0;
};

struct SubscriptionSnapshot {
  std::uint32_t sid = 0;  // subscription slot (= ring)
  std::uint32_t owner_cid = 0;
  bool owner_live = false;  // the owning slot still holds the client that subscribed
  std::uint32_t owner_pid = 0;
  std::string owner_name;
  std::string pattern;
  std::string queue_group;
  bool draining = false;  // quarantined: unsubscribed, ring not recycled yet
  std::uint64_t subscribed_unix_ns = 0;
  std::uint64_t delivered_msgs = 0, delivered_bytes = 0;
  std::uint64_t dropped_msgs = 0;    // full ring
  std::uint64_t abandoned_msgs = 0;  // a stalled writer's record skipped under it
  std::uint64_t skipped_records = 0;
  std::uint64_t slow_consumer_marks = 0;
  std::uint64_t pending_bytes = 0;  // in the ring now (claimed, not yet consumed)
  std::uint64_t high_water_bytes = 0;
  std::uint64_t ring_bytes = 0;
};

struct BusSnapshot {
  std::string bus_name;
  std::string server_id;  // the segment's identity, as NATS's server_id
  std::uint64_t now_unix_ns = 0;
  std::uint64_t created_unix_ns = 0;       // the segment
  std::uint64_t broker_start_unix_ns = 0;  // the broker serving it now
  std::uint32_t broker_pid = 0;
  std::uint32_t broker_epoch = 0;  // brokers that have served it (1 = never restarted)
  bool broker_alive = false;
  std::uint64_t heartbeat_age_ns = 0;
  std::uint16_t layout_major = 0, layout_minor = 0;
  /// The segment's sizes (busd's flags).
  struct Limits {
    std::uint32_t max_clients = 0, max_subscriptions = 0, max_routes = 0, max_fanout = 0, max_streams = 0;
    std::uint64_t ring_bytes = 0, max_payload = 0;
  } limits;
  std::uint64_t segment_bytes = 0;     // virtual size
  std::uint64_t segment_resident = 0;  // pages allocated in /dev/shm
  std::uint32_t streams = 0;           // stream slots in use
  std::uint32_t http_port = 0;         // the broker's monitoring port, 0 when none

  // Totals (live tables + BusTotals).
  std::uint64_t total_connections = 0;
  std::uint64_t in_msgs = 0, in_bytes = 0, out_msgs = 0, out_bytes = 0;
  std::uint64_t dropped_msgs = 0, undelivered_msgs = 0, slow_consumers = 0;
  std::uint64_t events_published = 0;
  std::uint32_t unreadable_slots = 0;  // slots that failed their checks (corruption)

  std::vector<ClientSnapshot> clients;
  std::vector<SubscriptionSnapshot> subscriptions;
};

/// One look at bus `bus_name`. Errc::broker_not_running when it has no segment.
Result<BusSnapshot> snapshot(std::string_view bus_name);

/// nats-server's /varz: identity, sizes, totals (and ours: dropped_msgs, undelivered_msgs, ...).
std::string varz_json(const BusSnapshot& s);

/// Sort keys of /connz and `bus server report connections` (NATS's names): cid, start, subs,
/// msgs_to, msgs_from, bytes_to, bytes_from, uptime, and ours, dropped. Counts sort high first.
struct ConnzOptions {
  std::string sort = "cid";
  std::size_t offset = 0;
  std::size_t limit = 1024;
  bool subs = false;  ///< list each connection's subscriptions
};
/// nats-server's /connz. Errc::invalid_argument for an unknown sort key.
Result<std::string> connz_json(const BusSnapshot& s, const ConnzOptions& options);

/// Sort keys of `bus server report subscriptions`: sid, subject, msgs, bytes, pending, dropped,
/// high_water.
struct SubszOptions {
  bool subs = false;  ///< list the subscriptions (NATS: subs=1)
  std::string sort = "sid";
  std::size_t offset = 0;
  std::size_t limit = 1024;
  std::string test;  ///< a literal subject: only the subscriptions a publish to it reaches
};
/// nats-server's /subsz. Errc::invalid_argument for an unknown sort key or an invalid subject.
Result<std::string> subsz_json(const BusSnapshot& s, const SubszOptions& options);

/// Sorts as /connz and /subsz do (the keys above); false for an unknown key.
bool sort_clients(std::vector<const ClientSnapshot*>& clients, std::string_view key);
bool sort_subscriptions(std::vector<const SubscriptionSnapshot*>& subscriptions, std::string_view key);

/// nats-server's /healthz: {"status":"ok"} while a live broker serves the bus.
std::string healthz_json(const BusSnapshot& s);
bool healthy(const BusSnapshot& s);
/// The Prometheus text format (what busd's /metrics serves).
std::string prometheus_text(const BusSnapshot& s);

/// A bus found on this host (`bus server ls`).
struct BusListing {
  std::string name;
  std::string path;  ///< /dev/shm/bus.<name>
  std::uint64_t size = 0;
  std::uint32_t broker_pid = 0;
  bool broker_alive = false;
  std::uint32_t clients = 0;       ///< client slots in use
  std::uint32_t live_clients = 0;  ///< of which the processes still run
  bool readable = true;            ///< false: not ours to read, or not a bus segment (error says why)
  bool recognised = true;          ///< it has a bus segment's magic (perhaps of another version)
  std::string error;
};
/// Every bus segment in /dev/shm, by name.
std::vector<BusListing> list_buses();
/// What `bus server clean` did with one segment.
struct CleanOutcome {
  std::string name;
  bool removed = false;
  std::string why;  ///< why it was removed or kept
};
/// Removes the segments whose broker is dead and which no live client uses (what a crashed
/// broker leaves in /dev/shm). A segment a live broker serves, or that live clients still map
/// (a restarted broker adopts it), is kept. `dry_run`: only say what would go.
/// `only`: just these buses (default: every bus on the host).
std::vector<CleanOutcome> clean_stale_buses(bool dry_run = false, const std::vector<std::string>& only = {});

}  // namespace bus::monitor

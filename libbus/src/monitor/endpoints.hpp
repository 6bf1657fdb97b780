// monitor/endpoints.hpp — a snapshot as NATS's monitoring documents, and as Prometheus text.
//
// One renderer per endpoint, shared by busd's HTTP port (/varz, /connz, /subsz, /healthz,
// /metrics), by `bus server info|report --json` and by the STATSZ event, so every surface
// reports the same numbers under the same names. Field names are nats-server's (monitor.go)
// where it has the concept; ours are added beside them (docs/monitoring.md lists which).
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include <nlohmann/json.hpp>

#include "bus/stream.hpp"
#include "monitor/snapshot.hpp"

namespace bus::detail::monitor {

/// The library's version (the project's).
const char* bus_version() noexcept;

/// /varz: the bus's identity, sizes and totals.
nlohmann::json varz(const BusSnapshot& s);

/// Sort keys of /connz and `bus server report connections` (NATS's names).
enum class ConnSort { cid, start, subs, msgs_to, msgs_from, bytes_to, bytes_from, dropped, uptime };
std::optional<ConnSort> parse_conn_sort(std::string_view key);
bool client_less(ConnSort sort, const ClientSnapshot& a, const ClientSnapshot& b);
struct ConnzQuery {
  ConnSort sort = ConnSort::cid;
  std::size_t offset = 0;
  std::size_t limit = 1024;
  bool subs = false;  // list each connection's subscriptions
};
/// /connz: one entry per client.
nlohmann::json connz(const BusSnapshot& s, const ConnzQuery& q);

/// Sort keys of `bus server report subscriptions` (and /subsz's list).
enum class SubSort { sid, subject, msgs, bytes, pending, dropped, high_water };
std::optional<SubSort> parse_sub_sort(std::string_view key);
bool sub_less(SubSort sort, const SubscriptionSnapshot& a, const SubscriptionSnapshot& b);
struct SubszQuery {
  bool subs = false;  // list the subscriptions (NATS: subs=1)
  SubSort sort = SubSort::sid;
  std::size_t offset = 0;
  std::size_t limit = 1024;
  std::string test;  // a literal subject: list only the subscriptions it would reach
};
/// /subsz: subscription counts, optionally the list; `test` picks those that match a subject.
nlohmann::json subsz(const BusSnapshot& s, const SubszQuery& q);

/// /jsz: the streams' totals (JetStream's names); `details`: each stream's config and state
/// (NATS: streams=true), under account_details as nats-server nests them.
nlohmann::json jsz(const BusSnapshot& s, const std::vector<StreamInfo>& streams, bool details);

/// /healthz: {"status":"ok"} while a live broker serves the bus, else "unavailable" and why.
/// (healthy() is bus::monitor::healthy, defined with it.)
nlohmann::json healthz(const BusSnapshot& s);

/// /metrics: Prometheus text exposition format 0.0.4 (bus_* families, labelled per client and
/// per subscription).
std::string prometheus(const BusSnapshot& s);

}  // namespace bus::detail::monitor

// monitor/endpoints.cpp — see endpoints.hpp.
#include "monitor/endpoints.hpp"

#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <fstream>
#include <functional>
#include <sstream>

#include "subject/subject.hpp"

#ifndef BUS_VERSION_STRING
#define BUS_VERSION_STRING "unknown"
#endif

namespace bus::detail::monitor {
namespace {

using nlohmann::json;

std::uint64_t uptime_ns(const BusSnapshot& s, std::uint64_t since) {
  return s.now_unix_ns > since ? s.now_unix_ns - since : 0;
}

std::size_t live_connections(const BusSnapshot& s) {
  return static_cast<std::size_t>(
      std::count_if(s.clients.begin(), s.clients.end(), [](const ClientSnapshot& c) { return !c.internal; }));
}

std::size_t active_subscriptions(const BusSnapshot& s) {
  return static_cast<std::size_t>(std::count_if(s.subscriptions.begin(), s.subscriptions.end(),
                                                [](const SubscriptionSnapshot& x) { return !x.draining; }));
}

/// Resident set of a process in bytes (VmRSS), 0 when unknown.
std::uint64_t resident_bytes(std::uint32_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("VmRSS:", 0) == 0) return std::strtoull(line.c_str() + 6, nullptr, 10) * 1024;
  }
  return 0;
}

json subscription_json(const SubscriptionSnapshot& x) {
  json j{{"sid", x.sid},
         {"subject", x.pattern},
         {"cid", x.owner_cid},
         {"msgs", x.delivered_msgs},
         {"bytes", x.delivered_bytes},
         {"dropped_msgs", x.dropped_msgs},
         {"abandoned_msgs", x.abandoned_msgs},
         {"skipped_records", x.skipped_records},
         {"slow_consumer_marks", x.slow_consumer_marks},
         {"pending_bytes", x.pending_bytes},
         {"high_water_bytes", x.high_water_bytes},
         {"ring_bytes", x.ring_bytes},
         {"subscribed", time_text(x.subscribed_unix_ns)}};
  if (!x.queue_group.empty()) j["qgroup"] = x.queue_group;
  if (x.owner_live) {
    j["pid"] = x.owner_pid;
    if (!x.owner_name.empty()) j["name"] = x.owner_name;
  }
  if (x.draining) j["draining"] = true;
  return j;
}

template <typename T, typename Less>
std::vector<const T*> page(const std::vector<T>& all, Less less, std::size_t offset, std::size_t limit,
                           const std::function<bool(const T&)>& keep = nullptr) {
  std::vector<const T*> v;
  for (const T& x : all) {
    if (!keep || keep(x)) v.push_back(&x);
  }
  std::stable_sort(v.begin(), v.end(), [&](const T* a, const T* b) { return less(*a, *b); });
  if (offset >= v.size()) return {};
  v.erase(v.begin(), v.begin() + static_cast<std::ptrdiff_t>(offset));
  if (v.size() > limit) v.resize(limit);
  return v;
}

/// Prometheus label value: backslash, double quote and newline escaped.
std::string label(std::string_view v) {
  std::string out;
  for (char c : v) {
    if (c == '\\' || c == '"') {
      out += '\\';
      out += c;
    } else if (c == '\n') {
      out += "\\n";
    } else {
      out += c;
    }
  }
  return out;
}

class Exposition {
 public:
  void family(const char* name, const char* type, const char* help) {
    out_ << "# HELP " << name << ' ' << help << "\n# TYPE " << name << ' ' << type << '\n';
  }
  void sample(const char* name, const std::string& labels, std::uint64_t value) {
    out_ << name;
    if (!labels.empty()) out_ << '{' << labels << '}';
    out_ << ' ' << value << '\n';
  }
  void sample(const char* name, const std::string& labels, double value) {
    char text[64];
    std::snprintf(text, sizeof text, "%.3f", value);  // Unix times: to the millisecond
    out_ << name;
    if (!labels.empty()) out_ << '{' << labels << '}';
    out_ << ' ' << text << '\n';
  }
  std::string text() const { return out_.str(); }

 private:
  std::ostringstream out_;
};

}  // namespace

const char* bus_version() noexcept { return BUS_VERSION_STRING; }

json varz(const BusSnapshot& s) {
  const std::uint64_t up = uptime_ns(s, s.broker_start_unix_ns);
  json j{{"server_id", s.server_id},
         {"server_name", s.bus_name},
         {"version", bus_version()},
         {"proto", 1},
         {"host", "shm"},
         {"http_port", s.http_port},
         {"start", time_text(s.broker_start_unix_ns)},
         {"now", time_text(s.now_unix_ns)},
         {"uptime", duration_text(up)},
         {"mem", s.broker_alive ? resident_bytes(s.broker_pid) : 0},
         {"cores", ::sysconf(_SC_NPROCESSORS_ONLN)},
         {"max_connections", s.limits.max_clients},
         {"max_subscriptions", s.limits.max_subscriptions},
         {"max_payload", s.limits.max_payload},
         {"connections", live_connections(s)},
         {"total_connections", s.total_connections},
         {"subscriptions", active_subscriptions(s)},
         {"in_msgs", s.in_msgs},
         {"out_msgs", s.out_msgs},
         {"in_bytes", s.in_bytes},
         {"out_bytes", s.out_bytes},
         {"slow_consumers", s.slow_consumers},
         // Ours (docs/monitoring.md):
         {"dropped_msgs", s.dropped_msgs},
         {"undelivered_msgs", s.undelivered_msgs},
         {"broker_pid", s.broker_pid},
         {"broker_alive", s.broker_alive},
         {"broker_restarts", s.broker_epoch > 0 ? s.broker_epoch - 1 : 0},
         {"uptime_ns", up},
         {"created", time_text(s.created_unix_ns)},
         {"streams", s.streams},
         {"events_published", s.events_published},
         {"unreadable_slots", s.unreadable_slots},
         {"segment",
          {{"name", "/dev/shm/" + segment_object_name(s.bus_name)},
           {"layout", std::to_string(s.layout_major) + "." + std::to_string(s.layout_minor)},
           {"size", s.segment_bytes},
           {"resident", s.segment_resident},
           {"ring_bytes", s.limits.ring_bytes},
           {"max_routes", s.limits.max_routes},
           {"max_fanout", s.limits.max_fanout},
           {"max_streams", s.limits.max_streams}}}};
  return j;
}

std::optional<ConnSort> parse_conn_sort(std::string_view key) {
  static const std::pair<std::string_view, ConnSort> keys[] = {
      {"cid", ConnSort::cid},           {"start", ConnSort::start},         {"subs", ConnSort::subs},
      {"msgs_to", ConnSort::msgs_to},   {"msgs_from", ConnSort::msgs_from}, {"bytes_to", ConnSort::bytes_to},
      {"bytes_from", ConnSort::bytes_from}, {"dropped", ConnSort::dropped}, {"uptime", ConnSort::uptime}};
  for (const auto& [name, sort] : keys) {
    if (name == key) return sort;
  }
  return std::nullopt;
}

bool client_less(ConnSort sort, const ClientSnapshot& a, const ClientSnapshot& b) {
  // Descending for counts (NATS sorts msgs_to etc. high first), ascending for cid and start.
  switch (sort) {
    case ConnSort::cid: return a.cid < b.cid;
    case ConnSort::start: return a.start_unix_ns < b.start_unix_ns;
    case ConnSort::uptime: return a.start_unix_ns < b.start_unix_ns;
    case ConnSort::subs: return a.subscriptions > b.subscriptions;
    case ConnSort::msgs_to: return a.out_msgs > b.out_msgs;
    case ConnSort::msgs_from: return a.in_msgs > b.in_msgs;
    case ConnSort::bytes_to: return a.out_bytes > b.out_bytes;
    case ConnSort::bytes_from: return a.in_bytes > b.in_bytes;
    case ConnSort::dropped: return a.dropped_msgs + a.undelivered_msgs > b.dropped_msgs + b.undelivered_msgs;
  }
  return false;
}

json connz(const BusSnapshot& s, const ConnzQuery& q) {
  auto less = [&](const ClientSnapshot& a, const ClientSnapshot& b) { return client_less(q.sort, a, b); };
  json list = json::array();
  for (const ClientSnapshot* c : page(s.clients, less, q.offset, q.limit)) {
    json j{{"cid", c->cid},
           {"kind", c->internal ? "System" : "Client"},
           {"type", "shm"},
           {"pid", c->pid},
           {"process", c->process},
           {"name", c->name},
           {"lang", "C++"},
           {"version", bus_version()},
           {"start", time_text(c->start_unix_ns)},
           {"uptime", duration_text(uptime_ns(s, c->start_unix_ns))},
           {"in_msgs", c->in_msgs},
           {"out_msgs", c->out_msgs},
           {"in_bytes", c->in_bytes},
           {"out_bytes", c->out_bytes},
           {"subscriptions", c->subscriptions},
           {"dropped_msgs", c->dropped_msgs},
           {"undelivered_msgs", c->undelivered_msgs},
           {"pending_requests", c->pending_requests},
           {"reconnects", c->reconnects},
           {"alive", c->alive}};
    if (q.subs) {
      json subs = json::array();
      for (const SubscriptionSnapshot& x : s.subscriptions) {
        if (x.owner_live && x.owner_cid == c->cid && !x.draining) subs.push_back(x.pattern);
      }
      j["subscriptions_list"] = std::move(subs);
    }
    list.push_back(std::move(j));
  }
  return json{{"server_id", s.server_id},
              {"now", time_text(s.now_unix_ns)},
              {"num_connections", list.size()},
              {"total", s.clients.size()},
              {"offset", q.offset},
              {"limit", q.limit},
              {"connections", std::move(list)}};
}

std::optional<SubSort> parse_sub_sort(std::string_view key) {
  static const std::pair<std::string_view, SubSort> keys[] = {
      {"sid", SubSort::sid},         {"subject", SubSort::subject}, {"msgs", SubSort::msgs},
      {"bytes", SubSort::bytes},     {"pending", SubSort::pending}, {"dropped", SubSort::dropped},
      {"high_water", SubSort::high_water}};
  for (const auto& [name, sort] : keys) {
    if (name == key) return sort;
  }
  return std::nullopt;
}

bool sub_less(SubSort sort, const SubscriptionSnapshot& a, const SubscriptionSnapshot& b) {
  switch (sort) {
    case SubSort::sid: return a.sid < b.sid;
    case SubSort::subject: return a.pattern < b.pattern;
    case SubSort::msgs: return a.delivered_msgs > b.delivered_msgs;
    case SubSort::bytes: return a.delivered_bytes > b.delivered_bytes;
    case SubSort::pending: return a.pending_bytes > b.pending_bytes;
    case SubSort::dropped: return a.dropped_msgs + a.abandoned_msgs > b.dropped_msgs + b.abandoned_msgs;
    case SubSort::high_water: return a.high_water_bytes > b.high_water_bytes;
  }
  return false;
}

json subsz(const BusSnapshot& s, const SubszQuery& q) {
  std::function<bool(const SubscriptionSnapshot&)> keep = [&](const SubscriptionSnapshot& x) {
    return !x.draining && (q.test.empty() || subject_matches(x.pattern, q.test));
  };
  auto less = [&](const SubscriptionSnapshot& a, const SubscriptionSnapshot& b) { return sub_less(q.sort, a, b); };
  std::size_t matching = 0;
  std::size_t groups = 0;
  for (const SubscriptionSnapshot& x : s.subscriptions) {
    if (!keep(x)) continue;
    ++matching;
    if (!x.queue_group.empty()) ++groups;
  }
  json j{{"server_id", s.server_id},
         {"now", time_text(s.now_unix_ns)},
         {"num_subscriptions", active_subscriptions(s)},
         {"total", matching},
         {"max_fanout", s.limits.max_fanout},
         {"queue_subscriptions", groups},
         {"offset", q.offset},
         {"limit", q.limit}};
  if (!q.test.empty()) j["test"] = q.test;
  if (q.subs || !q.test.empty()) {
    json list = json::array();
    for (const SubscriptionSnapshot* x : page(s.subscriptions, less, q.offset, q.limit, keep)) {
      list.push_back(subscription_json(*x));
    }
    j["subscriptions_list"] = std::move(list);
  }
  return j;
}

json jsz(const BusSnapshot& s, const std::vector<StreamInfo>& streams, bool details) {
  std::uint64_t messages = 0, bytes = 0, memory = 0, storage = 0, consumers = 0;
  json detail = json::array();
  for (const StreamInfo& info : streams) {
    messages += info.state.messages;
    bytes += info.state.bytes;
    (info.config.storage == Storage::memory ? memory : storage) += info.state.bytes;
    consumers += info.state.consumer_count;
    if (details) detail.push_back(json::parse(to_json(info)));
  }
  json j{{"server_id", s.server_id},
         {"now", time_text(s.now_unix_ns)},
         {"streams", streams.size()},
         {"consumers", consumers},
         {"messages", messages},
         {"bytes", bytes},
         {"memory", memory},
         {"storage", storage},
         {"config", {{"max_streams", s.limits.max_streams}}}};
  if (details) j["account_details"] = json::array({json{{"name", "$G"}, {"stream_detail", std::move(detail)}}});
  return j;
}

}  // namespace bus::detail::monitor

bool bus::monitor::healthy(const BusSnapshot& s) {
  return s.broker_alive && s.heartbeat_age_ns < 1'500'000'000ull;
}

namespace bus::detail::monitor {

json healthz(const BusSnapshot& s) {
  if (healthy(s)) return json{{"status", "ok"}};
  return json{{"status", "unavailable"},
              {"error", s.broker_alive ? "the broker has not stamped its heartbeat for " +
                                             duration_text(s.heartbeat_age_ns)
                                       : "the broker (pid " + std::to_string(s.broker_pid) + ") is not running"}};
}

std::string prometheus(const BusSnapshot& s) {
  Exposition e;
  const std::string bus = "bus=\"" + label(s.bus_name) + "\"";
  e.family("bus_info", "gauge", "Identity of the bus: always 1.");
  e.sample("bus_info", bus + ",server_id=\"" + s.server_id + "\",version=\"" + label(bus_version()) + "\"",
           std::uint64_t{1});
  e.family("bus_up", "gauge", "1 while a live broker serves the bus.");
  e.sample("bus_up", bus, std::uint64_t{healthy(s) ? 1u : 0u});
  e.family("bus_start_time_seconds", "gauge", "When the serving broker started (Unix time).");
  e.sample("bus_start_time_seconds", bus, static_cast<double>(s.broker_start_unix_ns) / 1e9);
  e.family("bus_connections", "gauge", "Clients attached now (the broker's own left out).");
  e.sample("bus_connections", bus, std::uint64_t{live_connections(s)});
  e.family("bus_connections_total", "counter", "Clients ever admitted.");
  e.sample("bus_connections_total", bus, s.total_connections);
  e.family("bus_subscriptions", "gauge", "Subscriptions now.");
  e.sample("bus_subscriptions", bus, std::uint64_t{active_subscriptions(s)});
  const std::pair<const char*, std::uint64_t> totals[] = {
      {"bus_in_msgs_total", s.in_msgs},           {"bus_in_bytes_total", s.in_bytes},
      {"bus_out_msgs_total", s.out_msgs},         {"bus_out_bytes_total", s.out_bytes},
      {"bus_dropped_msgs_total", s.dropped_msgs}, {"bus_undelivered_msgs_total", s.undelivered_msgs},
      {"bus_slow_consumers_total", s.slow_consumers}};
  const char* totals_help[] = {"Messages published.", "Bytes (headers + payload) published.",
                               "Messages delivered to subscriptions.", "Bytes delivered to subscriptions.",
                               "Messages lost by subscriptions (full ring, abandoned writer).",
                               "Deliveries publishers saw refused.", "Slow-consumer episodes."};
  for (std::size_t i = 0; i < std::size(totals); ++i) {
    e.family(totals[i].first, "counter", totals_help[i]);
    e.sample(totals[i].first, bus, totals[i].second);
  }
  e.family("bus_segment_bytes", "gauge", "Size of the shared-memory segment (virtual).");
  e.sample("bus_segment_bytes", bus, s.segment_bytes);
  e.family("bus_segment_resident_bytes", "gauge", "Pages of the segment allocated in /dev/shm.");
  e.sample("bus_segment_resident_bytes", bus, s.segment_resident);

  auto client_labels = [&](const ClientSnapshot& c) {
    return bus + ",cid=\"" + std::to_string(c.cid) + "\",name=\"" + label(c.name) + "\",pid=\"" +
           std::to_string(c.pid) + "\"";
  };
  const std::pair<const char*, std::uint64_t ClientSnapshot::*> client_counters[] = {
      {"bus_client_in_msgs_total", &ClientSnapshot::in_msgs},
      {"bus_client_in_bytes_total", &ClientSnapshot::in_bytes},
      {"bus_client_out_msgs_total", &ClientSnapshot::out_msgs},
      {"bus_client_out_bytes_total", &ClientSnapshot::out_bytes},
      {"bus_client_dropped_msgs_total", &ClientSnapshot::dropped_msgs},
      {"bus_client_undelivered_msgs_total", &ClientSnapshot::undelivered_msgs}};
  for (const auto& [name, field] : client_counters) {
    e.family(name, "counter", "Per client: as the bus-wide family of the same name.");
    for (const ClientSnapshot& c : s.clients) e.sample(name, client_labels(c), c.*field);
  }

  auto sub_labels = [&](const SubscriptionSnapshot& x) {
    return bus + ",sid=\"" + std::to_string(x.sid) + "\",subject=\"" + label(x.pattern) + "\",queue=\"" +
           label(x.queue_group) + "\",cid=\"" + std::to_string(x.owner_cid) + "\"";
  };
  const std::tuple<const char*, const char*, std::uint64_t SubscriptionSnapshot::*> sub_series[] = {
      {"bus_subscription_msgs_total", "counter", &SubscriptionSnapshot::delivered_msgs},
      {"bus_subscription_bytes_total", "counter", &SubscriptionSnapshot::delivered_bytes},
      {"bus_subscription_dropped_msgs_total", "counter", &SubscriptionSnapshot::dropped_msgs},
      {"bus_subscription_abandoned_msgs_total", "counter", &SubscriptionSnapshot::abandoned_msgs},
      {"bus_subscription_slow_consumer_total", "counter", &SubscriptionSnapshot::slow_consumer_marks},
      {"bus_subscription_pending_bytes", "gauge", &SubscriptionSnapshot::pending_bytes},
      {"bus_subscription_high_water_bytes", "gauge", &SubscriptionSnapshot::high_water_bytes}};
  for (const auto& [name, type, field] : sub_series) {
    e.family(name, type, "Per subscription (ring).");
    for (const SubscriptionSnapshot& x : s.subscriptions) {
      if (!x.draining) e.sample(name, sub_labels(x), x.*field);
    }
  }
  return e.text();
}

}  // namespace bus::detail::monitor

bool bus::monitor::sort_clients(std::vector<const ClientSnapshot*>& v, std::string_view key) {
  const auto sort = detail::monitor::parse_conn_sort(key);
  if (!sort) return false;
  std::stable_sort(v.begin(), v.end(),
                   [&](const ClientSnapshot* a, const ClientSnapshot* b) { return detail::monitor::client_less(*sort, *a, *b); });
  return true;
}

bool bus::monitor::sort_subscriptions(std::vector<const SubscriptionSnapshot*>& v, std::string_view key) {
  const auto sort = detail::monitor::parse_sub_sort(key);
  if (!sort) return false;
  std::stable_sort(v.begin(), v.end(), [&](const SubscriptionSnapshot* a, const SubscriptionSnapshot* b) {
    return detail::monitor::sub_less(*sort, *a, *b);
  });
  return true;
}

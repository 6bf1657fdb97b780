// monitor_view.cpp — see monitor_view.hpp.
#include "monitor_view.hpp"

#include <algorithm>
#include <cinttypes>
#include <cstdio>
#include <functional>
#include <type_traits>

#include "bus/stream.hpp"
#include "common.hpp"
#include "units.hpp"

#ifndef BUS_VERSION_STRING
#define BUS_VERSION_STRING "unknown"
#endif

namespace bus::cli {
namespace {

using monitor::BusSnapshot;
using monitor::ClientSnapshot;
using monitor::SubscriptionSnapshot;

bool numeric(const std::string& cell) {
  return !cell.empty() && (std::isdigit(static_cast<unsigned char>(cell[0])) || cell == "-");
}

std::string uptime_since(const BusSnapshot& s, std::uint64_t start_ns) {
  const std::uint64_t ns = s.now_unix_ns > start_ns ? s.now_unix_ns - start_ns : 0;
  return tools::format_duration(std::chrono::seconds(ns / 1'000'000'000ull));
}

/// Per-second change of `field` of the entry of `before` that `same` picks, if any.
template <typename T, typename Same>
std::pair<double, bool> rate_of(const std::vector<T>* before, const T& now, double seconds, Same same,
                                std::uint64_t T::*field) {
  if (before == nullptr || seconds <= 0) return {0, false};
  for (const T& b : *before) {
    if (same(b, now)) return {static_cast<double>(now.*field >= b.*field ? now.*field - b.*field : 0) / seconds, true};
  }
  return {static_cast<double>(now.*field) / seconds, true};  // new since: all of it is recent
}

bool same_client(const ClientSnapshot& a, const ClientSnapshot& b) { return a.cid == b.cid && a.epoch == b.epoch; }
bool same_subscription(const SubscriptionSnapshot& a, const SubscriptionSnapshot& b) {
  return a.sid == b.sid && a.subscribed_unix_ns == b.subscribed_unix_ns;
}

template <typename T>
std::vector<const T*> sorted(const std::vector<T>& all, const std::string& sort, std::size_t top,
                             const std::function<bool(const T&)>& keep) {
  std::vector<const T*> v;
  for (const T& x : all) {
    if (keep(x)) v.push_back(&x);
  }
  if constexpr (std::is_same_v<T, ClientSnapshot>) {
    monitor::sort_clients(v, sort);
  } else {
    monitor::sort_subscriptions(v, sort);
  }
  if (top != 0 && v.size() > top) v.resize(top);
  return v;
}

std::string percent(std::uint64_t part, std::uint64_t whole) {
  char out[16];
  std::snprintf(out, sizeof out, "%.0f%%", whole == 0 ? 0.0 : 100.0 * static_cast<double>(part) / static_cast<double>(whole));
  return out;
}

}  // namespace

Table::Table(std::vector<std::string> headers) : headers_(std::move(headers)) {}

void Table::add(std::vector<std::string> row) {
  row.resize(headers_.size());
  rows_.push_back(std::move(row));
}

std::string Table::render() const {
  std::vector<std::size_t> width(headers_.size());
  for (std::size_t c = 0; c < headers_.size(); ++c) {
    width[c] = headers_[c].size();
    for (const auto& row : rows_) width[c] = std::max(width[c], row[c].size());
  }
  std::string out;
  auto line = [&](const std::vector<std::string>& cells, bool header) {
    std::string l;
    for (std::size_t c = 0; c < cells.size(); ++c) {
      const std::string& cell = cells[c];
      const std::size_t pad = width[c] - cell.size();
      const bool right = !header && numeric(cell);
      if (c != 0) l += "  ";
      if (right) l.append(pad, ' ');
      l += cell;
      if (!right && c + 1 != cells.size()) l.append(pad, ' ');
    }
    while (!l.empty() && l.back() == ' ') l.pop_back();
    out += l + "\n";
  };
  line(headers_, true);
  for (const auto& row : rows_) line(row, false);
  return out;
}

std::string grouped(std::uint64_t n) {
  std::string digits = std::to_string(n);
  for (int i = static_cast<int>(digits.size()) - 3; i > 0; i -= 3) digits.insert(static_cast<std::size_t>(i), ",");
  return digits;
}

std::string bytes_text(std::uint64_t n) {
  const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  double v = static_cast<double>(n);
  std::size_t u = 0;
  while (v >= 1024 && u + 1 < std::size(units)) {
    v /= 1024;
    ++u;
  }
  char out[32];
  if (u == 0) {
    std::snprintf(out, sizeof out, "%" PRIu64 " B", n);
  } else {
    std::snprintf(out, sizeof out, "%.1f %s", v, units[u]);
  }
  return out;
}

std::string rate_text(double per_second, bool known) {
  if (!known) return "-";
  char out[32];
  if (per_second >= 1e6) {
    std::snprintf(out, sizeof out, "%.2fM", per_second / 1e6);
  } else if (per_second >= 1e3) {
    std::snprintf(out, sizeof out, "%.1fK", per_second / 1e3);
  } else {
    std::snprintf(out, sizeof out, "%.0f", per_second);
  }
  return out;
}

bool valid_client_sort(const std::string& key) {
  std::vector<const ClientSnapshot*> none;
  return monitor::sort_clients(none, key);
}
bool valid_subscription_sort(const std::string& key) {
  std::vector<const SubscriptionSnapshot*> none;
  return monitor::sort_subscriptions(none, key);
}

Table clients_table(const BusSnapshot& now, const Rates& rates, const std::string& sort, std::size_t top) {
  Table t({"CID", "PID", "PROCESS", "NAME", "SUBS", "IN MSGS", "IN/s", "IN BYTES", "OUT MSGS", "OUT/s", "OUT BYTES",
           "DROPPED", "REFUSED", "PENDING REQ", "UPTIME"});
  const std::vector<ClientSnapshot>* before = rates.before != nullptr ? &rates.before->clients : nullptr;
  for (const ClientSnapshot* c :
       sorted<ClientSnapshot>(now.clients, sort, top, [](const ClientSnapshot&) { return true; })) {
    auto in = rate_of(before, *c, rates.seconds, same_client, &ClientSnapshot::in_msgs);
    auto out = rate_of(before, *c, rates.seconds, same_client, &ClientSnapshot::out_msgs);
    t.add({std::to_string(c->cid), std::to_string(c->pid) + (c->alive ? "" : " (dead)"),
           c->internal ? "busd" : c->process, c->name, std::to_string(c->subscriptions), grouped(c->in_msgs),
           rate_text(in.first, in.second), bytes_text(c->in_bytes), grouped(c->out_msgs),
           rate_text(out.first, out.second), bytes_text(c->out_bytes), grouped(c->dropped_msgs),
           grouped(c->undelivered_msgs), std::to_string(c->pending_requests), uptime_since(now, c->start_unix_ns)});
  }
  return t;
}

Table subscriptions_table(const BusSnapshot& now, const Rates& rates, const std::string& sort, std::size_t top) {
  Table t({"SID", "SUBJECT", "QUEUE", "CID", "PID", "NAME", "MSGS", "MSGS/s", "BYTES", "PENDING", "FILL", "HIGH WATER",
           "DROPPED", "ABANDONED", "SLOW"});
  const std::vector<SubscriptionSnapshot>* before = rates.before != nullptr ? &rates.before->subscriptions : nullptr;
  for (const SubscriptionSnapshot* x : sorted<SubscriptionSnapshot>(
           now.subscriptions, sort, top,
           [](const SubscriptionSnapshot& s) { return !s.draining; })) {
    auto r = rate_of(before, *x, rates.seconds, same_subscription, &SubscriptionSnapshot::delivered_msgs);
    t.add({std::to_string(x->sid), x->pattern, x->queue_group, std::to_string(x->owner_cid),
           x->owner_live ? std::to_string(x->owner_pid) : "-", x->owner_name, grouped(x->delivered_msgs),
           rate_text(r.first, r.second), bytes_text(x->delivered_bytes), bytes_text(x->pending_bytes),
           percent(x->pending_bytes, x->ring_bytes), bytes_text(x->high_water_bytes), grouped(x->dropped_msgs),
           grouped(x->abandoned_msgs), grouped(x->slow_consumer_marks)});
  }
  return t;
}

std::string info_page(const BusSnapshot& s) {
  std::string out = "Server information for bus '" + s.bus_name + "' (" + s.server_id + ")\n\n";
  const std::uint64_t up = s.now_unix_ns > s.broker_start_unix_ns ? s.now_unix_ns - s.broker_start_unix_ns : 0;
  std::size_t connections = 0;
  for (const auto& c : s.clients) connections += c.internal ? 0 : 1;
  std::size_t subscriptions = 0;
  for (const auto& x : s.subscriptions) subscriptions += x.draining ? 0 : 1;
  append_row(out, "Version", BUS_VERSION_STRING);
  append_row(out, "Broker", "pid " + std::to_string(s.broker_pid) + (s.broker_alive ? ", running" : ", NOT RUNNING"));
  append_row(out, "Started", rfc3339(static_cast<std::int64_t>(s.broker_start_unix_ns)));
  append_row(out, "Uptime", tools::format_duration(std::chrono::seconds(up / 1'000'000'000ull)));
  append_row(out, "Broker restarts", std::to_string(s.broker_epoch > 0 ? s.broker_epoch - 1 : 0));
  append_row(out, "Segment", "/dev/shm/bus." + s.bus_name + ", " + bytes_text(s.segment_bytes) + " virtual, " +
                                 bytes_text(s.segment_resident) + " resident (layout " +
                                 std::to_string(s.layout_major) + "." + std::to_string(s.layout_minor) + ")");
  append_row(out, "Limits", std::to_string(s.limits.max_clients) + " clients, " +
                                std::to_string(s.limits.max_subscriptions) + " subscriptions of " +
                                bytes_text(s.limits.ring_bytes) + ", max payload " + bytes_text(s.limits.max_payload));
  append_row(out, "Monitoring", s.http_port != 0 ? "http port " + std::to_string(s.http_port) : "no http port");
  out += "\n";
  append_row(out, "Connections", std::to_string(connections) + " (" + grouped(s.total_connections) + " ever)");
  append_row(out, "Subscriptions", std::to_string(subscriptions));
  append_row(out, "Streams", std::to_string(s.streams));
  append_row(out, "Messages in", grouped(s.in_msgs) + " (" + bytes_text(s.in_bytes) + ")");
  append_row(out, "Messages out", grouped(s.out_msgs) + " (" + bytes_text(s.out_bytes) + ")");
  append_row(out, "Dropped", grouped(s.dropped_msgs) + " (rings full or writers abandoned)");
  append_row(out, "Refused deliveries", grouped(s.undelivered_msgs) + " (as publishers saw them)");
  append_row(out, "Slow consumers", grouped(s.slow_consumers));
  if (s.unreadable_slots != 0) append_row(out, "Unreadable slots", std::to_string(s.unreadable_slots));
  return out;
}

std::string summary_lines(const BusSnapshot& now, const Rates& rates) {
  std::size_t connections = 0;
  for (const auto& c : now.clients) connections += c.internal ? 0 : 1;
  std::size_t subscriptions = 0;
  for (const auto& x : now.subscriptions) subscriptions += x.draining ? 0 : 1;
  const bool known = rates.before != nullptr && rates.seconds > 0;
  auto rate = [&](std::uint64_t BusSnapshot::*field) {
    if (!known) return 0.0;
    const std::uint64_t a = rates.before->*field, b = now.*field;
    return b >= a ? static_cast<double>(b - a) / rates.seconds : 0.0;
  };
  const std::uint64_t up = now.now_unix_ns > now.broker_start_unix_ns ? now.now_unix_ns - now.broker_start_unix_ns : 0;
  std::string out = "bus '" + now.bus_name + "'  broker pid " + std::to_string(now.broker_pid) +
                    (now.broker_alive ? "" : " (NOT RUNNING)") + "  up " +
                    tools::format_duration(std::chrono::seconds(up / 1'000'000'000ull)) + "  " +
                    rfc3339(static_cast<std::int64_t>(now.now_unix_ns)) + "\n";
  out += "connections " + std::to_string(connections) + "  subscriptions " + std::to_string(subscriptions) +
         "  in " + rate_text(rate(&BusSnapshot::in_msgs), known) + " msgs/s  out " +
         rate_text(rate(&BusSnapshot::out_msgs), known) + " msgs/s  dropped " + grouped(now.dropped_msgs) +
         "  slow consumers " + grouped(now.slow_consumers) + "\n";
  return out;
}

}  // namespace bus::cli

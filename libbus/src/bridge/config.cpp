// bridge/config.cpp — checking bridge options, reading a bridge configuration file, and the
// stats document.
//
// The file is JSON (docs/scale-out.md):
//   { "bus": "default", "name": "host1", "nats": ["nats://10.0.0.1:4222", "nats://10.0.0.2:4222"],
//     "prefix": "host1.",                        // for the rules below that give none
//     "export": ["orders.>", {"subject": "metrics.>", "prefix": "m."}],
//     "import": ["orders.>"],
//     "user": "...", "password": "...", "token": "...", "creds": "/etc/bus/bridge.creds",
//     "tls": {"ca": "...", "cert": "...", "key": "..."},
//     "reconnect_wait_ms": 250, "max_reconnects": -1, "reconnect_buffer_bytes": 8388608 }
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "bus/bridge.hpp"
#include "subject/subject.hpp"

namespace bus {
namespace {

Error invalid(const std::string& what) { return Error{Errc::invalid_argument, what}; }

const char* direction_name(BridgeDirection d) { return d == BridgeDirection::export_to_nats ? "export" : "import"; }

bool is_single_token(std::string_view name) {
  if (name.empty() || name.size() > 64) return false;
  for (const char ch : name) {
    if (ch == '.' || ch == '*' || ch == '>' || ch == ' ' || ch == '\t' || ch == '\r' || ch == '\n' ||
        static_cast<unsigned char>(ch) < 0x20) {
      return false;
    }
  }
  return true;
}

}  // namespace

Status validate_bridge_options(const BridgeOptions& o) {
  if (!is_single_token(o.name)) {
    return invalid("bridge name '" + o.name + "' must be one subject token (no '.', '*', '>' or spaces, 1 to 64 bytes)");
  }
  if (o.nats_urls.empty()) return invalid("no NATS server given (--nats URL)");
  for (const auto& url : o.nats_urls) {
    if (url.empty() || url.find_first_of(" \t\r\n") != std::string::npos) return invalid("NATS URL '" + url + "' is not a URL");
  }
  if (o.rules.empty() && o.streams.empty()) {
    return invalid("nothing to bridge: give at least one --export or --import pattern (or a stream)");
  }
  for (const auto& s : o.streams) {
    const std::string js = s.js_stream.empty() ? s.bus_stream : s.js_stream;
    if (!is_single_token(s.bus_stream) || !is_single_token(js)) {
      return invalid("stream link '" + s.bus_stream + "' -> '" + js + "': stream names are one subject token");
    }
    if (!s.prefix.empty() && s.prefix.back() != '.') return invalid("stream link '" + s.bus_stream + "': prefix must end with '.'");
  }
  for (const auto& r : o.rules) {
    const std::string label = std::string(direction_name(r.direction)) + " '" + r.pattern + "'";
    if (auto st = detail::validate_subscribe_subject(r.pattern); !st) return invalid(label + ": " + st.error().message);
    if (!r.prefix.empty()) {
      if (r.prefix.back() != '.') return invalid(label + ": prefix '" + r.prefix + "' must end with '.' (e.g. host1.)");
      if (auto st = detail::validate_publish_subject(r.prefix.substr(0, r.prefix.size() - 1)); !st) {
        return invalid(label + ": prefix '" + r.prefix + "' must be literal tokens followed by '.'");
      }
    }
    if (r.prefix.size() + r.pattern.size() > detail::kMaxSubjectBytes) {
      return invalid(label + ": prefix and pattern exceed " + std::to_string(detail::kMaxSubjectBytes) + " bytes");
    }
  }
  if (o.nats_reconnect_buffer > (1u << 30)) return invalid("reconnect buffer over 1GiB");
  return {};
}

Result<BridgeOptions> load_bridge_config(const std::string& path, BridgeOptions o) {
  std::ifstream in(path);
  if (!in) return invalid("cannot read bridge configuration '" + path + "'");
  std::stringstream text;
  text << in.rdbuf();
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(text.str());
  } catch (const nlohmann::json::exception& e) {
    return invalid(path + ": not JSON: " + e.what());
  }
  if (!j.is_object()) return invalid(path + ": expected an object");
  try {
    static const char* const known[] = {"bus",   "name",  "nats",  "prefix",   "export",        "import",
                                        "user",  "password", "token", "creds",  "tls",           "reconnect_wait_ms",
                                        "max_reconnects", "reconnect_buffer_bytes", "export_streams", "import_streams", "export_all"};
    for (const auto& [key, value] : j.items()) {
      if (std::find(std::begin(known), std::end(known), key) == std::end(known)) {
        return invalid(path + ": unknown field '" + key + "'");
      }
    }
    if (j.contains("bus")) o.bus_name = j.at("bus").get<std::string>();
    if (j.contains("name")) o.name = j.at("name").get<std::string>();
    if (j.contains("nats")) {
      o.nats_urls.clear();
      const auto& n = j.at("nats");
      if (n.is_string()) {
        o.nats_urls.push_back(n.get<std::string>());
      } else {
        for (const auto& u : n) o.nats_urls.push_back(u.get<std::string>());
      }
    }
    const std::string prefix = j.value("prefix", std::string());
    for (const auto& [key, dir] : {std::pair{"export", BridgeDirection::export_to_nats},
                                   std::pair{"import", BridgeDirection::import_from_nats}}) {
      if (!j.contains(key)) continue;
      const auto& list = j.at(key);
      auto add = [&](const nlohmann::json& rule) {
        BridgeRule r;
        r.direction = dir;
        if (rule.is_string()) {
          r.pattern = rule.get<std::string>();
          r.prefix = prefix;
        } else {
          r.pattern = rule.at("subject").get<std::string>();
          r.prefix = rule.value("prefix", prefix);
        }
        o.rules.push_back(std::move(r));
      };
      if (list.is_array()) {
        for (const auto& rule : list) add(rule);
      } else {
        add(list);
      }
    }
    // "export_streams": ["ORDERS", {"stream": "ORDERS", "to": "ORDERS_HOST1", "prefix": "h1."}]
    // "import_streams": ["ORDERS_HOST1", {"stream": "ORDERS_HOST1", "to": "ORDERS"}]
    for (const auto& [key, dir] : {std::pair{"export_streams", BridgeDirection::export_to_nats},
                                   std::pair{"import_streams", BridgeDirection::import_from_nats}}) {
      if (!j.contains(key)) continue;
      for (const auto& link : j.at(key)) {
        BridgeStreamRule r;
        r.direction = dir;
        std::string from, to;
        if (link.is_string()) {
          from = link.get<std::string>();
        } else {
          from = link.at("stream").get<std::string>();
          to = link.value("to", std::string());
        }
        r.prefix = link.is_object() ? link.value("prefix", prefix) : prefix;
        if (dir == BridgeDirection::export_to_nats) {
          r.bus_stream = from;
          r.js_stream = to;
        } else {
          r.js_stream = from;
          r.bus_stream = to.empty() ? from : to;
        }
        o.streams.push_back(std::move(r));
      }
    }
    if (j.contains("export_all")) o.export_all = j.at("export_all").get<bool>();
    if (j.contains("user")) o.user = j.at("user").get<std::string>();
    if (j.contains("password")) o.password = j.at("password").get<std::string>();
    if (j.contains("token")) o.token = j.at("token").get<std::string>();
    if (j.contains("creds")) o.creds_file = j.at("creds").get<std::string>();
    if (j.contains("tls")) {
      const auto& t = j.at("tls");
      o.tls = true;
      o.tls_ca = t.value("ca", std::string());
      o.tls_cert = t.value("cert", std::string());
      o.tls_key = t.value("key", std::string());
    }
    if (j.contains("reconnect_wait_ms")) o.nats_reconnect_wait = std::chrono::milliseconds(j.at("reconnect_wait_ms").get<std::int64_t>());
    if (j.contains("max_reconnects")) o.nats_max_reconnects = j.at("max_reconnects").get<int>();
    if (j.contains("reconnect_buffer_bytes")) o.nats_reconnect_buffer = j.at("reconnect_buffer_bytes").get<std::uint64_t>();
  } catch (const nlohmann::json::exception& e) {
    return invalid(path + ": " + e.what());
  }
  return o;
}

std::string bridge_stats_json(const BridgeStats& s) {
  nlohmann::json rules = nlohmann::json::array();
  for (const auto& r : s.rules) {
    rules.push_back({{"direction", direction_name(r.rule.direction)},
                     {"subject", r.rule.pattern},
                     {"prefix", r.rule.prefix},
                     {"msgs", r.msgs},
                     {"bytes", r.bytes},
                     {"dropped", r.dropped},
                     {"too_large", r.too_large},
                     {"ring_dropped", r.ring_dropped},
                     {"slow_consumer_dropped", r.slow_dropped},
                     {"loops_stopped", r.loops}});
  }
  nlohmann::json streams = nlohmann::json::array();
  for (const auto& st : s.streams) {
    streams.push_back({{"direction", direction_name(st.rule.direction)},
                       {"bus_stream", st.rule.bus_stream},
                       {"js_stream", st.rule.js_stream},
                       {"copied", st.copied},
                       {"duplicates", st.duplicates},
                       {"retried", st.retried},
                       {"skipped", st.skipped},
                       {"pending", st.pending},
                       {"last_error", st.last_error}});
  }
  nlohmann::json j{{"name", s.name},
                   {"bus", s.bus_name},
                   {"nats_connected", s.nats_connected},
                   {"active", s.active},
                   {"nats_url", s.nats_url},
                   {"disconnects", s.disconnects},
                   {"reconnects", s.reconnects},
                   {"nats_subscriptions", s.nats_subscriptions},
                   {"replies", s.replies},
                   {"rules", rules},
                   {"streams", streams}};
  return j.dump();
}

}  // namespace bus

// monitor/http_server.cpp — see http_server.hpp.
#include "monitor/http_server.hpp"

#include <httplib.h>

#include <charconv>

#include "monitor/endpoints.hpp"
#include "monitor/snapshot.hpp"
#include "subject/subject.hpp"

namespace bus::detail::monitor {
namespace {

using nlohmann::json;

void reply_json(httplib::Response& res, const json& j, int status = 200) {
  res.status = status;
  res.set_content(j.dump(2) + "\n", "application/json");
}

void bad_request(httplib::Response& res, const std::string& why) { reply_json(res, json{{"error", why}}, 400); }

/// A non-negative integer query parameter, or `fallback` when absent; nullopt when malformed.
std::optional<std::size_t> size_param(const httplib::Request& req, const char* name, std::size_t fallback) {
  if (!req.has_param(name)) return fallback;
  const std::string v = req.get_param_value(name);
  std::size_t out = 0;
  auto [end, ec] = std::from_chars(v.data(), v.data() + v.size(), out);
  if (ec != std::errc() || end != v.data() + v.size()) return std::nullopt;
  return out;
}

/// NATS's boolean query values: 1, true, detail.
bool flag_param(const httplib::Request& req, const char* name) {
  if (!req.has_param(name)) return false;
  const std::string v = req.get_param_value(name);
  return v == "1" || v == "true" || v == "detail";
}

}  // namespace

HttpServer::HttpServer(std::string bus_name, const Segment& segment, StreamList streams)
    : bus_name_(std::move(bus_name)), segment_(segment), streams_(std::move(streams)) {}

HttpServer::~HttpServer() { stop(); }

void HttpServer::routes() {
  httplib::Server& s = *server_;
  s.Get("/", [](const httplib::Request&, httplib::Response& res) {
    res.set_content(
        "bus monitoring: /varz /connz /subsz /jsz /healthz /metrics (nats-server's endpoints; "
        "docs/monitoring.md)\n",
        "text/plain");
  });
  s.Get("/varz", [this](const httplib::Request&, httplib::Response& res) {
    reply_json(res, varz(take_snapshot(segment_, bus_name_)));
  });
  s.Get("/connz", [this](const httplib::Request& req, httplib::Response& res) {
    ConnzQuery q;
    if (req.has_param("sort")) {
      auto sort = parse_conn_sort(req.get_param_value("sort"));
      if (!sort) return bad_request(res, "unknown sort key '" + req.get_param_value("sort") + "'");
      q.sort = *sort;
    }
    auto offset = size_param(req, "offset", 0);
    auto limit = size_param(req, "limit", 1024);
    if (!offset || !limit) return bad_request(res, "offset and limit must be non-negative integers");
    q.offset = *offset;
    q.limit = *limit;
    q.subs = flag_param(req, "subs");
    reply_json(res, connz(take_snapshot(segment_, bus_name_), q));
  });
  s.Get("/subsz", [this](const httplib::Request& req, httplib::Response& res) {
    SubszQuery q;
    q.subs = flag_param(req, "subs");
    auto offset = size_param(req, "offset", 0);
    auto limit = size_param(req, "limit", 1024);
    if (!offset || !limit) return bad_request(res, "offset and limit must be non-negative integers");
    q.offset = *offset;
    q.limit = *limit;
    if (req.has_param("test")) {
      q.test = req.get_param_value("test");
      if (auto st = validate_publish_subject(q.test); !st) return bad_request(res, st.error().message);
    }
    reply_json(res, subsz(take_snapshot(segment_, bus_name_), q));
  });
  s.Get("/jsz", [this](const httplib::Request& req, httplib::Response& res) {
    auto streams = streams_();
    if (!streams) return reply_json(res, json{{"error", streams.error().message}}, 503);
    reply_json(res, jsz(take_snapshot(segment_, bus_name_), streams.value(),
                        flag_param(req, "streams") || flag_param(req, "accounts")));
  });
  s.Get("/healthz", [this](const httplib::Request&, httplib::Response& res) {
    const BusSnapshot snap = take_snapshot(segment_, bus_name_);
    reply_json(res, healthz(snap), healthy(snap) ? 200 : 503);
  });
  s.Get("/metrics", [this](const httplib::Request&, httplib::Response& res) {
    res.set_content(prometheus(take_snapshot(segment_, bus_name_)), "text/plain; version=0.0.4; charset=utf-8");
  });
}

Result<std::uint16_t> HttpServer::bind(const std::string& host, int port) {
  server_ = std::make_unique<httplib::Server>();
  // Two workers: monitoring is a trickle, and the machine's cores belong to the bus.
  server_->new_task_queue = [] { return new httplib::ThreadPool(2); };
  server_->set_keep_alive_timeout(2);
  routes();
  int bound = port;
  if (port == 0) {
    bound = server_->bind_to_any_port(host);
    if (bound <= 0) return make_error(Errc::io_error, "cannot bind the monitoring port on " + host);
  } else if (!server_->bind_to_port(host, port)) {
    return make_error(Errc::io_error, "cannot bind the monitoring port " + host + ":" + std::to_string(port) +
                                          " (in use, or not an address of this host)");
  }
  return static_cast<std::uint16_t>(bound);
}

Status HttpServer::serve() {
  if (!server_ || thread_.joinable()) return {};
  thread_ = std::thread([this] { server_->listen_after_bind(); });
  // cpp-httplib's stop() does nothing until its listen loop runs: wait for it (bounded), so a
  // broker stopped right after it started cannot hang joining a server that never stops.
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
  while (!server_->is_running()) {
    if (std::chrono::steady_clock::now() > deadline) return make_error(Errc::io_error, "the monitoring port did not start");
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  return {};
}

void HttpServer::stop() {
  if (!server_) return;
  if (thread_.joinable()) {
    // stop() only takes once the listen loop runs (serve() waited for that; if it gave up, the
    // loop has failed and returned, or gets a last bounded chance here).
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
    while (!server_->is_running() && std::chrono::steady_clock::now() < deadline) {
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    server_->stop();
    thread_.join();
  }
}

Result<std::pair<std::string, int>> parse_http_address(const std::string& text) {
  std::string host = "127.0.0.1";
  std::string port_text = text;
  if (const auto colon = text.rfind(':'); colon != std::string::npos) {
    if (colon > 0) host = text.substr(0, colon);
    port_text = text.substr(colon + 1);
  }
  if (host.size() > 2 && host.front() == '[' && host.back() == ']') host = host.substr(1, host.size() - 2);
  int port = -1;
  auto [end, ec] = std::from_chars(port_text.data(), port_text.data() + port_text.size(), port);
  if (ec != std::errc() || end != port_text.data() + port_text.size() || port < 0 || port > 65535) {
    return make_error(Errc::invalid_argument, "monitoring address '" + text + "' is not PORT or HOST:PORT");
  }
  return std::make_pair(host, port);
}

}  // namespace bus::detail::monitor

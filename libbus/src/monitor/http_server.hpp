// monitor/http_server.hpp — busd's monitoring port: nats-server's endpoints over HTTP.
//
//   /varz /connz /subsz /jsz /healthz (JSON, NATS's names)   /metrics (Prometheus text)
//
// cpp-httplib serves it on its own small thread pool; each request takes a fresh snapshot of
// the segment (monitor/snapshot.hpp), so nothing here touches the broker's tables. Loopback by
// default: the port tells anyone who can reach it what runs on the bus.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "bus/result.hpp"
#include "bus/stream.hpp"
#include "shm/segment.hpp"

namespace httplib {
class Server;
}

namespace bus::detail::monitor {

class HttpServer {
 public:
  /// `streams`: the streams' info for /jsz (asked of the broker; thread-safe).
  using StreamList = std::function<Result<std::vector<StreamInfo>>()>;
  HttpServer(std::string bus_name, const Segment& segment, StreamList streams);
  ~HttpServer();  ///< stop()
  HttpServer(const HttpServer&) = delete;
  HttpServer& operator=(const HttpServer&) = delete;

  /// Binds `host`:`port` (0: any free port); returns the port. Connections wait in the
  /// listen queue until serve(): the broker binds first, before it touches any segment, so a
  /// port in use fails it cleanly.
  Result<std::uint16_t> bind(const std::string& host, int port);
  /// Starts answering (the segment is ready), on the server's own threads.
  Status serve();
  /// Stops serving and joins the server's threads (idempotent).
  void stop();

 private:
  void routes();
  std::string bus_name_;
  const Segment& segment_;
  StreamList streams_;
  std::unique_ptr<httplib::Server> server_;
  std::thread thread_;
};

/// Splits busd's --http value: "PORT", ":PORT" or "HOST:PORT" (host defaults to 127.0.0.1).
Result<std::pair<std::string, int>> parse_http_address(const std::string& text);

}  // namespace bus::detail::monitor

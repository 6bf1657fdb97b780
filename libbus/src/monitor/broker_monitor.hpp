// monitor/broker_monitor.hpp — the broker's monitoring: counters, $SYS events, HTTP port.
//
// The broker's event loop tells it what happened, in a handful of calls (below); everything
// slow happens on the monitor's own threads, so the loop never waits on it:
//  * accounting (monitor/accounting.hpp) is done at once, in the loop, on the segment;
//  * events are made in the loop (they read slots the loop is about to clear) and queued; a
//    publisher thread with its own connection to the bus publishes them on $SYS subjects, as
//    nats-server's internal system client does (NATS's subjects and JSON, docs/monitoring.md);
//  * the HTTP port (cpp-httplib, its own threads) answers from snapshots of the segment, and
//    /jsz through the monitor's connection (the loop answers it like any client).
#pragma once

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "bus/connection.hpp"
#include "bus/options.hpp"
#include "bus/result.hpp"
#include "monitor/internal_clients.hpp"
#include "shm/segment.hpp"

namespace bus::detail::monitor {

class HttpServer;

/// Why a client left (the DISCONNECT event's `reason`).
enum class DisconnectReason { closed, died, evicted };
const char* to_string(DisconnectReason r) noexcept;

class BrokerMonitor {
 public:
  using Log = std::function<void(const std::string&)>;
  /// `segment` outlives the monitor (the broker's).
  BrokerMonitor(const BrokerOptions& options, Segment& segment, Log log);
  ~BrokerMonitor();  ///< stops and joins its threads
  BrokerMonitor(const BrokerMonitor&) = delete;
  BrokerMonitor& operator=(const BrokerMonitor&) = delete;

  /// Binds the HTTP port if asked: before the broker touches any segment, so a port in use
  /// fails it cleanly.
  Status bind();
  /// The segment is ready: stamps the broker's start and its port, and starts answering HTTP.
  /// Before the loop runs.
  Status open();
  /// The loop runs: the event publisher connects and the STARTUP event goes out.
  void start();

  // The event loop's calls (its thread only).
  /// Slot `slot` was given to a client (counters zeroed, CONNECT queued).
  void client_connected(std::uint32_t slot);
  /// Slot `slot`'s client is being reclaimed; call before the slot is cleared. `misbehaved`:
  /// the broker dropped it for what it did on the control channel.
  void client_leaving(std::uint32_t slot, bool misbehaved);
  void subscription_made(std::uint32_t index);
  void subscription_recycled(std::uint32_t index);
  /// Every broker tick: slow consumers, the periodic STATSZ.
  void tick();

  /// Asks the publisher to send SHUTDOWN and leave the bus; returns at once.
  void request_stop() noexcept;
  bool finished() const noexcept;

 private:
  struct Event {
    std::string subject;
    std::string body;
  };
  void post(std::string subject, std::string body);
  void publisher_main();
  std::string server_json_text() const;
  std::string server_id() const;

  BrokerOptions options_;
  Segment& segment_;
  Log log_;
  std::uint16_t http_port_ = 0;
  std::string http_host_;
  std::uint64_t event_seq_ = 0;  // the loop's
  std::uint64_t next_statsz_ns_ = 0;
  std::vector<bool> slow_episode_;  // per subscription slot (accounting.hpp)
  std::unique_ptr<HttpServer> http_;

  std::mutex connection_mutex_;        // guards connection_ (the loop never takes it)
  Connection* connection_ = nullptr;  // the publisher's, while it is connected
  std::thread publisher_;
  mutable std::mutex mutex_;  // guards what follows
  std::condition_variable wake_;
  std::deque<Event> queue_;
  bool stopping_ = false;
  bool finished_ = false;
  std::uint64_t events_lost_ = 0;  // the queue was full (no connection yet, or a stuck one)
};

}  // namespace bus::detail::monitor

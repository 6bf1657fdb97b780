// bus/broker.hpp — the broker, embeddable in an application the way nats-server can be.
//
//   auto broker = bus::Broker::start({.bus_name = "demo"});   // runs on its own thread
//   ...
//   broker->stop();                                           // removes the segment
//
// The broker creates the bus's segment, owns the subscription table, resolves wildcard
// subscriptions into per-subject routes, and reclaims everything a dead client held. It is off
// the data path: publishers write straight into subscriber rings. `busd` is this class plus
// flags, logging and signal handling.
#pragma once

#include <memory>
#include <thread>

#include "bus/options.hpp"
#include "bus/result.hpp"

namespace bus {

namespace detail {
class BrokerCore;
}

class Broker {
 public:
  Broker() noexcept;
  Broker(Broker&&) noexcept;
  Broker& operator=(Broker&&) noexcept;
  ~Broker();  ///< stops the broker if still running

  /// Creates the segment and starts serving on a background thread. Fails with
  /// Errc::broker_already_running when another live broker serves the bus; a segment left by a
  /// dead broker is replaced (and logged).
  static Result<Broker> start(const BrokerOptions& options);

  /// Runs the broker on the calling thread until stop() is called from elsewhere (or a signal
  /// handler). Used by busd.
  static Status run(const BrokerOptions& options);

  /// Asks every broker of this process to stop: a run() in progress returns, and one that has
  /// not started yet returns at once when it does (async-signal-safe).
  static void request_stop_all() noexcept;

  /// Stops serving, disconnects clients and removes the segment.
  Status stop();
  bool running() const noexcept;

 private:
  std::unique_ptr<detail::BrokerCore> core_;
  std::unique_ptr<std::thread> thread_;  ///< serves an embedded broker (start())
};

}  // namespace bus

// bus/connection.hpp — a process's attachment to a bus.
//
//   auto conn = bus::Connection::connect("default");          // needs a running broker
//   auto sub  = conn->subscribe("orders.>");                  // pull
//   conn->publish("orders.eu.new", "{...}");                  // no lock, no syscall once routed
//   auto msg  = sub->next(std::chrono::seconds(1));
//
// publish() may be called from any number of threads at once: each thread gets its own route
// cache and claim lane (up to 32 publishing threads per connection). The first publish of a
// subject from a thread asks the broker for its route (one control round trip); afterwards a
// publish reads one shared word to see whether the route changed and writes straight into each
// matching subscriber's ring. Control calls (subscribe, unsubscribe, close) are thread-safe.
#pragma once

#include <chrono>
#include <future>
#include <memory>
#include <string>
#include <string_view>

#include "bus/headers.hpp"
#include "bus/options.hpp"
#include "bus/result.hpp"
#include "bus/stream.hpp"
#include "bus/subscription.hpp"

namespace bus {

namespace detail {
class ConnectionImpl;
struct ConnectionAccess;
}

/// Where a connection stands with its broker (NATS's connection status, reduced).
enum class ConnectionStatus {
  connected,     ///< a broker serves the bus and has our control channel
  reconnecting,  ///< the broker went away; publishes on known routes and subscriptions go on
  closed,        ///< closed by the application, or the broker is gone for good
};

class Connection {
 public:
  Connection() noexcept;
  Connection(Connection&&) noexcept;
  Connection& operator=(Connection&&) noexcept;
  ~Connection();

  /// Attaches to bus `bus_name`. Errc::broker_not_running when no broker serves it.
  static Result<Connection> connect(std::string_view bus_name = "default",
                                    const ConnectOptions& options = {});

  /// Publishes `data` on the literal `subject`, optionally naming a `reply` subject.
  /// Errc::invalid_subject, Errc::payload_too_large, Errc::closed are the failures; a message
  /// that nobody subscribes to is not an error (NATS drops it silently too). A subject a stream
  /// captures is stored too (an error if the stream refuses it); with a `reply`, the stream's
  /// acknowledgement is published there as JSON, as JetStream answers a core request.
  Status publish(std::string_view subject, std::string_view data, std::string_view reply = {});
  /// Publishes with headers (their encoded size counts against max_payload).
  Status publish(std::string_view subject, std::string_view data, const Headers& headers,
                 std::string_view reply = {});

  /// Publishes to a subject a stream captures and returns the stream's acknowledgement once the
  /// message is stored under the stream's sync policy (JetStream's publish; bus/stream.hpp).
  /// The publishing thread appends to the journal itself: no broker hop. Errc::no_responders
  /// when no stream captures `subject` (subscribers, if any, still got it).
  Result<PubAck> stream_publish(std::string_view subject, std::string_view data, const Headers* headers = nullptr);

  /// Sends a request and waits for the first reply (NATS request/reply). Errc::no_responders at
  /// once when no subscription matches `subject`; Errc::timeout when no reply came in time. The
  /// reply travels to this connection's inbox (`_INBOX.<id>.*`, one subscription for all its
  /// requests, made on the first request).
  Result<Message> request(std::string_view subject, std::string_view data,
                          std::chrono::nanoseconds timeout, const Headers* headers = nullptr);
  /// Asynchronous form, for many requests in flight: the future becomes ready with the reply,
  /// Errc::no_responders or Errc::timeout.
  std::future<Result<Message>> request_async(std::string_view subject, std::string_view data,
                                             std::chrono::nanoseconds timeout,
                                             const Headers* headers = nullptr);

  /// Subscribes to `pattern` (`*` one token, `>` the rest) for pulling with next().
  Result<Subscription> subscribe(std::string_view pattern, const SubscribeOptions& options = {});
  /// Subscribes with a handler run on the subscription's own dispatch thread.
  Result<Subscription> subscribe(std::string_view pattern, MessageHandler handler,
                                 const SubscribeOptions& options = {});
  /// Joins queue group `group` on `pattern`: each message matching it goes to one member of
  /// the group (plus every plain subscription). Members may live in different processes.
  Result<Subscription> queue_subscribe(std::string_view pattern, std::string_view group,
                                       const SubscribeOptions& options = {});
  Result<Subscription> queue_subscribe(std::string_view pattern, std::string_view group,
                                       MessageHandler handler, const SubscribeOptions& options = {});

  /// Largest headers + payload this bus accepts.
  std::uint64_t max_payload() const noexcept;
  const std::string& bus_name() const noexcept;
  /// True while a live broker serves this connection (false while reconnecting).
  bool connected() const noexcept;
  ConnectionStatus status() const noexcept;

  /// Releases routes and detaches. Subscriptions still alive stop receiving.
  Status close();

 private:
  friend class Streams;
  friend struct detail::ConnectionAccess;  // the library's own modules (consumers) reach the impl
  std::shared_ptr<detail::ConnectionImpl> impl_;
};

}  // namespace bus

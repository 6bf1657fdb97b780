// bus/subscription.hpp — one subscription and its ring.
//
// A Subscription either pulls (next(), try_poll()) or, when created with a handler, is served by
// its own dispatch thread (as nats.c does for async subscriptions by default). Move-only; the
// destructor unsubscribes. One thread at a time may pull from a Subscription.
//
// Guarantees (NATS semantics): once Connection::subscribe() has returned, every publish that
// starts afterwards, from any process, reaches this subscription unless its ring is full; after
// unsubscribe() returns, nothing more is delivered. A handler may call unsubscribe() on its own
// subscription, but must not destroy it or call drain() on it. Messages from one publisher thread arrive in
// publish order. A full ring drops the message for this subscription only and counts it
// (dropped_count()); the subscription is then a slow consumer.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "bus/message.hpp"
#include "bus/result.hpp"

namespace bus {

namespace detail {
class SubscriptionImpl;
struct SubscriptionAccess;
}

using MessageHandler = std::function<void(const MessageView&)>;

class Subscription {
 public:
  Subscription() noexcept;
  explicit Subscription(std::unique_ptr<detail::SubscriptionImpl> impl) noexcept;
  Subscription(Subscription&&) noexcept;
  Subscription& operator=(Subscription&&) noexcept;
  ~Subscription();

  /// Waits up to `timeout` for the next message. Errc::timeout when none came, Errc::closed
  /// after unsubscribe, Errc::segment_corrupt if the ring failed a bounds check.
  Result<Message> next(std::chrono::nanoseconds timeout);

  /// Hands up to `max` waiting messages to `handler` without copying (the views die when the
  /// handler returns) and without waiting. Returns how many were handled.
  Result<std::size_t> try_poll(const MessageHandler& handler, std::size_t max = 64);

  /// Stops delivery. After it returns, no message is delivered to this subscription.
  Status unsubscribe();
  /// Like unsubscribe(), but first lets a handler-driven subscription finish the messages
  /// already in its ring (NATS drain).
  Status drain();

  const std::string& pattern() const noexcept;
  const std::string& queue_group() const noexcept;
  bool valid() const noexcept { return impl_ != nullptr; }
  /// Messages dropped for this subscription because its ring was full.
  std::uint64_t dropped_count() const noexcept;
  /// Messages handed to the application so far.
  std::uint64_t delivered_count() const noexcept;
  /// Messages skipped because their publisher died or stalled past `unblock_timeout` between
  /// claiming ring space and finishing the message (each is a counted loss, never a torn one).
  std::uint64_t skipped_count() const noexcept;

 private:
  friend struct detail::SubscriptionAccess;  // the library's own view of impl_
  std::unique_ptr<detail::SubscriptionImpl> impl_;
};

}  // namespace bus

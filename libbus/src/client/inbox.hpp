// client/inbox.hpp — request/reply: one inbox subscription per connection, many requests.
//
// The inbox is a subscription to `_INBOX.<random>.>` made on the first request. Request n asks
// for its reply on `_INBOX.<random>.<ring>-<incarnation>.<n>`: the third token names the inbox's
// own ring, so a responder can deliver the reply straight into it (after checking that the ring
// is live, has that incarnation and that its pattern is exactly this inbox's) without asking the
// broker for a route to a subject it will publish to once. A reply subject that does not parse
// as such goes the ordinary way.
//
// Who reads the inbox: a thread waiting in request() reads it itself (no hand-off, so a reply
// costs no thread wake-up); while asynchronous requests are outstanding and no such thread is
// reading, a pump thread does. Either hands each reply to the request it answers.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <future>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <unordered_map>

#include "bus/message.hpp"
#include "bus/options.hpp"
#include "bus/result.hpp"

namespace bus::detail {

class ConnectionImpl;
class SubscriptionImpl;

inline constexpr std::string_view kInboxPrefix = "_INBOX.";

/// Parsed `_INBOX.<random>.<ring>-<incarnation>.<n>`.
struct InboxAddress {
  std::string_view pattern_prefix;  // "_INBOX.<random>." (the inbox's pattern minus ">")
  std::uint32_t ring = 0;
  std::uint32_t incarnation = 0;
};
std::optional<InboxAddress> parse_inbox_address(std::string_view subject) noexcept;
/// A header block whose status line is NATS's 503 (no responders).
bool is_no_responders_status(std::string_view headers) noexcept;

/// Acknowledgements: the consumer engine's ack subjects are JetStream's v2 form,
/// `$JS.ACK.<domain>.<account>.<stream>.<consumer>.<5 numbers>.<token>`, with the address of
/// its `$JS.ACK.>` ring as the token ("<ring>-<incarnation>", hex). A publish to one goes
/// straight to that ring, as a reply to an inbox does: every ack subject is unique, and routing
/// each through the broker would cost a round trip per acknowledgement.
inline constexpr std::string_view kAckPrefix = "$JS.ACK.";
/// Subjects of the broker's system events (monitor/broker_monitor.hpp): only it publishes there.
inline constexpr std::string_view kSystemPrefix = "$SYS.";
/// Parsed from such a subject (pattern_prefix is "$JS.ACK."); nullopt for any other subject.
std::optional<InboxAddress> parse_ack_address(std::string_view subject) noexcept;
/// "<ring>-<incarnation>" in hex: the token that addresses a ring.
std::string ring_address(std::uint32_t ring, std::uint32_t incarnation);

/// A subscription to `_INBOX.<random>.>` whose replies are addressed to its ring
/// (`reply_prefix` + "<n>"). Not rebound on reconnect (the address names this ring).
struct DirectInbox {
  std::unique_ptr<SubscriptionImpl> subscription;
  std::string reply_prefix;  // "_INBOX.<random>.<ring>-<incarnation>."
};
Result<DirectInbox> open_direct_inbox(ConnectionImpl& connection, const SubscribeOptions& options = {});

class Inbox {
 public:
  explicit Inbox(ConnectionImpl& connection);
  ~Inbox();
  Inbox(const Inbox&) = delete;
  Inbox& operator=(const Inbox&) = delete;

  Status open();
  Result<Message> request(std::string_view subject, std::string_view data, std::string_view headers,
                          std::chrono::nanoseconds timeout);
  std::future<Result<Message>> request_async(std::string_view subject, std::string_view data,
                                             std::string_view headers, std::chrono::nanoseconds timeout);
  void close();

 private:
  struct Pending {
    bool done = false;
    bool async = false;
    std::uint64_t deadline_ns = 0;
    std::optional<Result<Message>> result;
    std::promise<Result<Message>> promise;  // async only
  };

  /// Registers a request and publishes it; on failure (incl. no responders) the entry is gone.
  Result<std::shared_ptr<Pending>> send(std::string_view subject, std::string_view data,
                                        std::string_view headers, std::chrono::nanoseconds timeout,
                                        bool async, std::uint64_t& id);
  /// Reads the inbox until `deadline_ns` or one message; caller holds consume_mutex_.
  void read_one_locked(std::uint64_t deadline_ns);
  void complete(std::uint64_t id, Result<Message> result);  // caller holds mutex_
  void expire_async_locked(std::uint64_t now_ns);
  void pump();

  ConnectionImpl& connection_;
  std::string reply_prefix_;  // "_INBOX.<random>.<ring>-<incarnation>."
  std::unique_ptr<SubscriptionImpl> subscription_;

  std::mutex consume_mutex_;  // held by whoever reads the inbox subscription
  std::mutex mutex_;          // pending_, counters, pump state
  std::condition_variable changed_;
  std::unordered_map<std::uint64_t, std::shared_ptr<Pending>> pending_;
  std::uint64_t next_id_ = 1;
  std::size_t async_outstanding_ = 0;
  bool stopping_ = false;
  std::thread pump_;
};

}  // namespace bus::detail

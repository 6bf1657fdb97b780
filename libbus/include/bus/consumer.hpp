// bus/consumer.hpp — consumers: a stream read at least once (or exactly once), tracked by the
// broker, with JetStream's semantics and names (../shared/reference/nats-semantics.md §7;
// docs/streams.md).
//
//   bus::Consumers consumers(*conn);
//   bus::ConsumerConfig config;
//   config.durable_name = "worker";                      // state kept across restarts
//   consumers.add("ORDERS", config);                     // a pull consumer
//   auto batch = consumers.fetch("ORDERS", "worker", 10, std::chrono::seconds(1));
//   for (const auto& m : batch.value()) { ...; bus::ack(m); }
//
// The broker runs every consumer (as nats-server does): it reads the stream's journal, hands
// messages out (into a deliver subject for push consumers, to a fetch's inbox for pull ones),
// tracks what is pending, redelivers after ack_wait (or the backoff), and keeps a durable
// consumer's state in the store beside the stream. The wire is JetStream's: administration is
// request/reply on $JS.API.CONSUMER.*, a delivered message's reply subject is its
// $JS.ACK.<stream>.<consumer>.<delivered>.<stream seq>.<consumer seq>.<time>.<pending> subject,
// and an acknowledgement is a publish to it (+ACK, -NAK, +WPI, +TERM, +NXT).
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "bus/message.hpp"
#include "bus/result.hpp"

namespace bus {

class Connection;
namespace detail {
struct FetchInbox;
}

enum class DeliverPolicy { all, last, new_messages, by_start_sequence, by_start_time, last_per_subject };
enum class AckPolicy { none, all, explicit_ack };
enum class ReplayPolicy { instant, original };

/// JetStream's consumer configuration, by JetStream's names.
struct ConsumerConfig {
  std::string durable_name;  ///< set: durable (its state survives restarts); empty: ephemeral
  std::string name;          ///< ephemeral's name (made up by the broker when empty)
  std::string description;
  DeliverPolicy deliver_policy = DeliverPolicy::all;
  std::uint64_t opt_start_seq = 0;      ///< with by_start_sequence
  std::int64_t opt_start_time_ns = 0;   ///< with by_start_time (CLOCK_REALTIME)
  AckPolicy ack_policy = AckPolicy::explicit_ack;
  std::chrono::nanoseconds ack_wait = std::chrono::seconds(30);
  /// Redelivery delays, one per delivery (the last repeats); replaces ack_wait when set.
  std::vector<std::chrono::nanoseconds> backoff;
  std::int64_t max_deliver = -1;        ///< -1: unlimited
  std::vector<std::string> filter_subjects;  ///< patterns within the stream's; empty: all
  ReplayPolicy replay_policy = ReplayPolicy::instant;
  std::int64_t max_ack_pending = 1000;  ///< -1: unlimited
  std::int64_t max_waiting = 0;         ///< pull requests held at once (0: 512 for pull)
  std::string deliver_subject;          ///< set: a push consumer delivering there
  std::string deliver_group;            ///< push into this queue group on deliver_subject
  /// An ephemeral consumer with no fetch or no interest for this long is removed (JetStream's
  /// default 5 s); 0 keeps a durable forever.
  std::chrono::nanoseconds inactive_threshold{0};
};

struct SequenceInfo {
  std::uint64_t consumer_seq = 0;
  std::uint64_t stream_seq = 0;
  std::int64_t last_active_ns = 0;  ///< CLOCK_REALTIME, 0 if never
};

/// What a consumer stands at (JetStream's ConsumerInfo).
struct ConsumerInfo {
  std::string stream_name;
  std::string name;
  std::int64_t created_ns = 0;
  ConsumerConfig config;
  SequenceInfo delivered;   ///< the last message handed out
  SequenceInfo ack_floor;   ///< everything at or below it is acknowledged
  std::uint64_t num_ack_pending = 0;   ///< delivered, not acknowledged yet
  std::uint64_t num_redelivered = 0;   ///< pending messages delivered more than once
  std::uint64_t num_waiting = 0;       ///< pull requests waiting
  std::uint64_t num_pending = 0;       ///< stored, matching, not delivered yet
};

/// What a delivered message's reply subject says about it (nats.go's MsgMetadata).
struct MessageMetadata {
  std::string stream;
  std::string consumer;
  std::uint64_t stream_seq = 0;
  std::uint64_t consumer_seq = 0;
  std::uint64_t num_delivered = 0;  ///< 1 the first time, more on redelivery
  std::uint64_t num_pending = 0;
  std::int64_t time_ns = 0;         ///< when the stream stored it
};

/// Reads a delivered message's metadata; Errc::invalid_argument if it did not come from a consumer.
Result<MessageMetadata> metadata(const MessageView& message);
inline Result<MessageMetadata> metadata(const Message& message) { return metadata(message.view()); }

/// Acknowledgements (JetStream's): each is a publish to the message's reply subject.
Status ack(const MessageView& message);
/// Not processed: redeliver after `delay` (0: at once).
Status nak(const MessageView& message, std::chrono::nanoseconds delay = std::chrono::nanoseconds(0));
/// Still working on it: restarts the ack wait.
Status in_progress(const MessageView& message);
/// Never redeliver it.
Status term(const MessageView& message);
/// Acknowledges and waits for the broker to confirm that the acknowledgement is recorded (a
/// durable consumer: on disk), so it is never redelivered: with Nats-Msg-Id on publish, exactly
/// once. Errc::timeout if no confirmation came within `timeout`.
Status ack_sync(const MessageView& message, std::chrono::nanoseconds timeout = std::chrono::seconds(5));
inline Status ack(const Message& m) { return ack(m.view()); }
inline Status nak(const Message& m, std::chrono::nanoseconds delay = std::chrono::nanoseconds(0)) {
  return nak(m.view(), delay);
}
inline Status in_progress(const Message& m) { return in_progress(m.view()); }
inline Status term(const Message& m) { return term(m.view()); }
inline Status ack_sync(const Message& m, std::chrono::nanoseconds timeout = std::chrono::seconds(5)) {
  return ack_sync(m.view(), timeout);
}

/// Consumer administration and pull (JetStream's consumer API). Holds a reference to the
/// connection, which must outlive it.
class Consumers {
 public:
  explicit Consumers(Connection& connection) noexcept : connection_(&connection) {}

  /// Adds a consumer to `stream` (or returns the existing one if its configuration is the
  /// same). Errc::not_found: no such stream; Errc::already_exists: the name is taken with
  /// another configuration; Errc::invalid_argument: a field breaks JetStream's rules;
  /// Errc::no_responders: the broker serves no streams.
  Result<ConsumerInfo> add(std::string_view stream, const ConsumerConfig& config);
  Result<ConsumerInfo> info(std::string_view stream, std::string_view name);
  Result<std::vector<ConsumerInfo>> list(std::string_view stream);
  Status remove(std::string_view stream, std::string_view name);

  /// Pulls up to `batch` messages from pull consumer `name`, waiting at most `expires` for
  /// them to arrive (JetStream's fetch). Returns what came (possibly none) in order; each is
  /// to be acknowledged per the consumer's ack policy.
  Result<std::vector<Message>> fetch(std::string_view stream, std::string_view name, std::size_t batch,
                                     std::chrono::nanoseconds expires);

 private:
  Result<std::string> call(const std::string& subject, const std::string& body);
  Connection* connection_;
  std::shared_ptr<detail::FetchInbox> fetch_inbox_;  // made by the first fetch, reused
};

const char* to_string(DeliverPolicy p) noexcept;
const char* to_string(AckPolicy p) noexcept;
const char* to_string(ReplayPolicy p) noexcept;
/// JSON after JetStream's ConsumerInfo (what `bus consumer info --json` prints).
std::string to_json(const ConsumerInfo& info);

}  // namespace bus

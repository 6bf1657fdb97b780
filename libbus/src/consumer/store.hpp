// consumer/store.hpp — a durable consumer on disk, beside its stream:
//
//   <state dir>/streams/<stream>/consumers/<name>/consumer.json   config and creation time
//   <state dir>/streams/<stream>/consumers/<name>/state.json      delivered, ack floor, pending
//
// Both mode 0600, each replaced whole (temporary file, fsync, rename): a crash leaves the old
// state or the new one, never half of one. Removing the stream removes its consumers with it.
// A state file that fails to parse is an error for that consumer alone (it is left out and
// logged), never a crash or a consumer that starts from a wrong position.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "bus/consumer.hpp"
#include "bus/result.hpp"

namespace bus::detail::consumer {

/// A delivered message not yet acknowledged.
struct PendingEntry {
  std::uint64_t stream_seq = 0;
  std::uint64_t consumer_seq = 0;
  std::int64_t delivered_ns = 0;  ///< CLOCK_REALTIME of its last delivery
};

/// What a consumer must not forget across restarts.
struct ConsumerState {
  SequenceInfo delivered;
  SequenceInfo ack_floor;
  std::vector<PendingEntry> pending;  ///< by stream sequence
  /// Deliveries so far of messages delivered more than once (stream seq, count).
  std::vector<std::pair<std::uint64_t, std::uint64_t>> redelivered;
};

struct StoredConsumer {
  std::string stream;
  ConsumerConfig config;
  std::int64_t created_ns = 0;
  ConsumerState state;
};

/// The directory of consumer `name` of `stream` under `state_dir`.
std::string consumer_dir(const std::string& state_dir, const std::string& stream, const std::string& name);

/// Writes consumer.json (once, at creation) and an empty state.
Status save_consumer(const std::string& state_dir, const StoredConsumer& consumer);
/// Replaces state.json.
Status save_state(const std::string& dir, const ConsumerState& state);
/// Removes a consumer's directory.
Status remove_consumer(const std::string& state_dir, const std::string& stream, const std::string& name);

/// Every durable consumer of every stream under `state_dir`; one that fails to load is named
/// with its reason in `damaged`.
std::vector<StoredConsumer> load_consumers(const std::string& state_dir, std::vector<std::string>& damaged);

}  // namespace bus::detail::consumer

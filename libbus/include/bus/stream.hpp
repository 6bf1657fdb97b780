// bus/stream.hpp — streams: messages on chosen subjects kept in a journal on disk, as
// JetStream keeps them (../shared/reference/nats-semantics.md §7; docs/streams.md).
//
//   bus::Streams streams(*conn);
//   bus::StreamConfig config;
//   config.name = "ORDERS";
//   config.subjects = {"orders.>"};
//   streams.add(config);                                   // like `nats stream add`
//   auto ack = conn->stream_publish("orders.eu.new", "{...}");  // stored: ack->sequence
//   auto msg = streams.get("ORDERS", ack->sequence);
//
// A publish to a stream's subject is appended to the stream's journal by the publishing thread
// itself (no broker hop, no lock across processes); every publish to it is stored, with or
// without an acknowledgement. Administration (add, remove, info) goes through the broker, which
// owns the streams' configuration under its store directory (busd --store-dir).
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "bus/result.hpp"

namespace bus {

class Connection;

enum class Retention { limits, interest, workqueue };
enum class Discard { old_messages, new_messages };  // JetStream "old" | "new"
/// file: under the state directory; memory: the same journal in tmpfs (/dev/shm): it outlives
/// every process, not a reboot.
enum class Storage { file, memory };
/// What an acknowledgement means (ours; JetStream syncs on a server-wide interval, 2 min by
/// default, or always).
enum class SyncPolicy {
  never,     ///< in the page cache: survives the death of any process, not of the machine
  always,    ///< on disk before the acknowledgement (concurrent publishers share one flush)
  interval,  ///< as never, and the broker flushes the journal every sync_interval
};

/// JetStream's stream configuration, by JetStream's names.
struct StreamConfig {
  std::string name;
  std::vector<std::string> subjects;  ///< patterns; wildcards allowed; no overlap with another stream
  Retention retention = Retention::limits;
  std::int64_t max_msgs = -1;  ///< -1: unlimited (JetStream's convention)
  std::int64_t max_bytes = -1;
  std::chrono::nanoseconds max_age{0};  ///< 0: unlimited
  std::int64_t max_msg_size = -1;
  std::int64_t max_msgs_per_subject = -1;
  Discard discard = Discard::old_messages;
  std::chrono::nanoseconds duplicate_window = std::chrono::minutes(2);  ///< JetStream's default
  Storage storage = Storage::file;
  SyncPolicy sync = SyncPolicy::never;
  std::chrono::nanoseconds sync_interval = std::chrono::seconds(1);  ///< for SyncPolicy::interval
  bool allow_rollup_hdrs = false;  ///< honour Nats-Rollup (sub | all) on publish
};

/// What a stream holds now (JetStream's StreamState names).
struct StreamState {
  std::uint64_t messages = 0;
  std::uint64_t bytes = 0;      ///< of the stored records (headers and framing included)
  std::uint64_t first_seq = 0;  ///< 0 when the stream has never held a message
  std::uint64_t last_seq = 0;
  std::int64_t first_ts_ns = 0;  ///< CLOCK_REALTIME of the first and last message; 0 if none
  std::int64_t last_ts_ns = 0;
  std::uint64_t lost_msgs = 0;  ///< dropped by recovery because they failed their checks
  std::uint32_t consumer_count = 0;
};

struct StreamInfo {
  StreamConfig config;
  StreamState state;
};

/// A stream's acknowledgement of a publish (JetStream's PubAck).
struct PubAck {
  std::string stream;
  std::uint64_t sequence = 0;
  bool duplicate = false;
};

/// A message as the stream stored it.
struct StoredMessage {
  std::string subject;
  std::uint64_t sequence = 0;
  std::int64_t time_ns = 0;  ///< CLOCK_REALTIME when stored
  std::string headers;       ///< the NATS/1.0 header block, or empty
  std::string data;
};

/// A stored message viewed in place in the mapped journal: no copy (valid until the reader's
/// next call or its end).
struct StoredMessageView {
  std::string_view subject;
  std::uint64_t sequence = 0;
  std::int64_t time_ns = 0;
  std::string_view headers;
  std::string_view data;
};

namespace detail {
struct StreamReaderImpl;
}

/// Reads a stream in sequence order, zero-copy, from any process: replay, `bus stream view`,
/// and what consumers build on. Keeps its connection's journal mapping alive.
class StreamReader {
 public:
  StreamReader() noexcept;
  StreamReader(StreamReader&&) noexcept;
  StreamReader& operator=(StreamReader&&) noexcept;
  ~StreamReader();

  /// The next stored message: true with `out` set; false when the reader has caught up (nothing
  /// more is stored yet: call again later). Errc::journal_corrupt when the next record fails its
  /// checks (never handed out; skip() steps past it).
  Result<bool> next(StoredMessageView& out);
  /// Steps past the record next() refused as corrupt.
  void skip() noexcept;
  /// Waits at most `timeout` for next() to have something: spins briefly, then sleeps on the
  /// journal (a publisher wakes it; no polling). True when next() will not return false.
  bool wait(std::chrono::nanoseconds timeout);
  /// The sequence next() reads.
  std::uint64_t sequence() const noexcept;
  /// The last sequence stored in the stream so far (by any process).
  std::uint64_t last_sequence() const;

 private:
  friend class Streams;
  std::unique_ptr<detail::StreamReaderImpl> impl_;
};

/// Stream administration on a connection (JetStream's JetStreamManager). Cheap to make; holds a
/// reference to the connection, which must outlive it.
class Streams {
 public:
  explicit Streams(Connection& connection) noexcept : connection_(&connection) {}

  /// Adds a stream. Errc::already_exists when the name is taken (with another configuration),
  /// Errc::invalid_argument when its subjects overlap another stream's or a field is invalid.
  Result<StreamInfo> add(const StreamConfig& config);
  Result<StreamInfo> info(std::string_view name);
  /// Changes an existing stream's configuration (JetStream's UpdateStream): its subjects and
  /// limits; not its name, retention or storage.
  Result<StreamInfo> update(const StreamConfig& config);
  /// Every stream, by name.
  Result<std::vector<StreamInfo>> list();
  /// Removes the stream and every message it holds.
  Status remove(std::string_view name);
  /// JetStream's purge: deletes the stream's messages (only those on subjects matching
  /// `subject` if set; below sequence `upto` if set), keeping the newest `keep`. Returns how
  /// many were deleted.
  Result<std::uint64_t> purge(std::string_view name, std::string_view subject = {}, std::uint64_t keep = 0,
                              std::uint64_t upto = 0);
  /// Deletes one message (JetStream's delete message). Errc::not_found if it is not stored.
  Status remove_message(std::string_view name, std::uint64_t sequence);
  /// The stored message `sequence` of `stream`. Errc::not_found if the stream holds no
  /// such message; Errc::journal_corrupt if its record fails its checks (never handed out).
  Result<StoredMessage> get(std::string_view stream, std::uint64_t sequence);
  /// The last message stored on `subject` (a subject, not a pattern): JetStream's get with
  /// last_by_subj. Errc::not_found if the stream holds none on it.
  Result<StoredMessage> get_last(std::string_view stream, std::string_view subject);
  /// The sequence of the first message stored at or after `time_ns` (CLOCK_REALTIME ns since
  /// the epoch); one past the last stored when there is none.
  Result<std::uint64_t> sequence_at_time(std::string_view stream, std::int64_t time_ns);
  /// Each subject's last stored message: (subject, sequence), in sequence order.
  Result<std::vector<std::pair<std::string, std::uint64_t>>> last_per_subject(std::string_view stream);
  /// A reader of `stream` from `start_sequence` (clamped to the first one stored).
  Result<StreamReader> reader(std::string_view stream, std::uint64_t start_sequence = 1);

 private:
  Connection* connection_;
};

/// JSON after JetStream's StreamConfig and StreamInfo (what `bus stream info --json` prints):
/// durations in ns, times as RFC 3339 in UTC.
std::string to_json(const StreamConfig& config);
std::string to_json(const StreamInfo& info);
/// RFC 3339 of CLOCK_REALTIME ns, in UTC with nanoseconds ("0001-01-01T00:00:00Z" for 0, as Go
/// prints a zero time).
std::string rfc3339(std::int64_t unix_ns);

const char* to_string(Retention r) noexcept;
const char* to_string(Discard d) noexcept;
const char* to_string(Storage s) noexcept;
const char* to_string(SyncPolicy s) noexcept;

}  // namespace bus

// broker/streams.hpp — the streams a broker serves.
//
// It owns the bus's StreamStore (configurations on disk), keeps each stream's journal open
// (recovered at load when no other process holds it), and writes the segment's stream table,
// which route targets of kind `stream` point into. Its interface to the event loop is narrow:
// load at start, one call per stream request, and which streams capture a subject when a
// route is (re)built. It never touches the data path: publishers append to journals themselves.
#pragma once

#include <cstdint>
#include <condition_variable>
#include <functional>
#include <mutex>
#include <thread>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "bus/result.hpp"
#include "journal/journal.hpp"
#include "proto/control.hpp"
#include "shm/segment.hpp"
#include "stream/config.hpp"
#include "stream/limits.hpp"
#include "stream/store.hpp"

namespace bus::detail {

class BrokerStreams {
 public:
  using Log = std::function<void(const std::string&)>;
  /// Whether the routes a new stream would join have room for it (max_fanout).
  using RouteCheck = std::function<Status(const StreamConfig&)>;

  /// Opens (and holds: one broker per store) the store in `store_dir`. Before the segment is
  /// made or adopted: a store another broker holds is an error, not a reason to replace a bus.
  Status open_store(const std::string& store_dir, Log log, RouteCheck route_check);
  /// Loads every stream of the store into `segment`'s stream table, before any route is
  /// published. `adopted`: the table was left by a previous broker; a stream found there under
  /// the same name keeps its slot and incarnation, so the targets publishers cached stay valid.
  /// A stream that fails to load (damaged configuration or journal) is logged and left out.
  void load(Segment& segment, bool adopted);

  /// One stream request; the reply body (JSON: stream/config.hpp info_to_json, or
  /// {"streams": [...]}). `routes_changed`: the caller must rebuild every route's targets.
  Result<std::string> handle(StreamOp op, std::string_view name, std::string_view body, bool& routes_changed);

  struct Target {
    std::uint32_t slot;
    std::uint32_t incarnation;
  };
  /// The stream capturing literal `subject`, if any (streams' subjects never overlap).
  std::optional<Target> capturing(std::string_view subject) const;

  std::size_t size() const noexcept { return streams_.size(); }
  /// Applies every stream's limits (stream/limits.hpp); on the broker's tick.
  void enforce_limits();
  /// Where a stream's consumer count comes from (the consumer engine), for info replies.
  /// Consumers of a stream, as the consumer engine counts them (nullopt: not known yet).
  using ConsumerCount = std::function<std::optional<std::uint32_t>(const std::string&)>;
  void set_consumer_count(ConsumerCount count) { consumer_count_ = std::move(count); }

  BrokerStreams() = default;
  BrokerStreams(const BrokerStreams&) = delete;
  BrokerStreams& operator=(const BrokerStreams&) = delete;
  ~BrokerStreams();  ///< stops the preparer

 private:
  struct Served {
    StreamConfig config;
    std::uint32_t slot = 0;
    std::uint32_t incarnation = 0;
    std::shared_ptr<journal::Journal> journal;  // shared with the preparer thread
    stream::SubjectIndex subjects;                // max_msgs_per_subject's view
  };

  Result<std::string> add(std::string_view body, bool& routes_changed);
  Result<std::string> remove(std::string_view name, bool& routes_changed);
  Result<std::string> edit(std::string_view body, bool& routes_changed);
  Served* find(std::string_view name);
  StreamInfo info_of(const Served& s) const;
  std::string info_reply(const Served& s) const;  // info_of() as the reply's JSON
  /// Opens `config`'s journal and puts it in slot `slot` with `incarnation`.
  Status serve(StreamConfig config, std::uint32_t slot, std::uint32_t incarnation);
  std::optional<std::uint32_t> free_slot() const;
  /// Rewrites a slot under its seqlock ([R8]); nullptr frees it.
  void publish_slot(std::uint32_t slot, const Served* s);
  /// Rewrites a slot's usage words (what discard new counts) under their own seqlock ([R10]).
  void publish_usage(const Served& s);

  Status make_store();
  RouteCheck route_check_;
  ConsumerCount consumer_count_;

  /// The preparer: a thread that makes each stream's next segment file ahead of its roll-over
  /// (journal::Journal::prepare_spare), so no publisher allocates one on its publishing path,
  /// and flushes journals to disk: every sync_interval for sync interval, and after deletes
  /// (limits, purges) for sync always and interval. Disk I/O off the broker's loop.
  void start_preparer();
  void prepare_loop();
  void publish_journals();  // the preparer's copy of the journals, after a change (loop thread)
  struct Prepared {
    std::shared_ptr<journal::Journal> journal;  // stays alive while the preparer uses it
    SyncPolicy sync = SyncPolicy::never;
    std::uint64_t flush_every_ns = 0;  // sync interval: when flushes are due; 0: deletes only
    std::uint64_t next_flush_ns = 0;
  };
  std::mutex preparer_mutex_;
  std::condition_variable preparer_cv_;
  bool preparer_stop_ = false;        // under preparer_mutex_
  std::vector<Prepared> prepared_;    // under preparer_mutex_
  std::thread preparer_;

  std::string store_dir_;
  std::optional<stream::StreamStore> store_;  // opened at start if it exists, else by the first add
  Segment* segment_ = nullptr;
  Log log_;
  std::vector<Served> streams_;
};

}  // namespace bus::detail

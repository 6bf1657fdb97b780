// bus/bridge.hpp — one bus and a NATS server or cluster, as one subject space.
//
//   bus::BridgeOptions o;
//   o.nats_urls = {"nats://10.0.0.1:4222", "nats://10.0.0.2:4222"};
//   o.rules = {{bus::BridgeDirection::export_to_nats, "orders.>"},
//              {bus::BridgeDirection::import_from_nats, "orders.>"}};
//   auto bridge = bus::Bridge::start(o);   // its own threads until stop() or destruction
//
// Messages cross both ways by subject pattern with their headers, reply subjects and payloads;
// request/reply and queue groups work across; what a bridge brought in is never sent back out
// (MessageView::imported_by, and a Bus-Origin header on NATS), so overlapping rules and several
// bridges make no loops. The bridge subscribes on NATS only for what bus subscribers want.
// While NATS is away it keeps up to `nats_reconnect_buffer` bytes, then drops and counts; bus
// publishers never wait for it. docs/scale-out.md has the whole story and what differs from a
// single bus. `bus bridge` and `busd --nats` run this class.
//
// Part of libbus_bridge (CMake target bus::bridge), built when the NATS C client is found.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "bus/result.hpp"

namespace bus {

enum class BridgeDirection {
  export_to_nats,    ///< bus -> NATS
  import_from_nats,  ///< NATS -> bus
};

struct BridgeRule {
  BridgeDirection direction = BridgeDirection::export_to_nats;
  std::string pattern;  ///< bus-side subject pattern (wildcards as anywhere)
  std::string prefix;   ///< the NATS subject is prefix + bus subject (e.g. "host1.")
};

/// A stream copied across, at least once (docs/scale-out.md): export, the bus stream into the
/// JetStream stream (created, capturing prefix + the bus stream's subjects, when missing);
/// import, the JetStream stream into the bus stream (which must capture the subjects).
struct BridgeStreamRule {
  BridgeDirection direction = BridgeDirection::export_to_nats;
  std::string bus_stream;
  std::string js_stream;  ///< empty: the bus stream's name
  std::string prefix;     ///< NATS subject = prefix + bus subject
};

struct BridgeOptions {
  std::string bus_name = "default";
  std::string name = "bridge";  ///< in logs, monitoring and the NATS connection name
  std::vector<std::string> nats_urls = {"nats://127.0.0.1:4222"};
  std::vector<BridgeRule> rules;
  std::vector<BridgeStreamRule> streams;
  /// Export everything the export rules match, whether or not NATS has a subscriber for it.
  /// Default: only what NATS has interest in, asked every 250 ms ($SYS.REQ.ACCOUNT.PING.CONNZ);
  /// a NATS that does not answer that gets everything too.
  bool export_all = false;

  // The NATS connection, handed to nats.c as they are.
  std::string user, password, token;
  std::string creds_file;  ///< NATS user credentials (JWT + seed)
  bool tls = false;        ///< require TLS
  std::string tls_ca, tls_cert, tls_key;
  std::chrono::milliseconds nats_connect_timeout = std::chrono::seconds(2);
  std::chrono::milliseconds nats_reconnect_wait = std::chrono::milliseconds(250);
  int nats_max_reconnects = -1;  ///< -1: forever (a bridge outlives NATS restarts)
  /// Bytes of messages kept while NATS is unreachable (nats.c's reconnect buffer); beyond it
  /// exports are dropped and counted per rule.
  std::uint64_t nats_reconnect_buffer = 8u << 20;

  /// How long start() waits for the bus's broker (0: it must be running).
  std::chrono::milliseconds wait_for_broker = std::chrono::milliseconds(0);
  bool log = true;  ///< log connects, disconnects and losses to stderr
};

/// Counts of one rule since the bridge started.
struct BridgeRuleStats {
  BridgeRule rule;
  std::uint64_t msgs = 0, bytes = 0;  ///< crossed
  std::uint64_t dropped = 0;          ///< lost: NATS away past the buffer, or refused by the bus
  std::uint64_t too_large = 0;        ///< over the other side's max_payload (never truncated)
  std::uint64_t ring_dropped = 0;     ///< export: the bridge's bus ring was full (NATS too slow)
  std::uint64_t slow_dropped = 0;     ///< import: nats.c's pending limit was reached
  std::uint64_t loops = 0;            ///< not passed on: it had come from this bus
};

/// Counts of one stream link since the bridge started.
struct BridgeStreamStats {
  BridgeStreamRule rule;
  std::uint64_t copied = 0;     ///< stored on the other side and acknowledged here
  std::uint64_t duplicates = 0; ///< the other side had it already (a redelivery after a restart)
  std::uint64_t retried = 0;    ///< not stored this time (the other side refused or was away)
  std::uint64_t skipped = 0;    ///< had come from the other side: not copied back
  std::uint64_t pending = 0;    ///< sent, acknowledgement not back yet
  std::string last_error;
};

struct BridgeStats {
  std::string name;
  std::string bus_name;
  bool nats_connected = false;
  std::string nats_url;  ///< the server connected to now (the main connection's)
  bool active = true;    ///< false: a standby (another bridge of this name serves the bus)
  std::uint64_t disconnects = 0, reconnects = 0;  ///< summed over its three NATS connections
  std::uint32_t nats_subscriptions = 0;  ///< interest subscriptions in place
  std::uint64_t replies = 0;             ///< replies carried back across
  std::vector<BridgeRuleStats> rules;
  std::vector<BridgeStreamStats> streams;
};

class Bridge {
 public:
  Bridge() noexcept;
  Bridge(Bridge&&) noexcept;
  Bridge& operator=(Bridge&&) noexcept;
  ~Bridge();  ///< stops the bridge if still running

  /// Connects to the bus (Errc::broker_not_running without a broker, after wait_for_broker)
  /// and to NATS (in the background: a NATS that is down now is retried, not an error), then
  /// moves messages until stop(). Errc::invalid_argument for a bad rule or URL.
  static Result<Bridge> start(const BridgeOptions& options);
  /// Flushes what NATS has not acknowledged yet (bounded), then disconnects both sides.
  Status stop();
  bool running() const noexcept;
  BridgeStats stats() const;

  class Impl;

 private:
  void release_impl() noexcept;
  std::unique_ptr<Impl> impl_;
};

/// The stats as JSON (what `bus bridge` prints and serves on $BUS.BRIDGE.<name>.STATUSZ).
std::string bridge_stats_json(const BridgeStats& stats);

/// Reads a bridge configuration file (JSON; docs/scale-out.md): the options, rules included.
/// Fields absent keep `base`'s values. Errc::invalid_argument names what is wrong.
Result<BridgeOptions> load_bridge_config(const std::string& path, BridgeOptions base = {});

/// Checks rules and URLs (what start() checks first). Errc::invalid_argument says which.
Status validate_bridge_options(const BridgeOptions& options);

}  // namespace bus

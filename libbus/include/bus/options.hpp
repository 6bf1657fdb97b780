// bus/options.hpp — the knobs of connections, subscriptions and the broker, as aggregates so
// C++20 designated initializers work: `bus::SubscribeOptions{.wait = WaitStrategy::spin}`.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <functional>
#include <string>

namespace bus {

/// How a subscriber waits for messages.
enum class WaitStrategy {
  /// Spin for `spin_budget`, then sleep on a futex; a publisher makes the wake-up syscall only
  /// when the subscriber sleeps. The default: no CPU burnt while idle.
  spin_then_sleep,
  /// Never sleep: lowest latency (no wake-up syscall, which costs ~50-100 us on a VM), one core
  /// spent per subscription. For dedicated cores only.
  busy_spin,
};

struct SubscribeOptions {
  WaitStrategy wait = WaitStrategy::spin_then_sleep;
  std::chrono::nanoseconds spin_budget = std::chrono::microseconds(50);
  /// Queue group: each message goes to one member of the group (NATS queue subscription).
  std::string queue_group;
  /// A message a live publisher claimed but has not finished for this long (it is stopped,
  /// swapped out, in a debugger) is skipped so the ones behind it flow; the late publisher
  /// learns it and counts the loss (Aeron's unblock timeout). A publisher that died is skipped
  /// at once (~20 ms), whatever this says.
  std::chrono::nanoseconds unblock_timeout = std::chrono::seconds(1);
};

struct ConnectOptions {
  std::string name;  ///< label shown by monitoring tools
  /// How long a control call (subscribe, first publish to a subject) waits for the broker,
  /// including, while reconnecting, for the broker to come back.
  std::chrono::milliseconds control_timeout = std::chrono::seconds(5);

  // Reconnecting, after the NATS clients (names and meaning; defaults differ, see
  // docs/failure.md). The data path does not need the broker: while it is away, routes already
  // in use keep delivering and subscriptions keep receiving; only control calls wait.
  /// Reconnect to a restarted broker at all (NATS AllowReconnect).
  bool allow_reconnect = true;
  /// Attempts before giving up and closing; -1 = forever (NATS MaxReconnect, default 60).
  int max_reconnects = 60;
  /// Pause between attempts (NATS ReconnectWait, 2 s there: a local broker restarts in ms).
  std::chrono::milliseconds reconnect_wait = std::chrono::milliseconds(100);
  /// Called (on the connection's supervisor thread) when the broker goes away, when a new one
  /// took the connection back, and when the connection is closed for good.
  std::function<void()> disconnected_cb = {};
  std::function<void()> reconnected_cb = {};
  std::function<void()> closed_cb = {};
};

struct BrokerOptions {
  std::string bus_name = "default";
  std::uint32_t max_clients = 64;
  std::uint32_t max_subscriptions = 256;  ///< also the number of rings
  std::uint32_t max_routes = 1024;        ///< distinct subjects published to at once
  std::uint32_t max_fanout = 256;         ///< subscriptions one subject may reach
  std::uint64_t ring_bytes = 4u << 20;    ///< per subscription; power of two
  std::uint64_t max_payload = 1u << 20;   ///< headers + payload (NATS default 1 MiB)
  std::uint32_t max_streams = 64;         ///< streams served at once (0: none)
  /// Where streams are kept (nats-server's store_dir). Empty: $BUS_STATE_DIR/<bus>, else
  /// /var/lib/bus/<bus> for root, else $XDG_STATE_HOME/bus/<bus> or ~/.local/state/bus/<bus>.
  std::string store_dir = {};
  mode_t mode = 0600;                     ///< permissions of the segment
  /// Monitoring HTTP port (nats-server's -m): "PORT", ":PORT" or "HOST:PORT"; the host is
  /// 127.0.0.1 unless given. Empty: no port. "0": any free port (bus server info shows it).
  std::string http = {};
  /// How often the broker publishes $SYS.SERVER.<id>.STATSZ (0: never).
  std::chrono::nanoseconds statsz_interval = std::chrono::seconds(10);
  bool log = true;                        ///< log events to stderr
};

}  // namespace bus

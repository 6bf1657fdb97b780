// common.hpp — what every verb of the `bus` CLI shares: exit codes, the client flags (--bus,
// --timeout, --name, --wait-for-broker, before or after the verb), connecting (and waiting for a
// broker), one-line error reporting, a stop-on-signal flag and noticing that the broker died.
#pragma once

#include <CLI/CLI.hpp>
#include <chrono>
#include <string>
#include <string_view>
#include <vector>
#include <cstdio>

#include "bus/bus.hpp"

namespace bus::cli {

constexpr int kExitOk = 0;
constexpr int kExitFailure = 1;  ///< runtime error: no broker, payload too large, broker gone
constexpr int kExitUsage = 2;    ///< bad flags or arguments (including an invalid subject)

/// The flags every verb that talks to a bus takes. Each may also be given before the verb
/// (`bus --bus X pub ...`): see add_global_flags().
struct ClientFlags {
  std::string bus_name = default_bus_name();
  /// How long each call to the broker (connect's handshake, subscribe, the first publish to a
  /// subject, stream and consumer calls) waits for its answer; some verbs wait for more with it
  /// (req: each reply). A broker that is not running at all fails at once: see wait_for_broker.
  std::chrono::nanoseconds timeout = std::chrono::seconds(5);  // the nats CLI's default
  /// --name: the connection's name in monitoring (bus server report connections, bus top,
  /// $SYS events); empty: the verb's own ("bus pub", "bus sub PATTERN").
  std::string name;
  /// --wait-for-broker: retry connecting this long while no broker serves the bus (0: fail at
  /// once, the default).
  std::chrono::nanoseconds wait_for_broker{0};

  static std::string default_bus_name();  ///< env BUS_NAME, else "default"
};

/// What --timeout means for most verbs (the ones whose only waits are calls to the broker).
inline constexpr const char* kControlTimeoutHelp =
    "How long each call to the broker (connecting, subscribing, the first publish to a subject) waits for its "
    "answer, e.g. 500ms; no broker at all fails at once (see --wait-for-broker)";

/// Which of the client flags a verb takes, and what they mean for it.
struct ClientFlagSet {
  /// The help of --timeout; empty: the verb makes no call to the broker and takes no --timeout.
  std::string timeout_help = kControlTimeoutHelp;
  /// --name: the verb makes a connection that monitoring tools show.
  bool name = true;
  /// The help of --wait-for-broker; empty: the default one (retry connecting).
  std::string wait_help;
};

/// Adds --bus, --wait-for-broker and (as `set` says) --timeout and --name to `command`.
void add_client_flags(CLI::App& command, ClientFlags& flags, const ClientFlagSet& set = {});

/// Adds --bus, --timeout, --name and --wait-for-broker to the top-level app, for use before the
/// verb (`bus --bus X pub ...`), and lets every verb pass those it does not take itself up to it
/// (CLI11 fallthrough): call before the verbs are added. After parsing, apply_global_flags()
/// copies what was given there into the parsed verb's flags; the same flag given after the verb
/// wins.
void add_global_flags(CLI::App& app);
void apply_global_flags();

/// Connects to flags.bus_name, naming the connection flags.name or else `client_name`. With
/// --wait-for-broker, retries while no broker serves the bus (until it answers or the wait is
/// over; a stop signal ends the wait too); then the error is the last attempt's, saying how long
/// it waited.
Result<Connection> connect(const ClientFlags& flags, std::string_view client_name);

/// A look at the bus's shared memory (bus server info/report, bus top) that, with
/// --wait-for-broker, retries until the bus has a segment and a live broker, or the wait is over
/// (then the last look, or its error).
Result<monitor::BusSnapshot> bus_snapshot(const ClientFlags& flags);

/// Prints "bus: <message>" on stderr and returns the exit code for `error`.
int report(const Error& error);
/// Prints "bus: <message>" on stderr and returns kExitUsage.
int report_usage(std::string_view message);

/// SIGINT/SIGTERM set a flag instead of killing the process, so a verb can finish cleanly
/// (unsubscribe, close) and exit 0. A second signal kills the usual way.
void install_stop_signals();
bool stop_requested() noexcept;

/// How often the receiving verbs (sub, reply) look at the stop flag and the broker's liveness.
constexpr auto kPollInterval = std::chrono::milliseconds(200);

/// Watches the broker of a connection for a verb that waits for messages: gone() asks
/// Connection::connected() (heartbeat no older than 1.5 s, broker process alive) at most every
/// kPollInterval, whether the verb is idle or busy.
class BrokerWatch {
 public:
  explicit BrokerWatch(const Connection& conn) : conn_(conn) {}
  bool gone();

 private:
  const Connection& conn_;
  std::chrono::steady_clock::time_point next_check_{};
};

/// The error a verb exits with when the broker of `bus_name` went away.
Error broker_gone_error(std::string_view bus_name);

/// CLOCK_REALTIME now, in ns (what stream times are stamped with).
std::int64_t realtime_ns() noexcept;

/// One "key: value" line of a report, keys right-aligned as the nats CLI's info pages are.
void append_row(std::string& out, const char* key, const std::string& value);
std::string join(const std::vector<std::string>& parts, const char* separator);

/// Prints an info (stream, consumer) as JSON with --json, else as `print` reports it; exit 0.
template <class Info, class Print>
int print_info_or_json(const Info& info, bool json, Print print) {
  if (json) {
    std::printf("%s\n", to_json(info).c_str());
  } else {
    print(info);
  }
  return kExitOk;
}

}  // namespace bus::cli

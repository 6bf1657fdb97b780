// common.hpp — what every verb of the `bus` CLI shares: exit codes, the --bus/--timeout flags,
// connecting, one-line error reporting, a stop-on-signal flag and noticing that the broker died.
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

/// The flags every verb that talks to a bus takes.
struct ClientFlags {
  std::string bus_name = default_bus_name();
  /// How long control calls (connect, subscribe, first publish to a subject) wait for the broker.
  std::chrono::nanoseconds timeout = std::chrono::seconds(5);  // the nats CLI's default

  static std::string default_bus_name();  ///< env BUS_NAME, else "default"
};

/// Adds --bus (and --timeout when `with_timeout`) to `command`.
void add_client_flags(CLI::App& command, ClientFlags& flags, bool with_timeout = true);

/// Connects to flags.bus_name, naming the connection `client_name` for monitoring tools.
Result<Connection> connect(const ClientFlags& flags, std::string_view client_name);

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

// common.cpp — shared plumbing of the `bus` CLI verbs (see common.hpp).
#include "common.hpp"

#include <algorithm>
#include <csignal>
#include <cstdio>
#include <ctime>
#include <cstdlib>
#include <optional>
#include <thread>

#include "cli_units.hpp"

namespace bus::cli {
namespace {

volatile std::sig_atomic_t g_stop_requested = 0;

extern "C" void on_stop_signal(int /*signo*/) { g_stop_requested = 1; }

}  // namespace

std::string ClientFlags::default_bus_name() {
  const char* env = std::getenv("BUS_NAME");
  return env != nullptr && *env != '\0' ? env : "default";
}

namespace {

const char* const kWaitHelp =
    "Retry connecting this long while no broker serves the bus, e.g. 2s (default: fail at once)";

// One verb's client flags, for apply_global_flags(): the command they belong to, where they
// store and the options (nullptr: the command does not take that flag).
struct Binding {
  CLI::App* command = nullptr;
  ClientFlags* flags = nullptr;
  CLI::Option* bus = nullptr;
  CLI::Option* timeout = nullptr;
  CLI::Option* name = nullptr;
  CLI::Option* wait = nullptr;
};

// The CLI is one parse per process: the bindings and the global flags live as long as it.
std::vector<Binding>& bindings() {
  static std::vector<Binding> all;
  return all;
}

struct GlobalFlags {
  ClientFlags values;
  CLI::Option* bus = nullptr;
  CLI::Option* timeout = nullptr;
  CLI::Option* name = nullptr;
  CLI::Option* wait = nullptr;
};

GlobalFlags& globals() {
  static GlobalFlags g;
  return g;
}

CLI::Option* add_bus_option(CLI::App& command, std::string& target) {
  return command.add_option("--bus", target, "Bus name (env BUS_NAME)")->type_name("NAME")->default_str("default");
}

CLI::Option* add_name_option(CLI::App& command, std::string& target, const std::string& help) {
  return command.add_option("--name", target, help)->type_name("NAME");
}

CLI::Option* add_wait_option(CLI::App& command, std::chrono::nanoseconds& target, const std::string& help) {
  return tools::add_duration_option(command, "--wait-for-broker", target, help);
}

// A broker may yet come (or come back) after these; anything else is an answer.
bool broker_may_come(Errc code) {
  switch (code) {
    case Errc::broker_not_running:  // no segment, no socket, or a dead broker's segment
    case Errc::broker_gone:         // superseded while attaching: a broker is starting
    case Errc::segment_corrupt:     // a segment being built (its magic not published yet)
    case Errc::timeout:
    case Errc::io_error:
      return true;
    default:
      return false;
  }
}

constexpr auto kRetryInterval = std::chrono::milliseconds(20);

// Calls attempt() until it succeeds, fails for good, or flags.wait_for_broker is over.
template <class Attempt>
auto retry_while_no_broker(const ClientFlags& flags, Attempt attempt) -> decltype(attempt()) {
  const auto deadline = std::chrono::steady_clock::now() + flags.wait_for_broker;
  for (;;) {
    auto result = attempt();
    if (result || flags.wait_for_broker.count() <= 0 || !broker_may_come(result.error().code)) return result;
    const auto now = std::chrono::steady_clock::now();
    if (now >= deadline || stop_requested()) {
      Error error = std::move(result).error();
      error.message = (error.message.empty() ? std::string(errc_name(error.code)) : error.message) +
                      "; gave up after waiting " + tools::format_duration(flags.wait_for_broker) +
                      " for it (--wait-for-broker)";
      return error;
    }
    // The last attempt is made at the deadline.
    std::this_thread::sleep_for(std::min<std::chrono::steady_clock::duration>(kRetryInterval, deadline - now));
  }
}

}  // namespace

void add_client_flags(CLI::App& command, ClientFlags& flags, const ClientFlagSet& set) {
  Binding b;
  b.command = &command;
  b.flags = &flags;
  b.bus = add_bus_option(command, flags.bus_name);
  if (!set.timeout_help.empty()) {
    b.timeout = tools::add_duration_option(command, "--timeout", flags.timeout, set.timeout_help, /*positive=*/true);
  }
  if (set.name) {
    b.name = add_name_option(command, flags.name,
                             "Name of the connection in bus server report connections, bus top and $SYS events "
                             "(default: the verb's, e.g. 'bus sub PATTERN')");
  }
  b.wait = add_wait_option(command, flags.wait_for_broker, set.wait_help.empty() ? kWaitHelp : set.wait_help);
  bindings().push_back(b);
}

void add_global_flags(CLI::App& app) {
  GlobalFlags& g = globals();
  const std::string group = "Global flags (before or after the verb; a verb that does not take one ignores it)";
  g.bus = add_bus_option(app, g.values.bus_name)->group(group);
  g.timeout = tools::add_duration_option(app, "--timeout", g.values.timeout,
                                         "How long each call to the broker waits for its answer, and what else the "
                                         "verb waits for with it (req: the reply; see bus VERB --help), e.g. 500ms",
                                         /*positive=*/true)
                  ->group(group);
  g.name = add_name_option(app, g.values.name, "Name of the connection in monitoring (default: the verb's)")
               ->group(group);
  g.wait = add_wait_option(app, g.values.wait_for_broker, kWaitHelp)->group(group);
  // Inherited by every subcommand added from now on: what a verb does not take goes up here.
  app.fallthrough();
}

void apply_global_flags() {
  const GlobalFlags& g = globals();
  for (const Binding& b : bindings()) {
    if (!b.command->parsed()) continue;  // several commands may share one ClientFlags
    const auto take = [](const CLI::Option* mine, const CLI::Option* global) {
      return global != nullptr && global->count() > 0 && (mine == nullptr || mine->count() == 0);
    };
    if (take(b.bus, g.bus)) b.flags->bus_name = g.values.bus_name;
    if (take(b.timeout, g.timeout)) b.flags->timeout = g.values.timeout;
    if (take(b.name, g.name)) b.flags->name = g.values.name;
    if (take(b.wait, g.wait)) b.flags->wait_for_broker = g.values.wait_for_broker;
  }
}

Result<Connection> connect(const ClientFlags& flags, std::string_view client_name) {
  ConnectOptions options;
  options.name = flags.name.empty() ? std::string(client_name) : flags.name;
  // Round up so a sub-millisecond --timeout does not become "no wait at all".
  options.control_timeout = std::chrono::ceil<std::chrono::milliseconds>(flags.timeout);
  // Across a broker restart the verbs keep going (the data path needs no broker); say so.
  const std::string bus = flags.bus_name;
  options.disconnected_cb = [bus] {
    std::fprintf(stderr, "bus: lost the broker of bus '%s'; reconnecting (messages keep flowing)\n", bus.c_str());
  };
  options.reconnected_cb = [bus] { std::fprintf(stderr, "bus: reconnected to the broker of bus '%s'\n", bus.c_str()); };
  return retry_while_no_broker(flags, [&] { return Connection::connect(flags.bus_name, options); });
}

Result<monitor::BusSnapshot> bus_snapshot(const ClientFlags& flags) {
  std::optional<monitor::BusSnapshot> last;  // a dead broker's segment: shown if none comes
  auto look = [&]() -> Result<monitor::BusSnapshot> {
    auto snap = monitor::snapshot(flags.bus_name);
    if (!snap && snap.error().code == Errc::broker_not_running) {
      return make_error(Errc::broker_not_running, "bus '" + flags.bus_name +
                                                      "' has no shared-memory segment (is busd running? bus server ls "
                                                      "lists the buses here)");
    }
    if (snap && !snap->broker_alive && flags.wait_for_broker.count() > 0) {
      last = std::move(snap).value();
      return make_error(Errc::broker_not_running, "the broker of bus '" + flags.bus_name + "' is not running");
    }
    return snap;
  };
  auto snap = retry_while_no_broker(flags, look);
  if (!snap && last) return std::move(*last);
  return snap;
}

int report(const Error& error) {
  std::fprintf(stderr, "bus: %s\n",
               error.message.empty() ? errc_name(error.code) : error.message.c_str());
  switch (error.code) {
    case Errc::invalid_argument:
    case Errc::invalid_subject:
      return kExitUsage;
    default:
      return kExitFailure;
  }
}

int report_usage(std::string_view message) {
  std::fprintf(stderr, "bus: %.*s\n", static_cast<int>(message.size()), message.data());
  return kExitUsage;
}

void install_stop_signals() {
  struct sigaction action {};
  action.sa_handler = on_stop_signal;
  sigemptyset(&action.sa_mask);
  // SA_RESTART: the verbs poll stop_requested() between bounded waits, so library calls need
  // not see EINTR. SA_RESETHAND: a second Ctrl-C kills the usual way if a verb is stuck.
  action.sa_flags = SA_RESTART | SA_RESETHAND;
  sigaction(SIGINT, &action, nullptr);
  sigaction(SIGTERM, &action, nullptr);
}

bool stop_requested() noexcept { return g_stop_requested != 0; }

bool BrokerWatch::gone() {
  const auto now = std::chrono::steady_clock::now();
  if (now < next_check_) return false;
  next_check_ = now + kPollInterval;
  // Reconnecting is not gone: only a broker that will not (or can not) take us back is.
  return conn_.status() == ConnectionStatus::closed;
}

Error broker_gone_error(std::string_view bus_name) {
  return make_error(Errc::broker_gone, "lost the connection to bus '" + std::string(bus_name) +
                                           "': its broker (busd) stopped or died and did not take us back");
}

std::int64_t realtime_ns() noexcept {
  timespec ts{};
  ::clock_gettime(CLOCK_REALTIME, &ts);
  return static_cast<std::int64_t>(ts.tv_sec) * 1'000'000'000 + ts.tv_nsec;
}

void append_row(std::string& out, const char* key, const std::string& value) {
  char line[512];
  std::snprintf(line, sizeof line, "%22s: %s\n", key, value.c_str());
  out += line;
}

std::string join(const std::vector<std::string>& parts, const char* separator) {
  std::string out;
  for (const auto& p : parts) out += (out.empty() ? "" : separator) + p;
  return out;
}

}  // namespace bus::cli

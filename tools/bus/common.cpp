// common.cpp — shared plumbing of the `bus` CLI verbs (see common.hpp).
#include "common.hpp"

#include <csignal>
#include <cstdio>
#include <ctime>
#include <cstdlib>

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

void add_client_flags(CLI::App& command, ClientFlags& flags, bool with_timeout) {
  command.add_option("--bus", flags.bus_name, "Bus name (env BUS_NAME)")
      ->type_name("NAME")
      ->default_str("default");
  if (with_timeout) {
    tools::add_duration_option(command, "--timeout", flags.timeout,
                               "How long to wait for the broker (e.g. 500ms, 2s)");
  }
}

Result<Connection> connect(const ClientFlags& flags, std::string_view client_name) {
  ConnectOptions options;
  options.name = std::string(client_name);
  // Round up so a sub-millisecond --timeout does not become "no wait at all".
  options.control_timeout = std::chrono::ceil<std::chrono::milliseconds>(flags.timeout);
  // Across a broker restart the verbs keep going (the data path needs no broker); say so.
  const std::string bus = flags.bus_name;
  options.disconnected_cb = [bus] {
    std::fprintf(stderr, "bus: lost the broker of bus '%s'; reconnecting (messages keep flowing)\n", bus.c_str());
  };
  options.reconnected_cb = [bus] { std::fprintf(stderr, "bus: reconnected to the broker of bus '%s'\n", bus.c_str()); };
  return Connection::connect(flags.bus_name, options);
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

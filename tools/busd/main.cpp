// busd — the broker daemon: bus::Broker::run() plus flags and signal handling.
//
//   busd [--bus NAME] [--max-clients N] [--max-subscriptions N] [--max-routes N]
//        [--max-fanout N] [--ring-bytes SIZE] [--max-payload SIZE] [--max-streams N]
//        [--store-dir DIR] [--mode OCTAL] [-q]
//        [--nats URL[,URL] --export PATTERN --import PATTERN --prefix P --bridge-config FILE ...]
//
// With --nats (or --bridge-config) busd also runs the NATS bridge in-process, with exactly the
// options of `bus bridge` (bus/bridge.hpp, docs/scale-out.md); it stops the bridge first.
// Runs in the foreground until SIGINT or SIGTERM, then exits 0: it removes the bus's segment
// if no client is attached, else leaves it for the next busd to adopt (docs/failure.md).
// On start it adopts a segment a dead busd left, or replaces (supersedes) one it cannot adopt.
// Exit 1 when the broker fails (another busd serves the bus, /dev/shm full...), 2 on bad flags.

#include <CLI/CLI.hpp>
#include <chrono>
#include <cerrno>
#include <csignal>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "bus/bus.hpp"
#include "cli_units.hpp"
#ifdef BUS_HAVE_BRIDGE
#include <atomic>
#include <thread>

#include "bridge_flags.hpp"
#include "bus/bridge.hpp"
#endif

#ifndef BUS_VERSION_STRING
#define BUS_VERSION_STRING "unknown"
#endif

namespace {

constexpr int kExitOk = 0;
constexpr int kExitFailure = 1;
constexpr int kExitUsage = 2;

#ifdef BUS_HAVE_BRIDGE
// Lock-free atomics, set from the signal handler: with a bridge, main() stops it and then the
// broker itself, in that order.
std::atomic<bool> g_bridging{false};
std::atomic<bool> g_stop{false};
#endif

extern "C" void on_stop_signal(int /*signo*/) {
#ifdef BUS_HAVE_BRIDGE
  if (g_bridging.load(std::memory_order_relaxed)) {
    g_stop.store(true, std::memory_order_relaxed);
    return;
  }
#endif
  bus::Broker::request_stop_all();
}

bool install_signal_handlers() {
  struct sigaction action {};
  action.sa_handler = on_stop_signal;
  sigemptyset(&action.sa_mask);
  // SA_RESTART: the stop travels through request_stop_all(), not through EINTR, so spare the
  // broker's other system calls from failing with it. SA_RESETHAND: if stopping ever hangs, a
  // second Ctrl-C kills busd the default way.
  action.sa_flags = SA_RESTART | SA_RESETHAND;
  if (sigaction(SIGINT, &action, nullptr) != 0 || sigaction(SIGTERM, &action, nullptr) != 0) {
    return false;
  }
  // A daemon must not die because whoever reads its log went away.
  struct sigaction ignore {};
  ignore.sa_handler = SIG_IGN;
  sigemptyset(&ignore.sa_mask);
  return sigaction(SIGPIPE, &ignore, nullptr) == 0;
}

// "0600", "600", "0o660" -> mode bits; rewritten to decimal so CLI11 can bind it to mode_t.
CLI::Validator octal_mode_transformer() {
  return CLI::Validator(
      [](std::string& text) -> std::string {
        std::string digits = text;
        if (digits.rfind("0o", 0) == 0) digits.erase(0, 2);
        if (digits.empty() || digits.size() > 4 ||
            digits.find_first_not_of("01234567") != std::string::npos) {
          return "invalid mode '" + text + "': expected octal permission bits such as 0600";
        }
        const auto mode = std::stoul(digits, nullptr, 8);
        if (mode > 0777) return "invalid mode '" + text + "': only permission bits (<= 0777)";
        text = std::to_string(mode);
        return {};
      },
      "");
}

std::string default_bus_name() {
  const char* env = std::getenv("BUS_NAME");
  return env != nullptr && *env != '\0' ? env : "default";
}

}  // namespace

int main(int argc, char** argv) {
  bus::BrokerOptions options;
  options.bus_name = default_bus_name();
  bool quiet = false;

  CLI::App app{"busd: the broker of a bus (shared-memory message bus with NATS semantics)",
               "busd"};
  app.set_version_flag("--version", BUS_VERSION_STRING);
  // The ranges the broker accepts (Segment::create's limits); every refusal says the range the
  // same way (cli_units.hpp), before the broker is started.
  constexpr std::uint64_t kMaxClients = 4096;
  constexpr std::uint64_t kMaxSubscriptions = 1u << 20;
  constexpr std::uint64_t kMaxRoutes = 1u << 20;
  constexpr std::uint64_t kMaxStreams = 4096;
  app.add_option("--bus", options.bus_name, "Bus name (env BUS_NAME)")
      ->type_name("NAME")
      ->default_str("default");
  app.add_option("--max-clients", options.max_clients, "Connections at once (1 to 4096)")
      ->type_name("N")
      ->check(bus::tools::count_in_range(1, kMaxClients))
      ->capture_default_str();
  app.add_option("--max-subscriptions", options.max_subscriptions,
                 "Subscriptions at once, each with its own ring (1 to 1048576)")
      ->type_name("N")
      ->check(bus::tools::count_in_range(1, kMaxSubscriptions))
      ->capture_default_str();
  app.add_option("--max-routes", options.max_routes, "Distinct subjects published to at once (1 to 1048576)")
      ->type_name("N")
      ->check(bus::tools::count_in_range(1, kMaxRoutes))
      ->capture_default_str();
  auto* max_fanout =
      app.add_option("--max-fanout", options.max_fanout,
                     "Subscriptions one subject may reach (1 to --max-subscriptions; the default is lowered to "
                     "--max-subscriptions when that is smaller)")
          ->type_name("N")
          ->check(bus::tools::count_in_range(1, kMaxSubscriptions))
          ->capture_default_str();
  bus::tools::add_size_option(app, "--ring-bytes", options.ring_bytes,
                              "Ring size per subscription, a power of two from 4KiB to 1GiB (e.g. 64KiB, 4M)",
                              {4096, std::uint64_t{1} << 30, /*power_of_two=*/true});
  bus::tools::add_size_option(app, "--max-payload", options.max_payload,
                              "Largest headers + payload accepted, from 1B to 512MiB (and at most about half of "
                              "--ring-bytes)",
                              {1, std::uint64_t{1} << 29});
  app.add_option("--max-streams", options.max_streams, "Streams served at once (0 to 4096; 0: none)")
      ->type_name("N")
      ->check(bus::tools::count_in_range(0, kMaxStreams))
      ->capture_default_str();
  app.add_option("--store-dir,--sd", options.store_dir,
                 "Where streams are kept (default $BUS_STATE_DIR/BUS, /var/lib/bus/BUS as root, else "
                 "~/.local/state/bus/BUS)")
      ->type_name("DIR");
  app.add_option("--mode", options.mode, "Permissions of the shared-memory segment")
      ->type_name("OCTAL")
      ->transform(octal_mode_transformer())
      ->default_str("0600");
  int http_port = -1;
  app.add_option("-m,--http-port", http_port,
                 "Monitoring HTTP port on 127.0.0.1, 0 to 65535 (/varz /connz /subsz /jsz /healthz /metrics; 0: any)")
      ->type_name("PORT")
      ->check(bus::tools::count_in_range(0, 65535));
  app.add_option("--http", options.http, "Monitoring HTTP address HOST:PORT (instead of -m)")
      ->type_name("HOST:PORT")
      ->excludes("--http-port");
  bus::tools::add_duration_option(app, "--statsz", options.statsz_interval,
                                  "How often to publish $SYS.SERVER.<id>.STATSZ (0: never)");
  app.add_flag("-q,--quiet", quiet, "Do not log events to stderr");
#ifdef BUS_HAVE_BRIDGE
  bus::tools::BridgeFlags bridge_flags;
  bus::tools::add_bridge_flags(app, bridge_flags);
#endif

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    if (e.get_exit_code() == static_cast<int>(CLI::ExitCodes::Success)) return app.exit(e);
    std::fprintf(stderr, "busd: %s (see busd --help)\n", e.what());
    return kExitUsage;
  }
  if (options.max_fanout > options.max_subscriptions) {
    if (max_fanout->count() > 0) {
      std::fprintf(stderr,
                   "busd: --max-fanout: '%u' is not a whole number from 1 to %u (--max-subscriptions) "
                   "(see busd --help)\n",
                   options.max_fanout, options.max_subscriptions);
      return kExitUsage;
    }
    options.max_fanout = options.max_subscriptions;  // no subject can reach more anyway
  }
  options.log = !quiet;
  if (http_port >= 0) options.http = std::to_string(http_port);

  if (!install_signal_handlers()) {
    std::perror("busd: signal set-up");
    return kExitFailure;
  }

#ifdef BUS_HAVE_BRIDGE
  if (bridge_flags.wanted()) {
    auto bridge_options = bus::tools::to_bridge_options(bridge_flags, options.bus_name);
    if (!bridge_options) {
      std::fprintf(stderr, "busd: %s (see busd --help)\n", bridge_options.error().message.c_str());
      return kExitUsage;
    }
    bridge_options->log = !quiet;
    g_bridging.store(true, std::memory_order_relaxed);
    // The broker on its own thread, the bridge beside it; on a signal the bridge stops first,
    // while its broker can still answer its unsubscribes.
    auto broker = bus::Broker::start(options);
    if (!broker) {
      std::fprintf(stderr, "busd: %s\n", broker.error().message.c_str());
      return broker.error().code == bus::Errc::invalid_argument ? kExitUsage : kExitFailure;
    }
    auto bridge = bus::Bridge::start(*bridge_options);
    if (!bridge) {
      std::fprintf(stderr, "busd: bridge: %s\n", bridge.error().message.c_str());
      (void)broker->stop();
      return kExitFailure;
    }
    while (!g_stop.load(std::memory_order_relaxed) && broker->running()) {
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    (void)bridge->stop();
    const bus::Status stopped = broker->stop();
    return stopped ? kExitOk : kExitFailure;
  }
#endif
  // A signal that lands before run() has started still stops it (request_stop_all is sticky).
  const bus::Status status = bus::Broker::run(options);
  if (!status) {
    const auto& error = status.error();
    std::fprintf(stderr, "busd: %s\n",
                 error.message.empty() ? bus::errc_name(error.code) : error.message.c_str());
    // The broker is the one that knows which sizes it can honour (power-of-two rings, limits):
    // its refusal of an option is still a usage error.
    return error.code == bus::Errc::invalid_argument ? kExitUsage : kExitFailure;
  }
  return kExitOk;
}

// cmd_bridge.cpp — `bus bridge`: connects this bus to a NATS server or cluster (bus/bridge.hpp).
//
//   bus bridge --nats nats://10.0.0.1:4222,nats://10.0.0.2:4222 --export 'orders.>' --import 'orders.>'
//   bus bridge --bridge-config /etc/bus/bridge.json
//
// Runs until SIGINT/SIGTERM; with --stats DURATION prints its counters as one JSON line that
// often (also served on the bus: bus req '$BUS.BRIDGE.<name>.STATUSZ' '').
#include <chrono>
#include <cstdio>
#include <thread>

#include "common.hpp"
#include "verbs.hpp"

#ifdef BUS_HAVE_BRIDGE
#include "bridge_flags.hpp"
#include "bus/bridge.hpp"
#endif

namespace bus::cli {

namespace {

struct BridgeVerb {
  ClientFlags client;
#ifdef BUS_HAVE_BRIDGE
  tools::BridgeFlags bridge;
#endif
  std::chrono::nanoseconds stats_every{0};
};

}  // namespace

VerbRunner setup_bridge(CLI::App& command) {
  auto v = std::make_shared<BridgeVerb>();
  add_client_flags(command, v->client,
                   {.timeout_help = {}, .name = false, .wait_help = "Wait this long for the bus's broker to start"});
#ifdef BUS_HAVE_BRIDGE
  tools::add_bridge_flags(command, v->bridge, "");
#endif
  tools::add_duration_option(command, "--stats", v->stats_every, "Print the counters as a JSON line this often (0: at exit only)");
  command.footer(
      "Messages cross with headers, reply subjects and payloads; request/reply and queue groups work across;\n"
      "what came from NATS is never sent back. The bridge subscribes on NATS only for what bus subscribers want.\n"
      "Examples:\n"
      "  bus bridge --nats nats://127.0.0.1:4222 --export 'orders.>' --import 'orders.>'\n"
      "  bus bridge --nats nats://hub:4222 --export 'metrics.>' --prefix host1.\n"
      "  bus req '$BUS.BRIDGE.bridge.STATUSZ' ''      its counters, from any bus client");
  return [v]() -> int {
#ifndef BUS_HAVE_BRIDGE
    return report(Error{Errc::invalid_argument, "this bus was built without the NATS C client (libnats-dev): no bridge"});
#else
    auto options = tools::to_bridge_options(v->bridge, v->client.bus_name);
    if (!options) return report_usage(options.error().message);
    options->wait_for_broker = std::chrono::duration_cast<std::chrono::milliseconds>(v->client.wait_for_broker);
    install_stop_signals();
    auto bridge = Bridge::start(*options);
    if (!bridge) return report(bridge.error());
    auto next = std::chrono::steady_clock::now() + v->stats_every;
    while (!stop_requested()) {
      std::this_thread::sleep_for(kPollInterval);
      if (v->stats_every.count() > 0 && std::chrono::steady_clock::now() >= next) {
        std::printf("%s\n", bridge_stats_json(bridge->stats()).c_str());
        std::fflush(stdout);
        next += v->stats_every;
      }
    }
    const auto last = bridge->stats();
    (void)bridge->stop();
    std::printf("%s\n", bridge_stats_json(last).c_str());
    return kExitOk;
#endif
  };
}

}  // namespace bus::cli

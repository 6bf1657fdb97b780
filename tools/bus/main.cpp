// main.cpp — `bus`, the command-line client of a bus, after the nats CLI: the verb registry and
// the dispatch. Each verb's flags and behaviour live in cmd_<verb>.cpp.
#include <CLI/CLI.hpp>
#include <algorithm>
#include <array>
#include <cstdio>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common.hpp"
#include "verbs.hpp"

#ifndef BUS_VERSION_STRING
#define BUS_VERSION_STRING "unknown"
#endif

namespace {

using bus::cli::Verb;

constexpr std::array kVerbs{
    Verb{"pub", "Publish a message (BODY or stdin), optionally N times", bus::cli::setup_pub},
    Verb{"sub", "Subscribe to a subject pattern and print what arrives", bus::cli::setup_sub},
    Verb{"req", "Send a request and print the reply", bus::cli::setup_req},
    Verb{"reply", "Answer requests on a subject (a queue-group service)", bus::cli::setup_reply},
    Verb{"stream", "Manage streams: add, ls, info, get, view, rm (as nats stream)", bus::cli::setup_stream},
    Verb{"consumer", "Manage and read consumers: add, ls, info, rm, next (as nats consumer)", bus::cli::setup_consumer},
    Verb{"bench", "Benchmark publishers and subscribers in separate processes", bus::cli::setup_bench},
    Verb{"server", "Watch the bus: info, report connections|subscriptions, ls, clean (as nats server)", bus::cli::setup_server},
    Verb{"top", "Live view of clients and subscriptions: rates, ring fill, drops (as nats-top)", bus::cli::setup_top},
    Verb{"events", "Print the broker's $SYS events: connects, disconnects, slow consumers (as nats events)", bus::cli::setup_events},
};

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"bus: command-line client of a shared-memory message bus with NATS semantics",
               "bus"};
  app.set_version_flag("--version", BUS_VERSION_STRING);
  app.require_subcommand(1);

  std::vector<std::pair<CLI::App*, bus::cli::VerbRunner>> verbs;
  verbs.reserve(kVerbs.size());
  for (const auto& verb : kVerbs) {
    CLI::App* command = app.add_subcommand(std::string(verb.name), std::string(verb.summary));
    verbs.emplace_back(command, verb.setup(*command));
  }
  // Set after the verbs exist so they do not inherit it.
  app.footer(
      "Every verb takes --bus NAME (env BUS_NAME, default 'default'); see bus VERB --help.\n"
      "Examples:\n"
      "  bus sub 'orders.>'                          print what arrives (with headers)\n"
      "  bus pub orders.new 'order {{Count}}' --count 3 -H Trace-Id:42\n"
      "  bus reply svc.time 'it is {{Count}}'        answer requests (queue group NATS-RPLY-22)\n"
      "  bus req svc.time now --timeout 1s           print the reply (exit 1: no responders)\n"
      "  bus stream add ORDERS --subjects 'orders.>'  keep what is published on orders.>\n"
      "  bus pub --ack orders.new 'order {{Count}}'    wait until stored; print stream and sequence\n"
      "  bus bench s --pub 1 --sub 2 --size 64       throughput between processes (--latency)\n"
      "  bus server info                             the broker, uptime, totals (--json: /varz)\n"
      "  bus top                                     live clients and subscriptions (--once: one frame)");

  if (argc <= 1) {
    std::fputs(app.help().c_str(), stderr);
    return bus::cli::kExitUsage;
  }
  // Name the verb in errors: "unknown verb" beats CLI11's "A subcommand is required".
  const std::string_view first = argv[1];
  const auto known = std::find_if(kVerbs.begin(), kVerbs.end(),
                                  [&](const Verb& verb) { return verb.name == first; });
  if (known == kVerbs.end() && !first.starts_with("-")) {
    std::string names;
    for (const auto& verb : kVerbs) names += (names.empty() ? "" : ", ") + std::string(verb.name);
    std::fprintf(stderr, "bus: unknown verb '%s' (verbs: %s)\n", argv[1], names.c_str());
    return bus::cli::kExitUsage;
  }
  const std::string help_hint =
      known == kVerbs.end() ? "bus --help" : "bus " + std::string(known->name) + " --help";

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    if (e.get_exit_code() == static_cast<int>(CLI::ExitCodes::Success)) return app.exit(e);
    std::fprintf(stderr, "bus: %s (see %s)\n", e.what(), help_hint.c_str());
    return bus::cli::kExitUsage;
  }

  for (auto& [command, run] : verbs) {
    if (command->parsed()) return run();
  }
  return bus::cli::kExitUsage;  // unreachable: require_subcommand(1)
}

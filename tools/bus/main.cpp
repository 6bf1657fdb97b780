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
    Verb{"bridge", "Connect this bus to a NATS server or cluster: --export / --import subject patterns", bus::cli::setup_bridge},
};

// The verb of `argv`: the first argument that is not a global flag (or a global flag's value).
// argc when there is none.
int verb_index(int argc, char** argv) {
  for (int i = 1; i < argc; ++i) {
    const std::string_view arg = argv[i];
    if (!arg.starts_with("-")) return i;
    const bool takes_value = arg == "--bus" || arg == "--timeout" || arg == "--name" || arg == "--wait-for-broker";
    if (takes_value) ++i;  // its value follows (the `--bus=X` form has it inside)
  }
  return argc;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"bus: command-line client of a shared-memory message bus with NATS semantics",
               "bus"};
  app.set_version_flag("--version", BUS_VERSION_STRING);
  app.require_subcommand(1);
  // Before the verbs: they inherit the fallthrough that passes global flags up to the app.
  bus::cli::add_global_flags(app);

  std::vector<std::pair<CLI::App*, bus::cli::VerbRunner>> verbs;
  verbs.reserve(kVerbs.size());
  for (const auto& verb : kVerbs) {
    CLI::App* command = app.add_subcommand(std::string(verb.name), std::string(verb.summary));
    verbs.emplace_back(command, verb.setup(*command));
  }
  // Set after the verbs exist so they do not inherit it.
  app.footer(
      "The global flags go before or after the verb: bus --bus X pub ... is bus pub --bus X ...\n"
      "(given in both places, the one after the verb wins). See bus VERB --help.\n"
      "Examples:\n"
      "  bus sub 'orders.>'                          print what arrives (with headers)\n"
      "  bus pub orders.new 'order {{Count}} {{ID}}' --count 3 -H Trace-Id:42\n"
      "  bus reply svc.time 'it is {{TimeStamp}}'    answer requests (queue group NATS-RPLY-22)\n"
      "  bus reply svc.upper --command 'tr a-z A-Z'  answer with a command's output\n"
      "  bus req svc.time now --timeout 1s           print the reply (exit 1: no responders)\n"
      "  bus req svc.who '' --replies 0              every reply within --timeout\n"
      "  bus --wait-for-broker 5s sub 'orders.>'     no readiness loop: wait for busd to start\n"
      "  bus stream add ORDERS --subjects 'orders.>'  keep what is published on orders.>\n"
      "  bus pub --ack orders.new 'order {{Count}}'    wait until stored; print stream and sequence\n"
      "  bus bench s --pub 1 --sub 2 --size 64       throughput between processes (--latency)\n"
      "  bus server info                             the broker, uptime, totals (--json: /varz)\n"
      "  bus top                                     live clients and subscriptions (--once: one frame)\n"
      "  bus bridge --nats nats://hub:4222 --export 'orders.>' --import 'orders.>'   this bus and NATS as one");

  if (argc <= 1) {
    std::fputs(app.help().c_str(), stderr);
    return bus::cli::kExitUsage;
  }
  // Name the verb in errors: "unknown verb" beats CLI11's "A subcommand is required".
  const int at = verb_index(argc, argv);
  const std::string_view first = at < argc ? std::string_view(argv[at]) : std::string_view{};
  const auto known = std::find_if(kVerbs.begin(), kVerbs.end(),
                                  [&](const Verb& verb) { return verb.name == first; });
  if (known == kVerbs.end() && !first.empty()) {
    std::string names;
    for (const auto& verb : kVerbs) names += (names.empty() ? "" : ", ") + std::string(verb.name);
    std::fprintf(stderr, "bus: unknown verb '%s' (verbs: %s)\n", argv[at], names.c_str());
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
  bus::cli::apply_global_flags();

  for (auto& [command, run] : verbs) {
    if (command->parsed()) return run();
  }
  return bus::cli::kExitUsage;  // unreachable: require_subcommand(1)
}

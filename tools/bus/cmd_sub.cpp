// cmd_sub.cpp — `bus sub PATTERN`: subscribe and print each message (with its headers) as the
// nats CLI does, or only the payloads with --raw; exit after --count messages or on
// SIGINT/SIGTERM (exit 0), or with 1 when the broker goes away.
//
// Scripts rely on "Listening on [PATTERN]" (stderr) appearing only once subscribe() has
// returned: any publish that starts after that line reaches this subscriber.
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <memory>
#include <string>
#include <string_view>

#include "cli_units.hpp"
#include "common.hpp"
#include "message_io.hpp"
#include "verbs.hpp"

namespace bus::cli {
namespace {

struct SubFlags {
  ClientFlags client;
  std::string pattern;
  std::string queue;
  std::uint64_t count = 0;  ///< 0: until interrupted
  bool raw = false;
};

int run_sub(const SubFlags& flags) {
  if (auto valid = validate_pattern(flags.pattern); !valid) return report(valid.error());

  // Before connecting: a signal from here on ends the loop below instead of the process.
  install_stop_signals();

  // Interrupted while still setting up: a clean exit, like an interrupt at any later point.
  auto conn = connect(flags.client, "bus sub " + flags.pattern);
  if (!conn) return stop_requested() ? kExitOk : report(conn.error());

  SubscribeOptions options;
  options.queue_group = flags.queue;
  auto sub = conn->subscribe(flags.pattern, options);
  if (!sub) return stop_requested() ? kExitOk : report(sub.error());

  if (flags.queue.empty()) {
    std::fprintf(stderr, "Listening on [%s]\n", flags.pattern.c_str());
  } else {
    std::fprintf(stderr, "Listening on [%s] in queue group [%s]\n", flags.pattern.c_str(),
                 flags.queue.c_str());
  }
  std::fflush(stderr);

  CountWarning drops("slow consumer on [" + flags.pattern + "]",
                     "messages dropped because the ring was full");
  BrokerWatch broker(*conn);
  std::uint64_t received = 0;
  while (!stop_requested() && (flags.count == 0 || received < flags.count)) {
    auto msg = sub->next(kPollInterval);
    drops.update(sub->dropped_count());
    // Checked while busy too: publishers with a cached route keep writing without the broker.
    if (broker.gone()) return report(broker_gone_error(flags.client.bus_name));
    if (!msg) {
      if (msg.error().code != Errc::timeout) return report(msg.error());
      continue;
    }
    ++received;
    print_message(*msg, received, flags.raw);
  }
  drops.update(sub->dropped_count(), /*force=*/true);
  if (auto done = sub->unsubscribe(); !done && !stop_requested()) return report(done.error());
  return kExitOk;
}

}  // namespace

VerbRunner setup_sub(CLI::App& command) {
  auto flags = std::make_shared<SubFlags>();
  command.add_option("PATTERN", flags->pattern, "Subject pattern: `*` one token, `>` the rest")
      ->type_name("")
      ->required();
  command.add_option("--count", flags->count, "Exit after this many messages (0: never)")
      ->type_name("N")
      ->check(tools::count_in_range(0))
      ->capture_default_str();
  command.add_flag("-r,--raw", flags->raw, "Print only the payloads, one per line");
  command.add_option("--queue", flags->queue,
                     "Join this queue group: each message goes to one member")
      ->type_name("GROUP");
  add_client_flags(command, flags->client);
  return [flags] { return run_sub(*flags); };
}

}  // namespace bus::cli

// cmd_sub.cpp — `bus sub PATTERN`: subscribe and print each message as the nats CLI does, or
// only the payloads with --raw; exit after --count messages or on SIGINT/SIGTERM (exit 0).
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
#include "verbs.hpp"

namespace bus::cli {
namespace {

// How often the pull loop looks at the stop flag and the connection while idle.
constexpr auto kPollInterval = std::chrono::milliseconds(200);
// Slow-consumer warnings are rate limited so a flood of drops does not become a flood of lines.
constexpr auto kDropReportInterval = std::chrono::seconds(1);

struct SubFlags {
  ClientFlags client;
  std::string pattern;
  std::string queue;
  std::uint64_t count = 0;  ///< 0: until interrupted
  bool raw = false;
};

void append_quoted(std::string& out, std::string_view text) {
  out += '"';
  out.append(text);
  out += '"';
}

// The header block is "NATS/1.0[ status[ description]]\r\n(Name: value\r\n)*\r\n". Print the
// status line only when it carries a status, then one line per header.
void append_headers(std::string& out, std::string_view block) {
  bool first = true;
  bool any = false;
  while (!block.empty()) {
    auto end = block.find('\n');
    std::string_view line = block.substr(0, end);
    block = end == std::string_view::npos ? std::string_view{} : block.substr(end + 1);
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    const bool bare_version = first && line == "NATS/1.0";
    first = false;
    if (line.empty() || bare_version) continue;
    out.append(line);
    out += '\n';
    any = true;
  }
  if (any) out += '\n';
}

void print_message(const Message& msg, std::uint64_t number, bool raw) {
  std::string out;
  out.reserve(msg.data.size() + msg.subject.size() + 64);
  if (raw) {
    out = msg.data;
    out += '\n';
  } else {
    out += "[#" + std::to_string(number) + "] Received on ";
    append_quoted(out, msg.subject);
    if (!msg.reply.empty()) {
      out += " with reply ";
      append_quoted(out, msg.reply);
    }
    out += '\n';
    append_headers(out, msg.headers);
    out += msg.data;
    if (msg.data.empty() || msg.data.back() != '\n') out += '\n';
    out += '\n';
  }
  std::fwrite(out.data(), 1, out.size(), stdout);
  // Flush per message: whoever reads a pipe (a script, `grep --line-buffered`) sees it now.
  std::fflush(stdout);
}

// Warns on stderr when the ring overflowed since the last warning (at most once a second).
class DropReporter {
 public:
  explicit DropReporter(std::string_view pattern) : pattern_(pattern) {}

  void check(const Subscription& sub, bool force = false) {
    const auto dropped = sub.dropped_count();
    if (dropped <= reported_) return;
    const auto now = std::chrono::steady_clock::now();
    if (!force && reported_ != 0 && now - last_report_ < kDropReportInterval) return;
    std::fprintf(stderr,
                 "bus: slow consumer on [%s]: %llu messages dropped because the ring was full "
                 "(%llu in all)\n",
                 pattern_.c_str(), static_cast<unsigned long long>(dropped - reported_),
                 static_cast<unsigned long long>(dropped));
    reported_ = dropped;
    last_report_ = now;
  }

 private:
  std::string pattern_;
  std::uint64_t reported_ = 0;
  std::chrono::steady_clock::time_point last_report_{};
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

  DropReporter drops(flags.pattern);
  std::uint64_t received = 0;
  while (!stop_requested() && (flags.count == 0 || received < flags.count)) {
    auto msg = sub->next(kPollInterval);
    drops.check(*sub);
    if (!msg) {
      if (msg.error().code != Errc::timeout) return report(msg.error());
      if (!conn->connected()) {
        return report(make_error(Errc::broker_gone, "lost the connection to bus '" +
                                                        flags.client.bus_name + "'"));
      }
      continue;
    }
    ++received;
    print_message(*msg, received, flags.raw);
  }
  drops.check(*sub, /*force=*/true);
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

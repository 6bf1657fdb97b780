// cmd_reply.cpp — `bus reply SUBJECT [BODY]`: a service that answers every request on SUBJECT
// (a pattern) with BODY, or with the request's own body and headers (--echo, also when BODY is
// omitted, as `nats reply` does). BODY and -H values are templates: `{{Count}}` is the request
// number 1..N.
//
// It joins queue group --queue (default NATS-RPLY-22, the nats CLI's), so several `bus reply`
// processes on one subject share the requests. Each request is printed on stdout as `bus sub`
// prints messages (not with --quiet). Exit 0 after --count requests or on SIGINT/SIGTERM, 1 when
// the broker goes away.
//
// Scripts rely on "Listening on [SUBJECT] in group [GROUP]" (stderr) appearing only once the
// subscription exists: a request sent after that line finds a responder.
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

constexpr std::string_view kDefaultQueue = "NATS-RPLY-22";  // natscli's reply queue group

struct ReplyFlags {
  ClientFlags client;
  std::string subject;
  std::string body;
  CLI::Option* body_option = nullptr;  ///< not given: echo mode
  std::string queue{kDefaultQueue};
  HeaderFlags headers;
  std::uint64_t count = 0;  ///< 0: until interrupted
  bool echo = false;
  bool quiet = false;
  bool no_templates = false;
};

// The answer to request number `n`: BODY (or the request's body with --echo) plus headers.
Status answer(const ReplyFlags& flags, const Message& request, std::uint64_t n,
              bool body_template) {
  Headers headers;
  if (flags.echo) {
    // A request whose header block does not parse is echoed without it.
    if (auto parsed = request.header(); parsed) headers = std::move(*parsed);
  }
  flags.headers.append_to(headers, n);
  const std::string expanded = !flags.echo && body_template ? expand_templates(flags.body, n) : "";
  const std::string_view data = flags.echo        ? std::string_view(request.data)
                                : body_template   ? std::string_view(expanded)
                                                  : std::string_view(flags.body);
  return headers.empty() ? request.respond(data) : request.respond(data, headers);
}

int run_reply(ReplyFlags& flags) {
  if (auto valid = validate_pattern(flags.subject); !valid) return report(valid.error());
  if (auto parsed = flags.headers.parse(!flags.no_templates); !parsed) {
    return report_usage(parsed.error().message);
  }
  if (!flags.echo && flags.body_option->count() == 0) {
    std::fputs("No body supplied, enabling echo mode\n", stderr);
    flags.echo = true;
  }
  const bool body_template = !flags.echo && !flags.no_templates && has_template(flags.body);

  // Before connecting: a signal from here on ends the loop below instead of the process.
  install_stop_signals();

  auto conn = connect(flags.client, "bus reply " + flags.subject);
  if (!conn) return stop_requested() ? kExitOk : report(conn.error());

  auto sub = flags.queue.empty() ? conn->subscribe(flags.subject)
                                 : conn->queue_subscribe(flags.subject, flags.queue);
  if (!sub) return stop_requested() ? kExitOk : report(sub.error());

  if (flags.queue.empty()) {
    std::fprintf(stderr, "Listening on [%s]\n", flags.subject.c_str());
  } else {
    std::fprintf(stderr, "Listening on [%s] in group [%s]\n", flags.subject.c_str(),
                 flags.queue.c_str());
  }
  std::fflush(stderr);

  CountWarning drops("slow consumer on [" + flags.subject + "]",
                     "requests dropped because the ring was full");
  CountWarning ignored("not a request on [" + flags.subject + "]",
                       "messages without a reply subject ignored");
  BrokerWatch broker(*conn);
  std::uint64_t answered = 0;
  std::uint64_t not_requests = 0;
  while (!stop_requested() && (flags.count == 0 || answered < flags.count)) {
    auto msg = sub->next(kPollInterval);
    drops.update(sub->dropped_count());
    ignored.update(not_requests);
    if (broker.gone()) return report(broker_gone_error(flags.client.bus_name));
    if (!msg) {
      if (msg.error().code != Errc::timeout) return report(msg.error());
      continue;
    }
    if (msg->reply.empty()) {
      ++not_requests;
      ignored.update(not_requests);
      continue;
    }
    ++answered;
    if (!flags.quiet) print_message(*msg, answered, /*raw=*/false);
    if (auto sent = answer(flags, *msg, answered, body_template); !sent) {
      const auto code = sent.error().code;
      if (code == Errc::broker_gone || code == Errc::closed) return report(sent.error());
      // One bad answer (too large for the bus, say) does not stop the service.
      std::fprintf(stderr, "bus: could not answer request #%llu: %s\n",
                   static_cast<unsigned long long>(answered), sent.error().message.c_str());
      std::fflush(stderr);
    }
  }
  drops.update(sub->dropped_count(), /*force=*/true);
  ignored.update(not_requests, /*force=*/true);
  if (auto done = sub->unsubscribe(); !done && !stop_requested()) return report(done.error());
  return kExitOk;
}

}  // namespace

VerbRunner setup_reply(CLI::App& command) {
  auto flags = std::make_shared<ReplyFlags>();
  command.add_option("SUBJECT", flags->subject,
                     "Subject (pattern) to answer requests on: `*` one token, `>` the rest")
      ->type_name("")
      ->required();
  flags->body_option =
      command.add_option("BODY", flags->body, "Reply body; without it, --echo")->type_name("");
  command.add_flag("--echo", flags->echo, "Answer with the request's own body and headers");
  command.add_option("-q,--queue", flags->queue,
                     "Queue group: the `bus reply`s of one group share the requests "
                     "('' for none)")
      ->type_name("GROUP")
      ->capture_default_str();
  flags->headers.add_to(command);
  command.add_option("--count", flags->count, "Exit after answering this many requests (0: never)")
      ->type_name("N")
      ->check(tools::count_in_range(0))
      ->capture_default_str();
  command.add_flag("--quiet", flags->quiet, "Do not print the requests");
  command.add_flag("--no-templates", flags->no_templates,
                   "Send {{Count}} (body, header values) literally");
  add_client_flags(command, flags->client);
  return [flags] { return run_reply(*flags); };
}

}  // namespace bus::cli

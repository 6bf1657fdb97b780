// cmd_req.cpp — `bus req SUBJECT [BODY]`: send a request (BODY or stdin) and print the reply,
// as `nats req` does: `Received with rtt 1.23ms` on stderr, then the reply's headers and body on
// stdout; with --raw only the body. --count N sends N requests one after the other.
//
// SUBJECT, BODY and -H values are templates (`{{Count}}` = request number 1..N) unless
// --no-templates. --timeout is both the wait for the broker and the wait for each reply (the
// nats CLI's --timeout, default 5s). Exit 1 on "no responders" (at once: nobody subscribes to
// SUBJECT) and on a timeout, each reported in one line on stderr.
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

struct ReqFlags {
  ClientFlags client;
  std::string subject;
  std::string body;
  CLI::Option* body_option = nullptr;  ///< not given on the command line: read stdin
  HeaderFlags headers;
  std::uint64_t count = 1;
  bool raw = false;
  bool no_templates = false;
};

void print_reply(const Message& reply, std::chrono::nanoseconds rtt, bool raw) {
  if (!raw) {
    std::fprintf(stderr, "Received with rtt %s\n", format_rtt(rtt).c_str());
    std::fflush(stderr);
  }
  std::string out;
  out.reserve(reply.data.size() + reply.headers.size() + 2);
  if (!raw) append_headers(out, reply.headers);
  out += reply.data;
  // As `bus sub`: --raw always ends the body with a newline, the default only when it lacks one.
  if (raw || reply.data.empty() || reply.data.back() != '\n') out += '\n';
  std::fwrite(out.data(), 1, out.size(), stdout);
  std::fflush(stdout);
}

int report_request_failure(const Error& error, std::string_view subject,
                           std::chrono::nanoseconds timeout) {
  switch (error.code) {
    case Errc::no_responders:
      std::fputs("bus: no responders available for request\n", stderr);
      return kExitFailure;
    case Errc::timeout:
      std::fprintf(stderr, "bus: timeout: no reply to the request on '%.*s' within %s\n",
                   static_cast<int>(subject.size()), subject.data(),
                   tools::format_duration(timeout).c_str());
      return kExitFailure;
    default:
      return report(error);
  }
}

int run_req(ReqFlags& flags) {
  TemplatedText subject(flags.subject, !flags.no_templates);
  // Check the arguments before reading stdin or connecting. (A templated subject is checked as
  // its first expansion.)
  if (auto valid = validate_publish_subject(subject.for_message(1)); !valid) return report(valid.error());
  if (auto parsed = flags.headers.parse(!flags.no_templates); !parsed) {
    return report_usage(parsed.error().message);
  }
  if (flags.client.timeout.count() <= 0) return report_usage("--timeout must be above 0");

  auto body_text = body_or_stdin(flags.body_option, flags.body);
  if (!body_text) return report(body_text.error());
  TemplatedText body(std::move(body_text).value(), !flags.no_templates);

  auto conn = connect(flags.client, "bus req");
  if (!conn) return report(conn.error());

  for (std::uint64_t n = 1; n <= flags.count; ++n) {
    const std::string_view subject_view = subject.for_message(n);
    const std::string_view data = body.for_message(n);
    const Headers headers = flags.headers.build(n);

    const auto start = std::chrono::steady_clock::now();
    auto reply = conn->request(subject_view, data, flags.client.timeout,
                               headers.empty() ? nullptr : &headers);
    const auto rtt = std::chrono::steady_clock::now() - start;
    if (!reply) return report_request_failure(reply.error(), subject_view, flags.client.timeout);
    print_reply(*reply, rtt, flags.raw);
  }
  return kExitOk;
}

}  // namespace

VerbRunner setup_req(CLI::App& command) {
  auto flags = std::make_shared<ReqFlags>();
  command.add_option("SUBJECT", flags->subject, "Subject to send the request to (no wildcards)")
      ->type_name("")
      ->required();
  flags->body_option =
      command.add_option("BODY", flags->body, "Request body; read from stdin when omitted")
          ->type_name("");
  flags->headers.add_to(command);
  command.add_option("--count", flags->count, "Send this many requests, one after the other")
      ->type_name("N")
      ->check(tools::count_in_range(1))
      ->capture_default_str();
  command.add_flag("-r,--raw", flags->raw, "Print only the reply bodies, one per line");
  command.add_flag("--no-templates", flags->no_templates,
                   "Send {{Count}} (subject, body, header values) literally");
  command.add_option("--bus", flags->client.bus_name, "Bus name (env BUS_NAME)")
      ->type_name("NAME")
      ->default_str("default");
  tools::add_duration_option(command, "--timeout", flags->client.timeout,
                             "How long to wait for each reply (and for the broker), e.g. 500ms");
  return [flags] { return run_req(*flags); };
}

}  // namespace bus::cli

// cmd_req.cpp — `bus req SUBJECT [BODY]`: send a request (BODY or stdin) and print the reply,
// as `nats req` does: `Received with rtt 1.23ms` on stderr, then the reply's headers and body on
// stdout; with --raw only the body. --count N sends N requests one after the other.
//
// SUBJECT, BODY and -H values are templates (templates.hpp: `{{Count}}` = request number 1..N,
// `{{ID}}`, `{{UnixNano}}`...) unless --templates=false. --timeout is how long each call to the
// broker waits for its answer and how long to wait for each reply (the nats CLI's --timeout,
// default 5s). Exit 1 on "no responders" (at once: nobody subscribes to SUBJECT) and on a
// timeout, each reported in one line on stderr.
//
// --replies N (as nats req --replies): wait for up to N replies to each request, 0 = all that
// come within --timeout. The first reply may take --timeout; each further one must follow within
// the mean rtt so far plus --reply-timeout (300ms), as natscli waits. These replies come to an
// inbox subject of this process (`_INBOX.<id>.<n>`) that is routed like any subject, so a
// `bus sub --match-replies` sees them; the default single reply goes straight into the
// library's inbox ring instead (docs/messaging.md).
#include <algorithm>
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
  std::uint64_t replies = 1;  ///< 0: every reply within --timeout
  std::chrono::nanoseconds reply_timeout = std::chrono::milliseconds(300);  // natscli's
  bool raw = false;
  bool templates = true;
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

/// Some subscription on the bus would get a publish to `subject` (a request's responders). A
/// look at the bus's shared memory; when it cannot be had, assume yes (the wait then says it).
bool has_subscribers(const Connection& conn, std::string_view subject) {
  auto snap = monitor::snapshot(conn.bus_name());
  if (!snap) return true;
  for (const auto& sub : snap->subscriptions) {
    if (!sub.draining && subject_matches(sub.pattern, subject)) return true;
  }
  return false;
}

/// --replies N != 1: publish with a reply subject of our own and print what comes back to it.
int request_many(Connection& conn, const ReqFlags& flags, Subscription& inbox, const std::string& inbox_prefix,
                 std::string_view subject, std::string_view data, const Headers& headers, std::uint64_t n) {
  if (!has_subscribers(conn, subject)) return report_request_failure(make_error(Errc::no_responders, ""), subject, {});
  const std::string reply_subject = inbox_prefix + std::to_string(n);
  const auto start = std::chrono::steady_clock::now();
  Status sent = headers.empty() ? conn.publish(subject, data, reply_subject)
                                : conn.publish(subject, data, headers, reply_subject);
  if (!sent) return report(sent.error());

  using Clock = std::chrono::steady_clock;
  const auto overall = start + flags.client.timeout;
  auto deadline = overall;  // for the first reply
  std::uint64_t got = 0;
  std::chrono::nanoseconds rtt_sum{0};
  while (flags.replies == 0 || got < flags.replies) {
    const auto now = Clock::now();
    if (now >= deadline) break;
    const auto left = std::chrono::duration_cast<std::chrono::nanoseconds>(deadline - now);
    auto reply = inbox.next(std::min<std::chrono::nanoseconds>(left, kPollInterval));
    if (stop_requested()) break;
    if (!reply) {
      if (reply.error().code != Errc::timeout) return report(reply.error());
      continue;
    }
    if (reply->subject != reply_subject) continue;  // late, to an earlier request
    const auto rtt = std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now() - start);
    print_reply(*reply, rtt, flags.raw);
    ++got;
    rtt_sum += rtt;
    // natscli: with a count, each further reply within the mean rtt plus --reply-timeout; with
    // 0, until --timeout.
    deadline = flags.replies == 0 ? overall
                                  : Clock::now() + rtt_sum / static_cast<std::int64_t>(got) + flags.reply_timeout;
  }
  if (got == 0 && !stop_requested()) {
    return report_request_failure(make_error(Errc::timeout, ""), subject, flags.client.timeout);
  }
  return kExitOk;
}

int run_req(ReqFlags& flags) {
  Templates templates;
  TemplatedText subject(flags.subject, flags.templates);
  // Check the arguments before reading stdin or connecting. (A templated subject is checked as
  // its first expansion.)
  if (auto valid = validate_publish_subject(subject.for_message(templates, Templates::now(1))); !valid) {
    return report(valid.error());
  }
  if (auto parsed = flags.headers.parse(flags.templates); !parsed) {
    return report_usage(parsed.error().message);
  }

  auto body_text = body_or_stdin(flags.body_option, flags.body);
  if (!body_text) return report(body_text.error());
  TemplatedText body(std::move(body_text).value(), flags.templates);

  // --replies 0 waits the whole --timeout: a Ctrl-C ends it as a normal end (exit 0 after the
  // replies so far). A single request keeps the default: Ctrl-C kills.
  if (flags.replies != 1) install_stop_signals();
  auto conn = connect(flags.client, "bus req");
  if (!conn) return report(conn.error());

  // --replies N != 1: one subscription for the replies to all the requests.
  std::string inbox_prefix;
  Subscription inbox;
  if (flags.replies != 1) {
    inbox_prefix = "_INBOX." + templates.next_id() + ".";
    auto sub = conn->subscribe(inbox_prefix + "*");
    if (!sub) return report(sub.error());
    inbox = std::move(sub).value();
  }

  for (std::uint64_t n = 1; n <= flags.count && !stop_requested(); ++n) {
    const TemplateScope scope = Templates::now(n);
    const std::string_view subject_view = subject.for_message(templates, scope);
    const std::string_view data = body.for_message(templates, scope);
    const Headers headers = flags.headers.build(templates, scope);

    if (flags.replies != 1) {
      if (int code = request_many(*conn, flags, inbox, inbox_prefix, subject_view, data, headers, n); code != kExitOk) {
        return code;
      }
      continue;
    }
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
  command.add_option("--replies", flags->replies,
                     "Wait for up to N replies to each request and print each (0: all that come within --timeout)")
      ->type_name("N")
      ->check(tools::count_in_range(0))
      ->capture_default_str();
  tools::add_duration_option(command, "--reply-timeout", flags->reply_timeout,
                             "With --replies N > 1: each further reply must come within the mean rtt so far plus this",
                             /*positive=*/true);
  command.add_flag("-r,--raw", flags->raw, "Print only the reply bodies, one per line");
  add_template_flags(command, flags->templates, "SUBJECT, BODY and header values");
  add_client_flags(command, flags->client,
                   {"How long to wait for the reply (with --replies N: for the first; with --replies 0: for all) "
                    "and how long each call to the broker waits for its answer, e.g. 500ms",
                    true,
                    {}});
  command.footer(templates_help(/*with_request=*/false));
  return [flags] { return run_req(*flags); };
}

}  // namespace bus::cli

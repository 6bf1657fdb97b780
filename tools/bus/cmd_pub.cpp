// cmd_pub.cpp — `bus pub SUBJECT [BODY]`: publish BODY (or stdin) once or --count times.
//
// As in the nats CLI, SUBJECT and BODY are templates (templates.hpp): `{{Count}}` (or
// `{{ Count }}`) becomes the message number 1..N, `{{ID}}` a unique id, `{{UnixNano}}` the time...,
// and so is each `-H KEY:VALUE` header value. Other `{{...}}` text is left as is.
// --templates=false (or --no-templates) turns this off.
#include <cstdint>
#include <cstdio>
#include <memory>
#include <string>
#include <string_view>
#include <thread>

#include "cli_units.hpp"
#include "common.hpp"
#include "message_io.hpp"
#include "verbs.hpp"

namespace bus::cli {
namespace {

struct PubFlags {
  ClientFlags client;
  std::string subject;
  std::string body;
  CLI::Option* body_option = nullptr;  ///< not given on the command line: read stdin
  std::string reply;
  HeaderFlags headers;
  std::uint64_t count = 1;
  std::chrono::nanoseconds sleep{0};
  bool templates = true;
  bool verbose = false;
  bool ack = false;  ///< wait for the stream's acknowledgement (nats pub --jetstream)
};

int run_pub(PubFlags& flags) {
  Templates templates;
  TemplatedText subject(flags.subject, flags.templates);
  // Check the arguments before reading stdin or connecting, so a typo is reported at once and
  // the same with or without a broker. (A templated subject is checked as its first expansion.)
  if (auto valid = validate_publish_subject(subject.for_message(templates, Templates::now(1))); !valid) {
    return report(valid.error());
  }
  if (!flags.reply.empty()) {
    if (auto valid = validate_publish_subject(flags.reply); !valid) return report(valid.error());
  }
  if (auto parsed = flags.headers.parse(flags.templates); !parsed) {
    return report_usage(parsed.error().message);
  }

  auto body_text = body_or_stdin(flags.body_option, flags.body);
  if (!body_text) return report(body_text.error());
  TemplatedText body(std::move(body_text).value(), flags.templates);

  auto conn = connect(flags.client, "bus pub");
  if (!conn) return report(conn.error());

  for (std::uint64_t n = 1; n <= flags.count; ++n) {
    const TemplateScope scope = Templates::now(n);  // one clock reading for the whole message
    const std::string_view subject_view = subject.for_message(templates, scope);
    const std::string_view data = body.for_message(templates, scope);

    Status published;
    if (flags.ack) {
      Headers headers = flags.headers.empty() ? Headers() : flags.headers.build(templates, scope);
      auto ack = conn->stream_publish(subject_view, data, flags.headers.empty() ? nullptr : &headers);
      if (ack) {
        // One line per message on stdout, for people and for scripts.
        std::printf("stream %s sequence %llu%s\n", ack->stream.c_str(), static_cast<unsigned long long>(ack->sequence),
                    ack->duplicate ? " duplicate" : "");
      } else {
        published = std::move(ack).error();
      }
    } else {
      published = flags.headers.empty()
                      ? conn->publish(subject_view, data, flags.reply)
                      : conn->publish(subject_view, data, flags.headers.build(templates, scope), flags.reply);
    }
    if (!published) {
      // Messages 1..n-1 are in their subscribers' rings (and acknowledged, with --ack); n.. may
      // not be anywhere.
      Error error = published.error();
      if (flags.count > 1) {
        error.message += " (" + std::to_string(flags.count - n + 1) + " of " + std::to_string(flags.count) +
                         " messages may not have been delivered)";
      }
      return report(error);
    }
    if (flags.verbose) {
      std::fprintf(stderr, "Published %zu bytes to \"%.*s\"\n", data.size(),
                   static_cast<int>(subject_view.size()), subject_view.data());
    }
    if (n < flags.count && flags.sleep.count() > 0) std::this_thread::sleep_for(flags.sleep);
  }
  std::fflush(stdout);
  // Nothing left to flush: publish() returns once the message is in every subscriber's ring.
  return kExitOk;
}

}  // namespace

VerbRunner setup_pub(CLI::App& command) {
  auto flags = std::make_shared<PubFlags>();
  command.add_option("SUBJECT", flags->subject, "Subject to publish on (no wildcards)")
      ->type_name("")
      ->required();
  flags->body_option =
      command.add_option("BODY", flags->body, "Message body; read from stdin when omitted")
          ->type_name("");
  command.add_option("--count", flags->count, "Publish this many messages")
      ->type_name("N")
      ->check(tools::count_in_range(1))
      ->capture_default_str();
  tools::add_duration_option(command, "--sleep", flags->sleep,
                             "Pause between messages (e.g. 100ms)");
  auto* reply = command.add_option("--reply", flags->reply, "Reply subject to send with the message")
                    ->type_name("SUBJECT");
  flags->headers.add_to(command);
  add_template_flags(command, flags->templates, "SUBJECT, BODY and header values");
  command.add_flag("-v,--verbose", flags->verbose, "Print a line per published message (stderr)");
  command.add_flag("-J,--ack,--jetstream", flags->ack,
                   "Wait until a stream stored each message; print its stream and sequence (exit 1 if no stream "
                   "captures the subject)")
      ->excludes(reply);
  add_client_flags(command, flags->client);
  command.footer(templates_help(/*with_request=*/false));
  return [flags] { return run_pub(*flags); };
}

}  // namespace bus::cli

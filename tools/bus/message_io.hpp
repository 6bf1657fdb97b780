// message_io.hpp — what the message-carrying verbs (pub, sub, req, reply) share: templates
// (templates.hpp) in subjects, bodies and header values, the body from stdin, `-H KEY:VALUE`
// header flags and printing a received message the way the nats CLI does.
#pragma once

#include <CLI/CLI.hpp>
#include <chrono>
#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "bus/bus.hpp"
#include "templates.hpp"

namespace bus::cli {

// ------------------------------------------------------------------------------------ templates

/// Adds `--templates` (default true; `--templates=false` turns them off, as in the nats CLI) and
/// its synonym `--no-templates` to `command`; `what` names where they apply.
void add_template_flags(CLI::App& command, bool& templates, const std::string& what);

/// The help text (footer) listing the templates, for the verbs that take them.
std::string templates_help(bool with_request);

/// All of stdin (binary-safe), with a hint on stderr when stdin is a terminal. Errc::io_error
/// when it cannot be read.
Result<std::string> read_stdin();

/// BODY as given on the command line, or all of stdin when the BODY argument was left out.
Result<std::string> body_or_stdin(const CLI::Option* body_option, const std::string& body);

/// A subject or body that may hold templates (unless they are off): for_message() is its text
/// for one message, expanded only when it holds a template.
class TemplatedText {
 public:
  TemplatedText(std::string text, bool templates)
      : text_(std::move(text)), templated_(templates && has_template(text_)) {}
  /// Valid until the next call.
  std::string_view for_message(Templates& templates, const TemplateScope& scope) {
    if (!templated_) return text_;
    expanded_ = templates.expand(text_, scope);
    return expanded_;
  }
  bool templated() const noexcept { return templated_; }

 private:
  std::string text_;
  bool templated_;
  std::string expanded_;
};

// --------------------------------------------------------------------------------- header flags

/// The `-H/--header KEY:VALUE` flags of a verb (repeatable, as in the nats CLI).
class HeaderFlags {
 public:
  /// Adds `-H,--header` to `command`. Each occurrence takes exactly one KEY:VALUE, so
  /// `bus pub SUBJECT -H a:b BODY` still sees BODY as the body.
  void add_to(CLI::App& command);

  /// Checks every flag (split at the first ':', key and value trimmed) and remembers the pairs.
  /// Errc::invalid_argument (a usage error) names the malformed flag.
  Status parse(bool templates);

  bool empty() const noexcept { return pairs_.empty(); }
  /// The headers of one message (templates in values expanded when they are on; {{Request}} is
  /// not one there: a body may hold line breaks, a header value may not). Never fails once
  /// parse() succeeded.
  Headers build(Templates& templates, const TemplateScope& scope) const;
  /// Appends the flags' headers to `headers` (for --echo: the request's headers plus ours).
  void append_to(Headers& headers, Templates& templates, const TemplateScope& scope) const;

 private:
  std::vector<std::string> specs_;
  std::vector<std::pair<std::string, std::string>> pairs_;
  bool templates_ = false;
};

// ------------------------------------------------------------------------------------- printing

/// Appends the headers of a message, one `Key: value` line each (a status as `Status: 503` and
/// `Description: ...`, as nats.go exposes it), then a blank line; nothing when there are none.
/// A block that does not parse is printed line by line as it is.
void append_headers(std::string& out, std::string_view block);

/// How `bus sub` (and `bus reply`) print a message.
struct PrintOptions {
  bool raw = false;           ///< only the payload and a newline
  bool headers_only = false;  ///< the headers, not the payload (with raw: only the header lines)
};

/// Appends a received message: with `raw` only the payload and a newline; otherwise
/// `[#N] <what> "SUBJECT"[ with reply "R"]`, the headers, the payload, a blank line. `what` is
/// "Received on" (or "Matched reply on" for a reply printed under its request).
void append_message(std::string& out, const Message& msg, std::uint64_t number, PrintOptions options,
                    std::string_view what = "Received on");

/// append_message() on stdout, flushed.
void print_message(const Message& msg, std::uint64_t number, PrintOptions options);
/// Writes `text` to stdout and flushes: whoever reads a pipe sees it now.
void write_out(std::string_view text);

/// A warning on stderr about a count that grows (messages dropped, requests ignored), at most
/// once a second so a flood of events does not become a flood of lines:
/// `bus: <what>: <new> <noun> (<total> in all)`.
class CountWarning {
 public:
  CountWarning(std::string what, std::string noun)
      : what_(std::move(what)), noun_(std::move(noun)) {}
  /// `total` is the count so far; `force` prints what is unreported even within the second.
  void update(std::uint64_t total, bool force = false);

 private:
  std::string what_;
  std::string noun_;
  std::uint64_t reported_ = 0;
  std::chrono::steady_clock::time_point last_report_{};
};

/// A round-trip time as Go prints durations, to three significant digits: "812ns", "45.2µs",
/// "1.23ms", "2.5s".
std::string format_rtt(std::chrono::nanoseconds rtt);

}  // namespace bus::cli

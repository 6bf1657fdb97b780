// message_io.cpp — templates, stdin bodies, header flags and message printing (message_io.hpp).
#include "message_io.hpp"

#include <unistd.h>

#include <cstdio>

namespace bus::cli {
namespace {

std::string_view trim(std::string_view text) {
  const auto first = text.find_first_not_of(" \t");
  if (first == std::string_view::npos) return {};
  const auto last = text.find_last_not_of(" \t");
  return text.substr(first, last - first + 1);
}

void append_quoted(std::string& out, std::string_view text) {
  out += '"';
  out.append(text);
  out += '"';
}

// The block as it is: "NATS/1.0[ status[ description]]\r\n(Name: value\r\n)*\r\n". Prints the
// status line only when it carries a status, then one line per header.
void append_raw_headers(std::string& out, std::string_view block) {
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

}  // namespace

// ------------------------------------------------------------------------------------ templates

void add_template_flags(CLI::App& command, bool& templates, const std::string& what) {
  command.add_flag("--templates", templates,
                   "Expand templates ({{Count}}, {{ID}}, {{UnixNano}}... see below) in " + what +
                       " (the default; --templates=false sends the braces as they are)");
  command.add_flag_callback("--no-templates", [&templates] { templates = false; }, "Same as --templates=false");
}

std::string templates_help(bool with_request) {
  std::string help =
      "Templates (as in the nats CLI; spaces inside the braces optional, {{ Count }}; anything else in\n"
      "braces is sent as it is):\n"
      "  {{Count}}         the message number, 1..N\n"
      "  {{TimeStamp}}     the time, RFC 3339 in local time (2026-07-20T15:23:51+03:00)\n"
      "  {{Unix}}          seconds since 1970 (UTC)\n"
      "  {{UnixNano}}      nanoseconds since 1970 (UTC)\n"
      "  {{Time}}          the time of day (3:23PM)\n"
      "  {{ID}}            a unique id (22 characters, as a NATS NUID)\n"
      "  {{Random A B}}    a random string of [a-zA-Z0-9], A to B characters long\n";
  if (with_request) help += "  {{Request}}       the request's body (not in header values)\n";
  return help;
}

Result<std::string> body_or_stdin(const CLI::Option* body_option, const std::string& body) {
  if (body_option->count() > 0) return body;
  return read_stdin();
}

Result<std::string> read_stdin() {
  // On a terminal, say why nothing happens (as the nats CLI does).
  if (isatty(STDIN_FILENO) == 1) std::fputs("Reading the body from stdin (end with Ctrl-D)\n", stderr);
  std::string data;
  char buffer[64 * 1024];
  while (true) {
    const auto n = std::fread(buffer, 1, sizeof buffer, stdin);
    data.append(buffer, n);
    if (n < sizeof buffer) break;
  }
  if (std::ferror(stdin)) return make_error(Errc::io_error, "cannot read the body from stdin");
  return data;
}

// --------------------------------------------------------------------------------- header flags

void HeaderFlags::add_to(CLI::App& command) {
  command.add_option("-H,--header", specs_, "Add a header KEY:VALUE (repeatable)")
      ->type_name("KEY:VALUE")
      ->allow_extra_args(false);  // one value per -H: a following positional stays positional
}

Status HeaderFlags::parse(bool templates) {
  templates_ = templates;
  pairs_.clear();
  Headers check;
  for (const auto& spec : specs_) {
    const auto colon = spec.find(':');
    if (colon == std::string::npos) {
      return make_error(Errc::invalid_argument,
                        "invalid header '" + spec + "': expected KEY:VALUE (e.g. -H Trace-Id:42)");
    }
    const std::string_view key = trim(std::string_view(spec).substr(0, colon));
    const std::string_view value = trim(std::string_view(spec).substr(colon + 1));
    if (key.empty()) {
      return make_error(Errc::invalid_argument,
                        "invalid header '" + spec + "': the key before ':' is empty");
    }
    // Headers::add checks the key's characters and the value's (no CR/LF). An expansion only
    // inserts [0-9A-Za-z:+-] ({{Request}} is not expanded here), so what passes here passes for
    // every message.
    if (auto added = check.add(key, value); !added) {
      return make_error(Errc::invalid_argument,
                        "invalid header '" + spec + "': " + added.error().message);
    }
    pairs_.emplace_back(key, value);
  }
  return {};
}

void HeaderFlags::append_to(Headers& headers, Templates& templates, const TemplateScope& scope) const {
  TemplateScope header_scope = scope;
  header_scope.request.reset();  // a request body may hold CR/LF: never in a header value
  for (const auto& [key, value] : pairs_) {
    const bool expand = templates_ && has_template(value);
    // Cannot fail: parse() checked the key and value, and an expansion adds only characters
    // that are valid in a value (digits, letters, '-', ':', '+').
    (void)headers.add(key, expand ? templates.expand(value, header_scope) : value);
  }
}

Headers HeaderFlags::build(Templates& templates, const TemplateScope& scope) const {
  Headers headers;
  append_to(headers, templates, scope);
  return headers;
}

// ------------------------------------------------------------------------------------- printing

void append_headers(std::string& out, std::string_view block) {
  if (block.empty()) return;
  auto parsed = Headers::parse(block);
  if (!parsed) {
    append_raw_headers(out, block);
    return;
  }
  bool any = false;
  if (parsed->status() != 0) {
    out += "Status: " + std::to_string(parsed->status()) + '\n';
    if (!parsed->description().empty()) {
      out += "Description: ";
      out.append(parsed->description());
      out += '\n';
    }
    any = true;
  }
  for (const auto& [key, value] : parsed->entries()) {
    out.append(key);
    out += ": ";
    out.append(value);
    out += '\n';
    any = true;
  }
  if (any) out += '\n';
}

void append_message(std::string& out, const Message& msg, std::uint64_t number, PrintOptions options,
                    std::string_view what) {
  if (options.raw) {
    if (options.headers_only) {
      append_headers(out, msg.headers);
    } else {
      out += msg.data;
      out += '\n';
    }
    return;
  }
  out += "[#" + std::to_string(number) + "] ";
  out.append(what);
  out += ' ';
  append_quoted(out, msg.subject);
  if (!msg.reply.empty()) {
    out += " with reply ";
    append_quoted(out, msg.reply);
  }
  out += '\n';
  append_headers(out, msg.headers);
  if (!options.headers_only) {
    out += msg.data;
    if (msg.data.empty() || msg.data.back() != '\n') out += '\n';
    out += '\n';
  }
}

void print_message(const Message& msg, std::uint64_t number, PrintOptions options) {
  std::string out;
  out.reserve(msg.data.size() + msg.subject.size() + msg.headers.size() + 64);
  append_message(out, msg, number, options);
  write_out(out);
}

void write_out(std::string_view text) {
  std::fwrite(text.data(), 1, text.size(), stdout);
  // Flush per message: whoever reads a pipe (a script, `grep --line-buffered`) sees it now.
  std::fflush(stdout);
}

void CountWarning::update(std::uint64_t total, bool force) {
  if (total <= reported_) return;
  const auto now = std::chrono::steady_clock::now();
  if (!force && reported_ != 0 && now - last_report_ < std::chrono::seconds(1)) return;
  std::fprintf(stderr, "bus: %s: %llu %s (%llu in all)\n", what_.c_str(),
               static_cast<unsigned long long>(total - reported_), noun_.c_str(),
               static_cast<unsigned long long>(total));
  std::fflush(stderr);
  reported_ = total;
  last_report_ = now;
}

std::string format_rtt(std::chrono::nanoseconds rtt) {
  const double ns = static_cast<double>(rtt.count());
  double value = ns;
  const char* unit = "ns";
  if (ns >= 1e9) {
    value = ns / 1e9;
    unit = "s";
  } else if (ns >= 1e6) {
    value = ns / 1e6;
    unit = "ms";
  } else if (ns >= 1e3) {
    value = ns / 1e3;
    unit = "µs";
  }
  // Three significant digits, trailing zeros dropped: 1.23ms, 12.3ms, 123ms, 2.5s.
  const int decimals = value >= 100 || unit[0] == 'n' ? 0 : value >= 10 ? 1 : 2;
  char text[32];
  std::snprintf(text, sizeof text, "%.*f", decimals, value);
  std::string out = text;
  if (out.find('.') != std::string::npos) {
    while (out.back() == '0') out.pop_back();
    if (out.back() == '.') out.pop_back();
  }
  return out + unit;
}

}  // namespace bus::cli

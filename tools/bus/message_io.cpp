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

bool has_template(std::string_view text) { return text.find("{{") != std::string_view::npos; }

std::string expand_templates(std::string_view text, std::uint64_t count) {
  std::string out;
  out.reserve(text.size() + 8);
  std::size_t pos = 0;
  while (true) {
    const auto open = text.find("{{", pos);
    if (open == std::string_view::npos) break;
    const auto close = text.find("}}", open + 2);
    if (close == std::string_view::npos) break;
    out.append(text.substr(pos, open - pos));
    if (trim(text.substr(open + 2, close - open - 2)) == "Count") {
      out += std::to_string(count);
    } else {
      out.append(text.substr(open, close + 2 - open));
    }
    pos = close + 2;
  }
  out.append(text.substr(pos));
  return out;
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
    // Headers::add checks the key's characters and the value's (no CR/LF). A {{Count}}
    // expansion only inserts digits, so what passes here passes for every message.
    if (auto added = check.add(key, value); !added) {
      return make_error(Errc::invalid_argument,
                        "invalid header '" + spec + "': " + added.error().message);
    }
    pairs_.emplace_back(key, value);
  }
  return {};
}

void HeaderFlags::append_to(Headers& headers, std::uint64_t count) const {
  for (const auto& [key, value] : pairs_) {
    const bool expand = templates_ && has_template(value);
    // Cannot fail: parse() checked the key and value, and an expansion adds only digits.
    (void)headers.add(key, expand ? expand_templates(value, count) : value);
  }
}

Headers HeaderFlags::build(std::uint64_t count) const {
  Headers headers;
  append_to(headers, count);
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

void print_message(const Message& msg, std::uint64_t number, bool raw) {
  std::string out;
  out.reserve(msg.data.size() + msg.subject.size() + msg.headers.size() + 64);
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

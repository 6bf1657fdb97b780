// client/headers.cpp — bus::Headers: NATS header blocks, built and parsed.
#include "bus/headers.hpp"

#include <charconv>

namespace bus {

namespace {

constexpr std::string_view kVersion = "NATS/1.0";
constexpr std::string_view kCrlf = "\r\n";

bool valid_key(std::string_view key) noexcept {
  if (key.empty()) return false;
  for (unsigned char c : key) {
    if (c <= 32 || c == 127 || c == ':') return false;
  }
  return true;
}

bool valid_value(std::string_view value) noexcept {
  return value.find_first_of("\r\n") == std::string_view::npos;
}

std::string_view trim(std::string_view s) noexcept {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

// Calls f(key, value) for each header line of a well-formed block.
template <class F>
void for_each_line(std::string_view block, F&& f) {
  std::size_t pos = block.find(kCrlf);  // skip the version line
  if (pos == std::string_view::npos) return;
  pos += 2;
  while (pos < block.size()) {
    const std::size_t end = block.find(kCrlf, pos);
    if (end == std::string_view::npos || end == pos) return;
    const std::string_view line = block.substr(pos, end - pos);
    const std::size_t colon = line.find(':');
    f(line.substr(0, colon), trim(line.substr(colon + 1)));
    pos = end + 2;
  }
}

}  // namespace

Result<Headers> Headers::parse(std::string_view block) {
  Headers h;
  if (block.empty()) return h;
  auto bad = [&](const std::string& why) {
    return make_error(Errc::invalid_argument, "malformed header block: " + why);
  };
  const std::size_t first_end = block.find(kCrlf);
  if (first_end == std::string_view::npos) return bad("no line end");
  std::string_view first = block.substr(0, first_end);
  if (first.substr(0, kVersion.size()) != kVersion) return bad("does not start with NATS/1.0");
  if (!valid_value(first)) return bad("the status line holds a bare CR or LF");
  first.remove_prefix(kVersion.size());
  first = trim(first);
  if (!first.empty()) {
    const std::string_view code = first.substr(0, first.find(' '));
    int status = 0;
    const bool three_digits = code.size() == 3 && code.find_first_not_of("0123456789") == std::string_view::npos;
    const auto [ptr, ec] = std::from_chars(code.data(), code.data() + code.size(), status);
    if (!three_digits || ec != std::errc() || ptr != code.data() + code.size()) {
      return bad("status '" + std::string(code) + "' is not a 3-digit code");
    }
    h.status_ = status;
    if (code.size() < first.size()) h.description_ = std::string(trim(first.substr(code.size())));
  }
  if (block.size() < 4 || block.substr(block.size() - 4) != "\r\n\r\n") {
    if (block.size() != first_end + 4 || block.substr(first_end) != "\r\n\r\n") {
      return bad("does not end with an empty line");
    }
  }
  std::size_t pos = first_end + 2;
  while (pos < block.size()) {
    const std::size_t end = block.find(kCrlf, pos);
    if (end == std::string_view::npos) return bad("unterminated line");
    if (end == pos) {
      if (end + 2 != block.size()) return bad("bytes after the closing empty line");
      break;
    }
    const std::string_view line = block.substr(pos, end - pos);
    const std::size_t colon = line.find(':');
    if (colon == std::string_view::npos || !valid_key(line.substr(0, colon))) {
      return bad("line '" + std::string(line) + "' is not 'Key: value'");
    }
    // A bare CR or LF inside a line would split it for readers that treat either as a line end.
    if (!valid_value(line.substr(colon + 1))) return bad("a value holds a bare CR or LF");
    ++h.count_;
    pos = end + 2;
  }
  h.block_ = std::string(block);
  return h;
}

void Headers::rebuild_prefix() {
  // Re-emits the version/status line in front of the existing header lines.
  std::string lines;
  if (!block_.empty()) {
    const std::size_t first_end = block_.find(kCrlf);
    lines = block_.substr(first_end + 2);  // header lines + closing CRLF
  } else {
    lines = std::string(kCrlf);
  }
  block_ = std::string(kVersion);
  if (status_ != 0) {
    block_ += ' ';
    block_ += std::to_string(status_);
    if (!description_.empty()) {
      block_ += ' ';
      block_ += description_;
    }
  }
  block_ += kCrlf;
  block_ += lines;
}

Status Headers::add(std::string_view key, std::string_view value) {
  if (!valid_key(key)) {
    return make_error(Errc::invalid_argument,
                      "invalid header key '" + std::string(key) + "': empty, or holds ':', whitespace or control characters");
  }
  if (!valid_value(value)) {
    return make_error(Errc::invalid_argument, "invalid value for header '" + std::string(key) + "': holds CR or LF");
  }
  if (block_.empty()) rebuild_prefix();
  // Insert before the closing empty line.
  std::string line;
  line.reserve(key.size() + value.size() + 4);
  line.append(key).append(": ").append(value).append(kCrlf);
  block_.insert(block_.size() - 2, line);
  ++count_;
  return {};
}

Status Headers::set(std::string_view key, std::string_view value) {
  if (!valid_key(key) || !valid_value(value)) return add(key, value);  // same error message
  remove(key);
  return add(key, value);
}

std::size_t Headers::remove(std::string_view key) {
  std::vector<std::pair<std::string, std::string>> kept;
  std::size_t removed = 0;
  for_each_line(block_, [&](std::string_view k, std::string_view v) {
    if (k == key) {
      ++removed;
    } else {
      kept.emplace_back(k, v);
    }
  });
  if (removed == 0) return 0;
  block_.clear();
  count_ = 0;
  rebuild_prefix();
  for (auto& [k, v] : kept) (void)add(k, v);
  if (count_ == 0 && status_ == 0) block_.clear();
  return removed;
}

std::optional<std::string_view> Headers::get(std::string_view key) const {
  std::optional<std::string_view> found;
  for_each_line(block_, [&](std::string_view k, std::string_view v) {
    if (!found && k == key) found = v;
  });
  return found;
}

std::vector<std::string_view> Headers::values(std::string_view key) const {
  std::vector<std::string_view> out;
  for_each_line(block_, [&](std::string_view k, std::string_view v) {
    if (k == key) out.push_back(v);
  });
  return out;
}

std::vector<std::pair<std::string_view, std::string_view>> Headers::entries() const {
  std::vector<std::pair<std::string_view, std::string_view>> out;
  for_each_line(block_, [&](std::string_view k, std::string_view v) { out.emplace_back(k, v); });
  return out;
}

}  // namespace bus

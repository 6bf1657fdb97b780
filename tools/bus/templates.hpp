// templates.hpp — the nats CLI's message templates, for `bus pub`, `bus req` (subject, body and
// -H header values) and `bus reply` (body and -H header values). Header-only and free of CLI11
// and of libbus, so the tests include it as it is.
//
// What natscli offers (cli/pub_command.go's help, internal/util/headers.go), with the same names
// and formats:
//
//   {{Count}}          the message number, 1..N (also {{Cnt}})
//   {{TimeStamp}}      the time as RFC 3339, local time with its offset: 2026-07-20T15:23:51+03:00
//   {{Unix}}           seconds since 1970 (UTC)
//   {{UnixNano}}       nanoseconds since 1970 (UTC)
//   {{Time}}           the time of day, Go's time.Kitchen: 3:23PM
//   {{ID}}             a unique id, NUID-like: 22 characters of [0-9A-Za-z]
//   {{Random A B}}     a random string of [a-zA-Z0-9], at least A and at most B long
//   {{Request}}        the request's body (bus reply only)
//
// Spaces inside the braces do not matter (`{{ Count }}`), and Go's field form works too
// (`{{.Count}}`). One expansion reads the clock once: {{Unix}} and {{TimeStamp}} of one message
// agree. Anything else between `{{` and `}}` is left as it is (Go would refuse the template;
// natscli then sends it unexpanded too).
#pragma once

#include <charconv>
#include <cstdint>
#include <cstdio>
#include <ctime>
#include <optional>
#include <random>
#include <string>
#include <string_view>
#include <utility>

namespace bus::cli {

/// True when `text` holds a `{{`, i.e. may need expanding.
inline bool has_template(std::string_view text) { return text.find("{{") != std::string_view::npos; }

/// What one expansion (one message) refers to.
struct TemplateScope {
  std::uint64_t count = 0;     ///< {{Count}}
  std::int64_t unix_ns = 0;    ///< CLOCK_REALTIME, for the time templates
  /// {{Request}}: the request's body, where there is one (bus reply's answers).
  std::optional<std::string_view> request = std::nullopt;
};

/// CLOCK_REALTIME now, in ns.
inline std::int64_t template_clock_ns() noexcept {
  timespec ts{};
  ::clock_gettime(CLOCK_REALTIME, &ts);
  return static_cast<std::int64_t>(ts.tv_sec) * 1'000'000'000 + ts.tv_nsec;
}

/// `unix_ns` as Go's time.RFC3339 in local time: "2006-01-02T15:04:05Z07:00" (a "Z" for UTC).
inline std::string format_rfc3339(std::int64_t unix_ns) {
  const std::time_t seconds = static_cast<std::time_t>(unix_ns / 1'000'000'000);
  std::tm local{};
  ::localtime_r(&seconds, &local);
  char text[48];
  const std::size_t n = std::strftime(text, sizeof text, "%Y-%m-%dT%H:%M:%S", &local);
  std::string out(text, n);
  const long offset = local.tm_gmtoff;  // seconds east of UTC
  if (offset == 0) return out + "Z";
  const int minutes = static_cast<int>((offset < 0 ? -offset : offset) / 60) % (24 * 60);  // |offset| < 1 day
  char zone[16];
  std::snprintf(zone, sizeof zone, "%c%02d:%02d", offset < 0 ? '-' : '+', minutes / 60, minutes % 60);
  return out + zone;
}

/// `unix_ns` as Go's time.Kitchen in local time: "3:04PM".
inline std::string format_kitchen(std::int64_t unix_ns) {
  const std::time_t seconds = static_cast<std::time_t>(unix_ns / 1'000'000'000);
  std::tm local{};
  ::localtime_r(&seconds, &local);
  const int hour12 = local.tm_hour % 12 == 0 ? 12 : local.tm_hour % 12;
  char text[16];
  std::snprintf(text, sizeof text, "%d:%02d%s", hour12, local.tm_min, local.tm_hour < 12 ? "AM" : "PM");
  return text;
}

/// Unique ids after NATS's NUID: a 12-character random prefix, then a 10-character sequence that
/// starts at a random value and grows by a random step (33..332) per id, all in base 62. A
/// process's generator draws its prefix from std::random_device, so two processes (or two
/// generators) practically never share one; the sequence cannot repeat before it wraps, and
/// wrapping draws a new prefix.
class Nuid {
 public:
  static constexpr std::size_t kPrefixLength = 12;
  static constexpr std::size_t kSequenceLength = 10;
  static constexpr std::size_t kLength = kPrefixLength + kSequenceLength;  ///< 22, as a NUID

  Nuid() : Nuid(seed_from_device()) {}
  /// Deterministic, for tests.
  explicit Nuid(std::uint64_t seed) : rng_(seed) {
    new_prefix();
    reset_sequence();
  }

  std::string next() {
    sequence_ += increment_;
    if (sequence_ >= kMaxSequence) {
      new_prefix();
      reset_sequence();
    }
    std::string id = prefix_;
    id.resize(kLength);
    std::uint64_t s = sequence_;
    for (std::size_t i = kLength; i > kPrefixLength; --i) {
      id[i - 1] = kDigits[s % kBase];
      s /= kBase;
    }
    return id;
  }

 private:
  static constexpr char kDigits[] = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
  static constexpr std::uint64_t kBase = 62;
  static constexpr std::uint64_t kMaxSequence = 839'299'365'868'340'224ull;  // 62^10
  static constexpr std::uint64_t kMinIncrement = 33;
  static constexpr std::uint64_t kMaxIncrement = 333;

  static std::uint64_t seed_from_device() {
    std::random_device device;
    return (static_cast<std::uint64_t>(device()) << 32) ^ device() ^ static_cast<std::uint64_t>(template_clock_ns());
  }
  void new_prefix() {
    prefix_.assign(kPrefixLength, '0');
    for (char& c : prefix_) c = kDigits[rng_() % kBase];
  }
  void reset_sequence() {
    sequence_ = rng_() % kMaxSequence;
    increment_ = kMinIncrement + rng_() % (kMaxIncrement - kMinIncrement);
  }

  std::mt19937_64 rng_;
  std::string prefix_;
  std::uint64_t sequence_ = 0;
  std::uint64_t increment_ = kMinIncrement;
};

/// Expands templates (see the top of this file). One per process is enough: it holds the id
/// generator and the random source of {{ID}} and {{Random}}.
class Templates {
 public:
  Templates() : rng_(std::random_device{}()) {}
  /// Deterministic, for tests.
  explicit Templates(std::uint64_t seed) : ids_(seed), rng_(seed ^ 0x9e3779b97f4a7c15ull) {}

  /// The scope of message `count` now.
  static TemplateScope now(std::uint64_t count) { return TemplateScope{count, template_clock_ns(), std::nullopt}; }

  /// `text` with every template it holds replaced; anything unknown in braces stays.
  std::string expand(std::string_view text, const TemplateScope& scope) {
    std::string out;
    out.reserve(text.size() + 16);
    std::size_t pos = 0;
    while (true) {
      const auto open = text.find("{{", pos);
      if (open == std::string_view::npos) break;
      const auto close = text.find("}}", open + 2);
      if (close == std::string_view::npos) break;
      out.append(text.substr(pos, open - pos));
      if (!append_value(out, text.substr(open + 2, close - open - 2), scope)) {
        out.append(text.substr(open, close + 2 - open));
      }
      pos = close + 2;
    }
    out.append(text.substr(pos));
    return out;
  }

  std::string next_id() { return ids_.next(); }

  /// A string of [a-zA-Z0-9] whose length is drawn from [shortest, longest] (swapped when given
  /// the wrong way round, as natscli does).
  std::string random_string(std::uint64_t shortest, std::uint64_t longest) {
    if (shortest > longest) std::swap(shortest, longest);
    const std::uint64_t length = shortest + rng_() % (longest - shortest + 1);
    static constexpr char kLetters[] = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
    std::string out(length, 'a');
    for (char& c : out) c = kLetters[rng_() % (sizeof kLetters - 1)];
    return out;
  }

  /// Longest {{Random}} string: a typo such as {{Random 10 1000000000}} must not eat the memory.
  static constexpr std::uint64_t kMaxRandomLength = 1u << 20;

 private:
  static std::string_view trim(std::string_view s) {
    const auto first = s.find_first_not_of(" \t");
    if (first == std::string_view::npos) return {};
    const auto last = s.find_last_not_of(" \t");
    return s.substr(first, last - first + 1);
  }
  // The next whitespace-separated word of `s` (consumed).
  static std::string_view next_word(std::string_view& s) {
    s = trim(s);
    const auto end = s.find_first_of(" \t");
    const std::string_view word = s.substr(0, end);
    s = end == std::string_view::npos ? std::string_view{} : s.substr(end);
    return word;
  }
  static std::optional<std::uint64_t> whole_number(std::string_view word) {
    std::uint64_t v = 0;
    const auto [ptr, ec] = std::from_chars(word.data(), word.data() + word.size(), v);
    if (word.empty() || ec != std::errc{} || ptr != word.data() + word.size()) return std::nullopt;
    return v;
  }

  // Appends the value of the template `inside` the braces; false when it is not one we know.
  bool append_value(std::string& out, std::string_view inside, const TemplateScope& scope) {
    std::string_view rest = inside;
    std::string_view name = next_word(rest);
    if (!name.empty() && name.front() == '.') name.remove_prefix(1);  // {{.Count}}, Go's field form
    if (name == "Random") {
      const auto a = whole_number(next_word(rest));
      const auto b = whole_number(next_word(rest));
      if (!a || !b || !trim(rest).empty() || *a > kMaxRandomLength || *b > kMaxRandomLength) return false;
      out += random_string(*a, *b);
      return true;
    }
    if (!trim(rest).empty()) return false;  // the others take no arguments
    if (name == "Count" || name == "Cnt") {
      out += std::to_string(scope.count);
    } else if (name == "UnixNano") {
      out += std::to_string(scope.unix_ns);
    } else if (name == "Unix") {
      out += std::to_string(scope.unix_ns / 1'000'000'000);
    } else if (name == "TimeStamp") {
      out += format_rfc3339(scope.unix_ns);
    } else if (name == "Time") {
      out += format_kitchen(scope.unix_ns);
    } else if (name == "ID") {
      out += ids_.next();
    } else if (name == "Request" && scope.request) {
      out.append(*scope.request);
    } else {
      return false;
    }
    return true;
  }

  Nuid ids_;
  std::mt19937_64 rng_;
};

}  // namespace bus::cli

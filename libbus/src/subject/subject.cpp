// subject/subject.cpp — NATS subject validation and matching (see subject.hpp).
//
// Validation is one left-to-right scan that stops at the first broken rule, so the error
// names the earliest offending byte. Matching walks both strings byte by byte in place;
// tokens are short, so this beats a memchr per token.
#include "subject/subject.hpp"

#include <array>
#include <string>

namespace bus::detail {
namespace {

constexpr char kTokenSeparator = '.';
constexpr std::string_view kSingleWildcard = "*";
constexpr std::string_view kFullWildcard = ">";

// The isspace() set of the C locale; nats.c rejects all of it, the server all but '\v'.
constexpr bool is_whitespace(char c) noexcept {
  return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
}

// One table lookup per byte keeps validation of a 255-byte subject well under a microsecond.
enum ByteClass : unsigned char { kOrdinaryByte, kSeparatorByte, kWhitespaceByte };

constexpr std::array<ByteClass, 256> kByteClasses = [] {
  std::array<ByteClass, 256> classes{};
  for (std::size_t b = 0; b < classes.size(); ++b) {
    const char c = static_cast<char>(b);
    classes[b] = c == kTokenSeparator ? kSeparatorByte : is_whitespace(c) ? kWhitespaceByte : kOrdinaryByte;
  }
  return classes;
}();

constexpr ByteClass byte_class(char c) noexcept { return kByteClasses[static_cast<unsigned char>(c)]; }

constexpr bool is_wildcard(std::string_view token) noexcept {
  return token == kSingleWildcard || token == kFullWildcard;
}

enum class Rule {
  ok,
  empty,
  too_long,
  empty_token,
  whitespace,
  full_wildcard_not_last,
  wildcard_when_publishing,
};

struct Violation {
  Rule rule = Rule::ok;
  std::size_t byte = 0;  // where the offending token or byte starts
};

enum class Use { publish, subscribe };

// Checks the token s[start, end); `last` says no separator follows it.
Violation check_token(std::string_view s, std::size_t start, std::size_t end, bool last, Use use) noexcept {
  const std::string_view token = s.substr(start, end - start);
  if (token.empty()) return {Rule::empty_token, start};
  if (!is_wildcard(token)) return {};
  if (use == Use::publish) return {Rule::wildcard_when_publishing, start};
  // Reported at the separator after '>', so the error stays the earliest one in the string.
  if (token == kFullWildcard && !last) return {Rule::full_wildcard_not_last, start};
  return {};
}

Violation find_violation(std::string_view s, Use use) noexcept {
  if (s.empty()) return {Rule::empty, 0};
  if (s.size() > kMaxSubjectBytes) return {Rule::too_long, s.size()};
  std::size_t token_start = 0;
  for (std::size_t i = 0; i < s.size(); ++i) {
    const ByteClass cls = byte_class(s[i]);
    if (cls == kOrdinaryByte) continue;
    if (cls == kWhitespaceByte) return {Rule::whitespace, i};
    if (const Violation v = check_token(s, token_start, i, /*last=*/false, use); v.rule != Rule::ok) return v;
    token_start = i + 1;
  }
  return check_token(s, token_start, s.size(), /*last=*/true, use);
}

// Quotes input for a one-line message: control bytes become escapes, UTF-8 passes through.
std::string quoted(std::string_view s) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  out.reserve(s.size() + 2);
  out += '\'';
  for (const char c : s) {
    const auto byte = static_cast<unsigned char>(c);
    switch (c) {
      case '\t': out += "\\t"; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\f': out += "\\f"; break;
      case '\v': out += "\\v"; break;
      default:
        if (byte < 0x20 || byte == 0x7f) {
          out += "\\x";
          out += kHex[byte >> 4];
          out += kHex[byte & 0xf];
        } else {
          out += c;
        }
    }
  }
  out += '\'';
  return out;
}

Status subject_status(std::string_view s, Use use) {
  const Violation v = find_violation(s, use);
  const auto fail = [&](std::string what) {
    return make_error(Errc::invalid_subject, "invalid subject " + quoted(s) + ": " + std::move(what));
  };
  switch (v.rule) {
    case Rule::ok:
      return {};
    case Rule::empty:
      return make_error(Errc::invalid_subject, "subject is empty");
    case Rule::too_long:
      return make_error(Errc::invalid_subject, "subject of " + std::to_string(s.size()) +
                                                   " bytes exceeds the limit of " +
                                                   std::to_string(kMaxSubjectBytes));
    case Rule::empty_token:
      return fail("empty token at byte " + std::to_string(v.byte));
    case Rule::whitespace:
      return fail("whitespace at byte " + std::to_string(v.byte));
    case Rule::full_wildcard_not_last:
      return fail("'>' must be the last token");
    case Rule::wildcard_when_publishing:
      return fail("wildcards are not allowed when publishing");
  }
  return fail("unknown rule");  // unreachable: every Rule is handled above
}

// True when no token of s from `from` on is empty; s[from] starts a token.
bool no_empty_token_from(std::string_view s, std::size_t from) noexcept {
  if (from == s.size() || s[from] == kTokenSeparator) return false;
  for (std::size_t i = from + 1; i < s.size(); ++i) {
    // A separator at the very end or next to another one encloses an empty token.
    if (s[i] == kTokenSeparator && (i + 1 == s.size() || s[i + 1] == kTokenSeparator)) return false;
  }
  return true;
}

}  // namespace

Status validate_publish_subject(std::string_view subject) { return subject_status(subject, Use::publish); }

Status validate_subscribe_subject(std::string_view pattern) { return subject_status(pattern, Use::subscribe); }

Status validate_queue_group(std::string_view group) {
  if (group.empty()) return make_error(Errc::invalid_argument, "queue group is empty");
  if (group.size() > kMaxQueueGroupBytes) {
    return make_error(Errc::invalid_argument, "queue group of " + std::to_string(group.size()) +
                                                  " bytes exceeds the limit of " +
                                                  std::to_string(kMaxQueueGroupBytes));
  }
  for (std::size_t i = 0; i < group.size(); ++i) {
    if (is_whitespace(group[i])) {
      return make_error(Errc::invalid_argument,
                        "invalid queue group " + quoted(group) + ": whitespace at byte " + std::to_string(i));
    }
  }
  return {};
}

bool subject_is_literal(std::string_view s) noexcept {
  std::size_t token_start = 0;
  for (std::size_t i = 0; i <= s.size(); ++i) {
    if (i != s.size() && s[i] != kTokenSeparator) continue;
    if (is_wildcard(s.substr(token_start, i - token_start))) return false;
    token_start = i + 1;
  }
  return true;
}

bool subject_matches(std::string_view pattern, std::string_view subject) noexcept {
  const std::size_t pattern_size = pattern.size();
  const std::size_t subject_size = subject.size();
  const auto pattern_token_ends = [&](std::size_t i) { return i == pattern_size || pattern[i] == kTokenSeparator; };
  const auto subject_token_ends = [&](std::size_t i) { return i == subject_size || subject[i] == kTokenSeparator; };

  // p and s are the first bytes of the current pattern and subject tokens.
  std::size_t p = 0;
  std::size_t s = 0;
  for (;;) {
    if (pattern_token_ends(p) || subject_token_ends(s)) return false;  // an empty token
    const bool one_byte_token = pattern_token_ends(p + 1);
    if (one_byte_token && pattern[p] == kFullWildcard[0]) {
      // '>' takes this token and all later ones, provided it ends the pattern and none
      // of the subject's remaining tokens is empty.
      return p + 1 == pattern_size && no_empty_token_from(subject, s);
    }
    if (one_byte_token && pattern[p] == kSingleWildcard[0]) {
      ++p;
      while (!subject_token_ends(s)) ++s;
    } else {
      while (!pattern_token_ends(p) && !subject_token_ends(s) && pattern[p] == subject[s]) {
        ++p;
        ++s;
      }
      if (!pattern_token_ends(p) || !subject_token_ends(s)) return false;
    }
    // Both tokens are consumed: the match holds only if both strings end together.
    if (p == pattern_size || s == subject_size) return p == pattern_size && s == subject_size;
    ++p;  // step over the separators
    ++s;
  }
}

bool subjects_overlap(std::string_view a, std::string_view b) noexcept {
  for (;;) {
    const std::size_t ea = a.find('.'), eb = b.find('.');
    const std::string_view ta = a.substr(0, ea), tb = b.substr(0, eb);
    // '>' takes this token and any after it; the other pattern has this token, so they meet.
    if (ta == ">" || tb == ">") return true;
    if (ta != "*" && tb != "*" && ta != tb) return false;
    const bool last_a = ea == std::string_view::npos, last_b = eb == std::string_view::npos;
    if (last_a || last_b) return last_a && last_b;  // one ended first: different token counts
    a.remove_prefix(ea + 1);
    b.remove_prefix(eb + 1);
  }
}

}  // namespace bus::detail

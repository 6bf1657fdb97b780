// units.cpp — parse_size / parse_duration: number + unit parsing with overflow checks.
#include "units.hpp"

#include <array>
#include <cctype>
#include <limits>

namespace bus::tools {
namespace {

struct Unit {
  std::string_view name;
  std::uint64_t factor;
};

// Longest names first where one is a prefix of another ("ms" before "m").
constexpr std::array kSizeUnits{
    Unit{"kib", 1ull << 10}, Unit{"mib", 1ull << 20}, Unit{"gib", 1ull << 30},
    Unit{"kb", 1ull << 10},  Unit{"mb", 1ull << 20},  Unit{"gb", 1ull << 30},
    Unit{"k", 1ull << 10},   Unit{"m", 1ull << 20},   Unit{"g", 1ull << 30},
    Unit{"b", 1},            Unit{"", 1},
};

constexpr std::array kDurationUnits{
    Unit{"ns", 1},
    Unit{"us", 1'000},
    Unit{"\xC2\xB5s", 1'000},  // "µs" (U+00B5 micro sign), as Go accepts
    Unit{"\xCE\xBCs", 1'000},  // "μs" (U+03BC greek mu)
    Unit{"ms", 1'000'000},
    Unit{"s", 1'000'000'000},
    Unit{"m", 60'000'000'000},
    Unit{"h", 3'600'000'000'000},
};

Error bad(std::string_view what, std::string_view text, std::string_view why) {
  return make_error(Errc::invalid_argument,
                    std::string("invalid ") + std::string(what) + " '" + std::string(text) +
                        "': " + std::string(why));
}

// One "<digits>[.<digits>]" at the front of `rest`; consumes it. The fraction is kept as
// digits/scale so whole-number inputs stay exact.
struct Number {
  std::uint64_t whole = 0;
  std::uint64_t frac = 0;
  std::uint64_t frac_scale = 1;
  bool overflow = false;
};

bool take_number(std::string_view& rest, Number& out) {
  std::size_t i = 0;
  bool any_digit = false;
  while (i < rest.size() && std::isdigit(static_cast<unsigned char>(rest[i]))) {
    const auto d = static_cast<std::uint64_t>(rest[i] - '0');
    if (out.whole > (std::numeric_limits<std::uint64_t>::max() - d) / 10) out.overflow = true;
    out.whole = out.whole * 10 + d;
    any_digit = true;
    ++i;
  }
  if (i < rest.size() && rest[i] == '.') {
    ++i;
    while (i < rest.size() && std::isdigit(static_cast<unsigned char>(rest[i]))) {
      if (out.frac_scale < 1'000'000'000'000'000ull) {  // 18 digits is plenty; ignore the rest
        out.frac = out.frac * 10 + static_cast<std::uint64_t>(rest[i] - '0');
        out.frac_scale *= 10;
      }
      any_digit = true;
      ++i;
    }
  }
  rest.remove_prefix(i);
  return any_digit;
}

// whole * factor + frac * factor / frac_scale, or false on overflow of `limit`.
bool scale(const Number& n, std::uint64_t factor, std::uint64_t limit, std::uint64_t& out) {
  if (n.overflow || (factor != 0 && n.whole > limit / factor)) return false;
  const auto whole = n.whole * factor;
  const auto frac = static_cast<std::uint64_t>(static_cast<long double>(n.frac) * factor /
                                               static_cast<long double>(n.frac_scale));
  if (frac > limit - whole) return false;
  out = whole + frac;
  return true;
}

bool starts_with_icase(std::string_view text, std::string_view prefix) {
  if (text.size() < prefix.size()) return false;
  for (std::size_t i = 0; i < prefix.size(); ++i) {
    if (std::tolower(static_cast<unsigned char>(text[i])) != prefix[i]) return false;
  }
  return true;
}

}  // namespace

Result<std::uint64_t> parse_size(std::string_view text) {
  std::string_view rest = text;
  Number n;
  if (!take_number(rest, n)) return bad("size", text, "expected a number, e.g. 65536, 64KiB, 4M");
  for (const auto& unit : kSizeUnits) {
    if (rest.size() == unit.name.size() && starts_with_icase(rest, unit.name)) {
      std::uint64_t bytes = 0;
      if (!scale(n, unit.factor, std::numeric_limits<std::uint64_t>::max(), bytes)) {
        return bad("size", text, "too large");
      }
      return bytes;
    }
  }
  return bad("size", text, "unknown unit (use B, K/KiB, M/MiB or G/GiB)");
}

Result<std::chrono::nanoseconds> parse_duration(std::string_view text) {
  constexpr auto kMax = static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max());
  if (text == "0") return std::chrono::nanoseconds(0);
  std::string_view rest = text;
  std::uint64_t total = 0;
  if (rest.empty()) return bad("duration", text, "empty");
  while (!rest.empty()) {
    Number n;
    if (!take_number(rest, n)) {
      return bad("duration", text, "expected a number with a unit, e.g. 500ms, 2s, 1m");
    }
    const Unit* unit = nullptr;
    for (const auto& u : kDurationUnits) {
      // The longest match wins: "ms" must not be read as "m" followed by "s".
      if (rest.substr(0, u.name.size()) == u.name && (!unit || u.name.size() > unit->name.size())) {
        unit = &u;
      }
    }
    if (!unit) return bad("duration", text, "missing or unknown unit (use ns, us, ms, s, m, h)");
    rest.remove_prefix(unit->name.size());
    std::uint64_t part = 0;
    if (!scale(n, unit->factor, kMax, part) || part > kMax - total) {
      return bad("duration", text, "too large");
    }
    total += part;
  }
  return std::chrono::nanoseconds(static_cast<std::int64_t>(total));
}

std::string format_size(std::uint64_t bytes) {
  if (bytes != 0) {
    for (const auto& [suffix, shift] : {std::pair{"GiB", 30}, {"MiB", 20}, {"KiB", 10}}) {
      if (bytes % (1ull << shift) == 0) return std::to_string(bytes >> shift) + suffix;
    }
  }
  return std::to_string(bytes) + "B";
}

std::string format_duration(std::chrono::nanoseconds duration) {
  const auto ns = duration.count();
  if (ns != 0) {
    for (const auto& [suffix, factor] : {std::pair<const char*, std::int64_t>{"h", 3'600'000'000'000},
                                         {"m", 60'000'000'000},
                                         {"s", 1'000'000'000},
                                         {"ms", 1'000'000},
                                         {"us", 1'000}}) {
      if (ns % factor == 0) return std::to_string(ns / factor) + suffix;
    }
  }
  return ns == 0 ? "0" : std::to_string(ns) + "ns";
}

}  // namespace bus::tools

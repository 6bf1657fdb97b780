// cli_units.hpp — CLI11 glue for units.hpp: size and duration flags that reject bad input as
// usage errors (exit 2) and show their defaults in --help as "64KiB" / "5s".
#pragma once

#include <CLI/CLI.hpp>
#include <charconv>
#include <chrono>
#include <cstdint>
#include <limits>
#include <string>

#include "units.hpp"

namespace bus::tools {

// Every limit a flag refuses is said the same way, naming the real range:
//   --max-clients: '5000' is not a whole number from 1 to 4096
//   --count: '0' is not a whole number of at least 1
//   --ring-bytes: '3000' is not a power of two from 4KiB to 1GiB
//   --max-payload: '1GiB' is not a size from 1B to 512MiB
//   --timeout: '0s' is not a duration above 0
// (CLI11 puts the flag's name in front.)

/// The limits of a size flag: [min, max], and whether it must be a power of two.
struct SizeRange {
  std::uint64_t min = 0;
  std::uint64_t max = std::numeric_limits<std::uint64_t>::max();
  bool power_of_two = false;
};

/// Rewrites "64KiB" to "65536" before CLI11 converts it, so it can bind to an integer; refuses
/// a size outside `range`.
inline CLI::Validator size_transformer(SizeRange range = {}) {
  return CLI::Validator(
      [range](std::string& text) -> std::string {
        auto size = parse_size(text);
        if (!size) return size.error().message;
        const bool bounded = range.min != 0 || range.max != std::numeric_limits<std::uint64_t>::max();
        const bool power_ok = !range.power_of_two || (*size != 0 && (*size & (*size - 1)) == 0);
        if (!power_ok || *size < range.min || *size > range.max) {
          std::string what = range.power_of_two ? "a power of two" : "a size";
          if (bounded) what += " from " + format_size(range.min) + " to " + format_size(range.max);
          return "'" + text + "' is not " + what;
        }
        text = std::to_string(*size);
        return {};
      },
      "");
}

/// Rewrites "500ms" to its count of nanoseconds; with `positive`, refuses 0.
inline CLI::Validator duration_transformer(bool positive = false) {
  return CLI::Validator(
      [positive](std::string& text) -> std::string {
        auto duration = parse_duration(text);
        if (!duration) return duration.error().message;
        if (positive && duration->count() <= 0) return "'" + text + "' is not a duration above 0";
        text = std::to_string(duration->count());
        return {};
      },
      "");
}

/// A whole number in [min, max]. CLI::Range lets "-1" through for 64-bit unsigned targets (it
/// wraps to the maximum), so counts are checked as text.
inline CLI::Validator count_in_range(std::uint64_t min,
                                     std::uint64_t max = std::numeric_limits<std::uint64_t>::max()) {
  return CLI::Validator(
      [min, max](std::string& text) -> std::string {
        std::uint64_t value = 0;
        const auto* end = text.data() + text.size();
        const auto [ptr, ec] = std::from_chars(text.data(), end, value);
        if (text.empty() || ec != std::errc{} || ptr != end || value < min || value > max) {
          const std::string range = max == std::numeric_limits<std::uint64_t>::max()
                                        ? "of at least " + std::to_string(min)
                                        : "from " + std::to_string(min) + " to " + std::to_string(max);
          return "'" + text + "' is not a whole number " + range;
        }
        return {};
      },
      "");
}

inline CLI::Option* add_size_option(CLI::App& app, const std::string& name, std::uint64_t& target,
                                    const std::string& description, SizeRange range = {}) {
  return app.add_option(name, target, description)
      ->type_name("SIZE")
      ->transform(size_transformer(range))
      ->default_str(format_size(target));
}

/// A duration flag; with `positive`, 0 is refused ("'0s' is not a duration above 0").
inline CLI::Option* add_duration_option(CLI::App& app, const std::string& name,
                                        std::chrono::nanoseconds& target,
                                        const std::string& description, bool positive = false) {
  return app
      .add_option_function<std::int64_t>(
          name, [&target](std::int64_t ns) { target = std::chrono::nanoseconds(ns); },
          description)
      ->type_name("DURATION")
      ->transform(duration_transformer(positive))
      ->default_str(format_duration(target));
}

}  // namespace bus::tools

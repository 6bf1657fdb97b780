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

/// Rewrites "64KiB" to "65536" before CLI11 converts it, so it can bind to an integer.
inline CLI::Validator size_transformer() {
  return CLI::Validator(
      [](std::string& text) -> std::string {
        auto size = parse_size(text);
        if (!size) return size.error().message;
        text = std::to_string(*size);
        return {};
      },
      "");
}

/// Rewrites "500ms" to its count of nanoseconds.
inline CLI::Validator duration_transformer() {
  return CLI::Validator(
      [](std::string& text) -> std::string {
        auto duration = parse_duration(text);
        if (!duration) return duration.error().message;
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
          const std::string range =
              max == std::numeric_limits<std::uint64_t>::max()
                  ? ">= " + std::to_string(min)
                  : "from " + std::to_string(min) + " to " + std::to_string(max);
          return "'" + text + "' is not a whole number " + range;
        }
        return {};
      },
      "");
}

inline CLI::Option* add_size_option(CLI::App& app, const std::string& name, std::uint64_t& target,
                                    const std::string& description) {
  return app.add_option(name, target, description)
      ->type_name("SIZE")
      ->transform(size_transformer())
      ->default_str(format_size(target));
}

inline CLI::Option* add_duration_option(CLI::App& app, const std::string& name,
                                        std::chrono::nanoseconds& target,
                                        const std::string& description) {
  return app
      .add_option_function<std::int64_t>(
          name, [&target](std::int64_t ns) { target = std::chrono::nanoseconds(ns); },
          description)
      ->type_name("DURATION")
      ->transform(duration_transformer())
      ->default_str(format_duration(target));
}

}  // namespace bus::tools

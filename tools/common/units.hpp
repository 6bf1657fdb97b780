// units.hpp — parsing and printing of the sizes and durations the bus tools take as flags
// (`--ring-bytes 64KiB`, `--timeout 500ms`). Plain functions returning bus::Result, no CLI11.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <string_view>

#include "bus/result.hpp"

namespace bus::tools {

/// Bytes: "65536", "64K", "64KiB", "4M", "1.5MiB", "1G". Suffixes are case-insensitive and all
/// binary: K, KB and KiB mean 1024 (a ring size is a power of two, never a power of ten).
Result<std::uint64_t> parse_size(std::string_view text);

/// Go-style durations, as the nats CLI takes them: "500ms", "1s", "2m", "100us", "1.5s",
/// "1m30s". Units: ns, us (or µs), ms, s, m, h. A bare number is refused (is "5" seconds or
/// milliseconds?) except "0".
Result<std::chrono::nanoseconds> parse_duration(std::string_view text);

/// "4MiB", "64KiB", "1000B": the largest binary unit that divides the size exactly.
std::string format_size(std::uint64_t bytes);
/// "5s", "200ms", "90s": the largest unit that divides the duration exactly.
std::string format_duration(std::chrono::nanoseconds duration);

}  // namespace bus::tools

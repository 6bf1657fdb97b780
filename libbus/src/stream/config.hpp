// stream/config.hpp — what a stream is: JetStream's stream configuration, by JetStream's names
// (../shared/reference/nats-semantics.md §7), checked, and kept as JSON beside its journal.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "bus/result.hpp"
#include "bus/stream.hpp"

namespace bus::detail::stream {

using bus::Discard;
using bus::Retention;
using bus::Storage;
using bus::StreamConfig;
using bus::to_string;

/// JetStream's rules: a name of 1..255 bytes without whitespace, '.', '*', '>', '/' or '\';
/// at least one subject, each a valid pattern, none overlapping another of the same stream; a
/// limit is -1, 0 (both unlimited, as JetStream defaults 0) or positive; a duplicate window
/// no longer than max_age when that is set.
/// Errc::invalid_argument (or invalid_subject) with a one-line reason otherwise.
Status validate(const StreamConfig& config);
/// The name rule of streams and consumers: 1..255 printable ASCII bytes without '.', '*', '>',
/// '/' or '\' (they become subject tokens and directory names). `what`: "stream", "consumer".
Status validate_name(std::string_view name, const char* what);

/// 0 limits become -1, as JetStream's defaults do: what is stored and shown is unambiguous.
void normalize(StreamConfig& config);

/// The configuration as JSON (bus::to_json), with JetStream's field names and values
/// ("max_age" in ns); plus "sync" ("never" | "always"), which JetStream has not.
using bus::to_json;
/// The reverse, checking every field (a hand-edited or damaged file gives an error, never a
/// half-read stream). Unknown fields are ignored, as JetStream does.
Result<StreamConfig> from_json(std::string_view text);

/// A config's JSON as a value, to embed in a larger reply (to_json() is this, dumped).
nlohmann::json to_json_value(const StreamConfig& config);
/// A config from a JSON value (as from_json()).
Result<StreamConfig> from_json_value(const nlohmann::json& value);

/// `value` as text (`indent` as nlohmann's dump), invalid UTF-8 replaced: names and subjects
/// are bytes, and a throw must never escape into the broker's loop or a publish.
std::string json_text(const nlohmann::json& value, int indent = -1);

/// StreamInfo between the broker and the library: {"config": {...}, "state": {...}} with
/// JetStream's state names; times in ns. The CLI makes its own JSON for users (docs/streams.md).
nlohmann::json info_to_json(const StreamInfo& info);
Result<StreamInfo> info_from_json(const nlohmann::json& value);
using bus::StreamInfo;
using bus::StreamState;

}  // namespace bus::detail::stream

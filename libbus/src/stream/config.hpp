// stream/config.hpp — what a stream is: JetStream's stream configuration, by JetStream's names
// (../shared/reference/nats-semantics.md §7), checked, and kept as JSON beside its journal.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "bus/result.hpp"
#include "journal/journal.hpp"

namespace bus::detail::stream {

enum class Retention { limits, interest, workqueue };
enum class Discard { old_messages, new_messages };  // JetStream "old" | "new"
enum class Storage { file, memory };

struct StreamConfig {
  std::string name;
  std::vector<std::string> subjects;            // patterns; wildcards allowed
  Retention retention = Retention::limits;
  std::int64_t max_msgs = -1;                   // -1: unlimited (JetStream's convention)
  std::int64_t max_bytes = -1;
  std::chrono::nanoseconds max_age{0};          // 0: unlimited
  std::int64_t max_msg_size = -1;
  std::int64_t max_msgs_per_subject = -1;
  Discard discard = Discard::old_messages;
  std::chrono::nanoseconds duplicate_window = std::chrono::minutes(2);  // JetStream's default
  Storage storage = Storage::file;
  journal::SyncPolicy sync = journal::SyncPolicy::never;  // ours: what an acknowledgement means
};

/// JetStream's rules: a name of 1..255 bytes without whitespace, '.', '*', '>', '/' or '\';
/// at least one subject, each a valid pattern, none overlapping another of the same stream; a
/// limit is -1, 0 (both unlimited, as JetStream defaults 0) or positive; a duplicate window
/// no longer than max_age when that is set.
/// Errc::invalid_argument (or invalid_subject) with a one-line reason otherwise.
Status validate(const StreamConfig& config);

/// 0 limits become -1, as JetStream's defaults do: what is stored and shown is unambiguous.
void normalize(StreamConfig& config);

/// The configuration as JSON, with JetStream's field names and values ("max_age" in ns); plus
/// "sync" ("never" | "always"), which JetStream has not.
std::string to_json(const StreamConfig& config);
/// The reverse, checking every field (a hand-edited or damaged file gives an error, never a
/// half-read stream). Unknown fields are ignored, as JetStream does.
Result<StreamConfig> from_json(std::string_view text);

const char* to_string(Retention r) noexcept;
const char* to_string(Discard d) noexcept;
const char* to_string(Storage s) noexcept;

}  // namespace bus::detail::stream

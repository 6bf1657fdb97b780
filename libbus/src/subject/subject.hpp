// subject/subject.hpp — NATS subject rules: validation and wildcard matching.
//
// Provides the checks every publish, subscribe and queue-group name goes through, and
// `subject_matches`, the reference definition of which pattern receives which subject.
// The rules are exactly those of nats-server (server/sublist.go; the project's NATS
// semantics reference, sections 1 and 2):
//   * a subject is tokens separated by '.', every token non-empty;
//   * a token is a wildcard only when it is exactly "*" (one token) or ">" (one or more
//     tokens, last token only); "foo*", "**", ">>" are ordinary literal tokens;
//   * bytes are compared as bytes: case-sensitive, UTF-8 passes through untouched.
// On top of NATS we reject every whitespace byte (like nats.c, which also rejects '\v')
// and bound the length, because subjects live in fixed-size shared-memory slots.
// Nothing here allocates except the message of a returned error.
#pragma once

#include <cstddef>
#include <string_view>

#include "bus/result.hpp"

namespace bus::detail {

// NATS has no subject length limit (only the 4 KiB control line bounds it on the wire).
// Ours comes from the fixed-size subject slots of the shared-memory tables.
inline constexpr std::size_t kMaxSubjectBytes = 255;
inline constexpr std::size_t kMaxQueueGroupBytes = 63;

/// A subject a message may be published to: NATS `IsValidPublishSubject` (no wildcard
/// token) plus the whitespace and length rules above. Errc::invalid_subject otherwise.
Status validate_publish_subject(std::string_view subject);

/// A pattern a subscription may use: NATS `IsValidSubject` (wildcards allowed, '>' last)
/// plus the whitespace and length rules above. Errc::invalid_subject otherwise.
Status validate_subscribe_subject(std::string_view pattern);

/// A queue group name: non-empty, no whitespace byte, at most kMaxQueueGroupBytes.
/// Errc::invalid_argument otherwise.
Status validate_queue_group(std::string_view group);

/// True when no token is exactly "*" or ">". Says nothing about validity otherwise.
bool subject_is_literal(std::string_view s) noexcept;

/// Does `pattern` match the literal `subject`? Exactly NATS `Sublist.Match`: '*' matches
/// one token, '>' one or more and only as the last token, wildcards only as whole tokens,
/// byte-for-byte comparison. A subject or pattern with an empty token (including "")
/// matches nothing, and so does a pattern with a token after '>'. Whitespace and length
/// are not looked at here; callers validate first. Never allocates.
bool subject_matches(std::string_view pattern, std::string_view subject) noexcept;

/// Could one subject match both patterns (valid subscribe patterns)? Two streams may not
/// capture overlapping subjects (JetStream's rule). "a.*" and "*.b" overlap (a.b); "a.>" and
/// "a" do not ('>' needs a token). Never allocates.
bool subjects_overlap(std::string_view a, std::string_view b) noexcept;

}  // namespace bus::detail

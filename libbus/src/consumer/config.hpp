// consumer/config.hpp — what a consumer is on the wire and on disk: JetStream's consumer
// configuration and info by JetStream's names, checked; the $JS.API.CONSUMER.* subjects; the
// $JS.ACK.* reply subject a delivered message carries; and the API's error replies.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "bus/consumer.hpp"
#include "bus/result.hpp"

namespace bus::detail::consumer {

/// JetStream's rules (docs/streams.md lists them): names as stream names; durable_name and
/// name agree when both are set; opt_start_seq / opt_start_time with their deliver policy
/// only; ack_wait > 0; backoff needs max_deliver > its length; filter subjects valid and not
/// overlapping; deliver_group only with deliver_subject (a literal subject); max_waiting for
/// pull consumers only. Errc::invalid_argument (or invalid_subject) with the reason.
Status validate(const ConsumerConfig& config);
/// JetStream's defaults for what was left 0: max_deliver -1, max_ack_pending 1000 (unlimited
/// with ack none), max_waiting 512 for pull (0 for push), inactive_threshold 5 s for an
/// ephemeral; name = durable_name for a durable.
void normalize(ConsumerConfig& config);
/// Whether `a` and `b` describe the same consumer (an add of an existing one is idempotent).
bool same(const ConsumerConfig& a, const ConsumerConfig& b);

nlohmann::json to_json_value(const ConsumerConfig& config);
Result<ConsumerConfig> from_json_value(const nlohmann::json& value);
/// ConsumerInfo with JetStream's names ("created" and "last_active" as RFC 3339).
nlohmann::json info_to_json(const ConsumerInfo& info);
Result<ConsumerInfo> info_from_json(const nlohmann::json& value);

/// The API subjects, as JetStream names them.
inline constexpr std::string_view kApiPrefix = "$JS.API.CONSUMER.";
std::string create_subject(std::string_view stream, std::string_view consumer);
std::string info_subject(std::string_view stream, std::string_view consumer);
std::string delete_subject(std::string_view stream, std::string_view consumer);
std::string list_subject(std::string_view stream);
std::string next_subject(std::string_view stream, std::string_view consumer);
/// What the engine listens on: every API request and every acknowledgement.
inline constexpr std::string_view kApiPattern = "$JS.API.CONSUMER.>";
inline constexpr std::string_view kAckPattern = "$JS.ACK.>";

/// JetStream's ack subject. With `address` (the engine's ack ring, client/inbox.hpp) its v2
/// form, $JS.ACK._.bus.<stream>.<consumer>.<delivered>.<stream seq>.<consumer seq>.<time ns>.
/// <pending>.<address>, which publishers deliver straight to that ring; without, the v1 form
/// $JS.ACK.<stream>.<consumer>.<delivered>.<stream seq>.<consumer seq>.<time ns>.<pending>.
std::string ack_subject(std::string_view stream, std::string_view consumer, const MessageMetadata& m,
                        std::string_view address = {});
/// The reverse, for either form (and v2 without its last token); nullopt for any other subject.
std::optional<MessageMetadata> parse_ack_subject(std::string_view subject);

/// An API error reply: {"error": {"code": HTTP-like, "err_code": JetStream's, "description"}}.
std::string error_reply(const Error& error);
/// A reply that is an error reply, as the Error it carries; nullopt otherwise.
std::optional<Error> reply_error(const nlohmann::json& reply);

}  // namespace bus::detail::consumer

// bus/bus.hpp — the public API of libbus: include this one header.
//
// bus is a shared-memory message bus with NATS semantics: subjects with `*` and `>` wildcards,
// fan-out publish/subscribe, queue groups, request/reply and headers, on one host, at the latency of a cache-line transfer.
//   bus::Broker        the broker (or run `busd`)                       bus/broker.hpp
//   bus::Connection    attach, publish, subscribe                       bus/connection.hpp
//   bus::Subscription  receive: next(), try_poll(), or a handler        bus/subscription.hpp
//   bus::Headers       NATS message headers                             bus/headers.hpp
//   bus::Streams       streams kept on disk (JetStream), stream_publish bus/stream.hpp
//   bus::Result/Status the one error model (no exceptions)             bus/result.hpp
#pragma once

#include "bus/broker.hpp"
#include "bus/connection.hpp"
#include "bus/consumer.hpp"
#include "bus/headers.hpp"
#include "bus/message.hpp"
#include "bus/monitor.hpp"
#include "bus/options.hpp"
#include "bus/result.hpp"
#include "bus/stream.hpp"
#include "bus/subscription.hpp"

namespace bus {

/// Validates a literal subject for publishing (NATS rules; no wildcards).
Status validate_publish_subject(std::string_view subject);
/// Validates a subscription pattern (NATS rules; `*` and `>` as whole tokens, `>` last).
Status validate_pattern(std::string_view pattern);
/// Does `pattern` match the literal `subject` (NATS matching)?
bool subject_matches(std::string_view pattern, std::string_view subject) noexcept;

}  // namespace bus

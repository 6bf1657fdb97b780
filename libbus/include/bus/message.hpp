// bus/message.hpp — what a subscriber receives.
//
// MessageView points into the subscriber's ring and is valid only inside the callback (or
// try_poll handler) it was passed to: zero-copy. Message owns copies of everything and is what
// Subscription::next() returns. Both can answer a request: respond() publishes to the message's
// reply subject through the connection that received it (NATS msg.Respond).
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "bus/headers.hpp"
#include "bus/result.hpp"

namespace bus {

namespace detail {
class ConnectionImpl;
}

struct MessageView {
  std::string_view subject;
  std::string_view reply;    ///< empty when the publisher asked for no reply
  std::string_view headers;  ///< encoded NATS header block, empty when the message has none
  std::string_view data;     ///< payload bytes (binary-safe)
  detail::ConnectionImpl* origin = nullptr;  ///< the receiving connection (for respond())
  /// 0: published on this bus. Else a bridge brought it in from NATS (the bridge's id): a
  /// bridge never exports such a message back, which is what keeps bridged buses free of loops
  /// (docs/scale-out.md).
  std::uint16_t imported_by = 0;

  /// Publishes `data` to `reply`. Errc::invalid_argument when the message has no reply subject.
  Status respond(std::string_view response) const;
  Status respond(std::string_view response, const Headers& response_headers) const;
  /// Parses `headers` (an empty Headers when there are none).
  Result<Headers> header() const { return Headers::parse(headers); }
};

struct Message {
  std::string subject;
  std::string reply;
  std::string headers;
  std::string data;
  std::weak_ptr<detail::ConnectionImpl> origin;
  std::uint16_t imported_by = 0;  ///< as MessageView::imported_by

  /// Copies a view (and remembers its connection for respond()).
  static Message from(const MessageView& v);
  MessageView view() const noexcept {
    return MessageView{subject, reply, headers, data, origin.lock().get(), imported_by};
  }

  Status respond(std::string_view response) const;
  Status respond(std::string_view response, const Headers& response_headers) const;
  Result<Headers> header() const { return Headers::parse(headers); }
};

}  // namespace bus

// bus/message.hpp — what a subscriber receives.
//
// MessageView points into the subscriber's ring and is valid only inside the callback (or
// try_poll handler) it was passed to: zero-copy. Message owns copies of everything and is what
// Subscription::next() returns.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

namespace bus {

struct MessageView {
  std::string_view subject;
  std::string_view reply;    ///< empty when the publisher asked for no reply
  std::string_view headers;  ///< encoded header block, empty when the message has none
  std::string_view data;     ///< payload bytes (binary-safe)
};

struct Message {
  std::string subject;
  std::string reply;
  std::string headers;
  std::string data;

  static Message from(const MessageView& v) {
    return Message{std::string(v.subject), std::string(v.reply), std::string(v.headers),
                   std::string(v.data)};
  }
  MessageView view() const noexcept { return MessageView{subject, reply, headers, data}; }
};

}  // namespace bus

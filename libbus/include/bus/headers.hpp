// bus/headers.hpp — NATS message headers.
//
//   bus::Headers h;
//   h.add("Trace-Id", "abc");  h.add("Tag", "a");  h.add("Tag", "b");   // multi-valued
//   conn->publish("orders.new", body, h);
//   ...
//   auto parsed = bus::Headers::parse(msg.headers);   // on receipt
//   parsed->get("Trace-Id");                           // "abc"
//
// Keys keep their case and are compared exactly (as the NATS server does); a key may repeat.
// The object holds the NATS wire block itself ("NATS/1.0[ status[ description]]\r\n",
// "Key: value\r\n"..., "\r\n"), so publishing with headers copies one string and a message
// without headers carries no header bytes at all.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "bus/result.hpp"

namespace bus {

class Headers {
 public:
  Headers() = default;

  /// Parses a NATS header block. Errc::invalid_argument names what is malformed.
  static Result<Headers> parse(std::string_view block);

  /// Appends a value for `key` (keeps earlier values). Keys may not be empty or hold ':',
  /// whitespace or control characters; values may not hold CR or LF.
  Status add(std::string_view key, std::string_view value);
  /// Replaces every value of `key` with `value`.
  Status set(std::string_view key, std::string_view value);
  /// Removes every value of `key`; returns how many were removed.
  std::size_t remove(std::string_view key);

  /// First value of `key`, exact-case match.
  std::optional<std::string_view> get(std::string_view key) const;
  /// Every value of `key`, in order.
  std::vector<std::string_view> values(std::string_view key) const;
  /// Every (key, value) in order.
  std::vector<std::pair<std::string_view, std::string_view>> entries() const;

  /// Status code of the block's first line (e.g. 503 for no responders), 0 when none.
  int status() const noexcept { return status_; }
  std::string_view description() const noexcept { return description_; }

  bool empty() const noexcept { return count_ == 0 && status_ == 0; }
  std::size_t size() const noexcept { return count_; }
  /// The wire block; empty when there are no headers and no status.
  const std::string& encoded() const noexcept { return block_; }

 private:
  void rebuild_prefix();
  std::string block_;        // complete block, or empty
  std::size_t count_ = 0;    // header lines
  int status_ = 0;
  std::string description_;
};

}  // namespace bus

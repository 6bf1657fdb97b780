// bus/result.hpp — the one error model of libbus.
//
// Every libbus call that can fail returns `bus::Result<T>` (or `bus::Status`, which is
// `Result<void>`): either a value or a `bus::Error` carrying a stable code and a message
// that names the offending input. libbus throws no exceptions of its own:
//   * a library linked into other people's processes must work where exceptions are off;
//   * unwinding in the middle of a shared-memory write would leave state half-written for
//     *other* processes;
//   * the codes cross process boundaries (broker replies) unchanged.
// Normal outcomes on the hot path (a full ring, no subscriber) are not errors.
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <variant>

namespace bus {

/// Stable error codes. Values never change meaning; new codes are appended.
enum class Errc : std::uint16_t {
  ok = 0,
  invalid_argument = 1,        ///< a bad option, name or size
  invalid_subject = 2,         ///< a subject or pattern that breaks the NATS subject rules
  payload_too_large = 3,       ///< payload (+ headers) over the bus's max_payload
  broker_not_running = 4,      ///< no broker serves this bus name
  broker_already_running = 5,  ///< a second broker on the same bus
  broker_gone = 6,             ///< the broker died or closed the control channel
  segment_corrupt = 7,         ///< a value read from shared memory failed a bounds check
  version_mismatch = 8,        ///< the segment was made by an incompatible layout version
  permission_denied = 9,       ///< the segment or broker belongs to another user
  resource_exhausted = 10,     ///< no free client slot, subscription, ring or route
  timeout = 11,                ///< nothing arrived within the caller's deadline
  closed = 12,                 ///< the handle was closed or unsubscribed
  io_error = 13,               ///< an OS call failed (the message names it and errno)
  protocol_error = 14,         ///< a malformed control message
  no_responders = 15,          ///< a request found nobody subscribed (NATS 503)
  already_exists = 16,         ///< a file, stream or consumer of that name exists
  journal_corrupt = 17,        ///< a journal file failed a check (its record is never delivered)
  not_found = 18,              ///< no stream, consumer or stored message of that name or sequence
  expectation_failed = 19,     ///< a Nats-Expected-* header of a stream publish did not hold
};

/// Short fixed name of a code, e.g. "invalid_subject".
const char* errc_name(Errc code) noexcept;

struct Error {
  Errc code = Errc::ok;
  std::string message;  ///< one line, names the input and the rule it broke
};

/// Misuse of a Result: value() (or ->, *) of one that holds an Error, or error() of one that
/// holds a value. A bug in the caller, not an outcome: it prints one line to stderr naming the
/// call and the error it held ("bus: Result::value() of an error: [timeout] ...") and aborts,
/// as a failed assertion would, rather than throw (libbus throws nothing) or read a value that
/// is not there. Check `if (!r)` first; the misuse is never reached by code that does.
[[noreturn]] void result_misuse(const char* call, const Error* held) noexcept;

/// A value or an Error. Minimal stand-in for C++23 std::expected.
template <class T>
class [[nodiscard]] Result {
 public:
  Result(T value) : v_(std::in_place_index<0>, std::move(value)) {}  // NOLINT: implicit by design
  Result(Error error) : v_(std::in_place_index<1>, std::move(error)) {}  // NOLINT
  /// The value made in place from `args` (no temporary moved in).
  template <class... Args>
  explicit Result(std::in_place_t, Args&&... args) : v_(std::in_place_index<0>, std::forward<Args>(args)...) {}

  bool ok() const noexcept { return v_.index() == 0; }
  explicit operator bool() const noexcept { return ok(); }

  T& value() & { return *held_value("value()"); }
  const T& value() const& { return *held_value("value()"); }
  T&& value() && { return std::move(*held_value("value()")); }
  T* operator->() { return held_value("operator->"); }
  const T* operator->() const { return held_value("operator->"); }
  T& operator*() & { return *held_value("operator*"); }

  const Error& error() const& { return *held_error(); }
  Error&& error() && { return std::move(*held_error()); }

 private:
  T* held_value(const char* call) {
    if (T* v = std::get_if<0>(&v_)) [[likely]] return v;
    result_misuse(call, std::get_if<1>(&v_));
  }
  const T* held_value(const char* call) const {
    if (const T* v = std::get_if<0>(&v_)) [[likely]] return v;
    result_misuse(call, std::get_if<1>(&v_));
  }
  Error* held_error() {
    if (Error* e = std::get_if<1>(&v_)) [[likely]] return e;
    result_misuse("error()", nullptr);
  }
  const Error* held_error() const {
    if (const Error* e = std::get_if<1>(&v_)) [[likely]] return e;
    result_misuse("error()", nullptr);
  }

  std::variant<T, Error> v_;
};

template <>
class [[nodiscard]] Result<void> {
 public:
  Result() = default;
  Result(Error error) : error_(std::move(error)), ok_(false) {}  // NOLINT

  bool ok() const noexcept { return ok_; }
  explicit operator bool() const noexcept { return ok_; }
  const Error& error() const& {
    if (ok_) result_misuse("error()", nullptr);
    return error_;
  }
  Error&& error() && {
    if (ok_) result_misuse("error()", nullptr);
    return std::move(error_);
  }

 private:
  Error error_{};
  bool ok_ = true;
};

using Status = Result<void>;

/// Builds an Error; the common way libbus code fails.
inline Error make_error(Errc code, std::string message) { return Error{code, std::move(message)}; }

}  // namespace bus

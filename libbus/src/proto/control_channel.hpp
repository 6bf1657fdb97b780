// proto/control_channel.hpp — the client's end of the control socket: blocking request/reply
// calls with a deadline, safe to call from several threads (one call in flight at a time).
#pragma once

#include <atomic>
#include <chrono>
#include <mutex>
#include <optional>
#include <sys/types.h>
#include <string_view>

#include "bus/result.hpp"
#include "proto/control.hpp"

namespace bus::detail {

class ControlChannel {
 public:
  ControlChannel() = default;
  ControlChannel(const ControlChannel&) = delete;
  ControlChannel& operator=(const ControlChannel&) = delete;
  ~ControlChannel();

  /// Connects to the broker of `bus_name`. Errc::broker_not_running if nobody listens.
  Status connect(std::string_view bus_name);
  /// Sends `request` and waits up to `timeout` for its reply; an error reply becomes an Error.
  /// With `session`: only on that connection (see session()), else broker_gone without sending,
  /// so a request meant for one broker never reaches the next one.
  Result<ControlMessage> call(ControlMessage request, std::chrono::milliseconds timeout,
                              std::optional<std::uint64_t> session = std::nullopt);
  /// The same with a body (request.body_len is set from it); the reply's body lands in `reply_body`.
  Result<ControlMessage> call(ControlMessage request, std::string_view body, std::string& reply_body,
                              std::chrono::milliseconds timeout);
  /// Which connection this is: +1 per successful connect().
  std::uint64_t session() const noexcept { return session_.load(std::memory_order_acquire); }
  void close() noexcept;
  /// close(), and every later connect() fails: the connection is closing for good, and a
  /// reconnect attempt racing with that must not open a new socket.
  void shut_down() noexcept;
  /// The broker's credentials (SO_PEERCRED at connect).
  uid_t peer_uid() const noexcept { return peer_uid_; }
  bool is_open() const noexcept { return fd_open_.load(std::memory_order_acquire) >= 0; }
  /// Waits up to `timeout` for the broker's end to go away (it died or closed us). True when it
  /// did, or when the channel is not open. Consumes nothing: safe beside a call() in flight.
  bool wait_hangup(std::chrono::milliseconds timeout) const noexcept;

 private:
  Result<ControlMessage> call_locked(ControlMessage& request, std::string_view body, std::string* reply_body,
                                     std::chrono::milliseconds timeout);
  std::mutex mutex_;
  int fd_ = -1;                      // under mutex_
  std::atomic<int> fd_open_{-1};     // the same, for close() to shutdown() without the lock
  std::uint32_t next_request_id_ = 1;
  uid_t peer_uid_ = 0;
  std::atomic<bool> shut_down_{false};
  std::atomic<std::uint64_t> session_{0};  // written under mutex_
};

/// Sends one control message on `fd` (broker side too), with `body` after it in the same
/// datagram (message.body_len must be body.size()). False on a broken socket.
bool send_control(int fd, const ControlMessage& message, std::string_view body = {}) noexcept;
/// Receives one datagram into `buffer` (kControlDatagramBytes): the message, checked
/// (well_formed, body_len matching what arrived), and its body. -1: nothing to read (EAGAIN);
/// 0: the peer closed; 1: a message; 2: malformed.
int receive_control(int fd, char* buffer, ControlMessage& message, std::string_view& body) noexcept;
inline constexpr std::size_t kControlDatagramBytes = sizeof(ControlMessage) + kMaxControlBody;

}  // namespace bus::detail

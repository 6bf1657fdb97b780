#include "proto/control_channel.hpp"

#include <poll.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstddef>
#include <new>
#include <cstring>

#include "os/process.hpp"

namespace bus::detail {

void ControlMessage::set_s1(std::string_view s) noexcept {
  str1_len = static_cast<std::uint16_t>(std::min(s.size(), sizeof str1 - 1));
  if (str1_len != 0) std::memcpy(str1, s.data(), str1_len);  // an empty view may hold nullptr
  str1[str1_len] = '\0';
}

void ControlMessage::set_s2(std::string_view s) noexcept {
  str2_len = static_cast<std::uint16_t>(std::min(s.size(), sizeof str2 - 1));
  if (str2_len != 0) std::memcpy(str2, s.data(), str2_len);
  str2[str2_len] = '\0';
}

bool ControlMessage::well_formed() const noexcept {
  return magic == kControlMagic && version == kControlVersion && str1_len < sizeof str1 &&
         str2_len < sizeof str2 && body_len <= kMaxControlBody;
}

ControlMessage make_error_reply(const ControlMessage& request, const Error& error) {
  ControlMessage reply;
  reply.type = ControlType::error;
  reply.request_id = request.request_id;
  reply.errc = static_cast<std::uint16_t>(error.code);
  reply.set_s1(error.message);
  return reply;
}

Error error_from_reply(const ControlMessage& reply) {
  return Error{static_cast<Errc>(reply.errc), std::string(reply.s1())};
}

std::string control_socket_name(std::string_view bus_name) {
  std::string name(1, '\0');
  name += "bus/";
  name += bus_name;
  return name;
}

int bind_control_socket(std::string_view bus_name, int flags, int& err) noexcept {
  const int fd = ::socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC | flags, 0);
  if (fd < 0) {
    err = errno;
    return -1;
  }
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::string name;
  try {
    name = control_socket_name(bus_name);
  } catch (const std::bad_alloc&) {
    ::close(fd);
    err = ENOMEM;
    return -1;
  }
  const std::size_t n = std::min(name.size(), sizeof addr.sun_path);
  std::memcpy(addr.sun_path, name.data(), n);
  const auto len = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + n);
  if (::bind(fd, reinterpret_cast<sockaddr*>(&addr), len) != 0) {
    err = errno;
    ::close(fd);
    return -1;
  }
  return fd;
}

bool send_control(int fd, const ControlMessage& message, std::string_view body) noexcept {
  iovec parts[2] = {{const_cast<ControlMessage*>(&message), sizeof message},
                    {const_cast<char*>(body.data()), body.size()}};
  msghdr msg{};
  msg.msg_iov = parts;
  msg.msg_iovlen = body.empty() ? 1 : 2;
  const auto total = static_cast<ssize_t>(sizeof message + body.size());
  for (;;) {
    const ssize_t n = ::sendmsg(fd, &msg, MSG_NOSIGNAL);
    if (n == total) return true;
    if (n < 0 && errno == EINTR) continue;
    return false;
  }
}

int receive_control(int fd, char* buffer, ControlMessage& message, std::string_view& body) noexcept {
  for (;;) {
    // MSG_TRUNC: n is the datagram's real length, so one larger than the buffer is refused
    // rather than accepted cut short.
    const ssize_t n = ::recv(fd, buffer, kControlDatagramBytes, MSG_TRUNC);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return -1;
    if (n <= 0) return 0;
    if (static_cast<std::size_t>(n) < sizeof message || static_cast<std::size_t>(n) > kControlDatagramBytes) return 2;
    std::memcpy(&message, buffer, sizeof message);
    if (!message.well_formed() || static_cast<std::size_t>(n) != sizeof message + message.body_len) return 2;
    body = std::string_view(buffer + sizeof message, message.body_len);
    return 1;
  }
}

ControlChannel::~ControlChannel() { close(); }

Status ControlChannel::connect(std::string_view bus_name) {
  close();
  const int fd = ::socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
  if (fd < 0) return make_error(Errc::io_error, errno_message("socket", errno));
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  const std::string name = control_socket_name(bus_name);
  if (name.size() > sizeof addr.sun_path) {
    ::close(fd);
    return make_error(Errc::invalid_argument, "bus name too long");
  }
  std::memcpy(addr.sun_path, name.data(), name.size());
  const auto len = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + name.size());
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), len) != 0) {
    const int err = errno;
    ::close(fd);
    if (err == ECONNREFUSED || err == ENOENT) {
      return make_error(Errc::broker_not_running,
                        "no broker is running for bus '" + std::string(bus_name) +
                            "' (start one with: busd --bus " + std::string(bus_name) + ")");
    }
    return make_error(Errc::io_error, errno_message("connect to broker", err));
  }
  // Whom are we talking to? Segment::open() then insists that the segment belongs to this uid
  // and is ours, or root's, or shared with our group: a stranger who bound the name first
  // cannot feed us or read what we publish.
  ucred cred{};
  socklen_t cred_len = sizeof cred;
  if (::getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &cred_len) != 0) {
    const int err = errno;
    ::close(fd);
    return make_error(Errc::io_error, errno_message("SO_PEERCRED of the broker", err));
  }
  peer_uid_ = cred.uid;
  std::lock_guard lock(mutex_);
  if (shut_down_.load(std::memory_order_acquire)) {
    ::close(fd);
    return make_error(Errc::closed, "connection is closed");
  }
  fd_ = fd;
  fd_open_.store(fd, std::memory_order_release);
  session_.store(session_.load(std::memory_order_relaxed) + 1, std::memory_order_release);
  return {};
}

Result<ControlMessage> ControlChannel::call(ControlMessage request, std::chrono::milliseconds timeout,
                                            std::optional<std::uint64_t> session) {
  std::lock_guard lock(mutex_);
  if (session && *session != session_.load(std::memory_order_relaxed)) {
    return make_error(Errc::broker_gone, "the control connection was made anew meanwhile");
  }
  return call_locked(request, {}, nullptr, timeout);
}

Result<ControlMessage> ControlChannel::call(ControlMessage request, std::string_view body, std::string& reply_body,
                                            std::chrono::milliseconds timeout) {
  if (body.size() > kMaxControlBody) return make_error(Errc::invalid_argument, "request too large for the control channel");
  std::lock_guard lock(mutex_);
  return call_locked(request, body, &reply_body, timeout);
}

Result<ControlMessage> ControlChannel::call_locked(ControlMessage& request, std::string_view body,
                                                   std::string* reply_body, std::chrono::milliseconds timeout) {
  if (fd_ < 0) return make_error(Errc::broker_gone, "not connected to the broker");
  request.request_id = next_request_id_++;
  request.body_len = static_cast<std::uint32_t>(body.size());
  if (!send_control(fd_, request, body)) {
    return make_error(Errc::broker_gone, "the broker closed the control connection");
  }
  // Only calls that expect a body need room for one.
  std::string small(sizeof(ControlMessage), '\0');
  std::string large;
  if (reply_body != nullptr) large.resize(kControlDatagramBytes);
  char* buffer = reply_body != nullptr ? large.data() : small.data();
  const std::uint64_t deadline = monotonic_ns() + static_cast<std::uint64_t>(timeout.count()) * 1'000'000ull;
  for (;;) {
    const std::uint64_t now = monotonic_ns();
    if (now >= deadline) {
      return make_error(Errc::timeout, "the broker did not answer within " +
                                           std::to_string(timeout.count()) + " ms");
    }
    pollfd pfd{fd_, POLLIN, 0};
    const int rc = ::poll(&pfd, 1, static_cast<int>((deadline - now) / 1'000'000ull) + 1);
    if (rc < 0 && errno == EINTR) continue;
    if (rc <= 0) continue;
    ControlMessage reply;
    std::string_view body_in;
    int got;
    if (reply_body != nullptr) {
      got = receive_control(fd_, buffer, reply, body_in);
    } else {
      // No body expected: a datagram longer than a message is malformed (MSG_TRUNC tells).
      const ssize_t n = ::recv(fd_, &reply, sizeof reply, MSG_TRUNC);
      // (A late reply with a body, to an earlier call that timed out, is skipped as late.)
      got = n < 0 ? (errno == EINTR || errno == EAGAIN ? -1 : 0)
                  : n == 0 ? 0
                  : n >= static_cast<ssize_t>(sizeof reply) && reply.well_formed() &&
                          static_cast<std::size_t>(n) == sizeof reply + reply.body_len
                      ? 1
                      : 2;
    }
    if (got < 0) continue;
    if (got == 0) return make_error(Errc::broker_gone, "the broker closed the control connection");
    if (got == 2) return make_error(Errc::protocol_error, "malformed reply from the broker");
    if (reply.request_id != request.request_id) continue;  // a late reply to a timed-out call
    if (reply.type == ControlType::error) return error_from_reply(reply);
    if (reply_body != nullptr) reply_body->assign(body_in);
    return reply;
  }
}

bool ControlChannel::wait_hangup(std::chrono::milliseconds timeout) const noexcept {
  const int fd = fd_open_.load(std::memory_order_acquire);
  if (fd < 0) return true;
  pollfd pfd{fd, POLLRDHUP, 0};
  const int rc = ::poll(&pfd, 1, static_cast<int>(timeout.count()));
  return rc > 0 && (pfd.revents & (POLLRDHUP | POLLHUP | POLLERR | POLLNVAL)) != 0;
}

void ControlChannel::shut_down() noexcept {
  shut_down_.store(true, std::memory_order_release);
  close();
}

void ControlChannel::close() noexcept {
  // shutdown() first: it wakes a call() blocked in poll() on another thread, which then returns
  // and releases the mutex; only then is the descriptor closed (and its number reusable).
  const int fd = fd_open_.load(std::memory_order_acquire);
  if (fd >= 0) ::shutdown(fd, SHUT_RDWR);
  std::lock_guard lock(mutex_);
  if (fd_ >= 0) {
    ::close(fd_);
    fd_ = -1;
    fd_open_.store(-1, std::memory_order_release);
  }
}

}  // namespace bus::detail

// proto/control.hpp — ControlDescriptor: the broker <-> client control messages.
//
// The control path is a SOCK_SEQPACKET Unix socket in the abstract namespace, "\0bus/<NAME>":
//   * message boundaries are kept, so one fixed-size ControlMessage is one datagram;
//   * binding the name is the single-broker lock: it is released by the kernel when the broker
//     dies, however it dies, so a second broker gets EADDRINUSE and a stale one never blocks;
//   * the kernel closes a dead client's socket, and SO_PEERCRED gives its pid and uid.
// The data path never touches it: it carries subscribe/unsubscribe/route requests only.
//
//  off  size field        notes
//    0     4 magic        kControlMagic
//    4     2 version      kControlVersion; the broker refuses others
//    6     2 type         ControlType
//    8     4 request_id   echoed in the reply
//   12     2 errc         bus::Errc of an error reply
//   14     2 reserved
//   16    16 a, b, c, d   meaning per type (below)
//   32     8 u64          meaning per type
//   40     8 u64b         meaning per type
//   48     2 str1_len     <= 255, checked on receipt
//   50     2 str2_len     <= 63
//   52     4 body_len     bytes after the message in the same datagram (<= kMaxControlBody)
//   56   256 str1         subject / pattern / client name / error text
//  312    64 str2         queue group
//  376     n body         JSON of stream requests and replies (body_len bytes)
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "bus/result.hpp"

namespace bus::detail {

inline constexpr std::uint32_t kControlMagic = 0x4c54'4342;  // "BCTL"
inline constexpr std::uint16_t kControlVersion = 2;

enum class ControlType : std::uint16_t {
  hello = 1,         // c->b  a=pid(claimed) u64=start ticks str1=client name; to resume a
                     //       slot after a broker restart: b=slot+1 c=epoch u64b=segment id
  welcome = 2,       // b->c  a=client slot b=epoch c=1 if resumed u64=segment id
  subscribe = 3,     // c->b  str1=pattern str2=queue group (may be empty)
  subscribed = 4,    // b->c  a=subscription slot b=ring incarnation
  unsubscribe = 5,   // c->b  a=subscription slot b=ring incarnation c=1: stop routing only (drain)
  unsubscribed = 6,  // b->c
  resolve = 7,       // c->b  str1=literal subject
  route = 8,         // b->c  a=route slot
  release = 9,       // c->b  a=route slot
  released = 10,     // b->c
  error = 11,        // b->c  errc, str1=message
  stream_request = 12,  // c->b  a=StreamOp str1=stream name body=JSON (the op's argument)
  stream_reply = 13,    // b->c  body=JSON (StreamInfo, or a list of them)
};

// What a stream_request asks (JetStream's $JS.API.STREAM.* verbs).
enum class StreamOp : std::uint32_t { add = 1, info = 2, list = 3, remove = 4, purge = 5, delete_msg = 6, edit = 7 };

// A body rides in the same SEQPACKET datagram as its message: well under the socket's default
// send buffer (208 KiB), so a send never blocks on it.
inline constexpr std::uint32_t kMaxControlBody = 128u << 10;

struct ControlMessage {
  std::uint32_t magic = kControlMagic;
  std::uint16_t version = kControlVersion;
  ControlType type{};
  std::uint32_t request_id = 0;
  std::uint16_t errc = 0;
  std::uint16_t reserved0 = 0;
  std::uint32_t a = 0, b = 0, c = 0, d = 0;
  std::uint64_t u64 = 0;
  std::uint64_t u64b = 0;
  std::uint16_t str1_len = 0;
  std::uint16_t str2_len = 0;
  std::uint32_t body_len = 0;
  char str1[256] = {};
  char str2[64] = {};

  std::string_view s1() const noexcept { return {str1, str1_len}; }
  std::string_view s2() const noexcept { return {str2, str2_len}; }
  /// Copies `s` (truncated to fit) into str1/str2.
  void set_s1(std::string_view s) noexcept;
  void set_s2(std::string_view s) noexcept;
  /// Checks magic, version and string lengths of a received message.
  bool well_formed() const noexcept;
};
static_assert(sizeof(ControlMessage) == 376);

ControlMessage make_error_reply(const ControlMessage& request, const Error& error);
Error error_from_reply(const ControlMessage& reply);

/// Abstract socket address of bus `name`: "\0bus/<name>".
std::string control_socket_name(std::string_view bus_name);

/// A SOCK_SEQPACKET socket (plus `flags`, e.g. SOCK_NONBLOCK) bound to the bus's control name:
/// the single-broker lock (a second bind fails with EADDRINUSE; the kernel lets it go with the
/// last descriptor, so a dead holder leaves nothing behind). The descriptor, or -1 with `err`
/// set to the errno of the call that failed.
int bind_control_socket(std::string_view bus_name, int flags, int& err) noexcept;

}  // namespace bus::detail

// bridge/nats_msg.hpp — a message's headers between the bus's wire block and nats.c's map.
//
// nats.c hands headers as a key -> values map (natsMsgHeader_*), the bus as the NATS wire
// block itself (bus/headers.hpp). The bridge converts each way, adding or taking off its
// Bus-Origin header, which names the bus a message left and is how a bridge recognises its own
// bus's messages coming back from NATS.
#pragma once

#include <nats/nats.h>

#include <string>
#include <string_view>

namespace bus::detail::bridge {

/// The header naming the bus (its server_id) a message crossed to NATS from.
inline constexpr const char* kOriginHeader = "Bus-Origin";

/// The owning handle of a natsMsg.
struct NatsMsgPtr {
  natsMsg* msg = nullptr;
  NatsMsgPtr() = default;
  explicit NatsMsgPtr(natsMsg* m) noexcept : msg(m) {}
  NatsMsgPtr(const NatsMsgPtr&) = delete;
  NatsMsgPtr& operator=(const NatsMsgPtr&) = delete;
  ~NatsMsgPtr() {
    if (msg != nullptr) natsMsg_Destroy(msg);
  }
};

/// Copies the bus header block `block` into `msg` (a block that does not parse is left out
/// and reported false) and sets Bus-Origin to `origin` (unless it is empty).
bool put_bus_headers(natsMsg* msg, std::string_view block, const std::string& origin);

/// The bus header block for `msg`'s headers without Bus-Origin: empty when it has none, a
/// NATS status line when it carries one (503: no responders). `origin` receives Bus-Origin.
std::string bus_headers_of(natsMsg* msg, std::string& origin);

}  // namespace bus::detail::bridge

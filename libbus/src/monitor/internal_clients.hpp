// monitor/internal_clients.hpp — the broker's own clients, as monitoring tells them apart.
//
// The consumer engine and the event publisher are ordinary bus clients living in the broker's
// process. Monitoring shows them with kind "System", leaves them out of `connections` and sends
// no CONNECT/DISCONNECT for them: a client is one of them when its process is the broker's and
// it connected under one of these names (an application embedding the broker has its own).
#pragma once

#include <string_view>

namespace bus::detail::monitor {

inline constexpr std::string_view kSystemClientName = "busd system";
inline constexpr std::string_view kConsumersClientName = "busd consumers";

inline bool is_internal_client_name(std::string_view name) noexcept {
  return name == kSystemClientName || name == kConsumersClientName;
}

}  // namespace bus::detail::monitor

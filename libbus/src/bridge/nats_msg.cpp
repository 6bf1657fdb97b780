// bridge/nats_msg.cpp — header conversion between the bus and nats.c.
#include "bridge/nats_msg.hpp"

#include <cstdlib>
#include <cstring>

#include "bus/headers.hpp"

namespace bus::detail::bridge {
namespace {

// nats.c keeps a status line ("NATS/1.0 503") in its map under these keys.
constexpr std::string_view kStatusKey = "Status";
constexpr std::string_view kDescriptionKey = "Description";

bool is_status_code(const char* v) noexcept {
  return v != nullptr && std::strlen(v) == 3 && v[0] >= '1' && v[0] <= '9' && v[1] >= '0' && v[1] <= '9' &&
         v[2] >= '0' && v[2] <= '9';
}

}  // namespace

bool put_bus_headers(natsMsg* msg, std::string_view block, const std::string& origin) {
  bool ok = true;
  if (!block.empty()) {
    auto parsed = Headers::parse(block);
    if (parsed) {
      for (const auto& [key, value] : parsed->entries()) {
        if (key == kOriginHeader) continue;  // ours to set
        const std::string k(key), v(value);
        if (natsMsgHeader_Add(msg, k.c_str(), v.c_str()) != NATS_OK) ok = false;
      }
    } else {
      ok = false;
    }
  }
  if (!origin.empty() && natsMsgHeader_Set(msg, kOriginHeader, origin.c_str()) != NATS_OK) ok = false;
  return ok;
}

std::string bus_headers_of(natsMsg* msg, std::string& origin) {
  origin.clear();
  const char** keys = nullptr;
  int count = 0;
  if (natsMsgHeader_Keys(msg, &keys, &count) != NATS_OK || count == 0) {
    std::free(static_cast<void*>(keys));
    return natsMsg_IsNoResponders(msg) ? std::string("NATS/1.0 503\r\n\r\n") : std::string();
  }
  Headers out;
  std::string code, description;
  for (int i = 0; i < count; ++i) {
    const std::string_view key = keys[i];
    const char** values = nullptr;
    int n = 0;
    if (natsMsgHeader_Values(msg, keys[i], &values, &n) != NATS_OK) continue;
    if (key == kOriginHeader) {
      if (n > 0) origin = values[0];
    } else if (key == kStatusKey && n == 1 && is_status_code(values[0])) {
      code = values[0];
    } else if (key == kDescriptionKey && n == 1) {
      description = values[0];  // the rest of the status line ("NATS/1.0 503 No Responders")
    } else {
      for (int v = 0; v < n; ++v) (void)out.add(key, values[v]);
    }
    std::free(static_cast<void*>(values));
  }
  std::free(static_cast<void*>(keys));
  if (code.empty() && natsMsg_IsNoResponders(msg)) code = "503";
  if (code.empty() && !description.empty()) (void)out.add(kDescriptionKey, description);  // a plain header after all
  if (code.empty()) return out.encoded();
  // The block with a status line: "NATS/1.0 503[ description]\r\n" and then the headers.
  std::string block = "NATS/1.0 " + code;
  if (!description.empty()) block += " " + description;
  block += "\r\n";
  const std::string& rest = out.encoded();
  if (rest.empty()) return block + "\r\n";
  const auto first_line_end = rest.find("\r\n");
  return block + rest.substr(first_line_end + 2);
}

}  // namespace bus::detail::bridge

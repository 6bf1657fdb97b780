// headers.cpp — NATS message headers: set on publish, read on receipt (and a key with two values).
// Needs a broker: `busd &` first. Usage: headers [BUS]
#include <bus/bus.hpp>

#include <chrono>
#include <cstdio>
#include <string>

int main(int argc, char** argv) {
  const std::string bus_name = argc > 1 ? argv[1] : "default";
  auto conn = bus::Connection::connect(bus_name);
  if (!conn) {
    std::fprintf(stderr, "headers: %s\n", conn.error().message.c_str());
    return 1;
  }
  auto sub = conn->subscribe("events.>");
  if (!sub) {
    std::fprintf(stderr, "headers: %s\n", sub.error().message.c_str());
    return 1;
  }
  bus::Headers h;
  (void)h.set("Trace-Id", "4bf92f35");
  (void)h.add("Tag", "blue");
  (void)h.add("Tag", "fast");
  if (auto st = conn->publish("events.login", "alice", h); !st) {
    std::fprintf(stderr, "headers: %s\n", st.error().message.c_str());
    return 1;
  }
  auto m = sub->next(std::chrono::seconds(1));
  if (!m) {
    std::fprintf(stderr, "headers: %s\n", m.error().message.c_str());
    return 1;
  }
  auto got = m->header();  // parses the NATS/1.0 block
  if (!got) {
    std::fprintf(stderr, "headers: %s\n", got.error().message.c_str());
    return 1;
  }
  for (const auto& [key, value] : got->entries()) {
    std::printf("%.*s: %.*s\n", static_cast<int>(key.size()), key.data(), static_cast<int>(value.size()), value.data());
  }
  const auto trace = got->get("Trace-Id");
  if (!trace || *trace != "4bf92f35" || got->values("Tag").size() != 2) {
    std::fprintf(stderr, "headers: the headers did not arrive as sent\n");
    return 1;
  }
  std::printf("%s: %s\n", m->subject.c_str(), m->data.c_str());
  return 0;
}

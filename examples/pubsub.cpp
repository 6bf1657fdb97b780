// pubsub.cpp — wildcard subscriptions: `*` matches one token, `>` the rest (NATS subjects).
// Needs a broker: `busd &` first (or run embedded_broker). Usage: pubsub [BUS]
#include <bus/bus.hpp>

#include <chrono>
#include <cstdio>
#include <string>

int main(int argc, char** argv) {
  const std::string bus_name = argc > 1 ? argv[1] : "default";
  auto conn = bus::Connection::connect(bus_name);
  if (!conn) {
    std::fprintf(stderr, "pubsub: %s\n", conn.error().message.c_str());
    return 1;
  }
  auto everything = conn->subscribe("orders.>");   // orders.eu.new, orders.us.paid, ...
  auto new_ones = conn->subscribe("orders.*.new");  // orders.eu.new, orders.us.new
  if (!everything || !new_ones) {
    std::fprintf(stderr, "pubsub: %s\n", (!everything ? everything : new_ones).error().message.c_str());
    return 1;
  }
  for (const char* subject : {"orders.eu.new", "orders.us.paid", "orders.us.new"}) {
    if (auto st = conn->publish(subject, std::string("order on ") + subject); !st) {
      std::fprintf(stderr, "pubsub: %s\n", st.error().message.c_str());
      return 1;
    }
  }
  int got_all = 0, got_new = 0;
  while (auto m = everything->next(std::chrono::milliseconds(200))) {
    std::printf("orders.>      %s: %s\n", m->subject.c_str(), m->data.c_str());
    ++got_all;
  }
  while (auto m = new_ones->next(std::chrono::milliseconds(200))) {
    std::printf("orders.*.new  %s: %s\n", m->subject.c_str(), m->data.c_str());
    ++got_new;
  }
  if (got_all != 3 || got_new != 2) {
    std::fprintf(stderr, "pubsub: expected 3 and 2 messages, got %d and %d\n", got_all, got_new);
    return 1;
  }
  return 0;
}

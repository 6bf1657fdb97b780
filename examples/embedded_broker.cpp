// embedded_broker.cpp — the broker on a thread of this process (no busd), then a client of it.
// Other processes may use the bus while this one runs. Usage: embedded_broker [BUS]
#include <bus/bus.hpp>

#include <chrono>
#include <cstdio>
#include <string>

int main(int argc, char** argv) {
  bus::BrokerOptions options;
  options.bus_name = argc > 1 ? argv[1] : "embedded-example";
  options.log = false;
  auto broker = bus::Broker::start(options);
  if (!broker) {
    std::fprintf(stderr, "embedded_broker: %s\n", broker.error().message.c_str());
    return 1;
  }
  auto conn = bus::Connection::connect(options.bus_name);
  if (!conn) {
    std::fprintf(stderr, "embedded_broker: %s\n", conn.error().message.c_str());
    return 1;
  }
  auto sub = conn->subscribe("greetings");
  if (!sub) {
    std::fprintf(stderr, "embedded_broker: %s\n", sub.error().message.c_str());
    return 1;
  }
  (void)conn->publish("greetings", "hello from an embedded broker");
  auto m = sub->next(std::chrono::seconds(1));
  if (!m) {
    std::fprintf(stderr, "embedded_broker: %s\n", m.error().message.c_str());
    return 1;
  }
  std::printf("%s: %s\n", m->subject.c_str(), m->data.c_str());
  (void)sub->unsubscribe();
  (void)conn->close();
  if (auto st = broker->stop(); !st) {
    std::fprintf(stderr, "embedded_broker: %s\n", st.error().message.c_str());
    return 1;
  }
  return 0;
}

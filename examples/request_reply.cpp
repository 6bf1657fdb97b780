// request_reply.cpp — a service answering on `svc.echo`, called synchronously and then with
// several requests in flight at once (request_async); and a request nobody answers.
// Needs a broker: `busd &` first. Usage: request_reply [BUS]
#include <bus/bus.hpp>

#include <chrono>
#include <cstdio>
#include <future>
#include <string>
#include <vector>

using namespace std::chrono_literals;

int main(int argc, char** argv) {
  const std::string bus_name = argc > 1 ? argv[1] : "default";
  auto conn = bus::Connection::connect(bus_name);
  if (!conn) {
    std::fprintf(stderr, "request_reply: %s\n", conn.error().message.c_str());
    return 1;
  }
  // The service: a queue group, so more copies of it would share the requests.
  auto service = conn->queue_subscribe("svc.echo", "echo", [](const bus::MessageView& request) {
    (void)request.respond("echo: " + std::string(request.data));
  });
  if (!service) {
    std::fprintf(stderr, "request_reply: %s\n", service.error().message.c_str());
    return 1;
  }
  auto reply = conn->request("svc.echo", "hello", 1s);
  if (!reply) {
    std::fprintf(stderr, "request_reply: %s\n", reply.error().message.c_str());
    return 1;
  }
  std::printf("sync:  %s\n", reply->data.c_str());

  std::vector<std::future<bus::Result<bus::Message>>> pending;
  for (int i = 0; i < 5; ++i) pending.push_back(conn->request_async("svc.echo", "async " + std::to_string(i), 1s));
  for (auto& f : pending) {
    auto r = f.get();
    if (!r) {
      std::fprintf(stderr, "request_reply: %s\n", r.error().message.c_str());
      return 1;
    }
    std::printf("async: %s\n", r->data.c_str());
  }
  auto nobody = conn->request("svc.nobody", "?", 1s);  // no responders: an error at once
  if (nobody || nobody.error().code != bus::Errc::no_responders) {
    std::fprintf(stderr, "request_reply: expected no responders on svc.nobody\n");
    return 1;
  }
  std::printf("svc.nobody: %s (%s)\n", bus::errc_name(nobody.error().code), nobody.error().message.c_str());
  return 0;
}

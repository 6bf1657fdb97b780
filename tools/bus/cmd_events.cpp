// cmd_events.cpp — `bus events`, after `nats events`: the broker's $SYS events, one readable
// line each (connects, disconnects with their reason and traffic, slow consumers, broker start
// and shutdown, and with --statsz the periodic STATSZ). --json prints the events' JSON as it
// came, one per line; `bus sub '$SYS.>'` shows them raw with their subjects.
#include <cstdio>
#include <memory>
#include <string>

#include <nlohmann/json.hpp>

#include "common.hpp"
#include "verbs.hpp"

namespace bus::cli {
namespace {

struct EventsFlags {
  ClientFlags client;
  bool json = false;
  bool statsz = false;
  std::uint64_t count = 0;  // 0: until interrupted
};

std::string str(const nlohmann::json& j, const char* key) {
  auto it = j.find(key);
  if (it == j.end()) return "";
  return it->is_string() ? it->get<std::string>() : it->dump();
}

std::string who(const nlohmann::json& client) {
  std::string out = "client " + str(client, "id") + " (pid " + str(client, "pid");
  if (const std::string name = str(client, "name"); !name.empty()) out += ", " + name;
  return out + ")";
}

/// One line for an event; empty to leave it out.
std::string describe(std::string_view subject, const nlohmann::json& e, bool statsz) {
  const std::string time = str(e, "timestamp").empty() ? str(e["server"], "time") : str(e, "timestamp");
  const std::string kind(subject.substr(subject.rfind('.') + 1));
  std::string line = "[" + time + "] " + kind + " ";
  if (kind == "CONNECT") return line + who(e["client"]);
  if (kind == "DISCONNECT") {
    return line + who(e["client"]) + " " + str(e, "reason") + "; it published " + str(e["received"], "msgs") +
           " msgs (" + str(e["received"], "bytes") + " B), was delivered " + str(e["sent"], "msgs") + " msgs (" +
           str(e["sent"], "bytes") + " B)";
  }
  if (kind == "SLOW_CONSUMER") {
    const auto& sub = e["subscription"];
    return line + "subscription " + str(sub, "sid") + " on '" + str(sub, "subject") + "'" +
           (e.contains("client") ? " of " + who(e["client"]) : "") + " dropped " + str(e, "dropped") +
           " message(s): its ring is full (" + str(e, "total_dropped") + " so far)";
  }
  if (kind == "STARTUP") return line + "broker pid " + str(e, "pid") + (e.value("adopted", false) ? " (adopted the bus)" : "");
  if (kind == "SHUTDOWN") return line + "broker is stopping";
  if (kind == "STATSZ") {
    if (!statsz) return "";
    const auto& s = e["statsz"];
    return line + str(s, "connections") + " connection(s), " + str(s, "subscriptions") + " subscription(s), in " +
           str(s["received"], "msgs") + " msgs, out " + str(s["sent"], "msgs") + " msgs, slow consumers " +
           str(s, "slow_consumers");
  }
  return line + e.dump();
}

int run(const EventsFlags& f) {
  install_stop_signals();
  auto conn = connect(f.client, "bus events");
  if (!conn) return report(conn.error());
  auto sub = conn->subscribe("$SYS.>");
  if (!sub) return report(sub.error());
  std::fprintf(stderr, "Listening on [$SYS.>] for the broker's events\n");
  std::fflush(stderr);
  BrokerWatch broker(*conn);
  std::uint64_t shown = 0;
  while (!stop_requested() && (f.count == 0 || shown < f.count)) {
    auto msg = sub->next(kPollInterval);
    if (broker.gone()) return report(broker_gone_error(f.client.bus_name));
    if (!msg) {
      if (msg.error().code != Errc::timeout) return report(msg.error());
      continue;
    }
    const bool is_statsz = msg->subject.ends_with(".STATSZ");
    if (is_statsz && !f.statsz) continue;
    if (f.json) {
      std::printf("%s\n", msg->data.c_str());
    } else {
      const auto e = nlohmann::json::parse(msg->data, nullptr, /*allow_exceptions=*/false);
      if (e.is_discarded()) {
        std::printf("%s: %s\n", msg->subject.c_str(), msg->data.c_str());
      } else {
        std::printf("%s\n", describe(msg->subject, e, f.statsz).c_str());
      }
    }
    std::fflush(stdout);
    ++shown;
  }
  return kExitOk;
}

}  // namespace

VerbRunner setup_events(CLI::App& command) {
  auto f = std::make_shared<EventsFlags>();
  command.add_flag("-j,--json", f->json, "Print each event's JSON, one per line");
  command.add_flag("--statsz", f->statsz, "Include the periodic STATSZ events");
  command.add_option("--count", f->count, "Exit after N events")->type_name("N");
  add_client_flags(command, f->client);
  return [f] { return run(*f); };
}

}  // namespace bus::cli

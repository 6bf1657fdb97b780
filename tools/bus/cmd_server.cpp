// cmd_server.cpp — `bus server info|report|ls|clean`, after `nats server`: what the bus is doing,
// read from its shared memory (bus/monitor.hpp), so it answers without the broker's help and
// even when the broker is dead.
#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "common.hpp"
#include "monitor_view.hpp"
#include "verbs.hpp"

namespace bus::cli {
namespace {

struct ServerFlags {
  ClientFlags client;
  bool json = false;
  std::string sort;
  std::size_t top = 0;
  bool dry_run = false;
  std::vector<std::string> buses;  // clean: only these
};

// info and report read the bus's shared memory: no connection, no call to the broker (so no
// --timeout or --name), and an answer even when the broker is dead.
const ClientFlagSet kReadsSharedMemory{
    "", false,
    "Wait this long for the bus to have a segment and a live broker, e.g. 2s (default: look at once; a dead "
    "broker's segment is still shown)"};

Result<monitor::BusSnapshot> look(const ServerFlags& f) { return bus_snapshot(f.client); }

int run_info(const ServerFlags& f) {
  auto snap = look(f);
  if (!snap) return report(snap.error());
  if (f.json) {
    std::printf("%s\n", monitor::varz_json(*snap).c_str());
  } else {
    std::fputs(info_page(*snap).c_str(), stdout);
  }
  return snap->broker_alive ? kExitOk : kExitFailure;
}

int run_report_connections(const ServerFlags& f) {
  const std::string sort = f.sort.empty() ? "cid" : f.sort;
  if (!valid_client_sort(sort)) {
    return report_usage("unknown sort key '" + sort +
                        "' (cid, start, subs, msgs_to, msgs_from, bytes_to, bytes_from, dropped, uptime)");
  }
  auto snap = look(f);
  if (!snap) return report(snap.error());
  if (f.json) {
    auto j = monitor::connz_json(*snap, {sort, 0, f.top == 0 ? 1024 : f.top, true});
    if (!j) return report(j.error());
    std::printf("%s\n", j->c_str());
    return kExitOk;
  }
  const Table t = clients_table(*snap, {}, sort, f.top);
  std::printf("%zu connection(s) on bus '%s'\n\n%s", t.rows(), snap->bus_name.c_str(), t.render().c_str());
  return kExitOk;
}

int run_report_subscriptions(const ServerFlags& f) {
  const std::string sort = f.sort.empty() ? "sid" : f.sort;
  if (!valid_subscription_sort(sort)) {
    return report_usage("unknown sort key '" + sort + "' (sid, subject, msgs, bytes, pending, dropped, high_water)");
  }
  auto snap = look(f);
  if (!snap) return report(snap.error());
  if (f.json) {
    auto j = monitor::subsz_json(*snap, {true, sort, 0, f.top == 0 ? 1024 : f.top, {}});
    if (!j) return report(j.error());
    std::printf("%s\n", j->c_str());
    return kExitOk;
  }
  const Table t = subscriptions_table(*snap, {}, sort, f.top);
  std::printf("%zu subscription(s) on bus '%s'\n\n%s", t.rows(), snap->bus_name.c_str(), t.render().c_str());
  return kExitOk;
}

int run_ls(const ServerFlags& f) {
  const auto buses = monitor::list_buses();
  if (f.json) {
    nlohmann::json j = nlohmann::json::array();
    for (const auto& b : buses) {
      j.push_back({{"name", b.name},
                   {"path", b.path},
                   {"size", b.size},
                   {"broker_pid", b.broker_pid},
                   {"broker_alive", b.broker_alive},
                   {"state", b.broker_alive ? "live" : "stale"},
                   {"clients", b.clients},
                   {"live_clients", b.live_clients},
                   {"readable", b.readable},
                   {"error", b.error}});
    }
    std::printf("%s\n", j.dump(2).c_str());
    return kExitOk;
  }
  if (buses.empty()) {
    std::printf("no buses on this host (nothing in /dev/shm/bus.*)\n");
    return kExitOk;
  }
  Table t({"BUS", "BROKER", "STATE", "CLIENTS", "LIVE CLIENTS", "SIZE", "NOTE"});
  for (const auto& b : buses) {
    t.add({b.name, b.broker_pid != 0 ? std::to_string(b.broker_pid) : "-", b.broker_alive ? "live" : "stale",
           std::to_string(b.clients), std::to_string(b.live_clients), bytes_text(b.size), b.error});
  }
  std::fputs(t.render().c_str(), stdout);
  return kExitOk;
}

int run_clean(const ServerFlags& f) {
  const auto outcomes = monitor::clean_stale_buses(f.dry_run, f.buses);
  std::size_t removed = 0;
  nlohmann::json j = nlohmann::json::array();
  for (const auto& o : outcomes) {
    removed += o.removed ? 1 : 0;
    if (f.json) {
      j.push_back({{"name", o.name}, {"removed", o.removed}, {"why", o.why}});
    } else {
      std::printf("%s %s: %s\n", o.removed ? (f.dry_run ? "would remove" : "removed") : "kept", o.name.c_str(),
                  o.why.c_str());
    }
  }
  if (f.json) {
    std::printf("%s\n", j.dump(2).c_str());
  } else if (outcomes.empty()) {
    std::printf("no buses on this host\n");
  }
  return kExitOk;
}

}  // namespace

VerbRunner setup_server(CLI::App& command) {
  auto f = std::make_shared<ServerFlags>();
  command.require_subcommand(1);

  CLI::App* info = command.add_subcommand("info", "The bus: broker, version, uptime, segment, totals (/varz)");
  info->add_flag("-j,--json", f->json, "nats-server's /varz JSON");
  add_client_flags(*info, f->client, kReadsSharedMemory);

  CLI::App* report_cmd = command.add_subcommand("report", "Per connection or per subscription counters");
  report_cmd->require_subcommand(1);
  auto add_report = [&](const char* name, const char* help, const char* sorts) {
    CLI::App* r = report_cmd->add_subcommand(name, help);
    r->add_option("--sort", f->sort, std::string("Sort by: ") + sorts)->type_name("KEY");
    r->add_option("--top", f->top, "Only the first N")->type_name("N");
    r->add_flag("-j,--json", f->json, "nats-server's JSON (/connz, /subsz)");
    add_client_flags(*r, f->client, kReadsSharedMemory);
    return r;
  };
  CLI::App* connections = add_report("connections", "Each client: process, traffic, subscriptions, drops",
                                     "cid (default), start, subs, msgs_to, msgs_from, bytes_to, bytes_from, dropped, uptime");
  connections->alias("conns");
  CLI::App* subscriptions = add_report("subscriptions", "Each subscription: pattern, owner, ring fill, drops",
                                       "sid (default), subject, msgs, bytes, pending, dropped, high_water");
  subscriptions->alias("subs");

  CLI::App* ls = command.add_subcommand("ls", "The buses on this host: broker, alive or stale, clients");
  ls->alias("list");
  ls->add_flag("-j,--json", f->json, "JSON");

  CLI::App* clean = command.add_subcommand(
      "clean", "Remove segments a dead broker left that no live client uses");
  clean->add_option("BUS", f->buses, "Only these buses (default: every bus on this host)")->type_name("");
  clean->add_flag("--dry-run", f->dry_run, "Only say what would be removed");
  clean->add_flag("-j,--json", f->json, "JSON");

  return [f, info, connections, subscriptions, ls, clean] {
    if (info->parsed()) return run_info(*f);
    if (connections->parsed()) return run_report_connections(*f);
    if (subscriptions->parsed()) return run_report_subscriptions(*f);
    if (ls->parsed()) return run_ls(*f);
    if (clean->parsed()) return run_clean(*f);
    return kExitUsage;
  };
}

}  // namespace bus::cli

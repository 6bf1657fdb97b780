// bridge_flags.hpp — the NATS bridge's flags, shared by `bus bridge` and `busd --nats` so the
// two take exactly the same options (bus/bridge.hpp; docs/scale-out.md).
#pragma once

#include <CLI/CLI.hpp>
#include <chrono>
#include <string>
#include <vector>

#include "bus/bridge.hpp"
#include "cli_units.hpp"

namespace bus::tools {

/// What the flags collect; to_options() turns it into BridgeOptions.
struct BridgeFlags {
  std::vector<std::string> nats;  // URLs, each may be a comma-separated list
  std::vector<std::string> exports, imports;
  std::vector<std::string> export_streams, import_streams;
  std::string prefix;
  std::string config;
  std::string name = "bridge";
  std::string user, password, token, creds, tlsca, tlscert, tlskey;
  bool tls = false;
  bool export_all = false;
  std::uint64_t reconnect_buffer = 8u << 20;
  std::chrono::nanoseconds reconnect_wait = std::chrono::milliseconds(250);

  CLI::Option* nats_option = nullptr;

  /// True when any flag asked for a bridge (busd bridges only then).
  bool wanted() const {
    return !nats.empty() || !config.empty() || !exports.empty() || !imports.empty() || !export_streams.empty() ||
           !import_streams.empty();
  }
};

inline void add_bridge_flags(CLI::App& app, BridgeFlags& f, const std::string& group = "NATS bridge") {
  f.nats_option = app.add_option("--nats", f.nats, "NATS server URL(s), repeatable or comma-separated (nats://host:4222)")
                      ->type_name("URL")
                      ->delimiter(',')
                      ->group(group);
  app.add_option("--export", f.exports, "Send bus messages on PATTERN to NATS (repeatable)")
      ->type_name("PATTERN")
      ->group(group);
  app.add_option("--import", f.imports, "Bring NATS messages on PATTERN into the bus, for the bus's subscribers (repeatable)")
      ->type_name("PATTERN")
      ->group(group);
  app.add_option("--export-stream", f.export_streams,
                 "Copy bus stream BUS into JetStream stream JS (default the same name; made when missing), at least once")
      ->type_name("BUS[:JS]")
      ->group(group);
  app.add_option("--import-stream", f.import_streams,
                 "Copy JetStream stream JS into bus stream BUS (default the same name), at least once")
      ->type_name("JS[:BUS]")
      ->group(group);
  app.add_flag("--export-all", f.export_all,
               "Export everything the --export rules match, not only what NATS has subscribers for")
      ->group(group);
  app.add_option("--prefix", f.prefix,
                 "NATS subject = PREFIX + bus subject, for the --export and --import rules given here (e.g. host1.)")
      ->type_name("PREFIX")
      ->group(group);
  app.add_option("--bridge-config", f.config, "Bridge configuration file (JSON: nats, export, import, prefix per rule...)")
      ->type_name("FILE")
      ->check(CLI::ExistingFile)
      ->group(group);
  app.add_option("--bridge-name", f.name, "The bridge's name: logs, $BUS.BRIDGE.<name>.STATUSZ, the NATS connection name")
      ->type_name("NAME")
      ->capture_default_str()
      ->group(group);
  app.add_option("--user", f.user, "NATS user")->group(group);
  app.add_option("--password", f.password, "NATS password")->group(group);
  app.add_option("--token", f.token, "NATS token")->group(group);
  app.add_option("--creds", f.creds, "NATS user credentials file")->type_name("FILE")->group(group);
  app.add_flag("--tls", f.tls, "Require TLS to NATS")->group(group);
  app.add_option("--tlsca", f.tlsca, "CA certificates to verify the NATS server")->type_name("FILE")->group(group);
  app.add_option("--tlscert", f.tlscert, "Client certificate for NATS")->type_name("FILE")->group(group);
  app.add_option("--tlskey", f.tlskey, "Client key for NATS")->type_name("FILE")->group(group);
  add_size_option(app, "--reconnect-buffer", f.reconnect_buffer,
                  "What is kept for NATS while it is unreachable; beyond it exports are dropped and counted",
                  {0, std::uint64_t{1} << 30})
      ->group(group);
  add_duration_option(app, "--reconnect-wait", f.reconnect_wait, "Pause between NATS reconnect attempts", true)
      ->group(group);
}

/// The options for bus `bus_name`: the config file first, then the flags (rules add up).
inline Result<BridgeOptions> to_bridge_options(const BridgeFlags& f, const std::string& bus_name) {
  BridgeOptions o;
  o.bus_name = bus_name;
  o.name = f.name;
  if (!f.config.empty()) {
    auto loaded = load_bridge_config(f.config, o);
    if (!loaded) return std::move(loaded).error();
    o = std::move(loaded).value();
  }
  if (!f.nats.empty()) o.nats_urls = f.nats;
  for (const auto& p : f.exports) o.rules.push_back({BridgeDirection::export_to_nats, p, f.prefix});
  for (const auto& p : f.imports) o.rules.push_back({BridgeDirection::import_from_nats, p, f.prefix});
  auto split = [](const std::string& text) {
    const auto colon = text.find(':');
    return colon == std::string::npos ? std::pair{text, std::string()} : std::pair{text.substr(0, colon), text.substr(colon + 1)};
  };
  for (const auto& s : f.export_streams) {
    auto [bus, js] = split(s);
    o.streams.push_back({BridgeDirection::export_to_nats, bus, js, f.prefix});
  }
  for (const auto& s : f.import_streams) {
    auto [js, bus] = split(s);
    o.streams.push_back({BridgeDirection::import_from_nats, bus.empty() ? js : bus, js, f.prefix});
  }
  if (!f.user.empty()) o.user = f.user;
  if (!f.password.empty()) o.password = f.password;
  if (!f.token.empty()) o.token = f.token;
  if (!f.creds.empty()) o.creds_file = f.creds;
  if (f.tls) o.tls = true;
  if (f.export_all) o.export_all = true;
  if (!f.tlsca.empty()) o.tls_ca = f.tlsca;
  if (!f.tlscert.empty()) o.tls_cert = f.tlscert;
  if (!f.tlskey.empty()) o.tls_key = f.tlskey;
  o.nats_reconnect_buffer = f.reconnect_buffer;
  o.nats_reconnect_wait = std::chrono::duration_cast<std::chrono::milliseconds>(f.reconnect_wait);
  if (auto st = validate_bridge_options(o); !st) return std::move(st).error();
  return o;
}

}  // namespace bus::tools

// cmd_stream.cpp — `bus stream add|ls|info|get|view|rmm|purge|rm`, after `nats stream`: streams kept by the
// broker (bus/stream.hpp). Administration goes through the broker; get and view read the
// journal directly (mapped, no broker hop).
#include <unistd.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "cli_units.hpp"
#include "common.hpp"
#include "message_io.hpp"
#include "progress_bar.hpp"
#include "units.hpp"
#include "verbs.hpp"

namespace bus::cli {
namespace {

struct StreamFlags {
  ClientFlags client;
  std::string name;
  // add
  std::vector<std::string> subjects;
  std::string retention = "limits";
  std::int64_t max_msgs = -1;
  std::uint64_t max_bytes = 0;  // 0: unlimited
  std::chrono::nanoseconds max_age{0};
  std::uint64_t max_msg_size = 0;
  std::int64_t max_msgs_per_subject = -1;
  std::string discard = "old";
  std::chrono::nanoseconds dupe_window = std::chrono::minutes(2);
  std::string storage = "file";
  std::string sync = "never";
  std::chrono::nanoseconds sync_interval = std::chrono::seconds(1);
  bool allow_rollup = false;
  // info, ls, get
  bool json = false;
  std::uint64_t sequence = 0;
  std::string last_for;  // get --last-for
  bool force = false;
  // purge
  std::string purge_subject;
  std::uint64_t keep = 0;
  std::uint64_t purge_below = 0;
};

std::string limit_text(std::int64_t v) { return v < 0 ? "unlimited" : std::to_string(v); }
std::string size_limit_text(std::int64_t v) { return v < 0 ? "unlimited" : tools::format_size(static_cast<std::uint64_t>(v)); }

void print_info(const StreamInfo& info) {
  const StreamConfig& c = info.config;
  const StreamState& st = info.state;
  std::string out = "Information for Stream " + c.name + "\n\nConfiguration:\n\n";
  auto row = [&out](const char* key, const std::string& value) { append_row(out, key, value); };
  row("Subjects", join(c.subjects, ", "));
  row("Retention", std::string(c.storage == Storage::file ? "File" : "Memory") + " - " + to_string(c.retention));
  row("Sync", c.sync == SyncPolicy::interval ? "every " + tools::format_duration(c.sync_interval) : to_string(c.sync));
  row("Maximum Messages", limit_text(c.max_msgs));
  row("Maximum Per Subject", limit_text(c.max_msgs_per_subject));
  row("Maximum Bytes", size_limit_text(c.max_bytes));
  row("Maximum Age", c.max_age.count() == 0 ? "unlimited" : tools::format_duration(c.max_age));
  row("Maximum Message Size", size_limit_text(c.max_msg_size));
  row("Discard Policy", c.discard == Discard::old_messages ? "Old" : "New");
  row("Duplicate Window", tools::format_duration(c.duplicate_window));
  row("Allows Rollups", c.allow_rollup_hdrs ? "true" : "false");
  out += "\nState:\n\n";
  row("Messages", std::to_string(st.messages));
  row("Bytes", tools::format_size(st.bytes));
  row("First Sequence", std::to_string(st.first_seq) + (st.messages ? " @ " + rfc3339(st.first_ts_ns) : ""));
  row("Last Sequence", std::to_string(st.last_seq) + (st.messages ? " @ " + rfc3339(st.last_ts_ns) : ""));
  if (st.lost_msgs != 0) row("Lost (damaged)", std::to_string(st.lost_msgs));
  row("Active Consumers", std::to_string(st.consumer_count));
  std::fputs(out.c_str(), stdout);
}

Result<StreamConfig> config_of(const StreamFlags& f) {
  StreamConfig c;
  c.name = f.name;
  // --subjects a,b and --subjects a --subjects b both work (CLI11 splits on ',').
  c.subjects = f.subjects;
  c.retention = f.retention == "interest" ? Retention::interest : f.retention == "workqueue" ? Retention::workqueue : Retention::limits;
  c.max_msgs = f.max_msgs;
  c.max_bytes = f.max_bytes == 0 ? -1 : static_cast<std::int64_t>(f.max_bytes);
  c.max_age = f.max_age;
  c.max_msg_size = f.max_msg_size == 0 ? -1 : static_cast<std::int64_t>(f.max_msg_size);
  c.max_msgs_per_subject = f.max_msgs_per_subject;
  c.discard = f.discard == "new" ? Discard::new_messages : Discard::old_messages;
  c.duplicate_window = f.dupe_window;
  c.storage = f.storage == "memory" ? Storage::memory : Storage::file;
  c.sync = f.sync == "always" ? SyncPolicy::always : f.sync == "interval" ? SyncPolicy::interval : SyncPolicy::never;
  c.sync_interval = f.sync_interval;
  c.allow_rollup_hdrs = f.allow_rollup;
  return c;
}

int run_add(StreamFlags& f) {
  auto config = config_of(f);
  if (!config) return report(config.error());
  auto conn = connect(f.client, "bus stream");
  if (!conn) return report(conn.error());
  Streams streams(*conn);
  auto info = streams.add(*config);
  if (!info) return report(info.error());
  if (!f.json) std::printf("Stream %s was created\n\n", info->config.name.c_str());
  return print_info_or_json(*info, f.json, print_info);
}

int run_info(StreamFlags& f) {
  auto conn = connect(f.client, "bus stream");
  if (!conn) return report(conn.error());
  auto info = Streams(*conn).info(f.name);
  if (!info) return report(info.error());
  return print_info_or_json(*info, f.json, print_info);
}

int run_ls(StreamFlags& f) {
  auto conn = connect(f.client, "bus stream");
  if (!conn) return report(conn.error());
  auto list = Streams(*conn).list();
  if (!list) return report(list.error());
  if (f.json) {
    // As `nats stream ls --json`: the names.
    nlohmann::json names = nlohmann::json::array();
    for (const StreamInfo& info : *list) names.push_back(info.config.name);
    std::printf("%s\n", names.dump().c_str());
    return kExitOk;
  }
  if (list->empty()) {
    std::printf("No streams defined\n");
    return kExitOk;
  }
  std::printf("%-20s %-30s %10s %10s  %s\n", "Name", "Subjects", "Messages", "Size", "Last Message");
  for (const StreamInfo& info : *list) {
    std::printf("%-20s %-30s %10llu %10s  %s\n", info.config.name.c_str(), join(info.config.subjects, ",").c_str(),
                static_cast<unsigned long long>(info.state.messages), tools::format_size(info.state.bytes).c_str(),
                info.state.messages ? rfc3339(info.state.last_ts_ns).c_str() : "never");
  }
  return kExitOk;
}

void print_stored(const std::string& stream, const StoredMessage& m, bool json) {
  if (json) {
    // After `nats stream get --json` (JetStream's StoredMsg), data as text.
    const nlohmann::json j{{"subject", m.subject}, {"seq", m.sequence}, {"time", rfc3339(m.time_ns)},
                           {"hdrs", m.headers},    {"data", m.data}};
    std::printf("%s\n", j.dump(2, ' ', false, nlohmann::json::error_handler_t::replace).c_str());
    return;
  }
  std::string out = "Item: " + stream + "#" + std::to_string(m.sequence) + " received " + rfc3339(m.time_ns) +
                    " on Subject " + m.subject + "\n\n";
  if (!m.headers.empty()) {
    out += "Headers:\n";
    append_headers(out, m.headers);
  }
  out += m.data;
  out += "\n";
  std::fwrite(out.data(), 1, out.size(), stdout);
}

int run_get(StreamFlags& f) {
  if ((f.sequence == 0) == f.last_for.empty()) {
    std::fprintf(stderr, "bus stream get: give a sequence or --last-for SUBJECT (one of them)\n");
    return kExitUsage;
  }
  auto conn = connect(f.client, "bus stream");
  if (!conn) return report(conn.error());
  auto msg = f.last_for.empty() ? Streams(*conn).get(f.name, f.sequence) : Streams(*conn).get_last(f.name, f.last_for);
  if (!msg) return report(msg.error());
  print_stored(f.name, *msg, f.json);
  return kExitOk;
}

int run_view(StreamFlags& f) {
  auto conn = connect(f.client, "bus stream");
  if (!conn) return report(conn.error());
  Streams streams(*conn);
  auto reader = streams.reader(f.name);
  if (!reader) return report(reader.error());
  // A long replay into a file or a pipe shows its progress on the terminal.
  const std::uint64_t first = reader->sequence(), last = reader->last_sequence();
  ProgressBar bar(::isatty(STDOUT_FILENO) == 0 && ::isatty(STDERR_FILENO) == 1, last >= first ? last - first + 1 : 0,
                  "Replaying");
  StoredMessageView m;
  std::string out;
  while (!stop_requested()) {
    auto got = reader->next(m);
    if (!got) {
      if (got.error().code != Errc::journal_corrupt) return report(got.error());
      // Damaged: said once, never printed as if it were the message.
      std::fprintf(stderr, "bus: %s\n", got.error().message.c_str());
      reader->skip();
      continue;
    }
    if (!got.value()) break;  // caught up: everything stored so far is printed
    out.clear();
    out += "[" + std::to_string(m.sequence) + "] Subject: " + std::string(m.subject) + " Received: " +
           rfc3339(m.time_ns) + "\n";
    if (!m.headers.empty()) append_headers(out, m.headers);
    out += m.data;
    out += "\n\n";
    std::fwrite(out.data(), 1, out.size(), stdout);
    bar.draw(m.sequence - first + 1);
  }
  bar.clear();
  std::fflush(stdout);
  return kExitOk;
}

int run_rmm(StreamFlags& f) {
  auto conn = connect(f.client, "bus stream");
  if (!conn) return report(conn.error());
  if (auto st = Streams(*conn).remove_message(f.name, f.sequence); !st) return report(st.error());
  std::printf("Message %llu in stream %s was deleted\n", static_cast<unsigned long long>(f.sequence), f.name.c_str());
  return kExitOk;
}

int run_purge(StreamFlags& f) {
  if (!f.purge_subject.empty()) {
    if (auto valid = validate_pattern(f.purge_subject); !valid) return report(valid.error());
  }
  auto conn = connect(f.client, "bus stream");
  if (!conn) return report(conn.error());
  auto purged = Streams(*conn).purge(f.name, f.purge_subject, f.keep, f.purge_below);
  if (!purged) return report(purged.error());
  std::printf("Purged %llu message(s) from stream %s\n", static_cast<unsigned long long>(*purged), f.name.c_str());
  return kExitOk;
}

int run_rm(StreamFlags& f) {
  auto conn = connect(f.client, "bus stream");
  if (!conn) return report(conn.error());
  if (auto st = Streams(*conn).remove(f.name); !st) return report(st.error());
  std::printf("Stream %s was removed\n", f.name.c_str());
  return kExitOk;
}

/// The configuration flags of add and edit; edit changes only those given.
struct ConfigFlags {
  CLI::Option *subjects, *retention, *max_msgs, *max_bytes, *max_age, *max_msg_size, *per_subject, *discard,
      *dupe_window, *storage, *sync, *sync_interval, *allow_rollup;
};

std::shared_ptr<ConfigFlags> add_config_flags(CLI::App& cmd, StreamFlags& f) {
  auto o = std::make_shared<ConfigFlags>();
  o->subjects = cmd.add_option("--subjects", f.subjects, "Subjects the stream captures (wildcards; comma separated)")
                    ->type_name("P[,P]")
                    ->delimiter(',');
  o->retention = cmd.add_option("--retention", f.retention, "When messages are removed")
                     ->check(CLI::IsMember({"limits", "interest", "workqueue"}))
                     ->capture_default_str();
  o->max_msgs = cmd.add_option("--max-msgs", f.max_msgs, "Messages kept at most (-1: unlimited)")->type_name("N")->capture_default_str();
  o->max_bytes = tools::add_size_option(cmd, "--max-bytes", f.max_bytes, "Bytes kept at most (0: unlimited)");
  o->max_age = tools::add_duration_option(cmd, "--max-age", f.max_age, "Oldest message kept (0: unlimited)");
  o->max_msg_size = tools::add_size_option(cmd, "--max-msg-size", f.max_msg_size, "Largest message accepted (0: unlimited)");
  o->per_subject = cmd.add_option("--max-msgs-per-subject", f.max_msgs_per_subject, "Messages kept per subject (-1: unlimited)")
                       ->type_name("N")
                       ->capture_default_str();
  o->discard = cmd.add_option("--discard", f.discard, "What a full stream discards")
                   ->check(CLI::IsMember({"old", "new"}))
                   ->capture_default_str();
  o->dupe_window = tools::add_duration_option(cmd, "--dupe-window", f.dupe_window, "Window for Nats-Msg-Id duplicates");
  o->storage = cmd.add_option("--storage", f.storage, "Storage backend")->check(CLI::IsMember({"file", "memory"}))->capture_default_str();
  o->sync = cmd.add_option("--sync", f.sync,
                           "always: an acknowledgement means on disk; never: in the page cache; "
                           "interval: in the page cache, on disk within --sync-interval")
                ->check(CLI::IsMember({"always", "never", "interval"}))
                ->capture_default_str();
  o->sync_interval = tools::add_duration_option(cmd, "--sync-interval", f.sync_interval,
                                                "How often the broker flushes a --sync interval stream (10ms to 24h)");
  o->allow_rollup = cmd.add_flag("--allow-rollup", f.allow_rollup, "Honour Nats-Rollup headers (sub: keep only the newest message of its subject; all: of the stream)");
  cmd.add_flag("--json", f.json, "Print the stream's information as JSON");
  return o;
}

int run_edit(StreamFlags& f, const ConfigFlags& given) {
  auto wanted = config_of(f);
  if (!wanted) return report(wanted.error());
  auto conn = connect(f.client, "bus stream");
  if (!conn) return report(conn.error());
  Streams streams(*conn);
  auto current = streams.info(f.name);
  if (!current) return report(current.error());
  StreamConfig c = current->config;
  const StreamConfig& w = *wanted;
  if (given.subjects->count() > 0) c.subjects = w.subjects;
  if (given.retention->count() > 0) c.retention = w.retention;
  if (given.max_msgs->count() > 0) c.max_msgs = w.max_msgs;
  if (given.max_bytes->count() > 0) c.max_bytes = w.max_bytes;
  if (given.max_age->count() > 0) c.max_age = w.max_age;
  if (given.max_msg_size->count() > 0) c.max_msg_size = w.max_msg_size;
  if (given.per_subject->count() > 0) c.max_msgs_per_subject = w.max_msgs_per_subject;
  if (given.discard->count() > 0) c.discard = w.discard;
  if (given.dupe_window->count() > 0) c.duplicate_window = w.duplicate_window;
  if (given.storage->count() > 0) c.storage = w.storage;
  if (given.sync->count() > 0) c.sync = w.sync;
  if (given.sync_interval->count() > 0) c.sync_interval = w.sync_interval;
  if (given.allow_rollup->count() > 0) c.allow_rollup_hdrs = w.allow_rollup_hdrs;
  auto info = streams.update(c);
  if (!info) return report(info.error());
  if (!f.json) std::printf("Stream %s was updated\n\n", info->config.name.c_str());
  return print_info_or_json(*info, f.json, print_info);
}

CLI::App* add_named(CLI::App& parent, const char* verb, const char* summary, StreamFlags& f) {
  CLI::App* sub = parent.add_subcommand(verb, summary);
  sub->add_option("NAME", f.name, "Stream name")->type_name("")->required();
  add_client_flags(*sub, f.client);
  return sub;
}

}  // namespace

VerbRunner setup_stream(CLI::App& command) {
  auto f = std::make_shared<StreamFlags>();
  command.require_subcommand(1);

  CLI::App* add = add_named(command, "add", "Create a stream", *f);
  add_config_flags(*add, *f)->subjects->required();
  CLI::App* edit = add_named(command, "edit", "Change a stream's subjects or limits (what is not given stays)", *f);
  auto edit_flags = add_config_flags(*edit, *f);

  CLI::App* info = add_named(command, "info", "Show a stream's configuration and state", *f);
  info->add_flag("--json", f->json, "JSON (JetStream's StreamInfo names)");

  CLI::App* ls = command.add_subcommand("ls", "List the streams");
  ls->alias("list");
  ls->add_flag("--json", f->json, "The names as a JSON array");
  add_client_flags(*ls, f->client);

  CLI::App* get = add_named(command, "get", "Print one stored message", *f);
  get->add_option("SEQ", f->sequence, "Sequence")->type_name("")->check(tools::count_in_range(1));
  get->add_option("--last-for", f->last_for, "The last message on this subject instead of SEQ")->type_name("SUBJECT");
  get->add_flag("--json", f->json, "A JSON summary instead of the message");

  CLI::App* view = add_named(command, "view", "Print every stored message", *f);

  CLI::App* rmm = add_named(command, "rmm", "Delete one message", *f);
  rmm->add_option("SEQ", f->sequence, "Sequence")->type_name("")->required()->check(tools::count_in_range(1));
  rmm->add_flag("-f,--force", f->force, "Accepted for nats CLI scripts (bus never prompts)");

  CLI::App* purge = add_named(command, "purge", "Delete the stream's messages (all, on a subject, or all but the newest N)", *f);
  purge->add_option("--subject", f->purge_subject, "Only messages on subjects matching this")->type_name("SUBJECT");
  purge->add_option("--keep", f->keep, "Keep the newest N")->type_name("N")->check(tools::count_in_range(0));
  purge->add_option("--seq", f->purge_below, "Only messages below this sequence")->type_name("N")->check(tools::count_in_range(1));
  purge->add_flag("-f,--force", f->force, "Accepted for nats CLI scripts (bus never prompts)");

  CLI::App* rm = add_named(command, "rm", "Remove a stream and its messages", *f);
  rm->alias("delete");
  rm->add_flag("-f,--force", f->force, "Accepted for nats CLI scripts (bus never prompts)");

  return [f, add, edit, edit_flags, info, ls, get, view, rmm, purge, rm] {
    if (edit->parsed()) return run_edit(*f, *edit_flags);
    if (rmm->parsed()) return run_rmm(*f);
    if (purge->parsed()) return run_purge(*f);
    if (add->parsed()) return run_add(*f);
    if (info->parsed()) return run_info(*f);
    if (ls->parsed()) return run_ls(*f);
    if (get->parsed()) return run_get(*f);
    if (view->parsed()) return run_view(*f);
    if (rm->parsed()) return run_rm(*f);
    return kExitUsage;
  };
}

}  // namespace bus::cli

// cmd_consumer.cpp — `bus consumer add|ls|info|rm|next`, after `nats consumer`: consumers the
// broker runs on a stream (bus/consumer.hpp).
#include <charconv>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <ctime>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "bus/consumer.hpp"
#include "cli_units.hpp"
#include "common.hpp"
#include "message_io.hpp"
#include "units.hpp"
#include "verbs.hpp"

namespace bus::cli {
namespace {

struct ConsumerFlags {
  ClientFlags client;
  std::string stream;
  std::string name;
  // add
  bool pull = false;
  std::string target;
  std::string deliver_group;
  std::string deliver = "all";
  std::string ack = "explicit";
  std::chrono::nanoseconds wait = std::chrono::seconds(30);
  std::vector<std::string> backoff;
  std::int64_t max_deliver = -1;
  std::int64_t max_pending = 1000;
  std::vector<std::string> filters;
  std::string replay = "instant";
  std::chrono::nanoseconds inactive{0};
  bool ephemeral = false;
  // info, ls
  bool json = false;
  // next
  std::uint64_t count = 1;
  bool raw = false;
  bool no_ack = false;
  bool nak = false;
  bool term = false;
  bool force = false;
};

Result<ConsumerConfig> config_of(const ConsumerFlags& f) {
  ConsumerConfig c;
  if (f.ephemeral) {
    c.name = f.name;
  } else {
    c.durable_name = f.name;
  }
  // nats consumer add asks push or pull; bus never prompts: pull unless told where to push.
  c.deliver_subject = f.target;
  c.deliver_group = f.deliver_group;
  // --deliver all|new|last|subject|SEQ|DURATION (nats consumer add --deliver).
  if (f.deliver == "all") {
    c.deliver_policy = DeliverPolicy::all;
  } else if (f.deliver == "new") {
    c.deliver_policy = DeliverPolicy::new_messages;
  } else if (f.deliver == "last") {
    c.deliver_policy = DeliverPolicy::last;
  } else if (f.deliver == "subject" || f.deliver == "last_per_subject") {
    c.deliver_policy = DeliverPolicy::last_per_subject;
  } else if (!f.deliver.empty() && f.deliver.find_first_not_of("0123456789") == std::string::npos) {
    c.deliver_policy = DeliverPolicy::by_start_sequence;
    const auto r = std::from_chars(f.deliver.data(), f.deliver.data() + f.deliver.size(), c.opt_start_seq);
    if (r.ec != std::errc{} || c.opt_start_seq == 0) {
      return make_error(Errc::invalid_argument, "--deliver: '" + f.deliver + "' is not a sequence (1 or more)");
    }
  } else if (auto d = tools::parse_duration(f.deliver)) {
    c.deliver_policy = DeliverPolicy::by_start_time;
    c.opt_start_time_ns = realtime_ns() - d->count();
  } else {
    return make_error(Errc::invalid_argument, "--deliver must be all, new, last, subject, a sequence or a duration, not '" +
                                                  f.deliver + "'");
  }
  c.ack_policy = f.ack == "none" ? AckPolicy::none : f.ack == "all" ? AckPolicy::all : AckPolicy::explicit_ack;
  c.ack_wait = f.wait;
  for (const auto& b : f.backoff) {
    auto d = tools::parse_duration(b);
    if (!d) return make_error(Errc::invalid_argument, "--backoff: " + d.error().message);
    c.backoff.push_back(*d);
  }
  c.max_deliver = f.max_deliver;
  c.max_ack_pending = f.max_pending;
  c.filter_subjects = f.filters;
  c.replay_policy = f.replay == "original" ? ReplayPolicy::original : ReplayPolicy::instant;
  c.inactive_threshold = f.inactive;
  return c;
}

std::string duration_text(std::chrono::nanoseconds d) { return tools::format_duration(d); }

void print_info(const ConsumerInfo& i) {
  const ConsumerConfig& c = i.config;
  std::string out = "Information for Consumer " + i.stream_name + " > " + i.name + " created " + rfc3339(i.created_ns) +
                    "\n\nConfiguration:\n\n";
  auto row = [&out](const char* key, const std::string& value) { append_row(out, key, value); };
  row("Name", i.name + (c.durable_name.empty() ? " (ephemeral)" : ""));
  if (c.deliver_subject.empty()) {
    row("Pull Mode", "true");
  } else {
    row("Delivery Subject", c.deliver_subject);
    if (!c.deliver_group.empty()) row("Deliver Queue Group", c.deliver_group);
  }
  if (!c.filter_subjects.empty()) row("Filter Subject", join(c.filter_subjects, ", "));
  std::string policy = to_string(c.deliver_policy);
  if (c.deliver_policy == DeliverPolicy::by_start_sequence) policy += " " + std::to_string(c.opt_start_seq);
  if (c.deliver_policy == DeliverPolicy::by_start_time) policy += " " + rfc3339(c.opt_start_time_ns);
  row("Deliver Policy", policy);
  row("Ack Policy", to_string(c.ack_policy));
  row("Ack Wait", duration_text(c.ack_wait));
  if (!c.backoff.empty()) {
    std::vector<std::string> b;
    for (const auto& d : c.backoff) b.push_back(duration_text(d));
    row("Backoff", join(b, ", "));
  }
  row("Replay Policy", to_string(c.replay_policy));
  row("Maximum Deliveries", c.max_deliver < 0 ? "unlimited" : std::to_string(c.max_deliver));
  row("Max Ack Pending", c.max_ack_pending < 0 ? "unlimited" : std::to_string(c.max_ack_pending));
  if (c.deliver_subject.empty()) row("Max Waiting Pulls", std::to_string(c.max_waiting));
  if (c.inactive_threshold.count() > 0) row("Inactive Threshold", duration_text(c.inactive_threshold));
  out += "\nState:\n\n";
  row("Last Delivered Message", "Consumer sequence: " + std::to_string(i.delivered.consumer_seq) +
                                    " Stream sequence: " + std::to_string(i.delivered.stream_seq));
  row("Acknowledgment Floor", "Consumer sequence: " + std::to_string(i.ack_floor.consumer_seq) +
                                  " Stream sequence: " + std::to_string(i.ack_floor.stream_seq));
  row("Outstanding Acks", std::to_string(i.num_ack_pending) + " out of maximum " +
                              (c.max_ack_pending < 0 ? std::string("unlimited") : std::to_string(c.max_ack_pending)));
  row("Redelivered Messages", std::to_string(i.num_redelivered));
  row("Unprocessed Messages", std::to_string(i.num_pending));
  if (c.deliver_subject.empty()) row("Waiting Pulls", std::to_string(i.num_waiting));
  std::fputs(out.c_str(), stdout);
}

int run_add(ConsumerFlags& f) {
  if (f.pull && !f.target.empty()) return report_usage("--pull and --target exclude each other");
  auto config = config_of(f);
  if (!config) return report_usage(config.error().message);
  auto conn = connect(f.client, "bus consumer");
  if (!conn) return report(conn.error());
  auto info = Consumers(*conn).add(f.stream, *config);
  if (!info) return report(info.error());
  return print_info_or_json(*info, f.json, print_info);
}

int run_info(ConsumerFlags& f) {
  auto conn = connect(f.client, "bus consumer");
  if (!conn) return report(conn.error());
  auto info = Consumers(*conn).info(f.stream, f.name);
  if (!info) return report(info.error());
  return print_info_or_json(*info, f.json, print_info);
}

int run_ls(ConsumerFlags& f) {
  auto conn = connect(f.client, "bus consumer");
  if (!conn) return report(conn.error());
  auto list = Consumers(*conn).list(f.stream);
  if (!list) return report(list.error());
  if (f.json) {
    nlohmann::json names = nlohmann::json::array();
    for (const auto& i : *list) names.push_back(i.name);
    std::printf("%s\n", names.dump().c_str());
    return kExitOk;
  }
  if (list->empty()) {
    std::printf("No consumers defined on stream %s\n", f.stream.c_str());
    return kExitOk;
  }
  std::printf("%-20s %-6s %12s %12s %12s  %s\n", "Name", "Mode", "Delivered", "Ack Pending", "Unprocessed",
              "Last Delivery");
  for (const auto& i : *list) {
    std::printf("%-20s %-6s %12llu %12llu %12llu  %s\n", i.name.c_str(), i.config.deliver_subject.empty() ? "pull" : "push",
                static_cast<unsigned long long>(i.delivered.stream_seq),
                static_cast<unsigned long long>(i.num_ack_pending), static_cast<unsigned long long>(i.num_pending),
                i.delivered.last_active_ns ? rfc3339(i.delivered.last_active_ns).c_str() : "never");
  }
  return kExitOk;
}

int run_rm(ConsumerFlags& f) {
  auto conn = connect(f.client, "bus consumer");
  if (!conn) return report(conn.error());
  if (auto st = Consumers(*conn).remove(f.stream, f.name); !st) return report(st.error());
  std::printf("Consumer %s > %s was removed\n", f.stream.c_str(), f.name.c_str());
  return kExitOk;
}

int run_next(ConsumerFlags& f) {
  const int choices = (f.no_ack ? 1 : 0) + (f.nak ? 1 : 0) + (f.term ? 1 : 0);
  if (choices > 1) return report_usage("--no-ack, --nak and --term exclude each other");
  auto conn = connect(f.client, "bus consumer");
  if (!conn) return report(conn.error());
  Consumers consumers(*conn);
  std::uint64_t got = 0;
  std::string out;
  while (got < f.count && !stop_requested()) {
    auto batch = consumers.fetch(f.stream, f.name, f.count - got, f.client.timeout);
    if (!batch) return report(batch.error());
    if (batch->empty()) break;
    for (const Message& m : *batch) {
      ++got;
      out.clear();
      if (f.raw) {
        out = m.data + "\n";
      } else {
        auto meta = metadata(m);
        const std::time_t secs = std::time(nullptr);
        std::tm tm{};
        ::localtime_r(&secs, &tm);
        char clock[16];
        std::strftime(clock, sizeof clock, "%H:%M:%S", &tm);
        out = std::string("[") + clock + "] subj: " + m.subject;
        if (meta) {
          out += " / tries: " + std::to_string(meta->num_delivered) + " / cons seq: " +
                 std::to_string(meta->consumer_seq) + " / str seq: " + std::to_string(meta->stream_seq) +
                 " / pending: " + std::to_string(meta->num_pending);
        }
        out += "\n\n";
        if (!m.headers.empty()) {
          out += "Headers:\n";
          append_headers(out, m.headers);
          out += "\n";
        }
        out += m.data + "\n\n";
      }
      Status st;
      const char* said = nullptr;
      if (f.nak) {
        st = nak(m);
        said = "Nacked message";
      } else if (f.term) {
        st = term(m);
        said = "Terminated message";
      } else if (!f.no_ack) {
        st = ack_sync(m, f.client.timeout);  // confirmed: an exit 0 means it will not come back
        said = "Acknowledged message";
      }
      if (!st) return report(st.error());
      if (said != nullptr && !f.raw) out += std::string(said) + "\n\n";
      std::fwrite(out.data(), 1, out.size(), stdout);
      std::fflush(stdout);
    }
  }
  if (got == 0) return report(make_error(Errc::timeout, "no message arrived within " +
                                                            tools::format_duration(f.client.timeout)));
  return kExitOk;
}

CLI::App* add_named(CLI::App& parent, const char* verb, const char* summary, ConsumerFlags& f) {
  CLI::App* sub = parent.add_subcommand(verb, summary);
  sub->add_option("STREAM", f.stream, "Stream name")->type_name("")->required();
  sub->add_option("NAME", f.name, "Consumer name")->type_name("")->required();
  add_client_flags(*sub, f.client,
                   std::string_view(verb) == "next"
                       ? ClientFlagSet{"How long to wait for the messages (and each call to the broker for its "
                                       "answer), e.g. 500ms",
                                       true,
                                       {}}
                       : ClientFlagSet{});
  return sub;
}

}  // namespace

VerbRunner setup_consumer(CLI::App& command) {
  auto f = std::make_shared<ConsumerFlags>();
  command.require_subcommand(1);

  CLI::App* add = add_named(command, "add", "Add a consumer to a stream (durable unless --ephemeral)", *f);
  add->add_flag("--pull", f->pull, "A pull consumer (the default when no --target is given)");
  add->add_option("--target", f->target, "Push: deliver into this subject")->type_name("SUBJECT");
  add->add_option("--deliver-group", f->deliver_group, "Push into this queue group on the target")->type_name("GROUP");
  add->add_option("--deliver", f->deliver, "Where to start: all, new, last, subject (last per subject), SEQ or DURATION ago")
      ->type_name("POLICY")
      ->capture_default_str();
  add->add_option("--ack", f->ack, "Acknowledgement policy")
      ->check(CLI::IsMember({"explicit", "all", "none"}))
      ->capture_default_str();
  tools::add_duration_option(*add, "--wait", f->wait, "Ack wait: redeliver what is not acknowledged by then");
  add->add_option("--backoff", f->backoff, "Redelivery delays, one per delivery (comma separated)")
      ->type_name("DUR[,DUR]")
      ->delimiter(',');
  add->add_option("--max-deliver", f->max_deliver, "Deliveries of one message at most (-1: unlimited)")
      ->type_name("N")
      ->capture_default_str();
  add->add_option("--max-pending", f->max_pending, "Unacknowledged messages at most (flow control)")
      ->type_name("N")
      ->capture_default_str();
  add->add_option("--filter", f->filters, "Only messages on these subjects (comma separated)")
      ->type_name("SUBJECT")
      ->delimiter(',');
  add->add_option("--replay", f->replay, "instant, or original (at the pace they were stored)")
      ->check(CLI::IsMember({"instant", "original"}))
      ->capture_default_str();
  tools::add_duration_option(*add, "--inactive-threshold", f->inactive,
                             "Remove the consumer after this long unused (0: never for a durable)");
  add->add_flag("--ephemeral", f->ephemeral, "Not durable: no state on disk; removed when unused (5 s default)");
  add->add_flag("--json", f->json, "Print the consumer's information as JSON");

  CLI::App* info = add_named(command, "info", "Show a consumer's configuration and state", *f);
  info->add_flag("--json", f->json, "JSON (JetStream's ConsumerInfo names)");

  CLI::App* ls = command.add_subcommand("ls", "List the consumers of a stream");
  ls->alias("list");
  ls->add_option("STREAM", f->stream, "Stream name")->type_name("")->required();
  ls->add_flag("--json", f->json, "The names as a JSON array");
  add_client_flags(*ls, f->client);

  CLI::App* rm = add_named(command, "rm", "Remove a consumer", *f);
  rm->alias("delete");
  rm->add_flag("-f,--force", f->force, "Accepted for nats CLI scripts (bus never prompts)");

  CLI::App* next = add_named(command, "next", "Fetch messages from a pull consumer and acknowledge them", *f);
  next->add_option("--count", f->count, "Messages to fetch")->type_name("N")->check(tools::count_in_range(1))->capture_default_str();
  next->add_flag("--raw", f->raw, "Print only the bodies");
  next->add_flag("--no-ack", f->no_ack, "Do not acknowledge (redelivered after the ack wait)");
  next->add_flag("--nak", f->nak, "Negatively acknowledge (redelivered at once)");
  next->add_flag("--term", f->term, "Terminate (never redelivered)");

  return [f, add, info, ls, rm, next] {
    if (add->parsed()) return run_add(*f);
    if (info->parsed()) return run_info(*f);
    if (ls->parsed()) return run_ls(*f);
    if (rm->parsed()) return run_rm(*f);
    if (next->parsed()) return run_next(*f);
    return kExitUsage;
  };
}

}  // namespace bus::cli

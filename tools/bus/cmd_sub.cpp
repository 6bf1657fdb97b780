// cmd_sub.cpp — `bus sub PATTERN`: subscribe and print each message (with its headers) as the
// nats CLI does, or only the payloads with --raw; exit after --count messages or on
// SIGINT/SIGTERM (exit 0), or with 1 when the broker goes away. With --stream, as `nats sub
// --stream`: a push consumer on the stream (ephemeral, or --durable) delivers into a private
// inbox subject from where the deliver policy says, each message acknowledged once printed.
//
// --headers-only prints the headers and not the bodies (as nats sub --headers-only).
// --match-replies (as nats sub --match-replies) also subscribes to `_INBOX.>` and prints each
// request (a message with a reply subject) once its reply came, the reply under it; a request
// whose reply did not come within --timeout is printed alone, saying so. Replies that go straight
// into a bus requester's inbox ring (Connection::request, `bus req` without --replies) are not
// routed, so no subscriber sees them (docs/messaging.md): those requests are printed alone.
//
// Scripts rely on "Listening on [PATTERN]" (stderr) appearing only once subscribe() has
// returned: any publish that starts after that line reaches this subscriber.
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <ctime>
#include <random>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>

#include "cli_units.hpp"
#include "common.hpp"
#include "message_io.hpp"
#include "verbs.hpp"

namespace bus::cli {
namespace {

struct SubFlags {
  ClientFlags client;
  std::string pattern;
  std::string queue;
  std::uint64_t count = 0;  ///< 0: until interrupted
  bool raw = false;
  bool headers_only = false;
  bool match_replies = false;
  // --stream
  std::string stream;
  std::string durable;
  bool all = false, new_only = false, last = false, last_per_subject = false;
  std::chrono::nanoseconds since{0};
  std::uint64_t start_sequence = 0;
};

std::string random_inbox_token() {
  static constexpr char kAlphabet[] = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
  std::random_device device;
  std::mt19937_64 gen((static_cast<std::uint64_t>(device()) << 32) ^ device());
  std::string token(22, '0');
  for (char& c : token) c = kAlphabet[gen() % (sizeof kAlphabet - 1)];
  return token;
}

/// How often --match-replies looks at the replies while waiting for requests.
constexpr auto kMatchPollInterval = std::chrono::milliseconds(20);

/// --match-replies: the requests seen, each waiting for its reply (by reply subject). The two
/// subscriptions are read one after the other, so a reply may be read before its request: it
/// waits too (as long as a request would, at most kMaxEarlyReplies of them).
class ReplyMatcher {
 public:
  ReplyMatcher(PrintOptions print, std::chrono::nanoseconds wait) : print_(print), wait_(wait) {}

  bool empty() const noexcept { return pending_.empty(); }

  void on_request(Message request, std::uint64_t number) {
    const auto now = std::chrono::steady_clock::now();
    if (auto early = early_.find(request.reply); early != early_.end()) {
      print_matched(request, number, early->second.message);
      early_.erase(early);
      return;
    }
    std::string reply = request.reply;
    if (auto old = pending_.find(reply); old != pending_.end()) {  // the same reply subject again
      print_alone(old->second);
      pending_.erase(old);
    }
    pending_.emplace(std::move(reply), Pending{std::move(request), number, now + wait_});
  }

  void on_reply(Message reply) {
    auto it = pending_.find(reply.subject);
    if (it == pending_.end()) {
      // Its request may not have been read yet; or it answers one we never see (then it expires).
      if (early_.size() >= kMaxEarlyReplies) early_.erase(early_.begin());
      std::string subject = reply.subject;
      early_.insert_or_assign(std::move(subject), Early{std::move(reply), std::chrono::steady_clock::now() + wait_});
      return;
    }
    print_matched(it->second.request, it->second.number, reply);
    pending_.erase(it);
  }

  /// Prints alone every request whose wait ended by `now` (and forgets such replies).
  void expire(std::chrono::steady_clock::time_point now) {
    for (auto it = pending_.begin(); it != pending_.end();) {
      if (it->second.expires > now) {
        ++it;
        continue;
      }
      print_alone(it->second);
      it = pending_.erase(it);
    }
    std::erase_if(early_, [&](const auto& entry) { return entry.second.expires <= now; });
  }

 private:
  static constexpr std::size_t kMaxEarlyReplies = 4096;

  struct Pending {
    Message request;
    std::uint64_t number;
    std::chrono::steady_clock::time_point expires;
  };
  struct Early {
    Message message;
    std::chrono::steady_clock::time_point expires;
  };

  void print_matched(const Message& request, std::uint64_t number, const Message& reply) {
    std::string out;
    append_message(out, request, number, print_);
    append_message(out, reply, number, print_, "Matched reply on");
    write_out(out);
  }

  void print_alone(const Pending& p) {
    std::string out;
    append_message(out, p.request, p.number, print_);
    if (!print_.raw) {
      out += "[#" + std::to_string(p.number) + "] No reply seen within " + tools::format_duration(wait_) + "\n\n";
    }
    write_out(out);
  }

  PrintOptions print_;
  std::chrono::nanoseconds wait_;
  std::unordered_map<std::string, Pending> pending_;
  std::unordered_map<std::string, Early> early_;
};

/// The push consumer --stream asks for, delivering into `inbox`.
Result<ConsumerConfig> stream_consumer(const SubFlags& f, const std::string& inbox) {
  const int policies = (f.all ? 1 : 0) + (f.new_only ? 1 : 0) + (f.last ? 1 : 0) + (f.last_per_subject ? 1 : 0) +
                       (f.since.count() > 0 ? 1 : 0) + (f.start_sequence > 0 ? 1 : 0);
  if (policies > 1) {
    return make_error(Errc::invalid_argument,
                      "--all, --new, --last, --last-per-subject, --since and --start-sequence exclude each other");
  }
  ConsumerConfig c;
  c.durable_name = f.durable;
  c.deliver_subject = inbox;
  if (!f.pattern.empty()) c.filter_subjects = {f.pattern};
  c.ack_policy = AckPolicy::explicit_ack;
  if (f.new_only) c.deliver_policy = DeliverPolicy::new_messages;
  if (f.last) c.deliver_policy = DeliverPolicy::last;
  if (f.last_per_subject) c.deliver_policy = DeliverPolicy::last_per_subject;
  if (f.since.count() > 0) {
    c.deliver_policy = DeliverPolicy::by_start_time;
    c.opt_start_time_ns = realtime_ns() - f.since.count();
  }
  if (f.start_sequence > 0) {
    c.deliver_policy = DeliverPolicy::by_start_sequence;
    c.opt_start_seq = f.start_sequence;
  }
  return c;
}

int run_sub(const SubFlags& flags) {
  if (flags.stream.empty() && flags.pattern.empty()) return report_usage("PATTERN is required (unless --stream)");
  if (flags.stream.empty() && !flags.durable.empty()) return report_usage("--durable needs --stream");
  if (!flags.stream.empty() && flags.match_replies) {
    return report_usage("--match-replies and --stream exclude each other (a stream's messages carry acknowledgement "
                        "subjects, not requests)");
  }
  if (!flags.pattern.empty()) {
    if (auto valid = validate_pattern(flags.pattern); !valid) return report(valid.error());
  }

  // Before connecting: a signal from here on ends the loop below instead of the process.
  install_stop_signals();

  // Interrupted while still setting up: a clean exit, like an interrupt at any later point.
  auto conn = connect(flags.client, "bus sub " + flags.pattern);
  if (!conn) return stop_requested() ? kExitOk : report(conn.error());

  SubscribeOptions options;
  options.queue_group = flags.queue;
  // --stream: messages come from a consumer into a private inbox subject.
  // --stream: messages come from a consumer into its deliver subject: a private inbox for a
  // new consumer, or the one an existing durable delivers to (re-subscribing resumes it).
  std::string inbox;
  std::optional<ConsumerInfo> existing;
  if (!flags.stream.empty()) {
    inbox = "_INBOX." + random_inbox_token();
    if (!flags.durable.empty()) {
      auto info = Consumers(*conn).info(flags.stream, flags.durable);
      if (info) {
        if (info->config.deliver_subject.empty()) {
          return report(make_error(Errc::invalid_argument, "consumer '" + flags.durable +
                                                               "' is a pull consumer: read it with bus consumer next"));
        }
        inbox = info->config.deliver_subject;
        existing = std::move(info).value();
      } else if (info.error().code != Errc::not_found) {
        return report(info.error());
      }
    }
  }
  // --match-replies: the replies' subscription first, so no reply to a request we see is missed.
  std::optional<Subscription> replies;
  if (flags.match_replies) {
    auto r = conn->subscribe("_INBOX.>");
    if (!r) return stop_requested() ? kExitOk : report(r.error());
    replies = std::move(r).value();
  }
  auto sub = conn->subscribe(inbox.empty() ? flags.pattern : inbox, options);
  if (!sub) return stop_requested() ? kExitOk : report(sub.error());
  std::string consumer;  // ephemeral: removed on the way out
  if (!inbox.empty()) {
    if (!existing) {
      auto config = stream_consumer(flags, inbox);
      if (!config) return report_usage(config.error().message);
      auto info = Consumers(*conn).add(flags.stream, *config);
      if (!info) return report(info.error());
      if (flags.durable.empty()) consumer = info->name;
      existing = std::move(info).value();
    }
    const std::string filter = flags.pattern.empty() ? std::string() : " on [" + flags.pattern + "]";
    std::fprintf(stderr, "Subscribing to stream %s%s (consumer %s)\n", flags.stream.c_str(), filter.c_str(),
                 existing->name.c_str());
  }
  struct RemoveEphemeral {
    Connection& conn;
    const std::string& stream;
    const std::string& name;
    ~RemoveEphemeral() {
      if (!name.empty()) (void)Consumers(conn).remove(stream, name);
    }
  } remove_ephemeral{*conn, flags.stream, consumer};

  if (!inbox.empty()) {
    // Said above, once the consumer exists.
  } else if (flags.queue.empty()) {
    std::fprintf(stderr, "Listening on [%s]\n", flags.pattern.c_str());
  } else {
    std::fprintf(stderr, "Listening on [%s] in queue group [%s]\n", flags.pattern.c_str(),
                 flags.queue.c_str());
  }
  std::fflush(stderr);

  CountWarning drops("slow consumer on [" + flags.pattern + "]",
                     "messages dropped because the ring was full");
  BrokerWatch broker(*conn);
  const PrintOptions print{flags.raw, flags.headers_only};
  ReplyMatcher matcher(print, flags.client.timeout);
  std::uint64_t received = 0;
  while (!stop_requested()) {
    const bool taking = flags.count == 0 || received < flags.count;
    if (!taking && matcher.empty()) break;  // --count reached and every request matched (or not)
    // With --match-replies both subscriptions are looked at: the requests' in short waits.
    Result<Message> msg = make_error(Errc::timeout, "");
    if (taking) {
      msg = sub->next(replies ? kMatchPollInterval : kPollInterval);
    } else {
      auto reply = replies->next(kMatchPollInterval);  // only replies are still awaited
      if (reply) {
        matcher.on_reply(std::move(reply).value());
      } else if (reply.error().code != Errc::timeout) {
        return report(reply.error());
      }
    }
    drops.update(sub->dropped_count());
    // Checked while busy too: publishers with a cached route keep writing without the broker.
    if (broker.gone()) return report(broker_gone_error(flags.client.bus_name));
    if (msg) {
      ++received;
      if (replies && !msg->reply.empty()) {
        matcher.on_request(std::move(msg).value(), received);
      } else {
        print_message(*msg, received, print);
        if (!inbox.empty()) {
          if (auto st = ack(*msg); !st) return report(st.error());
        }
      }
    } else if (msg.error().code != Errc::timeout) {
      return report(msg.error());
    }
    if (replies) {
      auto polled = replies->try_poll([&](const MessageView& view) { matcher.on_reply(Message::from(view)); });
      if (!polled && polled.error().code != Errc::timeout) return report(polled.error());
      matcher.expire(std::chrono::steady_clock::now());
    }
  }
  matcher.expire(std::chrono::steady_clock::time_point::max());  // what is left: printed alone
  drops.update(sub->dropped_count(), /*force=*/true);
  if (auto done = sub->unsubscribe(); !done && !stop_requested()) return report(done.error());
  return kExitOk;
}

}  // namespace

VerbRunner setup_sub(CLI::App& command) {
  auto flags = std::make_shared<SubFlags>();
  command.add_option("PATTERN", flags->pattern, "Subject pattern: `*` one token, `>` the rest (with --stream: a filter)")
      ->type_name("");
  command.add_option("--count", flags->count, "Exit after this many messages (0: never)")
      ->type_name("N")
      ->check(tools::count_in_range(0))
      ->capture_default_str();
  command.add_flag("-r,--raw", flags->raw, "Print only the payloads, one per line");
  command.add_flag("--headers-only", flags->headers_only,
                   "Print the headers but not the payloads (with --raw: only the header lines)");
  command.add_flag("--match-replies", flags->match_replies,
                   "Also subscribe to _INBOX.> and print each request with its reply under it (alone if none came "
                   "within --timeout); replies straight into a bus requester's inbox ring (bus req without --replies) "
                   "are not routed and not seen");
  command.add_option("--queue", flags->queue,
                     "Join this queue group: each message goes to one member")
      ->type_name("GROUP");
  command.add_option("--stream", flags->stream, "Read this stream through a consumer (as nats sub --stream)")
      ->type_name("NAME");
  command.add_option("--durable", flags->durable, "With --stream: a durable consumer of this name (resumes where it left off)")
      ->type_name("NAME");
  command.add_flag("--all", flags->all, "With --stream: from the first message (the default)");
  command.add_flag("--new", flags->new_only, "With --stream: only messages stored from now on");
  command.add_flag("--last", flags->last, "With --stream: from the last message");
  command.add_flag("--last-per-subject", flags->last_per_subject, "With --stream: the last message of each subject");
  tools::add_duration_option(command, "--since", flags->since, "With --stream: messages stored in this last while");
  command.add_option("--start-sequence", flags->start_sequence, "With --stream: from this sequence")
      ->type_name("N")
      ->check(tools::count_in_range(1));
  add_client_flags(command, flags->client,
                   {"How long each call to the broker waits for its answer, and with --match-replies how long a "
                    "request waits for its reply before it is printed alone, e.g. 500ms",
                    true,
                    {}});
  return [flags] { return run_sub(*flags); };
}

}  // namespace bus::cli

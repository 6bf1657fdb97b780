// consumer/engine.cpp — the broker's consumers (engine.hpp; semantics in bus/consumer.hpp).
#include "consumer/engine.hpp"

#include <ctime>
#include <algorithm>
#include <charconv>
#include <deque>
#include <optional>
#include <random>
#include <set>

#include <nlohmann/json.hpp>

#include "bus/connection.hpp"
#include "bus/consumer.hpp"
#include "bus/stream.hpp"
#include "client/connection_impl.hpp"
#include "monitor/internal_clients.hpp"
#include "client/inbox.hpp"
#include "client/subscription_impl.hpp"
#include "consumer/config.hpp"
#include "consumer/store.hpp"
#include "os/process.hpp"
#include "proto/control.hpp"
#include "stream/config.hpp"
#include "subject/subject.hpp"

namespace bus::detail::consumer {

namespace {

constexpr std::uint64_t kNever = UINT64_MAX;
constexpr std::uint64_t kSaveEveryNs = 20'000'000;           // a durable's state, at most this stale
constexpr std::uint64_t kNoInterestRetryNs = 250'000'000;    // a push consumer nobody listens to
constexpr std::size_t kDeliveriesPerTurn = 256;              // then acks and requests get a turn
constexpr std::string_view kTimeoutStatus = "NATS/1.0 408 Request Timeout\r\n\r\n";
constexpr std::string_view kNoMessagesStatus = "NATS/1.0 404 No Messages\r\n\r\n";


std::string random_name() {
  static constexpr char kAlphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
  thread_local std::mt19937_64 rng{std::random_device{}()};
  std::string s(8, 'x');
  for (char& c : s) c = kAlphabet[rng() % (sizeof kAlphabet - 1)];
  return s;
}

std::vector<std::string_view> split(std::string_view s) {
  std::vector<std::string_view> out;
  for (;;) {
    const std::size_t dot = s.find('.');
    out.push_back(s.substr(0, dot));
    if (dot == std::string_view::npos) return out;
    s.remove_prefix(dot + 1);
  }
}

std::int64_t now_realtime() { return static_cast<std::int64_t>(realtime_ns()); }  // os/process.hpp

struct PullRequest {
  std::string reply;
  std::uint64_t remaining = 1;
  std::uint64_t expires_at = kNever;  // monotonic
  bool no_wait = false;
};

struct Pend {
  std::uint64_t consumer_seq = 0;
  std::int64_t delivered_ns = 0;
  std::uint64_t deadline = kNever;  // monotonic; kNever while queued for redelivery
};

}  // namespace

struct Consumer {
  std::string stream;
  ConsumerConfig config;
  std::int64_t created_ns = 0;
  bool durable = false;
  std::string dir;  // durable only
  Retention retention = Retention::limits;  // the stream's: workqueue and interest delete what was acked

  std::optional<StreamReader> reader;
  std::uint64_t next_seq = 1;  // the next stream sequence to look at for a first delivery
  SequenceInfo delivered;
  std::map<std::uint64_t, Pend> pending;                       // by stream sequence
  std::unordered_map<std::uint64_t, std::uint64_t> deliveries;  // stream seq -> times delivered
  std::deque<std::uint64_t> redeliver;                         // due now, oldest first
  std::deque<std::uint64_t> initial;                           // deliver policy last_per_subject
  std::deque<PullRequest> waiting;
  std::vector<std::string> sync_acks;  // double acks answered once the state is saved
  std::uint64_t next_deadline = kNever;
  bool dirty = false;
  std::uint64_t last_save = 0;
  std::uint64_t last_active = 0;       // monotonic: a fetch, or a delivery someone took
  std::uint64_t no_interest_until = 0;  // push: nobody subscribed; look again then
  bool caught_up = false;               // the reader found nothing more
  std::int64_t replay_prev_ts = 0;      // replay original: the last delivered message's time
  std::uint64_t replay_prev_at = 0;

  bool acks() const noexcept { return config.ack_policy != AckPolicy::none; }
  bool push() const noexcept { return !config.deliver_subject.empty(); }
  bool matches(std::string_view subject) const noexcept {
    if (config.filter_subjects.empty()) return true;
    for (const auto& f : config.filter_subjects) {
      if (subject_matches(f, subject)) return true;
    }
    return false;
  }
  bool room() const noexcept {
    return !acks() || config.max_ack_pending < 0 || pending.size() < static_cast<std::uint64_t>(config.max_ack_pending);
  }
  std::chrono::nanoseconds wait_for(std::uint64_t delivery) const noexcept {
    if (config.backoff.empty()) return config.ack_wait;
    return config.backoff[std::min<std::size_t>(delivery == 0 ? 0 : delivery - 1, config.backoff.size() - 1)];
  }
  SequenceInfo ack_floor() const noexcept {
    SequenceInfo f = delivered;
    if (!pending.empty()) {
      f.stream_seq = pending.begin()->first - 1;
      std::uint64_t lowest = UINT64_MAX;
      for (const auto& [seq, p] : pending) lowest = std::min(lowest, p.consumer_seq);
      f.consumer_seq = lowest - 1;
    }
    return f;
  }
  ConsumerState state() const {
    ConsumerState st;
    st.delivered = delivered;
    st.ack_floor = ack_floor();
    for (const auto& [seq, p] : pending) st.pending.push_back({seq, p.consumer_seq, p.delivered_ns});
    for (const auto& [seq, n] : deliveries) {
      if (n > 1) st.redelivered.emplace_back(seq, n);
    }
    std::sort(st.redelivered.begin(), st.redelivered.end());
    return st;
  }
};

/// The engine thread's state; only that thread touches it.
struct EngineLoop {
  ConsumerEngine& engine;
  std::optional<Connection> conn;
  ConnectionImpl* impl = nullptr;
  std::optional<Subscription> api_sub, ack_sub;
  std::string ack_address;  // of ack_sub's ring, the last token of every ack subject
  std::map<std::pair<std::string, std::string>, std::unique_ptr<Consumer>> consumers;

  // One watcher per stream: sleeps on the journal until `from` is committed, then wakes us.
  struct Watcher {
    std::string stream;
    std::thread thread;
    std::mutex mutex;
    std::condition_variable cv;
    std::uint64_t from = 0;  // 0: nothing wanted
    bool stop = false;
  };
  std::map<std::string, std::unique_ptr<Watcher>> watchers;
  // Retention: what acknowledgements allow the broker to delete, sent once per turn.
  std::map<std::string, std::vector<std::uint64_t>> acked_in_workqueue;
  std::map<std::string, std::uint64_t> interest_deleted_upto;

  explicit EngineLoop(ConsumerEngine& e) : engine(e) {}
  ~EngineLoop() {
    for (auto& [name, w] : watchers) stop_watcher(*w);
  }

  void log(const std::string& line) const {
    if (engine.log_) engine.log_("consumers: " + line);
  }

  // ------------------------------------------------------------------------------ plumbing

  Result<std::size_t> send(std::string_view subject, std::string_view reply, std::string_view headers,
                           std::string_view data, std::string_view shown = {}) {
    return impl->publish(subject, reply, headers, data, nullptr, shown);
  }
  void reply_json(const std::string& to, const nlohmann::json& body) {
    if (!to.empty()) (void)send(to, {}, {}, stream::json_text(body));
  }
  void reply_error(const std::string& to, const Error& e) {
    if (!to.empty()) (void)send(to, {}, {}, error_reply(e));
  }
  void advisory(const std::string& kind, const Consumer& c, std::uint64_t stream_seq, std::uint64_t deliveries) {
    const std::string subject = "$JS.EVENT.ADVISORY.CONSUMER." + kind + "." + c.stream + "." + c.config.name;
    nlohmann::json j{{"type", kind == "MAX_DELIVERIES" ? "io.nats.jetstream.advisory.v1.max_deliver"
                                                       : "io.nats.jetstream.advisory.v1.terminated"},
                     {"id", random_name() + random_name()},
                     {"timestamp", rfc3339(now_realtime())},
                     {"stream", c.stream},
                     {"consumer", c.config.name},
                     {"stream_seq", stream_seq},
                     {"deliveries", deliveries}};
    (void)send(subject, {}, {}, stream::json_text(j));
  }

  void publish_counts() {
    std::unordered_map<std::string, std::uint32_t> counts;
    for (const auto& [key, c] : consumers) ++counts[key.first];
    std::lock_guard lock(engine.counts_mutex_);
    engine.counts_ = std::move(counts);
    engine.counts_known_ = true;
  }

  void stop_watcher(Watcher& w) {
    {
      std::lock_guard lock(w.mutex);
      w.stop = true;
    }
    w.cv.notify_all();
    if (w.thread.joinable()) w.thread.join();
  }

  Watcher& watcher(const std::string& stream) {
    auto& slot = watchers[stream];
    if (!slot) {
      slot = std::make_unique<Watcher>();
      slot->stream = stream;
      Watcher* w = slot.get();
      slot->thread = std::thread([this, w] { watch(*w); });
    }
    return *slot;
  }

  void watch(Watcher& w) {
    Streams streams(*conn);
    std::optional<StreamReader> reader;
    std::unique_lock lock(w.mutex);
    while (!w.stop) {
      if (w.from == 0) {
        w.cv.wait_for(lock, std::chrono::seconds(1));
        continue;
      }
      const std::uint64_t from = w.from;
      lock.unlock();
      if (!reader || reader->sequence() != from) {
        auto r = streams.reader(w.stream, from);
        reader.reset();
        if (r) reader = std::move(r).value();
      }
      // Bounded: a missed wake-up (a roll-over to a file not mapped yet) costs at most this.
      const bool ready = reader ? reader->wait(std::chrono::milliseconds(200)) : false;
      if (!reader) std::this_thread::sleep_for(std::chrono::milliseconds(100));
      lock.lock();
      if (ready && w.from == from) {
        w.from = 0;
        lock.unlock();
        engine.notify();
        lock.lock();
      }
    }
  }

  // ------------------------------------------------------------------------------ lifecycle

  bool connect_and_subscribe() {
    ConnectOptions options;
    options.name = std::string(monitor::kConsumersClientName);
    options.max_reconnects = -1;
    while (!engine_stopping()) {
      auto c = Connection::connect(engine.bus_name_, options);
      if (c) {
        conn = std::move(c).value();
        impl = ConnectionAccess::impl(*conn).get();
        break;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    if (!conn) return false;
    auto queue = [this](const MessageView& m) {
      {
        std::lock_guard lock(engine.mutex_);
        engine.incoming_.push_back(Message::from(m));
        engine.woken_ = true;
      }
      engine.wake_.notify_one();
    };
    auto api = conn->subscribe(kApiPattern, queue);
    auto acks = conn->subscribe(kAckPattern, queue);
    if (!api || !acks) {
      log("cannot subscribe: " + (api ? acks.error().message : api.error().message));
      return false;
    }
    api_sub = std::move(api).value();
    ack_sub = std::move(acks).value();
    // Ack subjects name this ring, so that acknowledgements come straight here (client/inbox.hpp).
    if (const SubscriptionImpl* ring = SubscriptionAccess::of(*ack_sub)) {
      ack_address = ring_address(ring->index(), ring->incarnation());
    }
    return true;
  }

  bool engine_stopping() {
    std::lock_guard lock(engine.mutex_);
    return engine.stopping_;
  }

  void load_durables() {
    std::vector<std::string> damaged;
    auto stored = load_consumers(engine.state_dir_, damaged);
    for (const auto& why : damaged) log("durable consumer left out: " + why);
    const std::uint64_t now = monotonic_ns();
    std::map<std::string, Retention> retention;
    for (auto& sc : stored) {
      if (!retention.contains(sc.stream)) {
        auto info = Streams(*conn).info(sc.stream);
        retention[sc.stream] = info ? info->config.retention : Retention::limits;
      }
      auto c = std::make_unique<Consumer>();
      c->retention = retention[sc.stream];
      c->stream = sc.stream;
      c->config = sc.config;
      c->created_ns = sc.created_ns;
      c->durable = true;
      c->dir = consumer_dir(engine.state_dir_, sc.stream, sc.config.name);
      c->delivered = sc.state.delivered;
      c->next_seq = sc.state.delivered.stream_seq + 1;
      for (const auto& p : sc.state.pending) {
        // Delivered before the restart and never acknowledged: redelivered after the ack wait,
        // as JetStream does.
        c->pending[p.stream_seq] = Pend{p.consumer_seq, p.delivered_ns, now + static_cast<std::uint64_t>(c->config.ack_wait.count())};
        c->deliveries[p.stream_seq] = 1;
      }
      for (const auto& [seq, n] : sc.state.redelivered) {
        if (c->pending.contains(seq)) c->deliveries[seq] = n;
      }
      for (const auto& [seq, p] : c->pending) c->next_deadline = std::min(c->next_deadline, p.deadline);
      c->last_active = now;
      log("durable consumer " + sc.stream + " > " + sc.config.name + " resumed after stream sequence " +
          std::to_string(c->delivered.stream_seq) + " (" + std::to_string(c->pending.size()) + " pending)");
      consumers[{sc.stream, sc.config.name}] = std::move(c);
    }
    publish_counts();
  }

  void save(Consumer& c, std::uint64_t now) {
    if (c.durable && c.dirty) {
      if (auto st = save_state(c.dir, c.state()); !st) {
        log("cannot save " + c.stream + " > " + c.config.name + ": " + st.error().message);
        return;  // the double acks wait for a save that worked
      }
    }
    c.dirty = false;
    c.last_save = now;
    for (const auto& to : c.sync_acks) (void)send(to, {}, {}, {});
    c.sync_acks.clear();
  }

  void remove(const std::string& stream, const std::string& name, bool files) {
    auto it = consumers.find({stream, name});
    if (it == consumers.end()) return;
    Consumer& c = *it->second;
    for (const auto& r : c.waiting) (void)send(r.reply, {}, "NATS/1.0 409 Consumer Deleted\r\n\r\n", {});
    if (files && c.durable) {
      if (auto st = remove_consumer(engine.state_dir_, stream, name); !st) log(st.error().message);
    }
    consumers.erase(it);
    publish_counts();
  }

  // ------------------------------------------------------------------------------ API

  Result<nlohmann::json> info(Consumer& c) {
    ConsumerInfo i;
    i.stream_name = c.stream;
    i.name = c.config.name;
    i.created_ns = c.created_ns;
    i.config = c.config;
    i.delivered = c.delivered;
    i.ack_floor = c.ack_floor();
    i.num_ack_pending = c.pending.size();
    for (const auto& [seq, n] : c.deliveries) i.num_redelivered += n > 1 && c.pending.contains(seq) ? 1 : 0;
    i.num_waiting = c.waiting.size();
    i.num_pending = count_undelivered(c);
    return info_to_json(i);
  }

  std::uint64_t count_undelivered(Consumer& c) {
    Streams streams(*conn);
    auto r = streams.reader(c.stream, c.next_seq);
    if (!r) return 0;
    if (c.config.filter_subjects.empty()) {
      const std::uint64_t last = r->last_sequence();
      return c.initial.size() + (last >= c.next_seq ? last - c.next_seq + 1 : 0);
    }
    std::uint64_t n = c.initial.size();
    StoredMessageView v;
    for (std::uint64_t scanned = 0; scanned < 10'000'000; ++scanned) {
      if (scanned % 4096 == 4095 && engine_stopping()) break;
      auto got = r->next(v);
      if (!got) {
        r->skip();
        continue;
      }
      if (!got.value()) break;
      if (c.matches(v.subject)) ++n;
    }
    return n;
  }

  /// Where a new consumer starts (its deliver policy), from the stream as it is now.
  Status position(Consumer& c) {
    Streams streams(*conn);
    auto r = streams.reader(c.stream, 1);
    if (!r) return std::move(r).error();
    const std::uint64_t last = r->last_sequence();
    const ConsumerConfig& cfg = c.config;
    std::uint64_t start = r->sequence();
    switch (cfg.deliver_policy) {
      case DeliverPolicy::all: break;
      case DeliverPolicy::new_messages: start = last + 1; break;
      case DeliverPolicy::by_start_sequence: start = std::max(start, cfg.opt_start_seq); break;
      case DeliverPolicy::by_start_time: {
        auto at = streams.sequence_at_time(c.stream, cfg.opt_start_time_ns);  // the position index
        if (!at) return std::move(at).error();
        start = std::max(start, at.value());
        break;
      }
      case DeliverPolicy::last:
      case DeliverPolicy::last_per_subject: {
        // From the subject index: each subject's last message up to `last` (one stored after
        // it, and so left out, is delivered as new, below).
        if (auto per_subject = streams.last_per_subject(c.stream)) {
          std::vector<std::uint64_t> seqs;
          for (const auto& [subject, seq] : per_subject.value()) {
            if (seq <= last && c.matches(subject)) seqs.push_back(seq);
          }
          if (cfg.deliver_policy == DeliverPolicy::last) {
            start = seqs.empty() ? last + 1 : seqs.back();
          } else {
            c.initial.assign(seqs.begin(), seqs.end());
            start = last + 1;
          }
          break;
        }
        // The index is full (more subjects than it holds): a scan of the stream.
        std::map<std::string, std::uint64_t, std::less<>> last_of_subject;
        std::uint64_t last_match = 0;
        StoredMessageView v;
        for (std::uint64_t scanned = 0;; ++scanned) {
          if (scanned % 4096 == 4095 && engine_stopping()) return make_error(Errc::closed, "the broker is stopping");
          auto got = r->next(v);
          if (!got) {
            r->skip();
            continue;
          }
          if (!got.value()) break;
          if (!c.matches(v.subject)) continue;
          last_match = v.sequence;
          if (cfg.deliver_policy == DeliverPolicy::last_per_subject) last_of_subject[std::string(v.subject)] = v.sequence;
        }
        const std::uint64_t end = r->sequence();  // past what the scan saw
        if (cfg.deliver_policy == DeliverPolicy::last) start = last_match != 0 ? last_match : end;
        if (cfg.deliver_policy == DeliverPolicy::last_per_subject) {
          std::vector<std::uint64_t> seqs;
          for (const auto& [s, seq] : last_of_subject) seqs.push_back(seq);
          std::sort(seqs.begin(), seqs.end());
          c.initial.assign(seqs.begin(), seqs.end());
          start = end;
        }
        break;
      }
    }
    c.next_seq = start;
    c.delivered.stream_seq = (c.initial.empty() ? start : c.initial.front()) - 1;
    return {};
  }

  void on_api(const Message& m) {
    const std::string_view rest = std::string_view(m.subject).substr(kApiPrefix.size());
    const auto t = split(rest);
    const std::string& to = m.reply;
    auto token = [&](std::size_t i) { return i < t.size() ? std::string(t[i]) : std::string(); };
    if (t[0] == "CREATE" && (t.size() == 2 || t.size() == 3 || t.size() == 4)) return create(token(1), token(2), m, false);
    if (t[0] == "DURABLE" && t.size() == 4 && t[1] == "CREATE") return create(token(2), token(3), m, true);
    if (t[0] == "INFO" && t.size() == 3) {
      auto it = consumers.find({token(1), token(2)});
      if (it == consumers.end()) return reply_error(to, not_found(token(1), token(2)));
      auto j = info(*it->second);
      return j ? reply_json(to, j.value()) : reply_error(to, j.error());
    }
    if (t[0] == "DELETE" && t.size() == 3) {
      if (!consumers.contains({token(1), token(2)})) return reply_error(to, not_found(token(1), token(2)));
      remove(token(1), token(2), /*files=*/true);
      log("consumer " + token(1) + " > " + token(2) + " removed");
      return reply_json(to, {{"success", true}});
    }
    if ((t[0] == "LIST" || t[0] == "NAMES") && t.size() == 2) {
      nlohmann::json list = nlohmann::json::array();
      for (auto& [key, c] : consumers) {
        if (key.first != t[1]) continue;
        if (t[0] == "NAMES") {
          list.push_back(key.second);
        } else if (auto j = info(*c)) {
          list.push_back(std::move(j).value());
        }
      }
      const auto n = list.size();
      return reply_json(to, {{t[0] == "LIST" ? "consumers" : "consumer_names", std::move(list)}, {"total", n}});
    }
    if (t[0] == "MSG" && t.size() == 4 && t[1] == "NEXT") return pull(token(2), token(3), m.reply, m.data);
    reply_error(to, make_error(Errc::invalid_argument, "unknown consumer API request: " + m.subject));
  }

  static Error not_found(const std::string& stream, const std::string& name) {
    return make_error(Errc::not_found, "consumer not found: '" + name + "' on stream '" + stream + "'");
  }

  void create(const std::string& stream, const std::string& subject_name, const Message& m, bool durable_api) {
    const std::string& to = m.reply;
    nlohmann::json body = nlohmann::json::parse(m.data, nullptr, /*allow_exceptions=*/false);
    if (body.is_discarded() || !body.is_object() || !body.contains("config")) {
      return reply_error(to, make_error(Errc::invalid_argument, "consumer create request needs {\"config\": {...}}"));
    }
    if (body.contains("stream_name") && body.at("stream_name") != stream) {
      return reply_error(to, make_error(Errc::invalid_argument, "stream name in subject and body differ"));
    }
    auto parsed = from_json_value(body.at("config"));
    if (!parsed) return reply_error(to, parsed.error());
    ConsumerConfig config = std::move(parsed).value();
    if (durable_api && config.durable_name.empty()) {
      config.durable_name = subject_name;  // the legacy durable API names it in the subject
      config.inactive_threshold = std::chrono::nanoseconds(0);
      normalize(config);
    }
    if (!subject_name.empty() && config.name.empty()) config.name = subject_name;
    if (!subject_name.empty() && config.name != subject_name) {
      return reply_error(to, make_error(Errc::invalid_argument, "consumer name in subject and body differ"));
    }
    if (config.name.empty()) config.name = random_name();
    if (auto st = validate(config); !st) return reply_error(to, st.error());
    Streams streams(*conn);
    auto sinfo = streams.info(stream);
    if (!sinfo) {
      return reply_error(to, sinfo.error().code == Errc::not_found || sinfo.error().code == Errc::invalid_argument
                                 ? make_error(Errc::not_found, "stream not found: '" + stream + "'")
                                 : sinfo.error());
    }
    for (const auto& f : config.filter_subjects) {
      bool inside = false;
      for (const auto& s : sinfo->config.subjects) inside = inside || subjects_overlap(f, s);
      if (!inside) {
        return reply_error(to, make_error(Errc::invalid_argument, "filter subject '" + f +
                                                                      "' is not a subset of the stream's subjects"));
      }
    }
    for (const auto& s : sinfo->config.subjects) {
      if (!config.deliver_subject.empty() && subject_matches(s, config.deliver_subject)) {
        return reply_error(to, make_error(Errc::invalid_argument, "consumer deliver subject '" + config.deliver_subject +
                                                                      "' forms a cycle (the stream captures it)"));
      }
    }
    if (auto it = consumers.find({stream, config.name}); it != consumers.end()) {
      if (!same(it->second->config, config)) {
        return reply_error(to, make_error(Errc::already_exists, "consumer '" + config.name +
                                                                    "' already exists with another configuration"));
      }
      auto j = info(*it->second);
      return j ? reply_json(to, j.value()) : reply_error(to, j.error());
    }
    if (sinfo->config.retention == Retention::workqueue) {
      // JetStream's rule: each message of a work queue belongs to one consumer.
      auto covers = [](const ConsumerConfig& k) { return k.filter_subjects.empty() ? std::vector<std::string>{">"} : k.filter_subjects; };
      for (const auto& [key, other] : consumers) {
        if (key.first != stream) continue;
        for (const auto& a : covers(config)) {
          for (const auto& b : covers(other->config)) {
            if (subjects_overlap(a, b)) {
              return reply_error(to, make_error(Errc::invalid_argument,
                                                "workqueue stream '" + stream + "': consumer '" + other->config.name +
                                                    "' already takes subjects '" + b + "' (filters must not overlap)"));
            }
          }
        }
      }
    }
    auto c = std::make_unique<Consumer>();
    c->stream = stream;
    c->config = config;
    c->retention = sinfo->config.retention;
    c->created_ns = now_realtime();
    c->durable = !config.durable_name.empty();
    c->last_active = monotonic_ns();
    if (auto st = position(*c); !st) return reply_error(to, st.error());
    if (c->durable) {
      c->dir = consumer_dir(engine.state_dir_, stream, config.name);
      StoredConsumer sc{stream, config, c->created_ns, c->state()};
      if (auto st = save_consumer(engine.state_dir_, sc); !st) return reply_error(to, st.error());
    }
    Consumer& made = *c;
    consumers[{stream, config.name}] = std::move(c);
    publish_counts();
    log("consumer " + stream + " > " + config.name + " added (" + (made.durable ? "durable" : "ephemeral") + ", " +
        (made.push() ? "push to " + made.config.deliver_subject : std::string("pull")) + ")");
    auto j = info(made);
    j ? reply_json(to, j.value()) : reply_error(to, j.error());
  }

  void pull(const std::string& stream, const std::string& name, const std::string& reply, std::string_view data) {
    if (reply.empty()) return;
    auto it = consumers.find({stream, name});
    if (it == consumers.end()) {
      (void)send(reply, {}, "NATS/1.0 404 Consumer Not Found\r\n\r\n", {});
      return;
    }
    Consumer& c = *it->second;
    if (c.push()) {
      (void)send(reply, {}, "NATS/1.0 409 Consumer is push based\r\n\r\n", {});
      return;
    }
    PullRequest r;
    r.reply = reply;
    std::int64_t expires = 0;
    if (!data.empty()) {
      nlohmann::json j = nlohmann::json::parse(data, nullptr, /*allow_exceptions=*/false);
      if (j.is_number_unsigned()) {
        r.remaining = j.get<std::uint64_t>();
      } else if (j.is_object()) {
        if (auto b = j.find("batch"); b != j.end() && b->is_number_unsigned()) r.remaining = b->get<std::uint64_t>();
        if (auto e = j.find("expires"); e != j.end() && e->is_number_integer()) expires = e->get<std::int64_t>();
        if (auto n = j.find("no_wait"); n != j.end() && n->is_boolean()) r.no_wait = n->get<bool>();
      } else {
        (void)send(reply, {}, "NATS/1.0 400 Bad Request\r\n\r\n", {});
        return;
      }
    }
    if (r.remaining == 0) r.remaining = 1;
    if (expires > 0) r.expires_at = monotonic_ns() + static_cast<std::uint64_t>(expires);
    if (c.config.max_waiting > 0 && c.waiting.size() >= static_cast<std::uint64_t>(c.config.max_waiting)) {
      (void)send(reply, {}, "NATS/1.0 409 Exceeded MaxWaiting\r\n\r\n", {});
      return;
    }
    c.last_active = monotonic_ns();
    c.waiting.push_back(std::move(r));
  }

  // ------------------------------------------------------------------------------ acks

  void on_ack(const Message& m) {
    const auto meta = parse_ack_subject(m.subject);
    if (!meta) return;
    auto it = consumers.find({meta->stream, meta->consumer});
    if (it == consumers.end()) return;  // a consumer removed since; nothing to record
    Consumer& c = *it->second;
    const std::uint64_t now = monotonic_ns();
    c.last_active = now;  // a client acknowledging is using it
    std::string_view body = m.data;
    auto starts = [&](std::string_view word) { return body.substr(0, word.size()) == word; };
    const std::uint64_t seq = meta->stream_seq;
    auto p = c.pending.find(seq);
    bool answer = !m.reply.empty();
    if (body.empty() || starts("+ACK") || starts("+NXT")) {
      const bool workqueue = c.retention == Retention::workqueue;
      if (c.config.ack_policy == AckPolicy::all) {
        while (!c.pending.empty() && c.pending.begin()->first <= seq) {
          if (workqueue) acked_in_workqueue[c.stream].push_back(c.pending.begin()->first);
          c.deliveries.erase(c.pending.begin()->first);
          c.pending.erase(c.pending.begin());
        }
      } else if (p != c.pending.end()) {
        if (workqueue) acked_in_workqueue[c.stream].push_back(seq);
        c.pending.erase(p);
        c.deliveries.erase(seq);
      }
      c.delivered.last_active_ns = now_realtime();
      c.dirty = true;
      if (starts("+NXT") && !m.reply.empty()) {
        pull(c.stream, c.config.name, m.reply, body.size() > 4 ? body.substr(4) : std::string_view{});
        answer = false;  // the reply subject is where the next messages go
      }
    } else if (starts("-NAK")) {
      if (p != c.pending.end()) {
        std::int64_t delay = 0;
        if (body.size() > 4) {
          nlohmann::json j = nlohmann::json::parse(body.substr(4), nullptr, /*allow_exceptions=*/false);
          if (j.is_object() && j.contains("delay") && j.at("delay").is_number_integer()) delay = j.at("delay").get<std::int64_t>();
        }
        if (delay <= 0) {
          queue_redelivery(c, seq, p->second);
        } else {
          p->second.deadline = now + static_cast<std::uint64_t>(delay);
          c.next_deadline = std::min(c.next_deadline, p->second.deadline);
        }
      }
    } else if (starts("+WPI")) {
      if (p != c.pending.end() && p->second.deadline != kNever) {
        p->second.deadline = now + static_cast<std::uint64_t>(c.wait_for(c.deliveries[seq]).count());
        c.next_deadline = std::min(c.next_deadline, p->second.deadline);
      }
    } else if (starts("+TERM")) {
      if (p != c.pending.end()) {
        const std::uint64_t n = c.deliveries[seq];
        if (c.retention == Retention::workqueue) acked_in_workqueue[c.stream].push_back(seq);
        c.pending.erase(p);
        c.deliveries.erase(seq);
        c.dirty = true;
        advisory("MSG_TERMINATED", c, seq, n);
      }
    } else {
      return;  // not an acknowledgement we know
    }
    if (answer) {
      if (c.durable && c.dirty) {
        c.sync_acks.push_back(m.reply);  // answered after the next save
      } else {
        (void)send(m.reply, {}, {}, {});
      }
    }
  }

  static void queue_redelivery(Consumer& c, std::uint64_t seq, Pend& p) {
    if (p.deadline == kNever) return;  // queued already
    p.deadline = kNever;
    c.redeliver.push_back(seq);
  }

  // ------------------------------------------------------------------------------ delivery

  /// Messages whose ack wait ran out go back to the front of the line, or, past max_deliver,
  /// are given up on (with an advisory).
  void expire(Consumer& c, std::uint64_t now) {
    if (now < c.next_deadline) return;
    c.next_deadline = kNever;
    for (auto it = c.pending.begin(); it != c.pending.end();) {
      Pend& p = it->second;
      if (p.deadline != kNever && p.deadline <= now) {
        const std::uint64_t n = c.deliveries[it->first];
        if (c.config.max_deliver > 0 && n >= static_cast<std::uint64_t>(c.config.max_deliver)) {
          advisory("MAX_DELIVERIES", c, it->first, n);
          c.deliveries.erase(it->first);
          it = c.pending.erase(it);
          c.dirty = true;
          continue;
        }
        queue_redelivery(c, it->first, p);
      } else if (p.deadline != kNever) {
        c.next_deadline = std::min(c.next_deadline, p.deadline);
      }
      ++it;
    }
  }

  /// Where the next message goes: the deliver subject, or the oldest live pull request.
  const std::string* target(Consumer& c, std::uint64_t now) {
    if (c.push()) return now >= c.no_interest_until ? &c.config.deliver_subject : nullptr;
    // Every expired request is answered, wherever it waits in the line.
    for (auto it = c.waiting.begin(); it != c.waiting.end();) {
      if (it->expires_at <= now) {
        (void)send(it->reply, {}, kTimeoutStatus, {});
        it = c.waiting.erase(it);
      } else {
        ++it;
      }
    }
    return c.waiting.empty() ? nullptr : &c.waiting.front().reply;
  }

  /// Hands one message out; false if nobody took it (no interest, the fetcher left).
  bool hand_out(Consumer& c, const std::string& to, std::uint64_t seq, std::string_view subject,
                std::string_view headers, std::string_view data, std::int64_t time_ns, bool redelivery,
                std::uint64_t now) {
    const std::uint64_t count = redelivery ? c.deliveries[seq] + 1 : 1;
    MessageMetadata meta;
    meta.stream_seq = seq;
    meta.consumer_seq = c.delivered.consumer_seq + 1;
    meta.num_delivered = count;
    meta.time_ns = time_ns;
    // Still to come after this one (JetStream's pending): what the reader has not reached.
    const std::uint64_t reached = std::max(c.next_seq - 1, seq);
    const std::uint64_t last = c.reader ? c.reader->last_sequence() : 0;
    meta.num_pending = c.initial.size() + (last > reached ? last - reached : 0);
    const std::string reply = ack_subject(c.stream, c.config.name, meta, ack_address);
    auto matched = send(to, reply, headers, data, subject);
    if (!matched || matched.value() == 0) {
      if (!matched) log("delivery of " + c.stream + " #" + std::to_string(seq) + " failed: " + matched.error().message);
      if (c.push()) {
        c.no_interest_until = now + kNoInterestRetryNs;
      } else if (!c.waiting.empty()) {
        c.waiting.pop_front();  // the fetcher is gone
      }
      return false;
    }
    c.last_active = now;
    c.delivered.consumer_seq = meta.consumer_seq;
    c.delivered.stream_seq = std::max(c.delivered.stream_seq, seq);
    c.delivered.last_active_ns = now_realtime();
    c.dirty = true;
    if (c.acks()) {
      c.deliveries[seq] = count;
      const std::uint64_t deadline = now + static_cast<std::uint64_t>(c.wait_for(count).count());
      c.pending[seq] = Pend{meta.consumer_seq, c.delivered.last_active_ns, deadline};
      c.next_deadline = std::min(c.next_deadline, deadline);
    }
    if (!c.push() && !c.waiting.empty() && --c.waiting.front().remaining == 0) c.waiting.pop_front();
    return true;
  }

  /// One turn of deliveries; returns the time it wants to run again (kNever: when woken).
  std::uint64_t serve(Consumer& c, std::uint64_t now) {
    expire(c, now);
    if (!c.reader) {
      Streams streams(*conn);
      auto r = streams.reader(c.stream, c.next_seq);
      if (!r) return now + 100'000'000;  // the stream is being recovered or replaced: soon again
      c.reader = std::move(r).value();
      c.next_seq = std::max(c.next_seq, c.reader->sequence());
    }
    c.caught_up = false;
    std::size_t turn = 0;
    while (turn < kDeliveriesPerTurn) {
      const std::string* to = target(c, now);
      if (to == nullptr) break;
      const std::string dest = *to;  // hand_out may pop the request it points into
      // Redeliveries first, then last_per_subject's list, then what is new.
      if (!c.redeliver.empty()) {
        const std::uint64_t seq = c.redeliver.front();
        c.redeliver.pop_front();
        auto p = c.pending.find(seq);
        if (p == c.pending.end() || p->second.deadline != kNever) continue;  // acked, or rescheduled
        const std::uint64_t so_far = c.deliveries[seq];
        if (c.config.max_deliver > 0 && so_far >= static_cast<std::uint64_t>(c.config.max_deliver)) {
          // A nak asks again, but max_deliver is the bound whatever asked.
          advisory("MAX_DELIVERIES", c, seq, so_far);
          c.pending.erase(p);
          c.deliveries.erase(seq);
          c.dirty = true;
          continue;
        }
        Streams streams(*conn);
        auto m = streams.get(c.stream, seq);
        if (!m) {
          if (m.error().code == Errc::not_found || m.error().code == Errc::journal_corrupt) {
            c.pending.erase(p);  // gone from the stream, or damaged: never delivered again
            c.deliveries.erase(seq);
            continue;
          }
          c.redeliver.push_front(seq);  // unreadable for now (stream being replaced): later
          break;
        }
        if (!hand_out(c, dest, seq, m->subject, m->headers, m->data, m->time_ns, true, now)) {
          c.redeliver.push_front(seq);
          if (!c.push()) continue;  // that fetcher is gone: the next request gets it
          break;
        }
        ++turn;
        continue;
      }
      if (!c.room()) break;
      if (!c.initial.empty()) {
        const std::uint64_t seq = c.initial.front();
        Streams streams(*conn);
        auto m = streams.get(c.stream, seq);
        if (!m && m.error().code != Errc::not_found && m.error().code != Errc::journal_corrupt) break;  // later
        c.initial.pop_front();
        if (!m) continue;
        if (!hand_out(c, dest, seq, m->subject, m->headers, m->data, m->time_ns, false, now)) {
          c.initial.push_front(seq);
          if (!c.push()) continue;
          break;
        }
        ++turn;
        continue;
      }
      StoredMessageView v;
      auto got = c.reader->next(v);
      if (!got) {
        log(c.stream + " > " + c.config.name + ": " + got.error().message);
        c.reader->skip();
        c.next_seq = c.reader->sequence();
        continue;
      }
      if (!got.value()) {
        c.caught_up = true;
        break;
      }
      if (!c.matches(v.subject)) {
        c.next_seq = v.sequence + 1;
        ++turn;
        continue;
      }
      if (c.config.replay_policy == ReplayPolicy::original && c.replay_prev_at != 0) {
        const std::int64_t gap = v.time_ns - c.replay_prev_ts;
        const std::uint64_t due = c.replay_prev_at + static_cast<std::uint64_t>(std::max<std::int64_t>(gap, 0));
        if (due > now) {
          // Not yet: read it again when it is due (a fresh reader at this sequence).
          c.reader.reset();
          return due;
        }
      }
      if (!hand_out(c, dest, v.sequence, v.subject, v.headers, v.data, v.time_ns, false, now)) {
        c.reader.reset();  // read it again: next time, or for the next fetch request
        if (!c.push()) {
          Streams streams(*conn);
          auto r = streams.reader(c.stream, c.next_seq);
          if (!r) break;
          c.reader = std::move(r).value();
          continue;
        }
        break;
      }
      c.next_seq = v.sequence + 1;
      if (c.config.replay_policy == ReplayPolicy::original) {
        c.replay_prev_ts = v.time_ns;
        c.replay_prev_at = now;
      }
      ++turn;
    }
    std::uint64_t again = c.next_deadline;
    if (turn == kDeliveriesPerTurn) again = now;  // more to do: after the queue's turn
    if (c.push() && c.no_interest_until > now) again = std::min(again, c.no_interest_until);
    if (!c.push()) {
      for (const auto& r : c.waiting) again = std::min(again, r.expires_at);
      // no_wait: nothing more now is the answer.
      if (c.caught_up || !c.room()) {
        for (auto it = c.waiting.begin(); it != c.waiting.end();) {
          if (it->no_wait) {
            (void)send(it->reply, {}, kNoMessagesStatus, {});
            it = c.waiting.erase(it);
          } else {
            ++it;
          }
        }
      }
    }
    if (c.dirty && c.durable) again = std::min(again, c.last_save + kSaveEveryNs);
    if (c.config.inactive_threshold.count() > 0) {
      again = std::min(again, c.last_active + static_cast<std::uint64_t>(c.config.inactive_threshold.count()));
    }
    return again;
  }

  // ------------------------------------------------------------------------------ retention

  /// Workqueue: what was acknowledged is deleted. Interest: what every consumer of the stream
  /// has acknowledged (below each one's ack floor) is deleted. The broker deletes (it owns the
  /// stream's counts): one request per stream and turn.
  void apply_retention() {
    auto request = [&](const std::string& stream, const nlohmann::json& body) {
      auto r = impl->stream_request(StreamOp::delete_msg, stream, stream::json_text(body));
      if (!r) log("stream " + stream + ": retention delete failed: " + r.error().message);
    };
    for (auto& [stream, seqs] : acked_in_workqueue) {
      for (std::size_t at = 0; at < seqs.size(); at += 8192) {  // well inside a control body
        const auto end = std::min(seqs.size(), at + 8192);
        request(stream, nlohmann::json{{"seqs", std::vector<std::uint64_t>(seqs.begin() + static_cast<std::ptrdiff_t>(at),
                                                                          seqs.begin() + static_cast<std::ptrdiff_t>(end))}});
      }
    }
    acked_in_workqueue.clear();
    std::map<std::string, std::uint64_t> floors;
    for (const auto& [key, c] : consumers) {
      if (c->retention != Retention::interest) continue;
      const std::uint64_t floor = c->acks() ? c->ack_floor().stream_seq : c->delivered.stream_seq;
      auto [it, fresh] = floors.emplace(key.first, floor);
      if (!fresh) it->second = std::min(it->second, floor);
    }
    for (const auto& [stream, floor] : floors) {
      std::uint64_t& done = interest_deleted_upto[stream];
      if (floor <= done) continue;
      request(stream, nlohmann::json{{"from", done + 1}, {"to", floor}});
      done = floor;
    }
  }

  // ------------------------------------------------------------------------------ loop

  void run() {
    if (!connect_and_subscribe()) return;
    load_durables();
    std::vector<Message> batch;
    std::vector<std::string> removed;
    while (true) {
      {
        std::unique_lock lock(engine.mutex_);
        if (engine.stopping_) break;
        batch.swap(engine.incoming_);
        removed.swap(engine.removed_streams_);
        engine.woken_ = false;
      }
      for (const auto& stream : removed) {
        std::vector<std::string> names;
        for (const auto& [key, c] : consumers) {
          if (key.first == stream) names.push_back(key.second);
        }
        for (const auto& n : names) remove(stream, n, /*files=*/false);  // went with the stream
        if (auto w = watchers.find(stream); w != watchers.end()) {
          stop_watcher(*w->second);
          watchers.erase(w);
        }
        if (!names.empty()) log(std::to_string(names.size()) + " consumer(s) of removed stream " + stream + " dropped");
      }
      removed.clear();
      for (const auto& m : batch) {
        if (m.subject.rfind(kApiPrefix, 0) == 0) {
          on_api(m);
        } else {
          on_ack(m);
        }
      }
      batch.clear();
      const std::uint64_t now = monotonic_ns();
      std::uint64_t wake_at = now + 1'000'000'000ull;  // bounded: nothing waits forever
      std::map<std::string, std::uint64_t> want;     // stream -> lowest sequence a caught-up consumer wants
      std::vector<std::pair<std::string, std::string>> inactive;
      for (auto& [key, c] : consumers) {
        wake_at = std::min(wake_at, serve(*c, now));
        const bool hungry = c->push() ? now >= c->no_interest_until && c->room() : !c->waiting.empty() && c->room();
        if (c->caught_up && hungry) {
          auto [it, fresh] = want.emplace(key.first, c->next_seq);
          if (!fresh) it->second = std::min(it->second, c->next_seq);
        }
        if (c->dirty && c->durable ? now - c->last_save >= kSaveEveryNs || !c->sync_acks.empty()
                                   : !c->sync_acks.empty()) {
          save(*c, now);
        }
        if (c->config.inactive_threshold.count() > 0 && c->waiting.empty() &&
            now - c->last_active > static_cast<std::uint64_t>(c->config.inactive_threshold.count())) {
          // A push consumer is in use while anyone subscribes to its deliver subject, whether
          // or not there is anything to deliver (as nats-server judges interest).
          auto listeners = c->push() ? impl->interest(c->config.deliver_subject) : Result<std::size_t>(std::size_t{0});
          if (listeners && listeners.value() > 0) {
            c->last_active = now;
          } else {
            inactive.push_back(key);
          }
        }
      }
      for (const auto& key : inactive) {
        log("consumer " + key.first + " > " + key.second + " removed after inactive_threshold");
        remove(key.first, key.second, /*files=*/true);
      }
      apply_retention();
      for (auto& [stream, w] : watchers) {
        const auto it = want.find(stream);
        std::lock_guard lock(w->mutex);
        w->from = it == want.end() ? 0 : it->second;
      }
      for (const auto& [stream, from] : want) {
        Watcher& w = watcher(stream);
        {
          std::lock_guard lock(w.mutex);
          w.from = from;
        }
        w.cv.notify_all();
      }
      std::unique_lock lock(engine.mutex_);
      if (engine.stopping_) break;
      if (wake_at > now && !engine.woken_ && engine.incoming_.empty()) {
        engine.wake_.wait_for(lock, std::chrono::nanoseconds(wake_at - now));
      }
    }
    for (auto& [key, c] : consumers) save(*c, monotonic_ns());
    for (auto& [name, w] : watchers) stop_watcher(*w);
    watchers.clear();
    api_sub.reset();
    ack_sub.reset();
    (void)conn->close();
  }
};

ConsumerEngine::ConsumerEngine(std::string bus_name, std::string state_dir, Log log)
    : bus_name_(std::move(bus_name)), state_dir_(std::move(state_dir)), log_(std::move(log)) {}

ConsumerEngine::~ConsumerEngine() { stop(); }

void ConsumerEngine::start() {
  if (started_.exchange(true)) return;
  thread_ = std::thread([this] {
    EngineLoop loop(*this);
    loop.run();
    std::lock_guard lock(mutex_);
    finished_ = true;
  });
}

void ConsumerEngine::request_stop() noexcept {
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
  }
  wake_.notify_all();
}

bool ConsumerEngine::finished() const noexcept {
  if (!started_.load()) return true;
  std::lock_guard lock(mutex_);
  return finished_;
}

void ConsumerEngine::stop() noexcept {
  request_stop();
  if (thread_.joinable()) thread_.join();
}

void ConsumerEngine::notify() noexcept {
  {
    std::lock_guard lock(mutex_);
    woken_ = true;
  }
  wake_.notify_one();
}

void ConsumerEngine::stream_removed(const std::string& stream) {
  {
    std::lock_guard lock(mutex_);
    removed_streams_.push_back(stream);
    woken_ = true;
  }
  wake_.notify_one();
  std::lock_guard lock(counts_mutex_);
  counts_.erase(stream);
}

std::optional<std::uint32_t> ConsumerEngine::consumer_count(const std::string& stream) const {
  std::lock_guard lock(counts_mutex_);
  if (!counts_known_) return std::nullopt;
  const auto it = counts_.find(stream);
  return it == counts_.end() ? 0 : it->second;
}

}  // namespace bus::detail::consumer

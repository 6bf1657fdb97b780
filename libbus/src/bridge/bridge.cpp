// bridge/bridge.cpp — bus::Bridge: a bus client and a nats.c client in one process, passing
// messages between them by rule.
//
// Threads: each export rule's bus subscription has its dispatch thread, which publishes to
// NATS (nats.c buffers; while NATS is away up to nats_reconnect_buffer, then refuses and we
// count). nats.c's one delivery thread runs every NATS callback, which publishes into the bus
// (never blocks: a full ring drops for that subscriber and counts). The interest thread keeps
// the NATS subscriptions equal to what the bus's subscribers want (bridge/interest.hpp) and
// re-opens the reply inbox when the bus's segment is replaced.
//
// Names on the wire:
//   bus -> NATS  subject: prefix + subject; reply R: "_INBOX.<bridge nuid>." + R, which the
//                bridge subscribes to on NATS and passes back to R on the bus; header
//                Bus-Origin: the bus's server_id.
//   NATS -> bus  subject: subject minus prefix; reply R: the bridge's direct bus inbox + "." + R
//                (bus responders answer straight into the bridge's ring), passed back to R on
//                NATS; records marked imported (MessageView::imported_by), never exported.
#include "bus/bridge.hpp"

#ifndef BUS_BRIDGE_SPIN_US
#define BUS_BRIDGE_SPIN_US 50  // an experiment knob (-DBUS_BRIDGE_SPIN_US=...)
#endif

#include <nats/nats.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstdio>
#include <map>
#include <mutex>
#include <optional>
#include <nlohmann/json.hpp>
#include <thread>
#include <tuple>

#include "bridge/interest.hpp"
#include "bridge/nats_msg.hpp"
#include "bridge/stream_links.hpp"
#include "bus/connection.hpp"
#include "client/connection_impl.hpp"
#include "client/inbox.hpp"
#include "client/subscription_impl.hpp"
#include "monitor/snapshot.hpp"
#include "os/process.hpp"
#include "subject/subject.hpp"

namespace bus {

using detail::bridge::NatsInterest;
using detail::bridge::NatsMsgPtr;

namespace {

constexpr std::string_view kBridgeClientPrefix = "bridge:";  // bus connection names of bridges
constexpr auto kInterestPoll = std::chrono::milliseconds(20);
// How often the bridge asks NATS which subjects it has subscribers for (its export interest):
// a new NATS subscriber starts getting this bus's messages within about this long.
constexpr auto kExportPoll = std::chrono::milliseconds(250);
// How long stop() waits for nats.c's threads to be done with the bridge: its closed callbacks
// (nats.c's callback thread) and the completion of every subscription (its delivery thread).
constexpr auto kCallbackDrainBound = std::chrono::seconds(5);
// The bridge's bus subscriptions spin this long after a message before they sleep: a futex
// wake-up costs a VM exit (~50 us) per hop, and a request/reply across has four such hops.
constexpr auto kBridgeSpin = std::chrono::microseconds(BUS_BRIDGE_SPIN_US);
SubscribeOptions bridge_subscribe_options() {
  SubscribeOptions o;
  o.spin_budget = kBridgeSpin;
  return o;
}

std::string nats_status_text(natsStatus s) { return natsStatus_GetText(s); }

}  // namespace

// ------------------------------------------------------------------------------------ Impl

class Bridge::Impl {
 public:
  explicit Impl(BridgeOptions options) : options_(std::move(options)) {
    for (const BridgeRule& r : options_.rules) rules_.push_back(std::make_unique<RuleState>(r));
  }
  ~Impl() { (void)stop(); }

  Status start();
  Status stop();
  bool running() const noexcept { return running_.load(std::memory_order_acquire); }
  bool callbacks_outstanding() const noexcept { return callbacks_outstanding_; }
  BridgeStats stats() const;

 private:
  struct RuleState {
    explicit RuleState(BridgeRule r) : rule(std::move(r)) {}
    BridgeRule rule;
    std::atomic<std::uint64_t> msgs{0}, bytes{0}, dropped{0}, too_large{0}, loops{0};
    std::atomic<std::uint64_t> slow_dropped{0};  // summed from the rule's NATS subscriptions
    // Export rules: a bus subscription per pattern NATS has interest in (the interest thread's),
    // and the list of those patterns, so a message two of them match is sent once.
    std::mutex subscriptions_mutex;  // bus_subscriptions: the interest thread changes it, stats() reads
    std::map<std::string, Subscription> bus_subscriptions;
    std::shared_ptr<const std::vector<std::string>> patterns = std::make_shared<std::vector<std::string>>();
    std::mutex patterns_mutex;
    std::atomic<std::uint64_t> retired_ring_dropped{0};  // of subscriptions no longer in place
  };
  /// What a nats.c callback is handed: which subscription it is and what it serves.
  struct Closure {
    Impl* self = nullptr;
    enum class Kind { interest, replies } kind = Kind::interest;
    NatsInterest interest;  // kind interest
    // Set by nats.c's delivery thread once the subscription is closed and its last callback
    // has returned (on_subscription_complete); until then the closure must stay.
    std::atomic<bool> complete{false};
  };
  struct NatsSub {
    natsSubscription* sub = nullptr;
    std::unique_ptr<Closure> closure;
  };

  void log(const std::string& line) const {
    if (options_.log) std::fprintf(stderr, "bus bridge %s: %s\n", options_.name.c_str(), line.c_str());
  }
  detail::ConnectionImpl& bus() const { return *detail::ConnectionAccess::impl(connection_); }

  Status connect_bus();
  Status connect_nats();
  bool nats_connected() const noexcept;
  Status open_bus_inbox();
  void export_message(RuleState& rule, const std::string& via, const MessageView& m);
  void import_message(const Closure& c, natsMsg* msg);
  void reply_to_bus(natsMsg* msg);
  void reply_to_nats(const MessageView& m);
  void interest_loop();
  void update_interest();
  /// Asks every NATS server for its subscriptions (CONNZ); nullopt when nobody answers.
  std::optional<std::vector<std::string>> poll_nats_interest();
  /// Puts the export rules' bus subscriptions in line with `nats_subjects` (nullopt: the rules'
  /// own patterns, everything they match). Called by the interest thread (and start()).
  Status update_exports(const std::optional<std::vector<std::string>>& nats_subjects);
  void update_proxies(const std::vector<detail::bridge::BusInterest>& interest, bool connected);
  void collect_drop_counts();
  std::string origin() const {
    std::lock_guard lock(identity_mutex_);
    return origin_;
  }

  static void on_nats_msg(natsConnection*, natsSubscription*, natsMsg* msg, void* closure) noexcept;
  const char* role_of(natsConnection* nc) const noexcept;  // " (fast connection)", ... or "" (main)
  static void on_disconnected(natsConnection* nc, void* closure) noexcept;
  static void on_reconnected(natsConnection* nc, void* closure) noexcept;
  static void on_closed(natsConnection* nc, void* closure) noexcept;
  static void on_subscription_complete(void* closure) noexcept;
  natsStatus subscribe_nats(NatsSub& s, natsConnection* nc, const std::string& subject, const std::string& group);
  void retire(NatsSub& s);
  static void on_error(natsConnection* nc, natsSubscription* sub, natsStatus err, void* closure) noexcept;

  BridgeOptions options_;
  std::vector<std::unique_ptr<RuleState>> rules_;
  std::vector<detail::bridge::ImportRule> import_rules_;  // with their index in rules_
  std::vector<std::size_t> import_rule_index_;

  Connection connection_;
  std::atomic<bool> running_{false};
  std::atomic<bool> stopping_{false};

  // Identity, refreshed when the bus's segment is replaced (under identity_mutex_).
  mutable std::mutex identity_mutex_;
  std::string origin_;  // Bus-Origin: the bus's server_id
  const detail::Attachment* inbox_attachment_ = nullptr;

  // The bus inbox NATS requesters are answered through (owned by the interest thread after start).
  std::unique_ptr<detail::SubscriptionImpl> inbox_;
  std::string inbox_prefix_;  // "_INBOX.<random>.<ring>-<incarnation>."; under identity_mutex_
  std::vector<Subscription> status_subscriptions_;

  std::vector<natsOptions*> nats_options_;
  natsConnection* nc_ = nullptr;         // main: plain exports, plain interest (connect_nats)
  natsConnection* nc_fast_ = nullptr;    // requests and replies, sent at once
  natsConnection* nc_queues_ = nullptr;  // queue-group interest
  /// Plain exports carry Bus-Origin too while another bridge serves this bus (it would take
  /// them for NATS's own otherwise); alone, they go bare, which halves NATS's work per message.
  std::atomic<bool> stamp_plain_{false};
  std::string nats_reply_prefix_;  // "_INBOX.<nuid>."
  NatsSub reply_sub_;
  std::atomic<std::uint64_t> disconnects_{0}, reconnects_{0}, replies_{0};
  std::atomic<bool> resubscribe_{false};
  std::atomic<int> in_callbacks_{0};
  // nats.c calls back from its own threads, after a close too: stop() waits (bounded) until
  // every connection made has had its closed callback and every subscription its completion.
  int connections_made_ = 0;
  std::atomic<int> closed_callbacks_{0};
  std::atomic<int> subscriptions_open_{0};
  bool callbacks_outstanding_ = false;  // the wait ran out: the Impl must not be freed

  // Interest subscriptions (the interest thread changes them; callbacks read plain_).
  std::map<std::pair<std::string, std::string>, NatsSub> interest_subs_;
  // Closures of unsubscribed NATS subscriptions: a callback may still be running with one, so
  // each is kept until nats.c reports the subscription complete.
  std::vector<std::unique_ptr<Closure>> retired_closures_;
  mutable std::mutex plain_mutex_;
  std::shared_ptr<const std::vector<std::string>> plain_ = std::make_shared<std::vector<std::string>>();
  std::uint64_t seen_generation_ = 0;
  bool proxies_for_connected_ = false;  // were the proxies computed with NATS connected?
  std::atomic<std::uint32_t> interest_count_{0};
  // Queue groups shared with NATS: a proxy subscription per (pattern, group) on the bus, so its
  // publishers leave the pick to NATS (kSubscriptionProxy). Only while NATS is connected.
  std::map<std::pair<std::string, std::string>, std::unique_ptr<detail::SubscriptionImpl>> proxies_;
  std::vector<detail::bridge::ImportRule> export_rules_;
  std::vector<std::string> proxy_patterns_;  // NATS subjects of our proxies (export interest)
  bool told_export_all_ = false;
  bool exporting_all_ = false;                   // export_all: the rules' patterns are subscribed
  std::atomic<bool> active_{true};               // not a standby (update_interest)

  std::vector<std::unique_ptr<detail::bridge::StreamLink>> stream_links_;

  std::mutex wake_mutex_;
  std::condition_variable wake_;
  std::thread interest_thread_;
};

// ------------------------------------------------------------------------------- starting

Status Bridge::Impl::start() {
  if (auto st = validate_bridge_options(options_); !st) return st;
  for (std::size_t i = 0; i < options_.rules.size(); ++i) {
    if (options_.rules[i].direction == BridgeDirection::import_from_nats) {
      import_rules_.push_back({options_.rules[i].pattern, options_.rules[i].prefix});
      import_rule_index_.push_back(i);
    } else {
      export_rules_.push_back({options_.rules[i].pattern, options_.rules[i].prefix});
    }
  }
  if (auto st = connect_bus(); !st) return st;
  if (auto st = connect_nats(); !st) {
    (void)connection_.close();
    return st;
  }
  if (auto st = open_bus_inbox(); !st) {
    (void)stop();
    return st;
  }
  // Exports: everything the rules match when told so; else the interest thread subscribes on
  // the bus for what NATS has interest in (poll_nats_interest).
  // (With export_all the interest thread subscribes the rules' own patterns, once it knows
  // whether this bridge is the active one of its name.)
  // Status on the bus: `bus req '$BUS.BRIDGE.<name>.STATUSZ' ''`; every bridge answers
  // $BUS.BRIDGE.STATUSZ (as every nats-server answers $SYS.REQ.SERVER.PING).
  for (const std::string& subject : {std::string("$BUS.BRIDGE.STATUSZ"), "$BUS.BRIDGE." + options_.name + ".STATUSZ"}) {
    auto status = connection_.subscribe(subject, [this](const MessageView& m) {
      if (!m.reply.empty()) (void)m.respond(bridge_stats_json(stats()));
    });
    if (!status) {
      (void)stop();
      return std::move(status).error();
    }
    status_subscriptions_.push_back(std::move(status).value());
  }
  for (const auto& rule : options_.streams) {
    auto link = detail::bridge::StreamLink::start(rule, options_, connection_, nc_, origin());
    if (!link) {
      (void)stop();
      return std::move(link).error();
    }
    stream_links_.push_back(std::move(link).value());
  }
  running_.store(true, std::memory_order_release);
  interest_thread_ = std::thread([this] { interest_loop(); });
  log("bridging bus '" + options_.bus_name + "' and NATS " + options_.nats_urls.front() +
      (options_.nats_urls.size() > 1 ? " (+" + std::to_string(options_.nats_urls.size() - 1) + ")" : std::string()));
  return {};
}

Status Bridge::Impl::connect_bus() {
  ConnectOptions co;
  co.name = std::string(kBridgeClientPrefix) + options_.name;
  co.control_timeout = std::chrono::seconds(2);
  co.max_reconnects = -1;  // a bridge outlives broker restarts, as any client may
  co.disconnected_cb = [this] { log("bus broker went away; reconnecting"); };
  co.reconnected_cb = [this] {
    log("bus broker is back");
    wake_.notify_all();
  };
  const auto deadline = std::chrono::steady_clock::now() + options_.wait_for_broker;
  for (;;) {
    auto c = Connection::connect(options_.bus_name, co);
    if (c) {
      connection_ = std::move(c).value();
      break;
    }
    if (c.error().code != Errc::broker_not_running || std::chrono::steady_clock::now() >= deadline) {
      return std::move(c).error();
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  // Every record we publish is an import: marked, so no bridge ever exports it again. The id
  // names us among the bus's clients (slot + 1: never 0).
  bus().set_origin(static_cast<std::uint16_t>(bus().attachment().slot % 0xFFFF + 1));
  std::lock_guard lock(identity_mutex_);
  origin_ = detail::monitor::server_id_of(bus().segment());
  return {};
}

Status Bridge::Impl::open_bus_inbox() {
  // The bus side of NATS requests: replies land straight in this ring (client/inbox.hpp).
  auto inbox = detail::open_direct_inbox(bus(), bridge_subscribe_options());
  if (!inbox) return std::move(inbox).error();
  inbox->subscription->start_dispatch([this](const MessageView& m) { reply_to_nats(m); });
  std::unique_ptr<detail::SubscriptionImpl> old;
  {
    std::lock_guard lock(identity_mutex_);
    old = std::move(inbox_);
    inbox_ = std::move(inbox->subscription);
    inbox_prefix_ = inbox->reply_prefix;
    inbox_attachment_ = &bus().attachment();
  }
  if (old) (void)old->unsubscribe();
  return {};
}

Status Bridge::Impl::connect_nats() {
  // Three connections to the same servers, each for what it is best at:
  //   main    plain exports, buffered (nats.c's flusher batches them), and the plain interest
  //           subscriptions; no echo, so our own exports never come back to us here
  //   fast    requests, replies both ways, and the reply subscription: sent at once (SendAsap;
  //           the flusher would add about a millisecond per hop); they carry Bus-Origin, which
  //           the main connection's subscriptions recognise
  //   queues  the queue-group interest subscriptions: NATS may pick ours for a message we
  //           exported (a group this bus shares), and hands it over here
  struct Role {
    natsConnection** nc;
    bool no_echo, asap;
    const char* suffix;
  };
  const Role roles[] = {{&nc_, true, false, ""}, {&nc_fast_, true, true, " fast"}, {&nc_queues_, false, false, " queues"}};
  for (const Role& role : roles) {
    natsOptions* o = nullptr;
    auto fail = [&](natsStatus s, const std::string& what) -> Status {
      if (o != nullptr) natsOptions_Destroy(o);
      return make_error(Errc::invalid_argument, "NATS " + what + ": " + nats_status_text(s));
    };
    natsStatus s = natsOptions_Create(&o);
    if (s != NATS_OK) return fail(s, "options");
    std::vector<const char*> urls;
    for (const auto& u : options_.nats_urls) urls.push_back(u.c_str());
    if ((s = natsOptions_SetServers(o, urls.data(), static_cast<int>(urls.size()))) != NATS_OK) return fail(s, "servers");
    const std::string name = "bus-bridge " + options_.name + role.suffix + " (bus " + options_.bus_name + ")";
    natsOptions_SetName(o, name.c_str());
    natsOptions_SetTimeout(o, options_.nats_connect_timeout.count());
    natsOptions_SetMaxReconnect(o, options_.nats_max_reconnects);
    natsOptions_SetReconnectWait(o, options_.nats_reconnect_wait.count());
    natsOptions_SetReconnectBufSize(o, static_cast<int>(std::min<std::uint64_t>(options_.nats_reconnect_buffer, 1u << 30)));
    natsOptions_SetNoEcho(o, role.no_echo);
    // The servers in the order given: the first is the preferred one (the local node, say).
    natsOptions_SetNoRandomize(o, true);
    natsOptions_SetSendAsap(o, role.asap);
    // A NATS that is down at start is retried in the background, as after a disconnect.
    // (With a callback, nats.c returns at once and connects in the background; without one it
    // would block here until it connects.)
    natsOptions_SetRetryOnFailedConnect(o, true, on_reconnected, this);
    natsOptions_SetDisconnectedCB(o, on_disconnected, this);
    natsOptions_SetReconnectedCB(o, on_reconnected, this);
    natsOptions_SetClosedCB(o, on_closed, this);
    natsOptions_SetErrorHandler(o, on_error, this);
    // One delivery thread for every subscription: order per subscription, no thread per subject.
    natsOptions_UseGlobalMessageDelivery(o, true);
    if (!options_.user.empty()) natsOptions_SetUserInfo(o, options_.user.c_str(), options_.password.c_str());
    if (!options_.token.empty()) natsOptions_SetToken(o, options_.token.c_str());
    if (!options_.creds_file.empty() &&
        (s = natsOptions_SetUserCredentialsFromFiles(o, options_.creds_file.c_str(), nullptr)) != NATS_OK) {
      return fail(s, "credentials '" + options_.creds_file + "'");
    }
    if (options_.tls || !options_.tls_ca.empty() || !options_.tls_cert.empty()) {
      if ((s = natsOptions_SetSecure(o, true)) != NATS_OK) return fail(s, "TLS");
      if (!options_.tls_ca.empty() && (s = natsOptions_LoadCATrustedCertificates(o, options_.tls_ca.c_str())) != NATS_OK) {
        return fail(s, "TLS CA '" + options_.tls_ca + "'");
      }
      if (!options_.tls_cert.empty() &&
          (s = natsOptions_LoadCertificatesChain(o, options_.tls_cert.c_str(), options_.tls_key.c_str())) != NATS_OK) {
        return fail(s, "TLS certificate '" + options_.tls_cert + "'");
      }
    }
    s = natsConnection_Connect(role.nc, o);
    if (s != NATS_OK && s != NATS_NOT_YET_CONNECTED) {
      if (*role.nc != nullptr) natsConnection_Destroy(*role.nc);
      *role.nc = nullptr;
      natsOptions_Destroy(o);
      return make_error(Errc::invalid_argument, "NATS connect to " + options_.nats_urls.front() + ": " + nats_status_text(s));
    }
    if (s == NATS_NOT_YET_CONNECTED && role.nc == &nc_) log("NATS not reachable yet; retrying in the background");
    ++connections_made_;  // it will have exactly one closed callback
    nats_options_.push_back(o);
  }
  // Replies from NATS responders to bus requesters come back here.
  natsInbox* inbox = nullptr;
  if (natsInbox_Create(&inbox) != NATS_OK) return make_error(Errc::resource_exhausted, "NATS inbox");
  nats_reply_prefix_ = std::string(inbox) + ".";
  natsInbox_Destroy(inbox);
  reply_sub_.closure = std::make_unique<Closure>();
  reply_sub_.closure->kind = Closure::Kind::replies;
  const natsStatus s = subscribe_nats(reply_sub_, nc_fast_, nats_reply_prefix_ + ">", "");
  if (s != NATS_OK) return make_error(Errc::resource_exhausted, "NATS reply subscription: " + nats_status_text(s));
  return {};
}

bool Bridge::Impl::nats_connected() const noexcept {
  for (natsConnection* nc : {nc_, nc_fast_, nc_queues_}) {
    if (nc == nullptr || natsConnection_Status(nc) != NATS_CONN_STATUS_CONNECTED) return false;
  }
  return true;
}

// -------------------------------------------------------------------------------- stopping

Status Bridge::Impl::stop() {
  if (stopping_.exchange(true)) return {};
  {
    std::lock_guard lock(wake_mutex_);
  }
  wake_.notify_all();
  if (interest_thread_.joinable()) interest_thread_.join();
  // Stream links first: what they sent gets its acknowledgements (bounded), the rest is
  // redelivered next time.
  for (auto& link : stream_links_) link->stop();
  // Bus side next: the bus picks its queue groups' members itself again; no new exports start.
  for (auto& [key, proxy] : proxies_) (void)proxy->unsubscribe();
  proxies_.clear();
  for (auto& r : rules_) {
    std::lock_guard lock(r->subscriptions_mutex);
    for (auto& [pattern, sub] : r->bus_subscriptions) (void)sub.unsubscribe();
  }
  for (auto& sub : status_subscriptions_) (void)sub.unsubscribe();
  if (inbox_) (void)inbox_->unsubscribe();
  if (nc_ != nullptr) {
    // What the exports gave nats.c reaches the server, within a bound.
    for (natsConnection* nc : {nc_, nc_fast_, nc_queues_}) {
      if (nc != nullptr && natsConnection_Status(nc) == NATS_CONN_STATUS_CONNECTED) (void)natsConnection_FlushTimeout(nc, 1000);
    }
    for (auto& [key, s] : interest_subs_) retire(s);
    interest_subs_.clear();
    if (reply_sub_.sub != nullptr) retire(reply_sub_);
  }
  for (natsConnection** nc : {&nc_, &nc_fast_, &nc_queues_}) {
    if (*nc == nullptr) continue;
    natsConnection_Close(*nc);
    natsConnection_Destroy(*nc);
    *nc = nullptr;
  }
  // nats.c's threads are done with us before what their callbacks use goes (bounded): the
  // callback thread runs a connection's closed callback after all its others, the delivery
  // thread a subscription's completion after its last message.
  const auto drain_deadline = std::chrono::steady_clock::now() + kCallbackDrainBound;
  auto drained = [&] {
    // acquire: pairs with the release decrements and increments at the end of on_closed,
    // on_subscription_complete and on_nats_msg, so nothing they did is still to come.
    return closed_callbacks_.load(std::memory_order_acquire) >= connections_made_ &&
           subscriptions_open_.load(std::memory_order_acquire) == 0 &&
           in_callbacks_.load(std::memory_order_acquire) == 0;
  };
  while (!drained() && std::chrono::steady_clock::now() < drain_deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  if (drained()) {
    retired_closures_.clear();
  } else {
    callbacks_outstanding_ = true;  // the closures and the Impl stay (Bridge::release_impl)
    log("a NATS callback is still outstanding after " + std::to_string(kCallbackDrainBound.count()) +
        " s; the bridge's state stays in memory");
  }
  for (natsOptions* o : nats_options_) natsOptions_Destroy(o);
  nats_options_.clear();
  inbox_.reset();
  stream_links_.clear();
  Status closed = connection_.close();
  if (running_.exchange(false, std::memory_order_acq_rel)) log("stopped");
  return closed;
}

// ---------------------------------------------------------------------------- bus -> NATS

void Bridge::Impl::export_message(RuleState& r, const std::string& via, const MessageView& m) {
  if (m.imported_by != 0) {  // it came from NATS: sending it back would loop
    r.loops.fetch_add(1, std::memory_order_relaxed);
    return;
  }
  if (detail::bridge::is_plumbing(m.subject)) return;  // bus inboxes, $SYS, $JS: this bus's own business
  if (!via.empty()) {
    // Several patterns of this rule may match the subject; the first passes the message on.
    std::shared_ptr<const std::vector<std::string>> patterns;
    {
      std::lock_guard lock(r.patterns_mutex);
      patterns = r.patterns;
    }
    if (patterns->size() > 1) {
      const std::size_t first = detail::bridge::first_plain_match(*patterns, m.subject);
      if (first < patterns->size() && (*patterns)[first] != via) return;
    }
  }
  // Each export pattern has one dispatch thread: its subject buffer is reused, no allocation.
  thread_local std::string subject;
  subject.assign(r.rule.prefix).append(m.subject);
  // A request goes at once, on the fast connection, marked (our main connection's plain
  // subscriptions see it); a plain message goes bare unless another bridge shares this bus.
  const bool request = !m.reply.empty();
  const bool stamp = request || stamp_plain_.load(std::memory_order_relaxed);
  natsStatus s;
  if (!stamp && m.headers.empty()) {
    // The common case, as a plain nats.c publisher sends it: no message object at all.
    s = natsConnection_Publish(nc_, subject.c_str(), m.data.data(), static_cast<int>(m.data.size()));
  } else {
    const std::string reply = request ? nats_reply_prefix_ + std::string(m.reply) : std::string();
    natsMsg* raw = nullptr;
    if (natsMsg_Create(&raw, subject.c_str(), request ? reply.c_str() : nullptr, m.data.data(),
                       static_cast<int>(m.data.size())) != NATS_OK) {
      r.dropped.fetch_add(1, std::memory_order_relaxed);
      return;
    }
    NatsMsgPtr msg(raw);
    detail::bridge::put_bus_headers(raw, m.headers, stamp ? origin() : std::string());
    s = natsConnection_PublishMsg(request ? nc_fast_ : nc_, raw);
  }
  if (s == NATS_OK) {
    r.msgs.fetch_add(1, std::memory_order_relaxed);
    r.bytes.fetch_add(m.data.size() + m.headers.size(), std::memory_order_relaxed);
  } else if (s == NATS_MAX_PAYLOAD) {
    r.too_large.fetch_add(1, std::memory_order_relaxed);
  } else {
    // NATS away past the reconnect buffer (NATS_INSUFFICIENT_BUFFER), or closed for good.
    if (r.dropped.fetch_add(1, std::memory_order_relaxed) == 0) {
      log("export '" + r.rule.pattern + "': dropping while NATS is unreachable (" + nats_status_text(s) + ")");
    }
  }
}

void Bridge::Impl::reply_to_nats(const MessageView& m) {
  // A bus responder answered a NATS requester: the subject is our inbox prefix + its reply.
  std::string prefix;
  {
    std::lock_guard lock(identity_mutex_);
    prefix = inbox_prefix_;
  }
  if (m.subject.size() <= prefix.size() || m.subject.substr(0, prefix.size()) != prefix) return;
  const std::string to(m.subject.substr(prefix.size()));
  if (to.size() > nats_reply_prefix_.size() && to.compare(0, nats_reply_prefix_.size(), nats_reply_prefix_) == 0) {
    // The request came from this very bus (a queue group shared with NATS picked a member
    // here): the answer goes straight back, as NATS would not echo it to our own connection.
    if (bus().publish(std::string_view(to).substr(nats_reply_prefix_.size()), {}, m.headers, m.data)) {
      replies_.fetch_add(1, std::memory_order_relaxed);
    }
    return;
  }
  const std::string reply = m.reply.empty() ? std::string() : nats_reply_prefix_ + std::string(m.reply);
  natsMsg* raw = nullptr;
  if (natsMsg_Create(&raw, to.c_str(), reply.empty() ? nullptr : reply.c_str(), m.data.data(),
                     static_cast<int>(m.data.size())) != NATS_OK) {
    return;
  }
  NatsMsgPtr msg(raw);
  detail::bridge::put_bus_headers(raw, m.headers, origin());
  if (natsConnection_PublishMsg(nc_fast_, raw) == NATS_OK) replies_.fetch_add(1, std::memory_order_relaxed);
}

// ---------------------------------------------------------------------------- NATS -> bus

void Bridge::Impl::on_nats_msg(natsConnection*, natsSubscription*, natsMsg* msg, void* closure) noexcept {
  NatsMsgPtr owned(msg);
  auto* c = static_cast<Closure*>(closure);
  Impl* self = c->self;
  self->in_callbacks_.fetch_add(1, std::memory_order_acq_rel);
  try {
    if (!self->stopping_.load(std::memory_order_acquire)) {
      if (c->kind == Closure::Kind::replies) {
        self->reply_to_bus(msg);
      } else {
        self->import_message(*c, msg);
      }
    }
  } catch (...) {
    // Out of memory building a message: that message is lost (and nats.c's thread lives on).
  }
  self->in_callbacks_.fetch_sub(1, std::memory_order_acq_rel);
}

void Bridge::Impl::import_message(const Closure& c, natsMsg* msg) {
  RuleState& r = *rules_[import_rule_index_[c.interest.rule]];
  const std::string_view subject = natsMsg_GetSubject(msg);
  std::string from;
  const std::string headers = detail::bridge::bus_headers_of(msg, from);
  if (c.interest.group.empty() && !from.empty() && from == origin()) {
    // Our own bus's message, back from NATS: its plain subscribers had it already. (On a queue
    // subscription it is NATS's pick for a group this bus shares: a member here takes it.)
    r.loops.fetch_add(1, std::memory_order_relaxed);
    return;
  }
  if (c.interest.group.empty()) {
    // NATS delivers a message once per matching subscription: the first plain one passes it on.
    std::shared_ptr<const std::vector<std::string>> plain;
    {
      std::lock_guard lock(plain_mutex_);
      plain = plain_;
    }
    const std::size_t first = detail::bridge::first_plain_match(*plain, subject);
    if (first < plain->size() && (*plain)[first] != c.interest.subject) return;
  }
  if (subject.size() < r.rule.prefix.size() || subject.substr(0, r.rule.prefix.size()) != r.rule.prefix) return;
  const std::string_view bus_subject = subject.substr(r.rule.prefix.size());
  std::string reply;
  if (const char* nats_reply = natsMsg_GetReply(msg); nats_reply != nullptr && *nats_reply != '\0') {
    std::lock_guard lock(identity_mutex_);
    reply = inbox_prefix_ + nats_reply;
  }
  const std::string_view data(natsMsg_GetData(msg), static_cast<std::size_t>(natsMsg_GetDataLength(msg)));
  const detail::DeliveryScope scope{c.interest.group.empty(), c.interest.group};
  auto sent = bus().publish(bus_subject, reply, headers, data, nullptr, {}, &scope);
  if (sent) {
    r.msgs.fetch_add(1, std::memory_order_relaxed);
    r.bytes.fetch_add(data.size() + headers.size(), std::memory_order_relaxed);
  } else if (sent.error().code == Errc::payload_too_large) {
    r.too_large.fetch_add(1, std::memory_order_relaxed);
  } else if (r.dropped.fetch_add(1, std::memory_order_relaxed) == 0) {
    log("import '" + r.rule.pattern + "': " + sent.error().message);
  }
}

void Bridge::Impl::reply_to_bus(natsMsg* msg) {
  // A NATS responder (or the server: no responders) answered a bus requester.
  const std::string_view subject = natsMsg_GetSubject(msg);
  if (subject.size() <= nats_reply_prefix_.size()) return;
  const std::string_view to = subject.substr(nats_reply_prefix_.size());
  std::string from;
  const std::string headers = detail::bridge::bus_headers_of(msg, from);
  std::string reply;
  if (const char* nats_reply = natsMsg_GetReply(msg); nats_reply != nullptr && *nats_reply != '\0') {
    std::lock_guard lock(identity_mutex_);
    reply = inbox_prefix_ + nats_reply;
  }
  const std::string_view data(natsMsg_GetData(msg), static_cast<std::size_t>(natsMsg_GetDataLength(msg)));
  if (bus().publish(to, reply, headers, data)) replies_.fetch_add(1, std::memory_order_relaxed);
}

// ---------------------------------------------------------------------------------- interest

void Bridge::Impl::interest_loop() {
  auto next_counts = std::chrono::steady_clock::now();
  auto next_export_poll = std::chrono::steady_clock::now();
  while (!stopping_.load(std::memory_order_acquire)) {
    if (&bus().attachment() != inbox_attachment_ && !bus().segment().superseded()) {
      // The broker replaced the segment: the inbox's address is gone; our identity changed.
      {
        std::lock_guard lock(identity_mutex_);
        origin_ = detail::monitor::server_id_of(bus().segment());
      }
      if (auto st = open_bus_inbox(); !st) log("reply inbox: " + st.error().message);
      proxies_.clear();  // they named the old segment's slots
      seen_generation_ = 0;
    }
    update_interest();
    if (options_.export_all && !export_rules_.empty() && active_.load(std::memory_order_relaxed) != exporting_all_) {
      // Export everything while active, nothing while standing by.
      exporting_all_ = active_.load(std::memory_order_relaxed);
      if (auto st = update_exports(exporting_all_ ? std::nullopt : std::optional<std::vector<std::string>>(std::vector<std::string>{}));
          !st) {
        log("exports: " + st.error().message);
      }
    }
    if (!options_.export_all && !export_rules_.empty() && std::chrono::steady_clock::now() >= next_export_poll) {
      auto subjects = poll_nats_interest();
      if (!subjects && nats_connected()) {
        // No server answered CONNZ (an account without the system account's imports): export
        // everything the rules match, as a bridge that cannot see interest must.
        if (!told_export_all_) log("NATS does not answer $SYS.REQ.ACCOUNT.PING.CONNZ: exporting everything the rules match");
        told_export_all_ = true;
      }
      if (!active_.load(std::memory_order_relaxed)) subjects.emplace();  // a standby sends nothing
      if (subjects || nats_connected()) {
        if (auto st = update_exports(subjects); !st) log("exports: " + st.error().message);
      }
      next_export_poll = std::chrono::steady_clock::now() + kExportPoll;
    }
    if (std::chrono::steady_clock::now() >= next_counts) {
      collect_drop_counts();
      next_counts = std::chrono::steady_clock::now() + std::chrono::seconds(1);
    }
    std::unique_lock lock(wake_mutex_);
    wake_.wait_for(lock, kInterestPoll, [this] { return stopping_.load(std::memory_order_acquire); });
  }
}

void Bridge::Impl::update_interest() {
  const detail::Segment& segment = bus().segment();
  const bool connected = nats_connected();
  // Relaxed: a change counter; the snapshot below reads what changed.
  const std::uint64_t generation = segment.header()->registry_generation.load(std::memory_order_relaxed);
  if (generation == seen_generation_ && connected == proxies_for_connected_ && !resubscribe_.exchange(false)) return;
  seen_generation_ = generation;
  proxies_for_connected_ = connected;
  const auto snap = detail::monitor::take_snapshot(segment, options_.bus_name);
  std::vector<std::uint32_t> bridges;  // client slots of bridges (ours included): not interest
  // Bridges of our name on this bus are one bridge, active and standbys: the one in the lowest
  // client slot carries the traffic; when it dies (the broker reaps it), the next takes over.
  const std::string our_name = std::string(kBridgeClientPrefix) + options_.name;
  const std::uint32_t our_slot = bus().attachment().slot;
  bool active = true;
  for (const auto& c : snap.clients) {
    if (c.name.substr(0, kBridgeClientPrefix.size()) != kBridgeClientPrefix) continue;
    bridges.push_back(c.cid);
    if (c.alive && c.name == our_name && c.cid < our_slot) active = false;
  }
  if (active != active_.load(std::memory_order_relaxed)) {
    log(active ? "active (the bridge of this name before us is gone)"
               : "standing by: another bridge named '" + options_.name + "' serves this bus");
    active_.store(active, std::memory_order_relaxed);
  }
  stamp_plain_.store(bridges.size() > 1, std::memory_order_relaxed);  // we are one of them
  std::vector<detail::bridge::BusInterest> interest;
  for (const auto& s : snap.subscriptions) {
    if (!active) break;  // a standby wants nothing from NATS
    if (s.draining || !s.owner_live) continue;
    if (std::find(bridges.begin(), bridges.end(), s.owner_cid) != bridges.end()) continue;
    interest.push_back({s.pattern, s.queue_group});
  }
  const auto wanted = detail::bridge::nats_interest(interest, import_rules_);
  std::map<std::pair<std::string, std::string>, const NatsInterest*> want;
  for (const auto& w : wanted) want.emplace(std::make_pair(w.subject, w.group), &w);
  // Subscribe what is new first, then drop what is gone: a subject whose covering pattern
  // changes stays covered meanwhile (the plain_ list decides who passes a message on).
  for (const auto& [key, w] : want) {
    if (interest_subs_.count(key) != 0) continue;
    NatsSub s;
    s.closure = std::make_unique<Closure>();
    s.closure->interest = *w;
    const natsStatus st = subscribe_nats(s, w->group.empty() ? nc_ : nc_queues_, w->subject, w->group);
    if (st != NATS_OK) {
      log("NATS subscribe '" + w->subject + "': " + nats_status_text(st));
      seen_generation_ = 0;  // try again next round
      continue;
    }
    interest_subs_.emplace(key, std::move(s));
  }
  for (auto it = interest_subs_.begin(); it != interest_subs_.end();) {
    if (want.count(it->first) != 0) {
      ++it;
      continue;
    }
    retire(it->second);
    it = interest_subs_.erase(it);
  }
  // acquire: pairs with the release store in on_subscription_complete (its last callback is over).
  std::erase_if(retired_closures_, [](const auto& c) { return c->complete.load(std::memory_order_acquire); });
  auto plain = std::make_shared<std::vector<std::string>>();
  for (const auto& [key, s] : interest_subs_) {
    if (key.second.empty()) plain->push_back(key.first);
  }
  {
    std::lock_guard lock(plain_mutex_);
    plain_ = std::move(plain);
  }
  interest_count_.store(static_cast<std::uint32_t>(interest_subs_.size()), std::memory_order_relaxed);
  update_proxies(interest, connected);
}

void Bridge::Impl::update_proxies(const std::vector<detail::bridge::BusInterest>& interest, bool connected) {
  // A queue group on subjects this bridge both exports and imports (same prefix) is one group
  // with NATS's members: the bus leaves the pick to NATS. While NATS is away, the bus picks
  // among its own members again (no proxies), so local work goes on.
  std::map<std::pair<std::string, std::string>, bool> want;
  if (connected) {
    for (const auto& sub : interest) {
      if (sub.group.empty() || detail::bridge::is_plumbing(sub.pattern)) continue;
      for (const auto& in : import_rules_) {
        for (const auto& out : export_rules_) {
          if (in.prefix != out.prefix) continue;
          const auto shared = detail::bridge::intersect(sub.pattern, in.pattern);
          if (!shared) continue;
          if (auto both = detail::bridge::intersect(*shared, out.pattern)) want[{*both, sub.group}] = true;
        }
      }
    }
  }
  for (auto it = proxies_.begin(); it != proxies_.end();) {
    if (want.count(it->first) != 0) {
      ++it;
      continue;
    }
    (void)it->second->unsubscribe();
    it = proxies_.erase(it);
  }
  for (const auto& [key, unused] : want) {
    if (proxies_.count(key) != 0) continue;
    SubscribeOptions so;
    so.queue_group = key.second;
    auto made = bus().subscribe(key.first, so, /*proxy=*/true);
    if (!made) {
      log("queue group '" + key.second + "' on '" + key.first + "': " + made.error().message);
      seen_generation_ = 0;  // try again next round
      continue;
    }
    proxies_.emplace(key, std::move(made).value());
  }
  // What our proxies stand for must be exported: that is how the group's messages reach NATS.
  std::vector<std::string> patterns;
  for (const auto& [key, proxy] : proxies_) patterns.push_back(key.first);
  proxy_patterns_ = std::move(patterns);
}

std::optional<std::vector<std::string>> Bridge::Impl::poll_nats_interest() {
  if (!nats_connected()) return std::nullopt;
  // Our own connections' subscriptions are this bus's interest, not NATS's.
  std::vector<detail::bridge::NatsClientId> own;
  for (natsConnection* nc : {nc_, nc_fast_, nc_queues_}) {
    uint64_t cid = 0;
    char server[128] = {0};
    if (natsConnection_GetClientID(nc, &cid) == NATS_OK &&
        natsConnection_GetConnectedServerId(nc, server, sizeof server) == NATS_OK) {
      own.push_back({server, cid});
    }
  }
  natsInbox* inbox = nullptr;
  if (natsInbox_Create(&inbox) != NATS_OK) return std::nullopt;
  const std::string reply(inbox);
  natsInbox_Destroy(inbox);
  natsSubscription* sub = nullptr;
  if (natsConnection_SubscribeSync(&sub, nc_, reply.c_str()) != NATS_OK) return std::nullopt;
  static constexpr const char kAsk[] = R"({"subscriptions_detail":true,"limit":100000})";
  std::optional<std::vector<std::string>> subjects;
  if (natsConnection_PublishRequest(nc_, "$SYS.REQ.ACCOUNT.PING.CONNZ", reply.c_str(), kAsk,
                                    static_cast<int>(sizeof kAsk - 1)) == NATS_OK) {
    // Every server answers for its own connections: gather until they have gone quiet.
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(1);
    int64_t wait_ms = 500;  // the first answer may take a round trip across the cluster
    natsMsg* m = nullptr;
    while (std::chrono::steady_clock::now() < deadline &&
           natsSubscription_NextMsg(&m, sub, wait_ms) == NATS_OK) {
      NatsMsgPtr owned(m);
      if (natsMsg_IsNoResponders(m)) break;
      auto got = detail::bridge::connz_subjects(
          std::string_view(natsMsg_GetData(m), static_cast<std::size_t>(natsMsg_GetDataLength(m))), own);
      if (got) {
        if (!subjects) subjects.emplace();
        subjects->insert(subjects->end(), got->begin(), got->end());
      }
      wait_ms = 50;
    }
  }
  natsSubscription_Unsubscribe(sub);
  natsSubscription_Destroy(sub);
  return subjects;
}

Status Bridge::Impl::update_exports(const std::optional<std::vector<std::string>>& nats_subjects) {
  Status result;
  for (auto& rule : rules_) {
    if (rule->rule.direction != BridgeDirection::export_to_nats) continue;
    RuleState& r = *rule;
    std::vector<std::string> wanted;
    if (!nats_subjects) {
      wanted.push_back(r.rule.pattern);
    } else {
      std::vector<std::string> subjects = *nats_subjects;
      for (const auto& p : proxy_patterns_) subjects.push_back(r.rule.prefix + p);
      wanted = detail::bridge::export_interest(subjects, {r.rule.pattern, r.rule.prefix});
    }
    std::lock_guard subscriptions_lock(r.subscriptions_mutex);
    for (const auto& pattern : wanted) {
      if (r.bus_subscriptions.count(pattern) != 0) continue;
      RuleState* rp = &r;
      auto sub = connection_.subscribe(
          pattern, [this, rp, pattern](const MessageView& m) { export_message(*rp, pattern, m); },
          bridge_subscribe_options());
      if (!sub) {
        result = make_error(sub.error().code, "export '" + pattern + "': " + sub.error().message);
        continue;
      }
      r.bus_subscriptions.emplace(pattern, std::move(sub).value());
    }
    for (auto it = r.bus_subscriptions.begin(); it != r.bus_subscriptions.end();) {
      if (std::find(wanted.begin(), wanted.end(), it->first) != wanted.end()) {
        ++it;
        continue;
      }
      r.retired_ring_dropped.fetch_add(it->second.dropped_count(), std::memory_order_relaxed);
      (void)it->second.unsubscribe();
      it = r.bus_subscriptions.erase(it);
    }
    auto patterns = std::make_shared<std::vector<std::string>>();
    for (const auto& [pattern, sub] : r.bus_subscriptions) patterns->push_back(pattern);
    std::lock_guard patterns_lock(r.patterns_mutex);
    r.patterns = std::move(patterns);
  }
  return result;
}

void Bridge::Impl::collect_drop_counts() {
  std::vector<std::uint64_t> slow(rules_.size(), 0);
  for (const auto& [key, s] : interest_subs_) {
    int64_t dropped = 0;
    if (natsSubscription_GetDropped(s.sub, &dropped) == NATS_OK && dropped > 0) {
      slow[import_rule_index_[s.closure->interest.rule]] += static_cast<std::uint64_t>(dropped);
    }
  }
  for (std::size_t i = 0; i < rules_.size(); ++i) {
    if (rules_[i]->rule.direction == BridgeDirection::import_from_nats) {
      // Monotonic across subscriptions that come and go: never lower than what was shown.
      const std::uint64_t before = rules_[i]->slow_dropped.load(std::memory_order_relaxed);
      if (slow[i] > before) rules_[i]->slow_dropped.store(slow[i], std::memory_order_relaxed);
    }
  }
}

// ------------------------------------------------------------------------ nats.c callbacks

const char* Bridge::Impl::role_of(natsConnection* nc) const noexcept {
  if (nc == nc_fast_) return " (fast connection)";
  if (nc == nc_queues_) return " (queues connection)";
  return "";
}

void Bridge::Impl::on_disconnected(natsConnection* nc, void* closure) noexcept {
  auto* self = static_cast<Impl*>(closure);
  self->disconnects_.fetch_add(1, std::memory_order_relaxed);
  if (!self->stopping_.load(std::memory_order_acquire)) {
    self->log(std::string("NATS disconnected") + self->role_of(nc) + "; buffering up to " +
              std::to_string(self->options_.nats_reconnect_buffer) + " bytes while reconnecting");
  }
}

void Bridge::Impl::on_reconnected(natsConnection* nc, void* closure) noexcept {
  auto* self = static_cast<Impl*>(closure);
  self->reconnects_.fetch_add(1, std::memory_order_relaxed);
  char url[256] = {0};
  natsConnection_GetConnectedUrl(nc, url, sizeof url);
  self->log(std::string("NATS reconnected to ") + url + self->role_of(nc));
}

void Bridge::Impl::on_closed(natsConnection* nc, void* closure) noexcept {
  auto* self = static_cast<Impl*>(closure);
  if (!self->stopping_.load(std::memory_order_acquire)) {
    self->log(std::string("NATS connection closed for good") + self->role_of(nc));
  }
  // release: pairs with the acquire in stop(); the last touch of self, which may go right after.
  self->closed_callbacks_.fetch_add(1, std::memory_order_release);
}

void Bridge::Impl::on_subscription_complete(void* closure) noexcept {
  auto* c = static_cast<Closure*>(closure);
  Impl* self = c->self;
  // release: pairs with the acquire in update_interest's sweep; after it c may be freed.
  c->complete.store(true, std::memory_order_release);
  // release: pairs with the acquire in stop(); after it self may be freed.
  self->subscriptions_open_.fetch_sub(1, std::memory_order_release);
}

natsStatus Bridge::Impl::subscribe_nats(NatsSub& s, natsConnection* nc, const std::string& subject, const std::string& group) {
  s.closure->self = this;
  natsStatus st = group.empty() ? natsConnection_Subscribe(&s.sub, nc, subject.c_str(), on_nats_msg, s.closure.get())
                                : natsConnection_QueueSubscribe(&s.sub, nc, subject.c_str(), group.c_str(), on_nats_msg,
                                                                s.closure.get());
  if (st != NATS_OK) return st;
  subscriptions_open_.fetch_add(1, std::memory_order_relaxed);
  if (natsSubscription_SetOnCompleteCB(s.sub, on_subscription_complete, s.closure.get()) != NATS_OK) {
    // Closed already (its connection closed in between): no completion will come, so the
    // closure stays until the bridge goes.
    subscriptions_open_.fetch_sub(1, std::memory_order_relaxed);
  }
  return NATS_OK;
}

void Bridge::Impl::retire(NatsSub& s) {
  natsSubscription_Unsubscribe(s.sub);
  natsSubscription_Destroy(s.sub);
  s.sub = nullptr;
  retired_closures_.push_back(std::move(s.closure));
}

void Bridge::Impl::on_error(natsConnection*, natsSubscription* sub, natsStatus err, void* closure) noexcept {
  auto* self = static_cast<Impl*>(closure);
  if (err == NATS_SLOW_CONSUMER) return;  // counted per rule (collect_drop_counts)
  const char* subject = sub != nullptr ? natsSubscription_GetSubject(sub) : nullptr;
  self->log(std::string("NATS error") + (subject != nullptr ? std::string(" on '") + subject + "'" : std::string()) +
            ": " + nats_status_text(err));
}

// ---------------------------------------------------------------------------------- stats

BridgeStats Bridge::Impl::stats() const {
  BridgeStats s;
  s.name = options_.name;
  s.bus_name = options_.bus_name;
  if (nc_ != nullptr) {
    s.nats_connected = nats_connected();
    char url[256] = {0};
    if (s.nats_connected && natsConnection_GetConnectedUrl(nc_, url, sizeof url) == NATS_OK) s.nats_url = url;
  }
  s.active = active_.load(std::memory_order_relaxed);
  s.disconnects = disconnects_.load(std::memory_order_relaxed);
  s.reconnects = reconnects_.load(std::memory_order_relaxed);
  s.nats_subscriptions = interest_count_.load(std::memory_order_relaxed);
  s.replies = replies_.load(std::memory_order_relaxed);
  for (const auto& r : rules_) {
    BridgeRuleStats rs;
    rs.rule = r->rule;
    rs.msgs = r->msgs.load(std::memory_order_relaxed);
    rs.bytes = r->bytes.load(std::memory_order_relaxed);
    rs.dropped = r->dropped.load(std::memory_order_relaxed);
    rs.too_large = r->too_large.load(std::memory_order_relaxed);
    rs.loops = r->loops.load(std::memory_order_relaxed);
    rs.slow_dropped = r->slow_dropped.load(std::memory_order_relaxed);
    rs.ring_dropped = r->retired_ring_dropped.load(std::memory_order_relaxed);
    {
      std::lock_guard lock(r->subscriptions_mutex);
      for (const auto& [pattern, sub] : r->bus_subscriptions) rs.ring_dropped += sub.dropped_count();
    }
    s.rules.push_back(std::move(rs));
  }
  for (const auto& link : stream_links_) s.streams.push_back(link->stats());
  return s;
}

// ------------------------------------------------------------------------- public surface

Bridge::Bridge() noexcept = default;
Bridge::Bridge(Bridge&&) noexcept = default;

Bridge& Bridge::operator=(Bridge&& other) noexcept {
  if (this != &other) {
    (void)stop();
    release_impl();
    impl_ = std::move(other.impl_);
  }
  return *this;
}

Bridge::~Bridge() {
  (void)stop();
  release_impl();
}

void Bridge::release_impl() noexcept {
  // A nats.c thread that never let go of the bridge (stop() waited its bound) may still call
  // into it: its state is left in memory rather than freed under that thread.
  if (impl_ && impl_->callbacks_outstanding()) (void)impl_.release();
  impl_.reset();
}

Result<Bridge> Bridge::start(const BridgeOptions& options) {
  Bridge b;
  b.impl_ = std::make_unique<Impl>(options);
  // A failed start is stopped by ~Bridge, which keeps what nats.c may still call into.
  if (auto st = b.impl_->start(); !st) return std::move(st).error();
  return b;
}

Status Bridge::stop() {
  if (!impl_) return {};
  return impl_->stop();
}

bool Bridge::running() const noexcept { return impl_ && impl_->running(); }

BridgeStats Bridge::stats() const { return impl_ ? impl_->stats() : BridgeStats{}; }

}  // namespace bus

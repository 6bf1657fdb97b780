// monitor/broker_monitor.cpp — see broker_monitor.hpp.
#include "monitor/broker_monitor.hpp"

#include <unistd.h>

#include <cstring>
#include <random>

#include "client/connection_impl.hpp"
#include "monitor/accounting.hpp"
#include "monitor/endpoints.hpp"
#include "monitor/http_server.hpp"
#include "monitor/snapshot.hpp"
#include "os/process.hpp"
#include "shm/shared_text.hpp"

namespace bus::detail::monitor {
namespace {

using nlohmann::json;

// NATS's subjects: there is one account, NATS's global one ($G).
constexpr const char* kConnectSubject = "$SYS.ACCOUNT.$G.CONNECT";
constexpr const char* kDisconnectSubject = "$SYS.ACCOUNT.$G.DISCONNECT";
constexpr const char* kSlowConsumerSubject = "$SYS.ACCOUNT.$G.SLOW_CONSUMER";  // ours
// A publisher with no connection yet (or a stuck one) keeps at most this many events.
constexpr std::size_t kMaxQueuedEvents = 4096;

std::string event_id() {
  static thread_local std::mt19937_64 rng{std::random_device{}()};
  static const char digits[] = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ";
  std::string id(22, '0');
  for (char& c : id) c = digits[rng() % 36];
  return id;
}

/// The broker's own clients (event publisher, consumer engine): no events for them.
// The slot's name (the broker wrote it when it admitted the client: read it as plain bytes),
// up to its NUL or the field's last byte.
std::string_view client_name(const ClientLayout& c) { return {c.name, ::strnlen(c.name, sizeof c.name - 1)}; }

bool internal_client(const ClientLayout& c) {
  return c.pid.load(std::memory_order_relaxed) == static_cast<std::uint32_t>(::getpid()) &&
         is_internal_client_name(client_name(c));
}

json client_json(const ClientLayout& c, std::uint32_t cid) {
  const std::uint32_t pid = c.pid.load(std::memory_order_relaxed);
  return json{{"start", time_text(c.connected_unix_ns)},
              {"id", cid},
              {"pid", pid},
              {"name", client_name(c)},
              {"lang", "C++"},
              {"ver", bus_version()},
              {"kind", "Client"},
              {"client_type", "shm"}};
}

}  // namespace

const char* to_string(DisconnectReason r) noexcept {
  switch (r) {
    case DisconnectReason::closed: return "closed";
    case DisconnectReason::died: return "died";
    case DisconnectReason::evicted: return "evicted";
  }
  return "unknown";
}

BrokerMonitor::BrokerMonitor(const BrokerOptions& options, Segment& segment, Log log)
    : options_(options), segment_(segment), log_(std::move(log)) {}

BrokerMonitor::~BrokerMonitor() {
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
  }
  wake_.notify_all();
  if (publisher_.joinable()) publisher_.join();
  if (http_) http_->stop();
}

Status BrokerMonitor::bind() {
  if (options_.http.empty()) return {};
  auto address = parse_http_address(options_.http);
  if (!address) return std::move(address).error();
  http_ = std::make_unique<HttpServer>(options_.bus_name, segment_, [this]() -> Result<std::vector<StreamInfo>> {
    // Not mutex_: the event loop takes that one to post events, and this waits for the loop.
    std::lock_guard lock(connection_mutex_);
    if (!connection_) return make_error(Errc::broker_gone, "the monitor is not connected to the bus yet");
    return Streams(*connection_).list();
  });
  auto port = http_->bind(address->first, address->second);
  if (!port) return std::move(port).error();
  http_port_ = port.value();
  http_host_ = address->first;
  return {};
}

Status BrokerMonitor::open() {
  broker_started(segment_);
  slow_episode_.assign(segment_.config().max_subscriptions, false);
  // Ours, or 0: an adopted segment still names the previous broker's port.
  segment_.header()->totals.http_port.store(http_port_, std::memory_order_relaxed);
  if (!http_) return {};
  if (auto st = http_->serve(); !st) return st;
  log_("monitoring on http://" + http_host_ + ":" + std::to_string(http_port_) +
       " (/varz /connz /subsz /jsz /healthz /metrics)");
  return {};
}

std::string BrokerMonitor::server_id() const {
  // From the segment each time: events made during adoption come before open().
  return server_id_of(segment_);
}

std::string BrokerMonitor::server_json_text() const {
  return json{{"name", options_.bus_name},
              {"host", "shm"},
              {"id", server_id()},
              {"ver", bus_version()},
              {"seq", event_seq_},
              {"time", time_text(realtime_ns())}}
      .dump();
}

void BrokerMonitor::post(std::string subject, std::string body) {
  {
    std::lock_guard lock(mutex_);
    if (queue_.size() >= kMaxQueuedEvents) {
      queue_.pop_front();
      ++events_lost_;
    }
    queue_.push_back({std::move(subject), std::move(body)});
  }
  wake_.notify_one();
}

void BrokerMonitor::start() {
  json startup{{"type", "io.bus.advisory.v1.server_startup"},
               {"id", event_id()},
               {"timestamp", time_text(realtime_ns())},
               {"server", json::parse(server_json_text())},
               {"pid", ::getpid()},
               {"adopted", segment_.header()->broker_epoch.load(std::memory_order_relaxed) > 1}};
  ++event_seq_;
  post("$SYS.SERVER." + server_id() + ".STARTUP", startup.dump());
  next_statsz_ns_ = monotonic_ns();  // the first STATSZ on the first tick, as nats-server sends one at start
  publisher_ = std::thread([this] { publisher_main(); });
}

void BrokerMonitor::client_connected(std::uint32_t slot) {
  client_admitted(segment_, slot);
  const ClientLayout* c = segment_.client(slot);
  if (c == nullptr || internal_client(*c)) return;
  ++event_seq_;
  json e{{"type", "io.nats.server.advisory.v1.client_connect"},
         {"id", event_id()},
         {"timestamp", time_text(realtime_ns())},
         {"server", json::parse(server_json_text())},
         {"client", client_json(*c, slot)}};
  post(kConnectSubject, e.dump());
}

void BrokerMonitor::client_leaving(std::uint32_t slot, bool misbehaved) {
  const ClientLayout* c = segment_.client(slot);
  if (c == nullptr) return;
  // Before client_departed(): the slot's subscriptions still count for it (they are being
  // removed, not recycled yet).
  const DeliveryTally received_by_client = client_delivery_tally(segment_, slot);
  const PublishTally sent_by_client = client_departed(segment_, slot);
  if (internal_client(*c)) return;
  // [A9] acquire: pairs with [R9], the client's release of goodbye in close() before it hung up.
  const DisconnectReason reason = c->goodbye.load(std::memory_order_acquire) != 0 ? DisconnectReason::closed
                                  : misbehaved                                      ? DisconnectReason::evicted
                                                                                    : DisconnectReason::died;
  ++event_seq_;
  json client = client_json(*c, slot);
  client["stop"] = time_text(realtime_ns());
  json e{{"type", "io.nats.server.advisory.v1.client_disconnect"},
         {"id", event_id()},
         {"timestamp", time_text(realtime_ns())},
         {"server", json::parse(server_json_text())},
         {"client", std::move(client)},
         // NATS's view: `sent` is what the server sent the client, `received` what it got from it.
         {"sent", {{"msgs", received_by_client.msgs}, {"bytes", received_by_client.bytes}}},
         {"received", {{"msgs", sent_by_client.msgs}, {"bytes", sent_by_client.bytes}}},
         {"reason", to_string(reason)}};
  post(kDisconnectSubject, e.dump());
}

void BrokerMonitor::subscription_made(std::uint32_t index) { monitor::subscription_made(segment_, index); }

void BrokerMonitor::subscription_recycled(std::uint32_t index) { monitor::subscription_recycled(segment_, index); }

void BrokerMonitor::tick() {
  for (const SlowConsumer& slow : find_slow_consumers(segment_, slow_episode_)) {
    SubscriptionLayout* s = segment_.subscription(slow.subscription);
    if (s == nullptr) continue;
    // The owner only if its slot still holds the client that subscribed.
    const ClientLayout* owner = segment_.client(s->owner_client);
    if (owner != nullptr && (owner->state.load(std::memory_order_relaxed) != static_cast<std::uint32_t>(ClientState::live) ||
                             owner->epoch.load(std::memory_order_relaxed) != s->owner_epoch)) {
      owner = nullptr;
    }
    json sub{{"sid", slow.subscription},
             {"subject", load_text(s->pattern, sizeof s->pattern, load_length(s->pattern_len)).value_or("")},
             {"ring_bytes", segment_.config().ring_bytes}};
    if (auto group = load_text(s->group, sizeof s->group, load_length(s->group_len)); group && !group->empty()) {
      sub["qgroup"] = *group;
    }
    ++event_seq_;
    json e{{"type", "io.bus.advisory.v1.slow_consumer"},
           {"id", event_id()},
           {"timestamp", time_text(realtime_ns())},
           {"server", json::parse(server_json_text())},
           {"subscription", std::move(sub)},
           {"dropped", slow.new_drops},
           {"total_dropped", slow.total_drops}};
    if (owner != nullptr) e["client"] = client_json(*owner, s->owner_client);
    log_("slow consumer: subscription " + std::to_string(slow.subscription) + " dropped " +
         std::to_string(slow.new_drops) + " message(s) (its ring is full)");
    post(kSlowConsumerSubject, e.dump());
  }
  const std::uint64_t now = monotonic_ns();
  if (options_.statsz_interval.count() > 0 && now >= next_statsz_ns_) {
    next_statsz_ns_ = now + static_cast<std::uint64_t>(std::chrono::nanoseconds(options_.statsz_interval).count());
    const json v = varz(take_snapshot(segment_, options_.bus_name));
    ++event_seq_;
    json e{{"server", json::parse(server_json_text())},
           {"statsz",
            {{"start", v["start"]},
             {"mem", v["mem"]},
             {"cores", v["cores"]},
             {"connections", v["connections"]},
             {"total_connections", v["total_connections"]},
             {"active_accounts", 1},
             {"subscriptions", v["subscriptions"]},
             {"sent", {{"msgs", v["out_msgs"]}, {"bytes", v["out_bytes"]}}},
             {"received", {{"msgs", v["in_msgs"]}, {"bytes", v["in_bytes"]}}},
             {"slow_consumers", v["slow_consumers"]},
             {"dropped_msgs", v["dropped_msgs"]},
             {"undelivered_msgs", v["undelivered_msgs"]}}}};
    post("$SYS.SERVER." + server_id() + ".STATSZ", e.dump());
  }
}

void BrokerMonitor::request_stop() noexcept {
  try {
    ++event_seq_;
    json e{{"server", json::parse(server_json_text())}, {"reason", "shutdown"}};
    post("$SYS.SERVER." + server_id() + ".SHUTDOWN", e.dump());
  } catch (...) {
  }
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
  }
  wake_.notify_all();
}

bool BrokerMonitor::finished() const noexcept {
  std::lock_guard lock(mutex_);
  return finished_ || !publisher_.joinable();
}

void BrokerMonitor::publisher_main() {
  ConnectOptions options;
  options.name = std::string(kSystemClientName);
  options.max_reconnects = -1;
  std::optional<Connection> conn;
  std::chrono::milliseconds retry{20};
  for (;;) {
    {
      std::lock_guard lock(mutex_);
      if (stopping_) break;
    }
    auto c = Connection::connect(options_.bus_name, options);
    if (c) {
      conn = std::move(c).value();
      break;
    }
    // The bus full (max_clients), say: try again, less and less often.
    std::unique_lock lock(mutex_);
    wake_.wait_for(lock, retry, [&] { return stopping_; });
    retry = std::min(retry * 2, std::chrono::milliseconds(1000));
  }
  if (conn) {
    ConnectionImpl& impl = *ConnectionAccess::impl(*conn);
    impl.grant_system_subjects();
    {
      std::lock_guard lock(connection_mutex_);
      connection_ = &*conn;
    }
    std::unique_lock lock(mutex_);
    for (;;) {
      wake_.wait(lock, [&] { return stopping_ || !queue_.empty(); });
      while (!queue_.empty()) {
        Event e = std::move(queue_.front());
        queue_.pop_front();
        lock.unlock();
        if (impl.publish(e.subject, {}, {}, e.body)) {
          // Relaxed: a statistic; this thread is its only writer.
          std::atomic<std::uint64_t>& published = segment_.header()->totals.events_published;
          published.store(published.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
        }
        lock.lock();
      }
      if (stopping_) break;
    }
  }
  // Leave the bus before the broker stops: an internal client still attached would make it
  // keep the segment for a broker to adopt.
  if (http_) http_->stop();
  {
    std::lock_guard lock(connection_mutex_);
    connection_ = nullptr;
  }
  if (conn) (void)conn->close();
  std::lock_guard lock(mutex_);
  finished_ = true;
}

}  // namespace bus::detail::monitor

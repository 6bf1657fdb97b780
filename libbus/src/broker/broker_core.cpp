#include "broker/broker_core.hpp"

#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/timerfd.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <map>
#include <thread>

#include "os/futex.hpp"
#include "os/process.hpp"
#include "proto/control_channel.hpp"
#include "shm/seqlock.hpp"
#include "shm/shared_text.hpp"
#include "subject/subject.hpp"

namespace bus::detail {

namespace {

// Event-loop tags: the kind of fd in the top 32 bits of epoll_event.data.u64.
enum Tag : std::uint64_t { kListen = 1, kClient = 2, kPidfd = 3, kTimer = 4, kStop = 5 };
std::uint64_t tag(Tag t, int fd) { return (static_cast<std::uint64_t>(t) << 32) | static_cast<std::uint32_t>(fd); }

constexpr std::chrono::milliseconds kTickInterval{100};

// Stop eventfds of the brokers running in this process, for request_stop_all() from a signal
// handler (which may only touch lock-free atomics and call write()).
constexpr int kMaxBrokersPerProcess = 16;
std::atomic<int> g_stop_fds[kMaxBrokersPerProcess] = {};  // value = fd + 1, 0 = empty
// Sticky: a stop requested before a broker's run() began (a signal during start-up) still
// stops it; run() checks this after its stop fd is registered.
std::atomic<bool> g_stop_all_requested{false};

int register_stop_fd(int fd) {
  for (int i = 0; i < kMaxBrokersPerProcess; ++i) {
    int expected = 0;
    if (g_stop_fds[i].compare_exchange_strong(expected, fd + 1)) return i;
  }
  return -1;
}

ControlMessage reply_of(ControlType type, const ControlMessage& request) {
  ControlMessage reply;
  reply.type = type;
  reply.request_id = request.request_id;
  return reply;
}

}  // namespace

void BrokerCore::request_stop_all() noexcept {
  g_stop_all_requested.store(true);
  for (auto& slot : g_stop_fds) {
    const int v = slot.load();
    if (v != 0) {
      const std::uint64_t one = 1;
      [[maybe_unused]] const ssize_t n = ::write(v - 1, &one, sizeof one);
    }
  }
}

void BrokerCore::request_stop() noexcept {
  const std::uint64_t one = 1;
  [[maybe_unused]] const ssize_t n = ::write(stop_fd_, &one, sizeof one);
}

void BrokerCore::log(const std::string& line) const {
  if (!options_.log) return;
  timespec ts{};
  ::clock_gettime(CLOCK_REALTIME, &ts);
  tm t{};
  ::localtime_r(&ts.tv_sec, &t);
  std::fprintf(stderr, "[%02d:%02d:%02d.%03ld] busd[%s] %s\n", t.tm_hour, t.tm_min, t.tm_sec,
               ts.tv_nsec / 1'000'000, options_.bus_name.c_str(), line.c_str());
}

Result<std::unique_ptr<BrokerCore>> BrokerCore::create(const BrokerOptions& options) {
  if (auto st = validate_bus_name(options.bus_name); !st) return std::move(st).error();
  std::unique_ptr<BrokerCore> core(new BrokerCore());
  core->options_ = options;

  // 1. The single-broker lock: bind the bus's abstract socket name.
  int err = 0;
  core->listen_fd_ = bind_control_socket(options.bus_name, SOCK_NONBLOCK, err);
  if (core->listen_fd_ < 0) {
    if (err == EADDRINUSE) {
      const auto peek = Segment::peek(options.bus_name);
      std::string who = peek.broker_pid != 0 ? " (pid " + std::to_string(peek.broker_pid) + ")" : "";
      return make_error(Errc::broker_already_running,
                        "a broker is already running for bus '" + options.bus_name + "'" + who);
    }
    return make_error(Errc::io_error, errno_message("bind control socket", err));
  }
  if (::listen(core->listen_fd_, 128) != 0) {
    return make_error(Errc::io_error, errno_message("listen", errno));
  }

  // 1b. The stream store, held for as long as we serve (one broker per store).
  if (options.max_streams > 0) {
    const std::string store_dir =
        options.store_dir.empty() ? stream::default_state_dir(options.bus_name) : options.store_dir;
    BrokerCore* self = core.get();
    auto route_check = [self](const StreamConfig& config) -> Status {
      // A stream joins every route whose subject it captures: each must have room for it.
      for (const RouteRecord& route : self->routes_) {
        if (!route.active) continue;
        for (const std::string& pattern : config.subjects) {
          if (!subject_matches(pattern, route.subject)) continue;
          if (route.targets.size() + 1 > self->segment_.config().max_fanout) {
            return make_error(Errc::resource_exhausted, "subject '" + route.subject + "' has " +
                                                            std::to_string(route.targets.size()) +
                                                            " subscribers: no room for a stream (max_fanout)");
          }
        }
      }
      return {};
    };
    if (auto st = core->streams_.open_store(store_dir, [self](const std::string& line) { self->log(line); },
                                            route_check);
        !st) {
      return std::move(st).error();
    }
    core->consumers_ = std::make_unique<consumer::ConsumerEngine>(
        options.bus_name, store_dir, [self](const std::string& line) { self->log(line); });
    consumer::ConsumerEngine* engine = core->consumers_.get();
    core->streams_.set_consumer_count([engine](const std::string& stream) { return engine->consumer_count(stream); });
  }

  core->monitor_ = std::make_unique<monitor::BrokerMonitor>(
      options, core->segment_, [self = core.get()](const std::string& line) { self->log(line); });
  // Before any segment is touched: a monitoring port in use fails us with nothing changed.
  if (auto st = core->monitor_->bind(); !st) return std::move(st).error();

  // 2. We hold the lock, so a segment that exists now was left by a broker that died (or
  //    stopped while clients were attached). Adopt it if we can: its clients keep publishing
  //    and consuming meanwhile, and reconnect to us. Otherwise tell them it is superseded and
  //    replace it.
  bool adopted = false;
  if (Segment::exists(options.bus_name)) {
    const auto peek = Segment::peek(options.bus_name);
    const std::string object = "/dev/shm/" + segment_object_name(options.bus_name);
    auto old = Segment::open(options.bus_name);
    if (old) {
      core->prepare_tables(old->config());
      if (auto st = core->adopt(std::move(old).value()); st) {
        adopted = true;
      } else {
        core->log("cannot adopt " + object + ": " + st.error().message);
        core->segment_ = Segment();
      }
    } else {
      core->log("cannot adopt " + object + ": " + old.error().message);
    }
    if (!adopted) {
      core->log("replacing stale segment " + object +
                (peek.broker_pid != 0 ? " left by dead broker pid " + std::to_string(peek.broker_pid)
                                      : std::string(" (no valid header)")) +
                "; its clients are told it is superseded");
      Segment::mark_superseded(options.bus_name);
      Segment::remove(options.bus_name);
    }
  }

  // 3. The segment.
  if (!adopted) {
    SegmentConfig config;
    config.max_clients = options.max_clients;
    config.max_subscriptions = options.max_subscriptions;
    config.max_routes = options.max_routes;
    config.max_fanout = options.max_fanout;
    config.ring_bytes = options.ring_bytes;
    config.max_payload = options.max_payload;
    config.max_streams = options.max_streams;
    const pid_t self = ::getpid();
    auto seg = Segment::create(options.bus_name, config, options.mode, self,
                               process_start_ticks(self).value_or(0));
    if (!seg) return std::move(seg).error();
    core->segment_ = std::move(seg).value();
    core->prepare_tables(config);
  }
  const SegmentConfig& config = core->segment_.config();
  if (auto st = core->monitor_->open(); !st) return std::move(st).error();

  // 4. Streams (when the bus was adopted, adopt() loaded them before republishing its routes).
  if (!adopted && config.max_streams > 0) core->streams_.load(core->segment_, /*adopted=*/false);

  // 5. Event loop plumbing.
  core->epoll_fd_ = ::epoll_create1(EPOLL_CLOEXEC);
  core->timer_fd_ = ::timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC | TFD_NONBLOCK);
  core->stop_fd_ = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (core->epoll_fd_ < 0 || core->timer_fd_ < 0 || core->stop_fd_ < 0) {
    return make_error(Errc::io_error, errno_message("epoll/timerfd/eventfd", errno));
  }
  itimerspec its{};
  its.it_interval.tv_nsec = std::chrono::nanoseconds(kTickInterval).count();
  its.it_value = its.it_interval;
  ::timerfd_settime(core->timer_fd_, 0, &its, nullptr);
  auto add = [&](int fd, Tag t) {
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.u64 = tag(t, fd);
    ::epoll_ctl(core->epoll_fd_, EPOLL_CTL_ADD, fd, &ev);
  };
  add(core->listen_fd_, kListen);
  add(core->timer_fd_, kTimer);
  add(core->stop_fd_, kStop);
  for (const auto& [pidfd, slot] : core->pidfds_) add(pidfd, kPidfd);  // adopted clients
  core->stop_registry_slot_ = register_stop_fd(core->stop_fd_);

  core->log("serving bus '" + options.bus_name + "': " + (adopted ? "adopted " : "") + "segment /dev/shm/" +
            segment_object_name(options.bus_name) + " (" +
            std::to_string(core->segment_.size() >> 20) + " MiB virtual), max_clients=" +
            std::to_string(config.max_clients) + " max_subscriptions=" +
            std::to_string(config.max_subscriptions) + " ring_bytes=" + std::to_string(config.ring_bytes) +
            " max_payload=" + std::to_string(config.max_payload));
  return core;
}

void BrokerCore::prepare_tables(const SegmentConfig& config) {
  clients_.assign(config.max_clients, ClientRecord{});
  subscriptions_.assign(config.max_subscriptions, SubscriptionRecord{});
  routes_.assign(config.max_routes, RouteRecord{});
  free_subscriptions_.clear();
  free_routes_.clear();
  quarantine_.clear();
  route_by_subject_.clear();
  sublist_ = Sublist();
  // LIFO stacks handing out low indices first (keeps the touched part of the segment small).
  for (std::uint32_t i = config.max_subscriptions; i-- > 0;) free_subscriptions_.push_back(i);
  for (std::uint32_t i = config.max_routes; i-- > 0;) free_routes_.push_back(i);
}

BrokerCore::~BrokerCore() {
  if (stop_registry_slot_ >= 0) g_stop_fds[stop_registry_slot_].store(0);
  close_deferred();
  for (auto& [fd, slot] : connections_) ::close(fd);
  for (auto& [fd, slot] : pidfds_) ::close(fd);
  for (int fd : {listen_fd_, epoll_fd_, timer_fd_, stop_fd_}) {
    if (fd >= 0) ::close(fd);
  }
  if (segment_.base() != nullptr) {
    const auto attached = static_cast<std::size_t>(
        std::count_if(clients_.begin(), clients_.end(), [](const ClientRecord& c) { return c.in_use; }));
    if (attached == 0) {
      Segment::remove(options_.bus_name);
      log("stopped; segment removed");
    } else {
      // Their data path goes on without us, and the next broker adopts the segment.
      log("stopped; segment left for the next broker to adopt (" + std::to_string(attached) +
          " client(s) attached)");
    }
  }
}

Status BrokerCore::run() {
  epoll_event events[64];
  // Our stop fd was registered in create(): a request_stop_all() from now on writes to it, and
  // one that came earlier left the sticky flag.
  if (g_stop_all_requested.load()) return {};
  if (consumers_ && streams_.size() > 0) consumers_->start();
  monitor_->start();
  for (;;) {
    // Stopping: serve on until the consumer engine has saved its state and the event publisher
    // has said SHUTDOWN, and both have left the bus (bounded: a stuck one does not keep us up).
    // Their close() has hung up their sockets by then: one last look without waiting reaps
    // their slots (else the segment would look attached and be left for a broker to adopt).
    const bool done = stopping_ && (((!consumers_ || consumers_->finished()) && monitor_->finished()) ||
                                    monotonic_ns() > stop_deadline_ns_);
    if (done && final_pass_) return {};
    final_pass_ = done;
    const int n = ::epoll_wait(epoll_fd_, events, 64, done ? 0 : stopping_ ? 10 : -1);
    if (n < 0) {
      if (errno == EINTR) continue;
      return make_error(Errc::io_error, errno_message("epoll_wait", errno));
    }
    for (int i = 0; i < n; ++i) {
      const auto kind = static_cast<Tag>(events[i].data.u64 >> 32);
      const int fd = static_cast<int>(events[i].data.u64 & 0xFFFF'FFFFu);
      switch (kind) {
        case kListen:
          accept_clients();
          break;
        case kClient:
          if (!connections_.contains(fd)) break;  // dropped earlier in this batch
          if (events[i].events & EPOLLIN) {
            on_readable(fd);
          } else {
            drop_connection(fd, "closed its connection");
          }
          break;
        case kPidfd: {
          auto it = pidfds_.find(fd);
          if (it != pidfds_.end()) reap_client(it->second, "exited");
          break;
        }
        case kTimer: {
          std::uint64_t expirations = 0;
          [[maybe_unused]] ssize_t r = ::read(timer_fd_, &expirations, sizeof expirations);
          on_tick();
          break;
        }
        case kStop: {
          std::uint64_t count = 0;  // drained: level-triggered, it would wake every wait
          [[maybe_unused]] ssize_t r = ::read(stop_fd_, &count, sizeof count);
          if (!stopping_) {
            stopping_ = true;
            stop_deadline_ns_ = monotonic_ns() + 3'000'000'000ull;
            if (consumers_) consumers_->request_stop();
            monitor_->request_stop();
          }
          break;
        }
      }
    }
    // Only now: an fd closed mid-batch could be reused by an accept4() in the same batch, and
    // a later event of the batch for the old fd would then hit the new connection.
    close_deferred();
  }
}

void BrokerCore::close_later(int fd) { deferred_closes_.push_back(fd); }

void BrokerCore::close_deferred() noexcept {
  for (int fd : deferred_closes_) ::close(fd);
  deferred_closes_.clear();
}

void BrokerCore::accept_clients() {
  for (;;) {
    const int fd = ::accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK);
    if (fd < 0) return;
    epoll_event ev{};
    ev.events = EPOLLIN | EPOLLRDHUP;
    ev.data.u64 = tag(kClient, fd);
    ::epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, fd, &ev);
    connections_[fd] = -1;
  }
}

void BrokerCore::on_readable(int fd) {
  if (receive_buffer_.empty()) receive_buffer_.resize(kControlDatagramBytes);
  for (;;) {
    ControlMessage request;
    std::string_view body;
    const int got = receive_control(fd, receive_buffer_.data(), request, body);
    if (got < 0) return;
    if (got == 0) {
      drop_connection(fd, "closed its connection");
      return;
    }
    if (got == 2) {
      drop_connection(fd, "sent a malformed control message", /*keep_live_slot=*/true);
      return;
    }
    reply_body_.clear();
    ControlMessage reply = handle(fd, request, body);
    reply.body_len = static_cast<std::uint32_t>(reply_body_.size());
    if (!send_control(fd, reply, reply_body_)) {
      drop_connection(fd, "stopped reading its connection", /*keep_live_slot=*/true);
      return;
    }
  }
}

ControlMessage BrokerCore::handle(int fd, const ControlMessage& request, std::string_view body) {
  auto it = connections_.find(fd);
  const std::int64_t slot = it == connections_.end() ? -1 : it->second;
  Result<ControlMessage> result = make_error(Errc::protocol_error, "unknown request");
  if (request.type == ControlType::hello) {
    result = slot < 0 ? on_hello(fd, request)
                      : Result<ControlMessage>(make_error(Errc::protocol_error, "duplicate hello"));
  } else if (slot < 0) {
    result = make_error(Errc::protocol_error, "hello expected first");
  } else {
    const auto client = static_cast<std::uint32_t>(slot);
    switch (request.type) {
      case ControlType::subscribe: result = on_subscribe(client, request); break;
      case ControlType::unsubscribe: result = on_unsubscribe(client, request); break;
      case ControlType::resolve: result = on_resolve(client, request); break;
      case ControlType::release: result = on_release(client, request); break;
      case ControlType::stream_request: result = on_stream_request(request, body); break;
      default: break;
    }
  }
  if (!result) return make_error_reply(request, result.error());
  return std::move(result).value();
}

Result<ControlMessage> BrokerCore::on_hello(int fd, const ControlMessage& request) {
  ucred cred{};
  socklen_t cred_len = sizeof cred;
  if (::getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &cred_len) != 0) {
    return make_error(Errc::io_error, errno_message("SO_PEERCRED", errno));
  }
  // Our uid, root, or (when the segment's mode shares it with its group) a member of that group.
  const bool group_member = (segment_.file_mode() & 0060) == 0060 && process_in_group(cred.pid, segment_.file_gid());
  if (cred.uid != ::geteuid() && cred.uid != 0 && !group_member) {
    return make_error(Errc::permission_denied,
                      "uid " + std::to_string(cred.uid) + " may not attach to this bus (busd --mode 0660 shares it with "
                      "the segment's group)");
  }
  if (request.b != 0) return on_resume(fd, request, cred);
  std::uint32_t slot = 0;
  while (slot < clients_.size() && clients_[slot].in_use) ++slot;
  if (slot == clients_.size()) {
    return make_error(Errc::resource_exhausted,
                      "bus is full: all " + std::to_string(clients_.size()) +
                          " client slots are in use (busd --max-clients)");
  }
  // Identity = pid + start time; the pidfd pins that exact process (no pid-reuse race once the
  // start time read after opening it still matches).
  const int pidfd = open_pidfd(cred.pid);
  const auto ticks = process_start_ticks(cred.pid);
  if (!ticks) {
    if (pidfd >= 0) ::close(pidfd);
    return make_error(Errc::io_error, "client process vanished during hello");
  }
  ClientRecord& rec = clients_[slot];
  rec = ClientRecord{};
  rec.in_use = true;
  rec.fd = fd;
  rec.pidfd = pidfd;
  rec.pid = cred.pid;
  rec.start_ticks = *ticks;
  rec.name = std::string(request.s1());
  connections_[fd] = slot;
  if (pidfd >= 0) {
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.u64 = tag(kPidfd, pidfd);
    ::epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, pidfd, &ev);
    pidfds_[pidfd] = slot;
  }

  ClientLayout* layout = segment_.client(slot);
  for (auto& lane : layout->claim_lanes) lane.claim.store(0, std::memory_order_relaxed);
  // Relaxed: only the broker writes the epoch; clients learn it from the welcome reply.
  const std::uint32_t epoch = layout->epoch.load(std::memory_order_relaxed) + 1;
  layout->epoch.store(epoch, std::memory_order_relaxed);
  layout->pid = static_cast<std::uint32_t>(cred.pid);
  layout->uid = cred.uid;
  layout->start_ticks = *ticks;
  layout->connected_unix_ns = realtime_ns();
  // Relaxed atomic stores (shm/shared_text.hpp): a monitor may be reading the old name.
  store_text(layout->name, sizeof layout->name,
             std::string_view(rec.name).substr(0, std::min(rec.name.size(), sizeof layout->name - 1)));
  monitor_->client_connected(slot);
  // [R8] release: identity fields and epoch are visible to anyone who sees state == live
  // ([A8] in broker/adoption.cpp, when a new broker reads the slot; consumers judge a writer
  // by its pid and start ticks, which are written before this too).
  layout->state.store(static_cast<std::uint32_t>(ClientState::live), std::memory_order_release);

  log("client " + std::to_string(slot) + " attached: pid " + std::to_string(cred.pid) +
      (rec.name.empty() ? "" : " (" + rec.name + ")"));
  ControlMessage reply = reply_of(ControlType::welcome, request);
  reply.a = slot;
  reply.b = epoch;
  reply.u64 = segment_.id();
  return reply;
}

Result<ControlMessage> BrokerCore::on_resume(int fd, const ControlMessage& request, const ucred& cred) {
  // A client of the broker we replaced, reconnecting: it keeps its slot, subscriptions and
  // routes if it is exactly the process that held the slot, on this very segment.
  const std::uint32_t slot = request.b - 1;
  if (request.u64b != segment_.id()) {
    return make_error(Errc::broker_gone, "this broker serves a different segment: re-attach");
  }
  if (slot >= clients_.size() || !clients_[slot].in_use || clients_[slot].fd >= 0) {
    return make_error(Errc::broker_gone, "client slot " + std::to_string(request.b - 1) + " is not awaiting a reconnect");
  }
  ClientRecord& rec = clients_[slot];
  ClientLayout* layout = segment_.client(slot);
  const auto ticks = process_start_ticks(cred.pid);
  if (rec.pid != cred.pid || !ticks || *ticks != rec.start_ticks ||
      layout->epoch.load(std::memory_order_relaxed) != request.c) {
    return make_error(Errc::permission_denied, "client slot " + std::to_string(slot) + " belongs to another process");
  }
  rec.fd = fd;
  connections_[fd] = slot;
  log("client " + std::to_string(slot) + " reconnected: pid " + std::to_string(cred.pid) +
      (rec.name.empty() ? "" : " (" + rec.name + ")") + ", " + std::to_string(rec.subscriptions.size()) +
      " subscription(s) kept");
  ControlMessage reply = reply_of(ControlType::welcome, request);
  reply.a = slot;
  reply.b = request.c;
  reply.c = 1;
  reply.u64 = segment_.id();
  return reply;
}

void BrokerCore::drop_connection(int fd, const char* reason, bool keep_live_slot) {
  auto it = connections_.find(fd);
  if (it == connections_.end()) return;
  const std::int64_t slot = it->second;
  if (slot >= 0 && keep_live_slot && process_alive(clients_[slot].pid, clients_[slot].start_ticks)) {
    clients_[static_cast<std::size_t>(slot)].misbehaved = true;  // if it goes later: "evicted"
    // Its process still runs, and its data path with it: reaping now would clear the lanes of
    // claims it may still be writing and hand its slot and rings to others. Keep the slot
    // awaiting a reconnect (as adoption does); its death (pidfd) or its goodbye reaps it.
    log("client " + std::to_string(slot) + " " + reason + ": connection dropped, slot kept for a reconnect");
    clients_[static_cast<std::size_t>(slot)].fd = -1;
  } else if (slot >= 0) {
    reap_client(static_cast<std::uint32_t>(slot), reason);  // closes fd (its process is gone)
    return;
  }
  ::epoll_ctl(epoll_fd_, EPOLL_CTL_DEL, fd, nullptr);
  close_later(fd);
  connections_.erase(it);
}

void BrokerCore::reap_client(std::uint32_t slot, const char* reason, bool misbehaved) {
  if (slot >= clients_.size() || !clients_[slot].in_use) return;
  ClientRecord& rec = clients_[slot];
  ClientLayout* layout = segment_.client(slot);
  // A hang-up or an exit is a close only if close() said goodbye first; without it the process
  // ended under the client (kill -9, a crash, exit() without close): say "died", as the
  // disconnect event does. [A9] acquire: pairs with [R9], the client's release of goodbye in
  // close() before it hung up (as in monitor/broker_monitor.cpp).
  std::string why = reason;
  if (why == "closed its connection" || why == "exited" || why == "is no longer running") {
    if (layout->goodbye.load(std::memory_order_acquire) == 0) why = "died (its process ended without closing the connection)";
  }
  monitor_->client_leaving(slot, misbehaved || rec.misbehaved);

  // A claim the client never committed may block a consumer at that record: tell the ring.
  for (auto& lane : layout->claim_lanes) {
    // Acquire: the process is gone, its last stores are final; pairs with nothing live.
    const std::uint32_t v = lane_ring_plus1(lane.claim.load(std::memory_order_acquire));
    if (v == 0) continue;
    lane.claim.store(0, std::memory_order_relaxed);
    // The consumer finds out by itself (its head is stuck, and the lane's process is gone);
    // waking it only makes it look sooner.
    if (segment_.subscription(v - 1) != nullptr) futex_wake_all(segment_.ring(v - 1).futex_word());
  }
  const std::size_t subs = rec.subscriptions.size();
  for (std::uint32_t index : std::vector<std::uint32_t>(rec.subscriptions)) remove_subscription(index);
  for (auto [route, refs] : rec.route_refs) release_route(route, refs);
  // Release: a consumer that sees `free` also sees nothing newer from this slot ([A8]).
  layout->state.store(static_cast<std::uint32_t>(ClientState::free), std::memory_order_release);

  log("client " + std::to_string(slot) + " (pid " + std::to_string(rec.pid) + ") " + why +
      ": reclaimed its slot, " + std::to_string(subs) + " subscription(s) and " +
      std::to_string(rec.route_refs.size()) + " route(s)");
  if (rec.fd >= 0) {
    ::epoll_ctl(epoll_fd_, EPOLL_CTL_DEL, rec.fd, nullptr);
    close_later(rec.fd);
    connections_.erase(rec.fd);
  }
  if (rec.pidfd >= 0) {
    ::epoll_ctl(epoll_fd_, EPOLL_CTL_DEL, rec.pidfd, nullptr);
    close_later(rec.pidfd);
    pidfds_.erase(rec.pidfd);
  }
  rec = ClientRecord{};
  recycle_quarantined();
}

void BrokerCore::on_tick() {
  // Relaxed: a liveness hint for monitors; nothing is published with it.
  segment_.header()->broker_heartbeat_ns.store(monotonic_ns(), std::memory_order_relaxed);
  streams_.enforce_limits();
  // Backstop for kernels without pidfd: a client whose process is gone is reaped.
  for (std::uint32_t slot = 0; slot < clients_.size(); ++slot) {
    const ClientRecord& rec = clients_[slot];
    if (rec.in_use && rec.pidfd < 0 && !process_alive(rec.pid, rec.start_ticks)) {
      reap_client(slot, "is no longer running");
    }
  }
  if (!quarantine_.empty()) recycle_quarantined();
  monitor_->tick();
}

// ------------------------------------------------------------------------------- subscriptions

Result<ControlMessage> BrokerCore::on_subscribe(std::uint32_t client, const ControlMessage& request) {
  const std::string_view pattern = request.s1();
  const std::string_view group = request.s2();
  if (auto st = validate_subscribe_subject(pattern); !st) return std::move(st).error();
  if (!group.empty()) {
    if (auto st = validate_queue_group(group); !st) return std::move(st).error();
  }
  // Every route the pattern matches gains a target: check max_fanout before changing anything.
  std::vector<std::uint32_t> matching_routes;
  for (std::uint32_t r = 0; r < routes_.size(); ++r) {
    if (!routes_[r].active || !subject_matches(pattern, routes_[r].subject)) continue;
    if (route_width(routes_[r]) >= segment_.config().max_fanout) {
      return make_error(Errc::resource_exhausted,
                        "subscribing to '" + std::string(pattern) + "' would give subject '" +
                            routes_[r].subject + "' more than max_fanout " +
                            std::to_string(segment_.config().max_fanout) + " subscribers");
    }
    matching_routes.push_back(r);
  }
  auto allocated = allocate_subscription();
  if (!allocated) return std::move(allocated).error();
  const std::uint32_t index = allocated.value();
  SubscriptionRecord& rec = subscriptions_[index];
  if (!rec.ring_reserved) {
    if (auto st = segment_.reserve_ring(index); !st) {
      free_subscriptions_.push_back(index);
      return std::move(st).error();
    }
    rec.ring_reserved = true;
  }
  rec.active = true;
  rec.quarantined = false;
  rec.owner = client;
  rec.pattern = std::string(pattern);
  rec.group = std::string(group);
  rec.proxy = request.c != 0 && !group.empty();  // only a queue group has a proxy

  SubscriptionLayout* layout = segment_.subscription(index);
  layout->owner_client = client;
  layout->owner_epoch = segment_.client(client)->epoch.load(std::memory_order_relaxed);
  // Relaxed atomic stores (shm/shared_text.hpp): an inbox reply may be checking the pattern of
  // this slot right now; `state` below decides whether what it read counts.
  store_length(layout->pattern_len, pattern.size());
  store_text(layout->pattern, sizeof layout->pattern, pattern);
  store_length(layout->group_len, group.size());
  store_text(layout->group, sizeof layout->group, group);
  std::atomic_ref<std::uint32_t>(layout->flags).store(rec.proxy ? kSubscriptionProxy : 0, std::memory_order_relaxed);
  layout->dropped_msgs.store(0, std::memory_order_relaxed);
  layout->abandoned_msgs.store(0, std::memory_order_relaxed);
  layout->delivered_msgs.store(0, std::memory_order_relaxed);
  layout->skipped_records.store(0, std::memory_order_relaxed);
  monitor_->subscription_made(index);
  // Release: the identity fields above are visible to monitors that see `active`.
  layout->state.store(static_cast<std::uint32_t>(SubscriptionState::active), std::memory_order_release);
  const std::uint32_t incarnation = layout->incarnation.load(std::memory_order_relaxed);

  sublist_.insert(pattern, index);
  clients_[client].subscriptions.push_back(index);
  for (std::uint32_t r : matching_routes) {
    routes_[r].targets.push_back(index);
    publish_route(r);
  }
  bump_generation();
  // The reply is sent only now: every route already lists this subscription, so any publish
  // that starts after subscribe() returns sees it (publishers re-read a route whose version
  // changed, [A6]).
  ControlMessage reply = reply_of(ControlType::subscribed, request);
  reply.a = index;
  reply.b = incarnation;
  return reply;
}

Result<ControlMessage> BrokerCore::on_unsubscribe(std::uint32_t client, const ControlMessage& request) {
  const std::uint32_t index = request.a;
  auto& owned = clients_[client].subscriptions;
  if (index >= subscriptions_.size() || subscriptions_[index].owner != client ||
      std::find(owned.begin(), owned.end(), index) == owned.end()) {
    return make_error(Errc::invalid_argument, "no such subscription");
  }
  const bool keep_ring = request.c != 0;  // drain: stop routing, the owner still reads the ring
  stop_routing(index);
  if (!keep_ring) {
    owned.erase(std::remove(owned.begin(), owned.end(), index), owned.end());
    quarantine(index);
  }
  return reply_of(ControlType::unsubscribed, request);
}

Result<std::uint32_t> BrokerCore::allocate_subscription() {
  // A quarantined ring waits only for publishers that are inside a publish to it right now
  // (microseconds). When it is all we have, give them a moment rather than refuse.
  for (int attempt = 0; free_subscriptions_.empty() && !quarantine_.empty() && attempt < 100; ++attempt) {
    recycle_quarantined();
    if (free_subscriptions_.empty()) std::this_thread::sleep_for(std::chrono::microseconds(100));
  }
  if (free_subscriptions_.empty()) {
    return make_error(Errc::resource_exhausted,
                      "all " + std::to_string(subscriptions_.size()) +
                          " subscription slots are in use (busd --max-subscriptions)");
  }
  const std::uint32_t index = free_subscriptions_.back();
  free_subscriptions_.pop_back();
  return index;
}

void BrokerCore::remove_subscription(std::uint32_t index) {
  stop_routing(index);
  quarantine(index);
}

void BrokerCore::quarantine(std::uint32_t index) {
  SubscriptionRecord& rec = subscriptions_[index];
  if (rec.quarantined) return;
  segment_.subscription(index)->state.store(static_cast<std::uint32_t>(SubscriptionState::quarantined),
                                            std::memory_order_release);
  rec.quarantined = true;
  quarantine_.push_back(index);
}

void BrokerCore::stop_routing(std::uint32_t index) {
  SubscriptionRecord& rec = subscriptions_[index];
  if (!rec.active) return;
  sublist_.remove(rec.pattern, index);
  for (std::uint32_t r = 0; r < routes_.size(); ++r) {
    auto& targets = routes_[r].targets;
    auto it = std::find(targets.begin(), targets.end(), index);
    if (it == targets.end()) continue;
    targets.erase(it);
    publish_route(r);
  }
  SubscriptionLayout* layout = segment_.subscription(index);
  // New incarnation, then move the tail: a publisher still holding the old route either reads
  // the moved tail (and, through [A3], the new incarnation) or fails its claim CAS.
  std::uint32_t next_incarnation = layout->incarnation.load(std::memory_order_relaxed) + 1;
  if (next_incarnation == 0) next_incarnation = 1;  // 0 is never a valid incarnation
  layout->incarnation.store(next_incarnation, std::memory_order_relaxed);
  // [A7] acq_rel RMW: release publishes the incarnation to [A3]; acquire pairs with [R3], so a
  // claim that precedes this RMW in the tail's modification order has its claim-lane store
  // visible to claimed_by_live_client().
  layout->tail_word.fetch_add(segment_.config().ring_bytes, std::memory_order_acq_rel);
  futex_wake_all(segment_.ring(index).futex_word());
  rec.active = false;
  bump_generation();
}

bool BrokerCore::claimed_by_live_client(std::uint32_t subscription) const noexcept {
  for (std::uint32_t slot = 0; slot < clients_.size(); ++slot) {
    if (!clients_[slot].in_use) continue;
    const ClientLayout* layout = segment_.client(slot);
    for (const auto& lane : layout->claim_lanes) {
      // Acquire: pairs with the publisher's release store of 0 after its commit; when we see 0
      // the publisher's writes into the old ring are finished.
      if (lane_ring_plus1(lane.claim.load(std::memory_order_acquire)) == subscription + 1) return true;
    }
  }
  return false;
}

void BrokerCore::recycle_quarantined() {
  for (std::size_t i = 0; i < quarantine_.size();) {
    const std::uint32_t index = quarantine_[i];
    if (claimed_by_live_client(index)) {
      ++i;
      continue;
    }
    SubscriptionLayout* layout = segment_.subscription(index);
    monitor_->subscription_recycled(index);
    std::memset(static_cast<void*>(segment_.ring_data(index)), 0, segment_.config().ring_bytes);
    const std::uint64_t position = tail_position(layout->tail_word.load(std::memory_order_relaxed));
    layout->head_position.store(position, std::memory_order_relaxed);
    // [R7] release: pairs with [A3]; the zeroed ring and the head are visible to every claim
    // made from this tail on (the incarnation was bumped at removal).
    layout->tail_word.store(position, std::memory_order_release);
    layout->state.store(static_cast<std::uint32_t>(SubscriptionState::free), std::memory_order_release);
    subscriptions_[index].quarantined = false;
    free_subscriptions_.push_back(index);
    quarantine_[i] = quarantine_.back();
    quarantine_.pop_back();
  }
}

// ------------------------------------------------------------------------------------- routes

Result<ControlMessage> BrokerCore::on_resolve(std::uint32_t client, const ControlMessage& request) {
  const std::string_view subject = request.s1();
  if (auto st = validate_publish_subject(subject); !st) return std::move(st).error();
  std::uint32_t index = 0;
  if (auto it = route_by_subject_.find(std::string(subject)); it != route_by_subject_.end()) {
    index = it->second;
  } else {
    match_scratch_.clear();
    sublist_.match(subject, match_scratch_);
    const std::size_t width = match_scratch_.size() + (streams_.capturing(subject) ? 1 : 0);
    if (width > segment_.config().max_fanout) {
      return make_error(Errc::resource_exhausted,
                        "subject '" + std::string(subject) + "' matches " +
                            std::to_string(width) + " subscriptions and streams, more than max_fanout " +
                            std::to_string(segment_.config().max_fanout));
    }
    if (free_routes_.empty()) evict_route();
    index = free_routes_.back();
    free_routes_.pop_back();
    RouteRecord& route = routes_[index];
    route.active = true;
    route.subject = std::string(subject);
    route.refs = 0;
    route.targets = match_scratch_;
    publish_route(index);
    route_by_subject_.emplace(route.subject, index);
  }
  routes_[index].refs += 1;
  clients_[client].route_refs[index] += 1;
  ControlMessage reply = reply_of(ControlType::route, request);
  reply.a = index;
  return reply;
}

Result<ControlMessage> BrokerCore::on_stream_request(const ControlMessage& request, std::string_view body) {
  bool routes_changed = false;
  const auto op = static_cast<StreamOp>(request.a);
  auto reply_body = streams_.handle(op, request.s1(), body, routes_changed);
  // Even after an error: a stream that failed half-way may have changed the table.
  if (routes_changed) republish_routes();
  if (!reply_body) return std::move(reply_body).error();
  if (consumers_ && op == StreamOp::add) consumers_->start();
  if (consumers_ && op == StreamOp::remove) consumers_->stream_removed(std::string(request.s1()));
  reply_body_ = std::move(reply_body).value();
  return reply_of(ControlType::stream_reply, request);
}

void BrokerCore::republish_routes() {
  for (std::uint32_t r = 0; r < routes_.size(); ++r) {
    if (routes_[r].active) publish_route(r);
  }
  bump_generation();
}

std::size_t BrokerCore::route_width(const RouteRecord& route) const {
  return route.targets.size() + (streams_.capturing(route.subject) ? 1 : 0);
}

Result<ControlMessage> BrokerCore::on_release(std::uint32_t client, const ControlMessage& request) {
  auto& held = clients_[client].route_refs;
  auto it = held.find(request.a);
  if (it == held.end()) return make_error(Errc::invalid_argument, "route not held");
  if (--it->second == 0) held.erase(it);
  release_route(request.a, 1);
  return reply_of(ControlType::released, request);
}

void BrokerCore::release_route(std::uint32_t index, std::uint32_t refs) {
  if (index >= routes_.size() || !routes_[index].active) return;
  RouteRecord& route = routes_[index];
  route.refs = refs >= route.refs ? 0 : route.refs - refs;
  if (route.refs == 0) free_route(index);
}

void BrokerCore::free_route(std::uint32_t index) {
  RouteRecord& route = routes_[index];
  route_by_subject_.erase(route.subject);
  route.active = false;
  route.subject.clear();
  route.targets.clear();
  publish_route(index);  // version bump: every copy of it is re-checked, finds it free
  free_routes_.push_back(index);
}

void BrokerCore::evict_route() {
  // The table is full. Publishers re-validate a route (subject and state, under its seqlock)
  // whenever its version changes, so any route may be taken back: one that reaches nobody is
  // the cheapest to lose; otherwise take turns. Its holders simply resolve again.
  std::uint32_t victim = routes_.size();
  for (std::uint32_t r = 0; r < routes_.size(); ++r) {
    if (routes_[r].active && routes_[r].targets.empty()) {
      victim = r;
      break;
    }
  }
  if (victim == routes_.size()) {
    victim = next_eviction_++ % static_cast<std::uint32_t>(routes_.size());
  }
  for (auto& client : clients_) client.route_refs.erase(victim);
  free_route(victim);
}

void BrokerCore::publish_route(std::uint32_t index) {
  RouteRecord& route = routes_[index];
  // Order: plain subscriptions first, then queue-group members, each group contiguous and
  // numbered 1..k, so a publisher can pick one member per run.
  std::vector<std::uint32_t> plain;
  std::map<std::string, std::vector<std::uint32_t>> groups;
  for (std::uint32_t sub : route.targets) {
    if (subscriptions_[sub].group.empty()) {
      plain.push_back(sub);
    } else {
      groups[subscriptions_[sub].group].push_back(sub);
    }
  }
  RouteLayout* layout = segment_.route(index);
  RouteTarget* targets = segment_.route_targets(layout);
  const std::uint32_t max_fanout = segment_.config().max_fanout;
  std::uint32_t left_out = 0;
  {
    // Seqlock write (single writer: the broker). [R6] release when `write` ends: the new targets
    // are visible to a publisher that acquires the even version ([A6] in client/connection.cpp:
    // publish() and refresh()).
    const SeqlockWrite write(layout->version);
    std::uint32_t n = 0;
    // A stream first: it stores what the subscriptions get.
    if (route.active) {
      if (const auto stream = streams_.capturing(route.subject)) {
        targets[n].subscription.store(stream->slot, std::memory_order_relaxed);
        targets[n].incarnation.store(stream->incarnation, std::memory_order_relaxed);
        targets[n].group.store(0, std::memory_order_relaxed);
        targets[n].kind.store(static_cast<std::uint32_t>(TargetKind::stream), std::memory_order_relaxed);
        ++n;
      }
    }
    auto put = [&](std::uint32_t sub, std::uint32_t group, TargetKind kind = TargetKind::ring) {
      if (n >= max_fanout) {  // only when a stream was added to a route full of subscriptions
        ++left_out;
        return;
      }
      const std::uint32_t incarnation =
          segment_.subscription(sub)->incarnation.load(std::memory_order_relaxed);
      targets[n].subscription.store(sub, std::memory_order_relaxed);
      targets[n].incarnation.store(incarnation, std::memory_order_relaxed);
      targets[n].group.store(group, std::memory_order_relaxed);
      targets[n].kind.store(static_cast<std::uint32_t>(kind), std::memory_order_relaxed);
      ++n;
    };
    for (std::uint32_t sub : plain) put(sub, 0);
    std::uint32_t ordinal = 0;
    for (auto& [name, members] : groups) {
      ++ordinal;
      // A proxy first: it tells publishers the group is picked beyond this bus (TargetKind).
      for (std::uint32_t sub : members) {
        if (subscriptions_[sub].proxy) put(sub, ordinal, TargetKind::bridge);
      }
      for (std::uint32_t sub : members) {
        if (!subscriptions_[sub].proxy) put(sub, ordinal);
      }
    }
    layout->target_count.store(n, std::memory_order_relaxed);
    // Identity inside the seqlock too: a publisher holding this slot for another subject (it was
    // freed and reused) sees the mismatch when it re-copies the route.
    // Relaxed atomic stores: publishers may be reading them right now; the seqlock decides.
    store_length(layout->subject_len, route.subject.size());
    store_text(layout->subject, sizeof layout->subject, route.subject);
    layout->state.store(static_cast<std::uint32_t>(route.active ? RouteState::active : RouteState::free),
                        std::memory_order_relaxed);
  }  // [R6]
  if (left_out != 0) {  // logged once the route is readable again, not while it is held odd
    log("route '" + route.subject + "' reaches more than max_fanout " + std::to_string(max_fanout) +
        " targets with its stream: " + std::to_string(left_out) + " subscription(s) left out");
  }
}

void BrokerCore::bump_generation() noexcept {
  // Relaxed: a change counter for monitors; routes carry their own versions ([R6]).
  segment_.header()->registry_generation.fetch_add(1, std::memory_order_relaxed);
}

}  // namespace bus::detail

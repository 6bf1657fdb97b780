// bench_roles.cpp — the processes `bus bench` starts (see bench_proto.hpp for the protocol):
//
//   pub    connects, says ready, waits for `go`, publishes its share of --msgs flat out
//          (publish() never blocks: a full ring drops for that subscriber and counts it)
//   sub    subscribes (or joins --queue), says ready, counts what arrives; stops once it has
//          received or seen dropped all --msgs (plain subscriber), or 200 ms after `done` with
//          nothing arriving (queue member; also the fallback)
//   ping   --latency: publishes --msgs pings with a reply subject of its own and waits for each
//          echo; --request: Connection::request() --msgs times. Times each round trip with the
//          TSC into a LatencyHistogram and reports its percentiles
//   echo   the other side of ping: answers every message with its own payload (respond())
#include <poll.h>
#include <signal.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdint>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>

#include "affinity.hpp"
#include "bench_proto.hpp"
#include "cycle_clock.hpp"
#include "histogram.hpp"
#include "units.hpp"

namespace bus::cli {
namespace {

using json = nlohmann::json;
using namespace std::chrono_literals;

// The child's end of the pipes: events out on stdout, words in on stdin.
class Channel {
 public:
  void send(const json& event) {
    std::string line = event.dump();
    line += '\n';
    const char* p = line.data();
    std::size_t left = line.size();
    while (left > 0) {
      const ssize_t n = ::write(STDOUT_FILENO, p, left);
      if (n < 0) {
        if (errno == EINTR) continue;
        return;  // the coordinator is gone; we notice EOF on stdin soon
      }
      p += n;
      left -= static_cast<std::size_t>(n);
    }
  }
  void ready() { send({{"event", "ready"}}); }
  void progress(std::uint64_t msgs) { send({{"event", "progress"}, {"msgs", msgs}}); }
  int fail(const Error& error) {
    send({{"event", "error"}, {"code", static_cast<int>(error.code)}, {"message", error.message}});
    return kExitFailure;
  }

  /// Reads whatever stdin holds, waiting up to `wait` for something. False once stdin ended.
  bool poll(std::chrono::milliseconds wait) {
    if (eof_) return false;
    pollfd p{STDIN_FILENO, POLLIN, 0};
    const int ready = ::poll(&p, 1, static_cast<int>(wait.count()));
    if (ready <= 0) return true;
    char chunk[256];
    const ssize_t n = ::read(STDIN_FILENO, chunk, sizeof chunk);
    if (n < 0) return errno == EINTR || errno == EAGAIN;
    if (n == 0) {
      eof_ = true;
      return false;
    }
    buffer_.append(chunk, static_cast<std::size_t>(n));
    for (auto nl = buffer_.find('\n'); nl != std::string::npos; nl = buffer_.find('\n')) {
      const std::string_view word(buffer_.data(), nl);
      if (word == "go") go_ = true;
      if (word == "done") done_ = true;
      buffer_.erase(0, nl + 1);
    }
    return true;
  }
  /// Waits for `go`; false when stdin ended first.
  bool wait_go() {
    while (!go_) {
      if (!poll(200ms)) return false;
    }
    return true;
  }
  bool done() const noexcept { return done_; }
  bool eof() const noexcept { return eof_; }

 private:
  std::string buffer_;
  bool go_ = false;
  bool done_ = false;
  bool eof_ = false;
};

std::string payload_of(std::uint64_t size) {
  std::string payload(size, '\0');
  for (std::size_t i = 0; i < payload.size(); ++i) payload[i] = static_cast<char>('a' + i % 26);
  return payload;
}

SubscribeOptions subscribe_options(const BenchFlags& flags) {
  SubscribeOptions options;
  options.wait = flags.spin ? WaitStrategy::busy_spin : WaitStrategy::spin_then_sleep;
  return options;
}

Result<Subscription> subscribe(Connection& conn, const BenchFlags& flags) {
  const auto options = subscribe_options(flags);
  return flags.queue.empty() ? conn.subscribe(flags.subject, options)
                             : conn.queue_subscribe(flags.subject, flags.queue, options);
}

// Calls `progress` at most every 100 ms; cheap enough to ask every few thousand messages.
class ProgressClock {
 public:
  explicit ProgressClock(bool enabled) : enabled_(enabled) {}
  bool due() {
    if (!enabled_) return false;
    const auto now = std::chrono::steady_clock::now();
    if (now < next_) return false;
    next_ = now + 100ms;
    return true;
  }

 private:
  bool enabled_;
  std::chrono::steady_clock::time_point next_{};
};

// ------------------------------------------------------------------------------------ publisher

int run_pub(const BenchFlags& flags, Channel& channel) {
  auto conn = connect(flags.client, "bus bench pub " + std::to_string(flags.index));
  if (!conn) return channel.fail(conn.error());
  const std::string payload = payload_of(flags.size);
  channel.ready();
  if (!channel.wait_go()) return kExitOk;

  ProgressClock progress(flags.progress);
  const std::int64_t start = now_ns();
  for (std::uint64_t i = 0; i < flags.msgs; ++i) {
    if (auto sent = conn->publish(flags.subject, payload); !sent) return channel.fail(sent.error());
    if ((i & 4095u) == 4095u && progress.due()) channel.progress(i + 1);
  }
  const std::int64_t end = now_ns();
  channel.send({{"event", "result"}, {"msgs", flags.msgs}, {"start_ns", start}, {"end_ns", end}});
  return kExitOk;
}

// --------------------------------------------------------------------------- subscriber / echo

// Counts (and with `echo` answers) messages until done: see the file comment.
int receive(const BenchFlags& flags, Channel& channel, bool echo) {
  auto conn = connect(flags.client, std::string(echo ? "bus bench echo " : "bus bench sub ") +
                                        std::to_string(flags.index));
  if (!conn) return channel.fail(conn.error());
  auto sub = subscribe(*conn, flags);
  if (!sub) return channel.fail(sub.error());
  channel.ready();

  // A plain subscriber knows how many messages it should see; a queue member or an echo does not.
  const std::uint64_t expect = echo || !flags.queue.empty() ? 0 : flags.msgs;
  std::uint64_t received = 0;
  std::int64_t first = 0;
  std::int64_t last = 0;
  std::optional<Error> respond_error;
  auto on_message = [&](const MessageView& msg) {
    if (received++ == 0) first = now_ns();
    if (echo && !msg.reply.empty() && !respond_error) {
      if (auto sent = msg.respond(msg.data); !sent) respond_error = sent.error();
    }
  };

  BrokerWatch broker(*conn);
  ProgressClock progress(flags.progress);
  constexpr std::int64_t kIdle = std::chrono::nanoseconds(kIdleAfterDone).count();
  constexpr std::int64_t kMax = std::chrono::nanoseconds(kMaxAfterDone).count();
  constexpr std::int64_t kLookEvery = std::chrono::nanoseconds(kPollInterval).count();
  std::int64_t quiet_since = 0;  // the last message, or `done` if later
  std::int64_t done_at = 0;      // when `done` came
  std::int64_t next_look = 0;    // when to look at stdin and the broker while busy
  for (;;) {
    auto handled = sub->try_poll(on_message, 4096);
    if (!handled) return channel.fail(handled.error());
    std::size_t got = *handled;
    if (got == 0) {
      // Nothing waiting: wait the subscription's way (spin, then sleep unless busy_spin).
      auto msg = sub->next(20ms);
      if (msg) {
        on_message(msg->view());
        got = 1;
      } else if (msg.error().code != Errc::timeout) {
        return channel.fail(msg.error());
      }
    }
    if (respond_error) return channel.fail(*respond_error);
    const std::int64_t now = now_ns();
    if (got > 0) {
      last = quiet_since = now;
      if (expect != 0 && received + sub->dropped_count() >= expect) break;
      if (progress.due()) channel.progress(received);
      if (now < next_look) continue;
    }
    // Idle, or busy for a while: the coordinator's words and the broker's health.
    next_look = now + kLookEvery;
    if (broker.gone()) return channel.fail(broker_gone_error(flags.client.bus_name));
    const bool was_done = channel.done();
    if (!channel.poll(0ms)) return kExitOk;  // the coordinator is gone
    if (channel.done() && !was_done) quiet_since = done_at = now;
    // Done once quiet for a moment; and in any case soon, even if someone else keeps publishing.
    if (channel.done() && (now - quiet_since >= kIdle || now - done_at >= kMax)) break;
  }
  const std::uint64_t dropped = sub->dropped_count();
  (void)sub->unsubscribe();
  channel.send({{"event", "result"},
                {"msgs", received},
                {"dropped", dropped},
                {"first_ns", first},
                {"last_ns", last}});
  return kExitOk;
}

// ---------------------------------------------------------------------------------------- ping

json percentiles(const bench::LatencyHistogram& rtt) {
  return {{"p50", rtt.percentile(50)},   {"p90", rtt.percentile(90)},
          {"p99", rtt.percentile(99)},   {"p999", rtt.percentile(99.9)},
          {"max", rtt.max()},            {"min", rtt.min()},
          {"mean", rtt.mean()},          {"count", rtt.count()}};
}

// One --latency round trip: publish with our reply subject, wait for the echo on `pong`.
// Returns the round trip in TSC ticks, or an error.
class Pinger {
 public:
  Pinger(Connection& conn, Subscription& pong, const BenchFlags& flags, std::string reply)
      : conn_(conn), pong_(pong), flags_(flags), reply_(std::move(reply)),
        timeout_ticks_(bench::CycleClock::from_ns(static_cast<double>(flags.client.timeout.count()))) {}

  Result<std::uint64_t> round_trip(std::string_view payload) {
    const std::uint64_t t0 = bench::cycle_now();
    if (auto sent = conn_.publish(flags_.subject, payload, reply_); !sent) return sent.error();
    if (flags_.spin) {
      const auto ignore = [](const MessageView&) {};
      for (std::uint32_t spins = 1;; ++spins) {
        auto n = pong_.try_poll(ignore, 1);
        if (!n) return n.error();
        if (*n == 1) break;
        if ((spins & 1023u) == 0 && bench::cycle_now() - t0 > timeout_ticks_) return timed_out();
      }
    } else {
      auto msg = pong_.next(flags_.client.timeout);
      if (!msg) return msg.error().code == Errc::timeout ? timed_out() : msg.error();
    }
    return bench::cycle_now_ordered() - t0;
  }

 private:
  Error timed_out() const {
    return make_error(Errc::timeout, "no echo of a ping on '" + flags_.subject + "' within " +
                                         tools::format_duration(flags_.client.timeout));
  }
  Connection& conn_;
  Subscription& pong_;
  const BenchFlags& flags_;
  std::string reply_;
  std::uint64_t timeout_ticks_;
};

Result<std::uint64_t> request_round_trip(Connection& conn, const BenchFlags& flags,
                                         std::string_view payload) {
  const std::uint64_t t0 = bench::cycle_now();
  auto reply = conn.request(flags.subject, payload, flags.client.timeout);
  const std::uint64_t t1 = bench::cycle_now_ordered();
  if (!reply) {
    if (reply.error().code == Errc::timeout) {
      return make_error(Errc::timeout, "no reply to a request on '" + flags.subject + "' within " +
                                           tools::format_duration(flags.client.timeout));
    }
    return reply.error();
  }
  return t1 - t0;
}

int run_ping(const BenchFlags& flags, Channel& channel) {
  auto conn = connect(flags.client, "bus bench ping");
  if (!conn) return channel.fail(conn.error());
  // A reply subject of our own (not a bus inbox: routed like any subject).
  const std::string reply = "_BENCH." + std::to_string(::getpid()) + ".pong";
  Subscription pong;
  if (flags.latency) {
    auto sub = conn->subscribe(reply, subscribe_options(flags));
    if (!sub) return channel.fail(sub.error());
    pong = std::move(*sub);
  }
  (void)bench::CycleClock::ns_per_tick();  // calibrate (20 ms) before being counted on
  const std::string payload = payload_of(flags.size);
  auto histogram = std::make_unique<bench::LatencyHistogram>();
  Pinger pinger(*conn, pong, flags, reply);
  auto once = [&]() -> Result<std::uint64_t> {
    return flags.request ? request_round_trip(*conn, flags, payload) : pinger.round_trip(payload);
  };
  channel.ready();
  if (!channel.wait_go()) return kExitOk;

  for (std::uint64_t i = 0, n = warmup_round_trips(flags.msgs); i < n; ++i) {
    if (auto ticks = once(); !ticks) return channel.fail(ticks.error());
  }
  ProgressClock progress(flags.progress);
  const std::int64_t start = now_ns();
  for (std::uint64_t i = 0; i < flags.msgs; ++i) {
    auto ticks = once();
    if (!ticks) return channel.fail(ticks.error());
    histogram->record(static_cast<std::uint64_t>(bench::CycleClock::to_ns(*ticks) + 0.5));
    if ((i & 63u) == 63u && progress.due()) channel.progress(i + 1);
  }
  const std::int64_t end = now_ns();
  channel.send({{"event", "result"},
                {"msgs", flags.msgs},
                {"start_ns", start},
                {"end_ns", end},
                {"rtt_ns", percentiles(*histogram)}});
  return kExitOk;
}

}  // namespace

int run_bench_role(const BenchFlags& flags) {
  // Ctrl-C reaches the whole process group: the coordinator handles it and stops us.
  ::signal(SIGINT, SIG_IGN);
  ::signal(SIGPIPE, SIG_IGN);
  if (flags.cpu >= 0) (void)bench::pin_to_cpu(flags.cpu);  // warns on stderr when it cannot
  Channel channel;
  if (flags.role == "pub") return run_pub(flags, channel);
  if (flags.role == "sub") return receive(flags, channel, /*echo=*/false);
  if (flags.role == "echo") return receive(flags, channel, /*echo=*/true);
  if (flags.role == "ping") return run_ping(flags, channel);
  return channel.fail(make_error(Errc::invalid_argument, "unknown bench role '" + flags.role + "'"));
}

}  // namespace bus::cli

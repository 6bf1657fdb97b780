// bench_bus.cpp — bus itself, measured the way bench_baseline measures the hardware, so the two
// can be read as ratios when run back to back (bench/ratios.sh does exactly that):
//
//   BM_RingPublishConsume/64     MpscRing claim+write+commit+poll of one 64-byte message, one
//                                thread: the ring's own cost with no cache-line transfer
//   BM_BusPingPong/<mode>        16-byte ping-pong through the bus between two pinned processes
//                                (embedded broker, subscribers on "bench.ping" / "bench.pong");
//                                one_way_ns = RTT/2. Modes: busy_spin, spin_then_sleep (default
//                                50 us budget), sleep (budget 0: every message a futex wake-up)
//   BM_BusThroughput/<size>      one publisher process -> one subscriber process, messages/s
//                                delivered (drops counted, publisher never blocks)
//   BM_PublishCounting/<mode>    publish + poll of a 16-byte message with the monitoring counters
//                                off (0: the baseline), on (1), and on while another process
//                                takes a monitoring snapshot every millisecond (2), as `bus top`
//                                or a Prometheus scrape would: counting must cost nothing visible
//   BM_PublishRouteHit/<subs>    publish to a subject with one matching subscription while
//                                <subs> non-matching ones exist: cost must not grow with <subs>
//                                (0, 10, 100, ..., 100,000; 100,000 4 KiB rings = 400 MiB of
//                                /dev/shm and ~5 s to subscribe; bench/scaling/run.sh plots it)
#include <benchmark/benchmark.h>
#include <sys/mman.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstring>
#include <memory>
#include <new>
#include <string>
#include <thread>
#include <vector>

#include "affinity.hpp"
#include "bus/bus.hpp"
#include "common/bus_peer.hpp"
#include "common/fork_peer.hpp"
#include "common/shm_region.hpp"
#include "cycle_clock.hpp"
#include "histogram.hpp"
#include "client/connection_impl.hpp"
#include "ring/mpsc_ring.hpp"

namespace {

using bus::bench::bench_broker_options;
using bus::bench::CycleClock;
using bus::bench::cycle_now;
using bus::bench::cycle_now_ordered;
using bus::bench::ForkPeer;
using bus::bench::LatencyHistogram;
using bus::bench::ScopedAffinity;
using bus::bench::peer_failed;
using bus::bench::peer_ready;
using bus::bench::SharedObject;
using bus::bench::stop_peer;
using bus::bench::stop_requested;
using bus::bench::unique_bus_name;
using bus::bench::wait_ready;

constexpr int kParentCpu = 0;
constexpr int kChildCpu = 1;
constexpr auto kStepTimeout = bus::bench::kPeerStepTimeout;

// Control block shared by the benchmark process and its forked peer.
struct PeerControl : bus::bench::PeerHandshake {
  alignas(128) std::atomic<std::uint64_t> received{0};
};

// ---------------------------------------------------------------------------------------------
void BM_RingPublishConsume(benchmark::State& state) {
  const auto payload_bytes = static_cast<std::uint32_t>(state.range(0));
  constexpr std::uint32_t kCapacity = 1 << 16;
  std::vector<std::byte> memory(sizeof(bus::detail::SubscriptionLayout) + kCapacity + 128);
  void* base = memory.data();
  std::size_t space = memory.size();
  base = std::align(128, sizeof(bus::detail::SubscriptionLayout), base, space);
  auto* ctl = new (base) bus::detail::SubscriptionLayout();
  ctl->incarnation.store(1);
  auto* data = static_cast<std::byte*>(base) + sizeof(bus::detail::SubscriptionLayout);
  bus::detail::MpscRing ring(ctl, data, kCapacity);
  bus::detail::ProducerCursor cursor{1, 0};
  std::uint64_t head = 0;
  const std::string subject = "bench.ring";
  const std::string payload(payload_bytes, 'x');
  const auto bytes = static_cast<std::uint32_t>(bus::detail::record_bytes(subject.size(), 0, 0, payload.size()));
  std::uint64_t sink = 0;
  bus::detail::ClaimLane lane{};
  bus::detail::RecordFields fields;
  fields.subject_len = static_cast<std::uint8_t>(subject.size());
  fields.payload_len = static_cast<std::uint32_t>(payload_bytes);
  for (auto _ : state) {
    bus::detail::Claim claim;
    if (ring.try_claim(cursor, bytes, lane, bus::detail::lane_tag(0), claim) != bus::detail::ClaimStatus::claimed) {
      state.SkipWithError("claim failed");
      break;
    }
    bus::detail::MpscRing::begin_write(claim, fields);
    char* out = reinterpret_cast<char*>(bus::detail::MpscRing::body(claim));
    std::memcpy(out, subject.data(), subject.size());
    std::memcpy(out + subject.size(), payload.data(), payload.size());
    (void)bus::detail::MpscRing::commit(claim, lane);
    std::uint32_t delivered = 0;
    ring.poll(head, 1, delivered, [&](const bus::detail::RecordView& v) { sink += v.payload_len; });
  }
  benchmark::DoNotOptimize(sink);
  state.SetItemsProcessed(state.iterations());
  state.SetBytesProcessed(state.iterations() * payload_bytes);
}
BENCHMARK(BM_RingPublishConsume)->Arg(16)->Arg(64);

// ---------------------------------------------------------------------------------------------
enum class PingMode { busy_spin = 0, spin_then_sleep = 1, sleep = 2 };

bus::SubscribeOptions options_for(PingMode mode) {
  bus::SubscribeOptions o;
  o.wait = mode == PingMode::busy_spin ? bus::WaitStrategy::busy_spin : bus::WaitStrategy::spin_then_sleep;
  if (mode == PingMode::sleep) o.spin_budget = std::chrono::nanoseconds(0);
  return o;
}

// Receives one message on `sub` with the mode's strategy. busy_spin polls without copying.
bool receive_one(bus::Subscription& sub, PingMode mode, std::string* copy_to) {
  if (mode == PingMode::busy_spin) {
    const auto deadline = cycle_now() + CycleClock::from_ns(3e9);
    for (std::uint32_t spins = 0;; ++spins) {
      auto n = sub.try_poll(
          [&](const bus::MessageView& v) {
            if (copy_to != nullptr) copy_to->assign(v.data);
          },
          1);
      if (!n) return false;
      if (n.value() == 1) return true;
      if ((spins & 1023u) == 0 && cycle_now() > deadline) return false;
    }
  }
  auto msg = sub.next(kStepTimeout);
  if (!msg) return false;
  if (copy_to != nullptr) *copy_to = std::move(msg->data);
  return true;
}

int run_echo_peer(const std::string& bus_name, PingMode mode, PeerControl& c) {
  auto conn = bus::Connection::connect(bus_name);
  if (!conn) return peer_failed(c);
  auto sub = conn->subscribe("bench.ping", options_for(mode));
  if (!sub) return peer_failed(c);
  peer_ready(c);
  std::string body;
  for (;;) {
    if (!receive_one(*sub, mode, &body)) {
      if (stop_requested(c)) return 0;
      continue;
    }
    if (body == "stop") return 0;
    if (!conn->publish("bench.pong", body)) return 2;
  }
}

void BM_BusPingPong(benchmark::State& state) {
  const auto mode = static_cast<PingMode>(state.range(0));
  ScopedAffinity pin(kParentCpu);
  const std::string name = unique_bus_name("pingpong");
  auto broker = bus::Broker::start(bench_broker_options(name));
  if (!broker) {
    state.SkipWithError(broker.error().message.c_str());
    return;
  }
  SharedObject<PeerControl> shared;
  PeerControl& c = *shared;
  ForkPeer peer(kChildCpu, [&] { return run_echo_peer(name, mode, c); });
  auto conn = bus::Connection::connect(name);
  auto sub = conn ? conn->subscribe("bench.pong", options_for(mode)) : bus::Result<bus::Subscription>(conn.error());
  if (!conn || !sub || !wait_ready(c, peer)) {
    state.SkipWithError("setup failed");
    return;
  }
  const std::string payload(16, 'p');
  auto round_trip = [&]() -> std::uint64_t {
    const std::uint64_t t0 = cycle_now();
    if (!conn->publish("bench.ping", payload)) return 0;
    if (!receive_one(*sub, mode, nullptr)) return 0;
    return cycle_now_ordered() - t0;
  };
  bool failed = false;
  for (int i = 0; i < 2000 && !failed; ++i) failed = round_trip() == 0;  // warm-up, routes cached
  auto hist = std::make_unique<LatencyHistogram>();
  double total_ns = 0;
  for (auto _ : state) {
    if (failed) break;
    const std::uint64_t ticks = round_trip();
    if (ticks == 0) {
      failed = true;
      break;
    }
    const double rtt_ns = CycleClock::to_ns(ticks);
    total_ns += rtt_ns;
    hist->record(static_cast<std::uint64_t>(rtt_ns / 2 + 0.5));
    state.SetIterationTime(rtt_ns * 1e-9);
  }
  (void)conn->publish("bench.ping", "stop");
  stop_peer(c, peer);
  if (failed) {
    state.SkipWithError("a round trip timed out");
    return;
  }
  using benchmark::Counter;
  state.counters["one_way_ns"] = Counter(total_ns / 2, Counter::kAvgIterations);
  state.counters["p50_ns"] = static_cast<double>(hist->percentile(50));
  state.counters["p90_ns"] = static_cast<double>(hist->percentile(90));
  state.counters["p99_ns"] = static_cast<double>(hist->percentile(99));
  state.counters["p999_ns"] = static_cast<double>(hist->percentile(99.9));
  state.counters["max_ns"] = static_cast<double>(hist->max());
}
BENCHMARK(BM_BusPingPong)
    ->ArgName("busy_spin0_spin_then_sleep1_sleep2")
    ->Arg(0)
    ->Arg(1)
    ->Arg(2)
    ->UseManualTime()
    ->Iterations(20000);

// ---------------------------------------------------------------------------------------------
int run_counting_peer(const std::string& bus_name, PeerControl& c) {
  auto conn = bus::Connection::connect(bus_name);
  auto sub = conn ? conn->subscribe("bench.tput", bus::SubscribeOptions{.wait = bus::WaitStrategy::busy_spin, .spin_budget = {}, .queue_group = {}})
                  : bus::Result<bus::Subscription>(conn.error());
  if (!conn || !sub) return peer_failed(c);
  peer_ready(c);
  std::uint64_t received = 0;
  const bus::MessageHandler count = [&](const bus::MessageView&) { ++received; };
  for (std::uint32_t spins = 0;; ++spins) {
    auto n = sub->try_poll(count, 256);
    if (!n) return 2;
    if (n.value() != 0) {
      // Release: the count is read by the parent after it stopped publishing.
      c.received.store(received, std::memory_order_release);
    } else if ((spins & 4095u) == 0 && stop_requested(c)) {
      return 0;
    }
  }
}

void BM_BusThroughput(benchmark::State& state) {
  const auto size = static_cast<std::size_t>(state.range(0));
  ScopedAffinity pin(kParentCpu);
  const std::string name = unique_bus_name("tput");
  auto broker = bus::Broker::start(bench_broker_options(name));
  if (!broker) {
    state.SkipWithError(broker.error().message.c_str());
    return;
  }
  SharedObject<PeerControl> shared;
  PeerControl& c = *shared;
  ForkPeer peer(kChildCpu, [&] { return run_counting_peer(name, c); });
  auto conn = bus::Connection::connect(name);
  if (!conn || !wait_ready(c, peer)) {
    state.SkipWithError("setup failed");
    return;
  }
  const std::string payload(size, 't');
  std::uint64_t published = 0;
  for (int i = 0; i < 1000; ++i) (void)conn->publish("bench.tput", payload);  // route cached
  const std::uint64_t before = c.received.load(std::memory_order_acquire);
  const auto t0 = std::chrono::steady_clock::now();
  for (auto _ : state) {
    for (int i = 0; i < 1000; ++i) {
      if (!conn->publish("bench.tput", payload)) {
        state.SkipWithError("publish failed");
        break;
      }
    }
    published += 1000;
  }
  // Let the subscriber finish what is in its ring, then count what it got.
  std::uint64_t got = 0;
  const auto settle = std::chrono::steady_clock::now() + std::chrono::milliseconds(200);
  do {
    got = c.received.load(std::memory_order_acquire) - before;
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  } while (got < published && std::chrono::steady_clock::now() < settle);
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  stop_peer(c, peer);
  state.SetItemsProcessed(static_cast<std::int64_t>(published));
  state.SetBytesProcessed(static_cast<std::int64_t>(published * size));
  state.counters["delivered_per_s"] = static_cast<double>(got) / secs;
  state.counters["drop_ratio"] = published == 0 ? 0.0 : 1.0 - static_cast<double>(got) / static_cast<double>(published);
}
BENCHMARK(BM_BusThroughput)->Arg(16)->Arg(64)->Arg(4096)->UseRealTime();

// ---------------------------------------------------------------------------------------------
/// One iteration: publish 16 bytes on `subject` and poll them back from a subscription to it, on
/// this thread (what one publish costs, with no cache-line transfer between cores).
void publish_and_poll(benchmark::State& state, bus::Connection& conn, const std::string& subject) {
  auto sub = conn.subscribe(subject);
  if (!sub) {
    state.SkipWithError(sub.error().message.c_str());
    return;
  }
  const std::string payload(16, 'p');
  const bus::MessageHandler drop = [](const bus::MessageView&) {};
  for (auto _ : state) {
    (void)conn.publish(subject, payload);
    (void)sub->try_poll(drop, 1);
  }
  state.SetItemsProcessed(state.iterations());
}

void BM_PublishCounting(benchmark::State& state) {
  const int mode = static_cast<int>(state.range(0));
  const std::string name = unique_bus_name("count");
  // The reader is forked first, while this process has one thread: it waits for the bus, then
  // looks at it every millisecond until it is killed (~ForkPeer).
  std::unique_ptr<bus::bench::ForkPeer> reader;
  if (mode == 2) {
    reader = std::make_unique<bus::bench::ForkPeer>(1, [name] {
      std::uint64_t seen = 0;
      for (;;) {
        if (auto snap = bus::monitor::snapshot(name)) seen += snap->in_msgs;
        std::this_thread::sleep_for(std::chrono::milliseconds(1));
      }
      return static_cast<int>(seen & 1);
    });
  }
  bus::bench::pin_to_cpu(0);
  bus::BrokerOptions o = bench_broker_options(name);
  o.ring_bytes = 1 << 16;
  o.max_payload = 512;
  auto broker = bus::Broker::start(o);
  if (!broker) {
    state.SkipWithError(broker.error().message.c_str());
    return;
  }
  auto conn = bus::Connection::connect(name);
  if (!conn) {
    state.SkipWithError(conn.error().message.c_str());
    return;
  }
  bus::detail::ConnectionAccess::set_counting(*conn, mode != 0);
  publish_and_poll(state, *conn, "bench.count");
  state.SetLabel(mode == 0 ? "counters off" : mode == 1 ? "counters on" : "counters on, reader polling");
}
BENCHMARK(BM_PublishCounting)->Arg(0)->Arg(1)->Arg(2)->Repetitions(5)->ReportAggregatesOnly(true);

// ---------------------------------------------------------------------------------------------
void BM_PublishRouteHit(benchmark::State& state) {
  const auto non_matching = static_cast<std::uint32_t>(state.range(0));
  const std::string name = unique_bus_name("route");
  bus::BrokerOptions o = bench_broker_options(name);
  o.max_subscriptions = non_matching + 8;
  o.ring_bytes = 4096;
  o.max_payload = 512;
  o.max_fanout = 8;
  auto broker = bus::Broker::start(o);
  if (!broker) {
    state.SkipWithError(broker.error().message.c_str());
    return;
  }
  auto conn = bus::Connection::connect(name);
  if (!conn) {
    state.SkipWithError(conn.error().message.c_str());
    return;
  }
  std::vector<bus::Subscription> others;
  others.reserve(non_matching);
  for (std::uint32_t i = 0; i < non_matching; ++i) {
    auto s = conn->subscribe("other." + std::to_string(i) + ".*");
    if (!s) {
      state.SkipWithError(s.error().message.c_str());
      return;
    }
    others.push_back(std::move(s).value());
  }
  publish_and_poll(state, *conn, "bench.hit");
  // Close first: the broker then reclaims all the subscriptions in one pass (0.3 s for 100,000).
  // Destroying them one by one would unsubscribe each with its own broker round trip (~5 s).
  (void)conn->close();
}
// A fixed iteration count: each run subscribes <subs> first (100,000 take ~5 s), and letting
// the library search for an iteration count would repeat that set-up ~7 times.
BENCHMARK(BM_PublishRouteHit)->Arg(0)->Arg(10)->Arg(100)->Arg(1000)->Arg(10000)->Arg(100000)->Iterations(2000000);

}  // namespace

BENCHMARK_MAIN();

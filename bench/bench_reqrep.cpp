// bench_reqrep.cpp — request/reply and queue groups, between two pinned processes (embedded
// broker and requester/publisher on CPU 0, forked peer on CPU 1), the way bench_bus measures
// pub/sub:
//
//   BM_RequestReply/<mode>           round trip of Connection::request() (16-byte body, one
//                                    request at a time) to a responder in the forked peer, which
//                                    answers with MessageView::respond(). Counters: p50/p90/p99/
//                                    p999/max of the round trip (ns), from the histogram; the
//                                    benchmark's time is the mean round trip. Modes:
//                                      0 pull_busy_spin     the peer spins on try_poll() itself
//                                      1 handler_busy_spin  handler subscription, dispatch thread
//                                                           with WaitStrategy::busy_spin
//                                      2 handler_spin_then_sleep  the same with the default
//                                                           spin_then_sleep (50 us budget)
//                                    The requester's inbox always uses the library's default
//                                    (spin_then_sleep); a reply that comes within the spin
//                                    budget costs it no wake-up.
//   BM_QueueGroupThroughput/<n>      one publisher -> a queue group of <n> members, all held by
//                                    the peer process and polled round-robin by its one thread
//                                    (2 cores: one for each side, whatever <n>). Counters:
//                                    delivered_per_s; drop_ratio, the messages no member got (the
//                                    publisher never blocks: a member whose ring is full refuses
//                                    and the next one is tried, so a loss needs every member
//                                    full); full_refusals, how often a member refused (the rings'
//                                    dropped counts, which count refusals even when another member
//                                    then took the message); min_share, the smallest member's
//                                    share over an even split (1 = perfectly even).
#include <benchmark/benchmark.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
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
constexpr int kMaxMembers = 8;

// Control block shared by the benchmark process and its forked peer.
struct PeerControl : bus::bench::PeerHandshake {
  alignas(128) std::atomic<std::uint64_t> received[kMaxMembers] = {};
  alignas(128) std::atomic<std::uint64_t> dropped{0};
  alignas(128) std::atomic<std::uint64_t> respond_failures{0};
};

// ---------------------------------------------------------------------------------------------
enum class ResponderMode { pull_busy_spin = 0, handler_busy_spin = 1, handler_spin_then_sleep = 2 };

int run_responder(const std::string& bus_name, ResponderMode mode, PeerControl& c) {
  auto conn = bus::Connection::connect(bus_name);
  if (!conn) return peer_failed(c);
  const bus::MessageHandler answer = [&c](const bus::MessageView& request) {
    if (!request.respond(request.data)) {
      // Relaxed: a tally read after the peer stopped.
      c.respond_failures.fetch_add(1, std::memory_order_relaxed);
    }
  };
  if (mode == ResponderMode::pull_busy_spin) {
    auto sub = conn->subscribe("bench.rr", bus::SubscribeOptions{.wait = bus::WaitStrategy::busy_spin,
                                                                 .spin_budget = {},
                                                                 .queue_group = {}});
    if (!sub) return peer_failed(c);
    peer_ready(c);
    for (std::uint32_t spins = 0;; ++spins) {
      auto n = sub->try_poll(answer, 16);
      if (!n) return 2;
      if (n.value() == 0 && (spins & 1023u) == 0 && stop_requested(c)) return 0;
    }
  }
  bus::SubscribeOptions options;
  options.wait = mode == ResponderMode::handler_busy_spin ? bus::WaitStrategy::busy_spin
                                                          : bus::WaitStrategy::spin_then_sleep;
  // The dispatch thread inherits this process's pin to the peer CPU; the main thread only waits.
  auto sub = conn->subscribe("bench.rr", answer, options);
  if (!sub) return peer_failed(c);
  peer_ready(c);
  while (!stop_requested(c)) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  return 0;
}

void BM_RequestReply(benchmark::State& state) {
  const auto mode = static_cast<ResponderMode>(state.range(0));
  ScopedAffinity pin(kParentCpu);
  const std::string name = unique_bus_name("reqrep");
  auto broker = bus::Broker::start(bench_broker_options(name));
  if (!broker) {
    state.SkipWithError(broker.error().message.c_str());
    return;
  }
  SharedObject<PeerControl> shared;
  PeerControl& c = *shared;
  ForkPeer peer(kChildCpu, [&] { return run_responder(name, mode, c); });
  auto conn = bus::Connection::connect(name);
  if (!conn || !wait_ready(c, peer)) {
    state.SkipWithError("setup failed");
    return;
  }
  const std::string payload(16, 'q');
  auto round_trip = [&]() -> std::uint64_t {
    const std::uint64_t t0 = cycle_now();
    auto reply = conn->request("bench.rr", payload, kStepTimeout);
    if (!reply || reply->data.size() != payload.size()) return 0;
    return cycle_now_ordered() - t0;
  };
  bool failed = false;
  // Warm-up: the inbox subscription, both routes, and the caches on both sides.
  for (int i = 0; i < 2000 && !failed; ++i) failed = round_trip() == 0;
  auto hist = std::make_unique<LatencyHistogram>();
  for (auto _ : state) {
    if (failed) break;
    const std::uint64_t ticks = round_trip();
    if (ticks == 0) {
      failed = true;
      break;
    }
    const double rtt_ns = CycleClock::to_ns(ticks);
    hist->record(static_cast<std::uint64_t>(rtt_ns + 0.5));
    state.SetIterationTime(rtt_ns * 1e-9);
  }
  stop_peer(c, peer);
  if (failed) {
    state.SkipWithError("a request failed or timed out");
    return;
  }
  state.SetItemsProcessed(state.iterations());
  state.counters["p50_ns"] = static_cast<double>(hist->percentile(50));
  state.counters["p90_ns"] = static_cast<double>(hist->percentile(90));
  state.counters["p99_ns"] = static_cast<double>(hist->percentile(99));
  state.counters["p999_ns"] = static_cast<double>(hist->percentile(99.9));
  state.counters["max_ns"] = static_cast<double>(hist->max());
  state.counters["respond_failures"] = static_cast<double>(c.respond_failures.load(std::memory_order_relaxed));
}
BENCHMARK(BM_RequestReply)
    ->ArgName("pull_busy0_handler_busy1_handler_sleep2")
    ->Arg(0)
    ->Arg(1)
    ->Arg(2)
    ->UseManualTime()
    ->Iterations(50000);

// ---------------------------------------------------------------------------------------------
int run_members(const std::string& bus_name, int members, PeerControl& c) {
  auto conn = bus::Connection::connect(bus_name);
  if (!conn) return peer_failed(c);
  std::vector<bus::Subscription> subs;
  for (int i = 0; i < members; ++i) {
    // busy_spin: publishers never make a wake-up syscall; this thread polls every member.
    auto sub = conn->queue_subscribe("bench.q", "workers",
                                     bus::SubscribeOptions{.wait = bus::WaitStrategy::busy_spin,
                                                           .spin_budget = {},
                                                           .queue_group = {}});
    if (!sub) return peer_failed(c);
    subs.push_back(std::move(sub).value());
  }
  peer_ready(c);
  std::vector<std::uint64_t> received(static_cast<std::size_t>(members), 0);
  for (std::uint32_t spins = 0;; ++spins) {
    std::size_t handled = 0;
    for (int i = 0; i < members; ++i) {
      std::uint64_t& count = received[static_cast<std::size_t>(i)];
      auto n = subs[static_cast<std::size_t>(i)].try_poll([&count](const bus::MessageView&) { ++count; }, 256);
      if (!n) return 2;
      if (n.value() != 0) {
        handled += n.value();
        // Release: read by the parent after it stopped publishing.
        c.received[i].store(count, std::memory_order_release);
      }
    }
    if (handled == 0 && (spins & 4095u) == 0) {
      std::uint64_t dropped = 0;
      for (const auto& s : subs) dropped += s.dropped_count();
      c.dropped.store(dropped, std::memory_order_release);
      if (stop_requested(c)) return 0;
    }
  }
}

void BM_QueueGroupThroughput(benchmark::State& state) {
  const int members = static_cast<int>(state.range(0));
  ScopedAffinity pin(kParentCpu);
  const std::string name = unique_bus_name("qtput");
  auto broker = bus::Broker::start(bench_broker_options(name));
  if (!broker) {
    state.SkipWithError(broker.error().message.c_str());
    return;
  }
  SharedObject<PeerControl> shared;
  PeerControl& c = *shared;
  ForkPeer peer(kChildCpu, [&] { return run_members(name, members, c); });
  auto conn = bus::Connection::connect(name);
  if (!conn || !wait_ready(c, peer)) {
    state.SkipWithError("setup failed");
    return;
  }
  auto total_received = [&] {
    std::uint64_t sum = 0;
    for (int i = 0; i < members; ++i) sum += c.received[i].load(std::memory_order_acquire);
    return sum;
  };
  const std::string payload(64, 'w');
  for (int i = 0; i < 1000; ++i) (void)conn->publish("bench.q", payload);  // route cached
  std::uint64_t before[kMaxMembers] = {};
  {
    const auto settle = std::chrono::steady_clock::now() + std::chrono::milliseconds(200);
    while (total_received() < 1000 && std::chrono::steady_clock::now() < settle) {
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    for (int i = 0; i < members; ++i) before[i] = c.received[i].load(std::memory_order_acquire);
  }
  const std::uint64_t dropped_before = c.dropped.load(std::memory_order_acquire);
  std::uint64_t published = 0;
  const auto t0 = std::chrono::steady_clock::now();
  for (auto _ : state) {
    for (int i = 0; i < 1000; ++i) {
      if (!conn->publish("bench.q", payload)) {
        state.SkipWithError("publish failed");
        break;
      }
    }
    published += 1000;
  }
  // Let the members finish what is in their rings, then count what they got.
  std::uint64_t got = 0;
  const auto settle = std::chrono::steady_clock::now() + std::chrono::milliseconds(300);
  std::uint64_t before_total = 0;
  for (int i = 0; i < members; ++i) before_total += before[i];
  do {
    got = total_received() - before_total;
    if (got >= published) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  } while (std::chrono::steady_clock::now() < settle);
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  std::uint64_t min_member = ~0ull;
  for (int i = 0; i < members; ++i) {
    min_member = std::min(min_member, c.received[i].load(std::memory_order_acquire) - before[i]);
  }
  stop_peer(c, peer);  // the peer stores its final drop count before it leaves
  const std::uint64_t dropped = c.dropped.load(std::memory_order_acquire) - dropped_before;
  state.SetItemsProcessed(static_cast<std::int64_t>(published));
  state.counters["delivered_per_s"] = static_cast<double>(got) / secs;
  state.counters["drop_ratio"] =
      published == 0 ? 0.0 : 1.0 - static_cast<double>(got) / static_cast<double>(published);
  state.counters["full_refusals"] = static_cast<double>(dropped);
  state.counters["min_share"] =
      got == 0 ? 0.0 : static_cast<double>(min_member) * members / static_cast<double>(got);
}
BENCHMARK(BM_QueueGroupThroughput)->ArgName("members")->Arg(1)->Arg(2)->Arg(4)->UseRealTime();

}  // namespace

BENCHMARK_MAIN();

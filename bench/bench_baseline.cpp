// bench/bench_baseline.cpp — the bare hardware limits between two processes, the floor every bus
// benchmark is compared with. The benchmark process is pinned to CPU 0, a forked child to CPU 1,
// and they talk only through an anonymous MAP_SHARED mapping created before the fork.
//
//   BM_CacheLinePingPong      one sequence number bounced between two cache lines (parent writes
//                             `ping`, child echoes into `pong`). Time = round trip; counters:
//                             one_way_ns (mean RTT/2) and p50/p90/p99/p999/max of RTT/2.
//   BM_SpscRingThroughput/N   a minimal rigtorp-style SPSC byte ring: producer = this process,
//                             consumer = child; N-byte messages behind a length word; the consumer
//                             publishes its head every kHeadBatch messages or when it runs dry.
//                             Reports items/s and bytes/s (payload bytes).
//
// Both terminate reliably: the child leaves when it sees `stop` (or after kChildIdleLimit without
// news, or when the parent dies: PDEATHSIG); every parent spin has a deadline; ForkPeer's
// destructor SIGKILLs and reaps a child that is still there.
//
// Memory-ordering pairs (x86: all plain MOVs; they matter for the compiler and for other ISAs):
//   [R0]/[A0] child -> parent: child_cpu store publishes "pinned, running, about to spin".
//   [R1]/[A1] parent -> child: ping (sequence number only, no payload behind it).
//   [R2]/[A2] child -> parent: pong echo (sequence number only).
//   [R3]/[A3] parent -> child: stop; everything the parent did before is visible to the child.
//   [R4]/[A4] producer -> consumer: ring tail; publishes the record bytes written below it.
//   [R5]/[A5] consumer -> producer: ring head; publishes "bytes below head are free to overwrite".
//   [R6]/[A6] child -> parent: `done`; publishes the consumer's final tallies.
#include <benchmark/benchmark.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>
#include <string>
#include <thread>

#include "affinity.hpp"
#include "common/fork_peer.hpp"
#include "common/shm_region.hpp"
#include "cycle_clock.hpp"
#include "histogram.hpp"

namespace {

using bus::bench::current_cpu;
using bus::bench::CycleClock;
using bus::bench::cycle_now;
using bus::bench::cycle_now_ordered;
using bus::bench::ForkPeer;
using bus::bench::LatencyHistogram;
using bus::bench::ScopedAffinity;
using bus::bench::SharedObject;

constexpr int kParentCpu = 0;
constexpr int kChildCpu = 1;
// 128, not 64: the adjacent-line prefetcher pulls cache lines in pairs.
constexpr std::size_t kBlock = 128;
// How long the parent waits for any single step of the child before giving up.
constexpr auto kStepTimeout = std::chrono::seconds(2);
// A child that hears nothing for this long assumes it was forgotten and leaves.
constexpr auto kChildIdleLimit = std::chrono::seconds(10);
constexpr int kExitIdle = 3;
constexpr int kExitCorrupt = 4;

static_assert(std::atomic<std::uint64_t>::is_always_lock_free,
              "cross-process atomics must be lock-free");
static_assert(std::atomic<std::uint32_t>::is_always_lock_free);

inline void cpu_relax() noexcept {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#endif
}

// A spin deadline that reads the clock only every 1024 calls (spins are ~1 ns, a read ~16 ns).
class SpinDeadline {
 public:
  explicit SpinDeadline(std::chrono::nanoseconds limit)
      : limit_ticks_(CycleClock::from_ns(static_cast<double>(limit.count()))) {
    restart();
  }
  void restart() noexcept { restart(cycle_now()); }
  void restart(std::uint64_t now_ticks) noexcept {
    start_ = now_ticks;
    spins_ = 0;
  }
  bool expired() noexcept {
    return (++spins_ & 1023u) == 0 && cycle_now() - start_ > limit_ticks_;
  }

 private:
  std::uint64_t limit_ticks_;
  std::uint64_t start_ = 0;
  std::uint32_t spins_ = 0;
};

// Waits for the child's [R0] and checks that both sides sit on their own core.
// Returns an error message, or nullptr when ready.
const char* wait_child_ready(const std::atomic<std::int32_t>& child_cpu, ForkPeer& child,
                             const ScopedAffinity& pin) {
  const auto deadline = std::chrono::steady_clock::now() + kStepTimeout;
  int cpu;
  while ((cpu = child_cpu.load(std::memory_order_acquire)) < 0) {  // [A0] pairs with child's [R0]
    if (std::chrono::steady_clock::now() > deadline || !child.running()) {
      return "child did not start";
    }
    std::this_thread::yield();
  }
  if (!pin.pinned() || current_cpu() != kParentCpu || cpu != kChildCpu) {
    return "needs CPUs 0 and 1 (parent on 0, child on 1)";
  }
  return nullptr;
}

// Sets stop, gives the child a moment to leave, and reports a bad exit.
void stop_child(benchmark::State& state, std::atomic<std::uint32_t>& stop, ForkPeer& child) {
  stop.store(1, std::memory_order_release);  // [R3] pairs with the child's [A3]
  const auto status = child.wait_for(kStepTimeout);
  if (!status) {
    child.kill_and_reap();
    if (!state.error_occurred()) state.SkipWithError("child ignored stop; killed");
  } else if (*status != 0 && !state.error_occurred()) {
    state.SkipWithError(("child exited with status " + std::to_string(*status)).c_str());
  }
}

// ---------------------------------------------------------------------------------------------
// BM_CacheLinePingPong

struct PingPongShared {
  alignas(kBlock) std::atomic<std::uint64_t> ping{0};  // written by parent only
  alignas(kBlock) std::atomic<std::uint64_t> pong{0};  // written by child only
  alignas(kBlock) std::atomic<std::uint32_t> stop{0};
  alignas(kBlock) std::atomic<std::int32_t> child_cpu{-1};
};

int run_echo(PingPongShared& s) {
  s.child_cpu.store(current_cpu(), std::memory_order_release);  // [R0] pairs with parent's [A0]
  std::uint64_t seen = 0;
  std::uint64_t seen_at_check = 0;
  std::uint32_t spins = 0;
  auto last_news = std::chrono::steady_clock::now();
  for (;;) {
    // Pure load spin, no pause: the line is re-fetched the instant the parent's write lands.
    const std::uint64_t v = s.ping.load(std::memory_order_acquire);  // [A1] pairs with [R1]
    if (v != seen) {
      seen = v;
      s.pong.store(v, std::memory_order_release);  // [R2] pairs with parent's [A2]
      continue;
    }
    if ((++spins & 0xFFFFu) == 0) {  // ~every 65k idle spins: stop or idle-limit check
      if (s.stop.load(std::memory_order_acquire) != 0) return 0;  // [A3] pairs with [R3]
      const auto now = std::chrono::steady_clock::now();
      if (seen != seen_at_check) {  // pings arrived since the last check
        seen_at_check = seen;
        last_news = now;
      } else if (now - last_news > kChildIdleLimit) {
        return kExitIdle;
      }
    }
  }
}

void BM_CacheLinePingPong(benchmark::State& state) {
  ScopedAffinity pin(kParentCpu);
  SharedObject<PingPongShared> shared;
  PingPongShared& s = *shared;
  ForkPeer child(kChildCpu, [&s] { return run_echo(s); });
  if (const char* err = wait_child_ready(s.child_cpu, child, pin)) {
    state.SkipWithError(err);
    return;
  }

  auto hist = std::make_unique<LatencyHistogram>();  // ~30 KiB: allocated here, not in the loop
  SpinDeadline deadline(kStepTimeout);
  std::uint64_t seq = 0;
  bool failed = false;
  // One round trip; returns its length in TSC ticks, or 0 if the child stopped answering.
  auto round_trip = [&]() -> std::uint64_t {
    ++seq;
    const std::uint64_t t0 = cycle_now();
    deadline.restart(t0);
    s.ping.store(seq, std::memory_order_release);  // [R1] pairs with child's [A1]
    while (s.pong.load(std::memory_order_acquire) != seq) {  // [A2] pairs with child's [R2]
      if (deadline.expired()) return 0;
    }
    return cycle_now_ordered() - t0;
  };

  for (int i = 0; i < 1000; ++i) {  // warm-up: lines owned, branch predictors trained
    if (round_trip() == 0) { failed = true; break; }
  }

  double total_rtt_ns = 0;
  if (!failed) {
    for (auto _ : state) {
      const std::uint64_t ticks = round_trip();
      if (ticks == 0) { failed = true; break; }
      const double rtt_ns = CycleClock::to_ns(ticks);
      total_rtt_ns += rtt_ns;
      hist->record(static_cast<std::uint64_t>(rtt_ns / 2 + 0.5));
      state.SetIterationTime(rtt_ns * 1e-9);
    }
  }
  if (failed) state.SkipWithError("child stopped echoing (deadline)");
  stop_child(state, s.stop, child);
  if (state.error_occurred()) return;

  using benchmark::Counter;
  state.counters["one_way_ns"] = Counter(total_rtt_ns / 2, Counter::kAvgIterations);
  state.counters["p50_ns"] = static_cast<double>(hist->percentile(50));
  state.counters["p90_ns"] = static_cast<double>(hist->percentile(90));
  state.counters["p99_ns"] = static_cast<double>(hist->percentile(99));
  state.counters["p999_ns"] = static_cast<double>(hist->percentile(99.9));
  state.counters["max_ns"] = static_cast<double>(hist->max());
}
BENCHMARK(BM_CacheLinePingPong)->UseManualTime();

// ---------------------------------------------------------------------------------------------
// BM_SpscRingThroughput/N

constexpr std::size_t kRingBytes = std::size_t{1} << 16;  // 64 KiB: well inside L2 (512 KiB/core)
constexpr std::uint64_t kRingMask = kRingBytes - 1;
constexpr std::uint32_t kPadLength = 0xFFFFFFFFu;  // length word of a skip-to-wrap filler
constexpr std::size_t kLengthWord = sizeof(std::uint32_t);
constexpr std::size_t kRecordAlign = 8;
constexpr std::size_t kMaxPayload = 1024;
constexpr std::uint32_t kHeadBatch = 32;  // consumer publishes head at least every 32 messages

constexpr std::uint64_t record_bytes(std::size_t payload) {
  return (kLengthWord + payload + kRecordAlign - 1) / kRecordAlign * kRecordAlign;
}

struct RingShared {
  alignas(kBlock) std::atomic<std::uint64_t> tail{0};  // bytes ever written; producer only
  alignas(kBlock) std::atomic<std::uint64_t> head{0};  // bytes ever consumed; consumer only
  alignas(kBlock) std::atomic<std::uint32_t> stop{0};
  alignas(kBlock) std::atomic<std::int32_t> child_cpu{-1};
  alignas(kBlock) std::atomic<std::uint32_t> done{0};
  std::uint64_t consumed = 0;   // messages, written by the child before [R6]
  std::uint64_t bad = 0;        // wrong length or out-of-order sequence number
  alignas(kBlock) std::array<std::byte, kRingBytes> data;
};

// Producer side, in the parent's own memory: its tail and its cached copy of the consumer's head.
class RingProducer {
 public:
  explicit RingProducer(RingShared& r) noexcept : r_(r) {}

  // Appends one message; false if the ring lacks room even after refreshing the head.
  bool try_push(const void* payload, std::uint32_t n) noexcept {
    const std::uint64_t rec = record_bytes(n);
    std::uint64_t off = tail_ & kRingMask;
    const std::uint64_t pad = kRingBytes - off < rec ? kRingBytes - off : 0;
    if (tail_ + pad + rec - cached_head_ > kRingBytes) {
      cached_head_ = r_.head.load(std::memory_order_acquire);  // [A5] pairs with consumer's [R5]
      if (tail_ + pad + rec - cached_head_ > kRingBytes) return false;
    }
    if (pad != 0) {
      std::memcpy(&r_.data[off], &kPadLength, kLengthWord);
      tail_ += pad;
      off = 0;
    }
    std::memcpy(&r_.data[off + kLengthWord], payload, n);
    std::memcpy(&r_.data[off], &n, kLengthWord);
    tail_ += rec;
    r_.tail.store(tail_, std::memory_order_release);  // [R4] pairs with consumer's [A4]
    return true;
  }
  std::uint64_t tail() const noexcept { return tail_; }

 private:
  RingShared& r_;
  std::uint64_t tail_ = 0;
  std::uint64_t cached_head_ = 0;
};

// Consumer (child): drains until stop, checking every length and sequence number.
int run_consumer(RingShared& r, std::uint32_t expected_len) {
  r.child_cpu.store(current_cpu(), std::memory_order_release);  // [R0] pairs with parent's [A0]
  std::uint64_t head = 0;
  std::uint64_t cached_tail = 0;
  std::uint64_t published = 0;
  std::uint32_t since_publish = 0;
  std::uint64_t next_seq = 1;
  std::uint64_t consumed = 0;
  std::uint64_t bad = 0;
  std::uint32_t idle_spins = 0;
  std::uint64_t consumed_at_check = 0;
  auto last_news = std::chrono::steady_clock::now();
  std::array<std::byte, kMaxPayload> sink;
  int rc = 0;

  for (;;) {
    if (head == cached_tail) {
      if (head != published) {  // running dry: hand back every byte read so far
        r.head.store(head, std::memory_order_release);  // [R5] pairs with producer's [A5]
        published = head;
        since_publish = 0;
      }
      cached_tail = r.tail.load(std::memory_order_acquire);  // [A4] pairs with producer's [R4]
      if (head == cached_tail) {
        if ((++idle_spins & 0xFFFu) == 0) {  // every 4096 empty polls: stop or idle limit
          if (r.stop.load(std::memory_order_acquire) != 0) break;  // [A3] pairs with [R3]
          const auto now = std::chrono::steady_clock::now();
          if (consumed != consumed_at_check) {
            consumed_at_check = consumed;
            last_news = now;
          } else if (now - last_news > kChildIdleLimit) {
            rc = kExitIdle;
            break;
          }
        }
        cpu_relax();
        continue;
      }
    }
    const std::uint64_t off = head & kRingMask;
    std::uint32_t len;
    std::memcpy(&len, &r.data[off], kLengthWord);
    if (len == kPadLength) {
      head += kRingBytes - off;
      continue;
    }
    if (len > kMaxPayload || head + record_bytes(len) > cached_tail) {
      rc = kExitCorrupt;  // a length the producer cannot have written: stop reading
      break;
    }
    std::memcpy(sink.data(), &r.data[off + kLengthWord], len);  // "deliver": copy it out
    std::uint64_t seq = 0;
    std::memcpy(&seq, sink.data(), std::min<std::size_t>(len, sizeof seq));
    if (len != expected_len || seq != next_seq) ++bad;
    next_seq = seq + 1;
    ++consumed;
    head += record_bytes(len);
    if (++since_publish == kHeadBatch) {
      r.head.store(head, std::memory_order_release);  // [R5] pairs with producer's [A5]
      published = head;
      since_publish = 0;
    }
  }
  r.consumed = consumed;
  r.bad = bad;
  r.done.store(1, std::memory_order_release);  // [R6] pairs with parent's [A6]
  return rc;
}

void BM_SpscRingThroughput(benchmark::State& state) {
  const auto len = static_cast<std::uint32_t>(state.range(0));
  if (len < sizeof(std::uint64_t) || len > kMaxPayload) {
    state.SkipWithError("payload must be 8..1024 bytes");
    return;
  }
  ScopedAffinity pin(kParentCpu);
  SharedObject<RingShared> shared;
  RingShared& r = *shared;
  ForkPeer child(kChildCpu, [&r, len] { return run_consumer(r, len); });
  if (const char* err = wait_child_ready(r.child_cpu, child, pin)) {
    state.SkipWithError(err);
    return;
  }

  RingProducer producer(r);
  std::array<std::byte, kMaxPayload> msg{};
  std::uint64_t seq = 0;
  SpinDeadline deadline(kStepTimeout);
  bool failed = false;
  for (auto _ : state) {
    ++seq;
    std::memcpy(msg.data(), &seq, sizeof seq);
    if (!producer.try_push(msg.data(), len)) {
      deadline.restart();
      do {
        cpu_relax();
        if (deadline.expired()) { failed = true; break; }
      } while (!producer.try_push(msg.data(), len));
      if (failed) break;
    }
  }
  if (failed) state.SkipWithError("consumer stopped draining (deadline)");

  // Outside the timed loop: let the consumer drain (it publishes head when it runs dry).
  deadline.restart();
  while (!failed && r.head.load(std::memory_order_acquire) != producer.tail()) {  // [A5]
    cpu_relax();
    if (deadline.expired()) {
      state.SkipWithError("consumer did not drain (deadline)");
      break;
    }
  }
  stop_child(state, r.stop, child);
  if (state.error_occurred()) return;
  if (r.done.load(std::memory_order_acquire) == 0 ||  // [A6] pairs with child's [R6]
      r.consumed != seq || r.bad != 0) {
    state.SkipWithError(("consumer saw " + std::to_string(r.consumed) + " of " +
                         std::to_string(seq) + " messages, " + std::to_string(r.bad) + " bad")
                            .c_str());
    return;
  }
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations()));
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations()) * len);
  state.counters["record_bytes"] = static_cast<double>(record_bytes(len));
}
BENCHMARK(BM_SpscRingThroughput)->Arg(16)->Arg(64)->UseRealTime();

}  // namespace

BENCHMARK_MAIN();

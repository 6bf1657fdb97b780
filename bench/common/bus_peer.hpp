// bench/common/bus_peer.hpp — what the bus benchmarks share: a private bus per benchmark, and
// the handshake between the benchmark process and the ForkPeer that plays the other side.
//
//   bus::bench::PeerHandshake: `ready` (peer subscribed: 1, failed: -1) and `stop` (parent asks
//   the peer to leave), each on its own 128-byte block; lives in a SharedObject.
//   wait_ready(h, peer)  /  peer_failed(h)  /  stop_peer(h, peer)
#pragma once

#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <string>
#include <thread>

#include "bus/options.hpp"
#include "common/fork_peer.hpp"

namespace bus::bench {

inline constexpr auto kPeerStepTimeout = std::chrono::seconds(3);

/// "bench-<tag>-<pid>-<n>": benchmarks never share a bus, even when run concurrently.
inline std::string unique_bus_name(const char* tag) {
  static int counter = 0;
  return std::string("bench-") + tag + "-" + std::to_string(::getpid()) + "-" + std::to_string(counter++);
}

/// A small, quiet embedded broker: 1 MiB rings, 64 KiB messages.
inline bus::BrokerOptions bench_broker_options(const std::string& name, std::uint32_t max_subscriptions = 32) {
  bus::BrokerOptions o;
  o.bus_name = name;
  o.ring_bytes = 1u << 20;
  o.max_payload = 64u << 10;
  o.max_subscriptions = max_subscriptions;
  o.max_fanout = max_subscriptions;
  o.log = false;
  return o;
}

struct PeerHandshake {
  alignas(128) std::atomic<int> ready{0};  // peer subscribed: 1, failed: -1
  alignas(128) std::atomic<int> stop{0};   // parent asks the peer to leave
};

/// Waits (bounded) until the peer says it is subscribed; false if it failed or died.
inline bool wait_ready(const PeerHandshake& h, ForkPeer& peer) {
  const auto deadline = std::chrono::steady_clock::now() + kPeerStepTimeout;
  // Acquire: pairs with the peer's release of `ready` after its subscribe() returned.
  while (h.ready.load(std::memory_order_acquire) == 0) {
    if (std::chrono::steady_clock::now() > deadline || !peer.running()) return false;
    std::this_thread::sleep_for(std::chrono::microseconds(100));
  }
  return h.ready.load(std::memory_order_acquire) == 1;
}

/// In the peer: report a failed set-up; returns the peer's exit code.
inline int peer_failed(PeerHandshake& h) {
  h.ready.store(-1, std::memory_order_release);  // pairs with wait_ready's acquire
  return 1;
}

/// In the peer: report that it is subscribed.
inline void peer_ready(PeerHandshake& h) { h.ready.store(1, std::memory_order_release); }

/// In the peer: has the parent asked us to leave?
inline bool stop_requested(const PeerHandshake& h) {
  return h.stop.load(std::memory_order_acquire) != 0;  // pairs with stop_peer's release
}

/// Asks the peer to leave and reaps it (SIGKILL if it does not leave in time).
inline void stop_peer(PeerHandshake& h, ForkPeer& peer) {
  h.stop.store(1, std::memory_order_release);
  if (!peer.wait_for(kPeerStepTimeout)) peer.kill_and_reap();
}

}  // namespace bus::bench

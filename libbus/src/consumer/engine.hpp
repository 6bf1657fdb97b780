// consumer/engine.hpp — the broker's consumers (bus/consumer.hpp has the semantics).
//
// The engine is a bus client living in the broker's process, as JetStream is an internal client
// of nats-server: it connects to the bus like any other process, answers $JS.API.CONSUMER.*
// requests, reads each stream's journal with a StreamReader, hands messages out with the
// ordinary publish path (straight into a fetcher's inbox ring, or onto a push consumer's deliver
// subject), and takes acknowledgements from a subscription to $JS.ACK.>. Its interface to the
// broker's event loop is three thread-safe calls: start, stream_removed, consumer_count. It never
// blocks the loop: everything it does is on its own threads.
//
// Threads: the engine thread owns every consumer (no locks on them). It sleeps on one condition
// variable, woken by the API and ack subscriptions' handlers (which queue what came) and by one
// watcher thread per stream with a consumer that has caught up and wants more: the watcher
// sleeps on the journal's commit futex (Journal::Cursor::wait), so an idle bus costs nothing.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include "bus/message.hpp"

namespace bus::detail::consumer {

class ConsumerEngine {
 public:
  using Log = std::function<void(const std::string&)>;

  /// `state_dir`: the broker's store (durable consumers live under it, consumer/store.hpp).
  ConsumerEngine(std::string bus_name, std::string state_dir, Log log);
  ~ConsumerEngine();  ///< stops and joins its threads
  ConsumerEngine(const ConsumerEngine&) = delete;
  ConsumerEngine& operator=(const ConsumerEngine&) = delete;

  /// Starts the engine thread (once): it connects to the bus, loads the durable consumers and
  /// serves. Called by the broker when it serves streams; returns at once.
  void start();
  /// The stream is gone (its directory, consumers included, already removed): drop its
  /// consumers. Thread-safe.
  void stream_removed(const std::string& stream);
  /// Consumers of `stream` now. Thread-safe.
  /// Consumers of `stream`; nullopt until the durable consumers are loaded (the engine's thread
  /// does it once it has connected): not known yet is not none.
  std::optional<std::uint32_t> consumer_count(const std::string& stream) const;
  /// Asks the engine to save every durable's state and leave the bus; returns at once. The
  /// broker keeps serving until finished() (its control channel is what the engine closes on).
  void request_stop() noexcept;
  bool finished() const noexcept;

 private:
  void stop() noexcept;
  void notify() noexcept;
  std::string bus_name_;
  std::string state_dir_;
  Log log_;

  std::thread thread_;
  std::atomic<bool> started_{false};
  mutable std::mutex mutex_;  // guards everything below that other threads touch
  std::condition_variable wake_;
  bool stopping_ = false;
  bool finished_ = false;
  bool woken_ = false;
  std::vector<Message> incoming_;  // API requests and acks, queued by the subscriptions' handlers
  std::vector<std::string> removed_streams_;
  mutable std::mutex counts_mutex_;
  std::unordered_map<std::string, std::uint32_t> counts_;  // stream -> consumers
  bool counts_known_ = false;                               // durables loaded
  friend struct EngineLoop;
};

}  // namespace bus::detail::consumer

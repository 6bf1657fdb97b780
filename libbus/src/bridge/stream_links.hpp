// bridge/stream_links.hpp — streams across hosts: a bus stream copied into a JetStream stream,
// and a JetStream stream copied into a bus stream, each at least once and resumable.
//
//   export  a durable bus consumer ("bridge-<name>-<js stream>") reads the bus stream; each
//           message is published to JetStream (asynchronously, Nats-Msg-Id set: the message's
//           own, else "bus.<bus>.<stream>.<seq>") and acknowledged on the bus only once
//           JetStream's PubAck came. After any restart the consumer redelivers what was not
//           acknowledged, and JetStream's duplicate window stores it once.
//   import  a durable JetStream pull consumer ("bus-bridge-<name>") reads the JetStream stream;
//           each message is stored in the bus stream (bus Nats-Msg-Id: its own, else
//           "js.<stream>.<seq>") and acknowledged on JetStream once the bus stream stored it.
// What crossed keeps a Bus-Origin header in the journal, so it is never copied back.
#pragma once

#include <nats/nats.h>

#include <atomic>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "bus/bridge.hpp"
#include "bus/connection.hpp"

namespace bus::detail::bridge {

class StreamLink {
 public:
  /// Starts copying per `rule` on its own thread. `origin`: this bus's Bus-Origin value.
  static Result<std::unique_ptr<StreamLink>> start(const BridgeStreamRule& rule, const BridgeOptions& options,
                                                   Connection& bus, natsConnection* nc, std::string origin);
  ~StreamLink();
  void stop();
  BridgeStreamStats stats() const;

  struct State;  // shared with nats.c's publish-ack callback

 private:
  explicit StreamLink(std::unique_ptr<State> state);
  void run_export();
  void run_import();
  std::unique_ptr<State> state_;
  std::thread thread_;
};

}  // namespace bus::detail::bridge

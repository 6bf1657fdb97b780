// bench_proto.hpp — what `bus bench` (the coordinator, cmd_bench.cpp) and the processes it starts
// (bench_roles.cpp) share: the flags, the roles, and the line protocol between them.
//
// The coordinator re-executes its own binary (/proc/self/exe) once per publisher, subscriber,
// pinger or echo process, as `bus bench SUBJECT ... --role ROLE --index I [--cpu C]`. A child's
// stdin and stdout are pipes to the coordinator:
//
//   child -> coordinator (stdout), one JSON object per line:
//     {"event":"ready"}                          subscribed / connected: may be counted on
//     {"event":"progress","msgs":N}              with --progress, about every 100 ms
//     {"event":"result", ...}                    the measurement (fields per role, see below)
//     {"event":"error","code":C,"message":"..."} then exit 1; C is a bus::Errc
//   coordinator -> child (stdin), one word per line:
//     go      publishers and the pinger start sending
//     done    every publisher finished: subscribers stop after 200 ms without a message
//   EOF on stdin means the coordinator is gone: the child exits at its next look.
//
// Timestamps in results are CLOCK_MONOTONIC nanoseconds (steady_clock), comparable across
// processes on one host.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <string_view>

#include "common.hpp"

namespace bus::cli {

/// The `bus bench` flags, for the coordinator and (with the hidden ones set) for its children.
struct BenchFlags {
  ClientFlags client;
  std::string subject;
  std::uint64_t pubs = 1;
  std::uint64_t subs = 0;
  std::uint64_t msgs = 100000;
  std::uint64_t size = 128;
  std::string queue;
  bool json = false;
  bool latency = false;
  bool request = false;
  std::string stream;     ///< --stream NAME: acknowledged publishes into it, then a replay
  bool spin = false;      ///< subscribers busy-spin (forced; --latency implies it)
  bool no_pin = false;

  // Hidden: set by the coordinator on the command line of a child it starts.
  std::string role;        ///< "pub", "sub", "ping" or "echo"; empty for the coordinator
  std::uint64_t index = 0;  ///< 1-based number of the process within its role
  int cpu = -1;            ///< CPU to pin to, -1: none
  bool progress = false;   ///< send progress events
};

/// `bus bench SUBJECT --stream NAME` (bench_stream.cpp): runs in this process.
int run_stream_bench(const BenchFlags& flags);

/// Subscribers stop this long after the last message once the publishers are done.
constexpr auto kIdleAfterDone = std::chrono::milliseconds(200);
/// ... and at the latest this long after `done`, even if foreign messages keep arriving.
constexpr auto kMaxAfterDone = std::chrono::seconds(5);
/// Request/reply responders join this queue group unless --queue names one (as `bus reply`).
constexpr std::string_view kDefaultReplyQueue = "NATS-RPLY-22";

/// steady_clock (CLOCK_MONOTONIC) now, in nanoseconds.
inline std::int64_t now_ns() noexcept {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

/// Warm-up round trips of --latency/--request before measuring: routes, inbox, caches.
inline std::uint64_t warmup_round_trips(std::uint64_t msgs) noexcept {
  const std::uint64_t tenth = msgs / 10;
  return tenth < 10 ? 10 : tenth > 1000 ? 1000 : tenth;
}

/// Runs the child process of role flags.role; returns its exit code.
int run_bench_role(const BenchFlags& flags);

}  // namespace bus::cli

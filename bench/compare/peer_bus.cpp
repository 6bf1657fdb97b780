// peer_bus.cpp — bus in the compare driver's protocol (peer_common.hpp).
//
// An embedded bus::Broker (default options except logging: 4 MiB rings, 1 MiB max payload) runs
// on a thread of the parent, which is pinned with it; children attach with Connection::connect.
// Subscribers use WaitStrategy::busy_spin and try_poll(): the lowest-latency configuration, and
// the one that matches what the limit does (spin on shared memory). Every payload is copied out of
// the ring (the MessageView is zero-copy; a real consumer reads the bytes).
//
//   latency     publish on cmp.ping -> child echoes on cmp.pong; one-way = RTT/2
//   throughput  publish on cmp.tput to 1 or N subscriber processes; a full ring drops (counted)
//   reqrep      Connection::request() to a child answering with MessageView::respond()
//   js_publish  Connection::stream_publish() into a file-backed stream (--sync never|always),
//               one at a time per publisher (--pubs threads, each its own connection): each
//               returns once the message is stored under the policy, with its sequence (the ack)
//   js_replay   the stream is filled (untimed), then read back with a StreamReader (zero-copy)
//   js_consume  the stream is filled (untimed), then a durable pull consumer drains it: fetch
//               256 at a time, an explicit ack for every message
#include <fcntl.h>
#include <unistd.h>

#include <sched.h>

#include <filesystem>
#include <thread>

#include <chrono>
#include <string>
#include <vector>

#include "bus/bus.hpp"
#include "peer_common.hpp"

namespace {

using namespace bus::compare;

constexpr std::uint64_t kReplyTimeoutNs = 2'000'000'000;

// Round trips until every ring on the path has been written all the way round once, timed on
// their own: a fresh subscription's ring pages are first touched (minor page faults, several us
// each on this VM) during that first lap, in the publisher's and in the subscriber's mapping.
// The table reports steady state (like the limit, whose memory is MAP_POPULATE'd); these "cold_"
// fields say what the first lap costs. rec_bytes: the smallest record on the path.
// Bounded by kColdLapLimitNs (a starved machine); cold_complete says whether the lap finished.
constexpr std::uint64_t kColdLapLimitNs = 1'000'000'000;

template <class RoundTrip>
bool cold_lap(RoundTrip&& rtt, std::size_t rec_bytes, bool halve, JsonLine& out) {
  const std::uint64_t lap = (std::uint64_t{4} << 20) / rec_bytes + 64;  // BrokerOptions::ring_bytes default
  auto hist = std::make_unique<LatencyHistogram>();
  const std::uint64_t end = mono_ns() + kColdLapLimitNs;
  std::uint64_t n = 0;
  while (n < lap) {
    const std::uint64_t t0 = cycle_now();
    if (!rtt()) return false;
    double ns = CycleClock::to_ns(cycle_now_ordered() - t0);
    if (halve) ns /= 2;
    hist->record(static_cast<std::uint64_t>(ns + 0.5));
    if ((++n & 255u) == 0 && mono_ns() > end) break;
  }
  out.integer("cold_samples", n).boolean("cold_complete", n >= lap).integer("cold_p50_ns", hist->percentile(50));
  out.integer("cold_p99_ns", hist->percentile(99)).integer("cold_p999_ns", hist->percentile(99.9));
  return true;
}

// Bytes of a record with this subject, reply and payload (32-byte header, padded to 8).
std::size_t record_bytes(std::size_t subject, std::size_t reply, std::size_t payload) {
  return (32 + subject + reply + payload + 7) / 8 * 8;
}

bus::SubscribeOptions spin_options() {
  bus::SubscribeOptions o;
  o.wait = bus::WaitStrategy::busy_spin;
  return o;
}

// Receives exactly one message with busy polling, copying its payload into `sink`.
bool receive_one(bus::Subscription& sub, const bus::MessageHandler& handler, const bool& got) {
  const std::uint64_t deadline = cycle_now() + CycleClock::from_ns(static_cast<double>(kReplyTimeoutNs));
  for (std::uint32_t spins = 0;; ++spins) {
    auto n = sub.try_poll(handler, 1);
    if (!n) return false;
    if (n.value() == 1) return got;
    if ((spins & 1023u) == 0 && cycle_now() > deadline) return false;
  }
}

int latency(const Args& a, const std::string& name) {
  Harness h(a);
  bus::BrokerOptions o;
  o.bus_name = name;
  o.log = false;
  auto broker = bus::Broker::start(o);
  if (!broker) return h.fail("broker: " + broker.error().message);

  h.spawn(1, [&](int i, Control& c) {
    SubSlot& slot = c.subs[i];
    auto conn = bus::Connection::connect(name);
    if (!conn) return child_fail(slot, "connect: " + conn.error().message);
    auto sub = conn->subscribe("cmp.ping", spin_options());
    if (!sub) return child_fail(slot, "subscribe: " + sub.error().message);
    std::string sink;
    sink.reserve(a.size);
    bool got = false;
    const bus::MessageHandler copy = [&](const bus::MessageView& v) {
      sink.assign(v.data);  // deliver: copy it out
      got = true;
    };
    child_ready(slot);
    IdleSpin spin(c, false);
    for (;;) {
      got = false;
      auto n = sub->try_poll(copy, 1);
      if (!n) return child_fail(slot, "poll: " + n.error().message);
      if (got) {
        if (!conn->publish("cmp.pong", sink)) return child_fail(slot, "publish failed");
        continue;
      }
      if (spin.idle()) return 0;
    }
  });

  auto conn = bus::Connection::connect(name);
  if (!conn) return h.fail("connect: " + conn.error().message);
  auto sub = conn->subscribe("cmp.pong", spin_options());
  if (!sub) return h.fail("subscribe: " + sub.error().message);
  std::string err;
  if (!h.wait_ready(err)) return h.fail(err);

  const std::string payload(a.size, 'p');
  std::string sink;
  sink.reserve(a.size);
  bool got = false;
  const bus::MessageHandler copy = [&](const bus::MessageView& v) {
    sink.assign(v.data);
    got = v.data.size() == a.size;
  };
  auto rtt = [&]() -> bool {
    got = false;
    if (!conn->publish("cmp.ping", payload)) return false;
    return receive_one(*sub, copy, got);
  };
  JsonLine cold;
  (void)CycleClock::ns_per_tick();
  if (!cold_lap(rtt, record_bytes(8, 0, a.size), true, cold)) return h.fail("round trip failed (first lap)");
  return h.run_latency(rtt, true, cold);
}

int reqrep(const Args& a, const std::string& name) {
  Harness h(a);
  bus::BrokerOptions o;
  o.bus_name = name;
  o.log = false;
  auto broker = bus::Broker::start(o);
  if (!broker) return h.fail("broker: " + broker.error().message);

  h.spawn(1, [&](int i, Control& c) {
    SubSlot& slot = c.subs[i];
    auto conn = bus::Connection::connect(name);
    if (!conn) return child_fail(slot, "connect: " + conn.error().message);
    auto sub = conn->subscribe("cmp.req", spin_options());
    if (!sub) return child_fail(slot, "subscribe: " + sub.error().message);
    bool failed = false;
    const bus::MessageHandler answer = [&](const bus::MessageView& v) {
      if (!v.respond(v.data)) failed = true;
    };
    child_ready(slot);
    IdleSpin spin(c, false);
    for (;;) {
      auto n = sub->try_poll(answer, 1);
      if (!n) return child_fail(slot, "poll: " + n.error().message);
      if (failed) return child_fail(slot, "respond failed");
      if (n.value() == 0 && spin.idle()) return 0;
    }
  });

  auto conn = bus::Connection::connect(name);
  if (!conn) return h.fail("connect: " + conn.error().message);
  std::string err;
  if (!h.wait_ready(err)) return h.fail(err);
  const std::string payload(a.size, 'q');
  auto rtt = [&]() -> bool {
    auto reply = conn->request("cmp.req", payload, std::chrono::nanoseconds(kReplyTimeoutNs));
    return reply && reply->data.size() == a.size;
  };
  JsonLine cold;
  (void)CycleClock::ns_per_tick();
  // The reply subject (_INBOX.<22 chars>.<ring>-<incarnation>.<id>) is ~45 bytes.
  if (!cold_lap(rtt, record_bytes(7, 45, a.size), false, cold)) return h.fail("request failed (first lap)");
  return h.run_latency(rtt, false, cold);
}

int throughput(const Args& a, const std::string& name) {
  Harness h(a);
  bus::BrokerOptions o;
  o.bus_name = name;
  o.log = false;
  auto broker = bus::Broker::start(o);
  if (!broker) return h.fail("broker: " + broker.error().message);

  const int n = std::clamp(a.subs, 1, kMaxSubs);
  h.spawn(n, [&](int i, Control& c) {
    SubSlot& slot = c.subs[i];
    auto conn = bus::Connection::connect(name);
    if (!conn) return child_fail(slot, "connect: " + conn.error().message);
    auto sub = conn->subscribe("cmp.tput", spin_options());
    if (!sub) return child_fail(slot, "subscribe: " + sub.error().message);
    RecvCounter counter(slot, a.size);
    std::vector<char> sink(a.size);
    const bus::MessageHandler count = [&](const bus::MessageView& v) {
      const std::size_t len = std::min(v.data.size(), sink.size());
      std::memcpy(sink.data(), v.data.data(), len);  // deliver: copy it out
      counter.on_message(sink.data(), v.data.size());
    };
    child_ready(slot);
    IdleSpin spin(c, n > 1);
    for (;;) {
      auto got = sub->try_poll(count, 256);
      if (!got) return child_fail(slot, "poll: " + got.error().message);
      if (got.value() == 0) {
        counter.idle();
        if (spin.idle()) return 0;
      }
    }
  });

  auto conn = bus::Connection::connect(name);
  if (!conn) return h.fail("connect: " + conn.error().message);
  std::string err;
  if (!h.wait_ready(err)) return h.fail(err);
  return h.run_throughput(
      [&](const char* data, std::size_t len) -> bool {
        return static_cast<bool>(conn->publish("cmp.tput", std::string_view(data, len)));
      },
      [] {});
}

// A broker with a stream capturing cmp.js, its store in DIR/bus-store-<pid> (removed after).
struct StreamBroker {
  std::string store;
  bus::Result<bus::Broker> broker = bus::make_error(bus::Errc::closed, "not started");
  ~StreamBroker() {
    if (broker) (void)broker->stop();
    std::error_code ec;
    std::filesystem::remove_all(store, ec);
  }
};

// Acknowledged publishes on one connection until `count` or `end_ns`; one in kAckSampleEvery
// timed into `hist` (two TSC reads and a histogram update cost ~25 ns, a fifth of a publish: on
// every message they would be measured as the publisher's own rate; peer_nats times its acks in
// a separate run of synchronous publishes and its rate untimed).
// Checks that this publisher's acknowledged sequences only grow.
constexpr std::uint64_t kAckSampleEvery = 16;

bool publish_acked(bus::Connection& conn, const Args& a, std::uint64_t count, std::uint64_t end_ns,
                   LatencyHistogram& hist, std::uint64_t& acked, std::string& err) {
  std::vector<char> payload(a.size, 'j');
  std::uint64_t last_seq = 0;
  while (acked < count) {
    std::memcpy(payload.data(), &acked, std::min(sizeof acked, payload.size()));
    const bool timed = acked % kAckSampleEvery == 0;
    const std::uint64_t c0 = timed ? cycle_now() : 0;
    auto ack = conn.stream_publish("cmp.js", std::string_view(payload.data(), payload.size()));
    if (timed) hist.record(static_cast<std::uint64_t>(CycleClock::to_ns(cycle_now_ordered() - c0) + 0.5));
    if (!ack) {
      err = "stream_publish: " + ack.error().message;
      return false;
    }
    if (ack->sequence <= last_seq) {
      err = "acknowledged sequence " + std::to_string(ack->sequence) + " after " + std::to_string(last_seq);
      return false;
    }
    last_seq = ack->sequence;
    ++acked;
    if ((acked & 255u) == 0 && mono_ns() > end_ns) break;
  }
  return true;
}

// The rate at which this machine gives a file new page-cache pages, in bytes/s: 64 MiB of
// zeros written into a fresh file in `dir` (then removed), as the spares of a stream that never
// syncs are made (2 MiB writes: the journal's PageShape::appends, journal/segment_file.hpp).
// An unbounded stream grows its journal at its append rate, so this is its ceiling: in a VM
// whose host backs guest memory lazily, pages never touched since boot come at a fraction of
// the rate of recycled ones, and a fresh CI machine has nothing but those.
double page_cache_growth_bytes_per_s(const std::string& dir) {
  constexpr std::size_t kProbe = 64u << 20, kChunk = 2u << 20;
  const std::string path = dir + "/growth-probe";
  const int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) return 0;
  const std::vector<char> zeros(kChunk, 0);
  const std::uint64_t t0 = mono_ns();
  bool ok = true;
  for (std::size_t off = 0; ok && off < kProbe; off += kChunk) {
    ok = ::pwrite(fd, zeros.data(), kChunk, static_cast<off_t>(off)) == static_cast<ssize_t>(kChunk);
  }
  const std::uint64_t took = mono_ns() - t0;
  ::close(fd);
  ::unlink(path.c_str());
  return ok && took > 0 ? static_cast<double>(kProbe) * 1e9 / static_cast<double>(took) : 0;
}

int streams(const Args& a, const std::string& name) {
  Harness h(a);
  StreamBroker sb;
  sb.store = a.dir + "/bus-store-" + std::to_string(::getpid());
  bus::BrokerOptions o;
  o.bus_name = name;
  o.log = false;
  o.store_dir = sb.store;
  {
    // The broker's threads (its loop, the journal's preparer) may run on both CPUs, as a busd
    // would: started from the pinned thread they would inherit its CPU and take the publisher's
    // time with the page zeroing they do to keep it off the publishing path.
    cpu_set_t both;
    CPU_ZERO(&both);
    CPU_SET(a.cpu_pub, &both);
    CPU_SET(a.cpu_sub, &both);
    (void)::sched_setaffinity(0, sizeof both, &both);
    sb.broker = bus::Broker::start(o);
    bus::bench::pin_to_cpu(a.cpu_pub);
  }
  if (!sb.broker) return h.fail("broker: " + sb.broker.error().message);
  auto conn = bus::Connection::connect(name);
  if (!conn) return h.fail("connect: " + conn.error().message);
  bus::Streams streams(*conn);
  bus::StreamConfig config;
  config.name = "CMP";
  config.subjects = {"cmp.js"};
  config.sync = a.sync == "always" ? bus::SyncPolicy::always : bus::SyncPolicy::never;
  if (auto info = streams.add(config); !info) return h.fail("stream add: " + info.error().message);
  const std::string warm(a.size, 'w');
  for (int i = 0; i < 10; ++i) {  // route resolved, journal attached: the rest is steady state
    if (auto ack = conn->stream_publish("cmp.js", warm); !ack) return h.fail("stream_publish: " + ack.error().message);
  }
  (void)CycleClock::ns_per_tick();
  const std::uint64_t end = mono_ns() + static_cast<std::uint64_t>(a.seconds * 1e9);
  const int pubs = a.workload == "js_publish" ? a.pubs : 1;
  std::vector<std::unique_ptr<LatencyHistogram>> hists;
  std::vector<std::uint64_t> acked(static_cast<std::size_t>(pubs), 0);
  std::vector<std::string> errors(static_cast<std::size_t>(pubs));
  for (int i = 0; i < pubs; ++i) hists.push_back(std::make_unique<LatencyHistogram>());
  const std::uint64_t t0 = mono_ns();
  if (pubs == 1) {
    if (!publish_acked(*conn, a, a.count, end, *hists[0], acked[0], errors[0])) return h.fail(errors[0]);
  } else {
    // Each publisher a thread with its own connection, free to run on both CPUs.
    std::vector<std::thread> threads;
    for (int i = 0; i < pubs; ++i) {
      threads.emplace_back([&, i] {
        cpu_set_t both;
        CPU_ZERO(&both);
        CPU_SET(a.cpu_pub, &both);
        CPU_SET(a.cpu_sub, &both);
        (void)::sched_setaffinity(0, sizeof both, &both);
        const auto k = static_cast<std::size_t>(i);
        auto mine = bus::Connection::connect(name);
        if (!mine) {
          errors[k] = "connect: " + mine.error().message;
          return;
        }
        (void)publish_acked(*mine, a, a.count / static_cast<std::uint64_t>(pubs), end, *hists[k], acked[k], errors[k]);
      });
    }
    for (auto& t : threads) t.join();
    for (const auto& e : errors) {
      if (!e.empty()) return h.fail(e);
    }
  }
  const double secs = static_cast<double>(mono_ns() - t0) * 1e-9;
  std::uint64_t total = 0;
  for (int i = 1; i < pubs; ++i) hists[0]->merge(*hists[static_cast<std::size_t>(i)]);
  for (const std::uint64_t n : acked) total += n;
  const LatencyHistogram& hist = *hists[0];
  JsonLine m;
  if (a.workload == "js_publish") {
    m.num("msgs_per_s", static_cast<double>(total) / secs).integer("published", total).integer("publishers", pubs);
    m.integer("ack_p50_ns", hist.percentile(50)).integer("ack_p99_ns", hist.percentile(99));
    m.integer("ack_p999_ns", hist.percentile(99.9)).str("ack_latency", "1 in 16 of the publishes above, timed");
    m.num("seconds", secs).str("storage", "file").str("sync", a.sync);
    // Measured after the run, so from the memory the run would have taken next.
    const double growth = page_cache_growth_bytes_per_s(sb.store);
    const std::uint64_t record = (40 + 6 + a.size + 7) / 8 * 8;  // header, "cmp.js", payload, padded
    m.num("page_cache_growth_bytes_per_s", growth).integer("record_bytes", record);
    m.num("growth_limit_msgs_per_s", growth / static_cast<double>(record));
    return h.emit(m);
  }
  const std::uint64_t expected = total + 10;  // the warm-up ones too
  if (a.workload == "js_consume") {
    // A durable pull consumer with explicit acks drains the stream: fetch in batches, ack each.
    bus::Consumers consumers(*conn);
    bus::ConsumerConfig cc;
    cc.durable_name = "C";
    cc.ack_policy = bus::AckPolicy::explicit_ack;
    cc.max_ack_pending = -1;
    if (auto added = consumers.add("CMP", cc); !added) return h.fail("consumer add: " + added.error().message);
    std::vector<char> sink(a.size);
    std::uint64_t got = 0;
    const std::uint64_t c0 = mono_ns();
    while (got < expected) {
      // No more than is left: a pull request waits until its batch is full (or it expires).
      auto batch = consumers.fetch("CMP", "C", std::min<std::uint64_t>(256, expected - got), std::chrono::seconds(5));
      if (!batch) return h.fail("fetch: " + batch.error().message);
      if (batch->empty()) return h.fail("fetch stalled after " + std::to_string(got) + " of " + std::to_string(expected));
      for (const auto& msg : *batch) {
        const auto v = msg.view();
        std::memcpy(sink.data(), v.data.data(), std::min(v.data.size(), sink.size()));
        if (auto st = bus::ack(v); !st) return h.fail("ack: " + st.error().message);
        ++got;
      }
    }
    const double csecs = static_cast<double>(mono_ns() - c0) * 1e-9;
    m.num("msgs_per_s", static_cast<double>(got) / csecs).integer("consumed", got);
    m.num("seconds", csecs).str("consumer", "durable pull, fetch 256, explicit ack each").str("storage", "file");
    return h.emit(m);
  }
  // js_replay: everything stored above, read back in order.
  auto reader = streams.reader("CMP", 1);
  if (!reader) return h.fail("reader: " + reader.error().message);
  std::vector<char> sink(a.size);
  bus::StoredMessageView v;
  std::uint64_t got = 0, bytes = 0;
  const std::uint64_t r0 = mono_ns();
  while (got < expected) {
    auto next = reader->next(v);
    if (!next) return h.fail("replay: " + next.error().message);
    if (!next.value()) return h.fail("replay stopped after " + std::to_string(got) + " of " + std::to_string(expected));
    std::memcpy(sink.data(), v.data.data(), std::min(v.data.size(), sink.size()));  // a reader reads the bytes
    bytes += v.data.size();
    ++got;
  }
  const double rsecs = static_cast<double>(mono_ns() - r0) * 1e-9;
  m.num("msgs_per_s", static_cast<double>(got) / rsecs).integer("replayed", got).integer("bytes", bytes);
  m.num("seconds", rsecs).str("consumer", "StreamReader (zero-copy)").str("storage", "file");
  return h.emit(m);
}

}  // namespace

int main(int argc, char** argv) {
  const Args a = parse_args(argc, argv, "bus");
  const std::string name = "cmp-" + std::to_string(::getpid());
  if (a.workload == "latency") return latency(a, name);
  if (a.workload == "reqrep") return reqrep(a, name);
  if (a.workload == "throughput") return throughput(a, name);
  if (a.workload == "js_publish" || a.workload == "js_replay" || a.workload == "js_consume") return streams(a, name);
  std::printf("{\"ok\":false,\"transport\":\"bus\",\"workload\":\"%s\",\"error\":\"unknown workload\"}\n",
              a.workload.c_str());
  return 3;
}

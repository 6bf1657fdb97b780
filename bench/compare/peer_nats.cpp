// peer_nats.cpp — nats-server + the NATS C client (nats.c) in the compare driver's protocol
// (peer_common.hpp). The server is started by the driver on 127.0.0.1 (random free port, JetStream
// on with a temp store dir) and passed as --url; it is not pinned.
//
//   latency     publish on cmp.ping -> child echoes on cmp.pong; one-way = RTT/2. Both
//               connections use SendAsap (no client-side write buffering) and synchronous
//               subscriptions (natsSubscription_NextMsg): the lowest-latency client setup.
//   throughput  buffered publishes on cmp.tput (the client's default: 32 KiB write buffer,
//               flushed when full and by natsConnection_Flush at the end) to 1 or N subscriber
//               processes; subscriptions have no client-side pending limit, so nothing is dropped
//               by the client library (the server may still cut a slow consumer: drop_ratio)
//   reqrep      natsConnection_Request() (new-style, one muxed inbox) to a child that publishes
//               the reply on msg's reply subject
//   js_publish  JetStream-acknowledged publish throughput: js_PublishAsync into a file-backed
//               stream, at most 4096 acks outstanding, then js_PublishAsyncComplete; rate =
//               acknowledged messages / time until the last ack
//               (--pubs N: N threads, each its own connection); with one publisher, ack
//               latency from 2000 synchronous js_Publish calls afterwards
//   js_replay   the stream is filled (untimed), then an ordered push consumer reads it back from
//               the start; rate = messages / time to receive all of them
//   js_consume  the stream is filled (untimed), then a durable pull consumer drains it: fetch 256,
//               natsMsg_Ack for every message
#include <nats/nats.h>
#include <sched.h>
#include <unistd.h>

#include <thread>

#include <string>
#include <vector>

#include "peer_common.hpp"

namespace {

using namespace bus::compare;

constexpr std::int64_t kReplyTimeoutMs = 2000;

std::string status_text(natsStatus s) { return natsStatus_GetText(s); }

// One connection with its options; closes on destruction.
class NatsConn {
 public:
  NatsConn() = default;
  ~NatsConn() {
    if (nc_ != nullptr) {
      natsConnection_Close(nc_);
      natsConnection_Destroy(nc_);
    }
    if (opts_ != nullptr) natsOptions_Destroy(opts_);
  }
  NatsConn(const NatsConn&) = delete;
  NatsConn& operator=(const NatsConn&) = delete;

  natsStatus connect(const std::string& url, bool send_asap) {
    natsStatus s = natsOptions_Create(&opts_);
    if (s == NATS_OK) s = natsOptions_SetURL(opts_, url.c_str());
    if (s == NATS_OK) s = natsOptions_SetSendAsap(opts_, send_asap);
    if (s == NATS_OK) s = natsConnection_Connect(&nc_, opts_);
    return s;
  }
  natsConnection* get() const { return nc_; }

 private:
  natsOptions* opts_ = nullptr;
  natsConnection* nc_ = nullptr;
};

struct SubGuard {
  natsSubscription* sub = nullptr;
  ~SubGuard() {
    if (sub != nullptr) natsSubscription_Destroy(sub);
  }
};

struct MsgGuard {
  natsMsg* msg = nullptr;
  ~MsgGuard() { reset(); }
  void reset() {
    if (msg != nullptr) natsMsg_Destroy(msg);
    msg = nullptr;
  }
};

// A synchronous subscription with no client-side pending limit, registered at the server
// (flushed) before it returns.
natsStatus subscribe_sync(SubGuard& g, natsConnection* nc, const char* subject) {
  natsStatus s = natsConnection_SubscribeSync(&g.sub, nc, subject);
  if (s == NATS_OK) s = natsSubscription_SetPendingLimits(g.sub, -1, -1);
  if (s == NATS_OK) s = natsConnection_Flush(nc);
  return s;
}

// ------------------------------------------------------------------------------- latency, reqrep
int round_trips(const Args& a) {
  const bool reqrep = a.workload == "reqrep";
  Harness h(a);
  h.spawn(1, [&](int i, Control& c) {
    SubSlot& slot = c.subs[i];
    NatsConn conn;
    natsStatus s = conn.connect(a.url, true);
    if (s != NATS_OK) return child_fail(slot, "connect: " + status_text(s));
    SubGuard sub;
    s = subscribe_sync(sub, conn.get(), reqrep ? "cmp.req" : "cmp.ping");
    if (s != NATS_OK) return child_fail(slot, "subscribe: " + status_text(s));
    std::vector<char> sink(a.size);
    child_ready(slot);
    for (;;) {
      MsgGuard m;
      s = natsSubscription_NextMsg(&m.msg, sub.sub, 100);
      if (s == NATS_TIMEOUT) {
        if (stop_requested(c)) return 0;
        continue;
      }
      if (s != NATS_OK) return child_fail(slot, "next: " + status_text(s));
      const int len = natsMsg_GetDataLength(m.msg);
      std::memcpy(sink.data(), natsMsg_GetData(m.msg), std::min<std::size_t>(sink.size(), static_cast<std::size_t>(len)));
      const char* to = reqrep ? natsMsg_GetReply(m.msg) : "cmp.pong";
      if (to == nullptr || *to == '\0') return child_fail(slot, "request without a reply subject");
      s = natsConnection_Publish(conn.get(), to, sink.data(), len);
      if (s != NATS_OK) return child_fail(slot, "publish: " + status_text(s));
    }
  });

  NatsConn conn;
  natsStatus s = conn.connect(a.url, true);
  if (s != NATS_OK) return h.fail("connect " + a.url + ": " + status_text(s));
  SubGuard sub;
  if (!reqrep) {
    s = subscribe_sync(sub, conn.get(), "cmp.pong");
    if (s != NATS_OK) return h.fail("subscribe: " + status_text(s));
  }
  std::string err;
  if (!h.wait_ready(err)) return h.fail(err);
  const std::vector<char> payload(a.size, 'p');
  std::vector<char> sink(a.size);
  return h.run_latency(
      [&]() -> bool {
        MsgGuard m;
        if (reqrep) {
          if (natsConnection_Request(&m.msg, conn.get(), "cmp.req", payload.data(), static_cast<int>(a.size),
                                     kReplyTimeoutMs) != NATS_OK) {
            return false;
          }
        } else {
          if (natsConnection_Publish(conn.get(), "cmp.ping", payload.data(), static_cast<int>(a.size)) != NATS_OK) {
            return false;
          }
          if (natsSubscription_NextMsg(&m.msg, sub.sub, kReplyTimeoutMs) != NATS_OK) return false;
        }
        const int len = natsMsg_GetDataLength(m.msg);
        std::memcpy(sink.data(), natsMsg_GetData(m.msg), std::min<std::size_t>(sink.size(), static_cast<std::size_t>(len)));
        return static_cast<std::size_t>(len) == a.size;
      },
      !reqrep);
}

// ------------------------------------------------------------------------------- throughput
int throughput(const Args& a) {
  Harness h(a);
  const int n = std::clamp(a.subs, 1, kMaxSubs);
  h.spawn(n, [&](int i, Control& c) {
    SubSlot& slot = c.subs[i];
    NatsConn conn;
    natsStatus s = conn.connect(a.url, false);
    if (s != NATS_OK) return child_fail(slot, "connect: " + status_text(s));
    SubGuard sub;
    s = subscribe_sync(sub, conn.get(), "cmp.tput");
    if (s != NATS_OK) return child_fail(slot, "subscribe: " + status_text(s));
    // Blocking receive: no cheap "ran dry" moment, so stamp every message (~30 ns vs ~1 us each).
    RecvCounter counter(slot, a.size, true);
    child_ready(slot);
    for (;;) {
      MsgGuard m;
      s = natsSubscription_NextMsg(&m.msg, sub.sub, 100);
      if (s == NATS_TIMEOUT) {
        if (stop_requested(c)) return 0;
        continue;
      }
      if (s != NATS_OK) return child_fail(slot, "next: " + status_text(s));
      counter.on_message(natsMsg_GetData(m.msg), static_cast<std::size_t>(natsMsg_GetDataLength(m.msg)));
    }
  });

  NatsConn conn;
  natsStatus s = conn.connect(a.url, false);
  if (s != NATS_OK) return h.fail("connect " + a.url + ": " + status_text(s));
  std::string err;
  if (!h.wait_ready(err)) return h.fail(err);
  natsStatus last = NATS_OK;
  const int rc = h.run_throughput(
      [&](const char* data, std::size_t len) -> bool {
        last = natsConnection_Publish(conn.get(), "cmp.tput", data, static_cast<int>(len));
        return last == NATS_OK;
      },
      [&] { (void)natsConnection_FlushTimeout(conn.get(), 30000); });
  if (last != NATS_OK) std::fprintf(stderr, "peer_nats: last publish: %s\n", status_text(last).c_str());
  return rc;
}

// ------------------------------------------------------------------------------- JetStream
struct JsCounters {
  std::atomic<std::uint64_t> errors{0};
};

// The library owns pae->Msg and destroys it after the callback returns.
void on_pub_error(jsCtx*, jsPubAckErr*, void* closure) {
  static_cast<JsCounters*>(closure)->errors.fetch_add(1, std::memory_order_relaxed);
}

class Stream {
 public:
  Stream(jsCtx* js, std::string name, std::string subject) : js_(js), name_(std::move(name)), subject_(std::move(subject)) {}
  ~Stream() {
    if (created_) (void)js_DeleteStream(js_, name_.c_str(), nullptr, nullptr);
  }
  Stream(const Stream&) = delete;
  Stream& operator=(const Stream&) = delete;

  natsStatus create() {
    jsStreamConfig cfg;
    jsStreamConfig_Init(&cfg);
    cfg.Name = name_.c_str();
    const char* subjects[] = {subject_.c_str()};
    cfg.Subjects = subjects;
    cfg.SubjectsLen = 1;
    cfg.Storage = js_FileStorage;
    jsStreamInfo* si = nullptr;
    jsErrCode jerr = static_cast<jsErrCode>(0);
    const natsStatus s = js_AddStream(&si, js_, &cfg, nullptr, &jerr);
    if (si != nullptr) jsStreamInfo_Destroy(si);
    created_ = s == NATS_OK;
    return s;
  }
  const char* subject() const { return subject_.c_str(); }

 private:
  jsCtx* js_;
  std::string name_;
  std::string subject_;
  bool created_ = false;
};

struct JsGuard {
  jsCtx* js = nullptr;
  ~JsGuard() {
    if (js != nullptr) jsCtx_Destroy(js);
  }
};

// Publishes up to a.count messages within a.seconds (async, acks awaited at the end).
// Returns the number acknowledged, or -1 with `err` set.
std::int64_t publish_async(const Args& a, jsCtx* js, const char* subject, JsCounters& counters, std::string& err) {
  std::vector<char> payload(a.size, 'j');
  const std::uint64_t end = mono_ns() + static_cast<std::uint64_t>(a.seconds * 1e9);
  std::uint64_t sent = 0;
  while (sent < a.count) {
    ++sent;
    std::memcpy(payload.data(), &sent, sizeof sent);
    const natsStatus s = js_PublishAsync(js, subject, payload.data(), static_cast<int>(payload.size()), nullptr);
    if (s != NATS_OK) {
      err = "js_PublishAsync: " + status_text(s);
      return -1;
    }
    if ((sent & 255u) == 0 && mono_ns() > end) break;
  }
  jsPubOptions po;
  jsPubOptions_Init(&po);
  po.MaxWait = 60000;
  const natsStatus s = js_PublishAsyncComplete(js, &po);
  if (s != NATS_OK) {
    err = "js_PublishAsyncComplete: " + status_text(s);
    return -1;
  }
  const std::uint64_t errors = counters.errors.load();
  if (errors != 0) {
    err = std::to_string(errors) + " publishes were not acknowledged";
    return -1;
  }
  return static_cast<std::int64_t>(sent);
}

// A JetStream context on `conn` with async publishing (at most 4096 acks outstanding).
natsStatus js_context(JsGuard& js, NatsConn& conn, JsCounters& counters) {
  jsOptions jo;
  jsOptions_Init(&jo);
  jo.PublishAsync.MaxPending = 4096;
  jo.PublishAsync.ErrHandler = on_pub_error;
  jo.PublishAsync.ErrHandlerClosure = &counters;
  return natsConnection_JetStream(&js.js, conn.get(), &jo);
}

int jetstream(const Args& a) {
  Harness h(a);
  if (a.sync != "never") return h.fail("JetStream's sync is server-wide (sync_interval, nats-server 2.10+), not per stream");
  NatsConn conn;
  natsStatus s = conn.connect(a.url, false);
  if (s != NATS_OK) return h.fail("connect " + a.url + ": " + status_text(s));
  JsCounters counters;
  JsGuard js;
  s = js_context(js, conn, counters);
  if (s != NATS_OK) return h.fail("JetStream context: " + status_text(s));
  const std::string id = std::to_string(::getpid());
  Stream stream(js.js, "CMP_" + id, "cmp.js." + id);
  s = stream.create();
  if (s != NATS_OK) return h.fail("js_AddStream: " + status_text(s) + " (is JetStream enabled? nats-server -js)");

  // A few synchronous publishes first: stream leader ready, connection warm.
  for (int i = 0; i < 10; ++i) {
    jsPubAck* pa = nullptr;
    s = js_Publish(&pa, js.js, stream.subject(), "warm", 4, nullptr, nullptr);
    if (pa != nullptr) jsPubAck_Destroy(pa);
    if (s != NATS_OK) return h.fail("js_Publish: " + status_text(s));
  }

  std::string err;
  JsonLine m;
  if (a.workload == "js_publish") {
    const std::uint64_t t0 = mono_ns();
    std::int64_t acked = 0;
    if (a.pubs == 1) {
      acked = publish_async(a, js.js, stream.subject(), counters, err);
      if (acked < 0) return h.fail(err);
    } else {
      // Each publisher a thread with its own connection and context, free to run on both CPUs.
      std::vector<std::thread> threads;
      std::vector<std::int64_t> each(static_cast<std::size_t>(a.pubs), 0);
      std::vector<std::string> errors(static_cast<std::size_t>(a.pubs));
      Args share = a;
      share.count = a.count / static_cast<std::uint64_t>(a.pubs);
      for (int i = 0; i < a.pubs; ++i) {
        threads.emplace_back([&, i] {
          cpu_set_t both;
          CPU_ZERO(&both);
          CPU_SET(a.cpu_pub, &both);
          CPU_SET(a.cpu_sub, &both);
          (void)::sched_setaffinity(0, sizeof both, &both);
          const auto k = static_cast<std::size_t>(i);
          NatsConn mine;
          JsCounters my_counters;
          JsGuard my_js;
          natsStatus st = mine.connect(a.url, false);
          if (st == NATS_OK) st = js_context(my_js, mine, my_counters);
          if (st != NATS_OK) {
            errors[k] = "connect: " + status_text(st);
            return;
          }
          each[k] = publish_async(share, my_js.js, stream.subject(), my_counters, errors[k]);
        });
      }
      for (auto& t : threads) t.join();
      for (std::size_t k = 0; k < each.size(); ++k) {
        if (each[k] < 0) return h.fail(errors[k]);
        acked += each[k];
      }
    }
    const double secs = static_cast<double>(mono_ns() - t0) * 1e-9;
    m.num("msgs_per_s", static_cast<double>(acked) / secs).integer("published", static_cast<std::uint64_t>(acked));
    m.num("seconds", secs).integer("max_pending", 4096).integer("publishers", a.pubs).str("storage", "file");
    if (a.pubs == 1) {
      // Ack latency as bus measures it: one synchronous publish at a time, each timed.
      LatencyHistogram hist;
      std::vector<char> payload(a.size, 'l');
      for (int i = 0; i < 2000; ++i) {
        jsPubAck* pa = nullptr;
        const std::uint64_t p0 = mono_ns();
        s = js_Publish(&pa, js.js, stream.subject(), payload.data(), static_cast<int>(payload.size()), nullptr, nullptr);
        hist.record(mono_ns() - p0);
        if (pa != nullptr) jsPubAck_Destroy(pa);
        if (s != NATS_OK) return h.fail("js_Publish: " + status_text(s));
      }
      m.integer("ack_p50_ns", hist.percentile(50)).integer("ack_p99_ns", hist.percentile(99));
      m.integer("ack_p999_ns", hist.percentile(99.9)).str("ack_latency", "2000 synchronous js_Publish");
    }
    return h.emit(m);
  }

  // js_replay / js_consume: fill (untimed), then read everything back.
  const std::int64_t stored = publish_async(a, js.js, stream.subject(), counters, err);
  if (stored < 0) return h.fail(err);
  const std::uint64_t expected = static_cast<std::uint64_t>(stored) + 10;  // + the warm-up ones
  SubGuard sub;
  jsErrCode jerr = static_cast<jsErrCode>(0);
  std::uint64_t got = 0;
  std::uint64_t bytes = 0;
  if (a.workload == "js_consume") {
    // A durable pull consumer with explicit acks: fetch 256 at a time, ack every message.
    jsSubOptions so;
    jsSubOptions_Init(&so);
    so.Config.AckPolicy = js_AckExplicit;
    so.Config.MaxAckPending = -1;
    s = js_PullSubscribe(&sub.sub, js.js, stream.subject(), "C", nullptr, &so, &jerr);
    if (s != NATS_OK) return h.fail("js_PullSubscribe: " + status_text(s));
    const std::uint64_t t0 = mono_ns();
    while (got < expected) {
      natsMsgList list = {nullptr, 0};
      s = natsSubscription_Fetch(&list, sub.sub, 256, 5000, &jerr);
      if (s != NATS_OK) return h.fail("fetch stalled after " + std::to_string(got) + " of " + std::to_string(expected) + ": " + status_text(s));
      for (int i = 0; i < list.Count; ++i) {
        bytes += static_cast<std::uint64_t>(natsMsg_GetDataLength(list.Msgs[i]));
        s = natsMsg_Ack(list.Msgs[i], nullptr);
        if (s != NATS_OK) {
          natsMsgList_Destroy(&list);
          return h.fail("ack: " + status_text(s));
        }
        ++got;
      }
      natsMsgList_Destroy(&list);
    }
    const double secs = static_cast<double>(mono_ns() - t0) * 1e-9;
    m.num("msgs_per_s", static_cast<double>(got) / secs).integer("consumed", got).integer("bytes", bytes);
    m.num("seconds", secs).str("consumer", "durable pull, fetch 256, explicit ack each").str("storage", "file");
    return h.emit(m);
  }
  jsSubOptions so;
  jsSubOptions_Init(&so);
  so.Ordered = true;
  const std::uint64_t t0 = mono_ns();
  s = js_SubscribeSync(&sub.sub, js.js, stream.subject(), nullptr, &so, &jerr);
  if (s != NATS_OK) return h.fail("js_SubscribeSync: " + status_text(s));
  (void)natsSubscription_SetPendingLimits(sub.sub, -1, -1);
  while (got < expected) {
    MsgGuard msg;
    s = natsSubscription_NextMsg(&msg.msg, sub.sub, 5000);
    if (s != NATS_OK) return h.fail("replay stalled after " + std::to_string(got) + " of " + std::to_string(expected) + ": " + status_text(s));
    bytes += static_cast<std::uint64_t>(natsMsg_GetDataLength(msg.msg));
    ++got;
  }
  const double secs = static_cast<double>(mono_ns() - t0) * 1e-9;
  m.num("msgs_per_s", static_cast<double>(got) / secs).integer("replayed", got).integer("bytes", bytes);
  m.num("seconds", secs).str("consumer", "ordered push").str("storage", "file");
  return h.emit(m);
}

}  // namespace

int main(int argc, char** argv) {
  const Args a = parse_args(argc, argv, "nats");
  int rc = 3;
  if (a.workload == "latency" || a.workload == "reqrep") {
    rc = round_trips(a);
  } else if (a.workload == "throughput") {
    rc = throughput(a);
  } else if (a.workload == "js_publish" || a.workload == "js_replay" || a.workload == "js_consume") {
    rc = jetstream(a);
  } else {
    std::printf("{\"ok\":false,\"transport\":\"nats\",\"error\":\"unknown workload\"}\n");
  }
  nats_Close();
  return rc;
}

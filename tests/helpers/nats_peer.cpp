// nats_peer.cpp — a plain NATS client (nats.c) for the bridge's multi-process tests, driven by argv.
//
//   nats_peer sub URL SUBJECT [--queue G] [--count N] [--timeout-ms T] [--headers]
//       Subscribes (queue member of G if given), flushes, prints "ready" on stderr, then one line
//       per message on stdout: "<subject> <payload>", with --headers "<subject> <payload> [K=V,...]"
//       (keys sorted, one K=V per value). Exits 0 after N messages (0: no limit) or when T ms
//       (default 10000) have passed, or on SIGTERM/SIGINT; prints "received K" on stderr at exit.
//   nats_peer pub URL SUBJECT BODY [--count N] [--interval-us U] [--reply R] [-H K:V]...
//       Publishes BODY N times (default 1), `{{Count}}` in BODY and header values replaced by
//       1..N, sleeping U µs between messages; flushes before exit ("published N" on stderr).
//   nats_peer reply URL SUBJECT BODY [--queue G] [--count N] [--timeout-ms T]
//       Answers each request with BODY (`{{Request}}` replaced by the request's payload, `{{Count}}`
//       by the request's number); prints "ready" on stderr once subscribed and flushed and
//       "<subject> <payload>" per request on stdout. Exits 0 after N requests (0: no limit), at T ms
//       (default 10000) or on SIGTERM/SIGINT.
//   nats_peer req URL SUBJECT BODY [--timeout-ms T]
//       One request: prints the reply payload on stdout and exits 0; "no responders" on stderr and
//       exit 3 on a no-responders status; "timeout" on stderr and exit 4 after T ms (default 5000).
//   nats_peer wait-cluster URL1 URL2 [URL3...] [--timeout-ms T]
//       Connects to every node (retrying) and waits until a message published on each node reaches
//       a subscriber on every other node (publishing again every 50 ms): exit 0, else 1 after T ms
//       (default 10000).
//   nats_peer js-ready URL1 [URL2...] [--timeout-ms T]
//       Connects to every node (retrying) and asks JetStream for the account's info ($JS.API.INFO)
//       through each, again every 100 ms, until every node answers OK (a clustered JetStream
//       answers once it elected its meta leader): "jetstream ready" on stderr and exit 0, else 1
//       after T ms (default 15000) with the last error.
//   nats_peer js-info URL STREAM [--payloads] [--timeout-ms T]
//       The JetStream stream's state on stdout: "messages N first_seq F last_seq L consumers C
//       leader NAME" (the server that holds it; "-" when it is not clustered);
//       with --payloads then each stored message's payload, one a line, in sequence order
//       (deleted sequences skipped). Exit 0; 5 when there is no such stream; 1 on other errors
//       (T: the timeout of each JetStream request, default 5000).
//   nats_peer js-consumer URL STREAM CONSUMER [--timeout-ms T]
//       The consumer's state on stdout: "num_pending P num_ack_pending A num_redelivered R
//       delivered_stream_seq D delivered_consumer_seq C ack_floor_stream_seq F" (R: redelivered
//       and not acknowledged yet; C counts every delivery, redeliveries too). Exit 0; 5 when there
//       is no such stream or consumer; 1 on other errors.
// URL may be a comma-separated list (nats.c's). Exit codes: 0 ok, 1 NATS error or wait-cluster
// timeout (js-ready: not ready), 2 usage, 3 no responders, 4 request timeout, 5 no such stream. Errors are one line on stderr.
#include <nats/nats.h>
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>
#include <utility>
#include <vector>

namespace {

using Clock = std::chrono::steady_clock;

std::atomic<bool> g_stop{false};
void on_signal(int) { g_stop.store(true); }

int usage(const std::string& why) {
  std::fprintf(stderr, "nats_peer: usage: %s (see tests/helpers/nats_peer.cpp)\n", why.c_str());
  return 2;
}

int nats_fail(const std::string& what, natsStatus s) {
  std::fprintf(stderr, "nats_peer: %s: %s (%s)\n", what.c_str(), natsStatus_GetText(s), nats_GetLastError(nullptr));
  return 1;
}

std::string replace_all(std::string text, const std::string& from, const std::string& to) {
  for (std::size_t at = text.find(from); at != std::string::npos; at = text.find(from, at + to.size())) {
    text.replace(at, from.size(), to);
  }
  return text;
}

struct Args {
  std::vector<std::string> positional;
  std::string queue, reply;
  std::vector<std::pair<std::string, std::string>> headers;
  long count = -1;        // -1: not given
  long timeout_ms = -1;   // -1: not given
  long interval_us = 0;
  bool print_headers = false;
  bool payloads = false;
};

bool parse(int argc, char** argv, Args& a, std::string& error) {
  auto number = [&](int& i, long& out) {
    if (i + 1 >= argc) return false;
    char* end = nullptr;
    out = std::strtol(argv[++i], &end, 10);
    return end != nullptr && *end == '\0' && out >= 0;
  };
  for (int i = 2; i < argc; ++i) {
    const std::string arg = argv[i];
    if (arg == "--queue" && i + 1 < argc) {
      a.queue = argv[++i];
    } else if (arg == "--reply" && i + 1 < argc) {
      a.reply = argv[++i];
    } else if (arg == "-H" && i + 1 < argc) {
      const std::string kv = argv[++i];
      const auto colon = kv.find(':');
      if (colon == std::string::npos || colon == 0) {
        error = "-H wants KEY:VALUE";
        return false;
      }
      a.headers.emplace_back(kv.substr(0, colon), kv.substr(colon + 1));
    } else if (arg == "--count") {
      if (!number(i, a.count)) return (error = "--count wants a number >= 0", false);
    } else if (arg == "--timeout-ms") {
      if (!number(i, a.timeout_ms)) return (error = "--timeout-ms wants a number >= 0", false);
    } else if (arg == "--interval-us") {
      if (!number(i, a.interval_us)) return (error = "--interval-us wants a number >= 0", false);
    } else if (arg == "--headers") {
      a.print_headers = true;
    } else if (arg == "--payloads") {
      a.payloads = true;
    } else if (arg.size() > 1 && arg[0] == '-') {
      error = "unknown flag " + arg;
      return false;
    } else {
      a.positional.push_back(arg);
    }
  }
  return true;
}

/// Connects to `url` (comma-separated list allowed); retries until `deadline` when asked.
natsStatus connect(natsConnection** nc, const std::string& url, Clock::time_point deadline, bool retry) {
  natsOptions* o = nullptr;
  natsStatus s = natsOptions_Create(&o);
  if (s != NATS_OK) return s;
  natsOptions_SetURL(o, url.c_str());
  natsOptions_SetName(o, "nats_peer");
  natsOptions_SetTimeout(o, 2000);
  natsOptions_SetNoRandomize(o, true);
  natsOptions_SetReconnectWait(o, 100);
  natsOptions_SetMaxReconnect(o, 100);
  for (;;) {
    s = natsConnection_Connect(nc, o);
    if (s == NATS_OK || !retry || Clock::now() >= deadline || g_stop.load()) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  natsOptions_Destroy(o);
  return s;
}

std::string header_text(natsMsg* msg) {
  const char** keys = nullptr;
  int n = 0;
  std::vector<std::string> items;
  if (natsMsgHeader_Keys(msg, &keys, &n) == NATS_OK) {
    for (int i = 0; i < n; ++i) {
      const char** values = nullptr;
      int nv = 0;
      if (natsMsgHeader_Values(msg, keys[i], &values, &nv) == NATS_OK) {
        for (int v = 0; v < nv; ++v) items.push_back(std::string(keys[i]) + "=" + values[v]);
        std::free(static_cast<void*>(values));
      }
    }
    std::free(static_cast<void*>(keys));
  }
  std::sort(items.begin(), items.end());
  std::string out = "[";
  for (std::size_t i = 0; i < items.size(); ++i) out += (i ? "," : "") + items[i];
  return out + "]";
}

std::string payload(natsMsg* msg) {
  return std::string(natsMsg_GetData(msg), static_cast<std::size_t>(natsMsg_GetDataLength(msg)));
}

long remaining_ms(Clock::time_point deadline) {
  return static_cast<long>(std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count());
}

// sub and reply: the same loop; reply answers.
int run_serve(const Args& a, bool answer) {
  const std::size_t want = answer ? 3 : 2;
  if (a.positional.size() != want) return usage(answer ? "reply URL SUBJECT BODY [flags]" : "sub URL SUBJECT [flags]");
  const std::string& url = a.positional[0];
  const std::string& subject = a.positional[1];
  const std::string body = answer ? a.positional[2] : std::string();
  const auto deadline = Clock::now() + std::chrono::milliseconds(a.timeout_ms < 0 ? 10000 : a.timeout_ms);
  const long limit = a.count < 0 ? 0 : a.count;

  natsConnection* nc = nullptr;
  natsStatus s = connect(&nc, url, deadline, false);
  if (s != NATS_OK) return nats_fail("connect " + url, s);
  natsSubscription* sub = nullptr;
  s = a.queue.empty() ? natsConnection_SubscribeSync(&sub, nc, subject.c_str())
                      : natsConnection_QueueSubscribeSync(&sub, nc, subject.c_str(), a.queue.c_str());
  if (s == NATS_OK) s = natsSubscription_SetPendingLimits(sub, -1, -1);
  if (s == NATS_OK) s = natsConnection_FlushTimeout(nc, 5000);
  if (s != NATS_OK) {
    natsConnection_Destroy(nc);
    return nats_fail("subscribe " + subject, s);
  }
  std::fprintf(stderr, "ready\n");
  std::fflush(stderr);
  long got = 0;
  int rc = 0;
  while (!g_stop.load() && (limit == 0 || got < limit)) {
    const long left = remaining_ms(deadline);
    if (left <= 0) break;
    natsMsg* msg = nullptr;
    s = natsSubscription_NextMsg(&msg, sub, std::min<long>(left, 100));
    if (s == NATS_TIMEOUT) continue;
    if (s != NATS_OK) {
      rc = nats_fail("next message", s);
      break;
    }
    ++got;
    std::string line = std::string(natsMsg_GetSubject(msg)) + " " + payload(msg);
    if (a.print_headers) line += " " + header_text(msg);
    std::printf("%s\n", line.c_str());
    std::fflush(stdout);
    if (answer) {
      const char* reply = natsMsg_GetReply(msg);
      if (reply != nullptr && *reply != '\0') {
        const std::string text =
            replace_all(replace_all(body, "{{Request}}", payload(msg)), "{{Count}}", std::to_string(got));
        natsStatus ps = natsConnection_PublishString(nc, reply, text.c_str());
        if (ps == NATS_OK) ps = natsConnection_Flush(nc);
        if (ps != NATS_OK) std::fprintf(stderr, "nats_peer: respond: %s\n", natsStatus_GetText(ps));
      }
    }
    natsMsg_Destroy(msg);
  }
  std::fprintf(stderr, "received %ld\n", got);
  natsSubscription_Destroy(sub);
  natsConnection_Destroy(nc);
  return rc;
}

int run_pub(const Args& a) {
  if (a.positional.size() != 3) return usage("pub URL SUBJECT BODY [flags]");
  const auto deadline = Clock::now() + std::chrono::seconds(10);
  natsConnection* nc = nullptr;
  natsStatus s = connect(&nc, a.positional[0], deadline, false);
  if (s != NATS_OK) return nats_fail("connect " + a.positional[0], s);
  const long count = a.count < 0 ? 1 : a.count;
  long n = 1;
  for (; n <= count && !g_stop.load(); ++n) {
    const std::string number = std::to_string(n);
    const std::string data = replace_all(a.positional[2], "{{Count}}", number);
    natsMsg* msg = nullptr;
    s = natsMsg_Create(&msg, a.positional[1].c_str(), a.reply.empty() ? nullptr : a.reply.c_str(), data.data(),
                       static_cast<int>(data.size()));
    for (const auto& [k, v] : a.headers) {
      if (s == NATS_OK) s = natsMsgHeader_Add(msg, k.c_str(), replace_all(v, "{{Count}}", number).c_str());
    }
    if (s == NATS_OK) s = natsConnection_PublishMsg(nc, msg);
    natsMsg_Destroy(msg);
    if (s != NATS_OK) {
      natsConnection_Destroy(nc);
      return nats_fail("publish #" + number, s);
    }
    if (a.interval_us > 0 && n < count) std::this_thread::sleep_for(std::chrono::microseconds(a.interval_us));
  }
  s = natsConnection_FlushTimeout(nc, 5000);
  natsConnection_Destroy(nc);
  if (s != NATS_OK) return nats_fail("flush", s);
  std::fprintf(stderr, "published %ld\n", n - 1);
  return 0;
}

int run_req(const Args& a) {
  if (a.positional.size() != 3) return usage("req URL SUBJECT BODY [--timeout-ms T]");
  const long timeout = a.timeout_ms < 0 ? 5000 : a.timeout_ms;
  natsConnection* nc = nullptr;
  natsStatus s = connect(&nc, a.positional[0], Clock::now(), false);
  if (s != NATS_OK) return nats_fail("connect " + a.positional[0], s);
  natsMsg* reply = nullptr;
  s = natsConnection_RequestString(&reply, nc, a.positional[1].c_str(), a.positional[2].c_str(), timeout);
  int rc = 0;
  if (s == NATS_OK) {
    std::printf("%s\n", payload(reply).c_str());
    std::fflush(stdout);
    natsMsg_Destroy(reply);
  } else if (s == NATS_NO_RESPONDERS) {
    std::fprintf(stderr, "no responders\n");
    rc = 3;
  } else if (s == NATS_TIMEOUT) {
    std::fprintf(stderr, "timeout\n");
    rc = 4;
  } else {
    rc = nats_fail("request", s);
  }
  natsConnection_Destroy(nc);
  return rc;
}

int run_wait_cluster(const Args& a) {
  if (a.positional.size() < 2) return usage("wait-cluster URL1 URL2 [URL3...] [--timeout-ms T]");
  const auto deadline = Clock::now() + std::chrono::milliseconds(a.timeout_ms < 0 ? 10000 : a.timeout_ms);
  const std::size_t n = a.positional.size();
  std::vector<natsConnection*> conns(n, nullptr);
  std::vector<natsSubscription*> subs(n, nullptr);
  auto cleanup = [&] {
    for (auto* s : subs) natsSubscription_Destroy(s);
    for (auto* c : conns) natsConnection_Destroy(c);
  };
  const std::string subject = "nats_peer.cluster." + std::to_string(::getpid());
  for (std::size_t i = 0; i < n; ++i) {
    natsStatus s = connect(&conns[i], a.positional[i], deadline, true);
    if (s == NATS_OK) s = natsConnection_SubscribeSync(&subs[i], conns[i], subject.c_str());
    if (s == NATS_OK) s = natsConnection_FlushTimeout(conns[i], std::max<long>(1, remaining_ms(deadline)));
    if (s != NATS_OK) {
      cleanup();
      return nats_fail("wait-cluster: node " + a.positional[i], s);
    }
  }
  // seen[i][j]: node i's subscriber got what node j published.
  std::vector<std::vector<bool>> seen(n, std::vector<bool>(n, false));
  auto all_seen = [&] {
    for (std::size_t i = 0; i < n; ++i)
      for (std::size_t j = 0; j < n; ++j)
        if (i != j && !seen[i][j]) return false;
    return true;
  };
  while (!all_seen()) {
    if (Clock::now() >= deadline || g_stop.load()) {
      std::string missing;
      for (std::size_t i = 0; i < n; ++i)
        for (std::size_t j = 0; j < n; ++j)
          if (i != j && !seen[i][j]) missing += " " + std::to_string(j + 1) + "->" + std::to_string(i + 1);
      std::fprintf(stderr, "nats_peer: wait-cluster: no full mesh in time; missing:%s\n", missing.c_str());
      cleanup();
      return 1;
    }
    for (std::size_t j = 0; j < n; ++j) {
      const std::string from = std::to_string(j);
      (void)natsConnection_PublishString(conns[j], subject.c_str(), from.c_str());
      (void)natsConnection_Flush(conns[j]);
    }
    const auto round_end = Clock::now() + std::chrono::milliseconds(50);
    for (std::size_t i = 0; i < n; ++i) {
      for (;;) {
        const long left = std::max<long>(1, remaining_ms(round_end));
        natsMsg* msg = nullptr;
        if (natsSubscription_NextMsg(&msg, subs[i], i + 1 == n ? left : 1) != NATS_OK) break;
        const long j = std::strtol(payload(msg).c_str(), nullptr, 10);
        if (j >= 0 && static_cast<std::size_t>(j) < n) seen[i][static_cast<std::size_t>(j)] = true;
        natsMsg_Destroy(msg);
      }
    }
  }
  std::fprintf(stderr, "cluster ready\n");
  cleanup();
  return 0;
}

int run_js_ready(const Args& a) {
  if (a.positional.empty()) return usage("js-ready URL1 [URL2...] [--timeout-ms T]");
  const auto deadline = Clock::now() + std::chrono::milliseconds(a.timeout_ms < 0 ? 15000 : a.timeout_ms);
  const std::size_t n = a.positional.size();
  std::vector<natsConnection*> conns(n, nullptr);
  std::vector<jsCtx*> ctxs(n, nullptr);
  auto cleanup = [&] {
    for (auto* js : ctxs) jsCtx_Destroy(js);
    for (auto* c : conns) natsConnection_Destroy(c);
  };
  for (std::size_t i = 0; i < n; ++i) {
    natsStatus s = connect(&conns[i], a.positional[i], deadline, true);
    if (s == NATS_OK) s = natsConnection_JetStream(&ctxs[i], conns[i], nullptr);
    if (s != NATS_OK) {
      cleanup();
      return nats_fail("js-ready: node " + a.positional[i], s);
    }
  }
  std::vector<bool> ready(n, false);
  std::string last_error;
  for (;;) {
    for (std::size_t i = 0; i < n; ++i) {
      if (ready[i]) continue;
      jsOptions o;
      jsOptions_Init(&o);
      o.Wait = std::max<long>(100, std::min<long>(1000, remaining_ms(deadline)));
      jsAccountInfo* ai = nullptr;
      jsErrCode jerr = static_cast<jsErrCode>(0);
      const natsStatus s = js_GetAccountInfo(&ai, ctxs[i], &o, &jerr);
      if (s == NATS_OK) {
        ready[i] = true;
        jsAccountInfo_Destroy(ai);
      } else {
        last_error = a.positional[i] + ": " + natsStatus_GetText(s) + " (JetStream error " + std::to_string(jerr) +
                     ", " + nats_GetLastError(nullptr) + ")";
      }
    }
    if (std::all_of(ready.begin(), ready.end(), [](bool r) { return r; })) break;
    if (Clock::now() >= deadline || g_stop.load()) {
      std::fprintf(stderr, "nats_peer: js-ready: JetStream not ready in time; last: %s\n", last_error.c_str());
      cleanup();
      return 1;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  std::fprintf(stderr, "jetstream ready\n");
  cleanup();
  return 0;
}

/// A connection and its JetStream context (js-info, js-consumer), destroyed together.
struct JetStreamClient {
  natsConnection* nc = nullptr;
  jsCtx* js = nullptr;
  JetStreamClient() = default;
  JetStreamClient(const JetStreamClient&) = delete;
  JetStreamClient& operator=(const JetStreamClient&) = delete;
  ~JetStreamClient() {
    if (js != nullptr) jsCtx_Destroy(js);
    if (nc != nullptr) natsConnection_Destroy(nc);
  }
  /// Connects to `url` and makes the context (its calls wait --timeout-ms, default 5 s); 0, or
  /// the exit code of the failure (reported).
  int open(const Args& a, const std::string& url) {
    natsStatus s = connect(&nc, url, Clock::now(), false);
    if (s != NATS_OK) return nats_fail("connect " + url, s);
    jsOptions o;
    jsOptions_Init(&o);
    o.Wait = a.timeout_ms < 0 ? 5000 : a.timeout_ms;
    s = natsConnection_JetStream(&js, nc, &o);
    if (s != NATS_OK) return nats_fail("JetStream context", s);
    return 0;
  }
};

int run_js_info(const Args& a) {
  if (a.positional.size() != 2) return usage("js-info URL STREAM [--payloads] [--timeout-ms T]");
  const std::string& stream = a.positional[1];
  JetStreamClient client;
  if (const int rc = client.open(a, a.positional[0]); rc != 0) return rc;
  jsCtx* js = client.js;
  natsStatus s = NATS_OK;
  jsStreamInfo* si = nullptr;
  jsErrCode jerr = static_cast<jsErrCode>(0);
  s = js_GetStreamInfo(&si, js, stream.c_str(), nullptr, &jerr);
  if (s == NATS_NOT_FOUND) {
    std::fprintf(stderr, "nats_peer: no stream %s\n", stream.c_str());
    return 5;
  }
  if (s != NATS_OK) return nats_fail("stream info " + stream + " (JetStream error " + std::to_string(jerr) + ")", s);
  const jsStreamState st = si->State;
  const std::string leader =
      si->Cluster != nullptr && si->Cluster->Leader != nullptr && *si->Cluster->Leader != '\0' ? si->Cluster->Leader : "-";
  jsStreamInfo_Destroy(si);
  std::printf("messages %llu first_seq %llu last_seq %llu consumers %lld leader %s\n",
              static_cast<unsigned long long>(st.Msgs), static_cast<unsigned long long>(st.FirstSeq),
              static_cast<unsigned long long>(st.LastSeq), static_cast<long long>(st.Consumers), leader.c_str());
  if (a.payloads && st.Msgs > 0) {
    for (std::uint64_t seq = st.FirstSeq; seq <= st.LastSeq && !g_stop.load(); ++seq) {
      natsMsg* msg = nullptr;
      jerr = static_cast<jsErrCode>(0);
      s = js_GetMsg(&msg, js, stream.c_str(), seq, nullptr, &jerr);
      if (s == NATS_NOT_FOUND) continue;  // deleted
      if (s != NATS_OK) return nats_fail("get " + stream + " #" + std::to_string(seq), s);
      std::printf("%s\n", payload(msg).c_str());
      natsMsg_Destroy(msg);
    }
  }
  std::fflush(stdout);
  return 0;
}

int run_js_consumer(const Args& a) {
  if (a.positional.size() != 3) return usage("js-consumer URL STREAM CONSUMER [--timeout-ms T]");
  JetStreamClient client;
  if (const int rc = client.open(a, a.positional[0]); rc != 0) return rc;
  natsStatus s = NATS_OK;
  jsConsumerInfo* ci = nullptr;
  jsErrCode jerr = static_cast<jsErrCode>(0);
  s = js_GetConsumerInfo(&ci, client.js, a.positional[1].c_str(), a.positional[2].c_str(), nullptr, &jerr);
  int rc = 0;
  if (s == NATS_OK) {
    std::printf("num_pending %llu num_ack_pending %lld num_redelivered %lld delivered_stream_seq %llu "
                "delivered_consumer_seq %llu ack_floor_stream_seq %llu\n",
                static_cast<unsigned long long>(ci->NumPending), static_cast<long long>(ci->NumAckPending),
                static_cast<long long>(ci->NumRedelivered), static_cast<unsigned long long>(ci->Delivered.Stream),
                static_cast<unsigned long long>(ci->Delivered.Consumer),
                static_cast<unsigned long long>(ci->AckFloor.Stream));
    std::fflush(stdout);
    jsConsumerInfo_Destroy(ci);
  } else if (s == NATS_NOT_FOUND) {
    std::fprintf(stderr, "nats_peer: no consumer %s on stream %s\n", a.positional[2].c_str(), a.positional[1].c_str());
    rc = 5;
  } else {
    rc = nats_fail("consumer info " + a.positional[2] + " (JetStream error " + std::to_string(jerr) + ")", s);
  }
  return rc;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) return usage("nats_peer sub|pub|reply|req|wait-cluster|js-ready|js-info|js-consumer ...");
  struct sigaction sa {};
  sa.sa_handler = on_signal;
  ::sigaction(SIGTERM, &sa, nullptr);
  ::sigaction(SIGINT, &sa, nullptr);
  Args a;
  std::string error;
  if (!parse(argc, argv, a, error)) return usage(error);
  const std::string verb = argv[1];
  int rc = 2;
  if (verb == "sub") {
    rc = run_serve(a, false);
  } else if (verb == "reply") {
    rc = run_serve(a, true);
  } else if (verb == "pub") {
    rc = run_pub(a);
  } else if (verb == "req") {
    rc = run_req(a);
  } else if (verb == "wait-cluster") {
    rc = run_wait_cluster(a);
  } else if (verb == "js-ready") {
    rc = run_js_ready(a);
  } else if (verb == "js-info") {
    rc = run_js_info(a);
  } else if (verb == "js-consumer") {
    rc = run_js_consumer(a);
  } else {
    return usage("unknown verb " + verb);
  }
  nats_Close();
  return rc;
}

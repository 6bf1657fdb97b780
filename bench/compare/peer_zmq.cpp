// peer_zmq.cpp — ZeroMQ (libzmq) over ipc:// in the compare driver's protocol (peer_common.hpp).
// One context (one I/O thread, the default) per process, created after the fork. The parent binds
// ipc://DIR/cmp-<pid>.ipc, children connect (reconnect interval 10 ms, so a child that starts
// before the bind does not wait the default 100 ms).
//
//   latency     PAIR <-> PAIR ping-pong; one-way = RTT/2
//   throughput  1 subscriber: PUSH -> PULL (blocking send: back-pressure at the 1000-message HWM,
//               nothing dropped); N subscribers: PUB -> N x SUB with ZMQ_XPUB_NODROP (PUB
//               blocks at the HWM instead of dropping, so delivered counts are complete)
//   reqrep      REQ -> REP round trip
// Receivers drain with ZMQ_DONTWAIT and block in zmq_poll() only when empty (that is also the
// moment the delivered count is stamped).
#include <unistd.h>
#include <zmq.h>

#include <cerrno>
#include <string>
#include <vector>

#include "peer_common.hpp"

namespace {

using namespace bus::compare;

constexpr int kReplyTimeoutMs = 2000;

std::string zerr(const char* what) { return std::string(what) + ": " + zmq_strerror(zmq_errno()); }

class Socket {
 public:
  Socket(void* ctx, int type) : s_(zmq_socket(ctx, type)) {
    if (s_ != nullptr) set(ZMQ_LINGER, 0);
  }
  ~Socket() {
    if (s_ != nullptr) zmq_close(s_);
  }
  Socket(const Socket&) = delete;
  Socket& operator=(const Socket&) = delete;
  bool set(int option, int value) { return zmq_setsockopt(s_, option, &value, sizeof value) == 0; }
  void* get() const { return s_; }
  explicit operator bool() const { return s_ != nullptr; }

 private:
  void* s_;
};

class Context {
 public:
  Context() : ctx_(zmq_ctx_new()) {}
  ~Context() {
    if (ctx_ != nullptr) zmq_ctx_term(ctx_);
  }
  Context(const Context&) = delete;
  Context& operator=(const Context&) = delete;
  void* get() const { return ctx_; }

 private:
  void* ctx_;
};

std::string endpoint(const Args& a) { return "ipc://" + a.dir + "/cmp-" + std::to_string(::getpid()) + ".ipc"; }

// ------------------------------------------------------------------------------- latency, reqrep
int round_trips(const Args& a) {
  const bool reqrep = a.workload == "reqrep";
  const std::string ep = endpoint(a);
  Harness h(a);
  h.spawn(1, [&](int i, Control& c) {
    SubSlot& slot = c.subs[i];
    Context ctx;
    Socket s(ctx.get(), reqrep ? ZMQ_REP : ZMQ_PAIR);
    if (!s) return child_fail(slot, zerr("socket"));
    s.set(ZMQ_RECONNECT_IVL, 10);
    s.set(ZMQ_RCVTIMEO, 100);
    if (zmq_connect(s.get(), ep.c_str()) != 0) return child_fail(slot, zerr("connect"));
    std::vector<char> buf(a.size + 1);
    child_ready(slot);
    for (;;) {
      const int n = zmq_recv(s.get(), buf.data(), buf.size(), 0);
      if (n < 0) {
        if (zmq_errno() == EAGAIN || zmq_errno() == EINTR) {
          if (stop_requested(c)) return 0;
          continue;
        }
        return child_fail(slot, zerr("recv"));
      }
      if (zmq_send(s.get(), buf.data(), static_cast<std::size_t>(n), 0) < 0) return child_fail(slot, zerr("send"));
    }
  });

  Context ctx;
  Socket s(ctx.get(), reqrep ? ZMQ_REQ : ZMQ_PAIR);
  if (!s) return h.fail(zerr("socket"));
  s.set(ZMQ_RCVTIMEO, kReplyTimeoutMs);
  s.set(ZMQ_SNDTIMEO, kReplyTimeoutMs);
  if (zmq_bind(s.get(), ep.c_str()) != 0) return h.fail(zerr(("bind " + ep).c_str()));
  std::string err;
  if (!h.wait_ready(err)) return h.fail(err);
  const std::vector<char> payload(a.size, 'p');
  std::vector<char> buf(a.size + 1);
  const int rc = h.run_latency(
      [&]() -> bool {
        if (zmq_send(s.get(), payload.data(), payload.size(), 0) < 0) return false;
        const int n = zmq_recv(s.get(), buf.data(), buf.size(), 0);
        return n == static_cast<int>(a.size);
      },
      !reqrep);
  ::unlink(ep.substr(6).c_str());
  return rc;
}

// ------------------------------------------------------------------------------- throughput
int throughput(const Args& a) {
  const std::string ep = endpoint(a);
  const int n = std::clamp(a.subs, 1, kMaxSubs);
  const bool fanout = n > 1;
  Harness h(a);
  h.spawn(n, [&](int i, Control& c) {
    SubSlot& slot = c.subs[i];
    Context ctx;
    Socket s(ctx.get(), fanout ? ZMQ_SUB : ZMQ_PULL);
    if (!s) return child_fail(slot, zerr("socket"));
    s.set(ZMQ_RECONNECT_IVL, 10);
    if (fanout && zmq_setsockopt(s.get(), ZMQ_SUBSCRIBE, "", 0) != 0) return child_fail(slot, zerr("subscribe"));
    if (zmq_connect(s.get(), ep.c_str()) != 0) return child_fail(slot, zerr("connect"));
    RecvCounter counter(slot, a.size);
    std::vector<char> buf(a.size + 1);
    child_ready(slot);
    for (;;) {
      const int got = zmq_recv(s.get(), buf.data(), buf.size(), ZMQ_DONTWAIT);
      if (got >= 0) {
        counter.on_message(buf.data(), static_cast<std::size_t>(got));
        continue;
      }
      if (zmq_errno() != EAGAIN && zmq_errno() != EINTR) return child_fail(slot, zerr("recv"));
      counter.idle();
      zmq_pollitem_t item{s.get(), 0, ZMQ_POLLIN, 0};
      if (zmq_poll(&item, 1, 100) == 0 && stop_requested(c)) return 0;
    }
  });

  Context ctx;
  Socket s(ctx.get(), fanout ? ZMQ_PUB : ZMQ_PUSH);
  if (!s) return h.fail(zerr("socket"));
  s.set(ZMQ_SNDTIMEO, kReplyTimeoutMs);
  if (fanout) s.set(ZMQ_XPUB_NODROP, 1);
  if (zmq_bind(s.get(), ep.c_str()) != 0) return h.fail(zerr(("bind " + ep).c_str()));
  std::string err;
  if (!h.wait_ready(err)) return h.fail(err);
  const int rc = h.run_throughput(
      [&](const char* data, std::size_t len) -> bool { return zmq_send(s.get(), data, len, 0) == static_cast<int>(len); },
      [] {});
  ::unlink(ep.substr(6).c_str());
  return rc;
}

}  // namespace

int main(int argc, char** argv) {
  const Args a = parse_args(argc, argv, "zmq");
  if (a.workload == "latency" || a.workload == "reqrep") return round_trips(a);
  if (a.workload == "throughput") return throughput(a);
  std::printf("{\"ok\":false,\"transport\":\"zmq\",\"workload\":\"%s\",\"error\":\"not applicable\"}\n",
              a.workload.c_str());
  return 3;
}

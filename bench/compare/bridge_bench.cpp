// bridge_bench — bus -> NATS -> bus through two bridges, beside a plain nats.c client pair on
// the same three-node cluster, in the same run (issue: "the bridge's overhead must be small,
// target: within 1.2x of nats.c to nats.c").
//
//   bridge_bench --bin build/bin [--smoke] [--json OUT.json] [--runs R]
//
// Starts a 3-node nats-server cluster on loopback (free ports), two brokers (buses A and B,
// standing for two hosts) and a `bus bridge` on each (A on node 1, B on node 2, each given all
// three URLs), then measures, per transport:
//   rtt 16 B      request/reply round trip: A requests, B answers (nats: a connection to node 1
//                 requests, one to node 2 answers), p50 and p99 over the requests
//   tput 16/256 B one publisher on A (node 1), one subscriber on B (node 2): messages delivered
//                 per second from the first publish to the last delivery, and what was lost
// Each figure is the median over --runs repetitions; the ratio column is bridge/nats (cost: time
// per message, so > 1 means the bridge is slower). Every wait is bounded; child processes are
// killed at exit.
#include <nats/nats.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <netinet/in.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>
#include <vector>

#include "bus/bus.hpp"

namespace {

using Clock = std::chrono::steady_clock;
using namespace std::chrono_literals;

std::vector<pid_t> g_children;

void kill_children() {
  // SIGTERM first, in reverse order (bridges, then brokers, which then remove their segments,
  // then the servers); SIGKILL whatever is still there after 3 s.
  for (auto it = g_children.rbegin(); it != g_children.rend(); ++it) {
    ::kill(*it, SIGTERM);
    const auto deadline = Clock::now() + 3s;
    while (::waitpid(*it, nullptr, WNOHANG) == 0) {
      if (Clock::now() > deadline) {
        ::kill(*it, SIGKILL);
        ::waitpid(*it, nullptr, 0);
        break;
      }
      std::this_thread::sleep_for(10ms);
    }
  }
  g_children.clear();
}

pid_t spawn(const std::vector<std::string>& argv, const std::string& log) {
  const pid_t pid = ::fork();
  if (pid == 0) {
    std::FILE* f = std::fopen(log.c_str(), "w");
    if (f != nullptr) {
      ::dup2(::fileno(f), 1);
      ::dup2(::fileno(f), 2);
    }
    std::vector<char*> args;
    for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
    args.push_back(nullptr);
    ::execvp(args[0], args.data());
    std::fprintf(stderr, "exec %s: %s\n", args[0], std::strerror(errno));
    ::_exit(127);
  }
  if (pid > 0) g_children.push_back(pid);
  return pid;
}

bool port_free(int port) {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(static_cast<std::uint16_t>(port));
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  const bool ok = ::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0;
  ::close(fd);
  return ok;
}

/// Six free ports from a base that depends on our pid (client and cluster port per node).
std::vector<int> free_ports() {
  for (int base = 20000 + (::getpid() % 2000) * 10;; base += 10) {
    std::vector<int> p;
    for (int i = 0; i < 6 && port_free(base + i); ++i) p.push_back(base + i);
    if (p.size() == 6) return p;
    if (base > 60000) return {};
  }
}

double percentile(std::vector<double> v, double q) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  return v[std::min(v.size() - 1, static_cast<std::size_t>(q * static_cast<double>(v.size())))];
}

double median(std::vector<double> v) { return percentile(std::move(v), 0.5); }

struct Result {
  double rtt_p50_us = 0, rtt_p99_us = 0;
  double tput16 = 0, tput256 = 0;  // delivered msgs/s
  double loss16 = 0, loss256 = 0;  // fraction lost
};

// ------------------------------------------------------------------------------ nats.c pair

natsConnection* nats_connect(const std::string& url, bool asap = false) {
  natsOptions* o = nullptr;
  natsOptions_Create(&o);
  natsOptions_SetURL(o, url.c_str());
  natsOptions_SetSendAsap(o, asap);  // latency rows: no wait for the flusher
  natsConnection* nc = nullptr;
  // The servers were just started: retry while they come up.
  const auto deadline = Clock::now() + 10s;
  while (natsConnection_Connect(&nc, o) != NATS_OK) {
    nc = nullptr;
    if (Clock::now() > deadline) {
      std::fprintf(stderr, "bridge_bench: cannot connect to %s\n", url.c_str());
      break;
    }
    std::this_thread::sleep_for(50ms);
  }
  natsOptions_Destroy(o);
  return nc;
}

void nats_echo(natsConnection* nc, natsSubscription*, natsMsg* m, void*) {
  if (natsMsg_GetReply(m) != nullptr) {
    natsConnection_Publish(nc, natsMsg_GetReply(m), natsMsg_GetData(m), natsMsg_GetDataLength(m));
  }
  natsMsg_Destroy(m);
}

bool nats_rtt(const std::string& url1, const std::string& url2, int n, Result& r) {
  natsConnection* a = nats_connect(url1, true);
  natsConnection* b = nats_connect(url2, true);
  if (a == nullptr || b == nullptr) return false;
  natsSubscription* sub = nullptr;
  natsConnection_Subscribe(&sub, b, "cmp.rtt", nats_echo, nullptr);
  natsConnection_Flush(b);
  const std::string body(16, 'x');
  natsMsg* reply = nullptr;
  // Interest crosses the cluster asynchronously: ask until someone answers.
  const auto deadline = Clock::now() + 10s;
  while (natsConnection_Request(&reply, a, "cmp.rtt", body.data(), 16, 200) != NATS_OK) {
    if (Clock::now() > deadline) {
      std::fprintf(stderr, "bridge_bench: nats.c requests found no responder across the cluster\n");
      return false;
    }
  }
  natsMsg_Destroy(reply);
  std::vector<double> us;
  for (int i = 0; i < n; ++i) {
    const auto t0 = Clock::now();
    if (natsConnection_Request(&reply, a, "cmp.rtt", body.data(), 16, 1000) != NATS_OK) continue;
    us.push_back(std::chrono::duration<double, std::micro>(Clock::now() - t0).count());
    natsMsg_Destroy(reply);
  }
  r.rtt_p50_us = percentile(us, 0.5);
  r.rtt_p99_us = percentile(us, 0.99);
  natsSubscription_Destroy(sub);
  natsConnection_Destroy(a);
  natsConnection_Destroy(b);
  return !us.empty();
}

bool nats_tput(const std::string& url1, const std::string& url2, int n, int size, double& rate, double& loss) {
  natsConnection* a = nats_connect(url1);
  natsConnection* b = nats_connect(url2);
  if (a == nullptr || b == nullptr) return false;
  natsSubscription* sub = nullptr;
  natsConnection_SubscribeSync(&sub, b, "cmp.tput");
  natsSubscription_SetPendingLimits(sub, -1, -1);
  natsConnection_Flush(b);
  const std::string body(static_cast<std::size_t>(size), 'x');
  // Warm up: probes until one arrives.
  natsMsg* m = nullptr;
  const auto deadline = Clock::now() + 10s;
  for (;;) {
    natsConnection_Publish(a, "cmp.tput", "p", 1);
    natsConnection_Flush(a);
    if (natsSubscription_NextMsg(&m, sub, 100) == NATS_OK) break;
    if (Clock::now() > deadline) return false;
  }
  natsMsg_Destroy(m);
  while (natsSubscription_NextMsg(&m, sub, 50) == NATS_OK) natsMsg_Destroy(m);  // drain probes
  std::atomic<int> got{0};
  Clock::time_point last;
  std::thread rx([&] {
    natsMsg* x = nullptr;
    while (natsSubscription_NextMsg(&x, sub, 1000) == NATS_OK) {
      natsMsg_Destroy(x);
      last = Clock::now();
      if (got.fetch_add(1) + 1 == n) break;
    }
  });
  const auto t0 = Clock::now();
  for (int i = 0; i < n; ++i) natsConnection_Publish(a, "cmp.tput", body.data(), size);
  natsConnection_Flush(a);
  rx.join();
  rate = got.load() / std::chrono::duration<double>(last - t0).count();
  loss = 1.0 - static_cast<double>(got.load()) / n;
  natsSubscription_Destroy(sub);
  natsConnection_Destroy(a);
  natsConnection_Destroy(b);
  return got.load() > 0;
}

// --------------------------------------------------------------------------- bus via bridges

bus::Result<bus::Connection> bus_connect(const std::string& name) {
  const auto deadline = Clock::now() + 10s;
  for (;;) {
    auto c = bus::Connection::connect(name);
    if (c || Clock::now() > deadline) return c;
    std::this_thread::sleep_for(50ms);
  }
}

bool bus_rtt(const std::string& bus_a, const std::string& bus_b, int n, Result& r) {
  auto a = bus_connect(bus_a);
  auto b = bus_connect(bus_b);
  if (!a || !b) return false;
  auto sub = b->subscribe("cmp.rtt", [](const bus::MessageView& m) { (void)m.respond(m.data); });
  if (!sub) return false;
  const std::string body(16, 'x');
  const auto deadline = Clock::now() + 10s;
  while (!a->request("cmp.rtt", body, 200ms)) {
    if (Clock::now() > deadline) {
      std::fprintf(stderr, "bridge_bench: bus A's requests found no responder on bus B through the bridges\n");
      return false;
    }
    std::this_thread::sleep_for(20ms);
  }
  std::vector<double> us;
  for (int i = 0; i < n; ++i) {
    const auto t0 = Clock::now();
    if (!a->request("cmp.rtt", body, 1s)) continue;
    us.push_back(std::chrono::duration<double, std::micro>(Clock::now() - t0).count());
  }
  r.rtt_p50_us = percentile(us, 0.5);
  r.rtt_p99_us = percentile(us, 0.99);
  return !us.empty();
}

bool bus_tput(const std::string& bus_a, const std::string& bus_b, int n, int size, double& rate, double& loss) {
  auto a = bus_connect(bus_a);
  auto b = bus_connect(bus_b);
  if (!a || !b) return false;
  auto sub = b->subscribe("cmp.tput");
  if (!sub) return false;
  const std::string body(static_cast<std::size_t>(size), 'x');
  const auto deadline = Clock::now() + 10s;
  for (;;) {
    (void)a->publish("cmp.tput", "p");
    if (sub->next(100ms)) break;
    if (Clock::now() > deadline) return false;
  }
  while (sub->next(50ms)) {
  }
  std::atomic<int> got{0};
  Clock::time_point last;
  std::thread rx([&] {
    while (sub->next(1s)) {
      last = Clock::now();
      if (got.fetch_add(1) + 1 == n) break;
    }
  });
  const auto t0 = Clock::now();
  for (int i = 0; i < n; ++i) {
    // The bridge's ring is the bus side's buffer: at-most-once, like core NATS, so a publisher
    // that outruns NATS loses messages there (counted). Pace as a NATS client's full buffer
    // paces it: sleep (not spin: two cores) while 8192 are in flight.
    (void)a->publish("cmp.tput", body);
    while (i - got.load(std::memory_order_relaxed) > 8192 && Clock::now() - t0 < 30s) {
      std::this_thread::sleep_for(std::chrono::microseconds(20));
    }
  }
  rx.join();
  rate = got.load() / std::chrono::duration<double>(last - t0).count();
  loss = 1.0 - static_cast<double>(got.load()) / n;
  return got.load() > 0;
}

}  // namespace

int main(int argc, char** argv) {
  std::string bin = "build/bin", json_out;
  bool smoke = false;
  int runs = 3;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--bin" && i + 1 < argc) {
      bin = argv[++i];
    } else if (a == "--json" && i + 1 < argc) {
      json_out = argv[++i];
    } else if (a == "--runs" && i + 1 < argc) {
      runs = std::max(1, std::atoi(argv[++i]));
    } else if (a == "--smoke") {
      smoke = true;
      runs = 1;
    } else {
      std::fprintf(stderr, "bridge_bench: unknown option '%s' (--bin DIR --json FILE --runs N --smoke)\n", a.c_str());
      return 2;
    }
  }
  ::signal(SIGPIPE, SIG_IGN);
  const int rtt_n = smoke ? 300 : 3000;
  const int tput_n = smoke ? 20000 : 200000;
  const auto ports = free_ports();
  if (ports.empty()) {
    std::fprintf(stderr, "bridge_bench: no free ports\n");
    return 1;
  }
  char tmpl[] = "/tmp/bridge-bench.XXXXXX";
  const std::string tmp = ::mkdtemp(tmpl);
  std::vector<std::string> urls;
  for (int n = 0; n < 3; ++n) {
    std::string routes;
    for (int m = 0; m < 3; ++m) {
      if (m == n) continue;
      routes += (routes.empty() ? "" : ",") + std::string("nats://127.0.0.1:") + std::to_string(ports[3 + m]);
    }
    spawn({"nats-server", "-a", "127.0.0.1", "-p", std::to_string(ports[n]), "--cluster",
           "nats://127.0.0.1:" + std::to_string(ports[3 + n]), "--routes", routes, "--cluster_name", "bench"},
          tmp + "/nats" + std::to_string(n) + ".log");
    urls.push_back("nats://127.0.0.1:" + std::to_string(ports[n]));
  }
  const std::string bus_a = "bb-a-" + std::to_string(::getpid()), bus_b = "bb-b-" + std::to_string(::getpid());
  spawn({bin + "/busd", "--bus", bus_a, "-q"}, tmp + "/busd-a.log");
  spawn({bin + "/busd", "--bus", bus_b, "-q"}, tmp + "/busd-b.log");
  const std::string all_a = urls[0] + "," + urls[1] + "," + urls[2];
  const std::string all_b = urls[1] + "," + urls[0] + "," + urls[2];
  for (const auto& [bus, servers, name] : {std::tuple{bus_a, all_a, std::string("a")}, std::tuple{bus_b, all_b, std::string("b")}}) {
    spawn({bin + "/bus", "--bus", bus, "--wait-for-broker", "5s", "bridge", "--nats", servers, "--export", "cmp.>",
           "--import", "cmp.>", "--bridge-name", name},
          tmp + "/bridge-" + name + ".log");
  }
  // The cluster and both bridges: until a nats.c pair talks across and both buses answer.
  std::vector<Result> nats, bridged;
  bool ok = true;
  for (int run = 0; run < runs && ok; ++run) {
    Result n, b;
    ok = nats_rtt(urls[0], urls[1], rtt_n, n) && nats_tput(urls[0], urls[1], tput_n, 16, n.tput16, n.loss16) &&
         nats_tput(urls[0], urls[1], tput_n, 256, n.tput256, n.loss256);
    ok = ok && bus_rtt(bus_a, bus_b, rtt_n, b) && bus_tput(bus_a, bus_b, tput_n, 16, b.tput16, b.loss16) &&
         bus_tput(bus_a, bus_b, tput_n, 256, b.tput256, b.loss256);
    nats.push_back(n);
    bridged.push_back(b);
  }
  kill_children();
  if (!ok) {
    std::fprintf(stderr, "bridge_bench: a measurement failed (logs in %s)\n", tmp.c_str());
    return 1;
  }
  auto med = [](const std::vector<Result>& v, double Result::*f) {
    std::vector<double> x;
    for (const auto& r : v) x.push_back(r.*f);
    return median(x);
  };
  struct Row {
    const char* name;
    double Result::*field;
    bool rate;  // a rate: the cost ratio is nats/bridge; a time: bridge/nats
  };
  const Row rows[] = {{"bus->NATS->bus request/reply RTT 16 B p50 (us)", &Result::rtt_p50_us, false},
                      {"bus->NATS->bus request/reply RTT 16 B p99 (us)", &Result::rtt_p99_us, false},
                      {"bus->NATS->bus throughput 16 B (msgs/s)", &Result::tput16, true},
                      {"bus->NATS->bus throughput 256 B (msgs/s)", &Result::tput256, true},
                      {"  lost 16 B (fraction)", &Result::loss16, false},
                      {"  lost 256 B (fraction)", &Result::loss256, false}};
  std::printf("%-50s | %14s | %14s | %s\n", "row (3-node cluster, same run)", "nats.c<->nats.c", "bus via bridges",
              "bridge/nats (cost)");
  nlohmann::json j{{"runs", runs}, {"rows", nlohmann::json::array()}};
  for (const Row& row : rows) {
    const double n = med(nats, row.field), b = med(bridged, row.field);
    const bool is_loss = row.name[0] == ' ';
    const double ratio = is_loss ? 0 : (row.rate ? (b > 0 ? n / b : 0) : (n > 0 ? b / n : 0));
    std::printf("%-50s | %14.3f | %14.3f | %s\n", row.name, n, b, is_loss ? "" : (std::to_string(ratio).substr(0, 4) + "x").c_str());
    j["rows"].push_back({{"row", row.name}, {"nats", n}, {"bridge", b}, {"cost_ratio", ratio}});
  }
  std::printf("target: bridge within 1.2x of nats.c<->nats.c (cost ratio <= 1.2)\n");
  if (!json_out.empty()) std::ofstream(json_out) << j.dump(2) << "\n";
  return 0;
}

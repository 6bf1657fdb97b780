// bridge_mp_test.cpp — the NATS bridge (`bus bridge`, bus/bridge.hpp) across real processes: a
// three-node nats-server cluster on loopback (ports chosen at run time), two buses (two busd,
// standing for two hosts) and one `bus bridge` per bus, each given all three NATS URLs, its own
// preferred node first. Plain NATS roles are played by nats_peer (tests/helpers/nats_peer.cpp),
// bus roles by the bus CLI.
//
// Interest crosses asynchronously (a bridge polls its bus's subscription table every 20 ms, then
// NATS routes propagate the SUB), so every test first publishes probes on a probe subject until
// each receiver saw one, and only then sends what it counts. The only fixed pauses are short
// grace periods after everything expected arrived, to catch what arrives twice.
//
// The stream links (--export-stream, --import-stream; tests (i)-(k)) run on a cluster with
// JetStream and buses that keep streams: BridgeMpStreams, below.
//
// Skipped when no nats-server is installed (Debian puts it in /usr/sbin).
#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <functional>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <random>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "process_harness.hpp"

namespace bus::test {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

constexpr auto kWait = 10s;  // anything that should happen soon; only costs time when broken

std::string nats_peer_path() { return BUS_NATS_PEER; }

std::string find_nats_server() {
  for (const char* p : {"/usr/bin/nats-server", "/usr/sbin/nats-server"}) {
    if (::access(p, X_OK) == 0) return p;
  }
  if (const char* path = std::getenv("PATH")) {
    std::stringstream dirs(path);
    std::string dir;
    while (std::getline(dirs, dir, ':')) {
      const std::string p = dir + "/nats-server";
      if (!dir.empty() && ::access(p.c_str(), X_OK) == 0) return p;
    }
  }
  return {};
}

/// A loopback TCP port nobody listens on now (bind-tested), not in `taken`.
int free_port(std::set<int>& taken) {
  static std::mt19937 rng(static_cast<unsigned>(::getpid()) ^
                          static_cast<unsigned>(Clock::now().time_since_epoch().count()));
  for (int attempt = 0; attempt < 500; ++attempt) {
    const int port = 20000 + static_cast<int>(rng() % 12000);  // below the ephemeral range
    if (taken.count(port) != 0) continue;
    const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0) return -1;
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(static_cast<std::uint16_t>(port));
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    const bool ok = ::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0;
    ::close(fd);
    if (ok) {
      taken.insert(port);
      return port;
    }
  }
  return -1;
}

std::string read_file(const std::string& path, std::size_t max = 3000) {
  std::ifstream in(path);
  std::stringstream s;
  s << in.rdbuf();
  const std::string text = s.str();
  return text.size() <= max ? text : "..." + text.substr(text.size() - max);
}

// ----------------------------------------------------------------------------- receivers

/// One received message as a subscriber process printed it.
struct Msg {
  std::string subject, payload;
  std::map<std::string, std::string> headers;
};

/// What `bus sub` (without --raw) and `bus stream view` print per message: a first line naming
/// the subject, then "Key: value" lines and a blank line when there are headers, the payload, a
/// blank line. (Payloads here never hold ": ".) `subject_of` reads the subject from a first line,
/// nullopt for any other line.
std::vector<Msg> parse_blocks(const std::string& out,
                              const std::function<std::optional<std::string>(const std::string&)>& subject_of) {
  std::vector<Msg> msgs;
  enum { start, head, body, end } state = start;
  Msg m;
  std::size_t pos = 0;
  for (;;) {
    const std::size_t nl = out.find('\n', pos);
    if (nl == std::string::npos) break;  // complete lines only
    const std::string line = out.substr(pos, nl - pos);
    pos = nl + 1;
    switch (state) {
      case start:
        if (auto subject = subject_of(line)) {
          m = Msg{};
          m.subject = std::move(*subject);
          state = head;
        }
        break;
      case head:
        if (line.empty()) {
          state = body;
        } else if (const auto colon = line.find(": "); colon != std::string::npos) {
          m.headers[line.substr(0, colon)] = line.substr(colon + 2);
        } else {
          m.payload = line;
          state = end;
        }
        break;
      case body:
        m.payload = line;
        state = end;
        break;
      case end:
        if (line.empty()) msgs.push_back(m);
        state = start;
        break;
    }
  }
  return msgs;
}

/// `bus sub`: the first line is "[#N] Received on "SUBJECT"".
std::vector<Msg> parse_bus_sub(const std::string& out) {
  return parse_blocks(out, [](const std::string& line) -> std::optional<std::string> {
    const auto q1 = line.find('"');
    const auto q2 = q1 == std::string::npos ? q1 : line.find('"', q1 + 1);
    if (line.rfind("[#", 0) != 0 || q2 == std::string::npos) return std::nullopt;
    return line.substr(q1 + 1, q2 - q1 - 1);
  });
}

/// `bus stream view`: the first line is "[SEQ] Subject: SUBJECT Received: TIME".
std::vector<Msg> parse_stream_view(const std::string& out) {
  return parse_blocks(out, [](const std::string& line) -> std::optional<std::string> {
    const auto at = line.find("] Subject: ");
    const auto received = at == std::string::npos ? at : line.find(" Received: ", at);
    if (line.rfind("[", 0) != 0 || received == std::string::npos) return std::nullopt;
    return line.substr(at + 11, received - at - 11);
  });
}

/// nats_peer sub: "SUBJECT PAYLOAD [K=V,...]".
std::vector<Msg> parse_nats_sub(const std::string& out) {
  std::vector<Msg> msgs;
  std::stringstream lines(out);
  std::string line;
  while (std::getline(lines, line)) {
    if (lines.eof()) break;  // an unterminated last line is not complete yet
    Msg m;
    // SUBJECT and PAYLOAD have no spaces here; header values may.
    const auto sp1 = line.find(' ');
    const auto sp2 = sp1 == std::string::npos ? sp1 : line.find(' ', sp1 + 1);
    m.subject = line.substr(0, sp1);
    m.payload = sp1 == std::string::npos ? std::string() : line.substr(sp1 + 1, sp2 == std::string::npos ? sp2 : sp2 - sp1 - 1);
    const std::string hdr = sp2 == std::string::npos ? std::string() : line.substr(sp2 + 1);
    if (hdr.size() >= 2 && hdr.front() == '[' && hdr.back() == ']') {
      std::stringstream items(hdr.substr(1, hdr.size() - 2));
      std::string kv;
      while (std::getline(items, kv, ',')) {
        const auto eq = kv.find('=');
        if (eq != std::string::npos) m.headers[kv.substr(0, eq)] = kv.substr(eq + 1);
      }
    }
    msgs.push_back(std::move(m));
  }
  return msgs;
}

/// A subscriber process: `bus sub` or `nats_peer sub`.
struct Receiver {
  std::string label;
  ChildProcess proc;
  bool nats = false;

  std::vector<Msg> msgs() {
    proc.pump();
    return nats ? parse_nats_sub(proc.out()) : parse_bus_sub(proc.out());
  }
  /// Payloads of the messages on `subject`, in arrival order.
  std::vector<std::string> payloads(const std::string& subject) {
    std::vector<std::string> out;
    for (const auto& m : msgs()) {
      if (m.subject == subject) out.push_back(m.payload);
    }
    return out;
  }
  std::vector<std::string> payloads_with_prefix(const std::string& prefix) {
    std::vector<std::string> out;
    for (const auto& m : msgs()) {
      if (m.payload.rfind(prefix, 0) == 0) out.push_back(m.payload);
    }
    return out;
  }
  std::size_t count(const std::string& subject) { return payloads(subject).size(); }
};

/// `bus --bus BUS sub PATTERN [extra]`, once it listens.
std::unique_ptr<Receiver> bus_sub(const std::string& bus, const std::string& pattern, std::vector<std::string> extra = {}) {
  std::vector<std::string> args{"--bus", bus, "sub", pattern};
  args.insert(args.end(), extra.begin(), extra.end());
  auto r = std::make_unique<Receiver>();
  r->label = "bus sub " + pattern + " on " + bus;
  r->proc = spawn_cli(args);
  EXPECT_TRUE(r->proc.wait_for_line(Stream::err, "Listening on", kWait)) << r->proc.describe();
  return r;
}

ChildProcess spawn_nats_peer(std::vector<std::string> args) {
  args.insert(args.begin(), nats_peer_path());
  return ChildProcess::spawn(std::move(args));
}

/// `nats_peer sub URL PATTERN --headers [extra]`, once it subscribed and flushed.
std::unique_ptr<Receiver> nats_sub(const std::string& url, const std::string& pattern, std::vector<std::string> extra = {}) {
  std::vector<std::string> args{"sub", url, pattern, "--headers", "--timeout-ms", "120000"};
  args.insert(args.end(), extra.begin(), extra.end());
  auto r = std::make_unique<Receiver>();
  r->label = "nats_peer sub " + pattern + " on " + url;
  r->nats = true;
  r->proc = spawn_nats_peer(args);
  EXPECT_TRUE(r->proc.wait_for_line(Stream::err, "ready", kWait)) << r->proc.describe();
  return r;
}

/// Runs a short-lived child to its end; its stdout.
::testing::AssertionResult run_ok(ChildProcess p, std::string* out = nullptr) {
  auto r = exits_ok(p, kWait);
  if (out != nullptr) *out = p.out();
  return r;
}

ChildProcess cli(const std::string& bus, std::vector<std::string> args) {
  args.insert(args.begin(), {"--bus", bus});
  return spawn_cli(std::move(args));
}

std::string describe(const std::vector<Receiver*>& rs) {
  std::string text;
  for (auto* r : rs) text += "\n== " + r->label + ": " + r->proc.describe();
  return text;
}

/// {prefix1..prefixN}.
std::vector<std::string> expected(const std::string& prefix, std::size_t n) { return numbered(prefix, n); }

/// A count of duplicates in `v`.
std::size_t duplicates(std::vector<std::string> v) {
  std::sort(v.begin(), v.end());
  return static_cast<std::size_t>(v.end() - std::unique(v.begin(), v.end()));
}

// ---------------------------------------------------------------------------------- fixture

class BridgeMp : public ::testing::Test {
 protected:
  void SetUp() override {
    nats_server_ = find_nats_server();
    if (nats_server_.empty()) GTEST_SKIP() << "no nats-server (/usr/bin, /usr/sbin or PATH): apt-get install nats-server";
    log_dir_ = std::make_unique<StoreDir>();
    bool formed = false;
    std::string why;
    for (int attempt = 0; attempt < 3 && !formed; ++attempt) formed = start_cluster(why);
    ASSERT_TRUE(formed) << why;

    a_ = unique_bus_name();
    b_ = unique_bus_name();
    bus_a_ = std::make_unique<BrokerProcess>(a_, broker_flags(0));
    bus_b_ = std::make_unique<BrokerProcess>(b_, broker_flags(1));
    ASSERT_TRUE(bus_a_->ready()) << bus_a_->process().describe();
    ASSERT_TRUE(bus_b_->ready()) << bus_b_->process().describe();
    start_bridges();
    if (HasFatalFailure()) return;
    ASSERT_TRUE(bridge_a_.started() && !bridge_a_.exited()) << bridge_a_.describe();
    ASSERT_TRUE(bridge_b_.started() && !bridge_b_.exited()) << bridge_b_.describe();
  }

  /// busd's extra flags for bus A (0) and B (1).
  virtual std::vector<std::string> broker_flags(int /*which*/) { return {}; }
  /// Bridges a1 (bus A, NATS node 1 first) and b1 (bus B, node 2 first), both on x.>.
  virtual void start_bridges() {
    bridge_a_ = start_bridge(a_, 0, "a1");
    bridge_b_ = start_bridge(b_, 1, "b1");
  }

  void TearDown() override {
    // Bridges first, by SIGTERM: each must stop cleanly (exit 0, its counters on stdout).
    for (ChildProcess* b : {&bridge_a_, &bridge_b_, &extra_bridge_}) {
      if (!b->started() || b->exited()) continue;
      b->kill(SIGTERM);
      const auto st = b->wait_exit(10s);
      EXPECT_TRUE(st && st->success()) << "bridge did not stop cleanly: " << b->describe();
    }
    for (auto& n : nodes_) {
      if (n.started() && !n.exited()) {
        n.kill(SIGTERM);
        if (!n.wait_exit(5s)) n.kill(SIGKILL);
      }
    }
    nodes_.clear();
    bus_a_.reset();
    bus_b_.reset();
  }

  /// Three nats-servers in one cluster, every route configured; true once a message published
  /// on each node reaches a subscriber on each other node.
  bool start_cluster(std::string& why) {
    for (auto& n : nodes_) n.kill(SIGKILL);
    nodes_.clear();
    client_ports_.clear();
    cluster_ports_.clear();
    std::set<int> taken;
    for (int i = 0; i < 3; ++i) {
      client_ports_.push_back(free_port(taken));
      cluster_ports_.push_back(free_port(taken));
      if (client_ports_.back() < 0 || cluster_ports_.back() < 0) {
        why = "no free port";
        return false;
      }
    }
    for (int i = 0; i < 3; ++i) {
      std::string routes;
      for (int j = 0; j < 3; ++j) {
        if (j == i) continue;
        routes += (routes.empty() ? "" : ",") + std::string("nats://127.0.0.1:") + std::to_string(cluster_ports_[j]);
      }
      std::vector<std::string> argv{nats_server_, "-a", "127.0.0.1", "-p", std::to_string(client_ports_[i]),
                                    "--cluster", "nats://127.0.0.1:" + std::to_string(cluster_ports_[i]),
                                    "--routes", routes, "--cluster_name", "bustest", "--server_name",
                                    "node" + std::to_string(i + 1), "-l", node_log(i)};
      if (jetstream_) {
        // Each node its own store, fresh for every attempt (a failed attempt's state stays behind).
        const std::string dir = log_dir_->path + "/js" + std::to_string(++js_dirs_) + "-node" + std::to_string(i + 1);
        argv.insert(argv.end(), {"-js", "-sd", dir});
      }
      nodes_.push_back(ChildProcess::spawn(std::move(argv)));
    }
    auto wait = spawn_nats_peer({"wait-cluster", url(0), url(1), url(2), "--timeout-ms", "10000"});
    if (exits_ok(wait, 15s)) {
      if (!jetstream_) return true;
      // Clustered JetStream answers once the nodes elected a meta leader (a few seconds).
      auto js = spawn_nats_peer({"js-ready", url(0), url(1), url(2), "--timeout-ms", "20000"});
      if (exits_ok(js, 25s)) return true;
      why = "JetStream did not come up: " + js.describe();
    } else {
      why = "the NATS cluster did not form: " + wait.describe();
    }
    for (int i = 0; i < 3; ++i) why += "\n--- node " + std::to_string(i + 1) + " log ---\n" + read_file(node_log(i));
    return false;
  }

  std::string node_log(int i) const { return log_dir_->path + "/node" + std::to_string(i + 1) + ".log"; }
  std::string url(int i) const { return "nats://127.0.0.1:" + std::to_string(client_ports_[static_cast<std::size_t>(i)]); }
  /// All three URLs, node `preferred` first.
  std::string urls_preferring(int preferred) const {
    std::string out = url(preferred);
    for (int i = 0; i < 3; ++i) {
      if (i != preferred) out += "," + url(i);
    }
    return out;
  }
  /// The node a nats-server calls `name` ("node<i>"), or -1.
  int node_named(const std::string& name) const {
    for (int i = 0; i < static_cast<int>(nodes_.size()); ++i) {
      if (name == "node" + std::to_string(i + 1)) return i;
    }
    return -1;
  }
  int node_of_url(const std::string& u) const {
    for (int i = 0; i < 3; ++i) {
      if (u == url(i)) return i;
    }
    return -1;
  }

  /// `bus --bus BUS bridge ... --export x.> --import x.>` once it logged that it bridges.
  ChildProcess start_bridge(const std::string& bus, int preferred, const std::string& name) {
    return start_bridge_with(bus, preferred, name, {"--export", "x.>", "--import", "x.>"});
  }
  /// `bus --bus BUS bridge --nats URLS --bridge-name NAME ... RULES` once it logged that it bridges.
  ChildProcess start_bridge_with(const std::string& bus, int preferred, const std::string& name,
                                 const std::vector<std::string>& rules) {
    std::vector<std::string> args{"bridge", "--nats", urls_preferring(preferred), "--bridge-name", name,
                                  "--reconnect-wait", "100ms"};
    args.insert(args.end(), rules.begin(), rules.end());
    auto p = cli(bus, args);
    EXPECT_TRUE(p.wait_for_line(Stream::err, "bridging bus", kWait)) << p.describe();
    return p;
  }

  /// The bridge's counters: `bus --bus BUS req '$BUS.BRIDGE.<name>.STATUSZ' ''`.
  nlohmann::json bridge_status(const std::string& bus, const std::string& name) {
    std::string out;
    EXPECT_TRUE(run_ok(cli(bus, {"req", "$BUS.BRIDGE." + name + ".STATUSZ", "", "--raw"}), &out));
    auto j = nlohmann::json::parse(out, nullptr, /*allow_exceptions=*/false);
    EXPECT_FALSE(j.is_discarded()) << "STATUSZ of " << name << ": " << out;
    return j;
  }
  /// A rule's counter ("export" or "import", the one on x.>).
  static std::uint64_t rule_counter(const nlohmann::json& status, const std::string& direction, const std::string& key) {
    if (!status.contains("rules")) return 0;
    for (const auto& r : status["rules"]) {
      if (r.value("direction", "") == direction) return r.value(key, std::uint64_t{0});
    }
    return 0;
  }

  /// Keeps every long-lived process's pipes drained (and `rs`'s), for `d`.
  void pump_for(std::chrono::milliseconds d, const std::vector<Receiver*>& rs = {}) {
    const auto until = Clock::now() + d;
    do {
      pump_all(rs);
      std::this_thread::sleep_for(10ms);
    } while (Clock::now() < until);
  }
  void pump_all(const std::vector<Receiver*>& rs) {
    for (auto* r : rs) r->proc.pump();
    for (ChildProcess* b : {&bridge_a_, &bridge_b_, &extra_bridge_}) b->pump();
    if (bus_a_) bus_a_->process().pump();
    if (bus_b_) bus_b_->process().pump();
  }
  /// Waits until `done()` holds (true) or `timeout` passed (false), pumping meanwhile.
  bool wait_until(const std::function<bool()>& done, const std::vector<Receiver*>& rs = {},
                  std::chrono::milliseconds timeout = kWait) {
    const auto deadline = Clock::now() + timeout;
    for (;;) {
      pump_all(rs);
      if (done()) return true;
      if (Clock::now() >= deadline) return false;
      std::this_thread::sleep_for(10ms);
    }
  }
  /// Calls `probe()` (which publishes something), then looks at `done()`, every 50 ms until it
  /// holds: interest has crossed. Fails after kWait.
  ::testing::AssertionResult probe_until(const std::function<void()>& probe, const std::function<bool()>& done,
                                         const std::vector<Receiver*>& rs, const std::string& what) {
    const auto deadline = Clock::now() + kWait;
    int probes = 0;
    for (;;) {
      if (wait_until(done, rs, 0ms)) return ::testing::AssertionSuccess();
      if (Clock::now() >= deadline) {
        return ::testing::AssertionFailure() << what << ": no probe crossed within 10 s (" << probes
                                             << " sent)" << describe(rs) << "\n== bridge a: " << bridge_a_.describe()
                                             << "\n== bridge b: " << bridge_b_.describe();
      }
      probe();
      ++probes;
      if (wait_until(done, rs, 50ms)) return ::testing::AssertionSuccess();
    }
  }
  /// Probes on bus `bus` (subject `subject`, payload "probe") until each receiver saw one there.
  ::testing::AssertionResult probe_from_bus(const std::string& bus, const std::string& subject,
                                            const std::vector<Receiver*>& rs) {
    return probe_until([&] { (void)run_ok(cli(bus, {"pub", subject, "probe"})); },
                       [&] { return std::all_of(rs.begin(), rs.end(), [&](Receiver* r) { return r->count(subject) > 0; }); },
                       rs, "probe " + subject + " from bus " + bus);
  }
  ::testing::AssertionResult probe_from_nats(int node, const std::string& subject, const std::vector<Receiver*>& rs) {
    return probe_until([&] { (void)run_ok(spawn_nats_peer({"pub", url(node), subject, "probe"})); },
                       [&] { return std::all_of(rs.begin(), rs.end(), [&](Receiver* r) { return r->count(subject) > 0; }); },
                       rs, "probe " + subject + " from NATS node " + std::to_string(node + 1));
  }

  bool jetstream_ = false;  // set by a fixture's constructor: the nodes run JetStream
  int js_dirs_ = 0;
  std::string nats_server_;
  std::unique_ptr<StoreDir> log_dir_;
  std::vector<int> client_ports_, cluster_ports_;
  std::string a_, b_;
  std::unique_ptr<BrokerProcess> bus_a_, bus_b_;
  std::vector<ChildProcess> nodes_;
  ChildProcess bridge_a_, bridge_b_, extra_bridge_;
};

// (a) bus A -> NATS -> bus B, with headers; A's own subscriber and a plain NATS subscriber too.
TEST_F(BridgeMp, bus_publisher_reaches_the_other_bus_and_nats_exactly_once_in_order_with_headers) {
  auto on_b = bus_sub(b_, "x.a.>");
  auto on_a = bus_sub(a_, "x.a.>");
  auto on_nats = nats_sub(url(2), "x.a.>");
  const std::vector<Receiver*> all{on_b.get(), on_a.get(), on_nats.get()};
  ASSERT_TRUE(probe_from_bus(a_, "x.a.probe", all));

  constexpr std::size_t kN = 200;
  ASSERT_TRUE(run_ok(cli(a_, {"pub", "x.a.data", "m{{Count}}", "--count", std::to_string(kN), "-H", "X-Seq:{{Count}}",
                              "-H", "X-Fixed:hello world"})));
  ASSERT_TRUE(wait_until([&] { return std::all_of(all.begin(), all.end(), [&](Receiver* r) { return r->count("x.a.data") >= kN; }); }, all))
      << describe(all);
  pump_for(300ms, all);  // anything arriving twice arrives now

  for (Receiver* r : all) {
    std::vector<Msg> got;
    for (auto& m : r->msgs()) {
      if (m.subject == "x.a.data") got.push_back(m);
    }
    std::vector<std::string> payloads;
    for (auto& m : got) payloads.push_back(m.payload);
    EXPECT_EQ(payloads, expected("m", kN)) << r->label;
    for (std::size_t i = 0; i < got.size(); ++i) {
      EXPECT_EQ(got[i].headers["X-Seq"], std::to_string(i + 1)) << r->label << " message " << i + 1;
      EXPECT_EQ(got[i].headers["X-Fixed"], "hello world") << r->label;
      // Bus-Origin is the bridges' business on NATS (sent or not); it never reaches a bus.
      if (!r->nats) {
        EXPECT_EQ(got[i].headers.count("Bus-Origin"), 0u) << r->label << ": the bridge's own header leaked into the bus";
      }
      if (testing::Test::HasFailure()) break;
    }
  }
}

// (b) plain NATS publisher -> both buses.
TEST_F(BridgeMp, nats_publisher_reaches_both_buses_exactly_once_in_order) {
  auto on_a = bus_sub(a_, "x.b.>");
  auto on_b = bus_sub(b_, "x.b.>");
  const std::vector<Receiver*> all{on_a.get(), on_b.get()};
  ASSERT_TRUE(probe_from_nats(2, "x.b.probe", all));

  constexpr std::size_t kN = 200;
  ASSERT_TRUE(run_ok(spawn_nats_peer({"pub", url(2), "x.b.data", "n{{Count}}", "--count", std::to_string(kN), "-H",
                                      "X-Seq:{{Count}}"})));
  ASSERT_TRUE(wait_until([&] { return on_a->count("x.b.data") >= kN && on_b->count("x.b.data") >= kN; }, all))
      << describe(all);
  pump_for(300ms, all);
  for (Receiver* r : all) {
    EXPECT_EQ(r->payloads("x.b.data"), expected("n", kN)) << r->label;
    std::size_t i = 0;
    for (auto& m : r->msgs()) {
      if (m.subject != "x.b.data") continue;
      EXPECT_EQ(m.headers["X-Seq"], std::to_string(++i)) << r->label;
      if (testing::Test::HasFailure()) break;
    }
  }
}

// (c) request/reply in every direction, and no responders from NATS.
TEST_F(BridgeMp, requests_cross_both_ways_and_nobody_anywhere_is_no_responders_at_once) {
  auto resp_b = cli(b_, {"reply", "x.svc.b", "b:{{Request}}"});
  ASSERT_TRUE(resp_b.wait_for_line(Stream::err, "Listening on", kWait)) << resp_b.describe();
  auto resp_a = cli(a_, {"reply", "x.svc.a", "a:{{Request}}"});
  ASSERT_TRUE(resp_a.wait_for_line(Stream::err, "Listening on", kWait)) << resp_a.describe();
  auto resp_n = spawn_nats_peer({"reply", url(2), "x.svc.n", "n:{{Request}}", "--timeout-ms", "120000"});
  ASSERT_TRUE(resp_n.wait_for_line(Stream::err, "ready", kWait)) << resp_n.describe();

  // Until interest crossed, a request finds no responders; then every request is answered.
  auto bus_request_until_answered = [&](const std::string& subject) {
    return probe_until([] {},
                       [&] {
                         auto p = cli(a_, {"req", subject, "ping", "--raw", "--timeout", "2s"});
                         return static_cast<bool>(exits_ok(p, kWait));
                       },
                       {}, "bus A request on " + subject);
  };
  ASSERT_TRUE(bus_request_until_answered("x.svc.b"));
  ASSERT_TRUE(bus_request_until_answered("x.svc.n"));

  // bus A -> bus B's `bus reply`; bus A -> nats_peer reply.
  for (const auto& [subject, prefix] : {std::pair<std::string, std::string>{"x.svc.b", "b:"}, {"x.svc.n", "n:"}}) {
    std::string out;
    ASSERT_TRUE(run_ok(cli(a_, {"req", subject, "q{{Count}}", "--count", "5", "--raw", "--timeout", "5s"}), &out));
    EXPECT_EQ(out, prefix + "q1\n" + prefix + "q2\n" + prefix + "q3\n" + prefix + "q4\n" + prefix + "q5\n") << subject;
  }

  // nats_peer requester -> bus A's `bus reply`.
  ASSERT_TRUE(probe_until([] {},
                          [&] {
                            auto p = spawn_nats_peer({"req", url(1), "x.svc.a", "ping", "--timeout-ms", "2000"});
                            return static_cast<bool>(exits_ok(p, kWait));
                          },
                          {}, "NATS request to bus A"));
  for (int i = 0; i < 3; ++i) {
    std::string out;
    ASSERT_TRUE(run_ok(spawn_nats_peer({"req", url(i), "x.svc.a", "hello" + std::to_string(i), "--timeout-ms", "5000"}), &out));
    EXPECT_EQ(out, "a:hello" + std::to_string(i) + "\n") << "requested through node " << i + 1;
  }

  // Nobody serves x.svc.none: NATS says so at once, the bridge brings it back, bus req fails
  // with "no responders" well before its timeout.
  const auto start = Clock::now();
  auto none = cli(a_, {"req", "x.svc.none", "hi", "--timeout", "5s"});
  ASSERT_TRUE(none.wait_exit(kWait)) << none.describe();
  const auto took = Clock::now() - start;
  EXPECT_FALSE(none.status()->success()) << none.describe();
  EXPECT_TRUE(holds(none.err(), "no responders")) << none.describe();
  EXPECT_LT(took, 2s) << "no responders took " << std::chrono::duration_cast<std::chrono::milliseconds>(took).count()
                      << " ms (timeout 5 s): " << none.describe();
  // And from plain NATS (nats.c's own no-responders status), for comparison.
  auto nats_none = spawn_nats_peer({"req", url(0), "x.svc.none", "hi", "--timeout-ms", "5000"});
  EXPECT_TRUE(exits_with(nats_none, 3, kWait));
  EXPECT_TRUE(holds(nats_none.err(), "no responders")) << nats_none.describe();
  // The bridge counted the replies it carried.
  EXPECT_GE(bridge_status(a_, "a1").value("replies", 0), 10) << bridge_a_.describe();
}

// (d) queue group `workers` on x.jobs: a member on each bus and one on plain NATS. Published on
// NATS, and published on bus A (where the bus must leave the pick to NATS: the bridge's proxy in
// the group, so bus A's own member does not get a copy besides NATS's pick).
class BridgeMpQueue : public BridgeMp {
 protected:
  void start_members() {
    members_.push_back(bus_sub(a_, "x.jobs", {"--queue", "workers"}));
    members_.push_back(bus_sub(b_, "x.jobs", {"--queue", "workers"}));
    members_.push_back(nats_sub(url(2), "x.jobs", {"--queue", "workers"}));
    for (auto& m : members_) rs_.push_back(m.get());
  }
  /// Until every member got at least one probe ("p<n>"), 10 probes at a time from `publish`.
  ::testing::AssertionResult all_members_reached(const std::function<void()>& publish_ten) {
    return probe_until(publish_ten,
                       [&] { return std::all_of(rs_.begin(), rs_.end(), [&](Receiver* r) { return !r->payloads_with_prefix("p").empty(); }); },
                       rs_, "queue members");
  }
  /// The three members together got `prefix`1..N exactly once each, and the work was shared.
  void expect_each_once(const std::string& prefix, std::size_t n) {
    auto total = [&] {
      std::size_t t = 0;
      for (auto* r : rs_) t += r->payloads_with_prefix(prefix).size();
      return t;
    };
    EXPECT_TRUE(wait_until([&] { return total() >= n; }, rs_)) << "got " << total() << " of " << n << describe(rs_);
    pump_for(500ms, rs_);
    std::vector<std::string> all;
    std::string shares;
    int working = 0;
    for (auto* r : rs_) {
      const auto mine = r->payloads_with_prefix(prefix);
      shares += " " + r->label + "=" + std::to_string(mine.size());
      working += mine.empty() ? 0 : 1;
      all.insert(all.end(), mine.begin(), mine.end());
    }
    std::printf("[ queue   ] %s1..%zu shares:%s\n", prefix.c_str(), n, shares.c_str());
    EXPECT_EQ(duplicates(all), 0u) << "delivered more than once; shares:" << shares;
    std::sort(all.begin(), all.end());
    all.erase(std::unique(all.begin(), all.end()), all.end());
    auto want = expected(prefix, n);
    std::sort(want.begin(), want.end());
    EXPECT_EQ(all, want) << "missing or unexpected; shares:" << shares;
    EXPECT_GE(working, 2) << "one member got all the work; shares:" << shares;
  }

  std::vector<std::unique_ptr<Receiver>> members_;
  std::vector<Receiver*> rs_;
};

TEST_F(BridgeMpQueue, nats_published_jobs_go_to_exactly_one_member_across_buses_and_nats) {
  start_members();
  ASSERT_TRUE(all_members_reached([&] { (void)run_ok(spawn_nats_peer({"pub", url(0), "x.jobs", "p{{Count}}", "--count", "10"})); }));
  ASSERT_TRUE(run_ok(spawn_nats_peer({"pub", url(0), "x.jobs", "j{{Count}}", "--count", "300"})));
  expect_each_once("j", 300);
}

TEST_F(BridgeMpQueue, bus_published_jobs_go_to_exactly_one_member_across_buses_and_nats) {
  start_members();
  ASSERT_TRUE(all_members_reached([&] { (void)run_ok(cli(a_, {"pub", "x.jobs", "p{{Count}}", "--count", "10"})); }));
  ASSERT_TRUE(run_ok(cli(a_, {"pub", "x.jobs", "k{{Count}}", "--count", "300"})));
  expect_each_once("k", 300);
}

// (e) bus A with two bridges, bus B with one. Differently named, they are two bridges with
// overlapping rules: nothing loops (each stops the other's exports by Bus-Origin), though each
// sends its own copy (docs/scale-out.md). Named alike, they are an active and a standby: each
// message crosses once, and the standby takes over when the active dies.
class BridgeMpTwoBridges : public BridgeMp {
 protected:
  static constexpr std::size_t kN = 100;
  void run(const std::string& second_name) {
    extra_bridge_ = start_bridge(a_, 2, second_name);
    ASSERT_FALSE(extra_bridge_.exited()) << extra_bridge_.describe();
    on_a_ = bus_sub(a_, "x.e.>");
    on_b_ = bus_sub(b_, "x.e.>");
    rs_ = {on_a_.get(), on_b_.get()};
    ASSERT_TRUE(probe_from_bus(a_, "x.e.probe", rs_));
    // The bridges' NATS interest is in place too: a probe from B reaches A.
    ASSERT_TRUE(probe_from_bus(b_, "x.e.probe_b", {on_a_.get()}));
    publish_and_wait("e");
  }
  void publish_and_wait(const std::string& tag) {
    ASSERT_TRUE(run_ok(cli(a_, {"pub", "x.e.data", tag + "{{Count}}", "--count", std::to_string(kN)})));
    ASSERT_TRUE(wait_until(
        [&] { return count_tagged(*on_a_, tag) >= kN && count_tagged(*on_b_, tag) >= kN; }, rs_))
        << describe(rs_);
    pump_for(500ms, rs_);
  }
  static std::size_t count_tagged(Receiver& r, const std::string& tag) { return tagged(r, tag).size(); }
  static std::vector<std::string> tagged(Receiver& r, const std::string& tag) {
    std::vector<std::string> out;
    for (auto& p : r.payloads("x.e.data")) {
      if (p.rfind(tag, 0) == 0) out.push_back(p);
    }
    return out;
  }
  std::unique_ptr<Receiver> on_a_, on_b_;
  std::vector<Receiver*> rs_;
};

TEST_F(BridgeMpTwoBridges, two_bridges_with_overlapping_rules_make_no_loop) {
  run("a2");
  if (HasFatalFailure()) return;
  EXPECT_EQ(on_a_->payloads("x.e.data"), expected("e", kN)) << "bus A's own subscriber";
  // Each of bus A's bridges sees the other's exports on NATS and stops them by Bus-Origin.
  const auto a1 = bridge_status(a_, "a1"), a2 = bridge_status(a_, "a2");
  EXPECT_GE(rule_counter(a1, "import", "loops_stopped") + rule_counter(a2, "import", "loops_stopped"), kN) << a1 << "\n" << a2;
  // B got every message (once from each bridge: their rules overlap).
  auto at_b = on_b_->payloads("x.e.data");
  std::set<std::string> distinct(at_b.begin(), at_b.end());
  auto want = expected("e", kN);
  EXPECT_EQ(distinct, std::set<std::string>(want.begin(), want.end()));
}

TEST_F(BridgeMpTwoBridges, a_standby_of_the_same_name_keeps_it_exactly_once_and_takes_over) {
  run("a1");
  if (HasFatalFailure()) return;
  EXPECT_EQ(on_a_->payloads("x.e.data"), expected("e", kN)) << "bus A's own subscriber";
  EXPECT_EQ(tagged(*on_b_, "e"), expected("e", kN)) << "bus B, with an active and a standby bridge on A";
  // kill -9 the active one: the broker reaps it, the standby takes over.
  ASSERT_TRUE(bridge_a_.kill(SIGKILL));
  ASSERT_TRUE(bridge_a_.wait_exit(5s));
  ASSERT_TRUE(extra_bridge_.wait_for_line(Stream::err, "active", kWait)) << extra_bridge_.describe();
  ASSERT_TRUE(probe_from_bus(a_, "x.e.probe_c", {on_b_.get()}));
  publish_and_wait("f");
  if (HasFatalFailure()) return;
  EXPECT_EQ(tagged(*on_b_, "f"), expected("f", kN)) << "bus B, through the standby that took over";
  EXPECT_EQ(tagged(*on_a_, "f"), expected("f", kN)) << "bus A's own subscriber";
}

// (f) kill -9 of the NATS node bus A's bridge is connected to, during a steady publish.
TEST_F(BridgeMp, bridge_fails_over_to_another_nats_node_with_bounded_loss_and_no_duplicates) {
  // The node to kill is the one a1 is connected to now (nats.c may not take the first URL).
  auto status_a = bridge_status(a_, "a1");
  const int node_a = node_of_url(status_a.value("nats_url", ""));
  ASSERT_GE(node_a, 0) << status_a;
  // B's bridge elsewhere, so that what this test measures is a1's failover only.
  for (int attempt = 0; attempt < 8; ++attempt) {
    const int node_b = node_of_url(bridge_status(b_, "b1").value("nats_url", ""));
    if (node_b >= 0 && node_b != node_a) break;
    bridge_b_.kill(SIGTERM);
    ASSERT_TRUE(bridge_b_.wait_exit(10s));
    bridge_b_ = start_bridge(b_, (node_a + 1) % 3, "b1");
  }
  const int node_b = node_of_url(bridge_status(b_, "b1").value("nats_url", ""));
  ASSERT_NE(node_b, node_a) << "bus B's bridge kept landing on node " << node_a + 1;

  auto on_b = bus_sub(b_, "x.f.>", {"--raw"});  // payloads only: numbers, and "probe"
  const std::vector<Receiver*> rs{on_b.get()};
  auto probe_seen = [&] { return holds(on_b->proc.out(), "probe\n"); };
  ASSERT_TRUE(probe_until([&] { (void)run_ok(cli(a_, {"pub", "x.f.probe", "probe"})); }, probe_seen, rs, "probe x.f"));

  auto numbers = [&] {
    std::vector<long> out;
    for (const auto& line : on_b->proc.lines(Stream::out)) {
      if (!line.empty() && line != "probe") out.push_back(std::strtol(line.c_str(), nullptr, 10));
    }
    return out;
  };
  constexpr long kN = 3000;
  auto pub = cli(a_, {"pub", "x.f.data", "{{Count}}", "--count", std::to_string(kN), "--sleep", "1ms"});
  const auto pub_start = Clock::now();
  ASSERT_TRUE(wait_until([&] { return numbers().size() >= 500; }, rs)) << on_b->proc.describe();
  const std::size_t before_kill = numbers().size();
  ASSERT_TRUE(nodes_[static_cast<std::size_t>(node_a)].kill(SIGKILL));
  ASSERT_TRUE(nodes_[static_cast<std::size_t>(node_a)].wait_exit(5s));
  const auto killed_at = Clock::now();
  ASSERT_TRUE(bridge_a_.wait_for_line(Stream::err, "NATS reconnected", kWait)) << bridge_a_.describe();
  const auto reconnected_at = Clock::now();
  ASSERT_TRUE(exits_ok(pub, 30s));
  const auto pub_took = Clock::now() - pub_start;
  EXPECT_TRUE(wait_until([&] { auto n = numbers(); return !n.empty() && n.back() == kN; }, rs))
      << "the last message never came: " << on_b->proc.describe();
  pump_for(300ms, rs);

  const auto got = numbers();
  std::size_t gaps = 0, out_of_order = 0;
  long lost = 0, first_lost = 0, last_lost = 0;
  for (std::size_t i = 0; i < got.size(); ++i) {
    const long prev = i == 0 ? 0 : got[i - 1];
    if (got[i] <= prev) {
      ++out_of_order;
    } else if (got[i] != prev + 1) {
      ++gaps;
      if (first_lost == 0) first_lost = prev + 1;
      last_lost = got[i] - 1;
      lost += got[i] - prev - 1;
    }
  }
  if (!got.empty() && got.back() < kN) lost += kN - got.back();
  const auto status = bridge_status(a_, "a1");
  const auto ms = [](auto d) { return static_cast<long>(std::chrono::duration_cast<std::chrono::milliseconds>(d).count()); };
  std::printf("[ failover] node %d killed after %zu received; reconnected in %ld ms to %s; publish took %ld ms; "
              "received %zu of %ld, lost %ld (%ld..%ld) in %zu gap(s), out of order %zu; a1: reconnects %llu, "
              "export msgs %llu dropped %llu\n",
              node_a + 1, before_kill, ms(reconnected_at - killed_at), status.value("nats_url", "?").c_str(),
              ms(pub_took), got.size(), kN, lost, first_lost, last_lost, gaps, out_of_order,
              static_cast<unsigned long long>(status.value("reconnects", 0)),
              static_cast<unsigned long long>(rule_counter(status, "export", "msgs")),
              static_cast<unsigned long long>(rule_counter(status, "export", "dropped")));
  RecordProperty("failover_lost", static_cast<int>(lost));
  RecordProperty("failover_reconnect_ms", static_cast<int>(ms(reconnected_at - killed_at)));

  EXPECT_EQ(out_of_order, 0u) << "duplicates or reordering";
  EXPECT_LE(gaps, 1u) << "loss only around the kill: once reconnected, everything arrives";
  EXPECT_GE(got.size(), static_cast<std::size_t>(kN / 2));
  EXPECT_GT(got.size(), before_kill) << "nothing after the kill";
  ASSERT_FALSE(got.empty());
  EXPECT_EQ(got.back(), kN);
  EXPECT_GE(status.value("disconnects", 0), 1) << status;
  EXPECT_GE(status.value("reconnects", 0), 1) << status;
  EXPECT_TRUE(status.value("nats_connected", false)) << status;
  EXPECT_NE(node_of_url(status.value("nats_url", "")), node_a) << status;
  EXPECT_GE(rule_counter(status, "export", "msgs") + rule_counter(status, "export", "dropped"),
            static_cast<std::uint64_t>(kN))
      << status;
}

// (g) kill -9 of bus A's bridge: bus A goes on locally; a new bridge carries messages again.
TEST_F(BridgeMp, a_killed_bridge_leaves_the_bus_working_and_a_restarted_one_carries_again) {
  auto on_a = bus_sub(a_, "x.g.>");
  auto on_b = bus_sub(b_, "x.g.>");
  const std::vector<Receiver*> rs{on_a.get(), on_b.get()};
  ASSERT_TRUE(probe_from_bus(a_, "x.g.probe", rs));

  ASSERT_TRUE(bridge_a_.kill(SIGKILL));
  ASSERT_TRUE(bridge_a_.wait_exit(5s));
  constexpr std::size_t kN = 200;
  ASSERT_TRUE(run_ok(cli(a_, {"pub", "x.g.data", "g{{Count}}", "--count", std::to_string(kN)})));
  EXPECT_TRUE(wait_until([&] { return on_a->count("x.g.data") >= kN; }, rs)) << on_a->proc.describe();

  bridge_a_ = start_bridge(a_, 0, "a1");
  ASSERT_TRUE(probe_from_bus(a_, "x.g.probe2", {on_b.get()}));
  ASSERT_TRUE(run_ok(cli(a_, {"pub", "x.g.data", "h{{Count}}", "--count", std::to_string(kN)})));
  EXPECT_TRUE(wait_until([&] { return on_a->count("x.g.data") >= 2 * kN && on_b->count("x.g.data") >= kN; }, rs))
      << describe(rs);
  pump_for(300ms, rs);

  auto want_a = expected("g", kN);
  const auto h = expected("h", kN);
  want_a.insert(want_a.end(), h.begin(), h.end());
  EXPECT_EQ(on_a->payloads("x.g.data"), want_a) << "bus A's subscriber, bridge or no bridge";
  EXPECT_EQ(on_b->payloads("x.g.data"), h) << "bus B: nothing while no bridge ran, everything after";
}

// A bridge stopped at any moment (while it connects, subscribes or carries) exits 0 within its
// bound: nats.c's threads call back into it after a close (the closed callback, a subscription's
// completion), so stop() waits for them before its state goes (under ASan in CI, a use after
// free aborts the process here).
TEST_F(BridgeMp, a_bridge_stopped_at_any_moment_stops_cleanly) {
  auto on_b = bus_sub(b_, "x.s.>");
  std::mt19937 rng(static_cast<unsigned>(::getpid()));
  std::set<int> taken(client_ports_.begin(), client_ports_.end());
  taken.insert(cluster_ports_.begin(), cluster_ports_.end());
  const std::string nobody = "nats://127.0.0.1:" + std::to_string(free_port(taken));
  for (int round = 0; round < 12; ++round) {
    // Every third round has no NATS to reach: the stop meets connections still retrying.
    const std::string urls = round % 3 == 2 ? nobody : urls_preferring(round % 3);
    auto p = cli(a_, {"bridge", "--nats", urls, "--bridge-name", "s" + std::to_string(round), "--export", "x.s.>",
                      "--import", "x.s.>", "--reconnect-wait", "100ms"});
    // From the moment it has started (its signal handlers are in place), then 0-400 ms on.
    ASSERT_TRUE(p.wait_for_line(Stream::err, "bridging bus", kWait)) << p.describe();
    const auto delay = std::chrono::milliseconds(rng() % 400);
    const auto until = Clock::now() + delay;
    while (Clock::now() < until) {
      pump_all({on_b.get()});
      p.pump();
      std::this_thread::sleep_for(5ms);
    }
    if (round % 4 == 3) {
      // Some rounds carry first, so the stop meets subscriptions with traffic.
      (void)run_ok(cli(a_, {"pub", "x.s.data", "s{{Count}}", "--count", "50"}));
    }
    const auto t0 = Clock::now();
    ASSERT_TRUE(p.kill(SIGTERM));
    const auto st = p.wait_exit(10s);
    ASSERT_TRUE(st && st->success()) << "round " << round << " (stopped after " << delay.count()
                                     << " ms): " << p.describe();
    EXPECT_LT(Clock::now() - t0, 8s) << "round " << round << ": stop took too long: " << p.describe();
  }
}

// (h) kill -9 of bus B's busd, and a new busd for the bus: the bridge, a bus client, comes back.
TEST_F(BridgeMp, the_bridge_survives_its_broker_being_killed_and_replaced) {
  auto on_a = bus_sub(a_, "x.h.>");
  auto on_b = bus_sub(b_, "x.h.>");
  ASSERT_TRUE(probe_from_bus(a_, "x.h.probe", {on_b.get()}));

  ASSERT_TRUE(bus_b_->crash());
  auto old_b = std::move(bus_b_);
  bus_b_ = std::make_unique<BrokerProcess>(b_);
  ASSERT_TRUE(bus_b_->ready()) << bus_b_->process().describe();
  // The bridge reconnects as any client does (and logs it).
  EXPECT_TRUE(bridge_b_.wait_for_line(Stream::err, "broker is back", kWait)) << bridge_b_.describe();
  EXPECT_FALSE(bridge_b_.exited()) << bridge_b_.describe();

  // A subscriber on the new broker (the old `bus sub` may have ended with its broker).
  auto on_b2 = bus_sub(b_, "x.h.>");
  const std::vector<Receiver*> rs{on_a.get(), on_b2.get()};
  ASSERT_TRUE(probe_from_bus(a_, "x.h.probe2", {on_b2.get()}));
  constexpr std::size_t kN = 100;
  ASSERT_TRUE(run_ok(cli(a_, {"pub", "x.h.data", "a{{Count}}", "--count", std::to_string(kN)})));
  EXPECT_TRUE(wait_until([&] { return on_b2->count("x.h.data") >= kN; }, rs)) << on_b2->proc.describe();

  // And the other way: bus B's exports cross again.
  ASSERT_TRUE(probe_from_bus(b_, "x.h.probe3", {on_a.get()}));
  ASSERT_TRUE(run_ok(cli(b_, {"pub", "x.h.back", "b{{Count}}", "--count", std::to_string(kN)})));
  EXPECT_TRUE(wait_until([&] { return on_a->count("x.h.back") >= kN; }, rs)) << on_a->proc.describe();
  pump_for(300ms, rs);
  EXPECT_EQ(on_b2->payloads("x.h.data"), expected("a", kN));
  EXPECT_EQ(on_a->payloads("x.h.back"), expected("b", kN));
  old_b.reset();
}

// ------------------------------------------------------------------ streams across hosts (i)-(k)
//
// The cluster runs JetStream (each node its own store), both busd keep streams (--store-dir), and
// each bus has a stream ORDERS on orders.>. Bridge a1 copies bus A's ORDERS into JetStream's
// ORDERS (--export-stream: made by a1, file storage, R1), bridge b1 copies JetStream's ORDERS into
// bus B's ORDERS (--import-stream). No core rules: a stream link needs none.
//
// The publisher paces its 2000 acknowledged messages 1 ms apart, so a copy is under way for two
// seconds or more and a kill -9 at "some but not all crossed" is not a race against the copy.
// "Settled" means: both streams hold at least 2000 and neither link's consumer has anything left
// to deliver or to be acknowledged (bus A's `bridge-a1-ORDERS`, JetStream's `bus-bridge-b1`), so
// every redelivery a kill caused (after the bus consumer's 5 s, JetStream's 10 s ack wait) is
// done; then the counts must be exactly 2000 and every payload there once. So that a kill finds
// messages in flight (not only between two batches), something is frozen (SIGSTOP) first: the
// JetStream node that would acknowledge them in (i), the importing bridge itself in (j).

/// What `nats_peer js-info` printed.
struct JsStream {
  bool ok = false;  // the stream is there and answered
  std::uint64_t messages = 0, first_seq = 0, last_seq = 0;
  std::string leader;                 // the server holding it ("node<i>")
  std::vector<std::string> payloads;  // with --payloads
  std::string text;                   // for failure messages
};

/// "N messages for M wanted; missing K (...); duplicated K (...); unexpected K (...)" (the first
/// few of each), or "" when `got` holds each of `want` exactly once and nothing else.
std::string once_each(const std::vector<std::string>& got, const std::vector<std::string>& want) {
  std::map<std::string, int> seen;
  for (const auto& p : got) ++seen[p];
  const std::set<std::string> wanted(want.begin(), want.end());
  std::vector<std::string> missing, duplicated, unexpected;
  for (const auto& w : want) {
    if (seen.count(w) == 0) missing.push_back(w);
  }
  for (const auto& [p, n] : seen) {
    if (n > 1) duplicated.push_back(p + " x" + std::to_string(n));
    if (wanted.count(p) == 0) unexpected.push_back(p);
  }
  if (missing.empty() && duplicated.empty() && unexpected.empty() && got.size() == want.size()) return {};
  auto some = [](const std::vector<std::string>& v) {
    std::string t = std::to_string(v.size());
    for (std::size_t i = 0; i < v.size() && i < 10; ++i) t += (i ? ", " : " (") + v[i];
    return v.empty() ? t : t + (v.size() > 10 ? ", ...)" : ")");
  };
  return std::to_string(got.size()) + " messages for " + std::to_string(want.size()) + " wanted; missing " +
         some(missing) + "; duplicated " + some(duplicated) + "; unexpected " + some(unexpected);
}

class BridgeMpStreams : public BridgeMp {
 protected:
  static constexpr std::size_t kN = 2000;
  static constexpr std::uint64_t kKillAt = 300;  // crossed before the kill: some, far from all

  BridgeMpStreams() { jetstream_ = true; }

  std::vector<std::string> broker_flags(int which) override {
    auto& dir = which == 0 ? store_a_ : store_b_;
    dir = std::make_unique<StoreDir>();
    return {"--store-dir", dir->path};
  }
  void start_bridges() override {
    for (const std::string* bus : {&a_, &b_}) {
      ASSERT_TRUE(run_ok(cli(*bus, {"stream", "add", "ORDERS", "--subjects", "orders.>"})));
    }
    bridge_a_ = start_a();  // makes JetStream's ORDERS before it says it bridges
    ASSERT_FALSE(bridge_a_.exited()) << bridge_a_.describe();
    const auto js = js_stream("ORDERS");
    ASSERT_TRUE(js.ok) << "a1 did not make JetStream's ORDERS: " << js.text << "\n" << bridge_a_.describe();
    bridge_b_ = start_b();
  }
  virtual std::vector<std::string> links_a() { return {"--export-stream", "ORDERS"}; }
  virtual std::vector<std::string> links_b() { return {"--import-stream", "ORDERS"}; }
  ChildProcess start_a() { return start_bridge_with(a_, 0, "a1", links_a()); }
  ChildProcess start_b() { return start_bridge_with(b_, 1, "b1", links_b()); }

  /// `nats_peer js-info URL STREAM [--payloads]`.
  JsStream js_stream(const std::string& name, bool payloads = false) {
    std::vector<std::string> args{"js-info", url(2), name};
    if (payloads) args.push_back("--payloads");
    auto p = spawn_nats_peer(args);
    JsStream st;
    const auto status = p.wait_exit(kWait);
    const auto lines = p.lines(Stream::out);
    unsigned long long m = 0, f = 0, l = 0;
    long long c = 0;
    char leader[128] = {0};
    if (!status || !status->success() || lines.empty() ||
        std::sscanf(lines[0].c_str(), "messages %llu first_seq %llu last_seq %llu consumers %lld leader %127s", &m, &f,
                    &l, &c, leader) != 5) {
      st.text = p.describe();
      return st;
    }
    st.ok = true;
    st.messages = m;
    st.first_seq = f;
    st.last_seq = l;
    st.leader = leader;
    st.payloads.assign(lines.begin() + 1, lines.end());
    st.text = lines[0];
    return st;
  }
  /// `nats_peer js-consumer URL STREAM NAME` as key -> value; empty when it failed.
  std::map<std::string, long long> js_consumer(const std::string& stream, const std::string& name) {
    auto p = spawn_nats_peer({"js-consumer", url(2), stream, name});
    std::map<std::string, long long> out;
    const auto status = p.wait_exit(kWait);
    if (!status || !status->success()) return out;
    std::stringstream words(p.out());
    std::string key;
    long long value = 0;
    while (words >> key >> value) out[key] = value;
    return out;
  }
  /// `bus stream info NAME --json` on `bus`: its state.messages (nullopt when it failed).
  std::optional<std::uint64_t> bus_stream_messages(const std::string& bus, const std::string& name = "ORDERS") {
    auto p = cli(bus, {"stream", "info", name, "--json"});
    const auto status = p.wait_exit(kWait);
    if (!status || !status->success()) return std::nullopt;
    const auto j = nlohmann::json::parse(p.out(), nullptr, false);
    if (j.is_discarded() || !j.contains("state")) return std::nullopt;
    return j["state"].value("messages", std::uint64_t{0});
  }
  /// `bus consumer info STREAM NAME --json` on `bus` (discarded when it failed).
  nlohmann::json bus_consumer(const std::string& bus, const std::string& stream, const std::string& name) {
    auto p = cli(bus, {"consumer", "info", stream, name, "--json"});
    const auto status = p.wait_exit(kWait);
    if (!status || !status->success()) return nlohmann::json::value_t::discarded;
    return nlohmann::json::parse(p.out(), nullptr, false);
  }
  /// Everything `bus stream view NAME` prints for `bus`.
  std::vector<Msg> bus_stream_view(const std::string& bus, const std::string& name = "ORDERS") {
    std::string out;
    EXPECT_TRUE(run_ok(cli(bus, {"stream", "view", name}), &out));
    return parse_stream_view(out);
  }
  static std::vector<std::string> payloads_of(const std::vector<Msg>& msgs, const std::string& prefix) {
    std::vector<std::string> out;
    for (const auto& m : msgs) {
      if (m.payload.rfind(prefix, 0) == 0) out.push_back(m.payload);
    }
    return out;
  }
  /// The STATUSZ entry of a bridge's stream link in `direction` ("export" or "import").
  static nlohmann::json link_of(const nlohmann::json& status, const std::string& direction) {
    if (status.is_object() && status.contains("streams")) {
      for (const auto& l : status["streams"]) {
        if (l.value("direction", "") == direction) return l;
      }
    }
    return nlohmann::json::object();
  }
  static std::uint64_t counter(const nlohmann::json& link, const char* key) { return link.value(key, std::uint64_t{0}); }

  /// The 2000 acknowledged publishes on bus A, 1 ms apart.
  ChildProcess publish_orders() {
    return cli(a_, {"pub", "--ack", "orders.new", "o{{Count}}", "--count", std::to_string(kN), "--sleep", "1ms"});
  }
  /// Waits (pumping) until `crossed()` reached kKillAt while `pub` still runs; false otherwise.
  ::testing::AssertionResult wait_mid_copy(ChildProcess& pub, const std::function<std::uint64_t()>& crossed,
                                           std::uint64_t& seen) {
    const bool reached = wait_until(
        [&] {
          pub.pump();
          seen = crossed();
          return seen >= kKillAt || pub.exited();
        },
        {}, 20s);
    if (!reached) return ::testing::AssertionFailure() << "nothing crossed: " << seen << "\n" << bridge_a_.describe() << "\n" << bridge_b_.describe();
    if (pub.exited() && seen < kKillAt) return ::testing::AssertionFailure() << "the publisher ended first: " << pub.describe();
    return ::testing::AssertionSuccess();
  }
  /// Both streams hold kN or more and neither link has anything left to (re)deliver or to have
  /// acknowledged; `state` says where things stand.
  bool settled(std::string& state) {
    const auto js = js_stream("ORDERS");
    const auto on_b = bus_stream_messages(b_);
    const auto exporter = bus_consumer(a_, "ORDERS", "bridge-a1-ORDERS");
    const auto importer = js_consumer("ORDERS", "bus-bridge-b1");
    const long long ex_pending = exporter.is_object() ? exporter.value("num_pending", -1LL) : -1;
    const long long ex_unacked = exporter.is_object() ? exporter.value("num_ack_pending", -1LL) : -1;
    const long long im_pending = importer.count("num_pending") ? importer.at("num_pending") : -1;
    const long long im_unacked = importer.count("num_ack_pending") ? importer.at("num_ack_pending") : -1;
    state = "JetStream ORDERS " + (js.ok ? std::to_string(js.messages) : "? (" + js.text + ")") + ", bus B ORDERS " +
            (on_b ? std::to_string(*on_b) : std::string("?")) + ", a1's bus consumer pending " +
            std::to_string(ex_pending) + " unacknowledged " + std::to_string(ex_unacked) +
            ", b1's JetStream consumer pending " + std::to_string(im_pending) + " unacknowledged " +
            std::to_string(im_unacked);
    return js.ok && js.messages >= kN && on_b && *on_b >= kN && ex_pending == 0 && ex_unacked == 0 &&
           im_pending == 0 && im_unacked == 0;
  }
  /// Settled, then: exactly kN in each stream, each payload once.
  void expect_all_crossed_once(Clock::time_point since, const std::string& label) {
    std::string state;
    EXPECT_TRUE(wait_until([&] { return settled(state); }, {}, 25s))
        << "not settled in 25 s: " << state << "\n== bridge a: " << bridge_a_.describe()
        << "\n== bridge b: " << bridge_b_.describe();
    const auto settled_ms = std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - since).count();
    pump_for(500ms);  // anything arriving twice arrives now
    const auto want = expected("o", kN);
    const auto js = js_stream("ORDERS", true);
    ASSERT_TRUE(js.ok) << js.text;
    EXPECT_EQ(js.messages, kN) << "JetStream's ORDERS: " << js.text;
    EXPECT_EQ(once_each(js.payloads, want), "") << "JetStream's ORDERS";
    EXPECT_EQ(bus_stream_messages(b_).value_or(0), kN) << "bus B's ORDERS";
    const auto on_b = bus_stream_view(b_);
    EXPECT_EQ(once_each(payloads_of(on_b, "o"), want), "") << "bus B's ORDERS";
    EXPECT_EQ(on_b.size(), kN) << "bus B's ORDERS holds other messages too";
    EXPECT_EQ(bus_stream_messages(a_).value_or(0), kN) << "bus A's ORDERS";
    const auto a1 = link_of(bridge_status(a_, "a1"), "export");
    const auto b1 = link_of(bridge_status(b_, "b1"), "import");
    std::printf("[ streams ] %s; settled %lld ms after the restart; now a1 copied %llu duplicates %llu retried %llu, "
                "b1 copied %llu duplicates %llu retried %llu; %s\n",
                label.c_str(), static_cast<long long>(settled_ms), static_cast<unsigned long long>(counter(a1, "copied")),
                static_cast<unsigned long long>(counter(a1, "duplicates")),
                static_cast<unsigned long long>(counter(a1, "retried")),
                static_cast<unsigned long long>(counter(b1, "copied")),
                static_cast<unsigned long long>(counter(b1, "duplicates")),
                static_cast<unsigned long long>(counter(b1, "retried")), state.c_str());
    EXPECT_EQ(a1.value("last_error", ""), "") << a1;
    EXPECT_EQ(b1.value("last_error", ""), "") << b1;
  }

  std::unique_ptr<StoreDir> store_a_, store_b_;
};

// (i) kill -9 of the exporting bridge mid-copy, and a restart with the same flags. The kill comes
// while a1 has messages out that JetStream has not acknowledged: the node holding ORDERS (R1) is
// stopped (SIGSTOP) until a1's link reports some pending, a1 is killed, the node continued. What
// reached JetStream then is stored, but a1 never acknowledged it on the bus: the restarted a1
// gets it again (the bus consumer's 5 s ack wait) and JetStream's de-duplication (Nats-Msg-Id)
// keeps it once; what did not reach it is copied then.
TEST_F(BridgeMpStreams, export_survives_kill9_of_the_exporter_none_lost_none_duplicated) {
  auto pub = publish_orders();
  std::uint64_t crossed = 0;
  ASSERT_TRUE(wait_mid_copy(pub, [&] { return js_stream("ORDERS").messages; }, crossed));
  const auto before = js_stream("ORDERS");
  const int holder = node_named(before.leader);
  ASSERT_GE(holder, 0) << "which node holds ORDERS? " << before.text;
  ChildProcess& node = nodes_[static_cast<std::size_t>(holder)];
  ASSERT_TRUE(node.kill(SIGSTOP));
  const bool stopped = node.wait_stopped(5s);
  nlohmann::json link;
  const bool in_flight = stopped && wait_until([&] {
    link = link_of(bridge_status(a_, "a1"), "export");
    return counter(link, "pending") > 0;
  }, {}, 5s);
  const bool killed = bridge_a_.kill(SIGKILL) && bridge_a_.wait_exit(5s).has_value();
  (void)node.kill(SIGCONT);  // before any ASSERT can end the test
  ASSERT_TRUE(stopped) << node.describe();
  ASSERT_TRUE(killed) << bridge_a_.describe();
  EXPECT_TRUE(in_flight) << "a1 had nothing out when killed: " << link;
  const auto at_kill = js_stream("ORDERS");
  EXPECT_LT(at_kill.messages, kN) << "the kill came after the copy: " << at_kill.text;
  const auto restarted = Clock::now();
  bridge_a_ = start_a();
  ASSERT_FALSE(bridge_a_.exited()) << bridge_a_.describe();
  EXPECT_TRUE(exits_ok(pub, 30s));
  expect_all_crossed_once(restarted, "a1 killed with " + std::to_string(counter(link, "pending")) +
                                         " unacknowledged by JetStream (node " + std::to_string(holder + 1) +
                                         " stopped), JetStream at " + std::to_string(at_kill.messages));
  // The kill left work for the restarted a1's de-duplication: what JetStream had stored unseen.
  const auto a1 = link_of(bridge_status(a_, "a1"), "export");
  RecordProperty("export_duplicates_after_restart", static_cast<int>(counter(a1, "duplicates")));
  if (at_kill.messages > before.messages) {
    EXPECT_GE(counter(a1, "duplicates"), 1u) << "JetStream stored " << at_kill.messages - before.messages
                                             << " after the stop, yet nothing came again: " << a1;
  }
}

// (j) kill -9 of the importing bridge mid-copy, and a restart. The kill comes while b1 holds
// messages JetStream delivered and it did not acknowledge: b1 is frozen (SIGSTOP) while
// JetStream's consumer shows some, then killed. Those come again after JetStream's ack wait
// (10 s) and are stored then; whatever b1 had stored already is kept once (its Nats-Msg-Id).
TEST_F(BridgeMpStreams, import_survives_kill9_of_the_importer_none_lost_none_duplicated) {
  auto pub = publish_orders();
  std::uint64_t crossed = 0;
  ASSERT_TRUE(wait_mid_copy(pub, [&] { return bus_stream_messages(b_).value_or(0); }, crossed));
  // a1 sends JetStream a batch of up to 256 every quarter second or so (its bus fetch); frozen,
  // b1 still has its pull request out, so JetStream delivers it the next batch, which stays
  // unacknowledged. (Should it have had none out, it goes on for a moment and is frozen again.)
  std::map<std::string, long long> consumer;
  auto unacknowledged = [&] {
    consumer = js_consumer("ORDERS", "bus-bridge-b1");
    return consumer.count("num_ack_pending") != 0 && consumer["num_ack_pending"] > 0;
  };
  bool stopped = false, holding = false;
  for (int attempt = 0; attempt < 3 && !holding; ++attempt) {
    if (attempt > 0) {
      const auto before = bus_stream_messages(b_).value_or(0);
      (void)bridge_b_.kill(SIGCONT);
      (void)wait_until([&] { return bus_stream_messages(b_).value_or(0) > before; }, {}, 2s);
    }
    stopped = bridge_b_.kill(SIGSTOP) && bridge_b_.wait_stopped(5s);
    if (!stopped) break;
    holding = wait_until(unacknowledged, {}, 1s);
  }
  const bool killed = bridge_b_.kill(SIGKILL) && bridge_b_.wait_exit(5s).has_value();
  ASSERT_TRUE(stopped) << bridge_b_.describe();
  ASSERT_TRUE(killed) << bridge_b_.describe();
  EXPECT_TRUE(holding) << "b1 never held unacknowledged deliveries";
  const auto at_kill = bus_stream_messages(b_).value_or(0);
  EXPECT_LT(at_kill, kN) << "the kill came after the copy";
  const auto restarted = Clock::now();
  bridge_b_ = start_b();
  ASSERT_FALSE(bridge_b_.exited()) << bridge_b_.describe();
  EXPECT_TRUE(exits_ok(pub, 30s));
  expect_all_crossed_once(restarted, "b1 killed holding " + std::to_string(consumer["num_ack_pending"]) +
                                         " unacknowledged deliveries, bus B at " + std::to_string(at_kill));
  // Every delivery takes a consumer sequence, a redelivery too: beyond the stream's, they were.
  auto after = js_consumer("ORDERS", "bus-bridge-b1");
  const long long redelivered = after["delivered_consumer_seq"] - after["delivered_stream_seq"];
  RecordProperty("import_redeliveries", static_cast<int>(redelivered));
  EXPECT_GE(redelivered, 1) << "JetStream redelivered nothing: the kill left b1 nothing unacknowledged";

  // What a kill between storing and acknowledging leaves (it is too narrow to aim a kill at):
  // messages bus B has, coming again. A bridge of another name (its own JetStream consumer)
  // reads ORDERS from the start: bus B keeps each once, by the Nats-Msg-Id they carry.
  extra_bridge_ = start_bridge_with(b_, 2, "b2", {"--import-stream", "ORDERS"});
  nlohmann::json b2;
  EXPECT_TRUE(wait_until([&] {
    b2 = link_of(bridge_status(b_, "b2"), "import");
    return counter(b2, "copied") + counter(b2, "duplicates") >= kN;
  })) << b2;
  EXPECT_EQ(counter(b2, "duplicates"), kN) << b2;
  EXPECT_EQ(bus_stream_messages(b_).value_or(0), kN) << "bus B's ORDERS after b2 read it all again";
  std::printf("[ streams ] JetStream redelivered %lld to the restarted b1; b2 re-read ORDERS: %s\n", redelivered,
              b2.dump().c_str());
}

// (k) Bus B both imports JetStream's ORDERS and exports its own ORDERS (into ORDERS_B): what came
// from NATS (Bus-Origin in B's journal) is not copied back; what B's own publishers stored is.
// ORDERS_B gets the prefix b. because JetStream refuses a stream whose subjects overlap another's
// (a1's ORDERS has orders.>: JetStream error 10065), hence a configuration file: --prefix would
// apply to the import link too.
class BridgeMpStreamsNoEcho : public BridgeMpStreams {
 protected:
  std::vector<std::string> links_b() override {
    const std::string path = log_dir_->path + "/b1.json";
    std::ofstream(path) << R"({"export_streams": [{"stream": "ORDERS", "to": "ORDERS_B", "prefix": "b."}]})";
    return {"--import-stream", "ORDERS", "--bridge-config", path};
  }
};

TEST_F(BridgeMpStreamsNoEcho, what_came_from_nats_is_not_exported_back) {
  constexpr std::size_t kFromA = 200, kLocal = 10;
  ASSERT_TRUE(run_ok(cli(a_, {"pub", "--ack", "orders.new", "o{{Count}}", "--count", std::to_string(kFromA)})));
  nlohmann::json export_b;
  EXPECT_TRUE(wait_until([&] {
    export_b = link_of(bridge_status(b_, "b1"), "export");
    return bus_stream_messages(b_).value_or(0) >= kFromA && counter(export_b, "skipped") >= kFromA;
  })) << "b1's export link: " << export_b << "; bus B's ORDERS: " << bus_stream_messages(b_).value_or(0)
      << "\n" << bridge_b_.describe();
  // B's own publishers: these do go to ORDERS_B (so that the link demonstrably works).
  ASSERT_TRUE(run_ok(cli(b_, {"pub", "--ack", "orders.local", "b{{Count}}", "--count", std::to_string(kLocal)})));
  EXPECT_TRUE(wait_until([&] { return js_stream("ORDERS_B").messages >= kLocal; })) << js_stream("ORDERS_B").text;
  pump_for(500ms);

  const auto on_b = bus_stream_view(b_);
  EXPECT_EQ(once_each(payloads_of(on_b, "o"), expected("o", kFromA)), "") << "bus B's ORDERS, from A";
  EXPECT_EQ(once_each(payloads_of(on_b, "b"), expected("b", kLocal)), "") << "bus B's ORDERS, its own";
  std::size_t marked = 0, unmarked_local = 0;
  for (const auto& m : on_b) {
    const bool has_origin = m.headers.count("Bus-Origin") != 0 && !m.headers.at("Bus-Origin").empty();
    if (m.payload.rfind("o", 0) == 0 && has_origin) ++marked;
    if (m.payload.rfind("b", 0) == 0 && !has_origin) ++unmarked_local;
  }
  EXPECT_EQ(marked, kFromA) << "imported messages carry Bus-Origin in B's journal";
  EXPECT_EQ(unmarked_local, kLocal) << "B's own messages carry no Bus-Origin";

  const auto orders_b = js_stream("ORDERS_B", true);
  ASSERT_TRUE(orders_b.ok) << orders_b.text;
  EXPECT_EQ(orders_b.messages, kLocal) << orders_b.text;
  EXPECT_EQ(once_each(orders_b.payloads, expected("b", kLocal)), "") << "ORDERS_B: B's own only, none of A's";
  const auto orders = js_stream("ORDERS");
  EXPECT_EQ(orders.messages, kFromA) << orders.text;

  const auto status = bridge_status(b_, "b1");
  const auto exp = link_of(status, "export"), imp = link_of(status, "import");
  EXPECT_EQ(exp.value("js_stream", ""), "ORDERS_B") << status;
  EXPECT_EQ(counter(exp, "skipped"), kFromA) << status;
  EXPECT_EQ(counter(exp, "copied"), kLocal) << status;
  EXPECT_EQ(counter(exp, "duplicates"), 0u) << status;
  EXPECT_EQ(counter(imp, "copied"), kFromA) << status;
  EXPECT_EQ(counter(imp, "skipped"), 0u) << status;
}

}  // namespace
}  // namespace bus::test

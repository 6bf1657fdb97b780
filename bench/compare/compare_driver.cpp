// compare_driver.cpp — runs the comparison rows on every transport, takes medians and writes the
// table (bench/compare/run.sh is the front door; see its header for usage).
//
//   compare_driver --bin DIR --out DIR --tmp DIR [--smoke] [--repeat R] [--seconds S]
//                  [--cpus A,B] [--transports limit,bus,nats,zmq] [--runs lat16,tput16,...]
//                  [--nats-server PATH] [--label TEXT]
//
// For each repetition, for each workload ("run"), it runs the four peers back to back (so the
// numbers that are divided by each other were measured seconds apart), each as
//   DIR/peer_<t> WORKLOAD SIZE COUNT --seconds S --subs N --cpus A,B --url URL --dir TMP
// and reads the one JSON line it prints (stderr goes to OUT/logs/<t>.log). nats-server is started
// here on 127.0.0.1 with a free port and JetStream (store in TMP/js) and stopped at the end.
//
// Cells are medians over the repetitions. Ratio columns are COST ratios — time per operation,
// so for throughput rows the inverse of the rate ratio — and are the median of the per-repetition
// ratios (each pair measured back to back): "X/Y = 3x" always means X is 3 times slower than Y.
// Only runs of the same cache-line placement are paired: every peer reports a bare ping-pong
// probe before and after its workload, and the probes are split into placements at the largest
// (>= 1.5x) gap; a second table then shows limit and bus per placement.
//
// Writes OUT/results.json (environment, every raw peer result, rows, targets), OUT/table.md,
// OUT/lat16_percentiles.dat + OUT/latency16.gp (the plot run.sh renders). Exit status 1 if any
// peer run failed, 0 otherwise (targets are reported, not enforced: the VM is noisy).
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <fstream>
#include <iostream>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

namespace {

using nlohmann::json;
using Clock = std::chrono::steady_clock;

const std::vector<std::string> kAllTransports = {"limit", "bus", "nats", "zmq"};

struct RunSpec {
  std::string id;
  std::string workload;
  std::size_t size;
  int subs;
  bool js;  // streams: JetStream for NATS, the journal for bus
  int pubs = 1;
  std::string sync = "never";  // streams: bus's sync policy (JetStream's is server-wide)
};

const std::vector<RunSpec> kRuns = {
    {"lat16", "latency", 16, 1, false},       {"lat4k", "latency", 4096, 1, false},
    {"tput16", "throughput", 16, 1, false},   {"tput256", "throughput", 256, 1, false},
    {"tput4k", "throughput", 4096, 1, false}, {"fan16", "throughput", 16, 4, false},
    {"rr16", "reqrep", 16, 1, false},
    {"jspub64", "js_publish", 64, 1, true},
    {"jspub1k", "js_publish", 1024, 1, true},
    {"jspub64x4", "js_publish", 64, 1, true, 4},
    {"jspub64sync", "js_publish", 64, 1, true, 1, "always"},
    {"jspub1ksync", "js_publish", 1024, 1, true, 1, "always"},
    {"jspub64syncx4", "js_publish", 64, 1, true, 4, "always"},
    {"jsreplay64", "js_replay", 64, 1, true},
    {"jsconsume64", "js_consume", 64, 1, true},
};

bool is_stream_run(const std::string& id) {
  return std::any_of(kRuns.begin(), kRuns.end(), [&](const RunSpec& r) { return r.id == id && r.js; });
}

enum class Kind { latency, rate };

struct RowSpec {
  std::string label;
  std::string run;
  std::string metric;
  Kind kind;
};

const std::vector<RowSpec> kRows = {
    {"one-way latency 16 B, p50", "lat16", "p50_ns", Kind::latency},
    {"one-way latency 16 B, p99", "lat16", "p99_ns", Kind::latency},
    {"one-way latency 4 KiB, p50", "lat4k", "p50_ns", Kind::latency},
    {"one-way latency 4 KiB, p99", "lat4k", "p99_ns", Kind::latency},
    {"1->1 throughput 16 B", "tput16", "msgs_per_s", Kind::rate},
    {"1->1 throughput 256 B", "tput256", "msgs_per_s", Kind::rate},
    {"1->1 throughput 4 KiB", "tput4k", "msgs_per_s", Kind::rate},
    {"1->4 fan-out 16 B (deliveries/s)", "fan16", "msgs_per_s", Kind::rate},
    {"request/reply RTT 16 B, p50", "rr16", "p50_ns", Kind::latency},
    {"request/reply RTT 16 B, p99", "rr16", "p99_ns", Kind::latency},
    {"stream ack'd publish 64 B, sync never", "jspub64", "msgs_per_s", Kind::rate},
    {"stream ack latency 64 B, sync never, p50", "jspub64", "ack_p50_ns", Kind::latency},
    {"journal growth limit, 112-B records (page cache)", "jspub64", "growth_limit_msgs_per_s", Kind::rate},
    {"stream ack latency 64 B, sync never, p99", "jspub64", "ack_p99_ns", Kind::latency},
    {"stream ack'd publish 1 KiB, sync never", "jspub1k", "msgs_per_s", Kind::rate},
    {"stream ack'd publish 64 B, sync never, 4 publishers", "jspub64x4", "msgs_per_s", Kind::rate},
    {"stream ack'd publish 64 B, sync always", "jspub64sync", "msgs_per_s", Kind::rate},
    {"stream ack latency 64 B, sync always, p50", "jspub64sync", "ack_p50_ns", Kind::latency},
    {"stream ack latency 64 B, sync always, p99", "jspub64sync", "ack_p99_ns", Kind::latency},
    {"stream ack'd publish 1 KiB, sync always", "jspub1ksync", "msgs_per_s", Kind::rate},
    {"stream ack'd publish 64 B, sync always, 4 publishers", "jspub64syncx4", "msgs_per_s", Kind::rate},
    {"stream replay 64 B", "jsreplay64", "msgs_per_s", Kind::rate},
    {"consumer delivery 64 B, explicit acks", "jsconsume64", "msgs_per_s", Kind::rate},
};

struct Options {
  bool smoke = false;
  int repeat = 5;
  double seconds = -1;
  std::string bin = "build/bin";
  std::string out = "build/compare";
  std::string tmp = "/tmp";
  std::string cpus = "0,1";
  std::vector<std::string> transports = kAllTransports;
  std::vector<std::string> runs;
  std::string nats_server = "nats-server";
  std::string label;
  std::string command;
  bool cross_check = false;  // also run bench_baseline's ping-pong (default: full runs only)
};

std::vector<std::string> split(const std::string& s, char sep) {
  std::vector<std::string> out;
  std::stringstream ss(s);
  std::string item;
  while (std::getline(ss, item, sep)) {
    if (!item.empty()) out.push_back(item);
  }
  return out;
}

bool contains(const std::vector<std::string>& v, const std::string& x) {
  return std::find(v.begin(), v.end(), x) != v.end();
}

std::string read_file(const std::string& path) {
  std::ifstream f(path);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

std::string trim(std::string s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == ' ')) s.pop_back();
  return s;
}

bool executable(const std::string& path) { return ::access(path.c_str(), X_OK) == 0; }

// Finds `name` in PATH (or returns it if it contains a slash and is executable).
std::optional<std::string> which(const std::string& name) {
  if (name.find('/') != std::string::npos) return executable(name) ? std::optional(name) : std::nullopt;
  const char* path = std::getenv("PATH");
  for (const auto& dir : split(path != nullptr ? path : "/usr/bin:/bin", ':')) {
    const std::string p = dir + "/" + name;
    if (executable(p)) return p;
  }
  return std::nullopt;
}

// --------------------------------------------------------------------------------- processes
struct Spawned {
  pid_t pid = -1;
  int out_fd = -1;  // the child's stdout, or -1
};

// fork + exec with stdout to a pipe (if capture) and stderr appended to `log`; the child dies with
// us (PDEATHSIG).
Spawned spawn(const std::vector<std::string>& argv, const std::string& log, bool capture) {
  int fds[2] = {-1, -1};
  if (capture && ::pipe2(fds, O_CLOEXEC) != 0) return {};
  const pid_t parent = ::getpid();
  const pid_t pid = ::fork();
  if (pid < 0) return {};
  if (pid == 0) {
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (::getppid() != parent) ::_exit(127);
    const int err = ::open(log.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
    if (err >= 0) ::dup2(err, 2);
    if (capture) {
      ::dup2(fds[1], 1);
    } else if (err >= 0) {
      ::dup2(err, 1);
    }
    std::vector<char*> args;
    for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
    args.push_back(nullptr);
    ::execv(args[0], args.data());
    std::fprintf(stderr, "exec %s: %s\n", args[0], std::strerror(errno));
    ::_exit(127);
  }
  if (capture) ::close(fds[1]);
  return {pid, capture ? fds[0] : -1};
}

// Reads the child's stdout until EOF or timeout (then SIGKILL); reaps it. Returns stdout text.
std::string collect(Spawned s, std::chrono::seconds timeout, int& status, bool& timed_out) {
  std::string out;
  timed_out = false;
  if (s.pid <= 0 || s.out_fd < 0) {  // fork or pipe failed: never kill(-1, ...)
    status = 127;
    return out;
  }
  const auto deadline = Clock::now() + timeout;
  char buf[4096];
  for (;;) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
    if (left <= 0) {
      timed_out = true;
      ::kill(s.pid, SIGKILL);
      break;
    }
    pollfd p{s.out_fd, POLLIN, 0};
    const int r = ::poll(&p, 1, static_cast<int>(std::min<long long>(left, 1000)));
    if (r < 0 && errno != EINTR) break;
    if (r <= 0) continue;
    const ssize_t n = ::read(s.out_fd, buf, sizeof buf);
    if (n <= 0) break;
    out.append(buf, static_cast<std::size_t>(n));
  }
  ::close(s.out_fd);
  int raw = 0;
  while (::waitpid(s.pid, &raw, 0) < 0 && errno == EINTR) {
  }
  status = WIFEXITED(raw) ? WEXITSTATUS(raw) : 128 + WTERMSIG(raw);
  return out;
}

struct PeerRun {
  json result;        // the parsed result line (null if none)
  std::string error;  // "" on success
  double seconds = 0;
  std::string out;    // everything the program printed on stdout
  pid_t pid = -1;
};

// Runs one program, reads its stdout and parses the last line that starts with '{'.
PeerRun run_peer(const std::vector<std::string>& args, const std::string& log, std::chrono::seconds timeout,
                 bool whole_output_is_json = false) {
  PeerRun pr;
  const auto t0 = Clock::now();
  int status = 0;
  bool timed_out = false;
  const Spawned sp = spawn(args, log, true);
  pr.pid = sp.pid;
  pr.out = collect(sp, timeout, status, timed_out);
  pr.seconds = std::chrono::duration<double>(Clock::now() - t0).count();
  std::string line;
  if (whole_output_is_json) {
    line = pr.out;
  } else {
    std::istringstream lines(pr.out);
    for (std::string l; std::getline(lines, l);) {
      if (!l.empty() && l[0] == '{') line = l;
    }
  }
  try {
    if (!line.empty()) pr.result = json::parse(line);
  } catch (const std::exception&) {
    pr.result = json();
  }
  if (timed_out) {
    pr.error = "timed out after " + std::to_string(timeout.count()) + " s";
  } else if (!pr.result.is_object()) {
    pr.error = "no result (exit status " + std::to_string(status) + ")";
  } else if (!whole_output_is_json && !pr.result.value("ok", false)) {
    pr.error = pr.result.value("error", std::string("failed"));
  } else if (status != 0) {
    pr.error = "exit status " + std::to_string(status);
  }
  return pr;
}

// --------------------------------------------------------------------------------- nats-server
class NatsServer {
 public:
  ~NatsServer() { stop(); }

  /// Starts it on 127.0.0.1 with a free port and JetStream; returns an error text or "".
  std::string start(const std::string& binary, const std::string& tmp, const std::string& log) {
    const std::string store = tmp + "/js";
    ::mkdir(store.c_str(), 0700);
    for (int attempt = 0; attempt < 3; ++attempt) {
      const int port = free_port();
      if (port <= 0) return "no free TCP port on 127.0.0.1";
      s_ = spawn({binary, "-a", "127.0.0.1", "-p", std::to_string(port), "-js", "-sd", store}, log, false);
      if (s_.pid <= 0) return "could not start " + binary;
      const auto deadline = Clock::now() + std::chrono::seconds(10);
      while (Clock::now() < deadline) {
        int raw = 0;
        if (::waitpid(s_.pid, &raw, WNOHANG) == s_.pid) {
          s_.pid = -1;
          break;  // exited (port taken meanwhile?): retry with another port
        }
        if (can_connect(port)) {
          url_ = "nats://127.0.0.1:" + std::to_string(port);
          return "";
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
      }
      stop();
    }
    return "nats-server did not come up (see " + log + ")";
  }

  void stop() {
    if (s_.pid > 0) {
      ::kill(s_.pid, SIGTERM);
      const auto deadline = Clock::now() + std::chrono::seconds(5);
      int raw = 0;
      while (::waitpid(s_.pid, &raw, WNOHANG) == 0) {
        if (Clock::now() > deadline) {
          ::kill(s_.pid, SIGKILL);
          ::waitpid(s_.pid, &raw, 0);
          break;
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
      }
      s_.pid = -1;
    }
  }
  const std::string& url() const { return url_; }

 private:
  static int free_port() {
    const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0) return -1;
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    a.sin_port = 0;
    socklen_t len = sizeof a;
    int port = -1;
    if (::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0 &&
        ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) == 0) {
      port = ntohs(a.sin_port);
    }
    ::close(fd);
    return port;
  }
  static bool can_connect(int port) {
    const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0) return false;
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    a.sin_port = htons(static_cast<std::uint16_t>(port));
    const bool ok = ::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0;
    ::close(fd);
    return ok;
  }

  Spawned s_;
  std::string url_;
};

// --------------------------------------------------------------------------------- formatting
std::string fmt(const char* f, double v) {
  char buf[64];
  std::snprintf(buf, sizeof buf, f, v);
  return buf;
}

std::string format_value(Kind k, double v) {
  if (k == Kind::latency) {
    if (v < 10'000) return fmt("%.0f ns", v);
    if (v < 1'000'000) return fmt("%.1f us", v / 1e3);
    return fmt("%.2f ms", v / 1e6);
  }
  if (v >= 1e6) return fmt("%.2f M/s", v / 1e6);
  if (v >= 1e3) return fmt("%.1f k/s", v / 1e3);
  return fmt("%.0f /s", v);
}

std::string format_ratio(double r) {
  if (r < 10) return fmt("%.2fx", r);
  if (r < 100) return fmt("%.1fx", r);
  return fmt("%.0fx", r);
}

double median(std::vector<double> v) {
  if (v.empty()) return std::nan("");
  std::sort(v.begin(), v.end());
  const std::size_t n = v.size();
  return n % 2 == 1 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

std::string loadavg() { return trim(read_file("/proc/loadavg")); }

std::string cpu_model() {
  std::istringstream in(read_file("/proc/cpuinfo"));
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("model name", 0) == 0) {
      const auto colon = line.find(':');
      return colon == std::string::npos ? line : line.substr(colon + 2);
    }
  }
  return "unknown";
}

std::string utc_now() {
  const std::time_t t = std::time(nullptr);
  char buf[64];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", std::gmtime(&t));
  return buf;
}

[[noreturn]] void usage(const char* why) {
  std::fprintf(stderr,
               "compare_driver: %s\nusage: compare_driver --bin DIR --out DIR --tmp DIR [--smoke] [--repeat R] "
               "[--seconds S] [--cpus A,B] [--transports limit,bus,nats,zmq] [--runs %s] "
               "[--nats-server PATH] [--label TEXT] [--command TEXT] [--cross-check on|off]\n",
               why,
               "lat16,lat4k,tput16,tput256,tput4k,fan16,rr16,jspub64,jspub1k,jspub64x4,jspub64sync,jspub1ksync,"
               "jspub64syncx4,jsreplay64,jsconsume64");
  std::exit(2);
}

Options parse(int argc, char** argv) {
  Options o;
  bool repeat_set = false;
  bool cross_check_set = false;
  for (int i = 1; i < argc; ++i) {
    const std::string k = argv[i];
    if (k == "--smoke") {
      o.smoke = true;
      continue;
    }
    if (i + 1 >= argc) usage(("missing value for " + k).c_str());
    const std::string v = argv[++i];
    if (k == "--bin") {
      o.bin = v;
    } else if (k == "--out") {
      o.out = v;
    } else if (k == "--tmp") {
      o.tmp = v;
    } else if (k == "--repeat") {
      o.repeat = std::max(1, std::atoi(v.c_str()));
      repeat_set = true;
    } else if (k == "--seconds") {
      o.seconds = std::atof(v.c_str());
    } else if (k == "--cpus") {
      o.cpus = v;
    } else if (k == "--transports") {
      o.transports = split(v, ',');
    } else if (k == "--runs") {
      o.runs = split(v, ',');
    } else if (k == "--nats-server") {
      o.nats_server = v;
    } else if (k == "--label") {
      o.label = v;
    } else if (k == "--command") {
      o.command = v;
    } else if (k == "--cross-check") {
      o.cross_check = v == "1" || v == "yes" || v == "on";
      cross_check_set = true;
    } else {
      usage(("unknown option " + k).c_str());
    }
  }
  if (o.smoke && !repeat_set) o.repeat = 1;
  if (!o.smoke && !cross_check_set) o.cross_check = true;
  for (const auto& t : o.transports) {
    if (!contains(kAllTransports, t)) usage(("unknown transport " + t).c_str());
  }
  for (const auto& r : o.runs) {
    if (std::none_of(kRuns.begin(), kRuns.end(), [&](const RunSpec& s) { return s.id == r; })) {
      usage(("unknown run " + r).c_str());
    }
  }
  return o;
}

// What a cell shows when a transport does not run a workload at all.
std::optional<std::string> not_applicable(const std::string& transport, const RunSpec& run) {
  if (run.js && transport != "nats" && transport != "bus") return "n/a";
  // nats-server 2.9 (Debian 12's) has no sync option; from 2.10 it is server-wide, not per stream.
  if (run.js && transport == "nats" && run.sync != "never") return "n/a (no sync always)";
  return std::nullopt;
}

struct Cell {
  std::vector<json> ok;  // successful results, one per repetition that worked
  std::vector<std::pair<int, json>> by_rep;
  std::vector<std::string> errors;
  std::optional<std::string> fixed;  // "n/a ...", "not built", "not installed"
};

}  // namespace

int main(int argc, char** argv) {
  const Options o = parse(argc, argv);
  ::mkdir(o.out.c_str(), 0755);
  const std::string logs = o.out + "/logs";
  ::mkdir(logs.c_str(), 0755);
  for (const auto& t : kAllTransports) ::unlink((logs + "/" + t + ".log").c_str());
  ::unlink((logs + "/nats-server.log").c_str());

  std::vector<RunSpec> runs;
  for (const auto& r : kRuns) {
    if (o.runs.empty() || contains(o.runs, r.id)) runs.push_back(r);
  }
  const double lat_seconds = o.seconds > 0 ? o.seconds : (o.smoke ? 0.1 : 1.0);
  const double tput_seconds = o.seconds > 0 ? o.seconds : (o.smoke ? 0.1 : 1.0);
  const double js_seconds = o.seconds > 0 ? o.seconds : (o.smoke ? 0.15 : 1.0);
  const auto run_timeout = std::chrono::seconds(o.smoke ? 15 : 120);

  json env;
  env["date_utc"] = utc_now();
  env["label"] = o.label;
  env["loadavg_start"] = loadavg();
  env["cpus_online"] = static_cast<int>(::sysconf(_SC_NPROCESSORS_ONLN));
  env["cpu_model"] = cpu_model();
  utsname u{};
  if (::uname(&u) == 0) env["kernel"] = std::string(u.sysname) + " " + u.release;
  env["pinning"] = "publisher/requester on CPU " + o.cpus.substr(0, o.cpus.find(',')) +
                   ", subscribers/responders on CPU " + o.cpus.substr(o.cpus.find(',') + 1) +
                   "; nats-server not pinned";
  env["mode"] = o.smoke ? "smoke" : "full";
  env["repeat"] = o.repeat;
  env["seconds"] = {{"latency", lat_seconds}, {"throughput", tput_seconds}, {"jetstream", js_seconds}};

  if (env["cpus_online"].get<int>() < 2) {
    std::fprintf(stderr, "compare: WARNING: fewer than 2 CPUs online; both sides share one CPU and spinning "
                         "transports (limit, bus) will be measured at scheduler-slice speed\n");
  }

  // Which transports can run at all.
  std::map<std::string, std::optional<std::string>> missing;  // transport -> reason
  for (const auto& t : o.transports) {
    if (!executable(o.bin + "/peer_" + t)) {
      missing[t] = (t == "nats" || t == "zmq") ? "not built (bench/compare/install-peers.sh, re-run cmake)" : "not built";
    }
  }
  NatsServer nats;
  if (contains(o.transports, "nats") && !missing["nats"]) {
    const auto bin = which(o.nats_server);
    if (!bin) {
      missing["nats"] = "nats-server not installed";
    } else {
      const std::string err = nats.start(*bin, o.tmp, logs + "/nats-server.log");
      if (!err.empty()) {
        missing["nats"] = "error: " + err;
      } else {
        env["nats_url"] = nats.url();
        std::fprintf(stderr, "compare: nats-server %s (JetStream store %s/js)\n", nats.url().c_str(), o.tmp.c_str());
      }
    }
  }

  std::map<std::string, std::map<std::string, Cell>> cells;  // run -> transport -> cell
  json raw = json::array();
  int failures = 0;
  const auto t_start = Clock::now();
  for (int rep = 0; rep < o.repeat; ++rep) {
    for (const auto& run : runs) {
      for (const auto& t : o.transports) {
        Cell& cell = cells[run.id][t];
        if (auto na = not_applicable(t, run)) {
          cell.fixed = na;
          continue;
        }
        if (auto it = missing.find(t); it != missing.end() && it->second) {
          cell.fixed = it->second;
          continue;
        }
        const bool is_js = run.js;
        const double secs = run.workload == "latency" || run.workload == "reqrep" ? lat_seconds
                            : is_js                                              ? js_seconds
                                                                                 : tput_seconds;
        const std::uint64_t count = run.workload == "throughput" ? 1'000'000'000ull : 10'000'000ull;
        std::vector<std::string> args = {o.bin + "/peer_" + t, run.workload, std::to_string(run.size),
                                         std::to_string(count), "--seconds", fmt("%g", secs), "--subs",
                                         std::to_string(run.subs), "--cpus", o.cpus, "--dir", o.tmp};
        if (is_js) {
          for (const std::string& extra : {std::string("--pubs"), std::to_string(run.pubs), std::string("--sync"), run.sync}) {
            args.push_back(extra);
          }
        }
        if (t == "nats") {
          args.push_back("--url");
          args.push_back(nats.url());
        }
        std::fprintf(stderr, "compare: [%d/%d] %-8s %-6s ", rep + 1, o.repeat, run.id.c_str(), t.c_str());
        std::fflush(stderr);
        const PeerRun pr = run_peer(args, logs + "/" + t + ".log", run_timeout);
        const json& result = pr.result;
        const std::string& error = pr.error;
        const double took = pr.seconds;
        raw.push_back({{"rep", rep}, {"run", run.id}, {"transport", t}, {"seconds", took}, {"error", error}, {"result", result}});
        if (!error.empty()) {
          // A killed peer_bus leaves its embedded broker's segment behind (named after its pid).
          if (t == "bus" && pr.pid > 0) ::unlink(("/dev/shm/bus.cmp-" + std::to_string(pr.pid)).c_str());
          ++failures;
          cell.errors.push_back(error);
          std::fprintf(stderr, "FAILED: %s (log: %s/%s.log)\n", error.c_str(), logs.c_str(), t.c_str());
          continue;
        }
        cell.ok.push_back(result);
        cell.by_rep.emplace_back(rep, result);
        if (result.contains("p50_ns")) {
          std::fprintf(stderr, "p50 %s p99 %s  (%.1f s)\n", format_value(Kind::latency, result["p50_ns"].get<double>()).c_str(),
                       format_value(Kind::latency, result["p99_ns"].get<double>()).c_str(), took);
        } else {
          std::fprintf(stderr, "%s", format_value(Kind::rate, result.value("msgs_per_s", 0.0)).c_str());
          if (result.value("drop_ratio", 0.0) > 0) std::fprintf(stderr, " (dropped %.1f%%)", 100 * result.value("drop_ratio", 0.0));
          std::fprintf(stderr, "  (%.1f s)\n", took);
        }
      }
    }
  }
  nats.stop();

  // Cross-check: peer_limit's ping-pong against bench_baseline's BM_CacheLinePingPong, back to back
  // (peer_limit re-implements it on bench/common; the two should agree within the VM's noise).
  std::string cross_check;
  if (o.cross_check && executable(o.bin + "/bench_baseline") && executable(o.bin + "/peer_limit")) {
    std::fprintf(stderr, "compare: cross-check peer_limit vs bench_baseline ping-pong\n");
    const PeerRun mine = run_peer({o.bin + "/peer_limit", "latency", "16", "10000000", "--seconds", "0.5", "--cpus", o.cpus},
                                  logs + "/limit.log", std::chrono::seconds(60));
    const PeerRun base = run_peer({o.bin + "/bench_baseline", "--benchmark_filter=BM_CacheLinePingPong",
                                   "--benchmark_format=json", "--benchmark_min_time=0.5"},
                                  logs + "/bench_baseline.log", std::chrono::seconds(60), true);
    std::optional<double> base_p50;
    if (base.error.empty() && base.result.contains("benchmarks")) {
      for (const auto& b : base.result["benchmarks"]) {
        if (b.contains("p50_ns")) base_p50 = b["p50_ns"].get<double>();
      }
    }
    if (mine.error.empty() && base_p50) {
      cross_check = "cross-check, back to back: peer_limit ping-pong one-way p50 " +
                    format_value(Kind::latency, mine.result.value("p50_ns", 0.0)) +
                    ", bench_baseline BM_CacheLinePingPong p50 " + format_value(Kind::latency, *base_p50);
    } else {
      cross_check = "cross-check failed: " + (mine.error.empty() ? base.error : mine.error);
    }
    env["cross_check"] = cross_check;
  }
  env["loadavg_end"] = loadavg();
  env["wall_seconds"] = std::chrono::duration<double>(Clock::now() - t_start).count();

  // ------------------------------------------------------------------------------ rows
  auto metric_of = [](const json& r, const std::string& m) -> std::optional<double> {
    if (!r.contains(m) || !r[m].is_number()) return std::nullopt;
    return r[m].get<double>();
  };
  auto cost_ratio = [](Kind k, double a, double b) { return k == Kind::latency ? a / b : b / a; };

  // Placement modes. Every peer probes a bare cache-line ping-pong before and after its workload
  // (probe_before_ns / probe_after_ns). If the probes fall into two groups (a gap of >= 1.5x
  // between consecutive sorted values), the runs are split into "fast" and "slow" placement and
  // only runs of the same placement are divided by each other.
  double mode_threshold = 0;
  std::vector<double> fast_probes, slow_probes;
  {
    std::vector<double> probes;
    for (const auto& [run_id, by_t] : cells) {
      for (const auto& [t, c] : by_t) {
        for (const auto& r : c.ok) {
          for (const char* k : {"probe_before_ns", "probe_after_ns"}) {
            if (r.value(k, 0.0) > 0) probes.push_back(r.value(k, 0.0));
          }
        }
      }
    }
    std::sort(probes.begin(), probes.end());
    double best_gap = 1.0;
    for (std::size_t i = 0; i + 1 < probes.size(); ++i) {
      const double gap = probes[i + 1] / probes[i];
      if (gap > best_gap) {
        best_gap = gap;
        mode_threshold = std::sqrt(probes[i] * probes[i + 1]);
      }
    }
    if (best_gap < 1.5) mode_threshold = 0;
    for (const double v : probes) (mode_threshold > 0 && v >= mode_threshold ? slow_probes : fast_probes).push_back(v);
  }
  auto mode_of = [&](const json& r) -> std::string {
    const double b = r.value("probe_before_ns", 0.0);
    const double a = r.value("probe_after_ns", 0.0);
    if (b <= 0 || a <= 0) return "unknown";
    if (mode_threshold <= 0) return "one";
    const std::string mb = b < mode_threshold ? "fast" : "slow";
    const std::string ma = a < mode_threshold ? "fast" : "slow";
    return mb == ma ? mb : "mixed";
  };
  int mixed_runs = 0;
  for (const auto& [run_id, by_t] : cells) {
    for (const auto& [t, c] : by_t) {
      for (const auto& r : c.ok) mixed_runs += mode_of(r) == "mixed" ? 1 : 0;
    }
  }

  // Median of per-repetition cost ratios a/b: pairs from the same repetition (measured back to
  // back) and the same placement; `matched` false when no such pair exists and all same-repetition
  // pairs were used instead.
  auto paired_ratio = [&](const RowSpec& row, const std::string& a, const std::string& b,
                          bool& matched) -> std::optional<double> {
    const Cell& ca = cells[row.run][a];
    const Cell& cb = cells[row.run][b];
    std::vector<double> same_mode, any;
    for (const auto& [rep, ra] : ca.by_rep) {
      for (const auto& [rep2, rb] : cb.by_rep) {
        if (rep != rep2) continue;
        const auto va = metric_of(ra, row.metric);
        const auto vb = metric_of(rb, row.metric);
        if (!va || !vb || *va <= 0 || *vb <= 0) continue;
        const double r = cost_ratio(row.kind, *va, *vb);
        any.push_back(r);
        const std::string m = mode_of(ra);
        if (m == mode_of(rb) && m != "mixed" && m != "unknown") same_mode.push_back(r);
      }
    }
    matched = !same_mode.empty();
    if (matched) return median(same_mode);
    if (any.empty()) return std::nullopt;
    return median(any);
  };
  // Median of one transport's values in one placement mode, and how many runs that is.
  auto mode_median = [&](const RowSpec& row, const std::string& t, const std::string& mode, int& n) -> std::optional<double> {
    std::vector<double> v;
    for (const auto& r : cells[row.run][t].ok) {
      if (mode_of(r) != mode) continue;
      if (auto x = metric_of(r, row.metric)) v.push_back(*x);
    }
    n = static_cast<int>(v.size());
    if (v.empty()) return std::nullopt;
    return median(v);
  };

  struct RowOut {
    std::string label;
    std::map<std::string, std::string> text;
    std::map<std::string, double> value;
    std::map<std::string, std::optional<double>> ratio;  // "bus/limit", "nats/bus", "zmq/bus"
    std::map<std::string, bool> matched;                 // ratio from same-placement pairs
    Kind kind;
    std::string run;
  };
  std::vector<RowOut> rows_out;
  json rows_json = json::array();
  const std::vector<std::pair<std::string, std::pair<std::string, std::string>>> ratio_cols = {
      {"bus/limit", {"bus", "limit"}}, {"nats/bus", {"nats", "bus"}}, {"zmq/bus", {"zmq", "bus"}}};
  for (const auto& row : kRows) {
    if (std::none_of(runs.begin(), runs.end(), [&](const RunSpec& r) { return r.id == row.run; })) continue;
    RowOut ro{row.label, {}, {}, {}, {}, row.kind, row.run};
    json rj = {{"row", row.label}, {"run", row.run}, {"metric", row.metric},
               {"unit", row.kind == Kind::latency ? "ns" : "msgs/s"}, {"values", json::object()}, {"ratios", json::object()}};
    for (const auto& t : kAllTransports) {
      if (!contains(o.transports, t)) {
        ro.text[t] = "-";
        continue;
      }
      const Cell& c = cells[row.run][t];
      std::vector<double> vals;
      for (const auto& r : c.ok) {
        if (auto v = metric_of(r, row.metric)) vals.push_back(*v);
      }
      if (!vals.empty()) {
        const double m = median(vals);
        ro.value[t] = m;
        ro.text[t] = format_value(row.kind, m);
        if (!c.errors.empty()) ro.text[t] += " (!)";
        rj["values"][t] = m;
        rj["samples"][t] = vals;
      } else if (c.fixed) {
        ro.text[t] = *c.fixed;
        rj["values"][t] = *c.fixed;
      } else if (!c.errors.empty()) {
        ro.text[t] = "error";
        rj["values"][t] = "error: " + c.errors.front();
      } else {
        ro.text[t] = "-";
      }
    }
    for (const auto& [name, ab] : ratio_cols) {
      bool matched = false;
      ro.ratio[name] = paired_ratio(row, ab.first, ab.second, matched);
      ro.matched[name] = matched;
      if (ro.ratio[name]) {
        rj["ratios"][name] = *ro.ratio[name];
        rj["ratios_placement_matched"][name] = matched;
      }
    }
    if (mode_threshold > 0) {
      for (const std::string mode : {"fast", "slow"}) {
        for (const auto& t : {std::string("limit"), std::string("bus")}) {
          int n = 0;
          if (auto v = mode_median(row, t, mode, n)) rj["by_placement"][mode][t] = {{"median", *v}, {"runs", n}};
        }
      }
    }
    rows_out.push_back(ro);
    rows_json.push_back(rj);
  }

  // ------------------------------------------------------------------------------ targets
  json targets = json::array();
  auto find_row = [&](const std::string& label) -> const RowOut* {
    for (const auto& r : rows_out) {
      if (r.label == label) return &r;
    }
    return nullptr;
  };
  auto add_target = [&](const std::string& what, std::optional<bool> pass, const std::string& measured) {
    targets.push_back({{"target", what}, {"result", !pass ? "not measured" : (*pass ? "PASS" : "MISS")}, {"measured", measured}});
  };
  // "fast placement 2.3x, slow placement 1.8x" for a row, when the runs fell into two placements.
  auto placement_text = [&](const std::string& label) -> std::string {
    if (mode_threshold <= 0) return "";
    const auto it = std::find_if(kRows.begin(), kRows.end(), [&](const RowSpec& r) { return r.label == label; });
    if (it == kRows.end()) return "";
    std::string out;
    for (const std::string mode : {"fast", "slow"}) {
      int nl = 0, nb = 0;
      const auto l = mode_median(*it, "limit", mode, nl);
      const auto b = mode_median(*it, "bus", mode, nb);
      if (l && b) out += (out.empty() ? " (" : ", ") + mode + " placement " + format_ratio(cost_ratio(it->kind, *b, *l));
    }
    return out.empty() ? out : out + ")";
  };
  if (const RowOut* r = find_row("one-way latency 16 B, p50"); r && r->ratio.at("bus/limit")) {
    const double v = *r->ratio.at("bus/limit");
    add_target("bus one-way p50 (16 B) within 2x of the cache-line ping-pong", v <= 2.0,
               "bus/limit = " + format_ratio(v) + placement_text(r->label));
  } else {
    add_target("bus one-way p50 (16 B) within 2x of the cache-line ping-pong", std::nullopt, "-");
  }
  if (const RowOut* r = find_row("one-way latency 16 B, p99"); r && r->value.count("bus")) {
    const double v = r->value.at("bus");
    add_target("bus one-way p99 (16 B) under 1 us", v < 1000.0, "p99 = " + format_value(Kind::latency, v));
  } else {
    add_target("bus one-way p99 (16 B) under 1 us", std::nullopt, "-");
  }
  if (const RowOut* r = find_row("1->1 throughput 16 B"); r && r->ratio.at("bus/limit")) {
    const double v = *r->ratio.at("bus/limit");
    add_target("bus 1->1 16 B throughput at least half of the bare ring", v <= 2.0,
               "bus = " + fmt("%.0f%%", 100.0 / v) + " of the ring" + placement_text(r->label));
  } else {
    add_target("bus 1->1 16 B throughput at least half of the bare ring", std::nullopt, "-");
  }
  for (const Kind k : {Kind::latency, Kind::rate}) {
    const double need = k == Kind::latency ? 100.0 : 5.0;
    std::optional<double> worst;
    std::string worst_row;
    for (const auto& r : rows_out) {
      if (r.kind != k || !r.ratio.at("nats/bus")) continue;
      if (is_stream_run(r.run)) continue;
      const double v = *r.ratio.at("nats/bus");
      if (!worst || v < *worst) {
        worst = v;
        worst_row = r.label;
      }
    }
    const std::string what = k == Kind::latency ? "bus latency >= 100x better than nats-server (every latency row)"
                                                : "bus throughput >= 5x nats-server (every throughput row)";
    if (worst) {
      add_target(what, *worst >= need, "worst nats/bus = " + format_ratio(*worst) + " (" + worst_row + ")");
    } else {
      add_target(what, std::nullopt, "-");
    }
  }
  // Streams (issue 8's targets), from the bus column; JetStream beside it where it has the row.
  auto bus_value = [&](const std::string& label) -> std::optional<double> {
    const RowOut* r = find_row(label);
    if (r == nullptr || !r->value.count("bus")) return std::nullopt;
    return r->value.at("bus");
  };
  auto nats_value = [&](const std::string& label) -> std::optional<double> {
    const RowOut* r = find_row(label);
    if (r == nullptr || !r->value.count("nats")) return std::nullopt;
    return r->value.at("nats");
  };
  auto stream_target = [&](const std::string& what, const std::string& label, bool at_least, double bound, Kind k) {
    const auto v = bus_value(label);
    if (!v) return add_target(what, std::nullopt, "-");
    add_target(what, at_least ? *v >= bound : *v <= bound, format_value(k, *v));
  };
  {
    // Beside it, what this machine's page cache allowed in the same run (peer_bus measures it).
    const std::string what = "bus acked publish 64 B, sync never >= 10 M msg/s";
    const auto v = bus_value("stream ack'd publish 64 B, sync never");
    const auto limit = bus_value("journal growth limit, 112-B records (page cache)");
    std::string shown = v ? format_value(Kind::rate, *v) : "-";
    if (v && limit && *limit > 0) {
      shown += " (" + fmt("%.0f%%", 100.0 * *v / *limit) + " of the page cache's growth limit here, " +
               format_value(Kind::rate, *limit) + ")";
    }
    add_target(what, v ? std::optional(*v >= 10e6) : std::nullopt, shown);
  }
  stream_target("bus ack latency 64 B, sync never, p50 <= 1 us", "stream ack latency 64 B, sync never, p50", false, 1000, Kind::latency);
  stream_target("bus replay 64 B >= 20 M msg/s", "stream replay 64 B", true, 20e6, Kind::rate);
  {
    // JetStream here cannot sync always (nats-server 2.9): its page-cache rate and its
    // synchronous publish p99 are the (harder) bar.
    const std::string what = "bus sync always (4 publishers) at JetStream's acked rate or above, p99 below its (JetStream without sync)";
    const auto rate = bus_value("stream ack'd publish 64 B, sync always, 4 publishers");
    const auto p99 = bus_value("stream ack latency 64 B, sync always, p99");
    const auto js_rate = nats_value("stream ack'd publish 64 B, sync never");
    const auto js_p99 = nats_value("stream ack latency 64 B, sync never, p99");
    if (rate && p99 && js_rate && js_p99) {
      add_target(what, *rate >= *js_rate && *p99 < *js_p99,
                 format_value(Kind::rate, *rate) + " vs " + format_value(Kind::rate, *js_rate) + ", p99 " +
                     format_value(Kind::latency, *p99) + " vs " + format_value(Kind::latency, *js_p99));
    } else {
      add_target(what, std::nullopt, "-");
    }
  }
  {
    std::vector<std::string> behind;
    int compared = 0;
    for (const auto& r : rows_out) {
      if (!r.ratio.at("zmq/bus")) continue;
      ++compared;
      if (*r.ratio.at("zmq/bus") <= 1.0) behind.push_back(r.label + " (zmq/bus = " + format_ratio(*r.ratio.at("zmq/bus")) + ")");
    }
    std::string m = std::to_string(compared - static_cast<int>(behind.size())) + "/" + std::to_string(compared) + " rows ahead";
    for (const auto& b : behind) m += "; behind: " + b;
    add_target("bus ahead of ZeroMQ in every row", compared == 0 ? std::nullopt : std::optional(behind.empty()), m);
  }

  // ------------------------------------------------------------------------------ table
  std::vector<std::vector<std::string>> table;
  table.push_back({"row", "limit", "bus", "nats", "zmq", "bus/limit", "nats/bus", "zmq/bus"});
  for (const auto& r : rows_out) {
    std::vector<std::string> line = {r.label};
    for (const auto& t : kAllTransports) line.push_back(r.text.count(t) ? r.text.at(t) : "-");
    for (const auto& [name, ab] : ratio_cols) {
      const auto& v = r.ratio.at(name);
      const bool flag = v && mode_threshold > 0 && !r.matched.at(name);
      line.push_back(v ? format_ratio(*v) + (flag ? "*" : "") : "-");
    }
    table.push_back(line);
  }
  std::vector<std::size_t> width(table[0].size(), 0);
  for (const auto& line : table) {
    for (std::size_t i = 0; i < line.size(); ++i) width[i] = std::max(width[i], line[i].size());
  }
  std::ostringstream md;
  for (std::size_t li = 0; li < table.size(); ++li) {
    md << "|";
    for (std::size_t i = 0; i < table[li].size(); ++i) {
      const std::string& c = table[li][i];
      const std::string pad(width[i] - c.size(), ' ');
      md << " " << (i == 0 ? c + pad : pad + c) << " |";
    }
    md << "\n";
    if (li == 0) {
      md << "|";
      for (std::size_t i = 0; i < width.size(); ++i) {
        md << (i == 0 ? ":" : " ") << std::string(width[i], '-') << (i == 0 ? " " : ":") << "|";
      }
      md << "\n";
    }
  }
  std::ostringstream notes;
  notes << "\nCells: median of " << o.repeat << " run(s). Ratios: median of per-run COST ratios (time per "
        << "operation; >1 = the left one is slower), e.g. nats/bus = 150x: NATS takes 150x as long as bus;\n"
        << "only runs of the same repetition AND the same cache-line placement are divided (* = no such pair, "
        << "all same-repetition pairs used).\n"
        << "Throughput = messages delivered per second (fan-out: summed over the 4 subscribers).\n";
  {
    auto probe_text = [&](const std::vector<double>& v) { return v.empty() ? std::string("-") : format_value(Kind::latency, median(v)); };
    notes << "Placement probe (bare ping-pong one-way p50 before and after every run): ";
    if (mode_threshold > 0) {
      notes << "two placements: fast ~" << probe_text(fast_probes) << ", slow ~" << probe_text(slow_probes)
            << (mixed_runs ? "; " + std::to_string(mixed_runs) + " run(s) changed placement mid-run" : "") << "\n";
    } else {
      notes << "one placement, ~" << probe_text(fast_probes) << "\n";
    }
  }
  std::ostringstream by_placement;
  if (mode_threshold > 0) {
    std::vector<std::vector<std::string>> t2;
    t2.push_back({"row (limit, bus by placement)", "fast: limit", "bus", "bus/limit", "slow: limit", "bus", "bus/limit"});
    for (const auto& row : kRows) {
      if (is_stream_run(row.run)) continue;
      if (std::none_of(runs.begin(), runs.end(), [&](const RunSpec& r) { return r.id == row.run; })) continue;
      std::vector<std::string> line = {row.label};
      for (const std::string mode : {"fast", "slow"}) {
        int nl = 0, nb = 0;
        const auto l = mode_median(row, "limit", mode, nl);
        const auto b = mode_median(row, "bus", mode, nb);
        line.push_back(l ? format_value(row.kind, *l) + " (" + std::to_string(nl) + ")" : "-");
        line.push_back(b ? format_value(row.kind, *b) + " (" + std::to_string(nb) + ")" : "-");
        line.push_back(l && b ? format_ratio(cost_ratio(row.kind, *b, *l)) : "-");
      }
      t2.push_back(line);
    }
    std::vector<std::size_t> w2(t2[0].size(), 0);
    for (const auto& line : t2) {
      for (std::size_t i = 0; i < line.size(); ++i) w2[i] = std::max(w2[i], line[i].size());
    }
    by_placement << "\nBy placement (median over the runs made in it, run count in parentheses):\n\n";
    for (std::size_t li = 0; li < t2.size(); ++li) {
      by_placement << "|";
      for (std::size_t i = 0; i < t2[li].size(); ++i) {
        const std::string& c = t2[li][i];
        const std::string pad(w2[i] - c.size(), ' ');
        by_placement << " " << (i == 0 ? c + pad : pad + c) << " |";
      }
      by_placement << "\n";
      if (li == 0) {
        by_placement << "|";
        for (std::size_t i = 0; i < w2.size(); ++i) {
          by_placement << (i == 0 ? ":" : " ") << std::string(w2[i], '-') << (i == 0 ? " " : ":") << "|";
        }
        by_placement << "\n";
      }
    }
  }
  for (const auto& [run_id, by_t] : cells) {
    for (const auto& [t, c] : by_t) {
      for (const auto& r : c.ok) {
        if (r.value("drop_ratio", 0.0) > 0.001) {
          notes << "drops: " << t << " " << run_id << " dropped " << fmt("%.1f", 100 * r.value("drop_ratio", 0.0))
                << "% (full ring: the publisher never blocks)\n";
          break;
        }
      }
    }
  }
  {
    // Spinning sides that did not have their CPU to themselves: the machine was busy.
    std::vector<std::string> contended;
    int spinning_runs = 0;
    for (const auto& [run_id, by_t] : cells) {
      for (const auto& t : {std::string("limit"), std::string("bus")}) {
        auto it = by_t.find(t);
        if (it == by_t.end()) continue;
        for (const auto& [rep, r] : it->second.by_rep) {
          ++spinning_runs;
          const double pub = r.value("cpu_share_pub", -1.0);
          const double sub = r.value("cpu_share_sub", -1.0);
          if ((pub >= 0 && pub < 0.9) || (sub >= 0 && sub < 0.9)) {
            contended.push_back(t + " " + run_id + " #" + std::to_string(rep + 1) + " (" + fmt("%.2f", pub) + "/" +
                                fmt("%.2f", sub) + ")");
          }
        }
      }
    }
    if (!contended.empty()) {
      notes << "CPU contention: " << contended.size() << " of " << spinning_runs
            << " limit/bus runs had a spinning side on < 90% of its CPU (publisher/subscriber on-CPU share): ";
      for (std::size_t i = 0; i < contended.size(); ++i) notes << (i ? ", " : "") << contended[i];
      notes << "\n";
    }
  }
  {
    // bus's first lap through fresh rings (page faults), measured by peer_bus before its steady state.
    bool header = false;
    for (const auto& [run_id, label] : std::vector<std::pair<std::string, std::string>>{
             {"lat16", "one-way 16 B"}, {"lat4k", "one-way 4 KiB"}, {"rr16", "request/reply RTT 16 B"}}) {
      std::vector<double> p50, p99, p999;
      for (const auto& r : cells[run_id]["bus"].ok) {
        if (!r.contains("cold_p99_ns")) continue;
        p50.push_back(r["cold_p50_ns"].get<double>());
        p99.push_back(r["cold_p99_ns"].get<double>());
        p999.push_back(r["cold_p999_ns"].get<double>());
      }
      if (p99.empty()) continue;
      if (!header) {
        notes << "bus, first lap through fresh 4 MiB rings (first-touch page faults; the table is steady state):";
        header = true;
      }
      notes << " " << label << " p50 " << format_value(Kind::latency, median(p50)) << " p99 "
            << format_value(Kind::latency, median(p99)) << " p99.9 " << format_value(Kind::latency, median(p999)) << ";";
    }
    if (header) notes << "\n";
  }
  std::ostringstream tgt;
  tgt << "\nTargets:\n";
  for (const auto& t : targets) {
    tgt << "  [" << t["result"].get<std::string>() << "] " << t["target"].get<std::string>()
        << ": " << t["measured"].get<std::string>() << "\n";
  }
  std::ostringstream envs;
  envs << "\n" << env["mode"].get<std::string>() << " run, " << env["date_utc"].get<std::string>();
  if (!o.label.empty()) envs << ", " << o.label;
  envs << "; " << env["cpu_model"].get<std::string>() << ", " << env["cpus_online"].get<int>() << " CPUs, "
       << env.value("kernel", std::string("?")) << "\n"
       << "load average: " << env["loadavg_start"].get<std::string>() << " (start), "
       << env["loadavg_end"].get<std::string>() << " (end); " << env["pinning"].get<std::string>() << "\n";
  {
    std::vector<std::string> pp;
    for (const auto& [rep, r] : cells["lat16"]["limit"].by_rep) pp.push_back(format_value(Kind::latency, r.value("p50_ns", 0.0)));
    if (!pp.empty()) {
      envs << "limit 16 B one-way p50 per repetition:";
      for (const auto& v : pp) envs << " " << v;
      envs << " (this VM flips between ~75 and ~270 ns with vCPU placement)\n";
    }
  }
  if (!cross_check.empty()) envs << cross_check << "\n";
  if (!o.command.empty()) envs << "command: " << o.command << "\n";
  std::ostringstream errs;
  for (const auto& [run_id, by_t] : cells) {
    for (const auto& [t, c] : by_t) {
      for (const auto& e : c.errors) errs << "error: " << t << " " << run_id << ": " << e << "\n";
    }
  }

  const std::string report = md.str() + notes.str() + by_placement.str() + tgt.str() + envs.str() + errs.str();
  std::cout << "\n" << report << std::flush;
  {
    std::ofstream f(o.out + "/table.md");
    f << "# bus vs the limit, NATS and ZeroMQ\n\n" << report;
  }

  // ------------------------------------------------------------------------------ plot data
  {
    std::ofstream dat(o.out + "/lat16_percentiles.dat");
    dat << "# one-way latency, 16 B, ns: percentile  x=1/(1-p/100)  limit bus nats zmq (median over runs)\n";
    const double pcts[] = {10, 25, 50, 75, 90, 95, 99, 99.5, 99.9, 99.95, 99.99};
    for (const double p : pcts) {
      dat << p << " " << 1.0 / (1.0 - p / 100.0);
      for (const auto& t : kAllTransports) {
        std::vector<double> v;
        for (const auto& r : cells["lat16"][t].ok) {
          if (!r.contains("pcts")) continue;
          for (const auto& pv : r["pcts"]) {
            if (std::fabs(pv[0].get<double>() - p) < 1e-9) v.push_back(pv[1].get<double>());
          }
        }
        dat << " " << (v.empty() ? std::string("NaN") : fmt("%.0f", median(v)));
      }
      dat << "\n";
    }
    std::ofstream gp(o.out + "/latency16.gp");
    gp << "# gnuplot " << o.out << "/latency16.gp  (run.sh does this)\n"
       << "set terminal pngcairo size 1000,600 noenhanced\n"
       << "set output '" << o.out << "/latency16.png'\n"
       << "set title 'one-way latency, 16 B payload, two pinned processes (" << env["mode"].get<std::string>() << " run, "
       << env["date_utc"].get<std::string>() << ")'\n"
       << "set datafile missing 'NaN'\n"
       << "set logscale xy\n"
       << "set xtics ('p10' 1.111, 'p50' 2, 'p90' 10, 'p99' 100, 'p99.9' 1000, 'p99.99' 10000)\n"
       << "set xlabel 'percentile (RTT/2 of each round trip)'\nset ylabel 'one-way latency'\n"
       << "set yrange [30:*]\nset ytics ('30 ns' 30, '100 ns' 100, '300 ns' 300, '1 us' 1000, '10 us' 1e4, '100 us' 1e5, '1 ms' 1e6, '10 ms' 1e7)\n"
       << "set grid\nset key top left\n"
       << "plot for [c=3:6] '" << o.out << "/lat16_percentiles.dat' using 2:c with linespoints lw 2 title word('limit bus nats zmq', c-2)\n";
  }

  json results = {{"env", env}, {"rows", rows_json}, {"targets", targets}, {"raw", raw}, {"failures", failures}};
  {
    std::ofstream f(o.out + "/results.json");
    f << results.dump(1) << "\n";
  }
  std::cout << "\nwrote " << o.out << "/results.json, " << o.out << "/table.md, " << o.out << "/lat16_percentiles.dat\n";
  return failures == 0 ? 0 : 1;
}

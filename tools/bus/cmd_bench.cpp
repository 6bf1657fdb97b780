// cmd_bench.cpp — `bus bench SUBJECT`: a benchmark between real processes, after `nats bench`.
//
//   bus bench s                          1 publisher, 100,000 messages of 128 bytes
//   bus bench s --pub 2 --sub 3          2 publishers share the messages, 3 subscribers get them all
//   bus bench s --sub 2 --queue g        the 2 subscribers share the messages (queue group g)
//   bus bench s --latency                ping-pong between 2 processes: p50..max, one-way and RTT
//   bus bench s --request --sub 2        Connection::request() against 2 responders
//   ... --json                           one JSON object on stdout instead of the report
//
// This process is the coordinator: it re-executes its own binary (/proc/self/exe) once per
// publisher/subscriber (hidden flag --role, see bench_proto.hpp for the pipe protocol), waits
// until every subscriber is subscribed and every publisher connected, tells the publishers `go`,
// and once they finished tells the subscribers `done`. With 2 or more CPUs, publishers are pinned
// to the first half of the CPUs this process may use and subscribers to the second half.
//
// Throughput as nats bench computes it: a publisher's is messages / (its last publish - its
// first); a subscriber's is messages / (its last message - its first); an aggregate is the
// messages of all processes of a kind / (latest end - earliest start).
#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <functional>
#include <limits>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "bench_proto.hpp"
#include "cli_units.hpp"
#include "common.hpp"
#include "message_io.hpp"
#include "progress_bar.hpp"
#include "verbs.hpp"

namespace bus::cli {
namespace {

using json = nlohmann::json;
using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

constexpr std::uint64_t kMaxProcesses = 256;  // per role; the broker's max_clients limits first

// ------------------------------------------------------------------------------------- the plan

enum class Mode { pub, pubsub, latency, request };

const char* mode_name(Mode mode) {
  switch (mode) {
    case Mode::pub: return "pub";
    case Mode::pubsub: return "pubsub";
    case Mode::latency: return "latency";
    case Mode::request: return "request";
  }
  return "?";
}

// The CPUs this process may run on (its affinity mask), in order.
std::vector<int> allowed_cpus() {
  std::vector<int> cpus;
  cpu_set_t set;
  CPU_ZERO(&set);
  if (::sched_getaffinity(0, sizeof set, &set) != 0) return cpus;
  for (int cpu = 0; cpu < CPU_SETSIZE; ++cpu) {
    if (CPU_ISSET(cpu, &set)) cpus.push_back(cpu);
  }
  return cpus;
}

struct Plan {
  Mode mode = Mode::pub;
  std::uint64_t senders = 1;    ///< publishers, or the one pinger
  std::uint64_t receivers = 0;  ///< subscribers, echo or responders
  std::string queue;            ///< the receivers' queue group
  bool spin = false;            ///< receivers (and the pinger) busy-spin
  std::vector<int> send_cpus;   ///< empty: not pinned
  std::vector<int> recv_cpus;

  bool pinned() const { return !send_cpus.empty(); }
  const char* send_role() const { return mode == Mode::latency || mode == Mode::request ? "ping" : "pub"; }
  const char* recv_role() const { return mode == Mode::latency || mode == Mode::request ? "echo" : "sub"; }
  const char* wait_name() const { return spin ? "busy_spin" : "spin_then_sleep"; }
};

Plan make_plan(const BenchFlags& flags) {
  Plan plan;
  const auto cpus = allowed_cpus();
  if (flags.latency) {
    plan.mode = Mode::latency;
    plan.receivers = 1;
    // Busy spinning needs a CPU for each side; on one CPU it would wait for the scheduler.
    plan.spin = flags.spin || cpus.size() >= 2;
  } else if (flags.request) {
    plan.mode = Mode::request;
    plan.receivers = std::max<std::uint64_t>(flags.subs, 1);
    plan.spin = flags.spin;
  } else {
    plan.mode = flags.subs > 0 ? Mode::pubsub : Mode::pub;
    plan.senders = flags.pubs;
    plan.receivers = flags.subs;
    plan.spin = flags.spin;
  }
  plan.queue = flags.queue;
  if (plan.mode == Mode::request && plan.queue.empty()) plan.queue = kDefaultReplyQueue;
  if (!flags.no_pin && cpus.size() >= 2) {
    const std::size_t half = cpus.size() / 2;
    plan.send_cpus.assign(cpus.begin(), cpus.begin() + static_cast<std::ptrdiff_t>(half));
    plan.recv_cpus.assign(cpus.begin() + static_cast<std::ptrdiff_t>(half), cpus.end());
  }
  return plan;
}

// --------------------------------------------------------------------------------- the children

struct Child {
  std::string role;  // "pub", "sub", "ping", "echo"
  std::uint64_t index = 0;  // 1-based within the role
  int cpu = -1;
  std::uint64_t msgs = 0;  // what --msgs it was given
  pid_t pid = -1;
  int to_child = -1;    // its stdin
  int from_child = -1;  // its stdout
  std::string buffer;
  bool ready = false;
  bool eof = false;
  bool reaped = false;
  int wait_status = 0;
  std::optional<json> result;
  std::uint64_t progress = 0;

  std::string describe() const {
    const std::string_view kind = role == "pub"    ? "publisher"
                                  : role == "sub"  ? "subscriber"
                                  : role == "ping" ? "pinger"
                                                   : "echo";
    return "bench " + std::string(kind) + " " + std::to_string(index);
  }
};

void close_fd(int& fd) {
  if (fd >= 0) ::close(fd);
  fd = -1;
}

class Children {
 public:
  Children() = default;
  Children(const Children&) = delete;
  Children& operator=(const Children&) = delete;
  ~Children() { stop_all(); }

  std::vector<Child>& all() { return children_; }

  /// fork + exec of /proc/self/exe with `args` (argv[1]...), stdin/stdout piped to us.
  Status spawn(Child child, const std::vector<std::string>& args) {
    int in_pipe[2];   // we write, the child reads
    int out_pipe[2];  // the child writes, we read
    if (::pipe2(in_pipe, O_CLOEXEC) != 0) return os_error("pipe2");
    if (::pipe2(out_pipe, O_CLOEXEC) != 0) {
      ::close(in_pipe[0]);
      ::close(in_pipe[1]);
      return os_error("pipe2");
    }
    // Everything the child needs is prepared before fork: after it, only async-signal-safe calls.
    std::vector<std::string> argv_storage;
    argv_storage.reserve(args.size() + 1);
    argv_storage.emplace_back("bus");
    argv_storage.insert(argv_storage.end(), args.begin(), args.end());
    std::vector<char*> argv;
    for (auto& arg : argv_storage) argv.push_back(arg.data());
    argv.push_back(nullptr);
    const pid_t parent = ::getpid();

    const pid_t pid = ::fork();
    if (pid < 0) {
      for (int fd : {in_pipe[0], in_pipe[1], out_pipe[0], out_pipe[1]}) ::close(fd);
      return os_error("fork");
    }
    if (pid == 0) {
      ::prctl(PR_SET_PDEATHSIG, SIGKILL);  // never outlive the coordinator
      if (::getppid() != parent) ::_exit(127);
      ::signal(SIGINT, SIG_IGN);  // Ctrl-C is the coordinator's to handle (survives exec)
      if (::dup2(in_pipe[0], STDIN_FILENO) < 0 || ::dup2(out_pipe[1], STDOUT_FILENO) < 0) {
        ::_exit(127);
      }
      ::execv("/proc/self/exe", argv.data());
      static constexpr char kMessage[] = "bus: bench: cannot re-execute /proc/self/exe\n";
      (void)!::write(STDERR_FILENO, kMessage, sizeof kMessage - 1);
      ::_exit(127);
    }
    ::close(in_pipe[0]);
    ::close(out_pipe[1]);
    ::fcntl(out_pipe[0], F_SETFL, ::fcntl(out_pipe[0], F_GETFL) | O_NONBLOCK);
    child.pid = pid;
    child.to_child = in_pipe[1];
    child.from_child = out_pipe[0];
    children_.push_back(std::move(child));
    return {};
  }

  /// Writes `word` + newline to the stdin of every child with role `role`.
  void tell(std::string_view role, std::string_view word) {
    const std::string line = std::string(word) + "\n";
    for (auto& child : children_) {
      if (child.role != role || child.to_child < 0) continue;
      // A child that already exited (a subscriber that has seen every message) cannot read it:
      // EPIPE, ignored (SIGPIPE is ignored too).
      (void)!::write(child.to_child, line.data(), line.size());
    }
  }

  /// Reads what the children sent, waiting up to `wait`. An error a child reported, or a child
  /// that ended without reporting, is returned as the Error to exit with.
  std::optional<Error> pump(std::chrono::milliseconds wait) {
    std::vector<pollfd> fds;
    std::vector<Child*> owners;
    for (auto& child : children_) {
      if (child.eof) continue;
      fds.push_back({child.from_child, POLLIN, 0});
      owners.push_back(&child);
    }
    if (fds.empty()) {
      std::this_thread::sleep_for(wait);
      return std::nullopt;
    }
    const int ready = ::poll(fds.data(), fds.size(), static_cast<int>(wait.count()));
    if (ready <= 0) return std::nullopt;  // timeout, or EINTR (a signal: the caller looks)
    for (std::size_t i = 0; i < fds.size(); ++i) {
      if (fds[i].revents == 0) continue;
      if (auto error = read_from(*owners[i])) return error;
    }
    return std::nullopt;
  }

  /// Waits (pumping) until `done()` holds; an Error when a child failed, the deadline passed
  /// (naming `what`) or the user interrupted.
  std::optional<Error> wait_until(const std::function<bool()>& done, Clock::time_point deadline,
                                  const std::function<std::string()>& what,
                                  const std::function<void()>& tick = {}) {
    while (!done()) {
      if (stop_requested()) return make_error(Errc::closed, "bench interrupted");
      if (Clock::now() > deadline) return make_error(Errc::timeout, what());
      if (auto error = pump(100ms)) return error;
      if (tick) tick();
    }
    return std::nullopt;
  }

  /// Reaps every child that finished, waiting up to `timeout`; kills what is left.
  void reap_all(std::chrono::milliseconds timeout) {
    const auto deadline = Clock::now() + timeout;
    for (auto& child : children_) close_fd(child.to_child);  // EOF: "the coordinator is done"
    for (auto& child : children_) {
      while (!child.reaped && Clock::now() < deadline) {
        if (!try_reap(child)) std::this_thread::sleep_for(5ms);
      }
    }
    stop_all();
  }

  /// SIGKILLs and reaps every child still there, closes every pipe.
  void stop_all() {
    for (auto& child : children_) {
      if (!child.reaped && child.pid > 0) {
        ::kill(child.pid, SIGKILL);
        while (::waitpid(child.pid, &child.wait_status, 0) < 0 && errno == EINTR) {
        }
        child.reaped = true;
      }
      close_fd(child.to_child);
      close_fd(child.from_child);
    }
  }

 private:
  static Error os_error(const char* call) {
    return make_error(Errc::io_error,
                      std::string("bench: ") + call + " failed: " + std::strerror(errno));
  }

  static bool try_reap(Child& child) {
    if (child.reaped) return true;
    const pid_t done = ::waitpid(child.pid, &child.wait_status, WNOHANG);
    if (done == child.pid) child.reaped = true;
    return child.reaped;
  }

  std::optional<Error> read_from(Child& child) {
    char chunk[4096];
    for (;;) {
      const ssize_t n = ::read(child.from_child, chunk, sizeof chunk);
      if (n > 0) {
        child.buffer.append(chunk, static_cast<std::size_t>(n));
        continue;
      }
      if (n < 0 && errno == EINTR) continue;
      if (n == 0) child.eof = true;
      break;  // EOF, or EAGAIN: nothing more for now
    }
    for (auto nl = child.buffer.find('\n'); nl != std::string::npos; nl = child.buffer.find('\n')) {
      const std::string line = child.buffer.substr(0, nl);
      child.buffer.erase(0, nl + 1);
      if (auto error = handle_line(child, line)) return error;
    }
    if (child.eof && !child.result) return ended_early(child);
    return std::nullopt;
  }

  static std::optional<Error> handle_line(Child& child, const std::string& line) {
    const json event = json::parse(line, nullptr, /*allow_exceptions=*/false);
    if (event.is_discarded() || !event.is_object() || !event.contains("event")) {
      return make_error(Errc::protocol_error,
                        child.describe() + " sent an unreadable line: " + line.substr(0, 80));
    }
    const std::string kind = event.value("event", "");
    if (kind == "ready") {
      child.ready = true;
    } else if (kind == "progress") {
      child.progress = event.value("msgs", std::uint64_t{0});
    } else if (kind == "result") {
      child.result = event;
      child.progress = event.value("msgs", std::uint64_t{0});
    } else if (kind == "error") {
      return make_error(static_cast<Errc>(event.value("code", static_cast<int>(Errc::io_error))),
                        event.value("message", child.describe() + " failed"));
    }
    return std::nullopt;
  }

  // Its stdout ended before it reported: it crashed, was killed, or failed to start.
  std::optional<Error> ended_early(Child& child) {
    const auto deadline = Clock::now() + 1s;
    while (!try_reap(child) && Clock::now() < deadline) std::this_thread::sleep_for(5ms);
    std::string how = "ended";
    if (child.reaped && WIFEXITED(child.wait_status)) {
      how = "exited with code " + std::to_string(WEXITSTATUS(child.wait_status));
    } else if (child.reaped && WIFSIGNALED(child.wait_status)) {
      how = std::string("was killed by signal ") + std::to_string(WTERMSIG(child.wait_status)) +
            " (" + ::strsignal(WTERMSIG(child.wait_status)) + ")";
    }
    if (stop_requested()) return make_error(Errc::closed, "bench interrupted");
    return make_error(Errc::io_error, child.describe() + " " + how + " before reporting");
  }

  std::vector<Child> children_;
};


// ------------------------------------------------------------------------------------- numbers

std::string commas(double value) {
  return cli::commas(value > 0 ? static_cast<std::uint64_t>(std::llround(value)) : std::uint64_t{0});
}

// As natscli's HumanBytes(bytes, false): powers of 1024, two decimals, "KB"/"MB"/"GB".
std::string human_bytes(double bytes) {
  static constexpr const char* kUnits[] = {"B", "KB", "MB", "GB", "TB", "PB", "EB"};
  std::size_t unit = 0;
  while (bytes >= 1024.0 && unit + 1 < std::size(kUnits)) {
    bytes /= 1024.0;
    ++unit;
  }
  char text[48];
  std::snprintf(text, sizeof text, "%.2f %s", bytes, kUnits[unit]);
  return text;
}

// Pads `text` on the left to `width` columns ("µ" is two bytes but one column).
std::string pad_left(const std::string& text, std::size_t width) {
  std::size_t columns = 0;
  for (unsigned char c : text) columns += (c & 0xC0) != 0x80 ? 1 : 0;
  return columns >= width ? text : std::string(width - columns, ' ') + text;
}

// --------------------------------------------------------------------------------- measurements

struct Sample {
  std::uint64_t msgs = 0;
  std::uint64_t dropped = 0;
  std::int64_t start = 0;  // first publish / first message (ns, CLOCK_MONOTONIC)
  std::int64_t end = 0;    // last publish / last message
  int cpu = -1;

  double rate() const {
    return end > start ? static_cast<double>(msgs) * 1e9 / static_cast<double>(end - start) : 0.0;
  }
};

// The processes of one kind, as nats bench's SampleGroup.
struct Group {
  std::vector<Sample> samples;

  std::uint64_t msgs() const {
    std::uint64_t total = 0;
    for (const auto& s : samples) total += s.msgs;
    return total;
  }
  std::uint64_t dropped() const {
    std::uint64_t total = 0;
    for (const auto& s : samples) total += s.dropped;
    return total;
  }
  std::int64_t start() const {
    std::int64_t first = std::numeric_limits<std::int64_t>::max();
    for (const auto& s : samples) {
      if (s.msgs > 0) first = std::min(first, s.start);
    }
    return first;
  }
  std::int64_t end() const {
    std::int64_t last = 0;
    for (const auto& s : samples) {
      if (s.msgs > 0) last = std::max(last, s.end);
    }
    return last;
  }
  /// All messages over the time from the earliest start to the latest end.
  double rate() const {
    const std::int64_t first = start();
    const std::int64_t last = end();
    return last > first ? static_cast<double>(msgs()) * 1e9 / static_cast<double>(last - first)
                        : 0.0;
  }
  struct Spread {
    double min = 0, avg = 0, max = 0, stddev = 0;
  };
  Spread spread() const {
    Spread out;
    if (samples.empty()) return out;
    out.min = std::numeric_limits<double>::max();
    for (const auto& s : samples) {
      out.min = std::min(out.min, s.rate());
      out.max = std::max(out.max, s.rate());
      out.avg += s.rate();
    }
    out.avg /= static_cast<double>(samples.size());
    double variance = 0;
    for (const auto& s : samples) variance += (s.rate() - out.avg) * (s.rate() - out.avg);
    out.stddev = std::sqrt(variance / static_cast<double>(samples.size()));
    return out;
  }
};

// Round-trip percentiles (ns) as the pinger reported them.
struct Percentiles {
  std::uint64_t p50 = 0, p90 = 0, p99 = 0, p999 = 0, max = 0;

  static Percentiles from(const json& j) {
    Percentiles p;
    p.p50 = j.value("p50", std::uint64_t{0});
    p.p90 = j.value("p90", std::uint64_t{0});
    p.p99 = j.value("p99", std::uint64_t{0});
    p.p999 = j.value("p999", std::uint64_t{0});
    p.max = j.value("max", std::uint64_t{0});
    return p;
  }
  /// One way: half the round trip (rounded up, so a measured trip is never 0).
  Percentiles halved() const {
    auto half = [](std::uint64_t v) { return (v + 1) / 2; };
    return {half(p50), half(p90), half(p99), half(p999), half(max)};
  }
  json to_json() const {
    return {{"p50", p50}, {"p90", p90}, {"p99", p99}, {"p999", p999}, {"max", max}};
  }
};

struct Outcome {
  Group senders;
  Group receivers;
  std::optional<Percentiles> rtt;  // --latency, --request
};

Outcome collect(std::vector<Child>& children, const Plan& plan) {
  Outcome out;
  for (const auto& child : children) {
    const json& r = *child.result;
    Sample s;
    s.msgs = r.value("msgs", std::uint64_t{0});
    s.dropped = r.value("dropped", std::uint64_t{0});
    s.cpu = child.cpu;
    if (child.role == plan.send_role()) {
      s.start = r.value("start_ns", std::int64_t{0});
      s.end = r.value("end_ns", std::int64_t{0});
      out.senders.samples.push_back(s);
      if (r.contains("rtt_ns")) out.rtt = Percentiles::from(r["rtt_ns"]);
    } else {
      s.start = r.value("first_ns", std::int64_t{0});
      s.end = r.value("last_ns", std::int64_t{0});
      out.receivers.samples.push_back(s);
    }
  }
  return out;
}

// ---------------------------------------------------------------------------------------- report

std::string cpu_list(const std::vector<int>& cpus) {
  std::string out;
  for (int cpu : cpus) out += (out.empty() ? "" : ",") + std::to_string(cpu);
  return out;
}

void print_header(const BenchFlags& flags, const Plan& plan) {
  const char* title = plan.mode == Mode::pub       ? "publisher"
                      : plan.mode == Mode::pubsub  ? "pub/sub"
                      : plan.mode == Mode::latency ? "latency"
                                                   : "request/reply";
  std::string details = "subject=" + flags.subject + ", msgs=" + commas(flags.msgs) +
                        ", msgsize=" + commas(flags.size) + " B";
  if (plan.mode == Mode::latency) {
    details += ", pinger=1, echo=1";
  } else if (plan.mode == Mode::request) {
    details += ", requesters=1, responders=" + std::to_string(plan.receivers);
  } else {
    details += ", pubs=" + std::to_string(plan.senders) + ", subs=" + std::to_string(plan.receivers);
  }
  if (!plan.queue.empty()) details += ", queue=" + plan.queue;
  if (plan.receivers > 0) details += ", wait=" + std::string(plan.wait_name());
  details += ", bus=" + flags.client.bus_name;
  details += plan.pinned() ? ", cpus=" + std::string(plan.send_role()) + ":" +
                                 cpu_list(plan.send_cpus) + " " + plan.recv_role() + ":" +
                                 cpu_list(plan.recv_cpus)
                           : std::string(", pinned=no");
  std::printf("Starting bus %s benchmark [%s]\n\n", title, details.c_str());
  std::fflush(stdout);
}

void print_group(const char* label, const Group& group, std::uint64_t size, bool show_drops) {
  const double rate = group.rate();
  std::printf(" %s stats: %s msgs/sec ~ %s/sec\n", label, commas(rate).c_str(),
              human_bytes(rate * static_cast<double>(size)).c_str());
  if (group.samples.size() < 2) return;
  for (std::size_t i = 0; i < group.samples.size(); ++i) {
    const Sample& s = group.samples[i];
    std::string count = commas(s.msgs) + " msgs";
    if (show_drops && s.dropped > 0) count += ", " + commas(s.dropped) + " dropped";
    std::printf("  [%zu] %s msgs/sec ~ %s/sec (%s)\n", i + 1, commas(s.rate()).c_str(),
                human_bytes(s.rate() * static_cast<double>(size)).c_str(), count.c_str());
  }
  const auto spread = group.spread();
  std::printf("  min %s | avg %s | max %s | stddev %s msgs\n", commas(spread.min).c_str(),
              commas(spread.avg).c_str(), commas(spread.max).c_str(),
              commas(spread.stddev).c_str());
}

void print_throughput(const BenchFlags& flags, const Plan& plan, const Outcome& out) {
  const double size = static_cast<double>(flags.size);
  if (plan.mode == Mode::pubsub) {
    const std::int64_t first = std::min(out.senders.start(), out.receivers.start());
    const std::int64_t last = std::max(out.senders.end(), out.receivers.end());
    const double both = last > first ? static_cast<double>(out.senders.msgs() + out.receivers.msgs()) *
                                           1e9 / static_cast<double>(last - first)
                                     : 0.0;
    std::printf("Pub/Sub stats: %s msgs/sec ~ %s/sec\n", commas(both).c_str(),
                human_bytes(both * size).c_str());
  }
  print_group("Pub", out.senders, flags.size, false);
  if (plan.mode != Mode::pubsub) return;
  print_group("Sub", out.receivers, flags.size, true);
  const std::uint64_t received = out.receivers.msgs();
  const std::uint64_t dropped = out.receivers.dropped();
  if (!plan.queue.empty()) {
    std::printf(" Queue group [%s]: %s of %s msgs delivered\n", plan.queue.c_str(),
                commas(received).c_str(), commas(out.senders.msgs()).c_str());
  } else {
    std::printf(" Received: %s of %s msgs (%s subscriber%s x %s)\n", commas(received).c_str(),
                commas(out.senders.msgs() * plan.receivers).c_str(),
                std::to_string(plan.receivers).c_str(), plan.receivers == 1 ? "" : "s",
                commas(out.senders.msgs()).c_str());
  }
  if (dropped > 0) {
    std::printf(" Dropped: %s msgs (slow consumer: a subscriber's ring was full)\n",
                commas(dropped).c_str());
  }
}

void print_latency(const BenchFlags& flags, const Plan& plan, const Outcome& out) {
  const Percentiles rtt = out.rtt.value_or(Percentiles{});
  const Percentiles one_way = rtt.halved();
  const double rate = out.senders.rate();
  std::printf("%s: %s round trips of %s B, %s round trips/sec\n",
              plan.mode == Mode::latency ? "Latency" : "Request/reply", commas(flags.msgs).c_str(),
              commas(flags.size).c_str(), commas(rate).c_str());
  auto cell = [](std::uint64_t ns) {
    return pad_left(format_rtt(std::chrono::nanoseconds(static_cast<std::int64_t>(ns))), 10);
  };
  std::printf("            %10s%10s%10s%10s%10s\n", "p50", "p90", "p99", "p99.9", "max");
  for (const auto& [label, p] : {std::pair{"one-way", one_way}, std::pair{"RTT", rtt}}) {
    std::printf("  %-10s%s%s%s%s%s\n", label, cell(p.p50).c_str(), cell(p.p90).c_str(),
                cell(p.p99).c_str(), cell(p.p999).c_str(), cell(p.max).c_str());
  }
  if (plan.mode == Mode::request && out.receivers.samples.size() > 1) {
    std::string shares;
    for (std::size_t i = 0; i < out.receivers.samples.size(); ++i) {
      shares += (i == 0 ? "" : ", ") + std::string("[") + std::to_string(i + 1) + "] " +
                commas(out.receivers.samples[i].msgs);
    }
    std::printf(" Requests answered per responder (with warm-up): %s\n", shares.c_str());
  }
  std::printf(" (one-way = RTT/2; the first %s round trips warmed up and are not counted)\n",
              commas(warmup_round_trips(flags.msgs)).c_str());
}

json group_json(const Group& group, std::uint64_t size, bool receivers) {
  json rows = json::array();
  for (const auto& s : group.samples) {
    json row = {{"msgs", s.msgs},
                {"msgs_per_s", s.rate()},
                {"bytes_per_s", s.rate() * static_cast<double>(size)},
                {"cpu", s.cpu}};
    if (receivers) row["dropped"] = s.dropped;
    rows.push_back(row);
  }
  return rows;
}

json make_json(const BenchFlags& flags, const Plan& plan, const Outcome& out) {
  const double size = static_cast<double>(flags.size);
  json j = {
      {"mode", mode_name(plan.mode)},
      {"subject", flags.subject},
      {"bus", flags.client.bus_name},
      {"msgs", flags.msgs},
      {"size", flags.size},
      {"publishers", plan.senders},
      {"subscribers", plan.receivers},
      {"queue", plan.queue.empty() ? json(nullptr) : json(plan.queue)},
      {"wait", plan.receivers > 0 ? json(plan.wait_name()) : json(nullptr)},
      {"pinned", plan.pinned()},
      {"pub_msgs_per_s", out.senders.rate()},
      {"pub_bytes_per_s", out.senders.rate() * size},
      {"sub_msgs_per_s", out.receivers.rate()},
      {"sub_bytes_per_s", out.receivers.rate() * size},
      {"published", out.senders.msgs()},
      {"received", out.receivers.msgs()},
      {"dropped", out.receivers.dropped()},
      {"pubs", group_json(out.senders, flags.size, false)},
      {"subs", group_json(out.receivers, flags.size, true)},
  };
  if (out.rtt) {
    j["latency_ns"] = out.rtt->halved().to_json();
    j["rtt_ns"] = out.rtt->to_json();
    j["warmup"] = warmup_round_trips(flags.msgs);
  }
  return j;
}

// ----------------------------------------------------------------------------------- the verb

int fail(Children& children, ProgressBar& bar, const Error& error) {
  bar.clear();
  children.stop_all();
  return report(error);
}

int run_bench(BenchFlags& flags) {
  if (!flags.role.empty()) return run_bench_role(flags);

  if (!flags.stream.empty()) return run_stream_bench(flags);
  if (flags.latency && flags.request) {
    return report_usage("--latency and --request are two different benchmarks: pick one");
  }
  if ((flags.latency || flags.request) && flags.pubs != 1) {
    return report_usage(std::string(flags.latency ? "--latency" : "--request") +
                        " uses one pinger process: --pub must be 1");
  }
  if (flags.latency && flags.subs > 1) {
    return report_usage("--latency uses one echo process: --sub must be 0 or 1 "
                        "(--request --sub M measures against M responders)");
  }
  if (flags.msgs < flags.pubs) {
    return report_usage("--msgs: '" + std::to_string(flags.msgs) + "' is not a whole number of at least --pub (" +
                        std::to_string(flags.pubs) + ")");
  }
  if (auto valid = validate_publish_subject(flags.subject); !valid) return report(valid.error());

  {  // The broker is there, and the message fits.
    auto conn = connect(flags.client, "bus bench");
    if (!conn) return report(conn.error());
    if (flags.size > conn->max_payload()) {
      return report(make_error(Errc::payload_too_large,
                               "--size " + std::to_string(flags.size) +
                                   " bytes exceeds the bus's max_payload of " +
                                   std::to_string(conn->max_payload()) + " bytes"));
    }
    (void)conn->close();
  }

  const Plan plan = make_plan(flags);

  install_stop_signals();
  ::signal(SIGPIPE, SIG_IGN);  // a child that exited early closed its stdin

  const bool show_progress = !flags.json && ::isatty(STDERR_FILENO) == 1;
  ProgressBar bar(show_progress, flags.msgs,
                  plan.mode == Mode::latency || plan.mode == Mode::request ? "Round trips"
                                                                           : "Publishing");
  Children children;
  std::vector<std::string> common = {"bench",     flags.subject,
                                     "--bus",     flags.client.bus_name,
                                     "--timeout", std::to_string(flags.client.timeout.count()) + "ns",
                                     "--size",    std::to_string(flags.size)};
  if (!plan.queue.empty()) common.insert(common.end(), {"--queue", plan.queue});
  if (plan.spin) common.emplace_back("--spin");
  if (plan.mode == Mode::latency) common.emplace_back("--latency");
  if (plan.mode == Mode::request) common.emplace_back("--request");

  auto start_child = [&](const char* role, std::uint64_t index, std::uint64_t msgs,
                         const std::vector<int>& cpus) -> Status {
    Child child;
    child.role = role;
    child.index = index;
    child.msgs = msgs;
    child.cpu = cpus.empty() ? -1 : cpus[(index - 1) % cpus.size()];
    std::vector<std::string> args = common;
    args.insert(args.end(), {"--role", role, "--index", std::to_string(index), "--msgs",
                             std::to_string(msgs)});
    if (child.cpu >= 0) args.insert(args.end(), {"--cpu", std::to_string(child.cpu)});
    if (show_progress && child.role == plan.send_role()) args.emplace_back("--progress");
    return children.spawn(std::move(child), args);
  };
  // Subscribers first (they must be listening before anything is published), then publishers;
  // all start up in parallel, but nobody publishes before `go`.
  for (std::uint64_t i = 1; i <= plan.receivers; ++i) {
    if (auto started = start_child(plan.recv_role(), i, flags.msgs, plan.recv_cpus); !started) {
      return fail(children, bar, started.error());
    }
  }
  for (std::uint64_t i = 1; i <= plan.senders; ++i) {
    const std::uint64_t share = flags.msgs / plan.senders + (i <= flags.msgs % plan.senders ? 1 : 0);
    if (auto started = start_child(plan.send_role(), i, share, plan.send_cpus); !started) {
      return fail(children, bar, started.error());
    }
  }

  auto& all = children.all();
  auto all_of = [&](const std::function<bool(const Child&)>& pred, std::string_view role) {
    return std::all_of(all.begin(), all.end(),
                       [&](const Child& c) { return (!role.empty() && c.role != role) || pred(c); });
  };
  auto first_not = [&](const std::function<bool(const Child&)>& pred) -> std::string {
    for (const auto& c : all) {
      if (!pred(c)) return c.describe();
    }
    return "a bench process";
  };
  const auto ready_timeout = 2 * flags.client.timeout + std::chrono::seconds(5);
  const auto is_ready = [](const Child& c) { return c.ready; };
  const auto has_result = [](const Child& c) { return c.result.has_value(); };

  if (auto error = children.wait_until(
          [&] { return all_of(is_ready, ""); }, Clock::now() + ready_timeout,
          [&] {
            return first_not(is_ready) + " was not ready within " +
                   tools::format_duration(std::chrono::duration_cast<std::chrono::nanoseconds>(ready_timeout));
          })) {
    return fail(children, bar, *error);
  }
  // Only now: an error of a child while subscribing (a bad queue group) stays one line.
  if (!flags.json) print_header(flags, plan);

  children.tell(plan.send_role(), "go");
  auto draw = [&] {
    std::uint64_t done = 0;
    for (const auto& c : all) {
      if (c.role == plan.send_role()) done += c.progress;
    }
    bar.draw(done);
  };
  if (auto error = children.wait_until([&] { return all_of(has_result, plan.send_role()); },
                                       Clock::time_point::max(), [] { return std::string(); },
                                       draw)) {
    return fail(children, bar, *error);
  }
  bar.clear();

  children.tell(plan.recv_role(), "done");
  const auto finish_timeout = std::chrono::duration_cast<std::chrono::nanoseconds>(
      kMaxAfterDone + flags.client.timeout + std::chrono::seconds(5));
  if (auto error = children.wait_until(
          [&] { return all_of(has_result, ""); }, Clock::now() + finish_timeout,
          [&] {
            return first_not(has_result) + " did not finish within " +
                   tools::format_duration(finish_timeout) + " of the end of publishing";
          })) {
    return fail(children, bar, *error);
  }
  children.reap_all(5s);

  const Outcome outcome = collect(all, plan);
  if (flags.json) {
    std::printf("%s\n", make_json(flags, plan, outcome).dump().c_str());
  } else if (plan.mode == Mode::latency || plan.mode == Mode::request) {
    print_latency(flags, plan, outcome);
  } else {
    print_throughput(flags, plan, outcome);
  }
  std::fflush(stdout);
  return kExitOk;
}

}  // namespace

VerbRunner setup_bench(CLI::App& command) {
  auto flags = std::make_shared<BenchFlags>();
  command.add_option("SUBJECT", flags->subject, "Subject to benchmark on (no wildcards)")
      ->type_name("")
      ->required();
  command.add_option("--pub", flags->pubs, "Publisher processes (the messages are split)")
      ->type_name("N")
      ->check(tools::count_in_range(1, kMaxProcesses))
      ->capture_default_str();
  command.add_option("--sub", flags->subs,
                     "Subscriber processes (each gets every message; --request: responders)")
      ->type_name("M")
      ->check(tools::count_in_range(0, kMaxProcesses))
      ->capture_default_str();
  command.add_option("--msgs", flags->msgs, "Messages to publish in all (or round trips)")
      ->type_name("K")
      ->check(tools::count_in_range(1))
      ->capture_default_str();
  tools::add_size_option(command, "--size", flags->size, "Payload size, e.g. 128, 1KiB");
  command.add_flag("--json", flags->json, "Print one JSON object on stdout instead of the report");
  command.add_flag("--latency", flags->latency,
                   "Round-trip latency between a pinger and an echo process (p50..max)");
  command.add_flag("--request", flags->request,
                   "Request/reply round trips (Connection::request) against --sub responders");
  command.add_option("--queue", flags->queue,
                     "Subscribers (responders) join this queue group and share the messages")
      ->type_name("GROUP");
  command.add_option("--stream", flags->stream,
                     "Acknowledged publishes into this stream (which must capture SUBJECT), then a replay of them")
      ->type_name("NAME");
  command.add_flag("--spin", flags->spin,
                   "Subscribers busy-spin (WaitStrategy::busy_spin) instead of spin-then-sleep");
  command.add_flag("--no-pin", flags->no_pin, "Do not pin the processes to CPUs");
  add_client_flags(command, flags->client,
                   {"How long each call to the broker waits for its answer, and each round trip for its reply "
                    "(--latency, --request), e.g. 500ms",
                    true,
                    "Retry the first connection this long while no broker serves the bus, e.g. 2s (default: fail "
                    "at once); the benchmark processes start once it answered"});
  // Hidden: how the coordinator starts its publisher/subscriber processes (bench_proto.hpp).
  command.add_option("--role", flags->role)->group("");
  command.add_option("--index", flags->index)->group("");
  command.add_option("--cpu", flags->cpu)->group("");
  command.add_flag("--progress", flags->progress)->group("");
  return [flags] { return run_bench(*flags); };
}

}  // namespace bus::cli

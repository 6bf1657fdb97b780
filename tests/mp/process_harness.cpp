// process_harness.cpp — see process_harness.hpp.
#include "process_harness.hpp"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <stdlib.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <atomic>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <map>

extern char** environ;

namespace bus::test {
namespace {

using Clock = std::chrono::steady_clock;

// Longest single sleep inside a wait: bounds how late we notice an exit whose pipes stay open
// (e.g. inherited by a grandchild), without spinning.
constexpr auto kPumpSlice = std::chrono::milliseconds(10);

void set_nonblocking(int fd) { ::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) | O_NONBLOCK); }

std::chrono::milliseconds remaining(Clock::time_point deadline) {
  const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
  return left.count() > 0 ? left : std::chrono::milliseconds(0);
}

ExitStatus decode(int raw) {
  ExitStatus s;
  if (WIFEXITED(raw)) {
    s.exited = true;
    s.code = WEXITSTATUS(raw);
  } else if (WIFSIGNALED(raw)) {
    s.signal = WTERMSIG(raw);
  }
  return s;
}

// Splits `text` into lines; the trailing fragment counts only when `complete` (stream ended).
std::vector<std::string> split_lines(const std::string& text, bool complete) {
  std::vector<std::string> lines;
  std::size_t start = 0;
  while (true) {
    const auto end = text.find('\n', start);
    if (end == std::string::npos) break;
    lines.emplace_back(text, start, end - start);
    start = end + 1;
  }
  if (complete && start < text.size()) lines.emplace_back(text, start);
  return lines;
}

std::string tail(const std::string& text, std::size_t max = 4000) {
  return text.size() <= max ? text : "..." + text.substr(text.size() - max);
}

}  // namespace

std::string ExitStatus::describe() const {
  if (exited) return "exit " + std::to_string(code);
  if (signal != 0) return std::string("killed by signal ") + std::to_string(signal) + " (" + ::strsignal(signal) + ")";
  return "unknown status";
}

// ------------------------------------------------------------------------------- ChildProcess

ChildProcess ChildProcess::spawn(std::vector<std::string> argv, const Env& env) {
  ChildProcess child;
  child.argv_ = std::move(argv);
  if (child.argv_.empty()) return child;

  // Everything the child needs is built before fork: between fork and exec a child of a
  // multi-threaded process (the tests run brokers and dispatch threads) may only make
  // async-signal-safe calls.
  std::vector<char*> args;
  for (auto& a : child.argv_) args.push_back(a.data());
  args.push_back(nullptr);

  std::map<std::string, std::string> merged;
  for (char** e = environ; e != nullptr && *e != nullptr; ++e) {
    const std::string entry(*e);
    const auto eq = entry.find('=');
    if (eq != std::string::npos) merged[entry.substr(0, eq)] = entry.substr(eq + 1);
  }
  for (const auto& [k, v] : env) merged[k] = v;
  std::vector<std::string> env_strings;
  for (const auto& [k, v] : merged) env_strings.push_back(k + "=" + v);
  std::vector<char*> envp;
  for (auto& s : env_strings) envp.push_back(s.data());
  envp.push_back(nullptr);

  int out_pipe[2];
  int err_pipe[2];
  if (::pipe2(out_pipe, O_CLOEXEC) != 0) return child;
  if (::pipe2(err_pipe, O_CLOEXEC) != 0) {
    ::close(out_pipe[0]);
    ::close(out_pipe[1]);
    return child;
  }
  const int dev_null = ::open("/dev/null", O_RDONLY | O_CLOEXEC);

  const pid_t pid = ::fork();
  if (pid == 0) {
    // Child: stdin from /dev/null (so `bus pub` without BODY never reads the test's stdin).
    if (dev_null >= 0) ::dup2(dev_null, STDIN_FILENO);
    ::dup2(out_pipe[1], STDOUT_FILENO);
    ::dup2(err_pipe[1], STDERR_FILENO);
    sigset_t none;
    sigemptyset(&none);
    ::sigprocmask(SIG_SETMASK, &none, nullptr);
    ::signal(SIGPIPE, SIG_DFL);
    ::execve(args[0], args.data(), envp.data());
    const char* what = "process_harness: exec failed: ";
    (void)!::write(STDERR_FILENO, what, std::strlen(what));
    (void)!::write(STDERR_FILENO, args[0], std::strlen(args[0]));
    (void)!::write(STDERR_FILENO, "\n", 1);
    ::_exit(127);
  }
  if (dev_null >= 0) ::close(dev_null);
  ::close(out_pipe[1]);
  ::close(err_pipe[1]);
  if (pid < 0) {
    ::close(out_pipe[0]);
    ::close(err_pipe[0]);
    return child;
  }
  child.pid_ = pid;
  child.out_fd_ = out_pipe[0];
  child.err_fd_ = err_pipe[0];
  set_nonblocking(child.out_fd_);
  set_nonblocking(child.err_fd_);
  return child;
}

ChildProcess::ChildProcess(ChildProcess&& other) noexcept { *this = std::move(other); }

ChildProcess& ChildProcess::operator=(ChildProcess&& other) noexcept {
  if (this == &other) return *this;
  reset();
  pid_ = std::exchange(other.pid_, -1);
  argv_ = std::move(other.argv_);
  out_fd_ = std::exchange(other.out_fd_, -1);
  err_fd_ = std::exchange(other.err_fd_, -1);
  out_ = std::move(other.out_);
  err_ = std::move(other.err_);
  status_ = std::exchange(other.status_, std::nullopt);
  stopped_ = std::exchange(other.stopped_, false);
  return *this;
}

ChildProcess::~ChildProcess() { reset(); }

void ChildProcess::reset() {
  if (pid_ > 0 && !status_) {
    ::kill(pid_, SIGKILL);  // also ends a stopped child
    int raw = 0;
    while (::waitpid(pid_, &raw, 0) < 0 && errno == EINTR) {
    }
    status_ = decode(raw);
  }
  close_fds();
  pid_ = -1;
}

void ChildProcess::close_fds() {
  if (out_fd_ >= 0) ::close(out_fd_);
  if (err_fd_ >= 0) ::close(err_fd_);
  out_fd_ = err_fd_ = -1;
}

void ChildProcess::poll_status(bool untraced) {
  if (pid_ <= 0 || status_) return;
  int raw = 0;
  const pid_t r = ::waitpid(pid_, &raw, WNOHANG | (untraced ? WUNTRACED : 0));
  if (r == pid_) {
    if (WIFSTOPPED(raw)) {
      stopped_ = true;
    } else if (WIFEXITED(raw) || WIFSIGNALED(raw)) {
      status_ = decode(raw);
      stopped_ = false;
    }
  }
}

void ChildProcess::pump() { pump_for(std::chrono::milliseconds(0)); }

void ChildProcess::pump_for(std::chrono::milliseconds wait) {
  pollfd fds[2];
  int n = 0;
  if (out_fd_ >= 0) fds[n++] = pollfd{out_fd_, POLLIN, 0};
  if (err_fd_ >= 0) fds[n++] = pollfd{err_fd_, POLLIN, 0};
  if (n == 0) {
    if (wait.count() > 0 && !status_) ::usleep(static_cast<useconds_t>(std::chrono::microseconds(wait).count()));
    return;
  }
  const int ready = ::poll(fds, static_cast<nfds_t>(n), static_cast<int>(wait.count()));
  if (ready <= 0) return;
  for (int i = 0; i < n; ++i) {
    if (fds[i].revents == 0) continue;
    int& fd = fds[i].fd == out_fd_ ? out_fd_ : err_fd_;
    std::string& buffer = fds[i].fd == out_fd_ ? out_ : err_;
    char chunk[16384];
    while (true) {
      const ssize_t got = ::read(fd, chunk, sizeof chunk);
      if (got > 0) {
        buffer.append(chunk, static_cast<std::size_t>(got));
        continue;
      }
      if (got < 0 && errno == EINTR) continue;
      if (got < 0 && errno == EAGAIN) break;
      ::close(fd);  // EOF (every writer is gone) or a dead pipe
      fd = -1;
      break;
    }
  }
}

std::vector<std::string> ChildProcess::lines(Stream stream) const {
  return split_lines(output(stream), !stream_open(stream));
}

std::optional<std::string> ChildProcess::wait_for_line_if(Stream stream, const LinePredicate& predicate,
                                                          std::chrono::milliseconds timeout) {
  const auto deadline = Clock::now() + timeout;
  while (true) {
    pump();
    for (auto& line : lines(stream)) {
      if (predicate(line)) return line;
    }
    if (!stream_open(stream)) return std::nullopt;  // the writer is gone: nothing more comes
    const auto left = remaining(deadline);
    if (left.count() == 0) return std::nullopt;
    pump_for(std::min<std::chrono::milliseconds>(left, 100ms));
  }
}

std::optional<std::string> ChildProcess::wait_for_line(Stream stream, std::string_view substring,
                                                       std::chrono::milliseconds timeout) {
  return wait_for_line_if(
      stream, [&](std::string_view line) { return line.find(substring) != std::string_view::npos; },
      timeout);
}

bool ChildProcess::wait_for_lines(Stream stream, std::size_t count, std::chrono::milliseconds timeout) {
  const auto deadline = Clock::now() + timeout;
  while (true) {
    pump();
    if (lines(stream).size() >= count) return true;
    if (!stream_open(stream)) return false;
    const auto left = remaining(deadline);
    if (left.count() == 0) return false;
    pump_for(std::min<std::chrono::milliseconds>(left, 100ms));
  }
}

std::optional<ExitStatus> ChildProcess::wait_exit(std::chrono::milliseconds timeout) {
  if (pid_ <= 0) return std::nullopt;
  const auto deadline = Clock::now() + timeout;
  while (!status_) {
    poll_status(false);
    if (status_) break;
    const auto left = remaining(deadline);
    if (left.count() == 0) {
      pump();
      return std::nullopt;
    }
    // Keep draining the pipes so a chatty child never blocks on a full one.
    pump_for(std::min<std::chrono::milliseconds>(left, kPumpSlice));
  }
  // The child is gone: collect what is left in the pipes (bounded, in case a grandchild
  // inherited them and keeps them open).
  const auto drain_deadline = Clock::now() + 500ms;
  while ((out_fd_ >= 0 || err_fd_ >= 0) && Clock::now() < drain_deadline) pump_for(kPumpSlice);
  return status_;
}

bool ChildProcess::wait_stopped(std::chrono::milliseconds timeout) {
  if (pid_ <= 0) return false;
  const auto deadline = Clock::now() + timeout;
  while (true) {
    if (stopped_) return true;
    poll_status(true);
    if (stopped_) return true;
    if (status_) return false;
    const auto left = remaining(deadline);
    if (left.count() == 0) return false;
    pump_for(std::min<std::chrono::milliseconds>(left, kPumpSlice));
  }
}

bool ChildProcess::kill(int signal) {
  if (pid_ <= 0 || status_) return false;
  if (::kill(pid_, signal) != 0) return false;
  if (signal == SIGKILL || signal == SIGCONT) stopped_ = false;
  return true;
}

std::string ChildProcess::describe() const {
  std::string text = "[";
  for (const auto& a : argv_) {
    if (text.size() > 1) text += ' ';
    text += a.size() > 200 ? a.substr(0, 200) + "..." : a;
  }
  text += "] pid " + std::to_string(pid_);
  if (status_) text += ", " + status_->describe();
  text += "\n--- stdout ---\n" + tail(out_) + "\n--- stderr ---\n" + tail(err_);
  return text;
}

// ------------------------------------------------------------------------------------ paths

std::string busd_path() { return std::string(BUS_BIN_DIR) + "/busd"; }
std::string bus_cli_path() { return std::string(BUS_BIN_DIR) + "/bus"; }
std::string test_peer_path() { return BUS_TEST_HELPER; }

std::string unique_bus_name() {
  static std::atomic<int> counter{0};
  return "t-" + std::to_string(::getpid()) + "-" + std::to_string(counter.fetch_add(1));
}

std::string segment_path(std::string_view bus_name) { return "/dev/shm/bus." + std::string(bus_name); }

// ----------------------------------------------------------------------------- BrokerProcess

BrokerProcess::BrokerProcess(std::string bus_name, std::vector<std::string> extra_flags,
                             std::chrono::milliseconds ready_timeout)
    : bus_name_(std::move(bus_name)) {
  std::vector<std::string> argv{busd_path(), "--bus", bus_name_};
  argv.insert(argv.end(), extra_flags.begin(), extra_flags.end());
  process_ = ChildProcess::spawn(std::move(argv));
  if (!process_.started()) return;
  ready_ = process_.wait_for_line(Stream::err, "serving bus", ready_timeout).has_value();
}

BrokerProcess::~BrokerProcess() {
  if (process_.started()) {
    // A broker that served its bus must leave cleanly: SIGTERM -> exit 0 (also catches a busd
    // that crashed during the test, or that a sanitizer failed at exit).
    const bool was_running = !process_.exited();
    const bool stopped_by_test = stop_requested_;
    const auto status = stop(5s);
    if (!status) {
      ADD_FAILURE() << "busd did not exit within 5 s of SIGTERM: " << process_.describe();
      process_.kill(SIGKILL);
      (void)process_.wait_exit(5s);
    } else if (ready_ && !status->success() && (was_running || !stopped_by_test)) {
      ADD_FAILURE() << "busd did not exit 0 after SIGTERM: " << process_.describe();
    }
  }
  // A broker that died left its segment: do not leak it into /dev/shm. (Only a broker that got
  // ready created one; a refused second busd must not remove the first one's segment.)
  if (ready_ && !crashed_ && !bus_name_.empty()) ::unlink(segment_path(bus_name_).c_str());
}

bool BrokerProcess::crash(std::chrono::milliseconds timeout) {
  stop_requested_ = true;
  crashed_ = true;
  if (process_.exited()) return true;
  return process_.kill(SIGKILL) && process_.wait_exit(timeout).has_value();
}

std::optional<ExitStatus> BrokerProcess::stop(std::chrono::milliseconds timeout) {
  stop_requested_ = true;
  if (process_.exited()) return process_.status();
  process_.kill(SIGTERM);
  return process_.wait_exit(timeout);
}

ChildProcess spawn_peer(std::vector<std::string> args, const ChildProcess::Env& env) {
  args.insert(args.begin(), test_peer_path());
  return ChildProcess::spawn(std::move(args), env);
}

ChildProcess spawn_cli(std::vector<std::string> args, const ChildProcess::Env& env) {
  args.insert(args.begin(), bus_cli_path());
  return ChildProcess::spawn(std::move(args), env);
}

std::vector<std::string> receive(Subscription& sub, std::size_t count, std::chrono::milliseconds per_message) {
  std::vector<std::string> got;
  while (got.size() < count) {
    auto msg = sub.next(per_message);
    if (!msg) break;
    got.push_back(msg->data);
  }
  return got;
}

StoreDir::StoreDir() {
  char tmpl[] = "/tmp/bus-store-mp-XXXXXX";
  const char* made = ::mkdtemp(tmpl);
  if (made == nullptr) ADD_FAILURE() << "mkdtemp: " << std::strerror(errno);
  path = made != nullptr ? made : "";
}

StoreDir::~StoreDir() {
  std::error_code ec;
  if (!path.empty()) std::filesystem::remove_all(path, ec);
}

std::string cli_ok(const std::string& bus, std::vector<std::string> args) {
  args.push_back("--bus");
  args.push_back(bus);
  auto p = spawn_cli(args);
  EXPECT_TRUE(exits_ok(p));
  return p.out();
}

std::vector<std::string> numbered(const std::string& prefix, std::size_t count) {
  std::vector<std::string> out;
  for (std::size_t i = 1; i <= count; ++i) out.push_back(prefix + std::to_string(i));
  return out;
}

}  // namespace bus::test

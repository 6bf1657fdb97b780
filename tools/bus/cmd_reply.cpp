// cmd_reply.cpp — `bus reply SUBJECT [BODY]`: a service that answers every request on SUBJECT
// (a pattern) with BODY, with the request's own body and headers (--echo, also when BODY is
// omitted, as `nats reply` does), or with the output of a command (--command). BODY and -H values
// are templates (templates.hpp): `{{Count}}` is the request number 1..N, `{{Request}}` the
// request's body (in BODY only), `{{ID}}`, `{{TimeStamp}}`...
//
// It joins queue group --queue (default NATS-RPLY-22, the nats CLI's), so several `bus reply`
// processes on one subject share the requests. Each request is printed on stdout as `bus sub`
// prints messages (not with --quiet). Exit 0 after --count requests or on SIGINT/SIGTERM, 1 when
// the broker goes away.
//
// --command CMD (as nats reply --command): for each request, `/bin/sh -c CMD` runs with the
// request's body on its stdin and NATS_REQUEST_SUBJECT (and NATS_REQUEST_BODY, when the body fits
// in the environment) set; its stdout is the answer, its stderr goes to ours. Requests are
// answered one at a time. A command still running after --timeout is killed (SIGKILL, with every
// process of its process group) and the request is answered with an error text; a command that
// exits with a status other than 0 is answered with its stdout (the error text if it printed
// nothing). Both carry the nats service error headers (Nats-Service-Error, -Code).
//
// Scripts rely on "Listening on [SUBJECT] in group [GROUP]" (stderr) appearing only once the
// subscription exists: a request sent after that line finds a responder.
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cli_units.hpp"
#include "common.hpp"
#include "message_io.hpp"
#include "verbs.hpp"

namespace bus::cli {
namespace {

constexpr std::string_view kDefaultQueue = "NATS-RPLY-22";  // natscli's reply queue group

struct ReplyFlags {
  ClientFlags client;
  std::string subject;
  std::string body;
  CLI::Option* body_option = nullptr;  ///< not given: echo mode
  std::string queue{kDefaultQueue};
  HeaderFlags headers;
  std::uint64_t count = 0;  ///< 0: until interrupted
  std::string command;  ///< --command: answer with its output
  bool echo = false;
  bool quiet = false;
  bool templates = true;
};

// ----------------------------------------------------------------------------------- --command

/// How a --command run for one request went.
struct CommandOutcome {
  std::string output;   ///< its stdout
  std::string failure;  ///< empty: it ran and exited 0; else what went wrong, for the answer
  std::uint16_t code = 0;  ///< with a failure, its service error code: 500 failed, 503 stopping, 504 timed out
};

/// The largest body that also goes into the environment as NATS_REQUEST_BODY (bytes; one with a
/// NUL byte never does).
constexpr std::size_t kMaxEnvBody = 64 * 1024;

void close_fd(int& fd) {
  if (fd >= 0) ::close(fd);
  fd = -1;
}

/// Runs `/bin/sh -c command` for `request`: its body on stdin, stdout collected (at most
/// `max_output` bytes), killed with its process group after `limit` or on a stop signal.
CommandOutcome run_command(const std::string& command, const Message& request, std::chrono::nanoseconds limit,
                           std::size_t max_output) {
  CommandOutcome out;
  int to_child[2] = {-1, -1};
  int from_child[2] = {-1, -1};
  if (::pipe2(to_child, O_CLOEXEC) != 0 || ::pipe2(from_child, O_CLOEXEC) != 0) {
    for (int& fd : to_child) close_fd(fd);
    out.failure = "cannot run the command: no pipe";
    out.code = 500;
    return out;
  }
  // Everything the child needs is built before fork(): after it, a child of a threaded process
  // may only make async-signal-safe calls.
  std::vector<std::string> env;
  for (char** e = ::environ; e != nullptr && *e != nullptr; ++e) {
    const std::string_view entry = *e;
    if (!entry.starts_with("NATS_REQUEST_SUBJECT=") && !entry.starts_with("NATS_REQUEST_BODY=")) {
      env.emplace_back(entry);
    }
  }
  env.push_back("NATS_REQUEST_SUBJECT=" + request.subject);
  if (request.data.size() <= kMaxEnvBody && request.data.find('\0') == std::string::npos) {
    env.push_back("NATS_REQUEST_BODY=" + request.data);
  }
  std::vector<char*> envp;
  for (auto& entry : env) envp.push_back(entry.data());
  envp.push_back(nullptr);
  char sh[] = "sh";
  char dash_c[] = "-c";
  std::string text = command;
  char* argv[] = {sh, dash_c, text.data(), nullptr};

  const pid_t pid = ::fork();
  if (pid < 0) {
    for (int* pair : {to_child, from_child}) {
      close_fd(pair[0]);
      close_fd(pair[1]);
    }
    out.failure = "cannot run the command: fork failed";
    out.code = 500;
    return out;
  }
  if (pid == 0) {
    ::setpgid(0, 0);  // its own group: a timeout kills whatever it started too
    ::dup2(to_child[0], STDIN_FILENO);
    ::dup2(from_child[1], STDOUT_FILENO);
    struct sigaction dfl {};
    dfl.sa_handler = SIG_DFL;
    ::sigemptyset(&dfl.sa_mask);
    ::sigaction(SIGPIPE, &dfl, nullptr);  // we ignore it; the command must not
    ::execve("/bin/sh", argv, envp.data());
    ::_exit(127);
  }
  ::setpgid(pid, pid);  // also here, so the group exists before any kill below
  close_fd(to_child[0]);
  close_fd(from_child[1]);
  int in = to_child[1];
  int from = from_child[0];
  ::fcntl(in, F_SETFL, ::fcntl(in, F_GETFL) | O_NONBLOCK);
  ::fcntl(from, F_SETFL, ::fcntl(from, F_GETFL) | O_NONBLOCK);

  const std::string_view input = request.data;
  std::size_t written = 0;
  bool reaped = false;
  bool too_large = false;
  int status = 0;
  const auto deadline = std::chrono::steady_clock::now() + limit;
  char buffer[64 * 1024];
  while (from >= 0 || !reaped) {
    if (in >= 0 && written == input.size()) close_fd(in);  // EOF on its stdin
    if (from < 0 && !reaped) {
      const pid_t done = ::waitpid(pid, &status, WNOHANG);
      if (done == pid) {
        reaped = true;
        break;
      }
    }
    const auto now = std::chrono::steady_clock::now();
    if (now >= deadline || stop_requested()) {
      ::kill(-pid, SIGKILL);
      if (!stop_requested()) {
        out.failure = "command timed out after " + tools::format_duration(limit) + " and was killed";
        out.code = 504;
      } else {
        out.failure = "command was killed: bus reply is stopping";
        out.code = 503;
      }
      break;
    }
    pollfd fds[2];
    nfds_t n = 0;
    if (from >= 0) fds[n++] = {from, POLLIN, 0};
    if (in >= 0) fds[n++] = {in, POLLOUT, 0};
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - now).count() + 1;
    const int wait_ms = static_cast<int>(std::min<long long>(left, 100));
    if (n == 0) {
      ::usleep(static_cast<useconds_t>(std::min(wait_ms, 10)) * 1000);  // output closed: waiting for the exit
      continue;
    }
    if (::poll(fds, n, wait_ms) < 0 && errno != EINTR) break;
    for (nfds_t i = 0; i < n; ++i) {
      if (fds[i].revents == 0) continue;
      if (fds[i].fd == from) {
        const ssize_t got = ::read(from, buffer, sizeof buffer);
        if (got > 0) {
          const std::size_t room = max_output - std::min(max_output, out.output.size());
          out.output.append(buffer, std::min<std::size_t>(room, static_cast<std::size_t>(got)));
          too_large = too_large || static_cast<std::size_t>(got) > room;
        } else if (got == 0 || (errno != EAGAIN && errno != EINTR)) {
          close_fd(from);
        }
      } else if (fds[i].fd == in) {
        const ssize_t put = ::write(in, input.data() + written, input.size() - written);
        if (put > 0) {
          written += static_cast<std::size_t>(put);
        } else if (put < 0 && errno != EAGAIN && errno != EINTR) {
          close_fd(in);  // EPIPE: it does not read its stdin (SIGPIPE is ignored here)
        }
      }
    }
  }
  close_fd(in);
  close_fd(from);
  if (!reaped) ::waitpid(pid, &status, 0);  // killed above, or gone: returns at once
  if (!out.failure.empty()) return out;
  if (WIFEXITED(status) && WEXITSTATUS(status) == 127) {
    out.failure = "command not found or /bin/sh could not run it (exit status 127)";
    out.code = 500;
  } else if (WIFEXITED(status) && WEXITSTATUS(status) != 0) {
    out.failure = "command exited with status " + std::to_string(WEXITSTATUS(status));
    out.code = 500;
  } else if (WIFSIGNALED(status)) {
    out.failure = "command was killed by signal " + std::to_string(WTERMSIG(status));
    out.code = 500;
  }
  if (out.failure.empty() && too_large) {
    out.failure = "command's output is larger than the bus's max_payload (" + std::to_string(max_output) + " bytes)";
    out.code = 500;
    out.output.clear();
  }
  return out;
}

// The answer to request number `n`: BODY (or the request's body with --echo, or the command's
// output with --command) plus headers.
Status answer(const ReplyFlags& flags, Templates& templates, const Message& request, std::uint64_t n,
              bool body_template, std::size_t max_payload) {
  TemplateScope scope = Templates::now(n);
  scope.request = request.data;
  Headers headers;
  if (flags.echo) {
    // A request whose header block does not parse is echoed without it.
    if (auto parsed = request.header(); parsed) headers = std::move(*parsed);
  }
  flags.headers.append_to(headers, templates, scope);
  if (!flags.command.empty()) {
    CommandOutcome ran = run_command(flags.command, request, flags.client.timeout, max_payload);
    if (!ran.failure.empty()) {
      std::fprintf(stderr, "bus: request #%llu: %s\n", static_cast<unsigned long long>(n), ran.failure.c_str());
      std::fflush(stderr);
      (void)headers.add("Nats-Service-Error", ran.failure);
      (void)headers.add("Nats-Service-Error-Code", std::to_string(ran.code));
      // A command that ran to a failure answers with what it printed; one that did not finish
      // (or could not start) with the error.
      if (ran.code != 500 || ran.output.empty()) ran.output = "bus reply: " + ran.failure + "\n";
    }
    return request.respond(ran.output, headers);
  }
  const std::string expanded = !flags.echo && body_template ? templates.expand(flags.body, scope) : "";
  const std::string_view data = flags.echo        ? std::string_view(request.data)
                                : body_template   ? std::string_view(expanded)
                                                  : std::string_view(flags.body);
  return headers.empty() ? request.respond(data) : request.respond(data, headers);
}

int run_reply(ReplyFlags& flags) {
  if (auto valid = validate_pattern(flags.subject); !valid) return report(valid.error());
  if (auto parsed = flags.headers.parse(flags.templates); !parsed) {
    return report_usage(parsed.error().message);
  }
  if (!flags.echo && flags.command.empty() && flags.body_option->count() == 0) {
    std::fputs("No body or command supplied, enabling echo mode\n", stderr);
    flags.echo = true;
  }
  const bool body_template = !flags.echo && flags.command.empty() && flags.templates && has_template(flags.body);
  Templates templates;
  // A command that does not read its stdin closes the pipe we write the body into: that must be
  // an EPIPE for us, not a SIGPIPE that ends the service.
  if (!flags.command.empty()) ::signal(SIGPIPE, SIG_IGN);

  // Before connecting: a signal from here on ends the loop below instead of the process.
  install_stop_signals();

  auto conn = connect(flags.client, "bus reply " + flags.subject);
  if (!conn) return stop_requested() ? kExitOk : report(conn.error());

  auto sub = flags.queue.empty() ? conn->subscribe(flags.subject)
                                 : conn->queue_subscribe(flags.subject, flags.queue);
  if (!sub) return stop_requested() ? kExitOk : report(sub.error());

  if (flags.queue.empty()) {
    std::fprintf(stderr, "Listening on [%s]\n", flags.subject.c_str());
  } else {
    std::fprintf(stderr, "Listening on [%s] in group [%s]\n", flags.subject.c_str(),
                 flags.queue.c_str());
  }
  std::fflush(stderr);

  CountWarning drops("slow consumer on [" + flags.subject + "]",
                     "requests dropped because the ring was full");
  CountWarning ignored("not a request on [" + flags.subject + "]",
                       "messages without a reply subject ignored");
  BrokerWatch broker(*conn);
  std::uint64_t answered = 0;
  std::uint64_t not_requests = 0;
  while (!stop_requested() && (flags.count == 0 || answered < flags.count)) {
    auto msg = sub->next(kPollInterval);
    drops.update(sub->dropped_count());
    ignored.update(not_requests);
    if (broker.gone()) return report(broker_gone_error(flags.client.bus_name));
    if (!msg) {
      if (msg.error().code != Errc::timeout) return report(msg.error());
      continue;
    }
    if (msg->reply.empty()) {
      ++not_requests;
      ignored.update(not_requests);
      continue;
    }
    ++answered;
    if (!flags.quiet) print_message(*msg, answered, PrintOptions{});
    if (auto sent = answer(flags, templates, *msg, answered, body_template, conn->max_payload()); !sent) {
      const auto code = sent.error().code;
      if (code == Errc::broker_gone || code == Errc::closed) return report(sent.error());
      // One bad answer (too large for the bus, say) does not stop the service.
      std::fprintf(stderr, "bus: could not answer request #%llu: %s\n",
                   static_cast<unsigned long long>(answered), sent.error().message.c_str());
      std::fflush(stderr);
    }
  }
  drops.update(sub->dropped_count(), /*force=*/true);
  ignored.update(not_requests, /*force=*/true);
  if (auto done = sub->unsubscribe(); !done && !stop_requested()) return report(done.error());
  return kExitOk;
}

}  // namespace

VerbRunner setup_reply(CLI::App& command) {
  auto flags = std::make_shared<ReplyFlags>();
  command.add_option("SUBJECT", flags->subject,
                     "Subject (pattern) to answer requests on: `*` one token, `>` the rest")
      ->type_name("")
      ->required();
  flags->body_option =
      command.add_option("BODY", flags->body, "Reply body; without it, --echo")->type_name("");
  auto* echo = command.add_flag("--echo", flags->echo, "Answer with the request's own body and headers");
  command.add_option("--command", flags->command,
                     "Answer each request with the stdout of /bin/sh -c CMD, which gets the request's body on stdin "
                     "(and $NATS_REQUEST_SUBJECT, $NATS_REQUEST_BODY), one request at a time. A CMD still running "
                     "after --timeout is killed with its process group and the answer is an error text; one that "
                     "exits non-zero is answered with its stdout; both with the header Nats-Service-Error")
      ->type_name("CMD")
      ->excludes(echo)
      ->excludes(flags->body_option);
  command.add_option("-q,--queue", flags->queue,
                     "Queue group: the `bus reply`s of one group share the requests "
                     "('' for none)")
      ->type_name("GROUP")
      ->capture_default_str();
  flags->headers.add_to(command);
  command.add_option("--count", flags->count, "Exit after answering this many requests (0: never)")
      ->type_name("N")
      ->check(tools::count_in_range(0))
      ->capture_default_str();
  command.add_flag("--quiet", flags->quiet, "Do not print the requests");
  add_template_flags(command, flags->templates, "BODY and header values");
  add_client_flags(command, flags->client,
                   {"How long each call to the broker waits for its answer, and how long a --command may run "
                    "before it is killed, e.g. 500ms",
                    true,
                    {}});
  command.footer(templates_help(/*with_request=*/true));
  return [flags] { return run_reply(*flags); };
}

}  // namespace bus::cli

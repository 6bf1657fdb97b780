// cli_conventions_mp_test.cpp — the nats CLI's conventions in `bus`, across real processes: the
// global flags before the verb, --wait-for-broker, the message templates, req --replies,
// sub --headers-only and --match-replies, reply --command, and busd's log naming a kill -9'd
// client as died. The templates themselves (tools/bus/templates.hpp, header-only) are checked
// in this process first.
//
// Every test runs its own broker on its own bus name (ctest runs them in parallel); waits are
// generous and only cost time when something is broken.
#include <gtest/gtest.h>
#include <signal.h>
#include <stdlib.h>
#include <time.h>

#include <algorithm>
#include <cctype>
#include <chrono>
#include <cstdint>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "../../tools/bus/templates.hpp"
#include "bus/bus.hpp"
#include "process_harness.hpp"

namespace bus::test {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;
using cli::Nuid;
using cli::TemplateScope;
using cli::Templates;

const std::vector<std::string> kSmallBroker = {"--ring-bytes", "256KiB", "--max-payload", "16KiB",
                                               "--max-subscriptions", "32", "--statsz", "0", "--max-streams", "0"};
constexpr auto kStartTimeout = 10s;
constexpr auto kExitTimeout = 20s;

bool alnum(std::string_view s) {
  return std::all_of(s.begin(), s.end(), [](unsigned char c) { return std::isalnum(c) != 0; });
}
bool digits(std::string_view s) {
  return !s.empty() && std::all_of(s.begin(), s.end(), [](unsigned char c) { return std::isdigit(c) != 0; });
}

std::vector<std::string> split(std::string_view s, char sep) {
  std::vector<std::string> out;
  std::size_t start = 0;
  for (;;) {
    const auto at = s.find(sep, start);
    out.emplace_back(s.substr(start, at == std::string_view::npos ? std::string_view::npos : at - start));
    if (at == std::string_view::npos) return out;
    start = at + 1;
  }
}

// Runs with TZ set to `tz` (restored after), so local-time formats are known.
struct ScopedTimeZone {
  explicit ScopedTimeZone(const char* tz) {
    if (const char* old = ::getenv("TZ")) saved = old;
    ::setenv("TZ", tz, 1);
    ::tzset();
  }
  ~ScopedTimeZone() {
    if (saved) {
      ::setenv("TZ", saved->c_str(), 1);
    } else {
      ::unsetenv("TZ");
    }
    ::tzset();
  }
  std::optional<std::string> saved;
};

// ------------------------------------------------------------------------- templates, in-process

TEST(TemplatesTest, should_expand_count_with_or_without_spaces_and_in_go_field_form) {
  Templates t(1);
  const TemplateScope scope{7, 0, std::nullopt};
  EXPECT_EQ(t.expand("a{{Count}}b{{ Count }}c{{  .Count\t}}d{{Cnt}}", scope), "a7b7c7d7");
}

TEST(TemplatesTest, should_leave_unknown_or_unterminated_templates_as_they_are) {
  Templates t(1);
  const TemplateScope scope{3, 0, std::nullopt};
  EXPECT_EQ(t.expand("{{Foo}} {{Count 2}} {{Random x 3}} {{Request}} {{Count", scope),
            "{{Foo}} {{Count 2}} {{Random x 3}} {{Request}} {{Count");
  EXPECT_FALSE(cli::has_template("no braces {Count}"));
}

TEST(TemplatesTest, should_expand_the_clock_templates_from_one_reading) {
  Templates t(1);
  const std::int64_t ns = 1'700'000'000'123'456'789;
  const TemplateScope scope{1, ns, std::nullopt};
  EXPECT_EQ(t.expand("{{UnixNano}} {{Unix}}", scope), "1700000000123456789 1700000000");
  ScopedTimeZone utc("UTC");
  EXPECT_EQ(t.expand("{{TimeStamp}}", scope), "2023-11-14T22:13:20Z");
  EXPECT_EQ(t.expand("{{Time}}", scope), "10:13PM");
  EXPECT_EQ(cli::format_kitchen(0), "12:00AM");
  EXPECT_EQ(cli::format_kitchen(12LL * 3600 * 1'000'000'000), "12:00PM");
}

TEST(TemplatesTest, should_format_timestamps_with_the_local_offset_as_rfc3339) {
  ScopedTimeZone east("XYZ-3");  // POSIX: 3 hours east of UTC
  EXPECT_EQ(cli::format_rfc3339(0), "1970-01-01T03:00:00+03:00");
  ScopedTimeZone west("XYZ+5:30");
  EXPECT_EQ(cli::format_rfc3339(0), "1969-12-31T18:30:00-05:30");
}

TEST(TemplatesTest, should_make_unique_22_character_ids) {
  Templates t(42);
  std::set<std::string> seen;
  for (int i = 0; i < 20000; ++i) {
    const std::string id = t.expand("{{ID}}", TemplateScope{});
    ASSERT_EQ(id.size(), Nuid::kLength) << id;
    ASSERT_TRUE(alnum(id)) << id;
    ASSERT_TRUE(seen.insert(id).second) << "duplicate id " << id << " after " << i;
  }
  // Two generators (two processes) start from different random prefixes.
  EXPECT_NE(Nuid().next().substr(0, Nuid::kPrefixLength), Nuid().next().substr(0, Nuid::kPrefixLength));
}

TEST(TemplatesTest, should_make_random_strings_within_the_bounds_either_way_round) {
  Templates t(7);
  std::set<std::size_t> lengths;
  for (int i = 0; i < 500; ++i) {
    const std::string r = t.expand("{{ Random 3 6 }}", TemplateScope{});
    ASSERT_GE(r.size(), 3u);
    ASSERT_LE(r.size(), 6u);
    ASSERT_TRUE(alnum(r)) << r;
    lengths.insert(r.size());
    const std::string swapped = t.expand("{{Random 5 2}}", TemplateScope{});
    ASSERT_GE(swapped.size(), 2u);
    ASSERT_LE(swapped.size(), 5u);
  }
  EXPECT_EQ(lengths.size(), 4u) << "every length from 3 to 6 should come up in 500 draws";
  EXPECT_EQ(t.expand("{{Random 4 4}}", TemplateScope{}).size(), 4u);
  // A typo must not allocate gigabytes: too long is not a template.
  EXPECT_EQ(t.expand("{{Random 1 999999999999}}", TemplateScope{}), "{{Random 1 999999999999}}");
}

TEST(TemplatesTest, should_expand_request_only_where_there_is_one) {
  Templates t(1);
  TemplateScope scope{2, 0, std::nullopt};
  EXPECT_EQ(t.expand("got {{Request}}", scope), "got {{Request}}");
  scope.request = "ping";
  EXPECT_EQ(t.expand("got {{ Request }} #{{Count}}", scope), "got ping #2");
}

// -------------------------------------------------------------------------- across processes

Connection connect_to(const std::string& bus) {
  auto conn = Connection::connect(bus);
  EXPECT_TRUE(conn) << conn.error().message;
  return std::move(conn).value();
}

std::string header_of(const Message& m, std::string_view key) {
  auto h = m.header();
  if (!h) return "<bad headers>";
  auto v = h->get(key);
  return v ? std::string(*v) : "<none>";
}

ChildProcess start_reply(const std::vector<std::string>& args) {
  auto p = spawn_cli(args);
  EXPECT_TRUE(p.wait_for_line(Stream::err, "Listening on", kStartTimeout)) << p.describe();
  return p;
}

TEST(CliConventions, should_take_the_global_flags_before_the_verb) {
  BrokerProcess broker(unique_bus_name(), kSmallBroker);
  ASSERT_TRUE(broker.ready()) << broker.process().describe();
  const std::string& bus = broker.bus_name();
  Connection conn = connect_to(bus);
  auto sub = conn.subscribe("g.>");
  ASSERT_TRUE(sub) << sub.error().message;

  // Before the verb; after it; both (the one after wins); and from the environment.
  auto before = spawn_cli({"--bus", bus, "--timeout", "2s", "--name", "early-flags", "pub", "g.before", "1"});
  EXPECT_TRUE(exits_ok(before));
  auto after = spawn_cli({"pub", "g.after", "2", "--bus", bus, "--timeout", "2s"});
  EXPECT_TRUE(exits_ok(after));
  auto both = spawn_cli({"--bus", "no-such-bus", "pub", "--bus", bus, "g.both", "3"});
  EXPECT_TRUE(exits_ok(both));
  auto env = spawn_cli({"pub", "g.env", "4"}, {{"BUS_NAME", bus}});
  EXPECT_TRUE(exits_ok(env));
  // A verb that does not take one (server ls: every bus) accepts it and ignores it.
  auto ls = spawn_cli({"--timeout", "1s", "server", "ls", "--bus", bus});
  EXPECT_TRUE(exits_ok(ls));

  std::vector<std::string> got;
  for (int i = 0; i < 4; ++i) {
    auto msg = sub->next(5s);
    ASSERT_TRUE(msg) << "message " << i + 1 << ": " << msg.error().message;
    got.push_back(msg->subject + "=" + msg->data);
  }
  EXPECT_EQ(got, (std::vector<std::string>{"g.before=1", "g.after=2", "g.both=3", "g.env=4"}));
  // --name before the verb named the connection.
  EXPECT_TRUE(holds(broker.log(), "(early-flags)")) << broker.log();
  // A global flag's value does not pass for the verb.
  auto unknown = spawn_cli({"--bus", bus, "pbu", "x"});
  EXPECT_TRUE(exits_with(unknown, 2));
  EXPECT_TRUE(holds(unknown.err(), "unknown verb 'pbu'")) << unknown.describe();
}

TEST(CliConventions, should_wait_for_a_broker_that_starts_late) {
  const std::string bus = unique_bus_name();
  // The CLI first: without --wait-for-broker it would fail at once.
  auto sub = spawn_cli({"--wait-for-broker", "15s", "sub", "--bus", bus, "late.x", "--count", "1", "--raw"});
  std::this_thread::sleep_for(300ms);
  sub.pump();
  ASSERT_FALSE(sub.exited()) << "gave up before the broker came: " << sub.describe();

  BrokerProcess broker(bus, kSmallBroker);
  ASSERT_TRUE(broker.ready()) << broker.process().describe();
  ASSERT_TRUE(sub.wait_for_line(Stream::err, "Listening on [late.x]", kStartTimeout)) << sub.describe();
  cli_ok(bus, {"pub", "late.x", "made it"});
  ASSERT_TRUE(exits_ok(sub)) << sub.describe();
  EXPECT_EQ(sub.out(), "made it\n");
}

TEST(CliConventions, should_fail_with_one_line_when_no_broker_comes_within_the_wait) {
  const std::string bus = unique_bus_name();
  const auto start = Clock::now();
  auto pub = spawn_cli({"pub", "--bus", bus, "--wait-for-broker", "400ms", "x", "y"});
  ASSERT_TRUE(exits_with(pub, 1)) << pub.describe();
  const auto waited = Clock::now() - start;
  EXPECT_GE(waited, 380ms) << "did not wait";
  EXPECT_LT(waited, 10s);
  const auto lines = pub.lines(Stream::err);
  ASSERT_EQ(lines.size(), 1u) << pub.describe();
  EXPECT_TRUE(holds(lines[0], "no broker is running for bus '" + bus + "'")) << lines[0];
  EXPECT_TRUE(holds(lines[0], "waiting 400ms")) << lines[0];

  // The default stays fail-fast.
  const auto fast_start = Clock::now();
  auto fast = spawn_cli({"pub", "--bus", bus, "x", "y"});
  ASSERT_TRUE(exits_with(fast, 1)) << fast.describe();
  EXPECT_LT(Clock::now() - fast_start, 5s);
  EXPECT_FALSE(holds(fast.err(), "--wait-for-broker")) << fast.describe();
}

TEST(CliConventions, should_expand_templates_in_body_and_headers_unless_turned_off) {
  BrokerProcess broker(unique_bus_name(), kSmallBroker);
  ASSERT_TRUE(broker.ready()) << broker.process().describe();
  const std::string& bus = broker.bus_name();
  Connection conn = connect_to(bus);
  auto sub = conn.subscribe("tpl.>");
  ASSERT_TRUE(sub) << sub.error().message;

  const auto now_ns = [] {
    timespec ts{};
    ::clock_gettime(CLOCK_REALTIME, &ts);
    return static_cast<std::int64_t>(ts.tv_sec) * 1'000'000'000 + ts.tv_nsec;
  };
  const std::int64_t before = now_ns();
  cli_ok(bus, {"pub", "tpl.on", "{{ Count }}|{{ID}}|{{UnixNano}}", "--count", "3", "-H", "Msg-Id:{{ID}}", "-H",
               "N:{{Count}}"});
  const std::int64_t after = now_ns();
  std::set<std::string> ids;
  for (int n = 1; n <= 3; ++n) {
    auto msg = sub->next(5s);
    ASSERT_TRUE(msg) << msg.error().message;
    const auto parts = split(msg->data, '|');
    ASSERT_EQ(parts.size(), 3u) << msg->data;
    EXPECT_EQ(parts[0], std::to_string(n));
    EXPECT_EQ(parts[1].size(), 22u) << parts[1];
    EXPECT_TRUE(alnum(parts[1])) << parts[1];
    ASSERT_TRUE(digits(parts[2])) << parts[2];
    const std::int64_t stamp = std::stoll(parts[2]);
    EXPECT_GE(stamp, before);
    EXPECT_LE(stamp, after);
    EXPECT_EQ(header_of(*msg, "N"), std::to_string(n));
    const std::string header_id = header_of(*msg, "Msg-Id");
    EXPECT_EQ(header_id.size(), 22u) << header_id;
    ids.insert(parts[1]);
    ids.insert(header_id);
  }
  EXPECT_EQ(ids.size(), 6u) << "every {{ID}} unique, body and header";

  cli_ok(bus, {"pub", "tpl.off", "{{ Count }} {{ID}}", "--templates=false", "-H", "N:{{Count}}"});
  cli_ok(bus, {"pub", "tpl.off", "{{UnixNano}}", "--no-templates"});
  auto off = sub->next(5s);
  ASSERT_TRUE(off) << off.error().message;
  EXPECT_EQ(off->data, "{{ Count }} {{ID}}");
  EXPECT_EQ(header_of(*off, "N"), "{{Count}}");
  auto off2 = sub->next(5s);
  ASSERT_TRUE(off2) << off2.error().message;
  EXPECT_EQ(off2->data, "{{UnixNano}}");

  // bus reply's body ({{Request}}: the request's body) and bus req's.
  auto reply = start_reply({"reply", "--bus", bus, "tpl.svc", "n={{Count}} got={{Request}}", "--quiet"});
  EXPECT_EQ(cli_ok(bus, {"req", "tpl.svc", "r{{ Count }}", "--raw", "--count", "2"}), "n=1 got=r1\nn=2 got=r2\n");
}

TEST(CliConventions, should_print_every_reply_with_replies_n) {
  BrokerProcess broker(unique_bus_name(), kSmallBroker);
  ASSERT_TRUE(broker.ready()) << broker.process().describe();
  const std::string& bus = broker.bus_name();
  // Two services in two queue groups: each request reaches both.
  auto one = start_reply({"reply", "--bus", bus, "multi.svc", "from-one", "--queue", "q1", "--quiet"});
  auto two = start_reply({"reply", "--bus", bus, "multi.svc", "from-two", "--queue", "q2", "--quiet"});

  const auto start = Clock::now();
  auto req = spawn_cli({"req", "--bus", bus, "multi.svc", "x", "--replies", "2", "--raw", "--timeout", "15s"});
  ASSERT_TRUE(exits_ok(req)) << req.describe();
  EXPECT_LT(Clock::now() - start, 10s) << "should stop at 2 replies, not wait for --timeout";
  auto lines = req.lines(Stream::out);
  std::sort(lines.begin(), lines.end());
  EXPECT_EQ(lines, (std::vector<std::string>{"from-one", "from-two"})) << req.describe();

  // --replies 0: all that come within --timeout; the plain request gets one.
  auto all = spawn_cli({"req", "--bus", bus, "multi.svc", "x", "--replies", "0", "--raw", "--timeout", "700ms"});
  ASSERT_TRUE(exits_ok(all)) << all.describe();
  EXPECT_EQ(all.lines(Stream::out).size(), 2u) << all.describe();
  auto single = spawn_cli({"req", "--bus", bus, "multi.svc", "x", "--raw"});
  ASSERT_TRUE(exits_ok(single)) << single.describe();
  EXPECT_EQ(single.lines(Stream::out).size(), 1u) << single.describe();
  // Nobody there: no responders at once, as without --replies.
  auto nobody = spawn_cli({"req", "--bus", bus, "multi.nobody", "x", "--replies", "2", "--timeout", "15s"});
  ASSERT_TRUE(exits_with(nobody, 1)) << nobody.describe();
  EXPECT_TRUE(holds(nobody.err(), "no responders")) << nobody.describe();
}

TEST(CliConventions, should_print_only_headers_with_headers_only) {
  BrokerProcess broker(unique_bus_name(), kSmallBroker);
  ASSERT_TRUE(broker.ready()) << broker.process().describe();
  const std::string& bus = broker.bus_name();
  auto sub = spawn_cli({"sub", "--bus", bus, "ho.x", "--headers-only", "--count", "1"});
  ASSERT_TRUE(sub.wait_for_line(Stream::err, "Listening on [ho.x]", kStartTimeout)) << sub.describe();
  cli_ok(bus, {"pub", "ho.x", "SECRET-BODY", "-H", "Trace-Id:42"});
  ASSERT_TRUE(exits_ok(sub)) << sub.describe();
  EXPECT_TRUE(holds(sub.out(), "[#1] Received on \"ho.x\"")) << sub.out();
  EXPECT_TRUE(holds(sub.out(), "Trace-Id: 42")) << sub.out();
  EXPECT_FALSE(holds(sub.out(), "SECRET-BODY")) << sub.out();
}

TEST(CliConventions, should_print_each_request_with_its_reply_with_match_replies) {
  BrokerProcess broker(unique_bus_name(), kSmallBroker);
  ASSERT_TRUE(broker.ready()) << broker.process().describe();
  const std::string& bus = broker.bus_name();
  auto svc = start_reply({"reply", "--bus", bus, "mr.svc", "pong-{{Count}}", "--quiet"});
  auto sub = spawn_cli({"sub", "--bus", bus, "mr.svc", "--match-replies", "--count", "1"});
  ASSERT_TRUE(sub.wait_for_line(Stream::err, "Listening on [mr.svc]", kStartTimeout)) << sub.describe();
  // --replies N routes its replies (a plain request's go straight into the requester's ring).
  auto req = spawn_cli({"req", "--bus", bus, "mr.svc", "ping", "--replies", "2", "--reply-timeout", "50ms"});
  ASSERT_TRUE(exits_ok(req)) << req.describe();
  ASSERT_TRUE(exits_ok(sub)) << sub.describe();
  const std::string& out = sub.out();
  const auto request_at = out.find("[#1] Received on \"mr.svc\" with reply \"_INBOX.");
  const auto reply_at = out.find("[#1] Matched reply on \"_INBOX.");
  ASSERT_NE(request_at, std::string::npos) << out;
  ASSERT_NE(reply_at, std::string::npos) << out;
  EXPECT_LT(request_at, reply_at);
  EXPECT_LT(out.find("ping"), reply_at) << out;
  EXPECT_GT(out.find("pong-1"), reply_at) << out;
}

TEST(CliConventions, should_answer_with_a_commands_output_and_bound_how_long_it_runs) {
  BrokerProcess broker(unique_bus_name(), kSmallBroker);
  ASSERT_TRUE(broker.ready()) << broker.process().describe();
  const std::string& bus = broker.bus_name();
  auto upper = start_reply({"reply", "--bus", bus, "cmd.upper", "--command", "tr a-z A-Z", "--quiet"});
  EXPECT_EQ(cli_ok(bus, {"req", "cmd.upper", "hello world", "--raw"}), "HELLO WORLD\n");
  EXPECT_EQ(cli_ok(bus, {"req", "cmd.upper", "again", "--raw"}), "AGAIN\n");

  // A command that hangs is killed after --timeout and answered with an error; the service
  // goes on answering.
  auto maybe_hang = start_reply({"reply", "--bus", bus, "cmd.hang", "--quiet", "--timeout", "300ms", "--command",
                                 "if [ \"$(cat)\" = hang ]; then sleep 30; fi; echo ok"});
  const auto start = Clock::now();
  auto hung = spawn_cli({"req", "--bus", bus, "cmd.hang", "hang", "--timeout", "10s"});
  ASSERT_TRUE(exits_ok(hung)) << hung.describe();
  EXPECT_LT(Clock::now() - start, 5s);
  EXPECT_TRUE(holds(hung.out(), "Nats-Service-Error: command timed out after 300ms")) << hung.describe();
  EXPECT_TRUE(holds(hung.out(), "Nats-Service-Error-Code: 504")) << hung.describe();
  // Its stdout as it is ("ok\n"), to which --raw adds the newline it always adds.
  EXPECT_EQ(cli_ok(bus, {"req", "cmd.hang", "fine", "--raw"}), "ok\n\n");
  EXPECT_TRUE(maybe_hang.wait_for_line(Stream::err, "request #1: command timed out after 300ms", 5s))
      << maybe_hang.describe();
}

TEST(CliConventions, should_log_a_killed_client_as_died_and_a_closed_one_as_closed) {
  BrokerProcess broker(unique_bus_name(), kSmallBroker);
  ASSERT_TRUE(broker.ready()) << broker.process().describe();
  const std::string& bus = broker.bus_name();
  auto victim = spawn_cli({"sub", "--bus", bus, "die.x"});
  ASSERT_TRUE(victim.wait_for_line(Stream::err, "Listening on", kStartTimeout)) << victim.describe();
  const std::string victim_pid = "(pid " + std::to_string(victim.pid()) + ")";
  ASSERT_TRUE(victim.kill(SIGKILL));
  ASSERT_TRUE(victim.wait_exit(kExitTimeout));

  auto polite = spawn_cli({"pub", "--bus", bus, "die.x", "bye"});
  const pid_t polite_pid = polite.pid();
  ASSERT_TRUE(exits_ok(polite));
  const std::string polite_tag = "(pid " + std::to_string(polite_pid) + ")";

  // The line that names a pid and says it was reclaimed.
  const auto reclaim_line = [&](const std::string& tag) -> std::optional<std::string> {
    for (const auto& line : split(broker.log(), '\n')) {
      if (holds(line, tag) && holds(line, "reclaimed its slot")) return line;
    }
    return std::nullopt;
  };
  const auto deadline = Clock::now() + kExitTimeout;
  while ((!reclaim_line(victim_pid) || !reclaim_line(polite_tag)) && Clock::now() < deadline) {
    std::this_thread::sleep_for(10ms);
  }
  const auto killed = reclaim_line(victim_pid);
  ASSERT_TRUE(killed) << broker.log();
  EXPECT_TRUE(holds(*killed, victim_pid + " died")) << *killed;
  EXPECT_FALSE(holds(*killed, "closed its connection:")) << *killed;
  const auto closed = reclaim_line(polite_tag);
  ASSERT_TRUE(closed) << broker.log();
  EXPECT_TRUE(holds(*closed, polite_tag + " closed its connection")) << *closed;
}

}  // namespace
}  // namespace bus::test

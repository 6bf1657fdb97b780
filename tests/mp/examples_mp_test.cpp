// examples/ run as a newcomer runs them: each program, in C++ and in C, against a real busd
// (embedded_broker against none), must exit 0 and print what it received. The programs check
// their own deliveries (exact counts, header values); these tests check that they ran, said so,
// and agree with each other.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "process_harness.hpp"

namespace bus::test {
namespace {

std::string example_path(const std::string& name) { return std::string(BUS_EXAMPLES_DIR) + "/" + name; }

// Runs examples/<name> with `args`, expecting exit 0 and every one of `expected` in stdout.
void run_example(const std::string& name, const std::vector<std::string>& args, const std::vector<std::string>& expected) {
  std::vector<std::string> argv{example_path(name)};
  argv.insert(argv.end(), args.begin(), args.end());
  auto p = ChildProcess::spawn(argv);
  ASSERT_TRUE(exits_ok(p)) << p.describe();
  for (const auto& line : expected) EXPECT_NE(p.out().find(line), std::string::npos) << line << "\n" << p.describe();
}

class ExamplesMp : public ::testing::TestWithParam<std::string> {};

TEST_P(ExamplesMp, should_receive_what_each_wildcard_matches) {
  BrokerProcess broker(unique_bus_name());
  ASSERT_TRUE(broker.ready()) << broker.process().describe();
  run_example("pubsub" + GetParam(), {broker.bus_name()},
              {"orders.>      orders.us.paid: order on orders.us.paid", "orders.*.new  orders.us.new: order on orders.us.new"});
}

TEST_P(ExamplesMp, should_give_each_job_to_exactly_one_queue_worker) {
  BrokerProcess broker(unique_bus_name());
  ASSERT_TRUE(broker.ready()) << broker.process().describe();
  run_example("queue_workers" + GetParam(), {broker.bus_name()}, {"worker 0 did", "worker 2 did"});
}

TEST_P(ExamplesMp, should_answer_requests_and_report_no_responders) {
  BrokerProcess broker(unique_bus_name());
  ASSERT_TRUE(broker.ready()) << broker.process().describe();
  run_example("request_reply" + GetParam(), {broker.bus_name()}, {"echo: hello", "svc.nobody: no_responders"});
}

TEST_P(ExamplesMp, should_carry_headers_with_two_values_for_one_key) {
  BrokerProcess broker(unique_bus_name());
  ASSERT_TRUE(broker.ready()) << broker.process().describe();
  run_example("headers" + GetParam(), {broker.bus_name()},
              {"Trace-Id: 4bf92f35", "Tag: blue", "Tag: fast", "events.login: alice"});
}

TEST_P(ExamplesMp, should_run_with_a_broker_of_its_own) {
  const std::string bus = unique_bus_name();
  run_example("embedded_broker" + GetParam(), {bus}, {"greetings: hello from an embedded broker"});
}

TEST_P(ExamplesMp, should_fail_with_one_line_when_no_broker_serves_the_bus) {
  auto p = ChildProcess::spawn({example_path("pubsub" + GetParam()), unique_bus_name()});
  ASSERT_TRUE(exits_with(p, 1)) << p.describe();
  EXPECT_EQ(p.lines(Stream::err).size(), 1u) << p.describe();
  EXPECT_NE(p.err().find("no broker"), std::string::npos) << p.describe();
}

INSTANTIATE_TEST_SUITE_P(Languages, ExamplesMp, ::testing::Values("", "_c"),
                         [](const ::testing::TestParamInfo<std::string>& param_info) { return param_info.param.empty() ? std::string("cpp") : std::string("c"); });

}  // namespace
}  // namespace bus::test

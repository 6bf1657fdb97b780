// bridge_interest_test — the pattern algebra behind the bridge's NATS subscriptions
// (libbus/src/bridge/interest.hpp), checked against the reference matcher subject_matches().
#include <gtest/gtest.h>

#include <random>
#include <string>
#include <vector>

#include "bridge/interest.hpp"
#include "subject/subject.hpp"

namespace bus::detail::bridge {
namespace {

TEST(BridgeInterest, IntersectsPatterns) {
  EXPECT_EQ(intersect("a.*", "*.b"), "a.b");
  EXPECT_EQ(intersect("a.>", "a.*.c"), "a.*.c");
  EXPECT_EQ(intersect("a.*.c", "a.>"), "a.*.c");
  EXPECT_EQ(intersect(">", "x.y"), "x.y");
  EXPECT_EQ(intersect("x.>", ">"), "x.>");
  EXPECT_EQ(intersect("x.*", "x.*"), "x.*");
  EXPECT_EQ(intersect("x.>", "x.>"), "x.>");
  EXPECT_FALSE(intersect("a.>", "a").has_value());
  EXPECT_FALSE(intersect("a.b", "a.c").has_value());
  EXPECT_FALSE(intersect("a.*", "a.b.c").has_value());
  EXPECT_FALSE(intersect("a.*.>", "a.b").has_value());
}

TEST(BridgeInterest, Covers) {
  EXPECT_TRUE(covers("a.*", "a.b"));
  EXPECT_TRUE(covers("a.>", "a.*.c"));
  EXPECT_TRUE(covers(">", "a"));
  EXPECT_TRUE(covers("a.b", "a.b"));
  EXPECT_FALSE(covers("a.*", "a.>"));
  EXPECT_FALSE(covers("a.b", "a.*"));
  EXPECT_FALSE(covers("a", "a.b"));
  EXPECT_FALSE(covers("a.>", "a"));
}

// intersect() and covers() agree with subject_matches() on every subject of a small alphabet.
TEST(BridgeInterest, AgreesWithTheMatcher) {
  const std::vector<std::string> tokens = {"a", "b", "*", ">"};
  std::vector<std::string> patterns;
  for (const auto& t1 : tokens) {
    patterns.push_back(t1);
    if (t1 == ">") continue;
    for (const auto& t2 : tokens) {
      patterns.push_back(t1 + "." + t2);
      if (t2 == ">") continue;
      for (const auto& t3 : tokens) patterns.push_back(t1 + "." + t2 + "." + t3);
    }
  }
  std::vector<std::string> subjects;
  for (const char* t1 : {"a", "b"}) {
    subjects.push_back(t1);
    for (const char* t2 : {"a", "b"}) {
      subjects.push_back(std::string(t1) + "." + t2);
      for (const char* t3 : {"a", "b"}) {
        subjects.push_back(std::string(t1) + "." + t2 + "." + t3);
        subjects.push_back(std::string(t1) + "." + t2 + "." + t3 + ".a");
      }
    }
  }
  for (const auto& p : patterns) {
    for (const auto& q : patterns) {
      const auto both = intersect(p, q);
      bool all_covered = true;
      for (const auto& s : subjects) {
        const bool expected = subject_matches(p, s) && subject_matches(q, s);
        EXPECT_EQ(both.has_value() && subject_matches(*both, s), expected) << p << " ^ " << q << " on " << s;
        if (subject_matches(q, s) && !subject_matches(p, s)) all_covered = false;
      }
      // covers() may not claim more than the subjects show (it is exact on these patterns).
      EXPECT_EQ(covers(p, q), all_covered) << p << " covers " << q;
    }
  }
}

TEST(BridgeInterest, SubscribesForWhatTheBusWants) {
  const std::vector<ImportRule> rules = {{"orders.>", ""}, {"metrics.>", "host1."}};
  const std::vector<BusInterest> bus = {
      {"orders.eu.*", ""},   // inside the rule: subscribed as is
      {">", ""},             // wider than every rule: the rules themselves
      {"orders.eu.new", ""},  // covered by orders.> (from ">"): left out
      {"orders.*", "workers"},
      {"metrics.cpu", ""},
      {"_INBOX.abc.>", ""},  // the bus's plumbing is never imported
      {"$SYS.>", ""},
      {"other.x", ""},  // no rule
  };
  const auto got = nats_interest(bus, rules);
  std::vector<std::string> plain, queue;
  for (const auto& g : got) (g.group.empty() ? plain : queue).push_back(g.subject + "|" + std::to_string(g.rule));
  EXPECT_EQ(plain, (std::vector<std::string>{"host1.metrics.>|1", "orders.>|0"}));
  EXPECT_EQ(queue, (std::vector<std::string>{"orders.*|0"}));
  ASSERT_EQ(got.size(), 3u);
  for (const auto& g : got) {
    if (!g.group.empty()) {
      EXPECT_EQ(g.group, "workers");
    }
  }
}

TEST(BridgeInterest, NothingWithoutSubscribers) {
  EXPECT_TRUE(nats_interest({}, {{">", ""}}).empty());
  EXPECT_TRUE(nats_interest({{"a.b", ""}}, {}).empty());
}

TEST(BridgeInterest, OverlappingPlainPatternsPassAMessageOnOnce) {
  // a.*.c and a.b.* both stay (neither covers the other); a.b.c reaches both on NATS, and only
  // the first passes it on.
  const auto got = nats_interest({{"a.*.c", ""}, {"a.b.*", ""}}, {{">", ""}});
  std::vector<std::string> plain;
  for (const auto& g : got) plain.push_back(g.subject);
  ASSERT_EQ(plain.size(), 2u);
  EXPECT_EQ(first_plain_match(plain, "a.b.c"), 0u);
  EXPECT_EQ(first_plain_match(plain, "a.x.c"), plain[0] == "a.*.c" ? 0u : 1u);
  EXPECT_EQ(first_plain_match(plain, "a.b.x"), plain[0] == "a.b.*" ? 0u : 1u);
  EXPECT_EQ(first_plain_match(plain, "z"), plain.size());
}

}  // namespace
}  // namespace bus::detail::bridge

namespace bus::detail::bridge {
namespace {

TEST(BridgeExportInterest, ReadsConnzLeavingOutOwnConnectionsAndInboxes) {
  const std::string connz = R"({"server":{"id":"S1"},"data":{"server_id":"S1","connections":[
      {"cid":4,"subscriptions_list_detail":[{"subject":"orders.>","sid":"1"},{"subject":"_INBOX.abc.*","sid":"2"}]},
      {"cid":7,"subscriptions_list_detail":[{"subject":"mine.>","sid":"1"}]},
      {"cid":9,"subscriptions_list_detail":[{"subject":"jobs","qgroup":"workers","sid":"3"}]},
      {"cid":10}]}})";
  const auto got = connz_subjects(connz, {{"S1", 7}, {"S2", 4}});
  ASSERT_TRUE(got.has_value());
  EXPECT_EQ(*got, (std::vector<std::string>{"orders.>", "jobs"}));
  EXPECT_FALSE(connz_subjects("not json", {}).has_value());
  EXPECT_FALSE(connz_subjects(R"({"error":"x"})", {}).has_value());
  EXPECT_TRUE(connz_subjects(R"({"data":{"server_id":"S1"}})", {})->empty());
}

TEST(BridgeExportInterest, SubscribesTheBusForWhatNatsWants) {
  // Rule: export orders.> under host1.; NATS wants host1.orders.eu.* and *.orders.us.new,
  // everything (>), and things outside the rule.
  EXPECT_EQ(export_interest({"host1.orders.eu.*", "*.orders.us.new", "other.x", "orders.y"}, {"orders.>", "host1."}),
            (std::vector<std::string>{"orders.eu.*", "orders.us.new"}));
  EXPECT_EQ(export_interest({">", "host1.orders.eu.*"}, {"orders.>", "host1."}), (std::vector<std::string>{"orders.>"}));
  EXPECT_TRUE(export_interest({}, {"orders.>", ""}).empty());  // nobody listens: nothing to send
  EXPECT_TRUE(export_interest({"host1.>"}, {"orders.>", "host2."}).empty());
  EXPECT_EQ(export_interest({"orders.a", "orders.a"}, {"orders.*", ""}), (std::vector<std::string>{"orders.a"}));
}

}  // namespace
}  // namespace bus::detail::bridge

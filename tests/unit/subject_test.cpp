// tests/unit/subject_test.cpp — the NATS subject rules: validation, literal detection,
// matching, and the error messages that name the broken rule.
//
// Cases follow nats-server's server/sublist_test.go (TestSublistValidLiteralSubjects,
// TestSublistInsertWithWildcardsAsLiterals, TestSublistMatchWithEmptyTokens, the
// matchLiteral table) and the semantics reference, sections 1 and 2.
#include "subject/subject.hpp"

#include <gtest/gtest.h>

#include <atomic>
#include <cstdlib>
#include <new>
#include <string>
#include <string_view>
#include <vector>

// Counts every global allocation so tests can prove the matching path allocates nothing.
// noinline: once inlined, GCC pairs the malloc and free itself and warns
// (-Wmismatched-new-delete) about a pairing that is in fact consistent.
namespace {
std::atomic<long> g_allocations{0};
}  // namespace

[[gnu::noinline]] void* operator new(std::size_t size) {
  g_allocations.fetch_add(1, std::memory_order_relaxed);  // a tally, orders nothing
  if (void* p = std::malloc(size == 0 ? 1 : size)) return p;
  std::abort();  // the test binary has no use for bad_alloc
}
[[gnu::noinline]] void operator delete(void* p) noexcept { std::free(p); }
[[gnu::noinline]] void operator delete(void* p, std::size_t) noexcept { std::free(p); }

namespace bus::detail {
namespace {

bool publish_ok(std::string_view s) { return validate_publish_subject(s).ok(); }
bool subscribe_ok(std::string_view s) { return validate_subscribe_subject(s).ok(); }

std::string publish_message(std::string_view s) {
  const Status status = validate_publish_subject(s);
  return status.ok() ? std::string("<ok>") : status.error().message;
}

std::string subscribe_message(std::string_view s) {
  const Status status = validate_subscribe_subject(s);
  return status.ok() ? std::string("<ok>") : status.error().message;
}

// Literal tokens that merely contain '*' or '>' (sublist_test.go).
const std::vector<std::string_view> kLiteralLookalikes = {
    "foo*", "*foo", "foo**", "**", ">>", "foo.**", "foo*bar", "foo.*bar", "foo*.bar", "*bar",
    "foo>", ">bar", "foo>>", "foo.>>", "foo>bar", "foo.>bar", "foo.*-", "foo.>-", "foo.***.bar",
    "foo.>>>.bar",
};

const std::vector<std::string_view> kEmptyTokenSubjects = {
    "", ".", "..", ".foo", "foo.", "foo..bar", "..foo", "foo..", "foo...bar", "foo.bar.",
};

const std::vector<std::string_view> kWhitespaceSubjects = {
    "foo bar", " foo", "foo ", "foo\tbar", "foo\nbar", "foo\rbar", "foo\fbar", "foo\vbar",
    "foo.bar baz", "foo. .bar",
};

// ---------------------------------------------------------------------------------------
// Validation: what is accepted.

TEST(SubjectValidation, accepts_plain_literal_subjects_for_publish_and_subscribe) {
  for (std::string_view s : {"foo", "foo.bar", "foo.bar.baz", "a.b.c.d.e.f", "$SYS.x", "_INBOX.abc123",
                             "foo-bar.baz_qux", "a:b/c\\d#e+f$g.h", "1.2.3"}) {
    EXPECT_TRUE(publish_ok(s)) << s;
    EXPECT_TRUE(subscribe_ok(s)) << s;
  }
}

TEST(SubjectValidation, tokens_that_only_contain_wildcard_characters_are_literal_and_valid) {
  for (std::string_view s : kLiteralLookalikes) {
    EXPECT_TRUE(subject_is_literal(s)) << s;
    EXPECT_TRUE(publish_ok(s)) << s << ": " << publish_message(s);
    EXPECT_TRUE(subscribe_ok(s)) << s;
  }
}

TEST(SubjectValidation, accepts_wildcard_patterns_for_subscribe) {
  for (std::string_view s : {"*", ">", "foo.*", "foo.>", "*.bar", "*.*", "*.>", "foo.*.baz", "foo.*.>",
                             "*.*.*", "foo.bar.>", "foo.*-.>"}) {
    EXPECT_TRUE(subscribe_ok(s)) << s << ": " << subscribe_message(s);
  }
}

TEST(SubjectValidation, accepts_utf8_tokens_as_ordinary_bytes) {
  for (std::string_view s : {"ünïcødé", "foo.ünïcødé.bar", "日本.東京", "emoji.\xF0\x9F\x9A\x80",
                             // U+00A0 and U+3000 are Unicode spaces but not whitespace bytes.
                             "no\xC2\xA0" "break", "wide\xE3\x80\x80space"}) {
    EXPECT_TRUE(publish_ok(s)) << s;
    EXPECT_TRUE(subscribe_ok(s)) << s;
  }
}

TEST(SubjectValidation, accepts_subjects_up_to_the_length_bound) {
  const std::string longest(kMaxSubjectBytes, 'a');
  EXPECT_TRUE(publish_ok(longest));
  EXPECT_TRUE(subscribe_ok(longest));
  std::string dotted;  // "a.a.a...." of exactly the bound, the most tokens possible
  while (dotted.size() + 2 <= kMaxSubjectBytes) dotted += "a.";
  dotted += 'a';
  ASSERT_EQ(dotted.size(), kMaxSubjectBytes);
  EXPECT_TRUE(publish_ok(dotted));
}

// ---------------------------------------------------------------------------------------
// Validation: what is rejected, and how the message names it.

TEST(SubjectValidation, rejects_empty_tokens_everywhere) {
  for (std::string_view s : kEmptyTokenSubjects) {
    const Status pub = validate_publish_subject(s);
    const Status sub = validate_subscribe_subject(s);
    ASSERT_FALSE(pub.ok()) << "'" << s << "'";
    ASSERT_FALSE(sub.ok()) << "'" << s << "'";
    EXPECT_EQ(pub.error().code, Errc::invalid_subject);
    EXPECT_EQ(sub.error().code, Errc::invalid_subject);
  }
  for (std::string_view s : {".>", "*..foo", "foo.*.", ">."}) EXPECT_FALSE(subscribe_ok(s)) << s;
}

TEST(SubjectValidation, empty_token_message_names_the_byte_where_the_token_starts) {
  EXPECT_EQ(publish_message("foo..bar"), "invalid subject 'foo..bar': empty token at byte 4");
  EXPECT_EQ(publish_message(".foo"), "invalid subject '.foo': empty token at byte 0");
  EXPECT_EQ(publish_message("foo."), "invalid subject 'foo.': empty token at byte 4");
  EXPECT_EQ(subscribe_message("."), "invalid subject '.': empty token at byte 0");
}

TEST(SubjectValidation, rejects_the_empty_subject_with_its_own_message) {
  EXPECT_EQ(publish_message(""), "subject is empty");
  EXPECT_EQ(subscribe_message(""), "subject is empty");
}

TEST(SubjectValidation, rejects_every_whitespace_byte_including_vertical_tab) {
  for (std::string_view s : kWhitespaceSubjects) {
    const Status pub = validate_publish_subject(s);
    const Status sub = validate_subscribe_subject(s);
    ASSERT_FALSE(pub.ok()) << s;
    ASSERT_FALSE(sub.ok()) << s;
    EXPECT_EQ(pub.error().code, Errc::invalid_subject);
  }
  EXPECT_FALSE(subscribe_ok("foo.* ")) << "a wildcard with trailing space is a literal with whitespace";
}

TEST(SubjectValidation, whitespace_message_names_the_byte_and_stays_on_one_line) {
  EXPECT_EQ(publish_message("foo bar"), "invalid subject 'foo bar': whitespace at byte 3");
  EXPECT_EQ(publish_message(" foo"), "invalid subject ' foo': whitespace at byte 0");
  EXPECT_EQ(publish_message("foo\nbar"), "invalid subject 'foo\\nbar': whitespace at byte 3");
  EXPECT_EQ(subscribe_message("a\tb"), "invalid subject 'a\\tb': whitespace at byte 1");
  EXPECT_EQ(subscribe_message("a\vb"), "invalid subject 'a\\vb': whitespace at byte 1");
  for (std::string_view s : kWhitespaceSubjects) {
    EXPECT_EQ(publish_message(s).find_first_of("\n\r\f\v"), std::string::npos) << publish_message(s);
  }
}

TEST(SubjectValidation, rejects_wildcard_tokens_when_publishing) {
  for (std::string_view s : {"*", ">", "foo.*", "foo.>", "*.bar", "foo.*.baz", "*.*", "*.>"}) {
    const Status status = validate_publish_subject(s);
    ASSERT_FALSE(status.ok()) << s;
    EXPECT_EQ(status.error().code, Errc::invalid_subject);
  }
  EXPECT_EQ(publish_message("foo.*"), "invalid subject 'foo.*': wildcards are not allowed when publishing");
  EXPECT_EQ(publish_message(">"), "invalid subject '>': wildcards are not allowed when publishing");
}

TEST(SubjectValidation, rejects_tokens_after_full_wildcard) {
  for (std::string_view s : {">.foo", "foo.>.bar", "foo.>.*", ">.>", "foo.>.>"}) {
    const Status status = validate_subscribe_subject(s);
    ASSERT_FALSE(status.ok()) << s;
    EXPECT_EQ(status.error().code, Errc::invalid_subject);
  }
  EXPECT_EQ(subscribe_message("foo.>.bar"), "invalid subject 'foo.>.bar': '>' must be the last token");
  EXPECT_EQ(subscribe_message("foo.>."), "invalid subject 'foo.>.': '>' must be the last token");
}

TEST(SubjectValidation, reports_the_earliest_broken_rule) {
  EXPECT_EQ(subscribe_message("a b..c"), "invalid subject 'a b..c': whitespace at byte 1");
  EXPECT_EQ(subscribe_message("a..b c"), "invalid subject 'a..b c': empty token at byte 2");
  EXPECT_EQ(subscribe_message("foo.>.b c"), "invalid subject 'foo.>.b c': '>' must be the last token");
  EXPECT_EQ(publish_message("foo.*..bar"), "invalid subject 'foo.*..bar': wildcards are not allowed when publishing");
}

TEST(SubjectValidation, rejects_subjects_over_the_length_bound_without_quoting_them) {
  const std::string too_long(kMaxSubjectBytes + 1, 'a');
  const Status pub = validate_publish_subject(too_long);
  const Status sub = validate_subscribe_subject(too_long);
  ASSERT_FALSE(pub.ok());
  ASSERT_FALSE(sub.ok());
  EXPECT_EQ(pub.error().code, Errc::invalid_subject);
  EXPECT_EQ(pub.error().message, "subject of 256 bytes exceeds the limit of 255");
  EXPECT_EQ(publish_message(std::string(300, 'x')), "subject of 300 bytes exceeds the limit of 255");
  EXPECT_EQ(subscribe_message(std::string(300, 'x')), "subject of 300 bytes exceeds the limit of 255");
}

// ---------------------------------------------------------------------------------------
// Queue groups.

TEST(QueueGroupValidation, accepts_names_without_whitespace_up_to_the_bound) {
  for (std::string_view g : {"q", "workers", "NATS-RPLY-22", "with.dots", "with*star", "ünïcødé"}) {
    EXPECT_TRUE(validate_queue_group(g).ok()) << g;
  }
  EXPECT_TRUE(validate_queue_group(std::string(kMaxQueueGroupBytes, 'q')).ok());
}

TEST(QueueGroupValidation, rejects_empty_whitespace_and_overlong_names_as_invalid_argument) {
  const Status empty = validate_queue_group("");
  ASSERT_FALSE(empty.ok());
  EXPECT_EQ(empty.error().code, Errc::invalid_argument);
  EXPECT_EQ(empty.error().message, "queue group is empty");

  const Status spaced = validate_queue_group("my group");
  ASSERT_FALSE(spaced.ok());
  EXPECT_EQ(spaced.error().code, Errc::invalid_argument);
  EXPECT_EQ(spaced.error().message, "invalid queue group 'my group': whitespace at byte 2");
  for (std::string_view g : {"a\tb", "a\nb", "a\rb", "a\fb", "a\vb", " a", "a "}) {
    EXPECT_FALSE(validate_queue_group(g).ok()) << g;
  }

  const Status too_long = validate_queue_group(std::string(kMaxQueueGroupBytes + 1, 'q'));
  ASSERT_FALSE(too_long.ok());
  EXPECT_EQ(too_long.error().code, Errc::invalid_argument);
  EXPECT_EQ(too_long.error().message, "queue group of 64 bytes exceeds the limit of 63");
}

// ---------------------------------------------------------------------------------------
// subject_is_literal.

TEST(SubjectIsLiteral, is_false_only_when_a_whole_token_is_a_wildcard) {
  for (std::string_view s : {"*", ">", "foo.*", "foo.>", "*.foo", "foo.*.bar", "foo.>.bar"}) {
    EXPECT_FALSE(subject_is_literal(s)) << s;
  }
  for (std::string_view s : {"foo", "foo.bar", "foo*", "**", ">>", "foo.*-", "foo.>-", "*foo.bar>"}) {
    EXPECT_TRUE(subject_is_literal(s)) << s;
  }
}

// ---------------------------------------------------------------------------------------
// subject_matches.

struct MatchCase {
  std::string_view pattern;
  std::string_view subject;
  bool matches;
};

void expect_matches(const std::vector<MatchCase>& cases) {
  for (const MatchCase& c : cases) {
    EXPECT_EQ(subject_matches(c.pattern, c.subject), c.matches)
        << "pattern '" << c.pattern << "' subject '" << c.subject << "'";
  }
}

TEST(SubjectMatches, follows_the_nats_match_literal_table) {
  expect_matches({
      {"foo", "foo", true},
      {"bar", "foo", false},
      {"*", "foo", true},
      {">", "foo", true},
      {">", "foo.bar", true},
      {"foo.>", "foo.bar", true},
      {"bar.>", "foo.bar", false},
      {"stats.>", "stats.test.22", true},
      {"stats.*.*", "stats.test.22", true},
      {"foo", "foo.bar", false},
      {"stats.test.foos", "stats.test.foos", true},
      {"stats.test.foo", "stats.test.foos", false},
      {"stats.test.*", "stats.test", false},
      {"stats.*", "stats.test.foos", false},
      {"stats.*.*.foos", "stats.test.foos", false},
  });
}

TEST(SubjectMatches, literal_tokens_with_wildcard_characters_match_only_themselves) {
  expect_matches({
      {"*bar", "*bar", true},
      {"foo*", "foo*", true},
      {"foo*bar", "foo*bar", true},
      {"foo.***.bar", "foo.***.bar", true},
      {">bar", ">bar", true},
      {"foo>", "foo>", true},
      {"foo>bar", "foo>bar", true},
      {"foo.>>>.bar", "foo.>>>.bar", true},
      {"foo.*-", "foo.*-", true},
      {"foo.*-", "foo.bar", false},
      {"foo.>-", "foo.bar", false},
      {"foo.>-", "foo.>-", true},
      {"foo*", "foobar", false},
      {"**", "foo", false},
      {">>", "foo.bar", false},
      {"foo.**", "foo.bar", false},
  });
}

TEST(SubjectMatches, star_matches_exactly_one_token) {
  expect_matches({
      {"*", "foo", true},
      {"*", "foo.bar", false},
      {"foo.*", "foo.bar", true},
      {"foo.*", "foo", false},
      {"foo.*", "foo.bar.baz", false},
      {"*.bar", "foo.bar", true},
      {"*.bar", "foo.baz", false},
      {"foo.*.baz", "foo.bar.baz", true},
      {"foo.*.baz", "foo.bar.qux.baz", false},
      {"*.*", "a.b", true},
      {"*.*", "a", false},
      {"*.*", "a.b.c", false},
      {"*.*.*", "a.b.c", true},
  });
}

TEST(SubjectMatches, full_wildcard_needs_at_least_one_token) {
  expect_matches({
      {"foo.>", "foo", false},
      {"foo.>", "foo.bar", true},
      {"foo.>", "foo.bar.baz.qux", true},
      {"foo.>", "foobar.baz", false},
      {"foo.*.>", "foo.bar", false},
      {"foo.*.>", "foo.bar.baz", true},
      {"*.>", "foo", false},
      {"*.>", "foo.bar", true},
  });
}

TEST(SubjectMatches, full_wildcard_alone_matches_every_well_formed_subject) {
  for (std::string_view s : {"a", "foo", "foo.bar", "a.b.c.d.e.f.g", "$SYS.x", "*", ">", "日本.東京"}) {
    EXPECT_TRUE(subject_matches(">", s)) << s;
  }
}

TEST(SubjectMatches, subject_with_an_empty_token_matches_nothing) {
  for (std::string_view s : kEmptyTokenSubjects) {
    for (std::string_view p : {">", "*.>", "*", "foo.>", "foo.*", "*.*", "foo", "foo.bar", "*.*.*"}) {
      EXPECT_FALSE(subject_matches(p, s)) << "pattern '" << p << "' subject '" << s << "'";
    }
  }
  EXPECT_FALSE(subject_matches("foo.>", "foo.bar..baz"));
  EXPECT_FALSE(subject_matches("foo.>", "foo.bar."));
}

TEST(SubjectMatches, invalid_patterns_match_nothing) {
  expect_matches({
      {"", "foo", false},
      {"", "", false},
      {"foo..bar", "foo..bar", false},
      {"foo.", "foo", false},
      {".foo", "foo", false},
      {"foo.>.bar", "foo.x.bar", false},
      {"foo.>.bar", "foo.>.bar", false},
      {">.foo", "a.foo", false},
      {">.>", "a.b", false},
  });
}

TEST(SubjectMatches, compares_bytes_case_sensitively) {
  expect_matches({
      {"foo", "Foo", false},
      {"FOO.bar", "foo.bar", false},
      {"foo.BAR", "foo.BAR", true},
      {"*.Bar", "foo.bar", false},
      {"Foo.>", "foo.x", false},
  });
}

TEST(SubjectMatches, utf8_tokens_compare_as_bytes) {
  expect_matches({
      {"foo.ünïcødé.bar", "foo.ünïcødé.bar", true},
      {"foo.*.bar", "foo.ünïcødé.bar", true},
      {"foo.ünïcødé.bar", "foo.unicode.bar", false},
      {"日本.>", "日本.東京.駅", true},
      {"日本.*", "日本.東京", true},
      {"日本.東京", "日本.大阪", false},
      {"\xC3\xA9", "e\xCC\x81", false},  // precomposed vs combining e-acute: no normalisation
  });
}

TEST(SubjectMatches, prefix_of_a_token_is_not_a_match) {
  expect_matches({
      {"foo", "foobar", false},
      {"foobar", "foo", false},
      {"foo.bar", "foo.barbaz", false},
      {"foo.ba", "foo.bar", false},
      {"foo.bar", "foo.bar.baz", false},
      {"foo.bar.baz", "foo.bar", false},
  });
}

TEST(SubjectMatches, matching_and_successful_validation_never_allocate) {
  const std::string pattern = "orders.*.eu-west.>";
  const std::string subject = "orders.12345.eu-west.item.42";
  const long before = g_allocations.load(std::memory_order_relaxed);
  bool all = true;
  for (int i = 0; i < 100; ++i) {
    all = all && subject_matches(pattern, subject);
    all = all && !subject_matches("orders.*.us-east.>", subject);
    all = all && !subject_is_literal(pattern) && subject_is_literal(subject);
    all = all && validate_publish_subject(subject).ok() && validate_subscribe_subject(pattern).ok();
    all = all && validate_queue_group("workers").ok();
  }
  EXPECT_TRUE(all);
  EXPECT_EQ(g_allocations.load(std::memory_order_relaxed), before);

  // The counter is live: an error message does allocate.
  EXPECT_FALSE(validate_publish_subject("orders..item").ok());
  EXPECT_GT(g_allocations.load(std::memory_order_relaxed), before);
}

// Two streams may not capture overlapping subjects (JetStream): the check behind that rule.
TEST(SubjectsOverlap, should_find_a_subject_both_patterns_match_or_none) {
  struct Case {
    const char *a, *b;
    bool overlap;
  };
  for (const Case c : {Case{"orders.eu", "orders.eu", true}, Case{"orders.eu", "orders.us", false},
                       Case{"orders.*", "orders.eu", true}, Case{"orders.*", "*.eu", true},
                       Case{"orders.>", "orders.eu.paid", true}, Case{"orders.>", "orders", false},
                       Case{">", "anything.at.all", true}, Case{"a.*", "a.b.c", false}, Case{"a.*.c", "a.>", true},
                       Case{"a.*.c", "a.b.d", false}, Case{"*", "*.*", false}, Case{"a.b", "a.b.>", false}}) {
    EXPECT_EQ(subjects_overlap(c.a, c.b), c.overlap) << c.a << " vs " << c.b;
    EXPECT_EQ(subjects_overlap(c.b, c.a), c.overlap) << c.b << " vs " << c.a << " (symmetric)";
  }
}

}  // namespace
}  // namespace bus::detail

// tests/unit/sublist_test.cpp — the subscription trie: matching, duplicates, removal and
// pruning, and a randomized comparison against brute-force `subject_matches`.
//
// Matching cases follow nats-server's server/sublist_test.go (TestSublistMatchWithEmptyTokens,
// TestSublistInsertWithWildcardsAsLiterals, TestSublistRemoveWithLargeSubs, ...).
#include "subject/sublist.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <random>
#include <set>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "subject/subject.hpp"

namespace bus::detail {
namespace {

using Ids = std::vector<std::uint32_t>;

Ids sorted_matches(const Sublist& sublist, std::string_view subject) {
  Ids out;
  sublist.match(subject, out);
  std::sort(out.begin(), out.end());
  return out;
}

TEST(Sublist, starts_empty_and_matches_nothing) {
  const Sublist sublist;
  EXPECT_EQ(sublist.size(), 0u);
  EXPECT_EQ(sublist.node_count(), 0u);
  EXPECT_TRUE(sorted_matches(sublist, "foo").empty());
}

TEST(Sublist, literal_pattern_matches_only_the_identical_subject) {
  Sublist sublist;
  ASSERT_TRUE(sublist.insert("foo.bar", 1));
  EXPECT_EQ(sorted_matches(sublist, "foo.bar"), Ids{1});
  EXPECT_TRUE(sorted_matches(sublist, "foo").empty());
  EXPECT_TRUE(sorted_matches(sublist, "foo.bar.baz").empty());
  EXPECT_TRUE(sorted_matches(sublist, "foo.baz").empty());
  EXPECT_TRUE(sorted_matches(sublist, "foo.barbaz").empty());
}

TEST(Sublist, star_matches_one_token_and_full_wildcard_one_or_more) {
  Sublist sublist;
  ASSERT_TRUE(sublist.insert("foo.*", 1));
  ASSERT_TRUE(sublist.insert("foo.>", 2));
  ASSERT_TRUE(sublist.insert("*.bar", 3));
  ASSERT_TRUE(sublist.insert(">", 4));
  ASSERT_TRUE(sublist.insert("foo.*.baz", 5));
  EXPECT_EQ(sorted_matches(sublist, "foo"), Ids{4});
  EXPECT_EQ(sorted_matches(sublist, "foo.bar"), (Ids{1, 2, 3, 4}));
  EXPECT_EQ(sorted_matches(sublist, "foo.bar.baz"), (Ids{2, 4, 5}));
  EXPECT_EQ(sorted_matches(sublist, "foo.bar.qux"), (Ids{2, 4}));
  EXPECT_EQ(sorted_matches(sublist, "baz.bar"), (Ids{3, 4}));
  EXPECT_EQ(sorted_matches(sublist, "baz.qux"), Ids{4});
}

TEST(Sublist, full_wildcard_does_not_match_its_parent_subject) {
  Sublist sublist;
  ASSERT_TRUE(sublist.insert("foo.>", 1));
  EXPECT_TRUE(sorted_matches(sublist, "foo").empty());
  EXPECT_EQ(sorted_matches(sublist, "foo.a"), Ids{1});
}

TEST(Sublist, subject_with_an_empty_token_matches_nothing_not_even_full_wildcard) {
  Sublist sublist;
  ASSERT_TRUE(sublist.insert(">", 1));
  ASSERT_TRUE(sublist.insert("*.>", 2));
  ASSERT_TRUE(sublist.insert("foo.*", 3));
  ASSERT_TRUE(sublist.insert("*", 4));
  for (std::string_view s : {"", ".", ".foo", "..foo", "foo..", "foo.", "foo..bar", "foo...bar"}) {
    EXPECT_TRUE(sorted_matches(sublist, s).empty()) << "'" << s << "'";
  }
}

TEST(Sublist, tokens_containing_wildcard_characters_are_stored_as_literals) {
  Sublist sublist;
  ASSERT_TRUE(sublist.insert("foo.*-", 1));
  ASSERT_TRUE(sublist.insert("foo.>-", 2));
  ASSERT_TRUE(sublist.insert("**", 3));
  ASSERT_TRUE(sublist.insert("foo*", 4));
  EXPECT_TRUE(sorted_matches(sublist, "foo.bar").empty());
  EXPECT_TRUE(sorted_matches(sublist, "foo.bar.baz").empty());
  EXPECT_TRUE(sorted_matches(sublist, "foo").empty());
  EXPECT_TRUE(sorted_matches(sublist, "foobar").empty());
  EXPECT_EQ(sorted_matches(sublist, "foo.*-"), Ids{1});
  EXPECT_EQ(sorted_matches(sublist, "foo.>-"), Ids{2});
  EXPECT_EQ(sorted_matches(sublist, "**"), Ids{3});
  EXPECT_EQ(sorted_matches(sublist, "foo*"), Ids{4});
}

TEST(Sublist, compares_tokens_case_sensitively_and_as_utf8_bytes) {
  Sublist sublist;
  ASSERT_TRUE(sublist.insert("Foo.bar", 1));
  ASSERT_TRUE(sublist.insert("日本.*", 2));
  ASSERT_TRUE(sublist.insert("foo.ünïcødé", 3));
  EXPECT_TRUE(sorted_matches(sublist, "foo.bar").empty());
  EXPECT_EQ(sorted_matches(sublist, "Foo.bar"), Ids{1});
  EXPECT_EQ(sorted_matches(sublist, "日本.東京"), Ids{2});
  EXPECT_TRUE(sorted_matches(sublist, "日本.東京.駅").empty());
  EXPECT_EQ(sorted_matches(sublist, "foo.ünïcødé"), Ids{3});
  EXPECT_TRUE(sorted_matches(sublist, "foo.unicode").empty());
}

TEST(Sublist, appends_an_id_once_per_matching_insert) {
  Sublist sublist;
  // One subscriber id under two overlapping patterns gets two entries, like two NATS sids.
  ASSERT_TRUE(sublist.insert("foo.*", 7));
  ASSERT_TRUE(sublist.insert("foo.>", 7));
  ASSERT_TRUE(sublist.insert("foo.bar", 8));
  ASSERT_TRUE(sublist.insert("foo.bar", 9));
  EXPECT_EQ(sorted_matches(sublist, "foo.bar"), (Ids{7, 7, 8, 9}));
  EXPECT_EQ(sublist.size(), 4u);
}

TEST(Sublist, match_appends_without_clearing_the_output) {
  Sublist sublist;
  ASSERT_TRUE(sublist.insert("foo", 2));
  Ids out{99};
  sublist.match("foo", out);
  EXPECT_EQ(out, (Ids{99, 2}));
}

TEST(Sublist, rejects_a_duplicate_pattern_and_id_pair) {
  Sublist sublist;
  ASSERT_TRUE(sublist.insert("foo.*", 1));
  EXPECT_FALSE(sublist.insert("foo.*", 1));
  EXPECT_TRUE(sublist.insert("foo.*", 2));
  EXPECT_TRUE(sublist.insert("foo.>", 1));
  EXPECT_EQ(sublist.size(), 3u);
  EXPECT_EQ(sorted_matches(sublist, "foo.x"), (Ids{1, 1, 2}));
}

TEST(Sublist, rejects_invalid_patterns_without_creating_nodes) {
  Sublist sublist;
  for (std::string_view p : {"", ".", "foo.", ".foo", "foo..bar", "foo.>.bar", ">.foo", "foo bar", "foo\tbar",
                             "foo.\v"}) {
    EXPECT_FALSE(sublist.insert(p, 1)) << "'" << p << "'";
  }
  EXPECT_FALSE(sublist.insert(std::string(kMaxSubjectBytes + 1, 'a'), 1));
  EXPECT_TRUE(sublist.insert(std::string(kMaxSubjectBytes, 'a'), 1));
  EXPECT_EQ(sublist.size(), 1u);
  EXPECT_EQ(sublist.node_count(), 1u);
}

TEST(Sublist, remove_reports_absent_pairs) {
  Sublist sublist;
  ASSERT_TRUE(sublist.insert("foo.bar", 1));
  EXPECT_FALSE(sublist.remove("foo.bar", 2)) << "wrong id";
  EXPECT_FALSE(sublist.remove("foo", 1)) << "a prefix of a stored pattern";
  EXPECT_FALSE(sublist.remove("foo.bar.baz", 1)) << "an extension of a stored pattern";
  EXPECT_FALSE(sublist.remove("foo.*", 1)) << "a wildcard that covers the pattern";
  EXPECT_FALSE(sublist.remove("foo..bar", 1)) << "an invalid pattern";
  EXPECT_FALSE(sublist.remove("", 1));
  EXPECT_EQ(sublist.size(), 1u);
  EXPECT_EQ(sublist.node_count(), 2u);
  EXPECT_EQ(sorted_matches(sublist, "foo.bar"), Ids{1});

  EXPECT_TRUE(sublist.remove("foo.bar", 1));
  EXPECT_FALSE(sublist.remove("foo.bar", 1)) << "already removed";
}

TEST(Sublist, remove_takes_out_only_the_given_pair) {
  Sublist sublist;
  ASSERT_TRUE(sublist.insert("foo.*", 1));
  ASSERT_TRUE(sublist.insert("foo.*", 2));
  ASSERT_TRUE(sublist.insert("foo.>", 1));
  ASSERT_TRUE(sublist.remove("foo.*", 1));
  EXPECT_EQ(sorted_matches(sublist, "foo.x"), (Ids{1, 2}));
  EXPECT_EQ(sublist.size(), 2u);
}

TEST(Sublist, remove_prunes_nodes_left_empty) {
  Sublist sublist;
  ASSERT_TRUE(sublist.insert("a.b.c", 1));
  EXPECT_EQ(sublist.node_count(), 3u);
  ASSERT_TRUE(sublist.insert("a.b.d", 2));
  EXPECT_EQ(sublist.node_count(), 4u);
  ASSERT_TRUE(sublist.insert("a.*.>", 3));
  EXPECT_EQ(sublist.node_count(), 6u);

  ASSERT_TRUE(sublist.remove("a.b.c", 1));
  EXPECT_EQ(sublist.node_count(), 5u);
  ASSERT_TRUE(sublist.remove("a.*.>", 3));
  EXPECT_EQ(sublist.node_count(), 3u);
  ASSERT_TRUE(sublist.remove("a.b.d", 2));
  EXPECT_EQ(sublist.node_count(), 0u);
  EXPECT_EQ(sublist.size(), 0u);
}

TEST(Sublist, remove_keeps_nodes_that_still_hold_ids_or_children) {
  Sublist sublist;
  ASSERT_TRUE(sublist.insert("a", 1));
  ASSERT_TRUE(sublist.insert("a.b", 2));
  ASSERT_TRUE(sublist.remove("a.b", 2));
  EXPECT_EQ(sublist.node_count(), 1u) << "'a' still holds id 1";
  EXPECT_EQ(sorted_matches(sublist, "a"), Ids{1});

  ASSERT_TRUE(sublist.insert("a.b", 2));
  ASSERT_TRUE(sublist.remove("a", 1));
  EXPECT_EQ(sublist.node_count(), 2u) << "'a' is still the parent of 'a.b'";
  EXPECT_TRUE(sorted_matches(sublist, "a").empty());
  EXPECT_EQ(sorted_matches(sublist, "a.b"), Ids{2});
}

TEST(Sublist, a_removed_pair_can_be_inserted_again) {
  Sublist sublist;
  ASSERT_TRUE(sublist.insert("foo.>", 5));
  ASSERT_TRUE(sublist.remove("foo.>", 5));
  EXPECT_TRUE(sorted_matches(sublist, "foo.x").empty());
  ASSERT_TRUE(sublist.insert("foo.>", 5));
  EXPECT_EQ(sorted_matches(sublist, "foo.x"), Ids{5});
}

TEST(Sublist, moves_keep_every_subscription) {
  Sublist original;
  ASSERT_TRUE(original.insert("foo.*", 1));
  Sublist moved(std::move(original));
  EXPECT_EQ(sorted_matches(moved, "foo.bar"), Ids{1});
  Sublist assigned;
  assigned = std::move(moved);
  EXPECT_EQ(sorted_matches(assigned, "foo.bar"), Ids{1});
  EXPECT_EQ(assigned.size(), 1u);
}

TEST(Sublist, ten_thousand_literal_patterns_each_match_only_their_own_subject) {
  Sublist sublist;
  constexpr std::uint32_t kPatterns = 10'000;
  for (std::uint32_t i = 0; i < kPatterns; ++i) {
    ASSERT_TRUE(sublist.insert("svc." + std::to_string(i) + ".req", i));
  }
  EXPECT_EQ(sublist.size(), kPatterns);
  for (std::uint32_t i = 0; i < kPatterns; i += 97) {
    EXPECT_EQ(sorted_matches(sublist, "svc." + std::to_string(i) + ".req"), Ids{i});
  }
  EXPECT_TRUE(sorted_matches(sublist, "svc.10000.req").empty());
  for (std::uint32_t i = 0; i < kPatterns; ++i) {
    ASSERT_TRUE(sublist.remove("svc." + std::to_string(i) + ".req", i));
  }
  EXPECT_EQ(sublist.node_count(), 0u);
}

// ---------------------------------------------------------------------------------------
// Randomized: the trie must agree with subject_matches applied to every stored pair.

class RandomSubjects {
 public:
  explicit RandomSubjects(std::uint32_t seed) : rng_(seed) {}

  // Mostly valid patterns over a tiny alphabet so that many of them overlap; now and then
  // an invalid one (empty token, '>' not last) that insert must refuse.
  std::string pattern() {
    static constexpr std::string_view kTokens[] = {"a", "b", "c", "a*", "*", "*", ">"};
    std::string out;
    const std::size_t tokens = 1 + below(4);
    for (std::size_t i = 0; i < tokens; ++i) {
      if (i != 0) out += '.';
      std::string_view token = kTokens[below(std::size(kTokens))];
      if (token == ">" && i + 1 != tokens && below(4) != 0) token = "*";
      if (below(100) == 0) token = "";
      out += token;
    }
    return out;
  }

  // Subjects include the literal tokens '*' and '>' and occasional empty tokens, where the
  // trie and subject_matches must still agree.
  std::string subject() {
    static constexpr std::string_view kTokens[] = {"a", "b", "c", "a*", "d", "*", ">"};
    std::string out;
    const std::size_t tokens = 1 + below(5);
    for (std::size_t i = 0; i < tokens; ++i) {
      if (i != 0) out += '.';
      if (below(40) != 0) out += kTokens[below(std::size(kTokens))];
    }
    return out;
  }

  std::uint32_t id() { return static_cast<std::uint32_t>(below(300)); }
  std::size_t below(std::size_t n) { return rng_() % n; }  // modulo keeps the sequence portable

 private:
  std::mt19937 rng_;
};

using Pairs = std::set<std::pair<std::string, std::uint32_t>>;

Ids brute_force(const Pairs& pairs, std::string_view subject) {
  Ids out;
  for (const auto& [pattern, id] : pairs) {
    if (subject_matches(pattern, subject)) out.push_back(id);
  }
  std::sort(out.begin(), out.end());
  return out;
}

void expect_agrees_with_brute_force(const Sublist& sublist, const Pairs& pairs, RandomSubjects& random) {
  ASSERT_EQ(sublist.size(), pairs.size());
  std::size_t nonempty = 0;
  for (int i = 0; i < 2'000; ++i) {
    const std::string subject = random.subject();
    const Ids expected = brute_force(pairs, subject);
    ASSERT_EQ(sorted_matches(sublist, subject), expected) << "subject '" << subject << "'";
    if (!expected.empty()) ++nonempty;
  }
  if (!pairs.empty()) {
    EXPECT_GT(nonempty, 100u) << "the generator should produce plenty of matches";
  }
}

TEST(SublistRandomized, agrees_with_brute_force_subject_matches_through_inserts_and_removes) {
  RandomSubjects random(20240601);
  Sublist sublist;
  Pairs pairs;

  int invalid = 0;
  int duplicate = 0;
  for (int i = 0; i < 4'000; ++i) {
    const std::string pattern = random.pattern();
    const std::uint32_t id = random.id();
    const bool valid = validate_subscribe_subject(pattern).ok();
    const bool fresh = valid && pairs.emplace(pattern, id).second;
    ASSERT_EQ(sublist.insert(pattern, id), fresh) << "pattern '" << pattern << "' id " << id;
    invalid += valid ? 0 : 1;
    duplicate += valid && !fresh ? 1 : 0;
  }
  EXPECT_GT(invalid, 0) << "the generator should exercise rejected patterns";
  EXPECT_GT(duplicate, 0) << "the generator should exercise duplicate pairs";
  expect_agrees_with_brute_force(sublist, pairs, random);

  // Remove about half, plus attempts at pairs that are not there.
  std::vector<std::pair<std::string, std::uint32_t>> stored(pairs.begin(), pairs.end());
  for (const auto& [pattern, id] : stored) {
    if (random.below(2) == 0) continue;
    ASSERT_TRUE(sublist.remove(pattern, id)) << pattern << " " << id;
    pairs.erase({pattern, id});
  }
  for (int i = 0; i < 1'000; ++i) {
    const std::string pattern = random.pattern();
    const std::uint32_t id = random.id();
    ASSERT_EQ(sublist.remove(pattern, id), pairs.erase({pattern, id}) == 1) << pattern << " " << id;
  }
  expect_agrees_with_brute_force(sublist, pairs, random);

  // Removing everything leaves no node behind.
  for (const auto& [pattern, id] : pairs) ASSERT_TRUE(sublist.remove(pattern, id));
  EXPECT_EQ(sublist.size(), 0u);
  EXPECT_EQ(sublist.node_count(), 0u);
}

}  // namespace
}  // namespace bus::detail

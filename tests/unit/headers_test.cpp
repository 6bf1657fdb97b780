// tests/unit/headers_test.cpp — bus::Headers: building, looking up, encoding and parsing NATS
// header blocks.
//
// Semantics reference, section 4: the block is `NATS/1.0[ status[ description]]\r\n`, then
// `Name: value\r\n` lines, then `\r\n`; names are case-sensitive (exact match, as the server's
// getHeaderKeyIndex) and may repeat. Status lines seen on the wire: `NATS/1.0 503\r\n\r\n` (no
// responders), `NATS/1.0 408 Request Timeout`, `NATS/1.0 100 Idle Heartbeat`.
#include "bus/headers.hpp"

#include <gtest/gtest.h>

#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "bus/message.hpp"
#include "bus/result.hpp"

namespace bus {
namespace {

using namespace std::string_literals;
using Entries = std::vector<std::pair<std::string, std::string>>;

Entries entries_of(const Headers& h) {
  Entries out;
  for (auto [k, v] : h.entries()) out.emplace_back(k, v);
  return out;
}

std::vector<std::string> values_of(const Headers& h, std::string_view key) {
  std::vector<std::string> out;
  for (auto v : h.values(key)) out.emplace_back(v);
  return out;
}

// Printable form of a block for assertion messages: CR and LF made visible.
std::string visible(std::string_view block) {
  std::string out;
  for (char c : block) {
    if (c == '\r') {
      out += "\\r";
    } else if (c == '\n') {
      out += "\\n";
    } else {
      out += c;
    }
  }
  return out;
}

// ------------------------------------------------------------------------------ empty object

TEST(Headers, should_be_empty_with_no_encoded_bytes_when_default_constructed) {
  const Headers h;
  EXPECT_TRUE(h.empty());
  EXPECT_EQ(h.size(), 0u);
  EXPECT_EQ(h.status(), 0);
  EXPECT_EQ(h.description(), "");
  EXPECT_EQ(h.encoded(), "");  // a message without headers carries no header bytes
  EXPECT_FALSE(h.get("Anything").has_value());
  EXPECT_TRUE(h.values("Anything").empty());
  EXPECT_TRUE(h.entries().empty());
}

TEST(Headers, should_parse_an_empty_block_as_no_headers) {
  auto h = Headers::parse("");
  ASSERT_TRUE(h) << h.error().message;
  EXPECT_TRUE(h->empty());
  EXPECT_EQ(h->encoded(), "");
}

// ---------------------------------------------------------------------------------- encoding

TEST(Headers, should_encode_one_header_exactly_as_the_nats_wire_block) {
  Headers h;
  ASSERT_TRUE(h.add("Key", "value"));
  EXPECT_EQ(h.encoded(), "NATS/1.0\r\nKey: value\r\n\r\n") << visible(h.encoded());
  EXPECT_EQ(h.size(), 1u);
  EXPECT_FALSE(h.empty());
  EXPECT_EQ(h.status(), 0);
}

TEST(Headers, should_encode_lines_in_insertion_order_with_repeats) {
  Headers h;
  ASSERT_TRUE(h.add("Trace-Id", "abc"));
  ASSERT_TRUE(h.add("Tag", "a"));
  ASSERT_TRUE(h.add("Tag", "b"));
  EXPECT_EQ(h.encoded(), "NATS/1.0\r\nTrace-Id: abc\r\nTag: a\r\nTag: b\r\n\r\n") << visible(h.encoded());
  EXPECT_EQ(h.size(), 3u);
}

TEST(Headers, should_accept_an_empty_value_and_encode_it) {
  Headers h;
  ASSERT_TRUE(h.add("Empty", ""));
  EXPECT_EQ(h.get("Empty"), std::optional<std::string_view>(""));
  auto parsed = Headers::parse(h.encoded());
  ASSERT_TRUE(parsed) << parsed.error().message << " in " << visible(h.encoded());
  EXPECT_EQ(parsed->get("Empty"), std::optional<std::string_view>(""));
  EXPECT_EQ(parsed->size(), 1u);
}

// ---------------------------------------------------------------------------- add/get/values

TEST(Headers, should_keep_every_value_of_a_repeated_key_in_order) {
  Headers h;
  ASSERT_TRUE(h.add("Tag", "a"));
  ASSERT_TRUE(h.add("Other", "x"));
  ASSERT_TRUE(h.add("Tag", "b"));
  ASSERT_TRUE(h.add("Tag", "c"));
  EXPECT_EQ(h.get("Tag"), std::optional<std::string_view>("a"));  // the first
  EXPECT_EQ(values_of(h, "Tag"), (std::vector<std::string>{"a", "b", "c"}));
  EXPECT_EQ(values_of(h, "Other"), (std::vector<std::string>{"x"}));
  EXPECT_EQ(entries_of(h), (Entries{{"Tag", "a"}, {"Other", "x"}, {"Tag", "b"}, {"Tag", "c"}}));
}

TEST(Headers, should_preserve_key_case_and_look_keys_up_by_exact_case) {
  Headers h;
  ASSERT_TRUE(h.add("Trace-Id", "upper"));
  ASSERT_TRUE(h.add("trace-id", "lower"));
  EXPECT_EQ(h.get("Trace-Id"), std::optional<std::string_view>("upper"));
  EXPECT_EQ(h.get("trace-id"), std::optional<std::string_view>("lower"));
  EXPECT_FALSE(h.get("TRACE-ID").has_value());
  EXPECT_FALSE(h.get("Trace-id").has_value());
  EXPECT_EQ(values_of(h, "Trace-Id"), (std::vector<std::string>{"upper"}));
  EXPECT_EQ(entries_of(h), (Entries{{"Trace-Id", "upper"}, {"trace-id", "lower"}}));
  EXPECT_NE(h.encoded().find("Trace-Id: upper\r\n"), std::string::npos) << visible(h.encoded());
  EXPECT_NE(h.encoded().find("trace-id: lower\r\n"), std::string::npos) << visible(h.encoded());
}

TEST(Headers, should_not_match_a_key_that_is_only_a_prefix_or_extension_of_another) {
  Headers h;
  ASSERT_TRUE(h.add("Key", "1"));
  ASSERT_TRUE(h.add("Key-Long", "2"));
  EXPECT_EQ(h.get("Key"), std::optional<std::string_view>("1"));
  EXPECT_EQ(h.get("Key-Long"), std::optional<std::string_view>("2"));
  EXPECT_FALSE(h.get("Ke").has_value());
  EXPECT_FALSE(h.get("Key-").has_value());
  EXPECT_EQ(h.values("Key").size(), 1u);
}

TEST(Headers, should_keep_colons_inside_a_value) {
  Headers h;
  ASSERT_TRUE(h.add("Location", "http://host:4222/a:b"));
  EXPECT_EQ(h.get("Location"), std::optional<std::string_view>("http://host:4222/a:b"));
  auto parsed = Headers::parse(h.encoded());
  ASSERT_TRUE(parsed) << parsed.error().message;
  EXPECT_EQ(parsed->get("Location"), std::optional<std::string_view>("http://host:4222/a:b"));
}

// --------------------------------------------------------------------------------- set/remove

TEST(Headers, should_replace_every_value_of_a_key_on_set_and_leave_other_keys_alone) {
  Headers h;
  ASSERT_TRUE(h.add("Tag", "a"));
  ASSERT_TRUE(h.add("Keep", "k"));
  ASSERT_TRUE(h.add("Tag", "b"));
  ASSERT_TRUE(h.set("Tag", "z"));
  EXPECT_EQ(values_of(h, "Tag"), (std::vector<std::string>{"z"}));
  EXPECT_EQ(values_of(h, "Keep"), (std::vector<std::string>{"k"}));
  EXPECT_EQ(h.size(), 2u);
  auto parsed = Headers::parse(h.encoded());
  ASSERT_TRUE(parsed) << parsed.error().message << " in " << visible(h.encoded());
  EXPECT_EQ(entries_of(*parsed), entries_of(h));
}

TEST(Headers, should_add_a_key_on_set_when_it_is_absent) {
  Headers h;
  ASSERT_TRUE(h.set("New", "1"));
  EXPECT_EQ(h.encoded(), "NATS/1.0\r\nNew: 1\r\n\r\n") << visible(h.encoded());
  EXPECT_EQ(h.size(), 1u);
}

TEST(Headers, should_set_only_the_exact_case_key) {
  Headers h;
  ASSERT_TRUE(h.add("Tag", "a"));
  ASSERT_TRUE(h.add("tag", "b"));
  ASSERT_TRUE(h.set("tag", "c"));
  EXPECT_EQ(values_of(h, "Tag"), (std::vector<std::string>{"a"}));
  EXPECT_EQ(values_of(h, "tag"), (std::vector<std::string>{"c"}));
}

TEST(Headers, should_remove_every_value_of_a_key_and_report_how_many) {
  Headers h;
  ASSERT_TRUE(h.add("Tag", "a"));
  ASSERT_TRUE(h.add("Keep", "k"));
  ASSERT_TRUE(h.add("Tag", "b"));
  EXPECT_EQ(h.remove("Tag"), 2u);
  EXPECT_FALSE(h.get("Tag").has_value());
  EXPECT_EQ(h.size(), 1u);
  EXPECT_EQ(h.encoded(), "NATS/1.0\r\nKeep: k\r\n\r\n") << visible(h.encoded());
}

TEST(Headers, should_remove_nothing_for_a_missing_key_or_a_key_of_other_case) {
  Headers h;
  ASSERT_TRUE(h.add("Tag", "a"));
  const std::string before = h.encoded();
  EXPECT_EQ(h.remove("Missing"), 0u);
  EXPECT_EQ(h.remove("tag"), 0u);
  EXPECT_EQ(h.encoded(), before);
  EXPECT_EQ(h.size(), 1u);
}

TEST(Headers, should_become_empty_again_when_the_last_header_is_removed) {
  Headers h;
  ASSERT_TRUE(h.add("Only", "1"));
  EXPECT_EQ(h.remove("Only"), 1u);
  EXPECT_TRUE(h.empty());
  EXPECT_EQ(h.size(), 0u);
  EXPECT_EQ(h.encoded(), "");  // back to "no header bytes at all"
  ASSERT_TRUE(h.add("Again", "2"));
  EXPECT_EQ(h.encoded(), "NATS/1.0\r\nAgain: 2\r\n\r\n") << visible(h.encoded());
}

// --------------------------------------------------------------------------- invalid keys/values

TEST(Headers, should_reject_invalid_keys_with_invalid_argument_and_change_nothing) {
  const std::vector<std::string> bad_keys = {
      "",       "a:b",   ":",      "a b",    " a",      "a ",   "a\tb", "a\rb",
      "a\nb",   "a\r\n", "\x01z",  "z\x1f",  "a\x7f",   "\0k"s,
  };
  for (const auto& key : bad_keys) {
    Headers h;
    ASSERT_TRUE(h.add("Pre", "1"));
    const std::string before = h.encoded();
    const Status added = h.add(key, "v");
    ASSERT_FALSE(added) << "add accepted key '" << visible(key) << "'";
    EXPECT_EQ(added.error().code, Errc::invalid_argument) << visible(key);
    EXPECT_FALSE(added.error().message.empty());
    const Status set = h.set(key, "v");
    ASSERT_FALSE(set) << "set accepted key '" << visible(key) << "'";
    EXPECT_EQ(set.error().code, Errc::invalid_argument) << visible(key);
    EXPECT_EQ(h.encoded(), before) << "a rejected key changed the block: " << visible(key);
    EXPECT_EQ(h.size(), 1u);
  }
}

TEST(Headers, should_reject_values_holding_cr_or_lf_with_invalid_argument_and_change_nothing) {
  const std::vector<std::string> bad_values = {"a\rb", "a\nb", "a\r\nb", "\r\n", "end\n", "\rstart",
                                               "v\r\nInjected: x"};
  for (const auto& value : bad_values) {
    Headers h;
    ASSERT_TRUE(h.add("Pre", "1"));
    const std::string before = h.encoded();
    const Status added = h.add("Key", value);
    ASSERT_FALSE(added) << "add accepted value '" << visible(value) << "'";
    EXPECT_EQ(added.error().code, Errc::invalid_argument);
    const Status set = h.set("Pre", value);
    ASSERT_FALSE(set) << "set accepted value '" << visible(value) << "'";
    EXPECT_EQ(set.error().code, Errc::invalid_argument);
    EXPECT_EQ(h.encoded(), before) << "a rejected value changed the block: " << visible(value);
    EXPECT_EQ(h.get("Pre"), std::optional<std::string_view>("1"));
  }
}

TEST(Headers, should_accept_printable_punctuation_in_keys_and_values) {
  Headers h;
  ASSERT_TRUE(h.add("Nats-Msg-Id", "id_1.2-3"));
  ASSERT_TRUE(h.add("X_Custom.Key~!", "value with spaces, tabs\tand = signs"));
  auto parsed = Headers::parse(h.encoded());
  ASSERT_TRUE(parsed) << parsed.error().message;
  EXPECT_EQ(parsed->get("X_Custom.Key~!"), std::optional<std::string_view>("value with spaces, tabs\tand = signs"));
}

// ------------------------------------------------------------------------------ status lines

TEST(Headers, should_parse_a_no_responders_status_block) {
  auto h = Headers::parse("NATS/1.0 503\r\n\r\n");
  ASSERT_TRUE(h) << h.error().message;
  EXPECT_EQ(h->status(), 503);
  EXPECT_EQ(h->description(), "");
  EXPECT_EQ(h->size(), 0u);
  EXPECT_FALSE(h->empty());  // a status alone is not "no headers"
  EXPECT_TRUE(h->entries().empty());
  EXPECT_EQ(h->encoded(), "NATS/1.0 503\r\n\r\n");
}

TEST(Headers, should_parse_a_status_with_a_description_and_header_lines) {
  const std::string block = "NATS/1.0 408 Request Timeout\r\nNats-Pending-Messages: 1\r\nNats-Pending-Bytes: 0\r\n\r\n";
  auto h = Headers::parse(block);
  ASSERT_TRUE(h) << h.error().message;
  EXPECT_EQ(h->status(), 408);
  EXPECT_EQ(h->description(), "Request Timeout");
  EXPECT_EQ(h->size(), 2u);
  EXPECT_EQ(h->get("Nats-Pending-Messages"), std::optional<std::string_view>("1"));
  EXPECT_EQ(h->get("Nats-Pending-Bytes"), std::optional<std::string_view>("0"));
  EXPECT_EQ(h->encoded(), block);
}

TEST(Headers, should_parse_the_no_responders_block_with_the_subject_header) {
  auto h = Headers::parse("NATS/1.0 503\r\nNats-Subject: svc.echo\r\n\r\n");
  ASSERT_TRUE(h) << h.error().message;
  EXPECT_EQ(h->status(), 503);
  EXPECT_EQ(h->get("Nats-Subject"), std::optional<std::string_view>("svc.echo"));
}

TEST(Headers, should_parse_multi_word_descriptions) {
  auto h = Headers::parse("NATS/1.0 100 Idle Heartbeat\r\n\r\n");
  ASSERT_TRUE(h) << h.error().message;
  EXPECT_EQ(h->status(), 100);
  EXPECT_EQ(h->description(), "Idle Heartbeat");
  auto cd = Headers::parse("NATS/1.0 409 Message Size Exceeds MaxBytes\r\n\r\n");
  ASSERT_TRUE(cd) << cd.error().message;
  EXPECT_EQ(cd->status(), 409);
  EXPECT_EQ(cd->description(), "Message Size Exceeds MaxBytes");
}

TEST(Headers, should_keep_the_status_line_when_headers_are_added_and_removed) {
  auto h = Headers::parse("NATS/1.0 503\r\n\r\n");
  ASSERT_TRUE(h) << h.error().message;
  ASSERT_TRUE(h->add("X", "1"));
  EXPECT_EQ(h->encoded(), "NATS/1.0 503\r\nX: 1\r\n\r\n") << visible(h->encoded());
  EXPECT_EQ(h->status(), 503);
  EXPECT_EQ(h->remove("X"), 1u);
  EXPECT_EQ(h->encoded(), "NATS/1.0 503\r\n\r\n") << visible(h->encoded());
  EXPECT_EQ(h->status(), 503);
  EXPECT_FALSE(h->empty());

  auto d = Headers::parse("NATS/1.0 408 Request Timeout\r\n\r\n");
  ASSERT_TRUE(d) << d.error().message;
  ASSERT_TRUE(d->set("K", "v"));
  EXPECT_EQ(d->encoded(), "NATS/1.0 408 Request Timeout\r\nK: v\r\n\r\n") << visible(d->encoded());
}

// --------------------------------------------------------------------------- malformed blocks

TEST(Headers, should_reject_malformed_blocks_with_invalid_argument) {
  const std::vector<std::pair<std::string, std::string>> malformed = {
      {"NATS/1.0", "no line end at all"},
      {"NATS/1.0\r\n", "version line only, no closing empty line"},
      {"NATS/1.0\r\nKey: v\r\n", "no closing empty line"},
      {"NATS/1.0\r\nKey: v", "unterminated header line"},
      {"NATS/1.0\nKey: v\n\n", "bare LF line ends"},
      {"HTTP/1.0\r\n\r\n", "wrong version"},
      {"NATS/2.0\r\n\r\n", "unknown version"},
      {"nats/1.0\r\n\r\n", "version is case-sensitive"},
      {"\r\n\r\n", "no version line"},
      {"Key: v\r\n\r\n", "header line without version line"},
      {"NATS/1.0 50\r\n\r\n", "two-digit status"},
      {"NATS/1.0 5030\r\n\r\n", "four-digit status"},
      {"NATS/1.0 abc\r\n\r\n", "non-numeric status"},
      {"NATS/1.0 -12\r\n\r\n", "negative status"},
      {"NATS/1.0\r\nNoColon\r\n\r\n", "header line without colon"},
      {"NATS/1.0\r\n: value\r\n\r\n", "empty key"},
      {"NATS/1.0\r\nBad Key: v\r\n\r\n", "space inside key"},
      {"NATS/1.0\r\n\tKey: v\r\n\r\n", "tab before key"},
      {"NATS/1.0\r\nKey: v\r\n\r\nPayload", "bytes after the closing empty line"},
      {"NATS/1.0\r\nKey: v\r\n\r\n\r\n", "an extra empty line"},
      {"NATS/1.0\r\n\r\nKey: v\r\n\r\n", "header line after the closing empty line"},
  };
  for (const auto& [block, why] : malformed) {
    auto h = Headers::parse(block);
    EXPECT_FALSE(h) << "parse accepted a block with " << why << ": " << visible(block);
    if (h) continue;
    EXPECT_EQ(h.error().code, Errc::invalid_argument) << why;
    EXPECT_FALSE(h.error().message.empty()) << why;
  }
}

// A parsed object must obey the same rules as one built with add(): a value holding a bare CR
// or LF cannot be re-encoded as one header line (it would split into two on the wire).
TEST(Headers, should_reject_a_block_whose_value_holds_a_bare_cr_or_lf) {
  const std::vector<std::string> blocks = {
      "NATS/1.0\r\nKey: a\nInjected: b\r\n\r\n",
      "NATS/1.0\r\nKey: a\rb\r\n\r\n",
  };
  for (const auto& block : blocks) {
    auto h = Headers::parse(block);
    EXPECT_FALSE(h) << "parse accepted " << visible(block) << " (value '"
                    << visible(h ? std::string(h->get("Key").value_or("<none>")) : "") << "')";
    if (!h) {
      EXPECT_EQ(h.error().code, Errc::invalid_argument);
    }
  }
}

// ---------------------------------------------------------------------------------- round trip

TEST(Headers, should_round_trip_through_parse_of_encoded) {
  Headers h;
  ASSERT_TRUE(h.add("Trace-Id", "abc-123"));
  ASSERT_TRUE(h.add("Tag", "a"));
  ASSERT_TRUE(h.add("tag", "lower"));
  ASSERT_TRUE(h.add("Tag", "b"));
  ASSERT_TRUE(h.add("Empty", ""));
  ASSERT_TRUE(h.add("Url", "nats://h:4222"));
  auto parsed = Headers::parse(h.encoded());
  ASSERT_TRUE(parsed) << parsed.error().message << " in " << visible(h.encoded());
  EXPECT_EQ(parsed->encoded(), h.encoded());
  EXPECT_EQ(entries_of(*parsed), entries_of(h));
  EXPECT_EQ(parsed->size(), h.size());
  EXPECT_EQ(parsed->status(), 0);
  EXPECT_EQ(values_of(*parsed, "Tag"), (std::vector<std::string>{"a", "b"}));

  // And again, after editing the parsed copy.
  ASSERT_TRUE(parsed->set("Tag", "only"));
  EXPECT_EQ(parsed->remove("Empty"), 1u);
  auto again = Headers::parse(parsed->encoded());
  ASSERT_TRUE(again) << again.error().message << " in " << visible(parsed->encoded());
  EXPECT_EQ(entries_of(*again), entries_of(*parsed));
  EXPECT_EQ(again->encoded(), parsed->encoded());
}

TEST(Headers, should_round_trip_status_blocks) {
  for (const std::string block : {"NATS/1.0 503\r\n\r\n", "NATS/1.0 408 Request Timeout\r\nA: 1\r\n\r\n",
                                  "NATS/1.0 100 FlowControl Request\r\n\r\n"}) {
    auto h = Headers::parse(block);
    ASSERT_TRUE(h) << h.error().message << " in " << visible(block);
    auto again = Headers::parse(h->encoded());
    ASSERT_TRUE(again) << again.error().message;
    EXPECT_EQ(again->encoded(), block);
    EXPECT_EQ(again->status(), h->status());
    EXPECT_EQ(again->description(), h->description());
    EXPECT_EQ(entries_of(*again), entries_of(*h));
  }
}

TEST(Headers, should_round_trip_many_headers) {
  Headers h;
  for (int i = 0; i < 200; ++i) ASSERT_TRUE(h.add("K" + std::to_string(i % 17), "v" + std::to_string(i)));
  auto parsed = Headers::parse(h.encoded());
  ASSERT_TRUE(parsed) << parsed.error().message;
  EXPECT_EQ(parsed->size(), 200u);
  EXPECT_EQ(entries_of(*parsed), entries_of(h));
  EXPECT_EQ(parsed->values("K3").size(), h.values("K3").size());
}

// ------------------------------------------------------------------------ Message::header()

TEST(Headers, should_be_reachable_through_message_header) {
  Message m;
  auto none = m.header();
  ASSERT_TRUE(none) << none.error().message;
  EXPECT_TRUE(none->empty());

  Headers h;
  ASSERT_TRUE(h.add("X-Req", "42"));
  m.headers = h.encoded();
  auto got = m.header();
  ASSERT_TRUE(got) << got.error().message;
  EXPECT_EQ(got->get("X-Req"), std::optional<std::string_view>("42"));
  auto via_view = m.view().header();
  ASSERT_TRUE(via_view) << via_view.error().message;
  EXPECT_EQ(via_view->get("X-Req"), std::optional<std::string_view>("42"));

  m.headers = "garbage";
  auto bad = m.header();
  ASSERT_FALSE(bad);
  EXPECT_EQ(bad.error().code, Errc::invalid_argument);
}

}  // namespace
}  // namespace bus

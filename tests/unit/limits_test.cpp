// limits_test.cpp — deleting messages (journal::Journal::remove), stream limits and purges
// (stream/limits.hpp): what is kept, what readers see, what is left on disk.
#include <gtest/gtest.h>

#include <filesystem>
#include <string>

#include "journal/journal.hpp"
#include "os/process.hpp"
#include "stream/limits.hpp"
#include "journal_helpers.hpp"
#include "temp_dir.hpp"

namespace bus::detail::stream {
namespace {

using journal::Journal;
using journal::JournalOptions;
using journal::ReadStatus;
using journal::RecordView;

using bus::test::open_journal;

std::size_t files_in(const std::string& dir) {
  std::size_t n = 0;
  for (const auto& e : std::filesystem::directory_iterator(dir)) n += e.path().extension() == ".jrnl" ? 1 : 0;
  return n;
}

TEST(StreamDelete, should_hide_a_deleted_message_from_readers_and_count_it_across_a_reopen) {
  bus::test::TempDir dir;
  {
    auto j = open_journal(dir.sub("s"));
    for (int i = 1; i <= 5; ++i) ASSERT_TRUE(j->append("a", "", "m" + std::to_string(i)));
    ASSERT_TRUE(j->remove(2));
    ASSERT_TRUE(j->remove(1));
    EXPECT_FALSE(j->remove(2)) << "deleted already";
    EXPECT_FALSE(j->remove(9)) << "not stored";
    EXPECT_FALSE(j->read(2)) << "a deleted message is not found";
    EXPECT_EQ(j->deleted_count(), 2u);
    EXPECT_EQ(j->first_live_seq(), 3u);
    auto c = j->cursor(1);
    ASSERT_TRUE(c);
    RecordView v;
    ASSERT_EQ(c->next(v), ReadStatus::ok);
    EXPECT_EQ(v.sequence, 3u) << "the cursor steps over deleted records";
  }
  auto again = open_journal(dir.sub("s"));
  EXPECT_EQ(again->deleted_count(), 2u) << "the marks are in the file";
  EXPECT_EQ(live_messages(*again), 3u);
  EXPECT_EQ(again->first_live_seq(), 3u);
}

TEST(StreamLimits, should_leave_counts_to_publishers_under_discard_new_but_still_apply_age_and_per_subject) {
  bus::test::TempDir dir;
  auto j = open_journal(dir.sub("s"));
  for (int i = 1; i <= 6; ++i) ASSERT_TRUE(j->append(i % 2 == 0 ? "even" : "odd", "", "m" + std::to_string(i)));
  StreamConfig c;
  c.discard = Discard::new_messages;
  c.max_msgs = 2;  // over it (as an edit can leave a stream): not trimmed, publishers refuse
  SubjectIndex index;
  const auto now = static_cast<std::int64_t>(realtime_ns());
  EXPECT_EQ(enforce_limits(*j, c, index, now), 0u);
  EXPECT_EQ(live_messages(*j), 6u);
  c.max_msgs_per_subject = 2;  // the oldest of each subject go, as JetStream does
  EXPECT_EQ(enforce_limits(*j, c, index, now), 2u);
  EXPECT_FALSE(j->read(1));
  EXPECT_FALSE(j->read(2));
  c.max_age = std::chrono::seconds(1);  // ages expire whatever the discard policy
  EXPECT_EQ(enforce_limits(*j, c, index, now + 2'000'000'000), 4u);
  EXPECT_EQ(live_messages(*j), 0u);
}

TEST(StreamLimits, should_keep_the_newest_max_msgs_and_remove_segments_left_empty) {
  bus::test::TempDir dir;
  auto j = open_journal(dir.sub("s"), 64 << 10);
  for (int i = 1; i <= 1000; ++i) ASSERT_TRUE(j->append("a", "", std::string(200, 'x')));
  const std::size_t before = files_in(dir.sub("s"));
  ASSERT_GT(before, 3u);
  StreamConfig c;
  c.max_msgs = 100;
  SubjectIndex index;
  EXPECT_EQ(enforce_limits(*j, c, index, 0), 900u);
  EXPECT_EQ(live_messages(*j), 100u);
  EXPECT_EQ(j->first_live_seq(), 901u);
  EXPECT_LT(files_in(dir.sub("s")), before) << "whole segments of deleted records are removed";
  EXPECT_TRUE(j->read(901));
  EXPECT_FALSE(j->read(900));
  // More appended: the limit holds at the next pass.
  for (int i = 0; i < 10; ++i) ASSERT_TRUE(j->append("a", "", "y"));
  EXPECT_EQ(enforce_limits(*j, c, index, 0), 10u);
  EXPECT_EQ(live_messages(*j), 100u);
}

TEST(StreamLimits, should_apply_max_bytes_max_age_and_max_msgs_per_subject) {
  bus::test::TempDir dir;
  auto j = open_journal(dir.sub("s"));
  for (int i = 1; i <= 10; ++i) ASSERT_TRUE(j->append("a." + std::to_string(i % 2), "", std::string(100, 'x')));
  StreamConfig bytes;
  bytes.max_bytes = 5 * 160;  // a record of 100 B payload and 3 B subject takes 144 B
  SubjectIndex index;
  enforce_limits(*j, bytes, index, 0);
  EXPECT_LE(live_bytes(*j), 800u);
  EXPECT_GE(live_messages(*j), 5u);

  StreamConfig per_subject;
  per_subject.max_msgs_per_subject = 1;
  SubjectIndex subjects;
  enforce_limits(*j, per_subject, subjects, 0);
  EXPECT_EQ(live_messages(*j), 2u) << "the newest of a.0 and of a.1";
  EXPECT_TRUE(j->read(9));
  EXPECT_TRUE(j->read(10));

  StreamConfig age;
  age.max_age = std::chrono::seconds(1);
  const std::int64_t an_hour_later = static_cast<std::int64_t>(j->read(10)->timestamp_ns) + 3'600'000'000'000;
  enforce_limits(*j, age, index, an_hour_later);
  EXPECT_EQ(live_messages(*j), 0u) << "everything is older than max_age an hour later";
}

TEST(StreamPurge, should_purge_all_by_subject_keeping_n_and_below_a_sequence) {
  bus::test::TempDir dir;
  auto j = open_journal(dir.sub("s"));
  for (int i = 1; i <= 12; ++i) ASSERT_TRUE(j->append(i % 2 ? "odd" : "even", "", "m"));
  EXPECT_EQ(purge(*j, "odd", 2, 0), 4u) << "6 odd ones, the newest 2 kept";
  EXPECT_TRUE(j->read(9));
  EXPECT_TRUE(j->read(11));
  EXPECT_FALSE(j->read(7));
  EXPECT_EQ(purge(*j, "", 0, 5), 2u) << "below 5: 2 and 4 (1 and 3 went already)";
  EXPECT_EQ(purge(*j, "", 0, 0), 6u);
  EXPECT_EQ(live_messages(*j), 0u);
  EXPECT_EQ(j->first_live_seq(), 13u);
  ASSERT_TRUE(j->append("odd", "", "after"));
  EXPECT_EQ(j->last_seq(), 13u) << "sequences go on after a purge";
}

}  // namespace
}  // namespace bus::detail::stream

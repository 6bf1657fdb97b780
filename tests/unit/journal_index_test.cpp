// The journal's indexes (issue 8): the position index in each segment's header (a sequence and
// a time are found from it, by any process, and a damaged entry is never trusted), and the
// subject index beside the segments (a subject's last message, exact across handles, through
// deletes, a full table and a damaged file).
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <chrono>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include "journal/journal.hpp"
#include "journal/subject_index.hpp"
#include "journal_helpers.hpp"
#include "os/process.hpp"
#include "temp_dir.hpp"

namespace bus::detail::journal {
namespace {

using bus::test::attach_journal;
using bus::test::open_journal;
using bus::test::poke;
using TempDir = bus::test::TempDir;

constexpr std::uint64_t kSegmentBytes = 1 << 20;  // stride 128: 184 entries cover 21 K records (the helpers' size)

TEST(JournalPositionIndex, should_note_every_strideth_record_where_it_is_appended) {
  TempDir dir;
  auto j = open_journal(dir.sub("s"), kSegmentBytes);
  ASSERT_TRUE(j);
  ASSERT_EQ(position_stride(kSegmentBytes), 128u);
  for (int i = 1; i <= 1000; ++i) ASSERT_TRUE(j->append("a.b", "", "body " + std::to_string(i)));
  auto seg = SegmentFile::open(dir.sub("s") + "/" + segment_file_name(1));
  ASSERT_TRUE(seg) << seg.error().message;
  ASSERT_EQ(seg->index_stride(), 128u);
  for (std::uint64_t k = 0; k * 128 < 1000; ++k) {
    std::uint64_t offset = 0, ts = 0;
    ASSERT_TRUE(seg->noted_position(k, offset, ts)) << "entry " << k;
    RecordView v;
    ASSERT_EQ(seg->read(offset, 1 + k * 128, v), ReadStatus::ok) << "entry " << k << " points at its record";
    EXPECT_EQ(v.timestamp_ns, ts);
  }
  std::uint64_t offset = 0, ts = 0;
  EXPECT_FALSE(seg->noted_position(8, offset, ts)) << "record 1025 is not there yet";
}

TEST(JournalPositionIndex, should_read_any_sequence_from_another_handle_and_never_trust_a_bad_entry) {
  TempDir dir;
  auto writer = open_journal(dir.sub("s"), kSegmentBytes);
  ASSERT_TRUE(writer);
  for (int i = 1; i <= 5000; ++i) ASSERT_TRUE(writer->append("a.b", "", "body " + std::to_string(i)));
  // Entry 30 (record 3841) scribbled to point at record 3842's place, entry 31 into the header.
  const std::string file = dir.sub("s") + "/" + segment_file_name(1);
  auto seg = SegmentFile::open(file);
  ASSERT_TRUE(seg);
  std::uint64_t at31 = 0, ts = 0;
  ASSERT_TRUE(seg->noted_position(31, at31, ts));
  std::uint64_t next = 0;
  ASSERT_TRUE(seg->noted_position(30, next, ts));
  RecordView v;
  ASSERT_EQ(seg->read(next, 3841, v), ReadStatus::ok);
  const auto wrong = static_cast<std::uint32_t>((next + v.bytes) / 8);
  bus::test::poke(file, 1152 + 30 * 16, &wrong, sizeof wrong);
  const std::uint32_t header_units = 16;
  bus::test::poke(file, 1152 + 31 * 16, &header_units, sizeof header_units);
  auto reader = attach_journal(dir.sub("s"));
  ASSERT_TRUE(reader);
  for (std::uint64_t seq : {4999ull, 3841ull, 3842ull, 3990ull, 4000ull, 1ull, 5000ull}) {
    auto r = reader->read(seq);
    ASSERT_TRUE(r) << seq << ": " << r.error().message;
    EXPECT_EQ(r->payload, "body " + std::to_string(seq));
  }
  auto c = reader->cursor(3999);
  ASSERT_TRUE(c);
  ASSERT_EQ(c->next(v), ReadStatus::ok);
  EXPECT_EQ(v.sequence, 3999u);
  EXPECT_EQ(v.payload, "body 3999");
}

TEST(JournalPositionIndex, should_be_noted_again_by_recovery_after_a_cut) {
  TempDir dir;
  {
    auto j = open_journal(dir.sub("s"), kSegmentBytes);
    ASSERT_TRUE(j);
    for (int i = 1; i <= 600; ++i) ASSERT_TRUE(j->append("a.b", "", "body " + std::to_string(i)));
  }
  const std::string file = dir.sub("s") + "/" + segment_file_name(1);
  std::uint64_t at = 0, ts = 0;
  {
    auto seg = SegmentFile::open(file);
    ASSERT_TRUE(seg);
    ASSERT_TRUE(seg->noted_position(4, at, ts)) << "record 513";
    // Everything from record 500 on torn away: entry 4 (record 513) would point past the cut.
    RecordView v;
    std::uint64_t e3 = 0;
    ASSERT_TRUE(seg->noted_position(3, e3, ts));
    std::uint64_t off = e3;
    for (std::uint64_t seq = 385; seq < 500; ++seq) {
      ASSERT_EQ(seg->read(off, seq, v), ReadStatus::ok);
      off += v.bytes;
    }
    const std::vector<char> zeros(seg->claimed_end() - off, 0);  // a torn tail: cut at record 500
    bus::test::poke(file, off, zeros.data(), zeros.size());
  }
  auto j = open_journal(dir.sub("s"), kSegmentBytes);
  ASSERT_TRUE(j);
  EXPECT_EQ(j->last_seq(), 499u);
  auto seg = SegmentFile::open(file);
  ASSERT_TRUE(seg);
  EXPECT_FALSE(seg->noted_position(4, at, ts)) << "cleared: its record was cut";
  EXPECT_TRUE(seg->noted_position(3, at, ts)) << "noted again";
  // New appends reuse the space and note entry 4 afresh.
  for (int i = 500; i <= 520; ++i) ASSERT_TRUE(j->append("a.b", "", "new " + std::to_string(i)));
  auto reader = attach_journal(dir.sub("s"));
  ASSERT_TRUE(reader);
  auto r = reader->read(515);
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_EQ(r->payload, "new 515");
}

TEST(JournalPositionIndex, should_find_the_first_message_at_or_after_a_time_across_segments) {
  TempDir dir;
  auto j = open_journal(dir.sub("s"), 64 * 1024);  // a few hundred records a segment
  ASSERT_TRUE(j);
  std::vector<std::uint64_t> marks;  // marks[g]: a time between group g-1 and group g
  std::vector<std::uint64_t> firsts;
  for (int group = 0; group < 6; ++group) {
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
    marks.push_back(realtime_ns());
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
    for (int i = 0; i < 700; ++i) {
      auto seq = j->append("t.x", "", std::string(40, 'x'));
      ASSERT_TRUE(seq);
      if (i == 0) firsts.push_back(seq.value());
    }
  }
  ASSERT_GT(j->segment_count(), 6u) << "groups span segments";
  auto reader = attach_journal(dir.sub("s"));
  ASSERT_TRUE(reader);
  for (std::size_t g = 0; g < marks.size(); ++g) EXPECT_EQ(reader->sequence_at_time(marks[g]), firsts[g]) << g;
  EXPECT_EQ(reader->sequence_at_time(realtime_ns()), j->last_seq() + 1) << "after the last message";
  EXPECT_EQ(reader->sequence_at_time(0), 1u);
  ASSERT_TRUE(j->remove(firsts[3]));
  EXPECT_EQ(reader->sequence_at_time(marks[3]), firsts[3] + 1) << "a deleted message is stepped over";
}

TEST(JournalSubjectIndex, should_answer_the_last_message_of_a_subject_across_handles_and_deletes) {
  TempDir dir;
  auto a = open_journal(dir.sub("s"), kSegmentBytes);
  ASSERT_TRUE(a);
  auto b = attach_journal(dir.sub("s"));
  ASSERT_TRUE(b);
  const char* subjects[] = {"kv.a", "kv.b", "kv.c"};
  for (int i = 0; i < 3000; ++i) ASSERT_TRUE(a->append(subjects[i % 3], "", std::to_string(i)));
  auto last_a = b->last_on_subject("kv.a", b->last_seq());
  ASSERT_TRUE(last_a) << last_a.error().message;
  EXPECT_EQ(last_a.value(), 2998u);
  EXPECT_EQ(b->last_on_subject("kv.c", b->last_seq()).value(), 3000u);
  EXPECT_EQ(b->last_on_subject("kv.none", b->last_seq()).value(), 0u);
  EXPECT_EQ(b->last_on_subject("kv.a", 2000).value(), 2998u) << "above `last`: the journal moved on";
  // Appends through the other handle, after b's index went up to 3000.
  ASSERT_TRUE(a->append("kv.b", "", "x"));
  ASSERT_TRUE(a->append("kv.new", "", "y"));
  EXPECT_EQ(b->last_on_subject("kv.b", b->last_seq()).value(), 3001u);
  EXPECT_EQ(a->last_on_subject("kv.new", a->last_seq()).value(), 3002u) << "a maps the index b made";
  // The last one of a subject deleted: the one before it.
  ASSERT_TRUE(a->remove(3001));
  EXPECT_EQ(b->last_on_subject("kv.b", b->last_seq()).value(), 2999u);
  EXPECT_EQ(a->last_on_subject("kv.b", a->last_seq()).value(), 2999u);
  auto per_subject = b->last_per_subject();
  ASSERT_TRUE(per_subject) << per_subject.error().message;
  EXPECT_EQ(per_subject.value(), (std::vector<std::uint64_t>{2998, 2999, 3000, 3002}));
}

// A cursor asked for a deleted sequence after another deleted one stands on the next stored
// record (not past it): the subject index, which walks with cursors, must note that record.
TEST(JournalSubjectIndex, should_note_the_record_after_deleted_ones) {
  TempDir dir;
  auto j = open_journal(dir.sub("s"));
  ASSERT_TRUE(j);
  ASSERT_TRUE(j->append("kv.a", "", "1"));
  ASSERT_TRUE(j->append("kv.b", "", "2"));
  EXPECT_EQ(j->last_on_subject("kv.a", j->last_seq()).value(), 1u);  // indexed up to 2
  ASSERT_TRUE(j->append("kv.c", "", "3"));
  ASSERT_TRUE(j->append("kv.a", "", "4"));
  ASSERT_TRUE(j->remove(2));
  ASSERT_TRUE(j->remove(3));
  auto c = j->cursor(3);
  ASSERT_TRUE(c);
  EXPECT_LE(c->sequence(), 4u) << "at 3 (deleted: stepped over) or 4, never past 4";
  RecordView v;
  ASSERT_EQ(c->next(v), ReadStatus::ok);
  EXPECT_EQ(v.sequence, 4u);
  EXPECT_EQ(j->last_on_subject("kv.a", j->last_seq()).value(), 4u);
}

// A cursor asked for a deleted sequence behind an unfinished record (its writer stopped) starts
// there, not at the unfinished one (which would hand out what came before the start).
TEST(JournalPositionIndex, should_start_a_cursor_at_a_deleted_sequence_past_an_unfinished_record) {
  TempDir dir;
  auto j = open_journal(dir.sub("s"));
  ASSERT_TRUE(j);
  for (int i = 1; i <= 5; ++i) ASSERT_TRUE(j->append("c.x", "", std::to_string(i)));
  const std::uint64_t offset_of_2 = j->read(2)->offset;
  ASSERT_TRUE(j->remove(4));
  const std::uint64_t unfinished = 0;  // record 2's commit word: as if its writer stopped there
  bus::test::poke(dir.sub("s") + "/" + segment_file_name(1), offset_of_2, &unfinished, sizeof unfinished);
  auto other = attach_journal(dir.sub("s"));
  ASSERT_TRUE(other);
  auto c = other->cursor(4);
  ASSERT_TRUE(c);
  RecordView v;
  ASSERT_EQ(c->next(v), ReadStatus::ok);
  EXPECT_EQ(v.sequence, 5u) << "4 is deleted; nothing before the start is handed out";
}

TEST(JournalSubjectIndex, should_be_rebuilt_after_recovery_and_when_damaged) {
  TempDir dir;
  {
    auto j = open_journal(dir.sub("s"), kSegmentBytes);
    ASSERT_TRUE(j);
    for (int i = 0; i < 100; ++i) ASSERT_TRUE(j->append(i % 2 ? "kv.odd" : "kv.even", "", std::to_string(i)));
    EXPECT_EQ(j->last_on_subject("kv.odd", j->last_seq()).value(), 100u);
  }
  // A recovery that cuts the tail: the index (which said 100) is made again from what is kept.
  const std::string file = dir.sub("s") + "/" + segment_file_name(1);
  {
    auto j = open_journal(dir.sub("s"), kSegmentBytes);
    ASSERT_TRUE(j);
    auto r = j->read(100);
    ASSERT_TRUE(r);
    const std::uint64_t zero = 0;
    bus::test::poke(file, r->offset, &zero, sizeof zero);  // record 100's commit word
  }
  auto j = open_journal(dir.sub("s"), kSegmentBytes);
  ASSERT_TRUE(j);
  ASSERT_EQ(j->last_seq(), 99u);
  EXPECT_EQ(j->last_on_subject("kv.odd", 99).value(), 98u);
  ASSERT_TRUE(j->append("kv.odd", "", "again"));
  EXPECT_EQ(j->last_on_subject("kv.odd", 100).value(), 100u);
  // A scribbled magic: a new handle makes the index again rather than trust it.
  const std::uint64_t junk = 0x5858585858585858ull;
  bus::test::poke(dir.sub("s") + "/" + SubjectIndex::kFileName, 0, &junk, sizeof junk);
  auto other = attach_journal(dir.sub("s"));
  ASSERT_TRUE(other);
  EXPECT_EQ(other->last_on_subject("kv.even", other->last_seq()).value(), 99u);
  EXPECT_EQ(other->last_on_subject("kv.odd", other->last_seq()).value(), 100u);
}

TEST(JournalSubjectIndex, should_say_unknown_rather_than_absent_once_full) {
  TempDir dir;
  ::mkdir(dir.sub("s").c_str(), 0700);
  const int fd = ::open(dir.sub("s").c_str(), O_RDONLY | O_DIRECTORY);
  ASSERT_GE(fd, 0);
  auto index = SubjectIndex::open_or_make(fd, dir.sub("s"), 42, /*slots=*/4);
  ::close(fd);
  ASSERT_TRUE(index) << index.error().message;
  for (int i = 0; i < 4; ++i) EXPECT_TRUE(index->note("s." + std::to_string(i), 10 + i));
  EXPECT_FALSE(index->note("s.4", 14)) << "no room";
  EXPECT_TRUE(index->full());
  std::uint64_t seq = 0;
  EXPECT_EQ(index->last("s.2", seq), SubjectIndex::Lookup::found);
  EXPECT_EQ(seq, 12u);
  EXPECT_EQ(index->last("s.4", seq), SubjectIndex::Lookup::unknown) << "not absent: it was never noted";
  EXPECT_TRUE(index->note("s.2", 20)) << "a known subject still moves on";
  index->replace("s.2", 20, 12);
  EXPECT_EQ(index->last("s.2", seq), SubjectIndex::Lookup::found);
  EXPECT_EQ(seq, 12u);
  index->replace("s.2", 99, 1);
  EXPECT_EQ(index->last("s.2", seq), SubjectIndex::Lookup::found);
  EXPECT_EQ(seq, 12u) << "replaced only if it still holds the stale sequence";
}

// A handle that last appended long ago, to a segment the broker has since dropped (every record
// deleted, file removed) with the ones after it: its next append goes to the journal's end, never
// into a remade successor (that would fork the journal with sequences already used), and its
// cursor goes on past the removed files.
TEST(JournalDroppedSegments, should_let_a_stale_handle_append_at_the_end_and_read_past_removed_files) {
  TempDir dir;
  constexpr std::uint64_t kSmall = 64 * 1024;  // a few hundred records a segment
  auto broker = open_journal(dir.sub("s"), kSmall);
  ASSERT_TRUE(broker);
  auto stale = attach_journal(dir.sub("s"), kSmall);
  ASSERT_TRUE(stale);
  auto reader = attach_journal(dir.sub("s"), kSmall);
  ASSERT_TRUE(reader);
  ASSERT_EQ(stale->append("d.x", "", "first").value(), 1u);
  auto c = reader->cursor(1);
  ASSERT_TRUE(c);
  RecordView v;
  ASSERT_EQ(c->next(v), ReadStatus::ok);
  for (int i = 0; i < 3000; ++i) ASSERT_TRUE(broker->append("d.x", "", std::string(100, 'b')));
  ASSERT_GE(broker->segment_count(), 6u);
  // Everything but the last two segments' records deleted, their files removed.
  const std::uint64_t keep_from = broker->last_seq() - 400;
  for (std::uint64_t seq = 1; seq < keep_from; ++seq) (void)broker->remove(seq);
  ASSERT_GE(broker->drop_deleted_segments(), 3u);
  const std::uint64_t first_left = broker->first_seq();
  ASSERT_GT(first_left, 2u);
  // The stale handle's segment 1 is sealed and gone: its append lands after the broker's last.
  const std::uint64_t last = broker->last_seq();
  auto seq = stale->append("d.x", "", "late");
  ASSERT_TRUE(seq) << seq.error().message;
  EXPECT_EQ(seq.value(), last + 1);
  auto back = broker->read(seq.value());
  ASSERT_TRUE(back) << back.error().message;
  EXPECT_EQ(back->payload, "late");
  auto listed = Journal::attach(dir.sub("s"), JournalOptions{.segment_bytes = kSmall});
  ASSERT_TRUE(listed);
  EXPECT_EQ(listed.value()->first_seq(), first_left) << "no dropped segment was made again";
  EXPECT_EQ(stale->last_seq(), broker->last_seq());
  EXPECT_EQ(stale->segment_count(), 1u) << "the removed segment it had mapped is let go";
  // The cursor left in segment 1 goes on at the first record still stored, and its handle lets
  // go of what was removed behind it.
  ASSERT_EQ(c->next(v), ReadStatus::ok);
  EXPECT_GE(v.sequence, keep_from);
  EXPECT_EQ(v.sequence, broker->first_live_seq());
  while (c->next(v) == ReadStatus::ok) {
  }
  EXPECT_EQ(v.sequence, broker->last_seq()) << "read to the end";
  EXPECT_EQ(reader->first_seq(), broker->first_seq()) << "segment 1, removed, is let go";
  EXPECT_EQ(reader->segment_count(), broker->segment_count());
}

}  // namespace
}  // namespace bus::detail::journal

// The journal (libbus/src/journal/): the on-disk format frozen, appends from many threads, roll
// over to new segment files, and recovery after torn, flipped and unfinished records: every
// record that verifies is kept in order, nothing that does not is ever handed out.
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "journal/journal.hpp"
#include "journal_helpers.hpp"
#include "temp_dir.hpp"

namespace bus::detail::journal {
namespace {

namespace fs = std::filesystem;

using TempDir = bus::test::TempDir;

std::string body_of(std::uint64_t i) { return "message-" + std::to_string(i); }

using bus::test::open_journal;

using bus::test::poke;

TEST(JournalFormat, should_keep_the_on_disk_layout) {
  EXPECT_EQ(kSegmentMagic, 0x314C4E524A535542ull) << "\"BUSJRNL1\" little-endian";
  EXPECT_EQ(sizeof(SegmentHeader), 4096u);
  EXPECT_EQ(offsetof(SegmentHeader, claim), 128u);
  EXPECT_EQ(offsetof(SegmentHeader, skipped_below), 256u);
  EXPECT_EQ(offsetof(SegmentHeader, readers_waiting), 264u);
  EXPECT_EQ(offsetof(SegmentHeader, commit_wake), 384u);
  EXPECT_EQ(offsetof(SegmentHeader, sync_owner), 512u);
  EXPECT_EQ(offsetof(SegmentHeader, sync_waiters), 516u);
  EXPECT_EQ(offsetof(SegmentHeader, sync_since_ns), 520u);
  EXPECT_EQ(offsetof(SegmentHeader, dir_synced), 528u);
  EXPECT_EQ(offsetof(SegmentHeader, sync_failed), 532u);
  EXPECT_EQ(offsetof(SegmentHeader, sync_started), 640u);
  EXPECT_EQ(offsetof(SegmentHeader, sync_done), 768u);
  EXPECT_EQ(offsetof(SegmentHeader, index_stride), 1024u);
  EXPECT_EQ(offsetof(SegmentHeader, positions), 1152u);
  EXPECT_EQ(sizeof(PositionEntry), 16u);
  EXPECT_EQ(offsetof(PositionEntry, timestamp_ns), 8u);
  EXPECT_EQ(kPositionEntries, 184u);
  EXPECT_EQ(position_stride(64ull << 20), 8192u) << "the stride is derived from the size, and checked on open";
  EXPECT_EQ(position_stride(8192), 1u);
  EXPECT_EQ(kJournalMajor, 2u);
  EXPECT_EQ(kJournalMinor, 4u);
  EXPECT_EQ(sizeof(RecordHeader), 40u);
  EXPECT_EQ(offsetof(RecordHeader, checksum), 32u);
  EXPECT_EQ(record_bytes(5, 0, 3), 48u);
  EXPECT_EQ(segment_file_name(1), "00000000000000000001.jrnl");
  // The checksum is part of the format: a build that computed it differently could not read
  // the journals of this one.
  RecordHeader h{};
  h.length = 48;
  h.subject_len = 5;
  h.timestamp_ns = 1'700'000'000'000'000'000ull;
  h.payload_len = 3;
  const char body[] = "a.b.cxyz";
  EXPECT_EQ(record_checksum(7, h, reinterpret_cast<const std::byte*>(body), 8), 0x42fec7fb8529a23full);
  h.flags.store(kRecordDeleted);
  EXPECT_EQ(record_checksum(7, h, reinterpret_cast<const std::byte*>(body), 8), 0x42fec7fb8529a23full)
      << "flags change after commit and are not under the checksum";
  EXPECT_NE(record_checksum(8, h, reinterpret_cast<const std::byte*>(body), 8), 0x42fec7fb8529a23full)
      << "the sequence seeds it: a record moved to another sequence does not verify";
}

TEST(Journal, should_append_and_read_back_in_sequence) {
  TempDir dir;
  auto j = open_journal(dir.sub("s"));
  ASSERT_TRUE(j);
  EXPECT_EQ(j->first_seq(), 1u);
  EXPECT_EQ(j->last_seq(), 0u) << "empty";
  for (std::uint64_t i = 1; i <= 100; ++i) {
    auto seq = j->append("orders.eu", i % 2 ? "NATS/1.0\r\nK: v\r\n\r\n" : "", body_of(i));
    ASSERT_TRUE(seq) << seq.error().message;
    EXPECT_EQ(seq.value(), i);
  }
  EXPECT_EQ(j->last_seq(), 100u);
  for (std::uint64_t i : {100u, 1u, 57u, 2u}) {  // any order: positions are found by walking
    auto r = j->read(i);
    ASSERT_TRUE(r) << r.error().message;
    EXPECT_EQ(r->sequence, i);
    EXPECT_EQ(r->subject, "orders.eu");
    EXPECT_EQ(r->payload, body_of(i));
    EXPECT_EQ(r->headers.empty(), i % 2 == 0);
    EXPECT_GT(r->timestamp_ns, 0u);
  }
  EXPECT_FALSE(j->read(101)) << "past the end";
  EXPECT_FALSE(j->read(0));
}

TEST(Journal, should_create_files_only_its_owner_can_read) {
  TempDir dir;
  auto j = open_journal(dir.sub("s"));
  ASSERT_TRUE(j);
  struct stat st{};
  ASSERT_EQ(::stat(dir.sub("s").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0700u);
  ASSERT_EQ(::stat(dir.sub("s/" + segment_file_name(1)).c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
}

TEST(Journal, should_give_every_concurrent_append_its_own_sequence_in_file_order) {
  TempDir dir;
  auto j = open_journal(dir.sub("s"), 256 << 10);  // small segments: the threads roll over too
  ASSERT_TRUE(j);
  constexpr int kThreads = 4, kEach = 5000;
  std::vector<std::vector<std::uint64_t>> got(kThreads);
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kEach; ++i) {
        auto seq = j->append("t." + std::to_string(t), "", std::to_string(t) + ":" + std::to_string(i));
        if (seq) got[t].push_back(seq.value());
      }
    });
  }
  for (auto& th : threads) th.join();
  std::set<std::uint64_t> all;
  for (int t = 0; t < kThreads; ++t) {
    ASSERT_EQ(got[t].size(), static_cast<std::size_t>(kEach));
    EXPECT_TRUE(std::is_sorted(got[t].begin(), got[t].end())) << "one thread's appends keep their order";
    all.insert(got[t].begin(), got[t].end());
  }
  EXPECT_EQ(all.size(), static_cast<std::size_t>(kThreads * kEach)) << "no sequence twice";
  EXPECT_EQ(*all.begin(), 1u);
  EXPECT_EQ(*all.rbegin(), static_cast<std::uint64_t>(kThreads * kEach)) << "no gap";
  EXPECT_GT(j->segment_count(), 1u) << "the appends filled more than one segment";
  // Each sequence reads back as what its thread wrote.
  std::vector<int> next(kThreads, 0);
  for (std::uint64_t s = 1; s <= all.size(); ++s) {
    auto r = j->read(s);
    ASSERT_TRUE(r) << r.error().message;
    const int t = std::stoi(std::string(r->subject.substr(2)));
    EXPECT_EQ(r->payload, std::to_string(t) + ":" + std::to_string(next[t]++)) << "sequence " << s;
  }
}

TEST(Journal, should_keep_everything_across_a_reopen_and_go_on_with_the_next_sequence) {
  TempDir dir;
  {
    auto j = open_journal(dir.sub("s"), 64 << 10);
    ASSERT_TRUE(j);
    for (int i = 1; i <= 2000; ++i) ASSERT_TRUE(j->append("a", "", body_of(i)));
  }
  auto j = open_journal(dir.sub("s"), 64 << 10);
  ASSERT_TRUE(j);
  EXPECT_EQ(j->recovery().records, 2000u);
  EXPECT_EQ(j->recovery().lost_records, 0u) << (j->recovery().damage.empty() ? "" : j->recovery().damage[0]);
  EXPECT_EQ(j->last_seq(), 2000u);
  auto seq = j->append("a", "", "after");
  ASSERT_TRUE(seq);
  EXPECT_EQ(seq.value(), 2001u);
  auto r = j->read(1500);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->payload, body_of(1500));
}

// An append hashes a small record as it assembles it (one call over a stack copy) and a large
// one in place, streaming: both must give the checksum recovery and reads verify with, on each
// side of the boundary (232 bytes of subject, headers and payload) and with headers or without.
TEST(Journal, should_verify_records_of_every_size_around_the_one_shot_checksum_boundary) {
  TempDir dir;
  const std::string subject = "orders.eu.new";  // 13 bytes
  const std::string headers = "NATS/1.0\r\nK: v\r\n\r\n";
  std::vector<std::pair<std::string, std::string>> written;  // headers, payload
  {
    auto j = open_journal(dir.sub("s"), 64 << 10);
    ASSERT_TRUE(j);
    for (std::size_t body = 200; body <= 260; ++body) {
      for (const bool with_headers : {false, true}) {
        const std::string& h = with_headers ? headers : std::string();
        const std::size_t payload = body - subject.size() - h.size();
        written.emplace_back(h, std::string(payload, static_cast<char>('a' + body % 26)));
        ASSERT_TRUE(j->append(subject, written.back().first, written.back().second));
      }
    }
  }
  auto j = open_journal(dir.sub("s"), 64 << 10);
  ASSERT_TRUE(j);
  EXPECT_EQ(j->recovery().records, written.size());
  EXPECT_EQ(j->recovery().lost_records, 0u) << (j->recovery().damage.empty() ? "" : j->recovery().damage[0]);
  for (std::size_t i = 0; i < written.size(); ++i) {
    auto r = j->read(i + 1);
    ASSERT_TRUE(r) << "sequence " << i + 1 << ": " << r.error().message;
    EXPECT_EQ(r->subject, subject);
    EXPECT_EQ(r->headers, written[i].first);
    EXPECT_EQ(r->payload, written[i].second);
  }
}

// A crash in the middle of an append: the last record's bytes only partly reached the file.
TEST(Journal, should_cut_a_torn_tail_and_report_it) {
  TempDir dir;
  const std::string file = dir.sub("s/" + segment_file_name(1));
  std::uint64_t last_offset = 0;
  {
    auto j = open_journal(dir.sub("s"));
    ASSERT_TRUE(j);
    for (int i = 1; i <= 10; ++i) ASSERT_TRUE(j->append("a", "", body_of(i)));
    auto r = j->read(10);
    ASSERT_TRUE(r);
    last_offset = r->offset;
  }
  const std::uint64_t zero = 0;
  poke(file, last_offset + 40, &zero, 8);  // half its payload never made it
  auto j = open_journal(dir.sub("s"));
  ASSERT_TRUE(j);
  EXPECT_EQ(j->recovery().records, 9u);
  EXPECT_EQ(j->recovery().lost_records, 1u);
  EXPECT_EQ(j->recovery().truncated_at, last_offset);
  ASSERT_FALSE(j->recovery().damage.empty());
  EXPECT_FALSE(j->read(10)) << "a torn record is never handed out";
  auto seq = j->append("a", "", "next");
  ASSERT_TRUE(seq);
  EXPECT_EQ(seq.value(), 10u) << "appends resume after the last record that verifies";
  EXPECT_EQ(j->read(10)->payload, "next");
}

// A flipped byte in the middle (a disk, or a scribbler): that record is dropped and reported;
// the ones after it are found again and kept.
TEST(Journal, should_detect_a_flipped_byte_and_keep_the_records_after_it) {
  TempDir dir;
  const std::string file = dir.sub("s/" + segment_file_name(1));
  std::uint64_t offset5 = 0;
  {
    auto j = open_journal(dir.sub("s"));
    ASSERT_TRUE(j);
    for (int i = 1; i <= 10; ++i) ASSERT_TRUE(j->append("a", "", body_of(i)));
    offset5 = j->read(5)->offset;
    // While it is open, too: a read checks the checksum every time.
    const char flip = 'X';
    poke(file, offset5 + 40 + 3, &flip, 1);
    auto r = j->read(5);
    ASSERT_FALSE(r) << "a record that fails its checksum is never delivered";
    EXPECT_EQ(r.error().code, Errc::journal_corrupt);
  }
  auto j = open_journal(dir.sub("s"));
  ASSERT_TRUE(j);
  EXPECT_EQ(j->recovery().records, 9u);
  EXPECT_EQ(j->recovery().lost_records, 1u);
  EXPECT_EQ(j->recovery().truncated_at, 0u) << "nothing cut: only the one record is lost";
  ASSERT_EQ(j->recovery().damage.size(), 1u);
  EXPECT_NE(j->recovery().damage[0].find("sequences 5..5"), std::string::npos) << j->recovery().damage[0];
  EXPECT_FALSE(j->read(5));
  for (int i : {4, 6, 10}) EXPECT_EQ(j->read(static_cast<std::uint64_t>(i))->payload, body_of(static_cast<std::uint64_t>(i)));
  EXPECT_EQ(j->append("a", "", "11").value(), 11u);
}

// A writer that died between its claim and its commit, while others went on appending.
TEST(Journal, should_step_over_a_record_its_writer_never_finished) {
  TempDir dir;
  const std::string path = dir.sub("seg");
  auto created = SegmentFile::create(path, 1, 1 << 20, 42, PageShape::appends);
  ASSERT_TRUE(created) << created.error().message;
  SegmentFile seg = std::move(created).value();
  std::uint64_t seq = 0, offset = 0;
  ASSERT_EQ(seg.append("a", "", "one", 1, seq, offset), AppendStatus::appended);
  ASSERT_EQ(seg.append("a", "", "two", 2, seq, offset), AppendStatus::appended);
  const std::uint64_t dead_offset = offset + record_bytes(1, 0, 3);
  ASSERT_EQ(seg.append("a", "", "dies", 3, seq, offset), AppendStatus::appended);
  ASSERT_EQ(offset, dead_offset);
  ASSERT_EQ(seg.append("a", "", "four", 4, seq, offset), AppendStatus::appended);
  // Undo record 3's commit: its writer stopped for good before that store.
  RecordView view;
  const std::uint64_t zero = 0;
  poke(path, dead_offset, &zero, 8);
  EXPECT_EQ(seg.read(dead_offset, 3, view), ReadStatus::not_committed);
  std::vector<std::pair<std::uint64_t, std::uint64_t>> index;
  const Recovery r = seg.recover(index);
  EXPECT_EQ(r.records, 3u);
  EXPECT_EQ(r.lost_records, 1u);
  ASSERT_EQ(index.size(), 3u);
  EXPECT_EQ(index[2].first, 4u) << "the record after the hole keeps its sequence";
  ASSERT_EQ(seg.read(index[2].second, 4, view), ReadStatus::ok);
  EXPECT_EQ(view.payload, "four");
  EXPECT_EQ(seg.next_seq(), 5u);
}

TEST(Journal, should_refuse_lengths_that_point_outside_the_segment) {
  TempDir dir;
  const std::string path = dir.sub("seg");
  auto created = SegmentFile::create(path, 1, 1 << 20, 42, PageShape::appends);
  ASSERT_TRUE(created);
  SegmentFile seg = std::move(created).value();
  std::uint64_t seq = 0, offset = 0;
  ASSERT_EQ(seg.append("a.b", "", "payload", 1, seq, offset), AppendStatus::appended);
  RecordView view;
  ASSERT_EQ(seg.read(offset, 1, view), ReadStatus::ok);
  struct Scribble {
    std::uint64_t at;
    std::uint32_t value;
  };
  for (const Scribble s : {Scribble{8, 0xFFFF'FFF8u}, Scribble{8, 12u}, Scribble{8, 44u}, Scribble{28, 0x7FFF'FFFFu},
                           Scribble{24, 0xFFFF'FFFFu}}) {
    std::uint32_t saved = 0;
    std::memcpy(&saved, reinterpret_cast<const char*>(view.subject.data()) - 40 + s.at, 4);
    poke(path, offset + s.at, &s.value, 4);
    EXPECT_EQ(seg.read(offset, 1, view), ReadStatus::corrupt) << "field at " << s.at << " = " << s.value;
    poke(path, offset + s.at, &saved, 4);
  }
  EXPECT_EQ(seg.read(offset, 1, view), ReadStatus::ok);
  EXPECT_EQ(seg.read(offset + 8, 1, view), ReadStatus::not_committed) << "not a record start";
  EXPECT_EQ(seg.read((1 << 20) - 8, 1, view), ReadStatus::corrupt) << "a header past the end";
}

TEST(Journal, should_refuse_files_that_are_not_segments) {
  TempDir dir;
  const std::string path = dir.sub("seg");
  {
    auto created = SegmentFile::create(path, 1, 64 << 10, 42, PageShape::appends);
    ASSERT_TRUE(created);
  }
  const char junk[8] = {'n', 'o', 't', 'a', 'j', 'r', 'n', 'l'};
  poke(path, 0, junk, 8);
  auto bad_magic = SegmentFile::open(path);
  ASSERT_FALSE(bad_magic);
  EXPECT_EQ(bad_magic.error().code, Errc::journal_corrupt);
  const std::uint64_t magic = kSegmentMagic;
  poke(path, 0, &magic, 8);
  ASSERT_TRUE(SegmentFile::open(path));
  const std::uint16_t major = kJournalMajor + 1;
  poke(path, 8, &major, 2);
  auto other_major = SegmentFile::open(path);
  ASSERT_FALSE(other_major);
  EXPECT_EQ(other_major.error().code, Errc::version_mismatch);
  const std::uint16_t ours = kJournalMajor;
  poke(path, 8, &ours, 2);
  ASSERT_EQ(::truncate(path.c_str(), 32 << 10), 0);  // shorter than its header says: no SIGBUS later
  auto short_file = SegmentFile::open(path);
  ASSERT_FALSE(short_file);
  EXPECT_EQ(short_file.error().code, Errc::journal_corrupt);
  EXPECT_FALSE(SegmentFile::create(path, 1, 64 << 10, 42, PageShape::appends)) << "create never overwrites";
}

// A writer sealed a full segment and died right after creating the next file, before its
// header: the file is all zeroes. It held nothing; it is removed, and the roll happens again.
TEST(Journal, should_remove_a_segment_file_whose_creator_died_before_its_header) {
  TempDir dir;
  std::uint64_t appended = 0;
  std::string second;
  {
    auto j = open_journal(dir.sub("s"), 64 << 10);
    ASSERT_TRUE(j);
    while (j->segment_count() < 2) {
      ASSERT_TRUE(j->append("a", "", std::string(1000, 'x')));
      ++appended;
    }
    second = dir.sub("s/" + segment_file_name(appended));
  }
  ASSERT_TRUE(fs::exists(second)) << "the last append rolled into a segment that starts with it";
  fs::remove(second);
  {
    std::FILE* f = std::fopen(second.c_str(), "wb");
    ASSERT_NE(f, nullptr);
    const std::vector<char> zeroes(64 << 10, 0);
    std::fwrite(zeroes.data(), 1, zeroes.size(), f);
    std::fclose(f);
  }
  auto j = open_journal(dir.sub("s"), 64 << 10);
  ASSERT_TRUE(j);
  ASSERT_FALSE(j->recovery().damage.empty());
  EXPECT_NE(j->recovery().damage.back().find("never finished"), std::string::npos) << j->recovery().damage.back();
  EXPECT_EQ(j->last_seq(), appended - 1) << "the record that rolled over was in the lost file";
  EXPECT_EQ(j->append("a", "", "again").value(), appended);
  EXPECT_EQ(j->read(appended)->payload, "again");
}

TEST(Journal, should_replay_in_order_across_segments_with_a_cursor_stepping_over_dropped_records) {
  TempDir dir;
  std::string file;
  std::uint64_t offset7 = 0;
  {
    auto j = open_journal(dir.sub("s"), 64 << 10);
    ASSERT_TRUE(j);
    for (std::uint64_t i = 1; i <= 3000; ++i) ASSERT_TRUE(j->append("r", "", body_of(i)));
    ASSERT_GT(j->segment_count(), 2u);
    offset7 = j->read(7)->offset;
    file = dir.sub("s/" + segment_file_name(1));
  }
  const char flip = '#';
  poke(file, offset7 + 41, &flip, 1);
  auto j = open_journal(dir.sub("s"), 64 << 10);
  ASSERT_TRUE(j);
  ASSERT_EQ(j->recovery().lost_records, 1u);
  auto c = j->cursor(1);
  ASSERT_TRUE(c) << c.error().message;
  RecordView v;
  std::uint64_t expected = 1, count = 0;
  while (c->next(v) == ReadStatus::ok) {
    if (expected == 7) ++expected;  // dropped at recovery: never returned
    ASSERT_EQ(v.sequence, expected);
    ASSERT_EQ(v.payload, body_of(expected));
    ++expected;
    ++count;
  }
  EXPECT_EQ(count, 2999u) << "every kept record, across every segment";
  EXPECT_EQ(c->next(v), ReadStatus::not_committed) << "at the end it waits for more";
  ASSERT_TRUE(j->append("r", "", "more"));
  ASSERT_EQ(c->next(v), ReadStatus::ok);
  EXPECT_EQ(v.payload, "more");
  auto mid = j->cursor(2500);
  ASSERT_TRUE(mid);
  ASSERT_EQ(mid->next(v), ReadStatus::ok);
  EXPECT_EQ(v.sequence, 2500u) << "a cursor can start anywhere";
}

// Two handles on one journal, as two processes have: appends of one, including a roll-over to
// a new segment file, are read by the other; neither recovers under the other.
TEST(Journal, should_let_an_attached_handle_follow_appends_and_roll_overs_of_another) {
  TempDir dir;
  auto writer = open_journal(dir.sub("s"), 64 << 10);
  ASSERT_TRUE(writer);
  ASSERT_TRUE(writer->append("a", "", "first"));
  auto attached = Journal::attach(dir.sub("s"), {64 << 10, SyncPolicy::never});
  ASSERT_TRUE(attached) << attached.error().message;
  auto reader = std::move(attached).value();
  auto c = reader->cursor(1);
  ASSERT_TRUE(c);
  for (std::uint64_t i = 2; i <= 500; ++i) ASSERT_TRUE(writer->append("a", "", std::string(300, 'x') + body_of(i)));
  ASSERT_GT(writer->segment_count(), 1u);
  RecordView v;
  std::uint64_t seen = 0;
  while (c->next(v) == ReadStatus::ok) ++seen;
  EXPECT_EQ(seen, 500u) << "it followed the writer into the segments it made";
  EXPECT_EQ(v.sequence, 500u);
  // And it appends too: the sequence goes on from the writer's.
  EXPECT_EQ(reader->append("a", "", "from the reader").value(), 501u);
  EXPECT_EQ(writer->read(501)->payload, "from the reader");
  EXPECT_FALSE(Journal::attach(dir.sub("nothing"), {})) << "attach never creates a journal";
}

TEST(Journal, should_wake_a_waiting_cursor_when_another_handle_commits_and_time_out_otherwise) {
  TempDir dir;
  auto writer = open_journal(dir.sub("s"), 64 << 10);
  ASSERT_TRUE(writer);
  auto attached = Journal::attach(dir.sub("s"), {64 << 10, SyncPolicy::never});
  ASSERT_TRUE(attached) << attached.error().message;
  auto reader = std::move(attached).value();
  auto c = reader->cursor(1);
  ASSERT_TRUE(c);
  EXPECT_FALSE(c->ready()) << "nothing stored yet";
  // Nobody appends: the wait ends at its bound, not before, and not much after.
  auto t0 = std::chrono::steady_clock::now();
  c->wait(std::chrono::milliseconds(100));
  const auto idle = std::chrono::steady_clock::now() - t0;
  EXPECT_GE(idle, std::chrono::milliseconds(90));
  EXPECT_LT(idle, std::chrono::seconds(5));
  // An append from another handle (another mapping of the file) ends the wait early. Repeated
  // across a roll-over: the sealed segment's waiters are woken too.
  RecordView v;
  for (int round = 0; round < 300; ++round) {
    std::thread appender([&] {
      std::this_thread::sleep_for(std::chrono::milliseconds(round == 0 ? 50 : 0));
      ASSERT_TRUE(writer->append("a", "", std::string(400, 'x')));
    });
    t0 = std::chrono::steady_clock::now();
    while (!c->ready() && std::chrono::steady_clock::now() - t0 < std::chrono::seconds(20)) {
      c->wait(std::chrono::seconds(10));
    }
    const auto waited = std::chrono::steady_clock::now() - t0;
    appender.join();
    ASSERT_EQ(c->next(v), ReadStatus::ok) << "round " << round;
    EXPECT_EQ(v.sequence, static_cast<std::uint64_t>(round) + 1);
    if (round == 0) {
      EXPECT_LT(waited, std::chrono::seconds(5)) << "woken by the commit, not by the 10 s bound";
    }
  }
  EXPECT_GT(writer->segment_count(), 1u) << "the rounds crossed a roll-over";
}

TEST(Journal, should_refuse_a_record_larger_than_a_segment) {
  TempDir dir;
  auto j = open_journal(dir.sub("s"), 64 << 10);
  ASSERT_TRUE(j);
  auto big = j->append("a", "", std::string(100 << 10, 'x'));
  ASSERT_FALSE(big);
  EXPECT_EQ(big.error().code, Errc::payload_too_large);
  EXPECT_EQ(j->append("a", "", "small").value(), 1u) << "nothing was used up by the refusal";
}

TEST(Journal, should_recover_only_when_no_other_handle_holds_the_journal) {
  TempDir dir;
  auto first = open_journal(dir.sub("s"), 64 << 10);
  ASSERT_TRUE(first);
  EXPECT_TRUE(first->recovered());
  ASSERT_TRUE(first->append("a", "", "one"));
  // Another handle while the first is open (in another process: it may be appending right now).
  auto second = open_journal(dir.sub("s"), 64 << 10);
  ASSERT_TRUE(second);
  EXPECT_FALSE(second->recovered()) << "recovery rewrites claim words: never under a live appender";
  EXPECT_EQ(second->append("a", "", "two").value(), 2u);
  second.reset();
  first.reset();
  auto third = open_journal(dir.sub("s"), 64 << 10);
  ASSERT_TRUE(third);
  EXPECT_TRUE(third->recovered()) << "the last holder is gone: the lock is free again";
  EXPECT_EQ(third->recovery().records, 2u);
  struct stat st{};
  ASSERT_EQ(::stat((dir.sub("s") + "/lock").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
}

TEST(Journal, should_refuse_a_segment_whose_claim_word_points_outside_it) {
  TempDir dir;
  {
    auto j = open_journal(dir.sub("s"), 64 << 10);
    ASSERT_TRUE(j);
    ASSERT_TRUE(j->append("a", "", "x"));
  }
  const std::string file = dir.sub("s") + "/" + segment_file_name(1);
  // Offset 0 (inside the header) with 5 records, then an offset past the end.
  for (const std::uint64_t word : {claim_word(0, 5), claim_word((128u << 10) / 8, 1), claim_word(4096 / 8 + 1, 9)}) {
    poke(file, offsetof(SegmentHeader, claim), &word, sizeof word);
    auto opened = SegmentFile::open(file);
    ASSERT_FALSE(opened) << std::hex << word;
    EXPECT_EQ(opened.error().code, Errc::journal_corrupt);
    EXPECT_FALSE(Journal::open(dir.sub("s"), {64 << 10, SyncPolicy::never})) << "refused, never written through";
  }
}

TEST(Journal, should_ignore_file_names_above_the_largest_sequence) {
  TempDir dir;
  auto j = open_journal(dir.sub("s"), 64 << 10);
  ASSERT_TRUE(j);
  j.reset();
  // 2^64 + 1 in 20 digits would wrap to 1 and shadow the real first segment.
  std::FILE* f = std::fopen((dir.sub("s") + "/18446744073709551617.jrnl").c_str(), "wb");
  ASSERT_NE(f, nullptr);
  std::fclose(f);
  auto again = open_journal(dir.sub("s"), 64 << 10);
  ASSERT_TRUE(again);
  EXPECT_EQ(again->segment_count(), 1u);
  EXPECT_EQ(again->append("a", "", "x").value(), 1u);
}

TEST(Journal, should_let_a_cursor_step_past_a_corrupt_record_and_go_on) {
  TempDir dir;
  auto j = open_journal(dir.sub("s"), 64 << 10);
  ASSERT_TRUE(j);
  for (int i = 1; i <= 4; ++i) ASSERT_TRUE(j->append("a.b", "", body_of(i)));
  const auto second = j->read(2);
  ASSERT_TRUE(second);
  // Flip the second record's length: its end can no longer be computed from it.
  const std::uint32_t bad_length = 8;
  poke(dir.sub("s") + "/" + segment_file_name(1), second->offset + offsetof(RecordHeader, length), &bad_length,
       sizeof bad_length);
  auto c = j->cursor(1);
  ASSERT_TRUE(c);
  RecordView v;
  ASSERT_EQ(c->next(v), ReadStatus::ok);
  EXPECT_EQ(v.payload, body_of(1));
  EXPECT_EQ(c->next(v), ReadStatus::corrupt) << "never handed out";
  EXPECT_EQ(c->next(v), ReadStatus::corrupt) << "and the cursor stays on it";
  c->skip();
  ASSERT_EQ(c->next(v), ReadStatus::ok);
  EXPECT_EQ(v.sequence, 3u);
  EXPECT_EQ(v.payload, body_of(3));
  ASSERT_EQ(c->next(v), ReadStatus::ok);
  EXPECT_EQ(v.sequence, 4u);
  EXPECT_EQ(c->next(v), ReadStatus::not_committed);
  c->skip();  // past the end: waits for sequence 6 without finding a stale one
  ASSERT_TRUE(j->append("a.b", "", body_of(5)));
  ASSERT_TRUE(j->append("a.b", "", body_of(6)));
  ASSERT_EQ(c->next(v), ReadStatus::ok);
  EXPECT_EQ(v.sequence, 6u);
}

TEST(Journal, should_go_past_a_record_whose_writer_never_finished_it) {
  TempDir dir;
  auto j = open_journal(dir.sub("s"), 64 << 10);
  ASSERT_TRUE(j);
  ASSERT_TRUE(j->append("a.b", "", body_of(1)));
  ASSERT_TRUE(j->append("a.b", "", body_of(2)));
  // A writer claims sequence 3 (48 bytes) and dies before writing a byte of it.
  const std::string file = dir.sub("s") + "/" + segment_file_name(1);
  auto seg = SegmentFile::open(file);
  ASSERT_TRUE(seg);
  const std::uint64_t end = seg->claimed_end();
  const std::uint64_t word = claim_word(static_cast<std::uint32_t>((end + 48) / 8), 3);
  poke(file, offsetof(SegmentHeader, claim), &word, sizeof word);
  ASSERT_EQ(j->append("a.b", "", body_of(4)).value(), 4u) << "appends go on after the dead claim";
  auto four = j->read(4);
  ASSERT_TRUE(four) << "a complete record after the gap is found: " << four.error().message;
  EXPECT_EQ(four->payload, body_of(4));
  auto c = j->cursor(1);
  ASSERT_TRUE(c);
  RecordView v;
  ASSERT_EQ(c->next(v), ReadStatus::ok);
  ASSERT_EQ(c->next(v), ReadStatus::ok);
  EXPECT_EQ(c->next(v), ReadStatus::not_committed) << "first it waits: the writer may be slow";
  const auto start = std::chrono::steady_clock::now();
  ReadStatus st = ReadStatus::not_committed;
  while (st == ReadStatus::not_committed && std::chrono::steady_clock::now() - start < std::chrono::seconds(5)) {
    st = c->next(v);
    if (st == ReadStatus::not_committed) std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  ASSERT_EQ(st, ReadStatus::ok) << "then it gives up on the dead claim";
  EXPECT_EQ(v.sequence, 4u);
  EXPECT_EQ(v.payload, body_of(4));
  EXPECT_GE(std::chrono::steady_clock::now() - start, std::chrono::milliseconds(900)) << "not before the timeout";
  EXPECT_EQ(seg->skipped_below(), 4u) << "a late commit of 3 would now be refused";
  // As a late commit is: readers gave up on everything below 100.
  const std::uint64_t skipped = 100;
  poke(file, offsetof(SegmentHeader, skipped_below), &skipped, sizeof skipped);
  auto late = j->append("a.b", "", body_of(5));
  ASSERT_FALSE(late) << "never acknowledged: a reader may have gone past it";
  EXPECT_EQ(late.error().code, Errc::timeout);
}

TEST(Journal, should_keep_appending_in_its_own_directory_after_the_directory_is_renamed) {
  TempDir dir;
  auto old = open_journal(dir.sub("s"), 64 << 10);
  ASSERT_TRUE(old);
  ASSERT_TRUE(old->append("a", "", "before"));
  // The stream is removed (renamed aside) and a new one of the same name made in its place.
  fs::rename(dir.sub("s"), dir.sub("trash"));
  auto fresh = open_journal(dir.sub("s"), 64 << 10);
  ASSERT_TRUE(fresh);
  // The old handle fills segments and rolls over: its files go with it, not into the new one.
  for (int i = 0; i < 2000; ++i) ASSERT_TRUE(old->append("a", "", std::string(100, 'o')));
  EXPECT_GT(old->segment_count(), 1u);
  EXPECT_EQ(fresh->segment_count(), 1u);
  EXPECT_EQ(fresh->append("a", "", "new").value(), 1u);
  fresh.reset();
  auto reopened = open_journal(dir.sub("s"), 64 << 10);
  ASSERT_TRUE(reopened) << "the new stream's journal holds only its own files";
  EXPECT_EQ(reopened->last_seq(), 1u);
}

TEST(Journal, should_roll_over_into_the_spare_prepared_ahead) {
  TempDir dir;
  auto j = open_journal(dir.sub("s"), 64 << 10);
  ASSERT_TRUE(j);
  const std::string spare = dir.sub("s") + "/spare";
  ASSERT_TRUE(j->prepare_spare(SyncPolicy::never));
  EXPECT_FALSE(fs::exists(spare)) << "not while the tail is (nearly) empty: an idle stream keeps no spare";
  std::uint64_t n = 0;
  while (j->stored_bytes() < (40u << 10)) ASSERT_EQ(j->append("a", "", body_of(++n)).value(), n);
  ASSERT_TRUE(j->prepare_spare(SyncPolicy::never));
  ASSERT_TRUE(fs::exists(spare));
  EXPECT_EQ(fs::file_size(spare), 64u << 10);
  struct stat st{};
  ASSERT_EQ(::stat(spare.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  while (j->segment_count() < 2) ASSERT_EQ(j->append("a", "", body_of(++n)).value(), n);
  EXPECT_FALSE(fs::exists(spare)) << "the roll-over took it";
  for (int i = 0; i < 10; ++i) ASSERT_EQ(j->append("a", "", body_of(++n)).value(), n);
  ASSERT_TRUE(j->prepare_spare(SyncPolicy::never));
  EXPECT_TRUE(fs::exists(spare)) << "a journal that rolls over keeps its next segments ready from the start";
  EXPECT_TRUE(fs::exists(spare + ".next"));
  while (j->segment_count() < 3) ASSERT_EQ(j->append("a", "", body_of(++n)).value(), n);
  EXPECT_TRUE(fs::exists(spare + ".next")) << "the roll-over took the first";
  ASSERT_TRUE(j->prepare_spare(SyncPolicy::never));
  EXPECT_TRUE(fs::exists(spare)) << "the second moved up";
  j.reset();
  auto again = open_journal(dir.sub("s"), 64 << 10);
  ASSERT_TRUE(again);
  EXPECT_EQ(again->recovery().records, n);
  EXPECT_EQ(again->recovery().lost_records, 0u);
  EXPECT_EQ(again->read(n)->payload, body_of(n));
}

// KiB of `path` this process maps a PMD (2 MiB) at a time, from /proc/self/smaps.
std::uint64_t pmd_mapped_kib(const std::string& path) {
  std::FILE* f = std::fopen("/proc/self/smaps", "re");
  if (f == nullptr) return 0;
  std::uint64_t kib = 0;
  bool ours = false;
  char line[4096];
  while (std::fgets(line, sizeof line, f) != nullptr) {
    std::string l(line);
    if (!l.empty() && l.back() == '\n') l.pop_back();
    unsigned long long value = 0;
    if (std::sscanf(l.c_str(), "FilePmdMapped: %llu kB", &value) == 1) {
      if (ours) kib += value;
    } else if (l.find(':') == std::string::npos || l.find(' ') < l.find(':')) {
      // A mapping's first line ("start-end perms offset dev inode path"), not a "Key: value".
      ours = l.size() >= path.size() && l.compare(l.size() - path.size(), path.size(), path) == 0;
    }
  }
  std::fclose(f);
  return kib;
}

// KiB of a file zero-filled in writes of `chunk` bytes (4 MiB in all) that this process maps a
// PMD at a time once it has mapped and written it: what the kernel and filesystem make of such
// writes, found without the journal.
std::uint64_t probe_pmd_kib(const std::string& path, std::size_t chunk) {
  constexpr std::size_t kSize = 4u << 20;
  const int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  if (fd < 0) return 0;
  const std::vector<char> zeros(chunk, 0);
  bool ok = true;
  for (std::size_t at = 0; ok && at < kSize; at += chunk) {
    ok = ::pwrite(fd, zeros.data(), chunk, static_cast<off_t>(at)) == static_cast<ssize_t>(chunk);
  }
  std::uint64_t kib = 0;
  void* p = ok ? ::mmap(nullptr, kSize, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0) : MAP_FAILED;
  if (p != MAP_FAILED) {
    for (std::size_t at = 0; at < kSize; at += 4096) static_cast<volatile char*>(p)[at] = 1;
    kib = pmd_mapped_kib(path);
    ::munmap(p, kSize);
  }
  ::close(fd);
  ::unlink(path.c_str());
  return kib;
}

// A stream that never syncs gets its segments in 2 MiB folios, mapped a PMD at a time (a fault
// per 2 MiB, not per 4 KiB); one that syncs every append in 4 KiB pages, since a sync writes
// back each dirty folio whole. Only where the filesystem has large folios (ext4 on Linux 6.16
// and later), which a probe without the journal finds out first.
TEST(Journal, should_make_large_pages_for_a_stream_that_never_syncs_and_small_ones_for_one_that_syncs_each_append) {
  TempDir dir;
  if (probe_pmd_kib(dir.sub("probe-large"), 2u << 20) == 0) {
    GTEST_SKIP() << "2 MiB writes give files here no 2 MiB folios (no large folios in this filesystem)";
  }
  // A tmpfs mounted huge=always makes huge pages of any writes: then there is no small shape.
  const bool small_writes_stay_small = probe_pmd_kib(dir.sub("probe-small"), 4096) == 0;
  constexpr std::uint64_t kSegment = 8ull << 20;
  auto open_with = [&](const std::string& name, SyncPolicy sync) {
    JournalOptions options;
    options.segment_bytes = kSegment;
    options.sync = sync;
    auto j = Journal::open(dir.sub(name), options);
    EXPECT_TRUE(j) << j.error().message;
    return j ? std::move(j).value() : nullptr;
  };
  auto never = open_with("never", SyncPolicy::never);
  auto always = open_with("always", SyncPolicy::always);
  ASSERT_TRUE(never && always);
  const std::string first = "/" + segment_file_name(1);
  // Greater than zero, not all of it: the kernel makes a smaller folio where it finds no free
  // 2 MiB of memory at once.
  EXPECT_GT(pmd_mapped_kib(dir.sub("never") + first), 0u) << "a never-synced segment is in 2 MiB mappings";
  if (small_writes_stay_small) {
    EXPECT_EQ(pmd_mapped_kib(dir.sub("always") + first), 0u) << "a segment synced at every append is not";
  }
  // The next segment, from the spare made ahead of the roll-over, is shaped by the policy the
  // preparer passes (the stream's now, which an edit may have changed).
  const std::string payload(200, 'p');
  std::uint64_t n = 0;
  while (never->stored_bytes() < kSegment / 2) ASSERT_EQ(never->append("a", "", payload).value(), ++n);
  ASSERT_TRUE(never->prepare_spare(SyncPolicy::never));
  ASSERT_TRUE(fs::exists(dir.sub("never") + "/spare"));
  while (never->segment_count() < 2) ASSERT_EQ(never->append("a", "", payload).value(), ++n);
  const std::string second = dir.sub("never") + "/" + segment_file_name(n);
  ASSERT_TRUE(fs::exists(second)) << second;
  EXPECT_GT(pmd_mapped_kib(second), 0u) << "the spare was made in 2 MiB folios too";
  // Edited to sync always: the spare made next is in 4 KiB pages.
  for (int i = 0; i < 10; ++i) ASSERT_EQ(never->append("a", "", payload).value(), ++n);
  ASSERT_TRUE(never->prepare_spare(SyncPolicy::always));
  while (never->segment_count() < 3) ASSERT_EQ(never->append("a", "", payload).value(), ++n);
  const std::string third = dir.sub("never") + "/" + segment_file_name(n);  // its first record: n
  ASSERT_TRUE(fs::exists(third)) << third;
  if (small_writes_stay_small) {
    EXPECT_EQ(pmd_mapped_kib(third), 0u) << "the spare made after the edit is in 4 KiB pages";
  }
}

}  // namespace
}  // namespace bus::detail::journal

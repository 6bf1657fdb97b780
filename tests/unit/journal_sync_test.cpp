// The journal's sync policies (libbus/src/journal/): group commit under sync always (every
// append returns only after a flush that began after its commit; concurrent appenders share
// flushes; a flush owner that never finishes is bypassed, never waited on forever), the flush
// epochs across their 32-bit wrap, and flush() of deletes for the broker's flusher.
#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <chrono>
#include <string>
#include <thread>
#include <vector>

#include "journal/journal.hpp"
#include "os/process.hpp"
#include "temp_dir.hpp"

namespace bus::detail::journal {
namespace {

using TempDir = bus::test::TempDir;

/// The header of a segment file, through a mapping of our own (as another process sees it).
class HeaderView {
 public:
  explicit HeaderView(const std::string& path) {
    fd_ = ::open(path.c_str(), O_RDWR | O_CLOEXEC);
    if (fd_ >= 0) base_ = ::mmap(nullptr, kSegmentHeaderBytes, PROT_READ | PROT_WRITE, MAP_SHARED, fd_, 0);
  }
  ~HeaderView() {
    if (base_ != MAP_FAILED && base_ != nullptr) ::munmap(base_, kSegmentHeaderBytes);
    if (fd_ >= 0) ::close(fd_);
  }
  bool ok() const { return fd_ >= 0 && base_ != MAP_FAILED && base_ != nullptr; }
  SegmentHeader* operator->() const { return static_cast<SegmentHeader*>(base_); }

 private:
  int fd_ = -1;
  void* base_ = nullptr;
};

std::unique_ptr<Journal> open_synced(const std::string& dir, SyncPolicy sync) {
  JournalOptions options;
  options.segment_bytes = 1 << 20;
  options.sync = sync;
  auto j = Journal::open(dir, options);
  EXPECT_TRUE(j) << j.error().message;
  return j ? std::move(j).value() : nullptr;
}

TEST(JournalSync, should_return_every_sync_always_append_after_a_finished_flush_and_share_flushes) {
  TempDir dir;
  auto j = open_synced(dir.sub("s"), SyncPolicy::always);
  ASSERT_TRUE(j);
  constexpr int kThreads = 4, kEach = 300;
  std::vector<std::thread> threads;
  std::atomic<int> failed{0};
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < kEach; ++i) {
        if (!j->append("s.x", "", std::string(64, 'p'))) failed.fetch_add(1);
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(failed.load(), 0);
  HeaderView h(dir.sub("s") + "/" + segment_file_name(1));
  ASSERT_TRUE(h.ok());
  const std::uint32_t started = h->sync_started.load();
  EXPECT_EQ(h->sync_done.load(), started) << "every flush begun has finished";
  EXPECT_GE(started, 1u);
  EXPECT_LE(started, static_cast<std::uint32_t>(kThreads * kEach)) << "never more flushes than appends";
  EXPECT_EQ(h->sync_owner.load(), 0u) << "the flush is released";
  EXPECT_EQ(h->dir_synced.load(), 1u) << "the file's name was put on disk before an append returned";
}

TEST(JournalSync, should_not_sync_a_sync_never_append) {
  TempDir dir;
  auto j = open_synced(dir.sub("s"), SyncPolicy::never);
  ASSERT_TRUE(j);
  for (int i = 0; i < 10; ++i) ASSERT_TRUE(j->append("s.x", "", "p"));
  HeaderView h(dir.sub("s") + "/" + segment_file_name(1));
  ASSERT_TRUE(h.ok());
  EXPECT_EQ(h->sync_started.load(), 0u);
  EXPECT_EQ(h->dir_synced.load(), 0u);
}

TEST(JournalSync, should_bypass_a_flush_owner_that_never_finishes_and_time_out_before_that) {
  TempDir dir;
  auto file = SegmentFile::create(dir.sub("seg"), 1, 1 << 20, 7, PageShape::syncs);
  ASSERT_TRUE(file) << file.error().message;
  std::uint64_t seq = 0, offset = 0;
  ASSERT_EQ(file->append("s", "", "p", 1, seq, offset), AppendStatus::appended);
  HeaderView h(dir.sub("seg"));
  ASSERT_TRUE(h.ok());
  // A stopped process holds the flush: it took it just now and will not finish.
  h->sync_owner.store(999'999);
  h->sync_since_ns.store(monotonic_ns());
  // A wait shorter than the bypass bound ends in a timeout (bounded, reported), not a hang.
  auto st = file->make_durable(std::chrono::milliseconds(200));
  ASSERT_FALSE(st);
  EXPECT_EQ(st.error().code, Errc::timeout);
  EXPECT_EQ(h->sync_started.load(), 0u) << "a live owner's flush is not duplicated early";
  // A longer one bypasses the stuck owner once its hold is stale, and flushes itself.
  const auto t0 = std::chrono::steady_clock::now();
  st = file->make_durable(std::chrono::seconds(20));
  const auto waited = std::chrono::steady_clock::now() - t0;
  ASSERT_TRUE(st) << st.error().message;
  EXPECT_EQ(h->sync_started.load(), 1u);
  EXPECT_EQ(h->sync_done.load(), 1u);
  EXPECT_LT(waited, std::chrono::seconds(10)) << "bypassed after about a second, not at the deadline";
}

TEST(JournalSync, should_count_flush_epochs_across_their_wrap) {
  TempDir dir;
  auto file = SegmentFile::create(dir.sub("seg"), 1, 1 << 20, 7, PageShape::syncs);
  ASSERT_TRUE(file) << file.error().message;
  HeaderView h(dir.sub("seg"));
  ASSERT_TRUE(h.ok());
  h->sync_started.store(0xFFFF'FFFFu);
  h->sync_done.store(0xFFFF'FFFFu);
  for (std::uint32_t round = 0; round < 3; ++round) {
    std::uint64_t seq = 0, offset = 0;
    ASSERT_EQ(file->append("s", "", "p", 1, seq, offset), AppendStatus::appended);
    auto st = file->make_durable(std::chrono::seconds(5));
    ASSERT_TRUE(st) << st.error().message;
    EXPECT_EQ(h->sync_done.load(), round) << "the epoch after 2^32 - 1 is 0, and it counts as later";
  }
}

TEST(JournalSync, should_flush_deletes_and_only_segments_that_changed) {
  TempDir dir;
  auto j = open_synced(dir.sub("s"), SyncPolicy::interval);
  ASSERT_TRUE(j);
  for (int i = 0; i < 5; ++i) ASSERT_TRUE(j->append("s.x", "", "p"));
  HeaderView h(dir.sub("s") + "/" + segment_file_name(1));
  ASSERT_TRUE(h.ok());
  EXPECT_EQ(h->sync_started.load(), 0u) << "interval: the appender does not flush";
  ASSERT_TRUE(j->flush());
  EXPECT_EQ(h->sync_done.load(), 1u);
  EXPECT_EQ(h->dir_synced.load(), 1u);
  ASSERT_TRUE(j->flush());
  EXPECT_EQ(h->sync_done.load(), 2u) << "just grown: flushed again (a record claimed before may commit late)";
  // Once no record claimed before the last flush can still be committed, an unchanged segment
  // is left alone.
  std::this_thread::sleep_for(std::chrono::nanoseconds(2 * Journal::kAbandonAfterNs + 100'000'000));
  ASSERT_TRUE(j->flush());
  EXPECT_EQ(h->sync_done.load(), 3u) << "one flush after the window, whenever the next round comes";
  ASSERT_TRUE(j->flush());
  EXPECT_EQ(h->sync_done.load(), 3u) << "nothing changed: no further flush";
  EXPECT_FALSE(j->has_unflushed_deletes());
  ASSERT_TRUE(j->remove(2));
  EXPECT_TRUE(j->has_unflushed_deletes());
  ASSERT_TRUE(j->flush());
  EXPECT_FALSE(j->has_unflushed_deletes());
  EXPECT_EQ(h->sync_done.load(), 4u) << "the delete's mark was flushed";
}

// Fills segments of 1 MiB with 64 KiB records until the journal has `segments` files.
void append_until_segments(Journal& j, std::size_t segments) {
  const std::string big(64 << 10, 'x');
  for (int i = 0; i < 200 && j.segment_count() < segments; ++i) ASSERT_TRUE(j.append("s.x", "", big));
  ASSERT_EQ(j.segment_count(), segments);
}

TEST(JournalSync, should_put_the_seal_of_the_segment_before_on_disk_before_a_synced_record_after_it) {
  TempDir dir;
  auto j = open_synced(dir.sub("s"), SyncPolicy::always);
  ASSERT_TRUE(j);
  HeaderView first(dir.sub("s") + "/" + segment_file_name(1));
  ASSERT_TRUE(first.ok());
  const std::string big(64 << 10, 'x');
  std::uint32_t flushed_before_roll = 0;
  for (int i = 0; i < 200 && j->segment_count() == 1; ++i) {
    flushed_before_roll = first->sync_done.load();  // the last flush of the first segment's own records
    ASSERT_TRUE(j->append("s.x", "", big));
  }
  ASSERT_EQ(j->segment_count(), 2u);
  EXPECT_TRUE(claim_sealed(first->claim.load()));
  EXPECT_EQ(first->sync_done.load(), flushed_before_roll + 1) << "flushed once more, after its seal";
  const std::uint64_t second_first = first->first_seq + claim_count(first->claim.load());
  HeaderView second(dir.sub("s") + "/" + segment_file_name(second_first));
  ASSERT_TRUE(second.ok());
  EXPECT_EQ(second->dir_synced.load(), 1u);
  ASSERT_TRUE(j->append("s.x", "", "small"));
  EXPECT_EQ(first->sync_done.load(), flushed_before_roll + 1) << "only before the first synced record after it";
}

TEST(JournalSync, should_recover_a_segment_whose_seal_was_lost_when_a_later_one_exists) {
  TempDir dir;
  std::uint64_t last = 0;
  {
    auto j = open_synced(dir.sub("s"), SyncPolicy::never);
    ASSERT_TRUE(j);
    append_until_segments(*j, 2);
    ASSERT_TRUE(j->append("s.y", "", "after the roll"));
    last = j->last_seq();
  }
  {
    // A power cut took the first segment's header page from before its seal.
    HeaderView first(dir.sub("s") + "/" + segment_file_name(1));
    ASSERT_TRUE(first.ok());
    first->claim.store(first->claim.load() & ~std::uint64_t{kSealedBit});
  }
  auto j = open_synced(dir.sub("s"), SyncPolicy::never);
  ASSERT_TRUE(j);
  EXPECT_EQ(j->recovery().lost_records, 0u);
  ASSERT_FALSE(j->recovery().damage.empty());
  EXPECT_NE(j->recovery().damage.front().find("not sealed"), std::string::npos) << j->recovery().damage.front();
  EXPECT_EQ(j->last_seq(), last);
  for (std::uint64_t seq = 1; seq <= last; ++seq) ASSERT_TRUE(j->read(seq)) << seq;
  HeaderView first(dir.sub("s") + "/" + segment_file_name(1));
  EXPECT_TRUE(claim_sealed(first->claim.load())) << "sealed again: appends go on in the last segment";
}

TEST(JournalSync, should_fail_every_synced_append_to_a_segment_whose_flush_failed_and_report_it_once) {
  TempDir dir;
  auto j = open_synced(dir.sub("s"), SyncPolicy::always);
  ASSERT_TRUE(j);
  ASSERT_TRUE(j->append("s.x", "", "p"));
  HeaderView h(dir.sub("s") + "/" + segment_file_name(1));
  ASSERT_TRUE(h.ok());
  h->sync_failed.store(EIO);  // what a failed msync (of any process) leaves
  auto r = j->append("s.x", "", "p");
  ASSERT_FALSE(r) << "stored, but never reported as synced";
  EXPECT_EQ(r.error().code, Errc::io_error);
  EXPECT_NE(r.error().message.find("earlier flush"), std::string::npos) << r.error().message;
  ASSERT_TRUE(j->remove(1));
  auto flushed = j->flush();
  EXPECT_FALSE(flushed) << "the broker's flush reports it";
  EXPECT_TRUE(j->flush()) << "once";
  EXPECT_FALSE(j->has_unflushed_deletes()) << "a failed file is not flushed again every round";
}

TEST(JournalSync, should_put_the_removal_of_a_dropped_segment_on_disk_with_the_next_flush) {
  TempDir dir;
  auto j = open_synced(dir.sub("s"), SyncPolicy::always);
  ASSERT_TRUE(j);
  append_until_segments(*j, 2);
  HeaderView first(dir.sub("s") + "/" + segment_file_name(1));
  ASSERT_TRUE(first.ok());
  const std::uint64_t in_first = claim_count(first->claim.load());
  for (std::uint64_t seq = 1; seq <= in_first; ++seq) ASSERT_TRUE(j->remove(seq));
  ASSERT_TRUE(j->flush());
  EXPECT_FALSE(j->has_unflushed_deletes());
  EXPECT_EQ(j->drop_deleted_segments(), 1u);
  EXPECT_TRUE(j->has_unflushed_deletes()) << "its marks went with it; its unlink is not on disk yet";
  ASSERT_TRUE(j->flush());
  EXPECT_FALSE(j->has_unflushed_deletes());
}

}  // namespace
}  // namespace bus::detail::journal

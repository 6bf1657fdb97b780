// ring_test.cpp — MpscRing behaviour: framing, wrap-around, full ring, torn and corrupt records,
// stale incarnations, stalled and dead writers (exact skips by claim lane, gaps without one), the
// sleeping bit, and many producers (threads and processes) against one consumer with nothing lost
// or torn.
#include <gtest/gtest.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cstring>
#include <new>
#include <string>
#include <thread>
#include <vector>

#include "ring/mpsc_ring.hpp"

namespace bus::detail {
namespace {

// A ring in a MAP_SHARED anonymous mapping, so forked children share it.
struct TestRing {
  explicit TestRing(std::uint32_t capacity) : capacity_(capacity) {
    bytes_ = sizeof(SubscriptionLayout) + sizeof(ClaimLane) * kLanes + capacity;
    mem_ = ::mmap(nullptr, bytes_, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    EXPECT_NE(mem_, MAP_FAILED);
    ctl = new (mem_) SubscriptionLayout();
    ctl->incarnation.store(1);
    lanes = new (static_cast<std::byte*>(mem_) + sizeof(SubscriptionLayout)) ClaimLane[kLanes]();
    data = static_cast<std::byte*>(mem_) + sizeof(SubscriptionLayout) + sizeof(ClaimLane) * kLanes;
    ring = MpscRing(ctl, data, capacity);
  }
  ~TestRing() { ::munmap(mem_, bytes_); }
  TestRing(const TestRing&) = delete;
  TestRing& operator=(const TestRing&) = delete;

  static constexpr std::size_t kLanes = 8;  // one per producer (thread or process)
  std::uint32_t capacity_;
  std::size_t bytes_;
  void* mem_;
  SubscriptionLayout* ctl;
  ClaimLane* lanes;
  std::byte* data;
  MpscRing ring;
};

ProducerCursor cursor_for(const TestRing& r) { return ProducerCursor{r.ctl->incarnation.load(), 0}; }

// A lane for single-threaded tests (what a publisher's claim lane holds is tested in mp/).
ClaimLane g_lane{};

RecordFields fields_for(std::size_t subject_len, std::size_t payload_len, std::uint32_t client = 0) {
  RecordFields f;
  f.subject_len = static_cast<std::uint8_t>(subject_len);
  f.payload_len = static_cast<std::uint32_t>(payload_len);
  f.producer_client = static_cast<std::uint16_t>(client);
  f.producer_epoch = 1;
  return f;
}

ClaimStatus write_message(MpscRing& ring, ProducerCursor& cursor, std::string_view subject,
                          std::string_view payload, std::uint32_t client = 0, ClaimLane& lane = g_lane) {
  Claim claim;
  const auto bytes = static_cast<std::uint32_t>(record_bytes(subject.size(), 0, 0, payload.size()));
  const ClaimStatus st = ring.try_claim(cursor, bytes, lane, lane_tag(0), claim);
  if (st != ClaimStatus::claimed) return st;
  MpscRing::begin_write(claim, fields_for(subject.size(), payload.size(), client));
  char* out = reinterpret_cast<char*>(MpscRing::body(claim));
  std::memcpy(out, subject.data(), subject.size());
  std::memcpy(out + subject.size(), payload.data(), payload.size());
  EXPECT_TRUE(MpscRing::commit(claim, lane));
  lane.claim.store(0, std::memory_order_release);  // as publish() does once it is done
  return st;
}

// A writer that claimed and wrote its record but stopped before commit().
void write_without_commit(const Claim& claim, std::string_view subject, std::string_view payload) {
  MpscRing::begin_write(claim, fields_for(subject.size(), payload.size()));
  char* out = reinterpret_cast<char*>(MpscRing::body(claim));
  std::memcpy(out, subject.data(), subject.size());
  std::memcpy(out + subject.size(), payload.data(), payload.size());
}

std::uint32_t bytes_for(std::string_view subject, std::string_view payload) {
  return static_cast<std::uint32_t>(record_bytes(subject.size(), 0, 0, payload.size()));
}

struct Received {
  std::string subject, payload;
};

PollStatus read_all(MpscRing& ring, std::uint64_t& head, std::vector<Received>& out, std::uint32_t max = 1000) {
  std::uint32_t delivered = 0;
  return ring.poll(head, max, delivered, [&](const RecordView& v) {
    out.push_back({std::string(v.subject, v.subject_len),
                   std::string(reinterpret_cast<const char*>(v.payload), v.payload_len)});
  });
}

TEST(MpscRing, should_deliver_in_order_across_many_wraparounds) {
  TestRing r(4096);
  auto cursor = cursor_for(r);
  std::uint64_t head = 0;
  std::vector<Received> got;
  int sent = 0;
  // Varying sizes so the wrap point lands at every alignment, padding records included.
  for (int i = 0; i < 5000; ++i) {
    std::string payload(static_cast<std::size_t>(i % 300), static_cast<char>('a' + i % 26));
    payload += std::to_string(i);
    while (write_message(r.ring, cursor, "s." + std::to_string(i % 7), payload) == ClaimStatus::full) {
      ASSERT_NE(read_all(r.ring, head, got), PollStatus::corrupt);
    }
    ++sent;
  }
  ASSERT_NE(read_all(r.ring, head, got), PollStatus::corrupt);
  ASSERT_EQ(got.size(), static_cast<std::size_t>(sent));
  for (int i = 0; i < sent; ++i) {
    EXPECT_EQ(got[i].subject, "s." + std::to_string(i % 7));
    EXPECT_TRUE(got[i].payload.ends_with(std::to_string(i))) << i;
    EXPECT_EQ(got[i].payload.size(), static_cast<std::size_t>(i % 300) + std::to_string(i).size());
  }
  EXPECT_GT(head, 10u * 4096u) << "the test should have wrapped the ring many times";
  EXPECT_EQ(r.ctl->delivered_msgs.load(), static_cast<std::uint64_t>(sent));
}

TEST(MpscRing, should_report_full_without_overwriting_unconsumed_records) {
  TestRing r(4096);
  auto cursor = cursor_for(r);
  int accepted = 0;
  while (write_message(r.ring, cursor, "a", std::string(100, 'x') + std::to_string(accepted)) ==
         ClaimStatus::claimed) {
    ++accepted;
  }
  EXPECT_GT(accepted, 20);
  EXPECT_LE(accepted * 136, 4096);
  std::uint64_t head = 0;
  std::vector<Received> got;
  read_all(r.ring, head, got);
  ASSERT_EQ(got.size(), static_cast<std::size_t>(accepted));
  for (int i = 0; i < accepted; ++i) EXPECT_TRUE(got[i].payload.ends_with(std::to_string(i)));
  // Space is back.
  EXPECT_EQ(write_message(r.ring, cursor, "a", "again"), ClaimStatus::claimed);
}

TEST(MpscRing, should_reject_a_record_larger_than_half_the_ring) {
  TestRing r(4096);
  auto cursor = cursor_for(r);
  EXPECT_EQ(write_message(r.ring, cursor, "a", std::string(2048, 'x')), ClaimStatus::too_large);
  EXPECT_EQ(write_message(r.ring, cursor, "a", std::string(2048 - 40, 'x')), ClaimStatus::claimed);
}

TEST(MpscRing, should_fit_a_half_ring_record_in_an_empty_ring_whatever_the_wrap_point) {
  TestRing r(4096);
  auto cursor = cursor_for(r);
  std::uint64_t head = 0;
  std::vector<Received> got;
  for (int offset = 0; offset < 4096; offset += 8 * 37) {
    // Move the ring to an arbitrary index, then empty it.
    ASSERT_EQ(write_message(r.ring, cursor, "", std::string(static_cast<std::size_t>(offset % 1500), 'p')),
              ClaimStatus::claimed);
    read_all(r.ring, head, got);
    EXPECT_EQ(write_message(r.ring, cursor, "big", std::string(2048 - 32 - 8, 'b')), ClaimStatus::claimed)
        << "offset " << offset;
    read_all(r.ring, head, got);
  }
}

TEST(MpscRing, should_not_deliver_a_record_that_is_still_being_written) {
  TestRing r(4096);
  auto cursor = cursor_for(r);
  Claim claim;
  ASSERT_EQ(r.ring.try_claim(cursor, 64, r.lanes[0], lane_tag(0), claim), ClaimStatus::claimed);
  // The lane names the claim, that its CAS won, and where it ends: what a consumer needs to
  // step over it.
  EXPECT_EQ(r.lanes[0].claim.load(), lane_word(lane_tag(0), 0) | kLaneWonBit);
  EXPECT_EQ(r.lanes[0].claim_end.load(), 64u);
  std::uint64_t head = 0;
  std::vector<Received> got;
  EXPECT_EQ(read_all(r.ring, head, got), PollStatus::empty) << "claimed, nothing written";
  EXPECT_TRUE(r.ring.claimed_beyond(head)) << "what tells a pending claim from an empty ring";
  const std::uint64_t state_before = claim.record->state.load();
  write_without_commit(claim, "", "12345678");
  EXPECT_EQ(claim.record->state.load(), state_before) << "writing is plain stores, no state change";
  EXPECT_EQ(read_all(r.ring, head, got), PollStatus::empty) << "written, not committed";
  EXPECT_FALSE(r.ring.committed_at(head));
  EXPECT_TRUE(got.empty());
  EXPECT_EQ(head, 0u);
  ASSERT_TRUE(MpscRing::commit(claim, r.lanes[0]));
  EXPECT_TRUE(r.ring.committed_at(head));
  EXPECT_EQ(read_all(r.ring, head, got), PollStatus::delivered);
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].payload, "12345678");
  EXPECT_EQ(read_all(r.ring, head, got), PollStatus::empty);
  EXPECT_FALSE(r.ring.claimed_beyond(head));
}

TEST(MpscRing, should_report_corrupt_records_instead_of_reading_out_of_bounds) {
  struct Case {
    const char* name;
    std::uint64_t kind;
    std::uint32_t length;
    std::uint32_t payload_len;
  };
  const Case cases[] = {
      {"length beyond the ring", kRecordMessage, 1 << 20, 0},
      {"unaligned length", kRecordMessage, 37, 0},
      {"zero length", kRecordMessage, 0, 0},
      {"fields longer than the record", kRecordMessage, 64, 1000},
      {"message shorter than its header", kRecordMessage, 16, 0},
      {"padding beyond the ring", kRecordPadding, 1 << 13, 0},
      {"unknown kind", 5, 64, 0},
      {"retired being-written kind", kRecordWriting, 64, 0},  // nothing writes it any more
  };
  for (const Case& c : cases) {
    TestRing r(4096);
    auto* rec = reinterpret_cast<RecordHeader*>(r.data);
    rec->length = c.length;
    rec->payload_len = c.payload_len;
    rec->state.store(0 | c.kind);
    r.ctl->tail_word.store(64);
    std::uint64_t head = 0;
    std::vector<Received> got;
    EXPECT_EQ(read_all(r.ring, head, got), PollStatus::corrupt) << c.name;
    EXPECT_TRUE(got.empty()) << c.name;
    EXPECT_EQ(head, 0u) << c.name;
  }
}

TEST(MpscRing, should_ignore_bytes_left_from_an_earlier_lap) {
  TestRing r(4096);
  auto cursor = cursor_for(r);
  std::uint64_t head = 0;
  std::vector<Received> got;
  // One full lap of committed records, consumed: their bytes stay in the ring (no zeroing).
  while (head < 4096) {
    ASSERT_EQ(write_message(r.ring, cursor, "lap1", std::string(40, 'x')), ClaimStatus::claimed);
    read_all(r.ring, head, got);
  }
  const std::size_t first_lap = got.size();
  // Nothing new is written: old committed records at the head's index must not be re-read.
  EXPECT_EQ(read_all(r.ring, head, got), PollStatus::empty);
  EXPECT_EQ(got.size(), first_lap);
  // A claim in progress at the head: still nothing, whatever the old bytes say.
  Claim claim;
  ASSERT_EQ(r.ring.try_claim(cursor, 64, g_lane, lane_tag(0), claim), ClaimStatus::claimed);
  EXPECT_EQ(read_all(r.ring, head, got), PollStatus::empty);
  EXPECT_EQ(got.size(), first_lap);
}

TEST(MpscRing, should_treat_a_head_beyond_the_tail_as_full_not_as_space) {
  TestRing r(4096);
  auto cursor = cursor_for(r);
  r.ctl->head_position.store(1'000'000);  // scribbled by someone
  cursor.cached_head = 0;
  for (int i = 0; i < 100; ++i) {
    if (write_message(r.ring, cursor, "a", std::string(200, 'x')) == ClaimStatus::full) return;
  }
  FAIL() << "a scribbled head let producers claim without bound";
}

TEST(MpscRing, should_refuse_claims_from_a_stale_incarnation) {
  TestRing r(4096);
  auto cursor = cursor_for(r);
  ASSERT_EQ(write_message(r.ring, cursor, "a", "1"), ClaimStatus::claimed);
  r.ctl->incarnation.store(2);  // the broker removed the subscription
  r.ctl->tail_word.fetch_add(4096);
  EXPECT_EQ(write_message(r.ring, cursor, "a", "2"), ClaimStatus::stale);
}

// A stalled writer (header and body written, no commit): the consumer steps over exactly the
// claim its lane names, and the writer learns at its commit that the message is lost.
TEST(MpscRing, should_skip_a_stalled_record_and_refuse_its_late_commit) {
  TestRing r(4096);
  auto cursor = cursor_for(r);
  std::uint64_t head = 0;
  std::vector<Received> got;
  // A record first, so the stalled claim sits at a position whose lane word needs the mask.
  ASSERT_EQ(write_message(r.ring, cursor, "before", "ok", 0, r.lanes[1]), ClaimStatus::claimed);
  Claim claim;
  const std::string body(20, 's');
  ASSERT_EQ(r.ring.try_claim(cursor, bytes_for("stalled", body), r.lanes[0], lane_tag(0), claim), ClaimStatus::claimed);
  write_without_commit(claim, "stalled", body);  // then the writer stops
  ASSERT_EQ(write_message(r.ring, cursor, "after", "ok", 0, r.lanes[1]), ClaimStatus::claimed);
  EXPECT_EQ(read_all(r.ring, head, got), PollStatus::delivered);
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(head, claim.position);
  EXPECT_EQ(read_all(r.ring, head, got), PollStatus::empty) << "stuck behind the stalled claim";
  EXPECT_TRUE(r.ring.claimed_beyond(head));
  // What the consumer's lane scan reads.
  const std::uint64_t tail = r.ring.tail_acquire();
  const std::uint64_t word = r.lanes[0].claim.load();
  const std::uint64_t end = r.lanes[0].claim_end.load();
  ASSERT_EQ(lane_position(word, tail), head);
  const SkipResult skip = r.ring.skip_claim(head, end, &r.lanes[0], word);
  ASSERT_EQ(skip.kind, SkipResult::Kind::skipped);
  EXPECT_EQ(skip.bytes, claim.bytes);
  EXPECT_TRUE(lane_skipped(r.lanes[0].claim.load())) << "the lane is marked, for the writer to see";
  // The mark leaves the lane naming the same ring and claim: lane_position ignores the bit.
  EXPECT_EQ(lane_position(r.lanes[0].claim.load(), tail), claim.position);
  EXPECT_EQ(lane_ring_plus1(r.lanes[0].claim.load()), 1u);
  EXPECT_EQ(claim.record->state.load(), claim.position | kRecordSkipped);
  head += skip.bytes;
  got.clear();
  EXPECT_EQ(read_all(r.ring, head, got), PollStatus::delivered);
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].subject, "after");
  EXPECT_FALSE(MpscRing::commit(claim, r.lanes[0])) << "the late writer must learn that its record was skipped";
  EXPECT_EQ(claim.record->state.load(), claim.position | kRecordSkipped) << "a refused commit stores nothing";
}

// The writer's commit landed between the consumer's lane scan and its skip: nothing is skipped,
// and poll() delivers the record whole.
TEST(MpscRing, should_not_skip_a_record_committed_in_the_meantime) {
  TestRing r(4096);
  auto cursor = cursor_for(r);
  Claim claim;
  ASSERT_EQ(r.ring.try_claim(cursor, bytes_for("done", "payload"), r.lanes[0], lane_tag(0), claim), ClaimStatus::claimed);
  const std::uint64_t word = r.lanes[0].claim.load();  // the consumer's lane scan
  const std::uint64_t end = r.lanes[0].claim_end.load();
  write_without_commit(claim, "done", "payload");
  ASSERT_TRUE(MpscRing::commit(claim, r.lanes[0]));  // its lane still names the claim
  EXPECT_EQ(r.ring.skip_claim(0, end, &r.lanes[0], word).kind, SkipResult::Kind::none);
  EXPECT_EQ(r.ring.skip_gap(0, r.ring.tail_acquire()).kind, SkipResult::Kind::none);
  EXPECT_EQ(claim.record->state.load(), 0 | kRecordMessage) << "the commit must not be overwritten";
  std::uint64_t head = 0;
  std::vector<Received> got;
  EXPECT_EQ(read_all(r.ring, head, got), PollStatus::delivered);
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].subject, "done");
  EXPECT_EQ(got[0].payload, "payload");
  EXPECT_EQ(head, end);
}

// A claim end read from a lane is checked like any length from shared memory. A skip that fails
// the check marks nothing, so the writer still publishes.
TEST(MpscRing, should_report_a_skip_to_an_impossible_end_as_corrupt) {
  TestRing r(4096);
  auto cursor = cursor_for(r);
  std::uint64_t head = 0;
  std::vector<Received> got;
  ASSERT_EQ(write_message(r.ring, cursor, "before", "ok", 0, r.lanes[1]), ClaimStatus::claimed);
  ASSERT_EQ(read_all(r.ring, head, got), PollStatus::delivered);
  Claim claim;
  ASSERT_EQ(r.ring.try_claim(cursor, 64, r.lanes[0], lane_tag(0), claim), ClaimStatus::claimed);
  ASSERT_EQ(claim.position, head);
  const std::uint64_t word = r.lanes[0].claim.load();
  const std::uint64_t state_before = claim.record->state.load();
  struct Case {
    const char* name;
    std::uint64_t end;
  };
  const Case cases[] = {
      {"end at the head", head},
      {"end before the head", head - 8},
      {"end more than a ring past the head", head + 4096 + 8},
      {"end not 8-aligned", head + 60},
  };
  for (const Case& c : cases) {
    EXPECT_EQ(r.ring.skip_claim(head, c.end, &r.lanes[0], word).kind, SkipResult::Kind::corrupt) << c.name;
    EXPECT_EQ(r.lanes[0].claim.load(), word) << c.name << ": the lane must not be marked";
    EXPECT_EQ(claim.record->state.load(), state_before) << c.name << ": the record must not be marked";
  }
  write_without_commit(claim, "still", "here");
  EXPECT_TRUE(MpscRing::commit(claim, r.lanes[0]));
  got.clear();
  EXPECT_EQ(read_all(r.ring, head, got), PollStatus::delivered);
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].subject, "still");
}

// The lane word the consumer read is stale: writer X stored its lane for position 0, lost the
// claim CAS to writer Y, and claimed again further on. Skipping [0, X's end) would mark Y's
// record with X's length; the lane CAS refuses, and nothing is touched.
TEST(MpscRing, should_not_skip_when_the_lane_word_changed_since_it_was_read) {
  TestRing r(4096);
  auto cursor = cursor_for(r);
  // X's first attempt, the lane stores try_claim() makes before a CAS (which lost).
  r.lanes[0].claim_end.store(128);
  r.lanes[0].claim.store(lane_word(lane_tag(0), 0));
  const std::uint64_t stale_word = r.lanes[0].claim.load();  // the consumer's lane scan
  const std::uint64_t stale_end = r.lanes[0].claim_end.load();
  Claim y, x;
  ASSERT_EQ(r.ring.try_claim(cursor, 64, r.lanes[1], lane_tag(0), y), ClaimStatus::claimed);   // Y wins 0
  ASSERT_EQ(r.ring.try_claim(cursor, 128, r.lanes[0], lane_tag(0), x), ClaimStatus::claimed);  // X's retry
  ASSERT_EQ(x.position, 64u);
  EXPECT_EQ(r.ring.skip_claim(0, stale_end, &r.lanes[0], stale_word).kind, SkipResult::Kind::none);
  EXPECT_EQ(r.lanes[0].claim.load(), lane_word(lane_tag(0), 64) | kLaneWonBit) << "X's new claim must not be marked";
  EXPECT_FALSE(lane_won(stale_word)) << "a lost attempt never carries the won bit: no consumer takes it for an owner";
  EXPECT_FALSE(MpscRing::tagged(y.record->state.load(), 0)) << "Y's record must not be marked";
  write_without_commit(y, "y", "1");
  write_without_commit(x, "x", "2");
  EXPECT_TRUE(MpscRing::commit(y, r.lanes[1]));
  EXPECT_TRUE(MpscRing::commit(x, r.lanes[0]));
  std::uint64_t head = 0;
  std::vector<Received> got;
  EXPECT_EQ(read_all(r.ring, head, got), PollStatus::delivered);
  ASSERT_EQ(got.size(), 2u);
  EXPECT_EQ(got[0].subject, "y");
  EXPECT_EQ(got[1].subject, "x");
}

// A wrapping claim runs from its padding start to its record's end (claim_end counts the
// padding). Its writer stopped between the claim CAS and the padding CAS: the consumer skips it
// whole from the padding start, the writer's padding CAS then fails, and its commit is refused.
TEST(MpscRing, should_skip_a_wrapping_claim_whole_from_its_padding_start) {
  TestRing r(4096);
  auto cursor = cursor_for(r);
  std::uint64_t head = 0;
  std::vector<Received> got;
  // Tail 64 bytes before the end of the ring, everything consumed.
  for (int i = 0; i < 2; ++i) {
    ASSERT_EQ(write_message(r.ring, cursor, "", std::string(2016 - 32, 'f')), ClaimStatus::claimed);
    read_all(r.ring, head, got);
  }
  ASSERT_EQ(head, 4032u);
  got.clear();
  auto* pad = reinterpret_cast<RecordHeader*>(r.data + 4032);
  const std::uint64_t before_padding = pad->state.load();
  Claim claim;
  ASSERT_EQ(r.ring.try_claim(cursor, 200, r.lanes[0], lane_tag(0), claim), ClaimStatus::claimed);
  ASSERT_EQ(claim.position, 4096u) << "the record wrapped to index 0";
  // try_claim() runs its padding CAS right after the claim CAS: undo it, to stop the writer between the two.
  pad->state.store(before_padding);
  ASSERT_EQ(write_message(r.ring, cursor, "after", "ok", 0, r.lanes[1]), ClaimStatus::claimed);
  EXPECT_EQ(read_all(r.ring, head, got), PollStatus::empty);
  const std::uint64_t tail = r.ring.tail_acquire();
  const std::uint64_t word = r.lanes[0].claim.load();
  const std::uint64_t end = r.lanes[0].claim_end.load();
  EXPECT_EQ(lane_position(word, tail), 4032u) << "the lane names the padding start";
  EXPECT_EQ(end, 4096u + 200u) << "and its end counts the padding";
  const SkipResult skip = r.ring.skip_claim(head, end, &r.lanes[0], word);
  ASSERT_EQ(skip.kind, SkipResult::Kind::skipped);
  EXPECT_EQ(skip.bytes, 64u + 200u) << "padding and record in one step";
  // The writer resumes: its padding CAS, from the value it loaded before the mark, fails (one
  // that loads after the mark sees a tagged word and does not try).
  std::uint64_t expected = before_padding;
  EXPECT_FALSE(pad->state.compare_exchange_strong(expected, 4032 | kRecordPadding));
  EXPECT_EQ(expected, 4032 | kRecordSkipped);
  write_without_commit(claim, "wrapped", "late");
  EXPECT_FALSE(MpscRing::commit(claim, r.lanes[0]));
  head += skip.bytes;
  EXPECT_EQ(read_all(r.ring, head, got), PollStatus::delivered);
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].subject, "after");
  EXPECT_EQ(head, tail);
}

// The narrow window of [S1]: the writer's commit check came before the lane mark, and its commit
// store lands after the consumer's state CAS. The consumer's head is past the claim already, so
// the message is never delivered (the loss is counted by the consumer alone).
TEST(MpscRing, should_never_deliver_a_message_committed_in_the_skip_window) {
  TestRing r(4096);
  auto cursor = cursor_for(r);
  Claim late;
  ASSERT_EQ(r.ring.try_claim(cursor, bytes_for("late", "lost"), r.lanes[0], lane_tag(0), late), ClaimStatus::claimed);
  write_without_commit(late, "late", "lost");
  ASSERT_FALSE(lane_skipped(r.lanes[0].claim.load())) << "its commit check passes here";
  const SkipResult skip = r.ring.skip_claim(0, r.lanes[0].claim_end.load(), &r.lanes[0], r.lanes[0].claim.load());
  ASSERT_EQ(skip.kind, SkipResult::Kind::skipped);
  ASSERT_EQ(skip.bytes, late.bytes);
  std::uint64_t head = skip.bytes;
  // The commit store that was already on its way.
  late.record->state.store(late.position | kRecordMessage, std::memory_order_release);
  ASSERT_EQ(write_message(r.ring, cursor, "next", "ok", 0, r.lanes[1]), ClaimStatus::claimed);
  std::vector<Received> got;
  EXPECT_EQ(read_all(r.ring, head, got), PollStatus::delivered);
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].subject, "next");
  EXPECT_EQ(read_all(r.ring, head, got), PollStatus::empty);
  EXPECT_EQ(got.size(), 1u);
  EXPECT_EQ(head, r.ring.tail_acquire());
  EXPECT_EQ(r.ctl->delivered_msgs.load(), 1u);
}

// A writer died between claim and commit and the broker has cleared its lane: nothing says how
// long the claim is. The gap runs to the next record start, every word of it marked, so no
// leftover of the dead claim can ever look committed.
TEST(MpscRing, should_skip_a_dead_claim_no_lane_names_up_to_the_next_record) {
  TestRing r(4096);
  auto cursor = cursor_for(r);
  Claim dead;
  ASSERT_EQ(r.ring.try_claim(cursor, 96, r.lanes[0], lane_tag(0), dead), ClaimStatus::claimed);  // writer dies here
  r.lanes[0].claim.store(0);  // reaped
  ASSERT_EQ(write_message(r.ring, cursor, "after", "ok", 0, r.lanes[1]), ClaimStatus::claimed);
  std::uint64_t head = 0;
  std::vector<Received> got;
  EXPECT_EQ(read_all(r.ring, head, got), PollStatus::empty);
  const SkipResult skip = r.ring.skip_gap(head, r.ring.tail_acquire());
  ASSERT_EQ(skip.kind, SkipResult::Kind::skipped);
  EXPECT_EQ(skip.bytes, 96u) << "the gap ends at the next record start";
  for (std::uint64_t off = 0; off < 96; off += 8) {
    EXPECT_EQ(reinterpret_cast<RecordHeader*>(r.data + off)->state.load(), off | kRecordSkipped) << off;
  }
  head += skip.bytes;
  EXPECT_EQ(read_all(r.ring, head, got), PollStatus::delivered);
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].subject, "after");
}

// Defect 1 at the ring level: two writers died between claim and commit, one behind the other,
// nothing after them, both lanes cleared. One gap takes both claims, up to the tail.
TEST(MpscRing, should_skip_two_adjacent_dead_claims_in_one_gap) {
  TestRing r(4096);
  auto cursor = cursor_for(r);
  Claim first, second;
  ASSERT_EQ(r.ring.try_claim(cursor, 64, r.lanes[0], lane_tag(0), first), ClaimStatus::claimed);
  ASSERT_EQ(r.ring.try_claim(cursor, 128, r.lanes[1], lane_tag(0), second), ClaimStatus::claimed);
  EXPECT_EQ(lane_position(r.lanes[1].claim.load(), r.ring.tail_acquire()), 64u) << "the lane names the claim's position";
  EXPECT_EQ(lane_ring_plus1(r.lanes[1].claim.load()), 1u) << "and the ring (index 0 in these tests)";
  EXPECT_EQ(r.lanes[1].claim_end.load(), 192u);
  r.lanes[0].claim.store(0);  // both reaped
  r.lanes[1].claim.store(0);
  std::uint64_t head = 0;
  const SkipResult skip = r.ring.skip_gap(head, r.ring.tail_acquire());
  ASSERT_EQ(skip.kind, SkipResult::Kind::skipped);
  EXPECT_EQ(skip.bytes, 192u);
  EXPECT_EQ(second.record->state.load(), 64 | kRecordSkipped) << "the second claim's start is marked too";
  head += skip.bytes;
  ASSERT_EQ(write_message(r.ring, cursor, "later", "ok"), ClaimStatus::claimed);
  std::vector<Received> got;
  EXPECT_EQ(read_all(r.ring, head, got), PollStatus::delivered);
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].subject, "later");
}

// Defect 6 at the ring level: a gap ends at the first live writer's claim past the head (the
// caller's limit, from that writer's lane), written but uncommitted; its record survives.
TEST(MpscRing, should_end_a_gap_at_the_claim_of_a_live_writer) {
  TestRing r(4096);
  auto cursor = cursor_for(r);
  Claim stuck, live;
  ASSERT_EQ(r.ring.try_claim(cursor, 64, r.lanes[0], lane_tag(0), stuck), ClaimStatus::claimed);
  ASSERT_EQ(r.ring.try_claim(cursor, 64, r.lanes[1], lane_tag(0), live), ClaimStatus::claimed);
  r.lanes[0].claim.store(0);  // the stuck writer died and was reaped
  write_without_commit(live, "live", "1234");
  const std::uint64_t limit = lane_position(r.lanes[1].claim.load(), r.ring.tail_acquire());
  ASSERT_EQ(limit, 64u);
  const SkipResult skip = r.ring.skip_gap(0, limit);
  ASSERT_EQ(skip.kind, SkipResult::Kind::skipped);
  EXPECT_EQ(skip.bytes, 64u) << "only the dead claim is skipped";
  EXPECT_FALSE(MpscRing::tagged(live.record->state.load(), 64)) << "the live claim must not be marked";
  EXPECT_TRUE(MpscRing::commit(live, r.lanes[1]));
  std::uint64_t head = skip.bytes;
  std::vector<Received> got;
  EXPECT_EQ(read_all(r.ring, head, got), PollStatus::delivered);
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].subject, "live");
}

TEST(MpscRing, should_find_the_next_record_past_a_dead_claim_among_old_lap_bytes) {
  TestRing r(4096);
  auto cursor = cursor_for(r);
  std::uint64_t head = 0;
  std::vector<Received> got;
  // Fill the ring with a lap of odd-sized records so old record headers litter every index.
  for (int i = 0; head < 4096 + 1000; ++i) {
    ASSERT_EQ(write_message(r.ring, cursor, "old", std::string(static_cast<std::size_t>(i % 90), 'o')), ClaimStatus::claimed);
    read_all(r.ring, head, got);
  }
  got.clear();
  // Claims until one wraps the end of the ring; the writer of that claim dies before writing.
  Claim dead;
  for (;;) {
    const std::uint64_t before = tail_position(r.ctl->tail_word.load());
    ASSERT_EQ(r.ring.try_claim(cursor, 200, r.lanes[0], lane_tag(0), dead), ClaimStatus::claimed);
    if ((before & 4095) + 200 > 4096) break;  // this claim padded to the end, record at index 0
    MpscRing::begin_write(dead, fields_for(0, 0));
    ASSERT_TRUE(MpscRing::commit(dead, r.lanes[0]));
    read_all(r.ring, head, got);
  }
  r.lanes[0].claim.store(0);  // reaped
  ASSERT_EQ(write_message(r.ring, cursor, "after", "ok"), ClaimStatus::claimed);
  // The padding of the wrap is committed; the dead record at index 0 blocks the consumer.
  read_all(r.ring, head, got);
  EXPECT_EQ(head & 4095, 0u);
  got.clear();
  const SkipResult skip = r.ring.skip_gap(head, r.ring.tail_acquire());
  ASSERT_EQ(skip.kind, SkipResult::Kind::skipped);
  EXPECT_EQ(skip.bytes, 200u) << "the gap ends at the next record, whatever the old bytes say";
  head += skip.bytes;
  EXPECT_EQ(read_all(r.ring, head, got), PollStatus::delivered);
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].subject, "after");
  EXPECT_EQ(head, tail_position(r.ctl->tail_word.load()));
}

TEST(MpscRing, should_keep_skipped_space_from_producers_below_the_reuse_floor) {
  TestRing r(4096);
  auto cursor = cursor_for(r);
  Claim stuck;
  ASSERT_EQ(r.ring.try_claim(cursor, 64, r.lanes[0], lane_tag(0), stuck), ClaimStatus::claimed);
  write_without_commit(stuck, "", "");
  const SkipResult skip = r.ring.skip_claim(0, r.lanes[0].claim_end.load(), &r.lanes[0], r.lanes[0].claim.load());
  ASSERT_EQ(skip.kind, SkipResult::Kind::skipped);
  std::uint64_t head = skip.bytes;
  const std::uint64_t floor = 0;  // the stalled writer may still write into [0, 64)
  std::vector<Received> got;
  std::uint32_t delivered = 0;
  // Fill the ring: producers may use everything but the pinned record.
  int written = 0;
  while (write_message(r.ring, cursor, "x", std::string(24, 'x')) == ClaimStatus::claimed) {
    ++written;
    r.ring.poll(head, 1000, delivered, [&](const RecordView&) {}, floor);
  }
  EXPECT_GT(written, 0);
  EXPECT_EQ(r.ctl->head_position.load(), floor) << "space of a pinned record is never handed out";
  EXPECT_LE(tail_position(r.ctl->tail_word.load()), floor + 4096);
  r.ring.release_space(head, ~0ull);
  EXPECT_EQ(r.ctl->head_position.load(), head);
}

TEST(MpscRing, should_tell_the_next_claimer_to_wake_a_sleeping_consumer_exactly_once) {
  TestRing r(4096);
  auto cursor = cursor_for(r);
  std::uint32_t futex_value = 0;
  ASSERT_TRUE(r.ring.prepare_sleep(0, futex_value));
  EXPECT_EQ(futex_value, 0x8000'0000u);
  Claim first;
  ASSERT_EQ(r.ring.try_claim(cursor, 64, g_lane, lane_tag(0), first), ClaimStatus::claimed);
  EXPECT_TRUE(first.consumer_sleeping);
  EXPECT_NE(*r.ring.futex_word(), futex_value) << "the claim must change the futex word";
  Claim second;
  ASSERT_EQ(r.ring.try_claim(cursor, 64, g_lane, lane_tag(0), second), ClaimStatus::claimed);
  EXPECT_FALSE(second.consumer_sleeping);
  // With a claim outstanding the consumer must not go to sleep.
  EXPECT_FALSE(r.ring.prepare_sleep(0, futex_value));
}

TEST(MpscRing, should_lose_and_tear_nothing_with_many_producer_threads) {
  constexpr int kProducers = 4;
  constexpr int kPerProducer = 50'000;
  TestRing r(1 << 14);
  std::vector<std::thread> producers;
  for (int p = 0; p < kProducers; ++p) {
    producers.emplace_back([&r, p] {
      ProducerCursor cursor{1, 0};
      for (int i = 0; i < kPerProducer; ++i) {
        // payload: "p:i:" + filler derived from i, so a torn record is detectable.
        std::string payload = std::to_string(p) + ":" + std::to_string(i) + ":" +
                              std::string(static_cast<std::size_t>(i % 50), static_cast<char>('A' + i % 26));
        while (write_message(r.ring, cursor, "t", payload, 0, r.lanes[p]) == ClaimStatus::full) std::this_thread::yield();
      }
    });
  }
  std::vector<int> next(kProducers, 0);
  std::uint64_t head = 0;
  int total = 0;
  while (total < kProducers * kPerProducer) {
    std::uint32_t delivered = 0;
    const PollStatus st = r.ring.poll(head, 256, delivered, [&](const RecordView& v) {
      const std::string payload(reinterpret_cast<const char*>(v.payload), v.payload_len);
      const auto c1 = payload.find(':');
      const auto c2 = payload.find(':', c1 + 1);
      const int p = std::stoi(payload.substr(0, c1));
      const int i = std::stoi(payload.substr(c1 + 1, c2 - c1 - 1));
      ASSERT_EQ(i, next[static_cast<std::size_t>(p)]) << "producer " << p << " out of order";
      ++next[static_cast<std::size_t>(p)];
      EXPECT_EQ(payload.substr(c2 + 1), std::string(static_cast<std::size_t>(i % 50), static_cast<char>('A' + i % 26)));
    });
    ASSERT_NE(st, PollStatus::corrupt);
    total += static_cast<int>(delivered);
    if (delivered == 0) std::this_thread::yield();
  }
  for (auto& t : producers) t.join();
  for (int p = 0; p < kProducers; ++p) EXPECT_EQ(next[static_cast<std::size_t>(p)], kPerProducer);
}

TEST(MpscRing, should_lose_and_tear_nothing_with_many_producer_processes) {
  constexpr int kProducers = 3;
  constexpr int kPerProducer = 30'000;
  TestRing r(1 << 14);
  std::vector<pid_t> children;
  for (int p = 0; p < kProducers; ++p) {
    const pid_t pid = ::fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
      ProducerCursor cursor{1, 0};
      for (int i = 0; i < kPerProducer; ++i) {
        const std::string payload = std::to_string(p) + ":" + std::to_string(i) + ":" + std::string(static_cast<std::size_t>(i % 40), 'z');
        while (write_message(r.ring, cursor, "proc", payload, 0, r.lanes[p]) == ClaimStatus::full) ::sched_yield();
      }
      ::_exit(0);
    }
    children.push_back(pid);
  }
  std::vector<int> next(kProducers, 0);
  std::uint64_t head = 0;
  int total = 0;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  while (total < kProducers * kPerProducer && std::chrono::steady_clock::now() < deadline) {
    std::uint32_t delivered = 0;
    const PollStatus st = r.ring.poll(head, 256, delivered, [&](const RecordView& v) {
      const std::string payload(reinterpret_cast<const char*>(v.payload), v.payload_len);
      const auto c1 = payload.find(':');
      const auto c2 = payload.find(':', c1 + 1);
      const int p = std::stoi(payload.substr(0, c1));
      const int i = std::stoi(payload.substr(c1 + 1, c2 - c1 - 1));
      EXPECT_EQ(i, next[static_cast<std::size_t>(p)]);
      next[static_cast<std::size_t>(p)] = i + 1;
      EXPECT_EQ(payload.size() - c2 - 1, static_cast<std::size_t>(i % 40));
    });
    ASSERT_NE(st, PollStatus::corrupt);
    total += static_cast<int>(delivered);
    if (delivered == 0) ::sched_yield();
  }
  for (pid_t pid : children) {
    int status = 0;
    ::waitpid(pid, &status, 0);
    EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
  }
  EXPECT_EQ(total, kProducers * kPerProducer);
}

}  // namespace
}  // namespace bus::detail

// The journal across kill -9 of its writer (issue 8, item 6): a real process appends and prints
// each acknowledgement; it is killed at a random moment, again and again, on the same journal.
// After each kill the journal is recovered: every acknowledged record is there, once, in order,
// with its bytes; nothing that fails its checks is ever handed out.
#include <signal.h>
#include <stdlib.h>

#include <gtest/gtest.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <map>
#include <random>
#include <string>
#include <thread>

#include "journal/journal.hpp"
#include "mp/process_harness.hpp"

namespace bus::test {
namespace {

using namespace std::chrono_literals;
namespace journal = bus::detail::journal;

TEST(JournalCrashMp, should_keep_every_acknowledged_record_across_kill_9_of_its_writer) {
  char tmpl[] = "/tmp/bus-journal-crash-XXXXXX";
  const std::string root = ::mkdtemp(tmpl);
  const std::string dir = root + "/s";
  std::mt19937 rng(static_cast<unsigned>(std::chrono::steady_clock::now().time_since_epoch().count()));
  std::map<std::uint64_t, std::string> acked;  // sequence -> payload, over every round
  std::uint64_t lost_reported = 0;
  constexpr int kRounds = 12;
  for (int round = 0; round < kRounds; ++round) {
    const std::string writer = "w" + std::to_string(round);
    // Small segments (64 KiB): kills land in roll-overs too.
    auto peer = spawn_peer({"journal-append", dir, writer, "1000000", "65536"});
    // Let it get going (its open recovers the previous round's damage first), then kill it at
    // a random point of its appends.
    ASSERT_TRUE(peer.wait_for_line(Stream::out, "ack ", 10s)) << peer.describe();
    std::this_thread::sleep_for(std::chrono::microseconds(std::uniform_int_distribution<int>(0, 30'000)(rng)));
    ASSERT_TRUE(peer.kill(SIGKILL));
    ASSERT_TRUE(peer.wait_exit(10s));
    peer.pump();
    std::size_t round_acks = 0;
    for (const std::string& line : peer.lines(Stream::out)) {
      unsigned long long seq = 0, i = 0;
      char end = 0;
      // "ack SEQ I ." — a line cut by the kill has no final " ." and is not an acknowledgement.
      if (std::sscanf(line.c_str(), "ack %llu %llu %c", &seq, &i, &end) != 3 || end != '.') continue;
      const std::string payload = writer + ":" + std::to_string(i);
      ASSERT_TRUE(acked.emplace(seq, payload).second) << "sequence " << seq << " acknowledged twice";
      ++round_acks;
    }
    ASSERT_GT(round_acks, 0u);
    auto opened = journal::Journal::open(dir, {65536, journal::SyncPolicy::never});
    ASSERT_TRUE(opened) << "round " << round << ": " << opened.error().message;
    const auto& j = *opened.value();
    lost_reported += j.recovery().lost_records;
    for (const auto& [seq, payload] : acked) {
      auto r = j.read(seq);
      ASSERT_TRUE(r) << "round " << round << ": acknowledged sequence " << seq << " is gone: " << r.error().message;
      ASSERT_EQ(r->payload, payload) << "round " << round << ", sequence " << seq;
    }
    // Nothing unacknowledged is handed out damaged either: every sequence reads back whole or
    // is refused (torn tail already cut, or dropped and reported).
    for (std::uint64_t s = j.first_seq(); s <= j.last_seq(); ++s) {
      auto r = j.read(s);
      if (r) {
        EXPECT_EQ(r->sequence, s);
      }
    }
  }
  std::fprintf(stderr, "journal crash: %d kills, %zu acknowledged records all present, %llu unacknowledged lost\n",
               kRounds, acked.size(), static_cast<unsigned long long>(lost_reported));
  std::filesystem::remove_all(root);
}

}  // namespace
}  // namespace bus::test

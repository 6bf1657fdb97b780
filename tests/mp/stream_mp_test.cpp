// Streams across real processes (issue 8): busd serves the streams of its store directory, the
// `bus stream` verbs administer them, `bus pub --ack` appends from its own process and prints
// each acknowledgement, and what was acknowledged survives kill -9 of the broker, with the
// publisher running on across the restart.
#include <signal.h>

#include <gtest/gtest.h>

#include <filesystem>

#include <chrono>
#include <cstdio>
#include <string>
#include <thread>
#include <vector>

#include "mp/process_harness.hpp"

namespace bus::test {
namespace {

using namespace std::chrono_literals;

// The sequences `bus pub --ack` printed, in order ("stream S sequence N").
std::vector<unsigned long long> acked_sequences(ChildProcess& p, const std::string& stream) {
  std::vector<unsigned long long> out;
  for (const std::string& line : p.lines(Stream::out)) {
    char name[64] = {};
    unsigned long long seq = 0;
    if (std::sscanf(line.c_str(), "stream %63s sequence %llu", name, &seq) == 2 && name == stream) out.push_back(seq);
  }
  return out;
}

TEST(StreamMp, should_store_what_is_published_and_answer_the_stream_verbs) {
  StoreDir store;
  BrokerProcess broker(unique_bus_name(), {"--store-dir", store.path});
  ASSERT_TRUE(broker.ready());
  const std::string& bus = broker.bus_name();
  EXPECT_TRUE(holds(cli_ok(bus, {"stream", "add", "ORDERS", "--subjects", "orders.>,returns.*"}), "Stream ORDERS was created"));

  auto pub = spawn_cli({"pub", "--ack", "orders.eu.new", "order {{Count}}", "--count", "5", "-H", "Trace:{{Count}}", "--bus", bus});
  ASSERT_TRUE(exits_ok(pub));
  EXPECT_EQ(acked_sequences(pub, "ORDERS"), (std::vector<unsigned long long>{1, 2, 3, 4, 5}));

  // A plain publish to a captured subject is stored too; a request gets the acknowledgement.
  cli_ok(bus, {"pub", "returns.x", "plain"});
  EXPECT_TRUE(holds(cli_ok(bus, {"req", "returns.y", "asked"}), "\"seq\":7")) << "JetStream answers a core request";

  const std::string info = cli_ok(bus, {"stream", "info", "ORDERS", "--json"});
  EXPECT_TRUE(holds(info, "\"messages\": 7")) << info;
  EXPECT_TRUE(holds(info, "\"first_seq\": 1")) << info;
  EXPECT_TRUE(holds(info, "\"last_seq\": 7")) << info;

  const std::string third = cli_ok(bus, {"stream", "get", "ORDERS", "3"});
  EXPECT_TRUE(holds(third, "Item: ORDERS#3")) << third;
  EXPECT_TRUE(holds(third, "on Subject orders.eu.new")) << third;
  EXPECT_TRUE(holds(third, "Trace: 3")) << third;
  EXPECT_TRUE(holds(third, "order 3")) << third;
  const std::string view = cli_ok(bus, {"stream", "view", "ORDERS"});
  EXPECT_TRUE(holds(view, "[7] Subject: returns.y")) << view;
  EXPECT_TRUE(holds(cli_ok(bus, {"stream", "ls"}), "ORDERS"));

  // Refusals: one line, non-zero exit, nothing stored changes.
  auto none = spawn_cli({"pub", "-J", "elsewhere", "x", "--bus", bus});
  ASSERT_TRUE(exits_with(none, 1));
  EXPECT_TRUE(holds(none.err(), "no stream captures subject 'elsewhere'")) << none.describe();
  auto overlap = spawn_cli({"stream", "add", "EU", "--subjects", "orders.eu.*", "--bus", bus});
  ASSERT_TRUE(overlap.wait_exit(20s));
  EXPECT_FALSE(overlap.status()->success()) << overlap.describe();
  EXPECT_TRUE(holds(overlap.err(), "overlap")) << overlap.describe();
  auto bad_name = spawn_cli({"stream", "add", "a.b", "--subjects", "x", "--bus", bus});
  ASSERT_TRUE(bad_name.wait_exit(20s));
  EXPECT_FALSE(bad_name.status()->success());
  auto missing = spawn_cli({"stream", "get", "ORDERS", "99", "--bus", bus});
  ASSERT_TRUE(exits_with(missing, 1));
  EXPECT_TRUE(holds(missing.err(), "no message 99")) << missing.describe();
  EXPECT_TRUE(holds(cli_ok(bus, {"stream", "info", "ORDERS", "--json"}), "\"messages\": 7"));
  // max_msgs with discard old is: the broker deletes the oldest within a tick or so.
  cli_ok(bus, {"stream", "add", "LIMITED", "--subjects", "lim.>", "--max-msgs", "5"});
  for (int i = 1; i <= 8; ++i) cli_ok(bus, {"pub", "lim.x", "m" + std::to_string(i)});
  std::string limited_info;
  for (int tries = 0; tries < 100; ++tries) {
    limited_info = cli_ok(bus, {"stream", "info", "LIMITED", "--json"});
    if (holds(limited_info, "\"messages\": 5")) break;
    std::this_thread::sleep_for(50ms);
  }
  EXPECT_TRUE(holds(limited_info, "\"messages\": 5")) << limited_info;
  EXPECT_TRUE(holds(limited_info, "\"first_seq\": 4")) << limited_info;
  // Deleting one message, then purging all but the newest 2.
  EXPECT_TRUE(holds(cli_ok(bus, {"stream", "rmm", "LIMITED", "5", "-f"}), "deleted"));
  auto deleted = spawn_cli({"stream", "get", "LIMITED", "5", "--bus", bus});
  ASSERT_TRUE(exits_with(deleted, 1));
  EXPECT_TRUE(holds(cli_ok(bus, {"stream", "purge", "LIMITED", "--keep", "2", "-f"}), "Purged 2 message(s)"));
  EXPECT_TRUE(holds(cli_ok(bus, {"stream", "info", "LIMITED", "--json"}), "\"messages\": 2"));
  EXPECT_TRUE(holds(cli_ok(bus, {"stream", "get", "LIMITED", "8"}), "m8"));
  // max_msg_size is: a message over it is refused before anyone gets it.
  cli_ok(bus, {"stream", "add", "SMALL", "--subjects", "small.>", "--max-msg-size", "10"});
  auto big = spawn_cli({"pub", "--ack", "small.x", "twenty bytes of data", "--bus", bus});
  ASSERT_TRUE(exits_with(big, 1));
  EXPECT_TRUE(holds(big.err(), "max_msg_size")) << big.describe();
  auto fits = spawn_cli({"pub", "--ack", "small.x", "ten bytes!", "--bus", bus});
  ASSERT_TRUE(exits_ok(fits));
  EXPECT_EQ(acked_sequences(fits, "SMALL"), (std::vector<unsigned long long>{1}));

  // Removed: gone with its messages; a new stream of that name starts at 1.
  EXPECT_TRUE(holds(cli_ok(bus, {"stream", "rm", "ORDERS", "-f"}), "removed"));
  auto gone = spawn_cli({"stream", "info", "ORDERS", "--bus", bus});
  ASSERT_TRUE(gone.wait_exit(20s));
  EXPECT_FALSE(gone.status()->success());
  EXPECT_TRUE(holds(gone.err(), "stream not found")) << gone.describe();
  auto after_rm = spawn_cli({"pub", "-J", "orders.eu.new", "x", "--bus", bus});
  ASSERT_TRUE(exits_with(after_rm, 1)) << "the routes no longer name the removed stream";
  cli_ok(bus, {"stream", "add", "ORDERS", "--subjects", "orders.>"});
  auto again = spawn_cli({"pub", "-J", "orders.eu.new", "x", "--bus", bus});
  ASSERT_TRUE(exits_ok(again));
  EXPECT_EQ(acked_sequences(again, "ORDERS"), (std::vector<unsigned long long>{1}));
}

TEST(StreamMp, should_keep_every_acknowledged_message_across_kill_9_of_the_broker) {
  StoreDir store;
  const std::string bus = unique_bus_name();
  auto broker = std::make_unique<BrokerProcess>(bus, std::vector<std::string>{"--store-dir", store.path});
  ASSERT_TRUE(broker->ready());
  cli_ok(bus, {"stream", "add", "EVENTS", "--subjects", "ev.>"});

  // A publisher that keeps going while the broker dies and another one adopts the bus: its
  // appends need no broker (the route and the journal are known), so none of them may fail.
  constexpr int kCount = 400;
  auto pub = spawn_cli({"pub", "--ack", "ev.tick", "tick {{Count}}", "--count", std::to_string(kCount), "--sleep",
                        "2ms", "--bus", bus});
  ASSERT_TRUE(pub.wait_for_line(Stream::out, "sequence 20", 10s)) << pub.describe();
  ASSERT_TRUE(broker->crash());
  broker = std::make_unique<BrokerProcess>(bus, std::vector<std::string>{"--store-dir", store.path});
  ASSERT_TRUE(broker->ready());
  EXPECT_TRUE(holds(broker->log(), "journal is in use by running publishers")) << broker->log();
  ASSERT_TRUE(exits_ok(pub, 30s));
  const auto acked = acked_sequences(pub, "EVENTS");
  ASSERT_EQ(acked.size(), static_cast<std::size_t>(kCount));
  for (int i = 0; i < kCount; ++i) ASSERT_EQ(acked[i], static_cast<unsigned long long>(i + 1));

  // And once more with nobody holding the journal: this broker recovers it, losing nothing.
  ASSERT_TRUE(broker->crash());
  broker = std::make_unique<BrokerProcess>(bus, std::vector<std::string>{"--store-dir", store.path});
  ASSERT_TRUE(broker->ready());
  EXPECT_TRUE(holds(broker->log(), "serving 1 stream(s)")) << broker->log();
  const std::string info = cli_ok(bus, {"stream", "info", "EVENTS", "--json"});
  EXPECT_TRUE(holds(info, "\"messages\": " + std::to_string(kCount))) << info;
  EXPECT_TRUE(holds(info, "\"lost\": 0")) << info;
  for (int seq : {1, 200, kCount}) {
    EXPECT_TRUE(holds(cli_ok(bus, {"stream", "get", "EVENTS", std::to_string(seq)}), "tick " + std::to_string(seq)));
  }
  auto next = spawn_cli({"pub", "-J", "ev.tick", "after", "--bus", bus});
  ASSERT_TRUE(exits_ok(next));
  EXPECT_EQ(acked_sequences(next, "EVENTS"), (std::vector<unsigned long long>{kCount + 1}));
}

TEST(StreamMp, should_honour_the_nats_publish_headers_across_processes) {
  StoreDir store;
  BrokerProcess broker(unique_bus_name(), {"--store-dir", store.path});
  ASSERT_TRUE(broker.ready()) << broker.log();
  const std::string bus = broker.bus_name();
  cli_ok(bus, {"stream", "add", "KV", "--subjects", "kv.>", "--allow-rollup"});
  // Nats-Msg-Id: a retry from another process is stored once and acked with the first sequence.
  EXPECT_TRUE(holds(cli_ok(bus, {"pub", "--ack", "kv.a", "one", "-H", "Nats-Msg-Id:op-1"}), "stream KV sequence 1\n"));
  EXPECT_TRUE(holds(cli_ok(bus, {"pub", "--ack", "kv.a", "one again", "-H", "Nats-Msg-Id:op-1"}),
                    "stream KV sequence 1 duplicate"));
  EXPECT_TRUE(holds(cli_ok(bus, {"stream", "info", "KV", "--json"}), "\"messages\": 1"));
  // Optimistic concurrency: only if the last sequence (of the subject) is the expected one.
  EXPECT_TRUE(holds(cli_ok(bus, {"pub", "--ack", "kv.b", "two", "-H", "Nats-Expected-Last-Sequence:1"}), "sequence 2"));
  auto stale = spawn_cli({"pub", "--ack", "kv.b", "late", "-H", "Nats-Expected-Last-Sequence:1", "--bus", bus});
  ASSERT_TRUE(exits_with(stale, 1));
  EXPECT_TRUE(holds(stale.err(), "wrong last sequence: 2")) << stale.describe();
  EXPECT_TRUE(holds(cli_ok(bus, {"pub", "--ack", "kv.a", "three", "-H", "Nats-Expected-Last-Subject-Sequence:1"}),
                    "sequence 3"));
  auto wrong_stream = spawn_cli({"pub", "--ack", "kv.a", "x", "-H", "Nats-Expected-Stream:OTHER", "--bus", bus});
  ASSERT_TRUE(exits_with(wrong_stream, 1));
  EXPECT_TRUE(holds(wrong_stream.err(), "expected stream does not match")) << wrong_stream.describe();
  EXPECT_TRUE(holds(cli_ok(bus, {"stream", "info", "KV", "--json"}), "\"messages\": 3")) << "refusals store nothing";
  // Nats-Rollup: sub keeps only the newest message of its subject.
  EXPECT_TRUE(holds(cli_ok(bus, {"pub", "--ack", "kv.a", "rolled", "-H", "Nats-Rollup:sub"}), "sequence 4"));
  const std::string view = cli_ok(bus, {"stream", "view", "KV"});
  EXPECT_FALSE(holds(view, "[1]")) << view;
  EXPECT_FALSE(holds(view, "[3]")) << view;
  EXPECT_TRUE(holds(view, "[2] Subject: kv.b")) << view;
  EXPECT_TRUE(holds(view, "[4] Subject: kv.a")) << view;
  // The last message of a subject, from the subject index (nats stream get --last-for).
  const std::string last_a = cli_ok(bus, {"stream", "get", "KV", "--last-for", "kv.a"});
  EXPECT_TRUE(holds(last_a, "Item: KV#4")) << last_a;
  EXPECT_TRUE(holds(last_a, "rolled")) << last_a;
  auto none_on = spawn_cli({"stream", "get", "KV", "--last-for", "kv.zzz", "--bus", bus});
  ASSERT_TRUE(exits_with(none_on, 1));
  EXPECT_TRUE(holds(none_on.err(), "no message on 'kv.zzz'")) << none_on.describe();
  auto both = spawn_cli({"stream", "get", "KV", "2", "--last-for", "kv.a", "--bus", bus});
  ASSERT_TRUE(exits_with(both, 2));
  cli_ok(bus, {"stream", "add", "PLAIN", "--subjects", "plain.>"});
  auto no_rollup = spawn_cli({"pub", "--ack", "plain.a", "x", "-H", "Nats-Rollup:all", "--bus", bus});
  ASSERT_TRUE(exits_with(no_rollup, 1));
  EXPECT_TRUE(holds(no_rollup.err(), "rollup not permitted")) << no_rollup.describe();
}

// Two processes update one key as a key/value store does (read the subject's last message,
// store the next value only if it is still the last: Nats-Expected-Last-Subject-Sequence) while a
// third publishes on other subjects of the stream: every update lands exactly once.
TEST(StreamMp, should_lose_no_update_when_writers_race_on_a_subject) {
  StoreDir store;
  BrokerProcess broker(unique_bus_name(), {"--store-dir", store.path});
  ASSERT_TRUE(broker.ready()) << broker.log();
  const std::string bus = broker.bus_name();
  cli_ok(bus, {"stream", "add", "COUNTERS", "--subjects", "counter.>"});
  constexpr int kEach = 3000;  // long enough for the two to overlap
  auto noise = spawn_cli({"pub", "--ack", "counter.other.{{Count}}", "n", "--count", "400", "--bus", bus});
  auto a = spawn_peer({"kv-incr", bus, "COUNTERS", "counter.x", std::to_string(kEach)});
  auto b = spawn_peer({"kv-incr", bus, "COUNTERS", "counter.x", std::to_string(kEach)});
  ASSERT_TRUE(exits_ok(a)) << a.describe();
  ASSERT_TRUE(exits_ok(b)) << b.describe();
  ASSERT_TRUE(exits_ok(noise)) << noise.describe();
  std::vector<int> seen(2 * kEach + 1, 0);
  for (ChildProcess* p : {&a, &b}) {
    for (const std::string& line : p->lines(Stream::out)) {
      int value = 0;
      unsigned long long seq = 0;
      ASSERT_EQ(std::sscanf(line.c_str(), "stored %d %llu", &value, &seq), 2) << line;
      ASSERT_GE(value, 1);
      ASSERT_LE(value, 2 * kEach) << "a value stored twice over makes one above the count";
      ++seen[value];
    }
  }
  for (int v = 1; v <= 2 * kEach; ++v) EXPECT_EQ(seen[v], 1) << "value " << v;
  const std::string last = cli_ok(bus, {"stream", "get", "COUNTERS", "--last-for", "counter.x"});
  EXPECT_TRUE(holds(last, std::to_string(2 * kEach))) << last;
}

// A 32-bit word of a segment file's header (journal/format.hpp), read as another process would.
std::uint32_t header_word(const std::string& segment, off_t offset) {
  std::uint32_t v = 0;
  std::FILE* f = std::fopen(segment.c_str(), "rb");
  if (f == nullptr) return UINT32_MAX;
  if (std::fseek(f, offset, SEEK_SET) != 0 || std::fread(&v, sizeof v, 1, f) != 1) v = UINT32_MAX;
  std::fclose(f);
  return v;
}
constexpr off_t kSyncStartedAt = 640, kSyncDoneAt = 768, kDirSyncedAt = 528;  // format.hpp

TEST(StreamMp, should_flush_by_each_streams_sync_policy) {
  StoreDir store;
  BrokerProcess broker(unique_bus_name(), {"--store-dir", store.path});
  ASSERT_TRUE(broker.ready());
  const std::string& bus = broker.bus_name();
  auto segment = [&](const char* name) { return store.path + "/streams/" + name + "/journal/00000000000000000001.jrnl"; };
  cli_ok(bus, {"stream", "add", "ALWAYS", "--subjects", "always.>", "--sync", "always"});
  cli_ok(bus, {"stream", "add", "LATER", "--subjects", "later.>", "--sync", "interval", "--sync-interval", "300ms"});
  cli_ok(bus, {"stream", "add", "NEVER", "--subjects", "never.>"});
  EXPECT_TRUE(holds(cli_ok(bus, {"stream", "info", "LATER"}), "every 300ms"));
  for (const char* subject : {"always.x", "later.x", "never.x"}) {
    EXPECT_TRUE(holds(cli_ok(bus, {"pub", "--ack", subject, "m{{Count}}", "--count", "3"}), "sequence 3"));
  }
  // Always: the publisher flushed before it printed the acknowledgement, and put the file's name
  // on disk first.
  EXPECT_GE(header_word(segment("ALWAYS"), kSyncDoneAt), 1u);
  EXPECT_NE(header_word(segment("ALWAYS"), kSyncDoneAt), UINT32_MAX);
  EXPECT_EQ(header_word(segment("ALWAYS"), kDirSyncedAt), 1u);
  // Interval: the broker flushes within its interval (polled, bounded well above it).
  const auto deadline = std::chrono::steady_clock::now() + 10s;
  while (header_word(segment("LATER"), kSyncDoneAt) == 0 && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(20ms);
  }
  EXPECT_GE(header_word(segment("LATER"), kSyncDoneAt), 1u) << "the broker flushed the interval stream";
  EXPECT_NE(header_word(segment("LATER"), kSyncDoneAt), UINT32_MAX);
  // Never: nobody flushes (the page cache keeps it).
  EXPECT_EQ(header_word(segment("NEVER"), kSyncStartedAt), 0u);
  // A bad interval is refused with the rule.
  auto fast = spawn_cli({"stream", "add", "FAST", "--subjects", "fast.>", "--sync", "interval", "--sync-interval", "1ms",
                         "--bus", bus});
  ASSERT_TRUE(exits_with(fast, 2)) << "a bad argument";
  EXPECT_TRUE(holds(fast.err(), "sync_interval must be from 10ms to 24h")) << fast.describe();
}

TEST(StreamMp, should_refuse_what_does_not_fit_a_discard_new_stream_exactly_across_publishers) {
  StoreDir store;
  BrokerProcess broker(unique_bus_name(), {"--store-dir", store.path});
  ASSERT_TRUE(broker.ready());
  const std::string& bus = broker.bus_name();
  cli_ok(bus, {"stream", "add", "NEWEST", "--subjects", "new.>", "--max-msgs", "5", "--discard", "new"});
  EXPECT_TRUE(holds(cli_ok(bus, {"pub", "--ack", "new.x", "m{{Count}}", "--count", "5"}), "sequence 5"));
  auto full = spawn_cli({"pub", "--ack", "new.x", "sixth", "--bus", bus});
  ASSERT_TRUE(exits_with(full, 1));
  EXPECT_TRUE(holds(full.err(), "maximum messages exceeded")) << full.describe();
  EXPECT_TRUE(holds(cli_ok(bus, {"stream", "get", "NEWEST", "1"}), "m1")) << "the oldest stays: nothing discarded";
  // A delete makes room at once (the broker republishes the usage with its reply).
  cli_ok(bus, {"stream", "rmm", "NEWEST", "2", "-f"});
  EXPECT_TRUE(holds(cli_ok(bus, {"pub", "--ack", "new.x", "after delete"}), "sequence 6"));
  // Publishers in four processes race for the room of a 60-message stream: exactly 60 stored.
  cli_ok(bus, {"stream", "add", "RACE", "--subjects", "race.>", "--max-msgs", "60", "--discard", "new"});
  std::vector<ChildProcess> pubs;
  for (int i = 0; i < 4; ++i) pubs.push_back(spawn_cli({"pub", "--ack", "race.x", "p{{Count}}", "--count", "40", "--bus", bus}));
  std::size_t acked = 0;
  for (auto& p : pubs) {
    ASSERT_TRUE(p.wait_exit(60s)) << p.describe();
    acked += acked_sequences(p, "RACE").size();
  }
  EXPECT_EQ(acked, 60u) << "acknowledged until full, refused after";
  EXPECT_TRUE(holds(cli_ok(bus, {"stream", "info", "RACE", "--json"}), "\"messages\": 60"));
  // max_bytes likewise: 100-byte messages into 1 KiB hold fewer than 11, and the refusal says why.
  cli_ok(bus, {"stream", "add", "BYTES", "--subjects", "bytes.>", "--max-bytes", "1KiB", "--discard", "new"});
  auto fill = spawn_cli({"pub", "--ack", "bytes.x", std::string(100, 'b'), "--count", "20", "--bus", bus});
  ASSERT_TRUE(exits_with(fill, 1));
  EXPECT_TRUE(holds(fill.err(), "maximum bytes exceeded")) << fill.describe();
  const std::size_t stored = acked_sequences(fill, "BYTES").size();
  EXPECT_GE(stored, 5u);
  EXPECT_LT(stored, 11u);
  const std::string info = cli_ok(bus, {"stream", "info", "BYTES", "--json"});
  EXPECT_TRUE(holds(info, "\"messages\": " + std::to_string(stored))) << info;
}

TEST(StreamMp, should_keep_a_memory_stream_in_tmpfs_across_kill_9_of_the_broker_and_remove_it_whole) {
  StoreDir store;
  const std::string bus = unique_bus_name();
  auto broker = std::make_unique<BrokerProcess>(bus, std::vector<std::string>{"--store-dir", store.path});
  ASSERT_TRUE(broker->ready());
  const std::string added = cli_ok(bus, {"stream", "add", "RAM", "--subjects", "ram.>", "--storage", "memory", "--json"});
  EXPECT_TRUE(holds(added, "\"storage\": \"memory\"")) << added;
  EXPECT_TRUE(holds(cli_ok(bus, {"pub", "--ack", "ram.x", "r{{Count}}", "--count", "50"}), "sequence 50"));
  EXPECT_FALSE(std::filesystem::exists(store.path + "/streams/RAM/journal")) << "no journal on disk";
  // Memory, not process memory: the page cache of tmpfs outlives every process, the broker's too.
  ASSERT_TRUE(broker->crash());
  broker = std::make_unique<BrokerProcess>(bus, std::vector<std::string>{"--store-dir", store.path});
  ASSERT_TRUE(broker->ready());
  EXPECT_TRUE(holds(cli_ok(bus, {"stream", "info", "RAM", "--json"}), "\"messages\": 50"));
  EXPECT_TRUE(holds(cli_ok(bus, {"stream", "get", "RAM", "50"}), "r50"));
  EXPECT_TRUE(holds(cli_ok(bus, {"stream", "info", "RAM"}), "Memory"));
  cli_ok(bus, {"stream", "rm", "RAM", "-f"});
  // Nothing of it is left in /dev/shm under this store's name.
  std::size_t left = 0;
  for (const auto& e : std::filesystem::directory_iterator("/dev/shm")) {
    if (e.path().filename().string().rfind("bus-streams-", 0) != 0) continue;
    for (const auto& inner : std::filesystem::directory_iterator(e.path())) left += inner.path().filename() == "RAM";
  }
  EXPECT_EQ(left, 0u);
}

TEST(StreamMp, should_refuse_a_second_broker_on_the_same_store) {
  StoreDir store;
  BrokerProcess first(unique_bus_name(), {"--store-dir", store.path});
  ASSERT_TRUE(first.ready());
  auto second = ChildProcess::spawn({busd_path(), "--bus", unique_bus_name(), "--store-dir", store.path});
  ASSERT_TRUE(exits_with(second, 1));
  EXPECT_TRUE(holds(second.err(), "in use by another broker")) << second.describe();
}

}  // namespace
}  // namespace bus::test

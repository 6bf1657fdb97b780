// Stream configuration and the on-disk stream store (libbus/src/stream/): JetStream's rules for
// names, subjects and limits, JSON that survives a round trip and refuses damage, and a store
// that keeps two streams from capturing the same subject.
#include <sys/stat.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>

#include "stream/store.hpp"
#include "temp_dir.hpp"

namespace bus::detail::stream {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

using TempDir = bus::test::TempDir;

StreamConfig orders() {
  StreamConfig c;
  c.name = "ORDERS";
  c.subjects = {"orders.>"};
  return c;
}

TEST(StreamConfig, should_follow_jetstreams_rules_for_names_subjects_and_limits) {
  EXPECT_TRUE(validate(orders()));
  for (const char* bad : {"", "has space", "a.b", "a*", "a>", "a/b", "a\\b", "tab\there"}) {
    StreamConfig c = orders();
    c.name = bad;
    auto st = validate(c);
    EXPECT_FALSE(st) << "name '" << bad << "'";
    if (!st) {
      EXPECT_EQ(st.error().code, Errc::invalid_argument);
    }
  }
  StreamConfig none = orders();
  none.subjects.clear();
  EXPECT_FALSE(validate(none));
  StreamConfig bad_subject = orders();
  bad_subject.subjects = {"orders..eu"};
  EXPECT_EQ(validate(bad_subject).error().code, Errc::invalid_subject);
  StreamConfig overlapping = orders();
  overlapping.subjects = {"orders.*", "orders.eu"};
  auto st = validate(overlapping);
  ASSERT_FALSE(st);
  EXPECT_NE(st.error().message.find("overlap"), std::string::npos) << st.error().message;
  StreamConfig limits = orders();
  limits.max_msgs = -2;
  EXPECT_FALSE(validate(limits));
  limits.max_msgs = 0;
  EXPECT_TRUE(validate(limits)) << "0 means unlimited, as JetStream's defaults have it";
  StreamConfig window = orders();
  window.max_age = 1min;
  window.duplicate_window = 2min;
  EXPECT_FALSE(validate(window)) << "a duplicate window longer than the messages live";
}

TEST(StreamConfig, should_round_trip_through_json_with_jetstreams_names) {
  StreamConfig c = orders();
  c.subjects = {"orders.eu.>", "orders.us.*"};
  c.retention = Retention::workqueue;
  c.max_msgs = 1000;
  c.max_bytes = 1 << 20;
  c.max_age = 3600s;
  c.max_msg_size = 4096;
  c.max_msgs_per_subject = 5;
  c.discard = Discard::new_messages;
  c.duplicate_window = 30s;
  c.sync = SyncPolicy::always;
  const std::string json = to_json(c);
  for (const char* field : {"\"retention\": \"workqueue\"", "\"discard\": \"new\"", "\"max_age\": 3600000000000",
                            "\"duplicate_window\": 30000000000", "\"storage\": \"file\"", "\"sync\": \"always\""}) {
    EXPECT_NE(json.find(field), std::string::npos) << field << " in " << json;
  }
  auto back = from_json(json);
  ASSERT_TRUE(back) << back.error().message;
  EXPECT_EQ(back->subjects, c.subjects);
  EXPECT_EQ(back->retention, c.retention);
  EXPECT_EQ(back->max_msgs, 1000);
  EXPECT_EQ(back->max_age, 3600s);
  EXPECT_EQ(back->discard, Discard::new_messages);
  EXPECT_EQ(back->duplicate_window, 30s);
  EXPECT_EQ(back->sync, SyncPolicy::always);
  for (const char* damaged : {"", "{", "[]", "{\"name\": \"X\"}", "{\"name\": 5, \"subjects\": [\"a\"]}",
                              "{\"name\": \"X\", \"subjects\": [\"a\"], \"retention\": \"forever\"}",
                              "{\"name\": \"a.b\", \"subjects\": [\"a\"]}"}) {
    EXPECT_FALSE(from_json(damaged)) << damaged;
  }
}

TEST(StreamStore, should_add_list_inspect_and_remove_streams_in_private_files) {
  TempDir dir;
  auto store = StreamStore::open(dir.path + "/bus1");
  ASSERT_TRUE(store) << store.error().message;
  ASSERT_TRUE(store->add(orders()));
  StreamConfig events;
  events.name = "EVENTS";
  events.subjects = {"events.*"};
  events.max_msgs = 0;
  ASSERT_TRUE(store->add(events));
  const auto all = store->list();
  ASSERT_EQ(all.size(), 2u);
  EXPECT_EQ(all[0].name, "EVENTS");
  EXPECT_EQ(all[0].max_msgs, -1) << "stored normalized";
  EXPECT_EQ(all[1].name, "ORDERS");
  auto info = store->info("ORDERS");
  ASSERT_TRUE(info);
  EXPECT_EQ(info->subjects, std::vector<std::string>{"orders.>"});
  EXPECT_FALSE(store->info("NOPE"));
  EXPECT_FALSE(store->info("../bus1")) << "a name is never a path";
  struct stat st{};
  ASSERT_EQ(::stat((dir.path + "/bus1").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0700u);
  ASSERT_EQ(::stat((dir.path + "/bus1/streams/ORDERS/stream.json").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  EXPECT_TRUE(fs::exists(store->journal_dir(*info) + "/00000000000000000001.jrnl"));
  EXPECT_EQ(store->journal_dir(*info), dir.path + "/bus1/streams/ORDERS/journal");
  EXPECT_EQ(store->capturing("orders.eu.paid")->name, "ORDERS");
  EXPECT_EQ(store->capturing("events.x")->name, "EVENTS");
  EXPECT_FALSE(store->capturing("events.x.y"));
  ASSERT_TRUE(store->remove("EVENTS"));
  EXPECT_EQ(store->list().size(), 1u);
  EXPECT_FALSE(fs::exists(dir.path + "/bus1/streams/EVENTS"));
  EXPECT_FALSE(store->remove("EVENTS"));
}

TEST(StreamStore, should_keep_a_memory_streams_journal_in_tmpfs_and_remove_it_with_the_stream) {
  TempDir dir;
  auto store = StreamStore::open(dir.path);
  ASSERT_TRUE(store);
  StreamConfig ram = orders();
  ram.name = "RAM";
  ram.storage = Storage::memory;
  ASSERT_TRUE(store->add(ram));
  const std::string journal = store->journal_dir(ram);
  EXPECT_EQ(journal.rfind("/dev/shm/bus-streams-" + std::to_string(::geteuid()) + "-", 0), 0u) << journal;
  EXPECT_TRUE(fs::exists(journal + "/00000000000000000001.jrnl"));
  EXPECT_FALSE(fs::exists(dir.path + "/streams/RAM/journal")) << "nothing of its journal on disk";
  EXPECT_EQ(store->info("RAM")->storage, Storage::memory) << "the configuration is kept on disk";
  struct stat st{};
  ASSERT_EQ(::stat(journal.substr(0, journal.rfind('/')).c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0700u);
  // Another store's memory streams live elsewhere: the directory is named after the store.
  TempDir other_dir;
  auto other = StreamStore::open(other_dir.path);
  ASSERT_TRUE(other);
  EXPECT_NE(other->journal_dir(ram), journal);
  ASSERT_TRUE(store->remove("RAM"));
  EXPECT_FALSE(fs::exists(journal)) << "the tmpfs journal goes with the stream";
  std::error_code ec;
  fs::remove(journal.substr(0, journal.rfind('/')), ec);
}

TEST(StreamStore, should_refuse_a_second_stream_on_the_same_name_or_overlapping_subjects) {
  TempDir dir;
  auto store = StreamStore::open(dir.path);
  ASSERT_TRUE(store);
  ASSERT_TRUE(store->add(orders()));
  auto again = store->add(orders());
  ASSERT_FALSE(again);
  EXPECT_EQ(again.error().code, Errc::already_exists);
  StreamConfig eu;
  eu.name = "EU";
  eu.subjects = {"*.eu"};
  auto overlap = store->add(eu);
  ASSERT_FALSE(overlap) << "orders.eu would be captured twice";
  EXPECT_NE(overlap.error().message.find("'*.eu' of 'EU' and 'orders.>' of 'ORDERS'"), std::string::npos)
      << overlap.error().message;
  EXPECT_EQ(store->list().size(), 1u) << "nothing of the refused stream was kept";
}

TEST(StreamStore, should_name_a_damaged_configuration_instead_of_reading_half_of_it) {
  TempDir dir;
  auto store = StreamStore::open(dir.path);
  ASSERT_TRUE(store);
  ASSERT_TRUE(store->add(orders()));
  std::ofstream(dir.path + "/streams/ORDERS/stream.json") << "{\"name\": \"ORDERS\", \"subj";
  auto info = store->info("ORDERS");
  ASSERT_FALSE(info);
  EXPECT_EQ(info.error().code, Errc::journal_corrupt);
  std::vector<std::string> damaged;
  EXPECT_TRUE(store->list(&damaged).empty());
  EXPECT_EQ(damaged, std::vector<std::string>{"ORDERS"});
  EXPECT_FALSE(store->add(orders())) << "and a new stream does not replace it";
}

TEST(StreamStore, should_keep_state_out_of_tmp_by_default) {
  const char* saved = std::getenv("BUS_STATE_DIR");
  ::setenv("BUS_STATE_DIR", "/srv/bus-state", 1);
  EXPECT_EQ(default_state_dir("demo"), "/srv/bus-state/demo");
  ::unsetenv("BUS_STATE_DIR");
  const std::string dflt = default_state_dir("demo");
  EXPECT_EQ(dflt.rfind("/tmp", 0), std::string::npos) << dflt;
  EXPECT_EQ(dflt.substr(dflt.size() - 5), "/demo");
  if (::geteuid() == 0) {
    EXPECT_EQ(dflt, "/var/lib/bus/demo");
  }
  if (saved != nullptr) ::setenv("BUS_STATE_DIR", saved, 1);
}

}  // namespace
}  // namespace bus::detail::stream

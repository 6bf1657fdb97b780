// segment_test.cpp — creating and attaching to a segment, and refusing bad ones with an error.
#include <gtest/gtest.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <fcntl.h>
#include <unistd.h>

#include <string>

#include "shm/segment.hpp"

namespace bus::detail {
namespace {

std::string unique_bus(const char* tag) {
  static int counter = 0;
  return std::string("segtest-") + tag + "-" + std::to_string(::getpid()) + "-" + std::to_string(counter++);
}

SegmentConfig small_config() {
  SegmentConfig c;
  c.max_clients = 4;
  c.max_subscriptions = 4;
  c.max_routes = 8;
  c.max_fanout = 4;
  c.ring_bytes = 1 << 16;
  c.max_payload = 8 << 10;
  return c;
}

struct SegmentGuard {
  std::string name;
  ~SegmentGuard() { Segment::remove(name); }
};

TEST(Segment, should_create_mode_0600_and_attach_with_matching_geometry) {
  SegmentGuard g{unique_bus("ok")};
  auto created = Segment::create(g.name, small_config(), 0600, ::getpid(), 1);
  ASSERT_TRUE(created) << created.error().message;
  struct stat st {};
  ASSERT_EQ(::stat(("/dev/shm/bus." + g.name).c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  auto opened = Segment::open(g.name);
  ASSERT_TRUE(opened) << opened.error().message;
  EXPECT_EQ(opened->config().ring_bytes, 1u << 16);
  EXPECT_EQ(opened->size(), created->size());
  EXPECT_EQ(opened->header()->broker_pid.load(), static_cast<std::uint32_t>(::getpid()));
  EXPECT_NE(opened->id(), 0u);
  EXPECT_EQ(opened->id(), created->id()) << "the identity a welcome is checked against";
  EXPECT_EQ(opened->subscription(0)->incarnation.load(), 1u);
}

TEST(Segment, should_refuse_to_create_over_an_existing_object) {
  SegmentGuard g{unique_bus("excl")};
  ASSERT_TRUE(Segment::create(g.name, small_config(), 0600, ::getpid(), 1));
  auto again = Segment::create(g.name, small_config(), 0600, ::getpid(), 1);
  ASSERT_FALSE(again);
  EXPECT_EQ(again.error().code, Errc::broker_already_running);
}

TEST(Segment, should_reject_bad_configurations_with_a_reason) {
  SegmentGuard g{unique_bus("cfg")};
  SegmentConfig c = small_config();
  c.ring_bytes = 5000;  // not a power of two
  auto r = Segment::create(g.name, c, 0600, ::getpid(), 1);
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().message.find("power of two"), std::string::npos);
  c = small_config();
  c.max_payload = 1 << 20;  // does not fit twice in a 64 KiB ring
  r = Segment::create(g.name, c, 0600, ::getpid(), 1);
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().message.find("too small"), std::string::npos);
}

TEST(Segment, should_return_errors_for_a_scribbled_header_never_crash) {
  SegmentGuard g{unique_bus("scribble")};
  auto created = Segment::create(g.name, small_config(), 0600, ::getpid(), 1);
  ASSERT_TRUE(created);
  SegmentHeader* h = created->header();

  RegionEntry* rings = nullptr;
  for (auto& e : h->regions) {
    if (e.kind == static_cast<std::uint32_t>(RegionKind::rings)) rings = &e;
  }
  ASSERT_NE(rings, nullptr) << "the region table names the rings";
  rings->offset += 4096;
  auto r = Segment::open(g.name);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, Errc::segment_corrupt);
  rings->offset -= 4096;

  h->region_count = 1000;
  r = Segment::open(g.name);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, Errc::segment_corrupt);
  h->region_count = 5;  // clients, subscriptions, routes, rings, streams

  // The streams region is one this build knows: missing, the segment is refused.
  h->region_count = 4;
  r = Segment::open(g.name);
  ASSERT_FALSE(r) << "a segment whose header names max_streams must have their region";
  EXPECT_EQ(r.error().code, Errc::segment_corrupt);
  h->region_count = 5;

  // A region of a kind this build does not know is skipped, as long as it lies in the file.
  h->regions[5] = RegionEntry{77, 0, 4096, 4096, 1, 4096};
  h->region_count = 6;
  EXPECT_TRUE(Segment::open(g.name)) << "unknown region kinds are a newer minor version's";
  h->regions[5].size = 1ull << 50;
  r = Segment::open(g.name);
  ASSERT_FALSE(r) << "an unknown region outside the file is still corrupt";
  EXPECT_EQ(r.error().code, Errc::segment_corrupt);
  h->region_count = 5;

  h->ring_bytes = 1ull << 40;
  r = Segment::open(g.name);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, Errc::segment_corrupt);
  h->ring_bytes = 1 << 16;

  h->layout_major = 99;
  r = Segment::open(g.name);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, Errc::version_mismatch);
  h->layout_major = kLayoutMajor;

  ASSERT_TRUE(Segment::open(g.name));
}

TEST(Segment, should_refuse_a_superseded_segment_and_show_it_to_mappers) {
  SegmentGuard g{unique_bus("super")};
  auto created = Segment::create(g.name, small_config(), 0600, ::getpid(), 1);
  ASSERT_TRUE(created);
  auto mapped = Segment::open(g.name);
  ASSERT_TRUE(mapped);
  EXPECT_FALSE(mapped->superseded());
  Segment::mark_superseded(g.name);
  EXPECT_TRUE(mapped->superseded()) << "a client still mapping it must learn it";
  auto r = Segment::open(g.name);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, Errc::broker_gone);
}

TEST(Segment, should_reject_a_file_without_magic_or_too_small) {
  SegmentGuard g{unique_bus("junk")};
  const std::string path = "/dev/shm/bus." + g.name;
  int fd = ::open(path.c_str(), O_CREAT | O_EXCL | O_RDWR, 0600);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(::write(fd, "junk", 4), 4);
  ::close(fd);
  auto r = Segment::open(g.name);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, Errc::segment_corrupt);
  ASSERT_EQ(::truncate(path.c_str(), 8192), 0);
  r = Segment::open(g.name);  // right size, no magic: waits (bounded) then refuses
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, Errc::segment_corrupt);
}

TEST(Segment, should_bounds_check_every_index) {
  SegmentGuard g{unique_bus("bounds")};
  auto s = Segment::create(g.name, small_config(), 0600, ::getpid(), 1);
  ASSERT_TRUE(s);
  EXPECT_NE(s->client(3), nullptr);
  EXPECT_EQ(s->client(4), nullptr);
  EXPECT_EQ(s->subscription(4), nullptr);
  EXPECT_EQ(s->route(8), nullptr);
  EXPECT_EQ(s->ring_data(0xFFFF'FFFFu), nullptr);
  EXPECT_EQ(s->ring(4).control(), nullptr);
}

TEST(BusName, should_accept_simple_names_and_reject_path_tricks) {
  EXPECT_TRUE(validate_bus_name("default"));
  EXPECT_TRUE(validate_bus_name("demo-1_x.y"));
  EXPECT_FALSE(validate_bus_name(""));
  EXPECT_FALSE(validate_bus_name("../etc"));
  EXPECT_FALSE(validate_bus_name("a/b"));
  EXPECT_FALSE(validate_bus_name(".hidden"));
  EXPECT_FALSE(validate_bus_name(std::string(65, 'a')));
}

}  // namespace
}  // namespace bus::detail

#include "shm/segment.hpp"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include <boost/interprocess/mapped_region.hpp>
#include <boost/interprocess/shared_memory_object.hpp>
#include <cerrno>
#include <cstring>
#include <iterator>
#include <new>
#include <thread>

#include "os/process.hpp"

namespace bip = boost::interprocess;

namespace bus::detail {

struct Segment::Mapping {
  bip::shared_memory_object shm;
  bip::mapped_region region;
  int fd() const { return shm.get_mapping_handle().handle; }
};

std::string segment_object_name(std::string_view bus_name) {
  return "bus." + std::string(bus_name);
}

Status validate_bus_name(std::string_view name) {
  if (name.empty()) return make_error(Errc::invalid_argument, "bus name is empty");
  if (name.size() > 64) {
    return make_error(Errc::invalid_argument,
                      "bus name '" + std::string(name) + "' is longer than 64 bytes");
  }
  if (name.front() == '.') {
    return make_error(Errc::invalid_argument,
                      "bus name '" + std::string(name) + "' must not start with '.'");
  }
  for (char c : name) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                    c == '_' || c == '-' || c == '.';
    if (!ok) {
      return make_error(Errc::invalid_argument, "bus name '" + std::string(name) +
                                                    "' may only hold letters, digits, '_', '-', '.'");
    }
  }
  return {};
}

Segment::Segment() noexcept = default;
Segment::Segment(Segment&&) noexcept = default;
Segment& Segment::operator=(Segment&&) noexcept = default;
Segment::~Segment() = default;

namespace {

std::uint64_t random_u64() noexcept {
  std::uint64_t v = 0;
  if (::getrandom(&v, sizeof v, 0) != static_cast<ssize_t>(sizeof v)) v = realtime_ns() ^ (std::uint64_t(::getpid()) << 32);
  return v == 0 ? 1 : v;
}

bool is_power_of_two(std::uint64_t v) { return v != 0 && (v & (v - 1)) == 0; }

Status validate_config(const SegmentConfig& c) {
  if (c.max_clients == 0 || c.max_clients > 4096) {
    return make_error(Errc::invalid_argument, "max_clients must be 1..4096");
  }
  if (c.max_subscriptions == 0 || c.max_subscriptions > (1u << 20)) {
    return make_error(Errc::invalid_argument, "max_subscriptions must be 1..1048576");
  }
  if (c.max_routes == 0 || c.max_routes > (1u << 20)) {
    return make_error(Errc::invalid_argument, "max_routes must be 1..1048576");
  }
  if (c.max_fanout == 0 || c.max_fanout > c.max_subscriptions) {
    return make_error(Errc::invalid_argument, "max_fanout must be 1..max_subscriptions");
  }
  if (!is_power_of_two(c.ring_bytes) || c.ring_bytes < 4096 || c.ring_bytes > (1ull << 30)) {
    return make_error(Errc::invalid_argument,
                      "ring_bytes must be a power of two from 4 KiB to 1 GiB, got " +
                          std::to_string(c.ring_bytes));
  }
  if (c.max_streams > 4096) return make_error(Errc::invalid_argument, "max_streams must be 0 to 4096");
  if (c.max_payload == 0 || c.max_payload > (1ull << 29)) {  // before any arithmetic on it
    return make_error(Errc::invalid_argument, "max_payload must be 1 byte to 512 MiB");
  }
  // A ring accepts records up to half its capacity; the largest record is a max-size payload
  // with the longest subject and reply.
  const std::uint64_t largest = record_bytes(kPatternBytes, kPatternBytes, 0, c.max_payload);
  if (c.max_payload == 0 || largest > c.ring_bytes / 2) {
    return make_error(Errc::invalid_argument,
                      "ring_bytes " + std::to_string(c.ring_bytes) +
                          " is too small for max_payload " + std::to_string(c.max_payload) +
                          ": a ring must hold two of the largest messages (" +
                          std::to_string(largest) + " bytes each)");
  }
  return {};
}

Status reserve(int fd, std::uint64_t offset, std::uint64_t length, std::string_view what) {
  const int rc = ::posix_fallocate(fd, static_cast<off_t>(offset), static_cast<off_t>(length));
  if (rc != 0) {
    return make_error(Errc::resource_exhausted,
                      "cannot reserve " + std::to_string(length >> 10) + " KiB of shared memory for " +
                          std::string(what) + ": " + std::strerror(rc) +
                          " (is /dev/shm large enough? see `df -h /dev/shm`)");
  }
  return {};
}

}  // namespace

Status Segment::adopt_mapping(std::unique_ptr<Mapping> mapping) {
  base_ = static_cast<std::byte*>(mapping->region.get_address());
  size_ = mapping->region.get_size();
  mapping_ = std::move(mapping);
  return {};
}

Result<Segment> Segment::create(std::string_view bus_name, const SegmentConfig& config,
                                mode_t mode, pid_t broker_pid, std::uint64_t broker_start_ticks) {
  if (auto st = validate_bus_name(bus_name); !st) return std::move(st).error();
  if (auto st = validate_config(config); !st) return std::move(st).error();
  const SegmentGeometry geo = compute_geometry(config);
  const std::string object = segment_object_name(bus_name);
  auto mapping = std::make_unique<Mapping>();
  try {
    bip::permissions perms(static_cast<unsigned>(mode));
    // create_only = O_CREAT|O_EXCL: never adopts a file someone else planted under our name.
    mapping->shm = bip::shared_memory_object(bip::create_only, object.c_str(), bip::read_write, perms);
  } catch (const bip::interprocess_exception& e) {
    if (e.get_error_code() == bip::already_exists_error) {
      return make_error(Errc::broker_already_running,
                        "shared memory object /dev/shm/" + object + " already exists");
    }
    return make_error(Errc::io_error, "cannot create /dev/shm/" + object + ": " + e.what());
  }
  // umask may have narrowed the mode; the caller's mode is what we promise.
  ::fchmod(mapping->fd(), mode);
  struct stat created {};
  (void)::fstat(mapping->fd(), &created);
  try {
    mapping->shm.truncate(static_cast<bip::offset_t>(geo.segment_size));
  } catch (const bip::interprocess_exception& e) {
    bip::shared_memory_object::remove(object.c_str());
    return make_error(Errc::resource_exhausted, "cannot size /dev/shm/" + object + " to " +
                                                    std::to_string(geo.segment_size) + " bytes: " + e.what());
  }
  // Header and tables are touched by everyone at once: reserve them now. Rings are reserved
  // one by one when first handed out (reserve_ring), so an unused max_subscriptions is free.
  if (auto st = reserve(mapping->fd(), 0, geo.rings_offset, "the bus tables"); !st) {
    bip::shared_memory_object::remove(object.c_str());
    return std::move(st).error();
  }
  try {
    mapping->region = bip::mapped_region(mapping->shm, bip::read_write);
  } catch (const bip::interprocess_exception& e) {
    bip::shared_memory_object::remove(object.c_str());
    return make_error(Errc::io_error, "cannot map /dev/shm/" + object + ": " + e.what());
  }
  Segment seg;
  (void)seg.adopt_mapping(std::move(mapping));
  seg.config_ = config;
  seg.geometry_ = geo;
  seg.gid_ = created.st_gid;
  seg.mode_ = mode & 0777;

  auto* h = seg.header();
  // The fresh object is zero-filled by the kernel; construct the atomics in place over it.
  new (&h->magic) std::atomic<std::uint64_t>(0);
  h->layout_major = kLayoutMajor;
  h->layout_minor = kLayoutMinor;
  h->header_size = sizeof(SegmentHeader);
  h->segment_state.store(static_cast<std::uint32_t>(SegmentState::building), std::memory_order_relaxed);
  h->segment_size = geo.segment_size;
  h->segment_id = random_u64();
  h->created_unix_ns = realtime_ns();
  h->owner_uid = static_cast<std::uint32_t>(::geteuid());
  h->broker_epoch.store(1, std::memory_order_relaxed);
  h->broker_pid.store(static_cast<std::uint32_t>(broker_pid), std::memory_order_relaxed);
  h->broker_start_ticks.store(broker_start_ticks, std::memory_order_relaxed);
  h->max_clients = config.max_clients;
  h->max_subscriptions = config.max_subscriptions;
  h->max_routes = config.max_routes;
  h->max_fanout = config.max_fanout;
  h->ring_bytes = config.ring_bytes;
  h->max_payload = config.max_payload;
  h->max_streams = config.max_streams;
  const RegionTable table = region_table(config, geo);
  h->region_count = table.count;
  for (std::size_t i = 0; i < table.count; ++i) h->regions[i] = table.entries[i];
  h->broker_heartbeat_ns.store(monotonic_ns(), std::memory_order_relaxed);
  h->registry_generation.store(1, std::memory_order_relaxed);
  // Every ring starts at incarnation 1 (0 is never valid, so a zeroed route target is stale).
  for (std::uint32_t i = 0; i < config.max_subscriptions; ++i) {
    seg.subscription(i)->incarnation.store(1, std::memory_order_relaxed);
  }
  h->segment_state.store(static_cast<std::uint32_t>(SegmentState::live), std::memory_order_relaxed);
  // Readiness: the magic goes last. [R0] release: pairs with [A0] in open(); every header and
  // table field above is visible to a client that sees the magic.
  h->magic.store(kSegmentMagic, std::memory_order_release);
  return seg;
}

namespace {

bool in_group(gid_t gid) {
  if (::getegid() == gid) return true;
  gid_t groups[256];
  const int n = ::getgroups(256, groups);
  for (int i = 0; i < n; ++i) {
    if (groups[i] == gid) return true;
  }
  return false;
}

}  // namespace

Result<Segment> Segment::open(std::string_view bus_name, std::optional<uid_t> broker_uid) {
  return open_mapping(bus_name, broker_uid, /*read_only=*/false);
}

Result<Segment> Segment::open_read_only(std::string_view bus_name) {
  return open_mapping(bus_name, std::nullopt, /*read_only=*/true);
}

Result<Segment> Segment::open_mapping(std::string_view bus_name, std::optional<uid_t> broker_uid, bool read_only) {
  if (auto st = validate_bus_name(bus_name); !st) return std::move(st).error();
  const std::string object = segment_object_name(bus_name);
  const bip::mode_t access = read_only ? bip::read_only : bip::read_write;
  auto mapping = std::make_unique<Mapping>();
  try {
    mapping->shm = bip::shared_memory_object(bip::open_only, object.c_str(), access);
  } catch (const bip::interprocess_exception& e) {
    if (e.get_error_code() == bip::not_found_error) {
      return make_error(Errc::broker_not_running, "bus '" + std::string(bus_name) +
                                                      "' has no shared memory segment (is busd running?)");
    }
    if (e.get_error_code() == bip::security_error) {
      return make_error(Errc::permission_denied, "no permission to open /dev/shm/" + object);
    }
    return make_error(Errc::io_error, "cannot open /dev/shm/" + object + ": " + e.what());
  }
  struct stat st {};
  if (::fstat(mapping->fd(), &st) != 0) {
    return make_error(Errc::io_error, errno_message("fstat segment", errno));
  }
  // Name squatting: a segment not owned by the broker we talk to could be fed by a stranger.
  // Sharing with a group is the operator's choice (busd --mode 0660): then the file's group
  // must be one of ours.
  if (broker_uid) {
    if (st.st_uid != *broker_uid) {
      return make_error(Errc::permission_denied, "/dev/shm/" + object + " is owned by uid " +
                                                     std::to_string(st.st_uid) + ", not by the broker (uid " +
                                                     std::to_string(*broker_uid) + ")");
    }
    const bool shared_with_us = (st.st_mode & 0060) == 0060 && in_group(st.st_gid);
    if (st.st_uid != ::geteuid() && ::geteuid() != 0 && !shared_with_us) {
      return make_error(Errc::permission_denied, "/dev/shm/" + object + " belongs to uid " +
                                                     std::to_string(st.st_uid) + " and is not shared with our groups");
    }
  } else if (!read_only && st.st_uid != ::geteuid()) {
    return make_error(Errc::permission_denied, "/dev/shm/" + object + " is owned by uid " +
                                                   std::to_string(st.st_uid) + ", not by us");
  }
  if (static_cast<std::uint64_t>(st.st_size) < sizeof(SegmentHeader)) {
    return make_error(Errc::segment_corrupt, "/dev/shm/" + object + " is smaller than a header");
  }
  try {
    mapping->region = bip::mapped_region(mapping->shm, access);
  } catch (const bip::interprocess_exception& e) {
    return make_error(Errc::io_error, "cannot map /dev/shm/" + object + ": " + e.what());
  }
  Segment seg;
  (void)seg.adopt_mapping(std::move(mapping));
  seg.gid_ = st.st_gid;
  seg.mode_ = st.st_mode & 0777;
  auto* h = seg.header();
  // Wait (bounded) for the broker to finish filling the segment.
  const std::uint64_t deadline = monotonic_ns() + 2'000'000'000ull;
  // [A0] acquire: pairs with the release of the magic in create(); header fields are visible.
  while (h->magic.load(std::memory_order_acquire) != kSegmentMagic) {
    if (monotonic_ns() > deadline) {
      return make_error(Errc::segment_corrupt,
                        "/dev/shm/" + object + " has no valid magic (awaiting segment readiness timed out)");
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  if (h->layout_major != kLayoutMajor) {
    return make_error(Errc::version_mismatch,
                      "segment layout version " + std::to_string(h->layout_major) + "." +
                          std::to_string(h->layout_minor) + " is not supported (this build speaks " +
                          std::to_string(kLayoutMajor) + ".x)");
  }
  if (h->segment_state.load(std::memory_order_acquire) == static_cast<std::uint32_t>(SegmentState::superseded)) {
    return make_error(Errc::broker_gone, "/dev/shm/" + object + " was superseded by a newer broker");
  }
  SegmentConfig c;
  c.max_clients = h->max_clients;
  c.max_subscriptions = h->max_subscriptions;
  c.max_routes = h->max_routes;
  c.max_fanout = h->max_fanout;
  c.ring_bytes = h->ring_bytes;
  c.max_payload = h->max_payload;
  c.max_streams = h->max_streams;  // zero (reserved) in minor 0 segments: no streams region
  if (auto v = validate_config(c); !v) {
    return make_error(Errc::segment_corrupt, "segment header holds invalid sizes: " + v.error().message);
  }
  const SegmentGeometry g = compute_geometry(c);
  // At least our regions' extent: a newer minor may add regions after them (ignored below).
  if (h->header_size != sizeof(SegmentHeader) || h->segment_size < g.segment_size || seg.size_ < h->segment_size) {
    return make_error(Errc::segment_corrupt, "segment header sizes disagree with each other or the file size");
  }
  // Every region this build knows must be where its sizes put it; unknown kinds (a newer minor
  // version's) are skipped, but must still lie inside the file.
  const std::uint32_t regions = h->region_count;
  if (regions > kMaxRegions) return make_error(Errc::segment_corrupt, "segment header lists too many regions");
  const RegionTable expected = region_table(c, g);
  for (std::uint32_t k = 0; k < expected.count; ++k) {
    const RegionEntry& want = expected.entries[k];
    bool found = false;
    for (std::uint32_t i = 0; i < regions && !found; ++i) {
      const RegionEntry& have = h->regions[i];
      if (have.kind != want.kind) continue;
      found = have.offset == want.offset && have.size == want.size && have.count == want.count &&
              have.stride == want.stride;
      if (!found) break;
    }
    if (!found) {
      return make_error(Errc::segment_corrupt, "segment region " + std::to_string(want.kind) +
                                                   " is missing or disagrees with the header's sizes");
    }
  }
  for (std::uint32_t i = 0; i < regions; ++i) {
    const RegionEntry& r = h->regions[i];
    if (r.offset > seg.size_ || r.size > seg.size_ - r.offset) {
      return make_error(Errc::segment_corrupt, "segment region " + std::to_string(r.kind) + " lies outside the file");
    }
  }
  seg.config_ = c;
  seg.geometry_ = g;
  return seg;
}

std::uint64_t Segment::id() const noexcept { return base_ == nullptr ? 0 : header()->segment_id; }

void Segment::mark_superseded(std::string_view bus_name) noexcept {
  try {
    bip::shared_memory_object shm(bip::open_only, segment_object_name(bus_name).c_str(), bip::read_write);
    bip::offset_t size = 0;
    if (!shm.get_size(size) || static_cast<std::uint64_t>(size) < sizeof(SegmentHeader)) return;
    bip::mapped_region region(shm, bip::read_write, 0, sizeof(SegmentHeader));
    auto* h = static_cast<SegmentHeader*>(region.get_address());
    // Offsets 0..19 (magic, version, state) are the same in every layout version, so clients
    // of any build see this. [SC1] seq_cst: in one total order with the publishers' claim CASes
    // and their check after them ([SC2]), and the subscribers' loads before they leave ([SC3]).
    h->segment_state.store(static_cast<std::uint32_t>(SegmentState::superseded), std::memory_order_seq_cst);
  } catch (...) {
  }
}

Segment::Peek Segment::peek(std::string_view bus_name) noexcept {
  Peek p;
  try {
    const std::string object = segment_object_name(bus_name);
    bip::shared_memory_object shm(bip::open_only, object.c_str(), bip::read_only);
    bip::offset_t size = 0;
    if (!shm.get_size(size) || static_cast<std::uint64_t>(size) < sizeof(SegmentHeader)) return p;
    bip::mapped_region region(shm, bip::read_only, 0, sizeof(SegmentHeader));
    const auto* h = static_cast<const SegmentHeader*>(region.get_address());
    p.valid_magic = h->magic.load(std::memory_order_acquire) == kSegmentMagic;
    p.layout_major = h->layout_major;
    if (p.valid_magic && p.layout_major == kLayoutMajor) {
      p.broker_pid = h->broker_pid.load(std::memory_order_relaxed);
      p.broker_start_ticks = h->broker_start_ticks.load(std::memory_order_relaxed);
    }
  } catch (...) {
  }
  return p;
}

bool Segment::exists(std::string_view bus_name) noexcept {
  try {
    bip::shared_memory_object shm(bip::open_only, segment_object_name(bus_name).c_str(),
                                  bip::read_only);
    return true;
  } catch (...) {
    return false;
  }
}

bool Segment::remove(std::string_view bus_name) noexcept {
  return bip::shared_memory_object::remove(segment_object_name(bus_name).c_str());
}

Status Segment::reserve_ring(std::uint32_t index) noexcept {
  if (index >= config_.max_subscriptions || !mapping_) {
    return make_error(Errc::invalid_argument, "ring index out of range");
  }
  try {
    return reserve(mapping_->fd(), geometry_.rings_offset + std::uint64_t{index} * config_.ring_bytes,
                   config_.ring_bytes, "a subscription ring");
  } catch (...) {
    return make_error(Errc::io_error, "cannot reserve ring");
  }
}

void Segment::prefault_ring(std::uint32_t index) const noexcept {
#ifdef MADV_POPULATE_WRITE
  if (std::byte* data = ring_data(index)) ::madvise(data, config_.ring_bytes, MADV_POPULATE_WRITE);
#else
  (void)index;
#endif
}

ClientLayout* Segment::client(std::uint32_t index) const noexcept {
  if (base_ == nullptr || index >= config_.max_clients) return nullptr;
  return reinterpret_cast<ClientLayout*>(base_ + geometry_.clients_offset) + index;
}

SubscriptionLayout* Segment::subscription(std::uint32_t index) const noexcept {
  if (base_ == nullptr || index >= config_.max_subscriptions) return nullptr;
  return reinterpret_cast<SubscriptionLayout*>(base_ + geometry_.subscriptions_offset) + index;
}

RouteLayout* Segment::route(std::uint32_t index) const noexcept {
  if (base_ == nullptr || index >= config_.max_routes) return nullptr;
  return reinterpret_cast<RouteLayout*>(base_ + geometry_.routes_offset +
                                        std::uint64_t{index} * geometry_.route_stride);
}

RouteTarget* Segment::route_targets(RouteLayout* r) const noexcept {
  return reinterpret_cast<RouteTarget*>(reinterpret_cast<std::byte*>(r) + kRouteTargetsOffset);
}

std::byte* Segment::ring_data(std::uint32_t index) const noexcept {
  if (base_ == nullptr || index >= config_.max_subscriptions) return nullptr;
  return base_ + geometry_.rings_offset + std::uint64_t{index} * config_.ring_bytes;
}

StreamLayout* Segment::stream(std::uint32_t index) const noexcept {
  if (base_ == nullptr || index >= config_.max_streams) return nullptr;
  return reinterpret_cast<StreamLayout*>(base_ + geometry_.streams_offset) + index;
}

MpscRing Segment::ring(std::uint32_t index) const noexcept {
  auto* s = subscription(index);
  if (s == nullptr) return {};
  return MpscRing(s, ring_data(index), static_cast<std::uint32_t>(config_.ring_bytes));
}

}  // namespace bus::detail

// shm/segment.hpp — creating, attaching and bounds-checked access to a bus segment.
//
// The broker creates the segment (create()); clients attach (open()). Accessors take indices
// from untrusted places (control replies, route targets, record headers) and return nullptr for
// anything out of range, so a scribbled value becomes an error, never a stray access.
#pragma once

#include <sys/types.h>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "bus/result.hpp"
#include "ring/mpsc_ring.hpp"
#include "shm/layout.hpp"

namespace bus::detail {

/// "/dev/shm" object name of a bus: "bus.<NAME>".
std::string segment_object_name(std::string_view bus_name);

/// Bus names become file and socket names: [A-Za-z0-9_.-]{1,64}, not starting with '.'.
Status validate_bus_name(std::string_view bus_name);

class Segment {
 public:
  Segment() noexcept;
  Segment(Segment&&) noexcept;
  Segment& operator=(Segment&&) noexcept;
  Segment(const Segment&) = delete;
  Segment& operator=(const Segment&) = delete;
  ~Segment();

  /// Creates `/bus.<name>` with O_EXCL and `mode`, sizes and zero-fills it, reserves the pages of
  /// the header and tables (posix_fallocate, so a small /dev/shm fails here, not with SIGBUS
  /// later), writes the header and publishes the magic last. Fails if the object exists.
  static Result<Segment> create(std::string_view bus_name, const SegmentConfig& config,
                                mode_t mode, pid_t broker_pid, std::uint64_t broker_start_ticks);

  /// Attaches to an existing segment: checks owner, size, magic, major version and that every
  /// region offset in the header agrees with the sizes in the header and the file's size.
  /// `broker_uid`: the uid of the broker we talked to (SO_PEERCRED). The file must belong to it,
  /// and to us unless its mode grants our group access (busd --mode 0660). Without it (the
  /// broker adopting a segment) the file must be ours.
  static Result<Segment> open(std::string_view bus_name, std::optional<uid_t> broker_uid = std::nullopt);
  /// Maps an existing segment read-only, for monitoring (bus server, bus top): the same checks
  /// as open() but ownership (whoever may read the file may look), and any write through the
  /// result faults. Readers treat everything in it as untrusted, as ever.
  static Result<Segment> open_read_only(std::string_view bus_name);

  /// Reads the header of an existing segment without keeping it (stale-segment diagnostics).
  struct Peek {
    bool valid_magic = false;
    std::uint16_t layout_major = 0;
    std::uint32_t broker_pid = 0;
    std::uint64_t broker_start_ticks = 0;
  };
  static Peek peek(std::string_view bus_name) noexcept;
  static bool exists(std::string_view bus_name) noexcept;
  /// Tells every client still mapping the segment of `bus_name` that it is being replaced
  /// (before the broker unlinks it): their publishes and polls then fail with broker_gone.
  static void mark_superseded(std::string_view bus_name) noexcept;
  static bool remove(std::string_view bus_name) noexcept;

  /// Reserves the pages of ring `index` (broker, before first use of a ring).
  Status reserve_ring(std::uint32_t index) noexcept;
  /// Maps ring `index`'s pages into this process now (MADV_POPULATE_WRITE), so the first lap
  /// through the ring takes no page faults on the data path. Best effort: older kernels skip it.
  void prefault_ring(std::uint32_t index) const noexcept;

  /// Random identity chosen at creation and kept by adopting brokers.
  std::uint64_t id() const noexcept;
  /// A newer broker replaced this segment: stop using it (cheap: one load of a read-mostly line).
  /// seq_cst where the caller needs the flag ordered against its own RMWs on ring tails
  /// ([SC1]..[SC3], docs/design/ring.md "Superseded").
  /// (Inline: publish() asks twice.) Relaxed by default: a flag that only ever goes one way.
  bool superseded(std::memory_order order = std::memory_order_relaxed) const noexcept {
    return base_ != nullptr &&
           header()->segment_state.load(order) == static_cast<std::uint32_t>(SegmentState::superseded);
  }

  SegmentHeader* header() const noexcept { return reinterpret_cast<SegmentHeader*>(base_); }
  const SegmentConfig& config() const noexcept { return config_; }
  std::uint64_t size() const noexcept { return size_; }
  /// Group of the segment file (clients in it may attach when its mode grants group access).
  gid_t file_gid() const noexcept { return gid_; }
  mode_t file_mode() const noexcept { return mode_; }
  std::byte* base() const noexcept { return base_; }

  ClientLayout* client(std::uint32_t index) const noexcept;
  SubscriptionLayout* subscription(std::uint32_t index) const noexcept;
  RouteLayout* route(std::uint32_t index) const noexcept;
  RouteTarget* route_targets(RouteLayout* route) const noexcept;
  std::byte* ring_data(std::uint32_t index) const noexcept;
  /// Stream slot `index`, or nullptr when out of range (or the segment has no streams region).
  StreamLayout* stream(std::uint32_t index) const noexcept;
  /// Ring view of subscription `index`, or a default (null) ring when out of range.
  MpscRing ring(std::uint32_t index) const noexcept;

 private:
  struct Mapping;  // Boost.Interprocess shared_memory_object + mapped_region
  static Result<Segment> open_mapping(std::string_view bus_name, std::optional<uid_t> broker_uid, bool read_only);
  Status adopt_mapping(std::unique_ptr<Mapping> mapping);

  std::unique_ptr<Mapping> mapping_;
  std::byte* base_ = nullptr;
  std::uint64_t size_ = 0;
  gid_t gid_ = 0;
  mode_t mode_ = 0;
  SegmentConfig config_{};
  SegmentGeometry geometry_{};
};

}  // namespace bus::detail

// shm/layout.hpp — SegmentDescriptor: the byte layout of a bus's shared-memory segment.
//
// One bus = one POSIX shared-memory object `/bus.<NAME>`, created by the broker (mode 0600,
// O_EXCL). Everything in it is addressed by offsets relative to the segment start, never by
// pointers, because every process maps it at a different address. Every offset, index and
// length read from it is untrusted: code that uses one checks it against the bounds below.
//
//   segment (all regions 4096-aligned; each found through the header's region table)
//   +--------------------------------------+ 0
//   | SegmentHeader            (4096 B)    |  magic, version, state, id, sizes, region table
//   +--------------------------------------+ clients_offset
//   | ClientLayout x max_clients           |  who is attached; publisher claim lanes
//   +--------------------------------------+ subscriptions_offset
//   | SubscriptionLayout x max_subscriptions|  pattern, owner, ring control (tail/head/counters)
//   +--------------------------------------+ routes_offset
//   | RouteLayout x max_routes             |  resolved subject -> subscriber rings (stride
//   |   (header + max_fanout RouteTargets) |  route_stride)
//   +--------------------------------------+ rings_offset
//   | ring data x max_subscriptions        |  ring i serves subscription slot i; ring_bytes each
//   +--------------------------------------+ streams_offset                      (minor >= 1)
//   | StreamLayout x max_streams           |  stream name -> journal directory, for publishers
//   +--------------------------------------+ segment_size
//
// Writers: the broker is the only writer of the header, the client table's identity fields,
// subscription identity fields and routes (single writer => no locks on the control path, and
// nothing for a dead client to leave locked). Clients write only their own claim lanes, the
// rings they publish into (tail/record bytes) and the rings they consume (head/counters).
//
// Any change to a struct below must bump kLayoutMajor (incompatible) or kLayoutMinor
// (fields added in reserved space); tests/layout/layout_freeze_test.cpp fails until you do.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>

namespace bus::detail {

inline constexpr std::uint64_t kSegmentMagic = 0x3130'4745'5353'5542ull;  // "BUSSEG01" little-endian
inline constexpr std::uint16_t kLayoutMajor = 2;
inline constexpr std::uint16_t kLayoutMinor = 3;  // 1: the streams region; 2: monitoring counters;
                                                  // 3: subscription flags (bridge proxies)
inline constexpr std::size_t kCacheLine = 64;
// Hot atomics get two cache lines (Aeron's rule): the adjacent-line prefetcher pulls pairs of
// lines, so one line of padding is not enough to stop false sharing.
inline constexpr std::size_t kHotBlock = 128;
inline constexpr std::size_t kRegionAlign = 4096;
inline constexpr std::size_t kPatternBytes = 256;  // kMaxSubjectBytes (255) + NUL
inline constexpr std::size_t kGroupBytes = 64;     // kMaxQueueGroupBytes (63) + NUL
inline constexpr std::size_t kClientNameBytes = 48;
// Claim lanes per client: each publishing thread of a client owns one lane (see ClientLayout).
inline constexpr std::size_t kClaimLanes = 32;

static_assert(std::atomic<std::uint64_t>::is_always_lock_free);
static_assert(std::atomic<std::uint32_t>::is_always_lock_free);
static_assert(std::atomic<std::int32_t>::is_always_lock_free);

// ---------------------------------------------------------------------------------------------
// SegmentHeader (offset 0, 4096 bytes)
//
//  off  size field                      writer  notes
//    0     8 magic                      broker  release-stored LAST: readiness signal
//    8     2 layout_major               broker  clients refuse a different major
//   10     2 layout_minor               broker  newer minor = fields added in reserved space
//   12     4 header_size                broker  4096
//   16     4 segment_state              broker  SegmentState; `superseded` tells every client of
//                                               any version to leave (offsets 0..19 never move)
//   20     4 region_count               broker  entries used in `regions`
//   24     8 segment_size               broker  must equal the mapped file size
//   32     8 segment_id                 broker  random at creation; kept across adoptions
//   40     8 created_unix_ns            broker
//   48     4 owner_uid                  broker
//   52     4 broker_epoch               broker  +1 each time a broker creates or adopts it
//   56     4 broker_pid                 broker  rewritten by an adopting broker
//   60     4 reserved
//   64     8 broker_start_ticks         broker  /proc/<pid>/stat starttime (pid-reuse proof)
//   72     4 max_clients                broker
//   76     4 max_subscriptions          broker  = number of rings
//   80     4 max_routes                 broker
//   84     4 max_fanout                 broker  targets per route
//   88     8 ring_bytes                 broker  power of two, per subscription
//   96     8 max_payload                broker  headers + payload, per message
//  104     4 max_streams                broker  StreamLayout entries (0 in minor 0 segments)
//  108    20 reserved (zero)
//  128   512 regions[16]                broker  RegionEntry: kind, offset, size, count, stride
//  640   128 broker_heartbeat_ns        broker  CLOCK_MONOTONIC ns, every 100 ms  [hot block]
//  768   128 registry_generation        broker  +1 per subscription change       [hot block]
//  896   128 totals                     broker  BusTotals: the bus's counters     (minor >= 2)
// 1024  3072 reserved (zero)                    journal descriptors
//
// The region table is how the segment grows without a rewrite: a reader finds each region by
// kind, checks offset + size against the file, and ignores kinds it does not know (a newer minor
// version may add counters, streams, a payload pool or bridge state).
// ---------------------------------------------------------------------------------------------
enum class SegmentState : std::uint32_t {
  building = 0,    // being filled (magic not yet published)
  live = 1,        // served by a broker, or waiting for one to adopt it
  superseded = 2,  // a broker replaced it: clients must stop using it and re-attach
};

enum class RegionKind : std::uint32_t {
  none = 0,
  clients = 1,        // ClientLayout x max_clients
  subscriptions = 2,  // SubscriptionLayout x max_subscriptions
  routes = 3,         // RouteLayout (+ targets) x max_routes, stride route_stride
  rings = 4,          // ring data x max_subscriptions, stride ring_bytes
  streams = 6,        // StreamLayout x max_streams (minor >= 1)
  // reserved for the next issues: counters = 5, payload_pool = 7, bridge = 8
};

inline constexpr std::size_t kMaxRegions = 16;

struct RegionEntry {
  std::uint32_t kind;    // RegionKind
  std::uint32_t flags;   // 0; reserved
  std::uint64_t offset;  // from the segment start, kRegionAlign-aligned
  std::uint64_t size;    // bytes
  std::uint32_t count;   // elements
  std::uint32_t stride;  // bytes per element (0 when elements are bigger than 4 GiB)
};
static_assert(sizeof(RegionEntry) == 32);

// BusTotals (header offset 896, 128 bytes; minor >= 2): what monitoring adds to the live tables
// counters to get the bus's totals. Broker-written (relaxed: statistics, one writer); a broker
// that adopts the segment keeps counting from these.
//
//  off  size field                    notes
//    0     8 broker_start_unix_ns     when the broker serving now started (varz `start`)
//    8     8 total_connections        clients ever admitted (hellos), internal ones included
//   16     8 departed_in_msgs         published by clients that have since left
//   24     8 departed_in_bytes
//   32     8 departed_out_msgs        delivered by subscriptions that have since been recycled
//   40     8 departed_out_bytes
//   48     8 departed_dropped_msgs    dropped (full ring or abandoned) for those subscriptions
//   56     8 slow_consumers           slow-consumer episodes, all subscriptions ever
//   64     8 departed_undelivered_msgs  deliveries refused to publishers that have since left
//   72     8 events_published         $SYS events the broker published
//   80     4 http_port                the broker's monitoring port (busd -m), 0 when none
//   84    44 reserved (zero)
struct BusTotals {
  std::atomic<std::uint64_t> broker_start_unix_ns;
  std::atomic<std::uint64_t> total_connections;
  std::atomic<std::uint64_t> departed_in_msgs;
  std::atomic<std::uint64_t> departed_in_bytes;
  std::atomic<std::uint64_t> departed_out_msgs;
  std::atomic<std::uint64_t> departed_out_bytes;
  std::atomic<std::uint64_t> departed_dropped_msgs;
  std::atomic<std::uint64_t> slow_consumers;
  std::atomic<std::uint64_t> departed_undelivered_msgs;
  std::atomic<std::uint64_t> events_published;
  std::atomic<std::uint32_t> http_port;
  std::uint8_t reserved[44];
};
static_assert(sizeof(BusTotals) == 128);

struct alignas(kRegionAlign) SegmentHeader {
  std::atomic<std::uint64_t> magic;
  std::uint16_t layout_major;
  std::uint16_t layout_minor;
  std::uint32_t header_size;
  std::atomic<std::uint32_t> segment_state;
  std::uint32_t region_count;
  std::uint64_t segment_size;
  std::uint64_t segment_id;
  std::uint64_t created_unix_ns;
  std::uint32_t owner_uid;
  std::atomic<std::uint32_t> broker_epoch;
  std::atomic<std::uint32_t> broker_pid;
  std::uint32_t reserved0;
  std::atomic<std::uint64_t> broker_start_ticks;
  std::uint32_t max_clients;
  std::uint32_t max_subscriptions;
  std::uint32_t max_routes;
  std::uint32_t max_fanout;
  std::uint64_t ring_bytes;
  std::uint64_t max_payload;
  std::uint32_t max_streams;
  std::uint8_t reserved1[20];
  RegionEntry regions[kMaxRegions];
  alignas(kHotBlock) std::atomic<std::uint64_t> broker_heartbeat_ns;
  alignas(kHotBlock) std::atomic<std::uint64_t> registry_generation;
  alignas(kHotBlock) BusTotals totals;
  std::uint8_t reserved2[3072];
};
static_assert(offsetof(SegmentHeader, magic) == 0);
static_assert(offsetof(SegmentHeader, layout_major) == 8);
static_assert(offsetof(SegmentHeader, header_size) == 12);
static_assert(offsetof(SegmentHeader, segment_state) == 16);
static_assert(offsetof(SegmentHeader, region_count) == 20);
static_assert(offsetof(SegmentHeader, segment_size) == 24);
static_assert(offsetof(SegmentHeader, segment_id) == 32);
static_assert(offsetof(SegmentHeader, broker_epoch) == 52);
static_assert(offsetof(SegmentHeader, broker_pid) == 56);
static_assert(offsetof(SegmentHeader, broker_start_ticks) == 64);
static_assert(offsetof(SegmentHeader, max_clients) == 72);
static_assert(offsetof(SegmentHeader, ring_bytes) == 88);
static_assert(offsetof(SegmentHeader, max_payload) == 96);
static_assert(offsetof(SegmentHeader, regions) == 128);
static_assert(offsetof(SegmentHeader, broker_heartbeat_ns) == 640);
static_assert(offsetof(SegmentHeader, registry_generation) == 768);
static_assert(offsetof(SegmentHeader, totals) == 896);
static_assert(sizeof(SegmentHeader) == 4096);

// ---------------------------------------------------------------------------------------------
// ClientLayout (one per client slot; 128 + 32 * 64 = 2176 bytes)
//
//  off  size field              writer  notes
//    0     4 state              broker  ClientState; only the broker moves it
//    4     4 epoch              broker  +1 each time the slot is (re)assigned
//    8     4 pid                broker  from SO_PEERCRED, checked against the pidfd
//   12     4 uid                broker
//   16     8 start_ticks        broker  /proc/<pid>/stat starttime: pid + start = identity
//   24     8 connected_unix_ns  broker
//   32    48 name               broker  client-chosen label for monitoring (NUL-terminated)
//   80    48 reserved (zero)
//   80     4 reconnects         client  times this connection re-attached (minor >= 2)
//   84     4 pending_requests   client  requests waiting for their reply     (minor >= 2)
//   88     8 closed_out_msgs    broker  delivered by this client's subscriptions since recycled
//   96     8 closed_out_bytes   broker
//  104     8 closed_dropped_msgs broker dropped for those subscriptions
//  112     4 goodbye            client  1 once close() began: the hang-up that follows is a
//                                       close, not a death (disconnect event's reason)
//  116    12 reserved
//  128  2048 claim_lanes[32]    client  one 64-byte line per publishing thread:
//                                         +0 claim      ring + 1, claim position, skipped bit
//                                         +8 claim_end  the end position of that claim
//                                        +16 published_msgs    publish() calls  (minor >= 2)
//                                        +24 published_bytes   their headers + payload
//                                        +32 undelivered_msgs  deliveries refused: a full ring,
//                                                              or skipped as abandoned
//
// The lane's counters share the line the thread writes on every publish anyway (its claim
// word), so counting adds no cache miss; a monitor reading them steals the line once per look.
// They count on across threads that take the lane in turn; the broker zeroes them when it
// assigns the slot.
//
// Claim lane protocol (see docs/design/ring.md, "stalled and dead publishers"): before each
// claim CAS on a ring's tail, a publisher stores 0 in its lane's claim word, the end position
// the claim would have (claim_end), then, with release, the claim word naming the ring and the
// tail position it claims at (lane_word()); once its CAS has won it sets the word's won bit, and
// after committing it stores 0. One word, so a reader never pairs one claim's ring with another's
// position; the 0 in front makes claim/claim_end a seqlock (a reader re-reads the word). A
// consumer that gives up on a claim sets the word's skipped bit (CAS): the writer checks it
// before it commits. Readers:
//  * the broker, before recycling a ring: no live lane names it => no claim under the ring's old
//    incarnation is still being written;
//  * a consumer whose head is stuck: the lanes naming its ring tell which live writers may still
//    write, and from which position on. A lane whose process is gone (pid + start ticks) is no
//    threat, so recovery needs no broker.
// ---------------------------------------------------------------------------------------------
enum class ClientState : std::uint32_t { free = 0, live = 1 };

// Lane word: bits 63..43 = ring index + 1 (max_subscriptions <= 2^20), bits 42..3 = the claim
// position modulo 2^43 (readers rebuild it relative to a tail they read: claims a lane can
// still be inside lie within a ring's capacity of the tail, far less than 2^43 bytes), bit 0 =
// skipped, bit 1 = won (positions are multiples of 8, so the low bits are free).
inline constexpr unsigned kLanePositionBits = 43;
inline constexpr std::uint64_t kLanePositionMask = (1ull << kLanePositionBits) - 1;
inline constexpr std::uint64_t kLaneSkippedBit = 1;  // set by a consumer that gave up on the claim
inline constexpr std::uint64_t kLaneWonBit = 2;      // set by the writer once its claim CAS won
constexpr std::uint64_t lane_tag(std::uint32_t ring) noexcept { return std::uint64_t{ring + 1} << kLanePositionBits; }
constexpr std::uint64_t lane_word(std::uint64_t tag, std::uint64_t position) noexcept {
  return tag | (position & kLanePositionMask);
}
constexpr std::uint32_t lane_ring_plus1(std::uint64_t word) noexcept {
  return static_cast<std::uint32_t>(word >> kLanePositionBits);
}
/// The full position of a lane word's claim: the value congruent to it nearest at or below `tail`.
constexpr std::uint64_t lane_position(std::uint64_t word, std::uint64_t tail) noexcept {
  return tail - ((tail - (word & ~std::uint64_t{7})) & kLanePositionMask);
}
constexpr bool lane_skipped(std::uint64_t word) noexcept { return (word & kLaneSkippedBit) != 0; }
constexpr bool lane_won(std::uint64_t word) noexcept { return (word & kLaneWonBit) != 0; }

struct alignas(kCacheLine) ClaimLane {
  std::atomic<std::uint64_t> claim;      // lane_word(), or 0 when not claiming
  std::atomic<std::uint64_t> claim_end;  // end position of the claim `claim` names (written first)
  std::atomic<std::uint64_t> published_msgs;
  std::atomic<std::uint64_t> published_bytes;
  std::atomic<std::uint64_t> undelivered_msgs;
  std::uint8_t pad[kCacheLine - 40];
};
static_assert(offsetof(ClaimLane, published_msgs) == 16);
static_assert(offsetof(ClaimLane, undelivered_msgs) == 32);
static_assert(sizeof(ClaimLane) == kCacheLine);

struct alignas(kCacheLine) ClientLayout {
  std::atomic<std::uint32_t> state;
  std::atomic<std::uint32_t> epoch;
  std::atomic<std::uint32_t> pid;
  std::uint32_t uid;
  std::atomic<std::uint64_t> start_ticks;
  std::uint64_t connected_unix_ns;
  char name[kClientNameBytes];
  std::atomic<std::uint32_t> reconnects;
  std::atomic<std::uint32_t> pending_requests;
  std::atomic<std::uint64_t> closed_out_msgs;
  std::atomic<std::uint64_t> closed_out_bytes;
  std::atomic<std::uint64_t> closed_dropped_msgs;
  std::atomic<std::uint32_t> goodbye;
  std::uint8_t reserved[12];
  ClaimLane claim_lanes[kClaimLanes];
};
static_assert(offsetof(ClientLayout, reconnects) == 80);
static_assert(offsetof(ClientLayout, closed_out_msgs) == 88);
static_assert(offsetof(ClientLayout, epoch) == 4);
static_assert(offsetof(ClientLayout, start_ticks) == 16);
static_assert(offsetof(ClientLayout, name) == 32);
static_assert(offsetof(ClientLayout, claim_lanes) == 128);
static_assert(sizeof(ClientLayout) == 128 + kClaimLanes * kCacheLine);

// ---------------------------------------------------------------------------------------------
// SubscriptionLayout (one per subscription slot = one ring; 896 bytes)
//
//  off  size field                 writer    notes
//    0     4 state                 broker    SubscriptionState
//    4     4 owner_client          broker    client slot index of the subscriber
//    8     4 owner_epoch           broker    that slot's epoch when it subscribed
//   12     4 group_len             broker    0 = plain subscription, else queue group length
//   16     4 pattern_len           broker
//   20     4 flags                 broker    kSubscriptionProxy                      (minor >= 3)
//   24     8 reserved
//   32   256 pattern               broker    NUL-terminated
//  288    64 group                 broker    NUL-terminated (queue groups)
//  352     8 slow_consumer_marks   broker    slow-consumer episodes seen here        (minor >= 2)
//  360     8 drops_seen            broker    dropped + abandoned when the broker last looked
//  368     8 subscribed_unix_ns    broker
//  376   136 reserved
//  512     8 tail_word             producers [hot] bit 63 = consumer sleeping, bits 62..0 = tail
//                                            position (bytes claimed, ever; never wraps)
//  520     4 incarnation           broker    [same line] +1 when the subscription is removed
//  640     8 head_position         consumer  [hot] bytes producers may reuse below (= consumed,
//                                            except a skipped record a live writer may still
//                                            touch holds it back); index = position & mask
//  648     8 delivered_msgs        consumer  [same block] messages handed to the application
//  656     8 skipped_records       consumer  [same block] records skipped: writer dead or stalled
//  664     8 delivered_bytes       consumer  [same block] their headers + payload      (minor >= 2)
//  672     8 depth_high_water      consumer  [same block] most bytes seen waiting in the ring
//  768     8 dropped_msgs          producers a full ring dropped a message for this sub
//  776     8 abandoned_msgs        producers a stalled writer found its record skipped
//  784   112 reserved
//
// Positions are 64-bit and only grow (Aeron's rule), so a publisher's cached copy of the head
// can be old but never wrong in the direction that matters. A publisher holding a stale route
// can never claim space in a ring that was recycled for another subscription: removal bumps the
// incarnation and then moves the tail (an RMW), so the stale publisher either reads the new tail
// and with it the new incarnation, or its claim CAS fails (hazard 5, ABA). The sleeping bit lives
// in the tail word so a publisher learns from the value its claim CAS returns whether the
// consumer must be woken, with no extra fence on the hot path (hazard 8; docs/design/ring.md).
// ---------------------------------------------------------------------------------------------
enum class SubscriptionState : std::uint32_t { free = 0, active = 1, quarantined = 2 };

/// The subscription stands for a queue group's members beyond this bus: the NATS bridge shares
/// the group with NATS (bridge/bridge.cpp), so publishers leave the group's pick to NATS, and
/// its ring is never written. Routes list it as a TargetKind::bridge target, first in its group.
inline constexpr std::uint32_t kSubscriptionProxy = 1u << 0;

inline constexpr std::uint64_t kTailSleepingBit = 1ull << 63;
inline constexpr std::uint64_t kTailPositionMask = kTailSleepingBit - 1;

constexpr bool tail_sleeping(std::uint64_t word) noexcept { return (word & kTailSleepingBit) != 0; }
constexpr std::uint64_t tail_position(std::uint64_t word) noexcept { return word & kTailPositionMask; }

struct alignas(kHotBlock) SubscriptionLayout {
  std::atomic<std::uint32_t> state;
  std::uint32_t owner_client;
  std::uint32_t owner_epoch;
  std::uint32_t group_len;
  std::uint32_t pattern_len;
  std::uint32_t flags;  // zero in segments of older brokers
  std::uint8_t reserved0[8];
  char pattern[kPatternBytes];
  char group[kGroupBytes];
  std::atomic<std::uint64_t> slow_consumer_marks;
  std::atomic<std::uint64_t> drops_seen;
  std::atomic<std::uint64_t> subscribed_unix_ns;
  std::uint8_t reserved1[136];
  alignas(kHotBlock) std::atomic<std::uint64_t> tail_word;
  std::atomic<std::uint32_t> incarnation;
  alignas(kHotBlock) std::atomic<std::uint64_t> head_position;
  std::atomic<std::uint64_t> delivered_msgs;   // written with head: no line shared with producers
  std::atomic<std::uint64_t> skipped_records;  // likewise
  std::atomic<std::uint64_t> delivered_bytes;  // likewise
  std::atomic<std::uint64_t> depth_high_water;  // likewise
  alignas(kHotBlock) std::atomic<std::uint64_t> dropped_msgs;
  std::atomic<std::uint64_t> abandoned_msgs;
  std::uint8_t reserved2[112];
};
static_assert(offsetof(SubscriptionLayout, pattern) == 32);
static_assert(offsetof(SubscriptionLayout, group) == 288);
static_assert(offsetof(SubscriptionLayout, tail_word) == 512);
static_assert(offsetof(SubscriptionLayout, incarnation) == 520);
static_assert(offsetof(SubscriptionLayout, head_position) == 640);
static_assert(offsetof(SubscriptionLayout, delivered_msgs) == 648);
static_assert(offsetof(SubscriptionLayout, skipped_records) == 656);
static_assert(offsetof(SubscriptionLayout, slow_consumer_marks) == 352);
static_assert(offsetof(SubscriptionLayout, delivered_bytes) == 664);
static_assert(offsetof(SubscriptionLayout, depth_high_water) == 672);
static_assert(offsetof(SubscriptionLayout, dropped_msgs) == 768);
static_assert(offsetof(SubscriptionLayout, abandoned_msgs) == 776);
static_assert(sizeof(SubscriptionLayout) == 896);

// ---------------------------------------------------------------------------------------------
// RouteLayout (one per resolved literal subject; stride = header + max_fanout * 16, 128-aligned)
//
//  off  size field          writer  notes
//    0     4 version        broker  seqlock: odd while the broker rewrites the targets
//    4     4 state          broker  RouteState
//    8     4 subject_len    broker
//   12     4 target_count   broker  <= max_fanout (checked by readers)
//   16   256 subject        broker  NUL-terminated literal subject
//  272    48 reserved
//  320   16n targets        broker  RouteTarget[max_fanout]: subscription, incarnation, group, kind
//
// A route lists every subscription whose pattern matches the subject. Publishers copy it into
// process memory under the seqlock and re-copy only when `version` changes, so a steady-state
// publish reads one shared line (version) and never walks the subscription table.
// ---------------------------------------------------------------------------------------------
enum class RouteState : std::uint32_t { free = 0, active = 1 };

// What a route target delivers into. Publishers skip kinds they do not know, so a newer broker
// can add targets (the journal's streams, the NATS bridge) without breaking older clients.
// `bridge`: a queue group's proxy (kSubscriptionProxy), first of its group's run: a publisher
// delivers to none of the group's members (NATS picks one, and the bridge brings it back); an
// older client, which skips the kind, picks a local member as before.
enum class TargetKind : std::uint32_t { ring = 0, stream = 1, bridge = 2 };

struct RouteTarget {
  std::atomic<std::uint32_t> subscription;  // slot index (ring), or the kind's own index
  std::atomic<std::uint32_t> incarnation;   // ring incarnation the route was built for
  std::atomic<std::uint32_t> group;         // 0 = plain; else queue-group ordinal within route
  std::atomic<std::uint32_t> kind;          // TargetKind
};
static_assert(sizeof(RouteTarget) == 16);

struct alignas(kHotBlock) RouteLayout {
  std::atomic<std::uint32_t> version;
  std::atomic<std::uint32_t> state;
  std::uint32_t subject_len;
  std::atomic<std::uint32_t> target_count;
  char subject[kPatternBytes];
  std::uint8_t reserved[48];
  // followed by RouteTarget targets[max_fanout]
};
static_assert(offsetof(RouteLayout, target_count) == 12);
static_assert(offsetof(RouteLayout, subject) == 16);
static_assert(sizeof(RouteLayout) == 384);
inline constexpr std::size_t kRouteTargetsOffset = 320;

// ---------------------------------------------------------------------------------------------
// StreamLayout (one per stream the broker serves; 1024 bytes)
//
//  off  size field          writer  notes
//    0     4 version        broker  seqlock: odd while the broker rewrites the entry
//    4     4 state          broker  StreamSlotState
//    8     4 incarnation    broker  +1 each time the slot is given to a stream (route targets
//                                   name it: a target of a removed stream never matches)
//   12     4 name_len       broker
//   16     4 sync           broker  SyncPolicy (0 never, 1 always, 2 interval: the broker's)
//   20     4 reserved
//   24     8 max_msg_size   broker  -1: unlimited
//   32     8 segment_bytes  broker  size of the journal's segment files
//   40     8 stream_id      broker  the journal's id (every segment file carries it)
//   48     8 max_msgs       broker  -1: unlimited; checked by publishers with discard new
//   56     8 max_bytes      broker  -1: unlimited; likewise
//   64   256 name           broker  NUL-terminated
//  320     4 dir_len        broker
//  324     4 usage_version  broker  seqlock of the three usage words below (not of the slot)
//  328     8 removed_msgs   broker  sequences up to the last that are stored no more (deleted,
//                                   lost, or in dropped segments): messages = last_seq - this
//  336     8 first_segment  broker  first sequence of the oldest segment file kept
//  344     8 removed_bytes  broker  bytes of deleted records in the segments kept
//  352    32 reserved
//  384   640 journal_dir    broker  NUL-terminated absolute path of the stream's journal
//
// A route target of kind `stream` names a slot and its incarnation. The publisher maps the
// journal named here once (journal/journal.hpp, attach) and from then on appends to it itself:
// the broker is off the data path for streams as for rings.
// ---------------------------------------------------------------------------------------------
enum class StreamSlotState : std::uint32_t { free = 0, active = 1 };
inline constexpr std::size_t kStreamNameBytes = 256;
inline constexpr std::size_t kJournalDirBytes = 640;

struct StreamLayout {
  std::atomic<std::uint32_t> version;
  std::atomic<std::uint32_t> state;
  std::atomic<std::uint32_t> incarnation;
  std::uint32_t name_len;
  std::atomic<std::uint32_t> sync;
  std::atomic<std::uint32_t> flags;  // kStreamAllowRollup; zero in segments of older brokers
  std::atomic<std::int64_t> max_msg_size;
  std::atomic<std::uint64_t> segment_bytes;
  std::atomic<std::uint64_t> stream_id;
  std::atomic<std::int64_t> max_msgs;   // zero in segments of older brokers: see kStreamDiscardNew
  std::atomic<std::int64_t> max_bytes;
  char name[kStreamNameBytes];
  std::uint32_t dir_len;
  std::atomic<std::uint32_t> usage_version;
  std::atomic<std::uint64_t> removed_msgs;
  std::atomic<std::uint64_t> first_segment;
  std::atomic<std::uint64_t> removed_bytes;
  std::uint8_t reserved2[32];
  char journal_dir[kJournalDirBytes];
};
inline constexpr std::uint32_t kStreamAllowRollup = 1u << 0;  // Nats-Rollup headers are honoured
// Discard new: publishers refuse a message that would take the stream past max_msgs or
// max_bytes (only with this flag set are those two words read).
inline constexpr std::uint32_t kStreamDiscardNew = 1u << 1;
static_assert(offsetof(StreamLayout, incarnation) == 8);
static_assert(offsetof(StreamLayout, flags) == 20);
static_assert(offsetof(StreamLayout, max_msg_size) == 24);
static_assert(offsetof(StreamLayout, stream_id) == 40);
static_assert(offsetof(StreamLayout, name) == 64);
static_assert(offsetof(StreamLayout, max_msgs) == 48);
static_assert(offsetof(StreamLayout, max_bytes) == 56);
static_assert(offsetof(StreamLayout, dir_len) == 320);
static_assert(offsetof(StreamLayout, usage_version) == 324);
static_assert(offsetof(StreamLayout, removed_msgs) == 328);
static_assert(offsetof(StreamLayout, first_segment) == 336);
static_assert(offsetof(StreamLayout, removed_bytes) == 344);
static_assert(offsetof(StreamLayout, journal_dir) == 384);
static_assert(sizeof(StreamLayout) == 1024);

// Sizes the broker was configured with; everything else is derived by compute_geometry().
struct SegmentConfig {
  std::uint32_t max_clients = 64;
  std::uint32_t max_subscriptions = 256;
  std::uint32_t max_routes = 1024;
  std::uint32_t max_fanout = 256;
  std::uint64_t ring_bytes = 4u << 20;   // must hold two max-size records (see ring.md)
  std::uint64_t max_payload = 1u << 20;  // NATS default max_payload
  std::uint32_t max_streams = 64;
};

struct SegmentGeometry {
  std::uint64_t clients_offset, subscriptions_offset, routes_offset, route_stride, rings_offset,
      streams_offset, segment_size;
};

constexpr std::uint64_t align_up(std::uint64_t v, std::uint64_t a) noexcept {
  return (v + a - 1) / a * a;
}

constexpr SegmentGeometry compute_geometry(const SegmentConfig& c) noexcept {
  SegmentGeometry g{};
  g.clients_offset = sizeof(SegmentHeader);
  g.subscriptions_offset =
      align_up(g.clients_offset + std::uint64_t{c.max_clients} * sizeof(ClientLayout), kRegionAlign);
  g.routes_offset = align_up(
      g.subscriptions_offset + std::uint64_t{c.max_subscriptions} * sizeof(SubscriptionLayout),
      kRegionAlign);
  g.route_stride =
      align_up(kRouteTargetsOffset + std::uint64_t{c.max_fanout} * sizeof(RouteTarget), kHotBlock);
  g.rings_offset =
      align_up(g.routes_offset + std::uint64_t{c.max_routes} * g.route_stride, kRegionAlign);
  g.streams_offset = align_up(g.rings_offset + std::uint64_t{c.max_subscriptions} * c.ring_bytes, kRegionAlign);
  g.segment_size = align_up(g.streams_offset + std::uint64_t{c.max_streams} * sizeof(StreamLayout), kRegionAlign);
  return g;
}

/// The region table a segment of this geometry carries (what create() writes and what open()
/// expects to find for the kinds it knows).
struct RegionTable {
  RegionEntry entries[5];
  std::uint32_t count;  // 4 for a segment without streams (minor 0, or max_streams 0)
};
constexpr RegionTable region_table(const SegmentConfig& c, const SegmentGeometry& g) noexcept {
  const auto u32 = [](std::uint64_t v) { return v > 0xFFFF'FFFFull ? 0u : static_cast<std::uint32_t>(v); };
  return RegionTable{{
      {static_cast<std::uint32_t>(RegionKind::clients), 0, g.clients_offset,
       std::uint64_t{c.max_clients} * sizeof(ClientLayout), c.max_clients, u32(sizeof(ClientLayout))},
      {static_cast<std::uint32_t>(RegionKind::subscriptions), 0, g.subscriptions_offset,
       std::uint64_t{c.max_subscriptions} * sizeof(SubscriptionLayout), c.max_subscriptions,
       u32(sizeof(SubscriptionLayout))},
      {static_cast<std::uint32_t>(RegionKind::routes), 0, g.routes_offset,
       std::uint64_t{c.max_routes} * g.route_stride, c.max_routes, u32(g.route_stride)},
      {static_cast<std::uint32_t>(RegionKind::rings), 0, g.rings_offset,
       std::uint64_t{c.max_subscriptions} * c.ring_bytes, c.max_subscriptions, u32(c.ring_bytes)},
      {static_cast<std::uint32_t>(RegionKind::streams), 0, g.streams_offset,
       std::uint64_t{c.max_streams} * sizeof(StreamLayout), c.max_streams, u32(sizeof(StreamLayout))},
  }, c.max_streams == 0 ? 4u : 5u};
}

}  // namespace bus::detail

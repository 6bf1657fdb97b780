// layout_freeze_test.cpp — freezes the shared-memory ABI.
//
// Processes built from different commits share one segment. If this test fails you moved,
// resized or retyped a field another process reads: bump kLayoutMajor in shm/layout.hpp (or
// kLayoutMinor if you only used reserved space), then update the expectations here.
#include <gtest/gtest.h>

#include <cstddef>

#include "proto/control.hpp"
#include "ring/record.hpp"
#include "shm/layout.hpp"

namespace bus::detail {
namespace {

TEST(Layout, should_stay_at_version_2_1) {
  EXPECT_EQ(kLayoutMajor, 2);
  EXPECT_EQ(kLayoutMinor, 3);
  EXPECT_EQ(kSegmentMagic, 0x3130'4745'5353'5542ull);
}

TEST(Layout, segment_header_is_frozen) {
  EXPECT_EQ(sizeof(SegmentHeader), 4096u);
  // Offsets 0..19 are the same in every layout version: any client can read the version and
  // whether its segment was superseded.
  EXPECT_EQ(offsetof(SegmentHeader, magic), 0u);
  EXPECT_EQ(offsetof(SegmentHeader, layout_major), 8u);
  EXPECT_EQ(offsetof(SegmentHeader, layout_minor), 10u);
  EXPECT_EQ(offsetof(SegmentHeader, header_size), 12u);
  EXPECT_EQ(offsetof(SegmentHeader, segment_state), 16u);
  EXPECT_EQ(offsetof(SegmentHeader, region_count), 20u);
  EXPECT_EQ(offsetof(SegmentHeader, segment_size), 24u);
  EXPECT_EQ(offsetof(SegmentHeader, segment_id), 32u);
  EXPECT_EQ(offsetof(SegmentHeader, created_unix_ns), 40u);
  EXPECT_EQ(offsetof(SegmentHeader, owner_uid), 48u);
  EXPECT_EQ(offsetof(SegmentHeader, broker_epoch), 52u);
  EXPECT_EQ(offsetof(SegmentHeader, broker_pid), 56u);
  EXPECT_EQ(offsetof(SegmentHeader, broker_start_ticks), 64u);
  EXPECT_EQ(offsetof(SegmentHeader, max_clients), 72u);
  EXPECT_EQ(offsetof(SegmentHeader, max_subscriptions), 76u);
  EXPECT_EQ(offsetof(SegmentHeader, max_routes), 80u);
  EXPECT_EQ(offsetof(SegmentHeader, max_fanout), 84u);
  EXPECT_EQ(offsetof(SegmentHeader, ring_bytes), 88u);
  EXPECT_EQ(offsetof(SegmentHeader, max_payload), 96u);
  EXPECT_EQ(offsetof(SegmentHeader, max_streams), 104u);
  EXPECT_EQ(offsetof(SegmentHeader, regions), 128u);
  EXPECT_EQ(sizeof(RegionEntry), 32u);
  EXPECT_EQ(kMaxRegions, 16u);
  EXPECT_EQ(offsetof(RegionEntry, kind), 0u);
  EXPECT_EQ(offsetof(RegionEntry, offset), 8u);
  EXPECT_EQ(offsetof(RegionEntry, size), 16u);
  EXPECT_EQ(offsetof(RegionEntry, count), 24u);
  EXPECT_EQ(offsetof(RegionEntry, stride), 28u);
  EXPECT_EQ(static_cast<std::uint32_t>(RegionKind::clients), 1u);
  EXPECT_EQ(static_cast<std::uint32_t>(RegionKind::subscriptions), 2u);
  EXPECT_EQ(static_cast<std::uint32_t>(RegionKind::routes), 3u);
  EXPECT_EQ(static_cast<std::uint32_t>(RegionKind::rings), 4u);
  EXPECT_EQ(static_cast<std::uint32_t>(RegionKind::streams), 6u);
  EXPECT_EQ(static_cast<std::uint32_t>(SegmentState::live), 1u);
  EXPECT_EQ(static_cast<std::uint32_t>(SegmentState::superseded), 2u);
  EXPECT_EQ(offsetof(SegmentHeader, broker_heartbeat_ns), 640u);
  EXPECT_EQ(offsetof(SegmentHeader, registry_generation), 768u);
  EXPECT_EQ(offsetof(SegmentHeader, totals), 896u);
  EXPECT_EQ(sizeof(BusTotals), 128u);
  EXPECT_EQ(offsetof(BusTotals, broker_start_unix_ns), 0u);
  EXPECT_EQ(offsetof(BusTotals, total_connections), 8u);
  EXPECT_EQ(offsetof(BusTotals, departed_in_msgs), 16u);
  EXPECT_EQ(offsetof(BusTotals, departed_in_bytes), 24u);
  EXPECT_EQ(offsetof(BusTotals, departed_out_msgs), 32u);
  EXPECT_EQ(offsetof(BusTotals, departed_out_bytes), 40u);
  EXPECT_EQ(offsetof(BusTotals, departed_dropped_msgs), 48u);
  EXPECT_EQ(offsetof(BusTotals, slow_consumers), 56u);
  EXPECT_EQ(offsetof(BusTotals, departed_undelivered_msgs), 64u);
  EXPECT_EQ(offsetof(BusTotals, events_published), 72u);
  EXPECT_EQ(offsetof(BusTotals, http_port), 80u);
}

TEST(Layout, client_slot_is_frozen) {
  EXPECT_EQ(sizeof(ClientLayout), 2176u);
  EXPECT_EQ(offsetof(ClientLayout, state), 0u);
  EXPECT_EQ(offsetof(ClientLayout, epoch), 4u);
  EXPECT_EQ(offsetof(ClientLayout, pid), 8u);
  EXPECT_EQ(offsetof(ClientLayout, uid), 12u);
  EXPECT_EQ(offsetof(ClientLayout, start_ticks), 16u);
  EXPECT_EQ(offsetof(ClientLayout, connected_unix_ns), 24u);
  EXPECT_EQ(offsetof(ClientLayout, name), 32u);
  EXPECT_EQ(offsetof(ClientLayout, reconnects), 80u);
  EXPECT_EQ(offsetof(ClientLayout, pending_requests), 84u);
  EXPECT_EQ(offsetof(ClientLayout, closed_out_msgs), 88u);
  EXPECT_EQ(offsetof(ClientLayout, closed_out_bytes), 96u);
  EXPECT_EQ(offsetof(ClientLayout, closed_dropped_msgs), 104u);
  EXPECT_EQ(offsetof(ClientLayout, goodbye), 112u);
  EXPECT_EQ(offsetof(ClientLayout, claim_lanes), 128u);
  EXPECT_EQ(sizeof(ClaimLane), 64u);
  EXPECT_EQ(offsetof(ClaimLane, claim), 0u);
  EXPECT_EQ(offsetof(ClaimLane, claim_end), 8u);
  EXPECT_EQ(offsetof(ClaimLane, published_msgs), 16u);
  EXPECT_EQ(offsetof(ClaimLane, published_bytes), 24u);
  EXPECT_EQ(offsetof(ClaimLane, undelivered_msgs), 32u);
  EXPECT_EQ(kLaneSkippedBit, 1u);
  EXPECT_EQ(kLanePositionBits, 43u);
  const std::uint64_t tail = (7ull << 43) + 4096;
  const std::uint64_t word = lane_word(lane_tag(5), tail - 104);
  EXPECT_EQ(lane_ring_plus1(word), 6u);
  EXPECT_EQ(lane_position(word, tail), tail - 104) << "positions are rebuilt relative to the tail";
  EXPECT_EQ(lane_position(word | kLaneSkippedBit, tail), tail - 104) << "the skipped bit is not part of it";
  EXPECT_TRUE(lane_skipped(word | kLaneSkippedBit));
  EXPECT_FALSE(lane_skipped(word));
  EXPECT_EQ(lane_position(lane_word(lane_tag(0), tail), tail), tail);
  EXPECT_EQ(kClaimLanes, 32u);
}

TEST(Layout, subscription_slot_is_frozen) {
  EXPECT_EQ(sizeof(SubscriptionLayout), 896u);
  EXPECT_EQ(offsetof(SubscriptionLayout, state), 0u);
  EXPECT_EQ(offsetof(SubscriptionLayout, owner_client), 4u);
  EXPECT_EQ(offsetof(SubscriptionLayout, owner_epoch), 8u);
  EXPECT_EQ(offsetof(SubscriptionLayout, group_len), 12u);
  EXPECT_EQ(offsetof(SubscriptionLayout, pattern_len), 16u);
  EXPECT_EQ(offsetof(SubscriptionLayout, flags), 20u);
  EXPECT_EQ(offsetof(SubscriptionLayout, pattern), 32u);
  EXPECT_EQ(offsetof(SubscriptionLayout, group), 288u);
  EXPECT_EQ(offsetof(SubscriptionLayout, slow_consumer_marks), 352u);
  EXPECT_EQ(offsetof(SubscriptionLayout, drops_seen), 360u);
  EXPECT_EQ(offsetof(SubscriptionLayout, subscribed_unix_ns), 368u);
  EXPECT_EQ(offsetof(SubscriptionLayout, tail_word), 512u);
  EXPECT_EQ(offsetof(SubscriptionLayout, incarnation), 520u);
  EXPECT_EQ(offsetof(SubscriptionLayout, head_position), 640u);
  EXPECT_EQ(offsetof(SubscriptionLayout, delivered_msgs), 648u);
  EXPECT_EQ(offsetof(SubscriptionLayout, skipped_records), 656u);
  EXPECT_EQ(offsetof(SubscriptionLayout, delivered_bytes), 664u);
  EXPECT_EQ(offsetof(SubscriptionLayout, depth_high_water), 672u);
  EXPECT_EQ(offsetof(SubscriptionLayout, dropped_msgs), 768u);
  EXPECT_EQ(offsetof(SubscriptionLayout, abandoned_msgs), 776u);
  EXPECT_EQ(kTailSleepingBit, 1ull << 63);
}

TEST(Layout, hot_words_do_not_share_cache_lines) {
  // Producers hammer tail_word, the consumer head_position, drops are rare: 128-byte apart.
  EXPECT_GE(offsetof(SubscriptionLayout, head_position) - offsetof(SubscriptionLayout, tail_word), 128u);
  EXPECT_GE(offsetof(SubscriptionLayout, dropped_msgs) - offsetof(SubscriptionLayout, head_position), 128u);
  EXPECT_EQ(alignof(SubscriptionLayout) % 128, 0u);
  EXPECT_EQ(offsetof(SegmentHeader, registry_generation) - offsetof(SegmentHeader, broker_heartbeat_ns), 128u);
}

TEST(Layout, route_and_record_are_frozen) {
  EXPECT_EQ(sizeof(RouteLayout), 384u);
  EXPECT_EQ(offsetof(RouteLayout, version), 0u);
  EXPECT_EQ(offsetof(RouteLayout, state), 4u);
  EXPECT_EQ(offsetof(RouteLayout, subject_len), 8u);
  EXPECT_EQ(offsetof(RouteLayout, target_count), 12u);
  EXPECT_EQ(offsetof(RouteLayout, subject), 16u);
  EXPECT_EQ(kRouteTargetsOffset, 320u);
  EXPECT_EQ(sizeof(RouteTarget), 16u);
  EXPECT_EQ(offsetof(RouteTarget, subscription), 0u);
  EXPECT_EQ(offsetof(RouteTarget, incarnation), 4u);
  EXPECT_EQ(offsetof(RouteTarget, group), 8u);
  EXPECT_EQ(offsetof(RouteTarget, kind), 12u);
  EXPECT_EQ(static_cast<std::uint32_t>(TargetKind::ring), 0u);
  EXPECT_EQ(static_cast<std::uint32_t>(TargetKind::stream), 1u);
  EXPECT_EQ(static_cast<std::uint32_t>(TargetKind::bridge), 2u);
  EXPECT_EQ(sizeof(RecordHeader), 32u);
  EXPECT_EQ(offsetof(RecordHeader, state), 0u);
  EXPECT_EQ(offsetof(RecordHeader, length), 8u);
  EXPECT_EQ(offsetof(RecordHeader, flags), 12u);
  EXPECT_EQ(offsetof(RecordHeader, subject_len), 14u);
  EXPECT_EQ(offsetof(RecordHeader, reply_len), 15u);
  EXPECT_EQ(offsetof(RecordHeader, headers_len), 16u);
  EXPECT_EQ(offsetof(RecordHeader, payload_len), 20u);
  EXPECT_EQ(offsetof(RecordHeader, producer_client), 24u);
  EXPECT_EQ(offsetof(RecordHeader, origin), 26u);
  EXPECT_EQ(offsetof(RecordHeader, producer_epoch), 28u);
  EXPECT_EQ(kRecordWriting, 1u);
  EXPECT_EQ(kRecordMessage, 2u);
  EXPECT_EQ(kRecordPadding, 3u);
  EXPECT_EQ(kRecordSkipped, 4u);
  EXPECT_EQ(kFlagTimestamp, 1u);
  EXPECT_EQ(kFlagSequence, 2u);
  EXPECT_EQ(record_bytes(1, 0, 0, 0), 40u) << "a message using no option pays nothing for them";
  EXPECT_EQ(record_bytes(1, 0, 0, 0, kFlagTimestamp | kFlagSequence), 56u);
  EXPECT_EQ(sizeof(ControlMessage), 376u);
  EXPECT_EQ(kControlVersion, 2u);
  EXPECT_EQ(offsetof(ControlMessage, u64), 32u);
  EXPECT_EQ(offsetof(ControlMessage, u64b), 40u);
  EXPECT_EQ(offsetof(ControlMessage, str1_len), 48u);
  EXPECT_EQ(offsetof(ControlMessage, str1), 56u);
  EXPECT_EQ(offsetof(ControlMessage, str2), 312u);
}

TEST(Layout, geometry_keeps_regions_aligned_and_disjoint) {
  SegmentConfig c;
  c.max_clients = 3;
  c.max_subscriptions = 5;
  c.max_routes = 7;
  c.max_fanout = 5;
  c.ring_bytes = 1 << 16;
  const SegmentGeometry g = compute_geometry(c);
  EXPECT_EQ(g.clients_offset, 4096u);
  EXPECT_EQ(g.subscriptions_offset % 4096, 0u);
  EXPECT_GE(g.subscriptions_offset, g.clients_offset + 3 * sizeof(ClientLayout));
  EXPECT_GE(g.routes_offset, g.subscriptions_offset + 5 * sizeof(SubscriptionLayout));
  EXPECT_EQ(g.route_stride % 128, 0u);
  EXPECT_GE(g.route_stride, kRouteTargetsOffset + 5 * sizeof(RouteTarget));
  EXPECT_GE(g.rings_offset, g.routes_offset + 7 * g.route_stride);
  EXPECT_EQ(g.rings_offset % 4096, 0u);
  EXPECT_EQ(g.streams_offset, g.rings_offset + 5 * (1u << 16));
  EXPECT_EQ(g.segment_size, g.streams_offset + 64 * sizeof(StreamLayout));
  c.max_streams = 0;  // a minor 0 segment: it ends where its rings end, as it always did
  EXPECT_EQ(compute_geometry(c).segment_size, g.rings_offset + 5 * (1u << 16));
  EXPECT_EQ(region_table(c, compute_geometry(c)).count, 4u);
}

TEST(Layout, stream_slot_is_frozen) {
  EXPECT_EQ(sizeof(StreamLayout), 1024u);
  EXPECT_EQ(offsetof(StreamLayout, version), 0u);
  EXPECT_EQ(offsetof(StreamLayout, state), 4u);
  EXPECT_EQ(offsetof(StreamLayout, incarnation), 8u);
  EXPECT_EQ(offsetof(StreamLayout, name_len), 12u);
  EXPECT_EQ(offsetof(StreamLayout, sync), 16u);
  EXPECT_EQ(offsetof(StreamLayout, max_msg_size), 24u);
  EXPECT_EQ(offsetof(StreamLayout, segment_bytes), 32u);
  EXPECT_EQ(offsetof(StreamLayout, stream_id), 40u);
  EXPECT_EQ(offsetof(StreamLayout, name), 64u);
  EXPECT_EQ(offsetof(StreamLayout, max_msgs), 48u);
  EXPECT_EQ(offsetof(StreamLayout, max_bytes), 56u);
  EXPECT_EQ(offsetof(StreamLayout, dir_len), 320u);
  EXPECT_EQ(offsetof(StreamLayout, usage_version), 324u);
  EXPECT_EQ(offsetof(StreamLayout, removed_msgs), 328u);
  EXPECT_EQ(offsetof(StreamLayout, first_segment), 336u);
  EXPECT_EQ(offsetof(StreamLayout, removed_bytes), 344u);
  EXPECT_EQ(kStreamDiscardNew, 2u);
  EXPECT_EQ(offsetof(StreamLayout, journal_dir), 384u);
  EXPECT_EQ(static_cast<std::uint32_t>(StreamSlotState::active), 1u);
}

}  // namespace
}  // namespace bus::detail

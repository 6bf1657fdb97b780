// Acknowledgement subjects (consumer/config.cpp, client/inbox.cpp): the consumer engine hands
// out JetStream's v2 form with its ack ring's address as the last token; the metadata parser
// reads v1 and v2 (a NATS client's or bridge's subjects), and only a well-formed v2 subject
// yields an address a publisher would deliver to directly.
#include <gtest/gtest.h>

#include "client/inbox.hpp"
#include "consumer/config.hpp"

namespace bus::detail {
namespace {

MessageMetadata sample() {
  MessageMetadata m;
  m.num_delivered = 2;
  m.stream_seq = 41;
  m.consumer_seq = 7;
  m.time_ns = 1700000000123456789;
  m.num_pending = 3;
  return m;
}

TEST(AckSubject, should_write_the_v2_form_with_the_ring_address_and_read_it_back) {
  const std::string address = ring_address(0x1f, 0x2a);
  EXPECT_EQ(address, "1f-2a");
  const std::string s = consumer::ack_subject("ORDERS", "worker", sample(), address);
  EXPECT_EQ(s, "$JS.ACK._.bus.ORDERS.worker.2.41.7.1700000000123456789.3.1f-2a");
  auto meta = consumer::parse_ack_subject(s);
  ASSERT_TRUE(meta);
  EXPECT_EQ(meta->stream, "ORDERS");
  EXPECT_EQ(meta->consumer, "worker");
  EXPECT_EQ(meta->num_delivered, 2u);
  EXPECT_EQ(meta->stream_seq, 41u);
  EXPECT_EQ(meta->consumer_seq, 7u);
  EXPECT_EQ(meta->time_ns, 1700000000123456789);
  EXPECT_EQ(meta->num_pending, 3u);
  auto to = parse_ack_address(s);
  ASSERT_TRUE(to);
  EXPECT_EQ(to->ring, 0x1fu);
  EXPECT_EQ(to->incarnation, 0x2au);
  EXPECT_EQ(to->pattern_prefix, "$JS.ACK.");
}

TEST(AckSubject, should_read_the_v1_form_and_v2_without_a_token_but_address_neither) {
  const std::string v1 = consumer::ack_subject("S", "C", sample());
  EXPECT_EQ(v1, "$JS.ACK.S.C.2.41.7.1700000000123456789.3");
  ASSERT_TRUE(consumer::parse_ack_subject(v1));
  EXPECT_EQ(consumer::parse_ack_subject(v1)->stream_seq, 41u);
  EXPECT_FALSE(parse_ack_address(v1)) << "routed, as any subject";
  const std::string v2_no_token = "$JS.ACK.hub.ACCHASH.S.C.2.41.7.99.3";
  ASSERT_TRUE(consumer::parse_ack_subject(v2_no_token));
  EXPECT_EQ(consumer::parse_ack_subject(v2_no_token)->consumer, "C");
  EXPECT_FALSE(parse_ack_address(v2_no_token));
}

TEST(AckSubject, should_refuse_malformed_subjects) {
  for (const char* bad : {"$JS.ACK.S.C.2.41.7.99", "$JS.ACK.S.C.2.x.7.99.3", "$JS.ACK..C.2.41.7.99.3",
                          "$JS.ACK.a.b.S.C.2.41.7.99.3.t.extra", "$JS.API.S.C.2.41.7.99.3", "$JS.ACK.S.C.2.41.7.99.3."}) {
    EXPECT_FALSE(consumer::parse_ack_subject(bad)) << bad;
  }
  // An address token that is not "<hex>-<hex>" within 32 bits addresses nothing.
  for (const char* bad : {"$JS.ACK._.bus.S.C.1.1.1.1.1.zz-1", "$JS.ACK._.bus.S.C.1.1.1.1.1.1f",
                          "$JS.ACK._.bus.S.C.1.1.1.1.1.123456789-1", "$JS.ACK._.bus.S.C.1.1.1.1.1.-1"}) {
    EXPECT_FALSE(parse_ack_address(bad)) << bad;
  }
}

}  // namespace
}  // namespace bus::detail

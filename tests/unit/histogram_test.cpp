// tests/unit/histogram_test.cpp — LatencyHistogram (tools/common/histogram.hpp): bucket layout,
// percentiles on known distributions against exact nearest-rank values (within the bucket's
// relative error), max/min, merge, record(v, n), reset and the empty histogram.
#include "histogram.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <memory>
#include <random>
#include <type_traits>
#include <vector>

namespace bus::bench {
namespace {

using H = LatencyHistogram;
constexpr std::uint64_t kU64Max = std::numeric_limits<std::uint64_t>::max();

// Fixed-size and owning no heap memory: record() can only touch the inline array.
static_assert(std::is_trivially_copyable_v<H>);

// Exact nearest-rank percentile of a sorted sample: the value at rank ceil(p/100 * n).
std::uint64_t exact_percentile(const std::vector<std::uint64_t>& sorted, double p) {
  const auto n = static_cast<double>(sorted.size());
  auto rank = static_cast<std::size_t>(std::ceil(p / 100.0 * n - 1e-9));
  rank = std::clamp<std::size_t>(rank, 1, sorted.size());
  return sorted[rank - 1];
}

void expect_close(std::uint64_t got, std::uint64_t want, double p) {
  const double tolerance = static_cast<double>(want) * H::kMaxRelativeError;
  EXPECT_LE(std::fabs(static_cast<double>(got) - static_cast<double>(want)), tolerance)
      << "p" << p << ": got " << got << ", exact " << want;
}

// Records every value and checks the usual percentiles against the exact ones.
void check_distribution(std::vector<std::uint64_t> values) {
  auto h = std::make_unique<H>();
  for (std::uint64_t v : values) h->record(v);
  std::sort(values.begin(), values.end());
  ASSERT_EQ(h->count(), values.size());
  EXPECT_EQ(h->min(), values.front());
  EXPECT_EQ(h->max(), values.back());
  for (double p : {1.0, 10.0, 50.0, 90.0, 99.0, 99.9, 99.99}) {
    expect_close(h->percentile(p), exact_percentile(values, p), p);
  }
  EXPECT_EQ(h->percentile(100), values.back());
}

TEST(HistogramBuckets, SmallValuesAreExact) {
  for (std::uint64_t v = 0; v < 2 * H::kSubBuckets; ++v) {
    EXPECT_EQ(H::bucket_index(v), v);
    EXPECT_EQ(H::bucket_lowest(v), v);
    EXPECT_EQ(H::bucket_highest(v), v);
  }
}

TEST(HistogramBuckets, ContiguousAndWithinRelativeError) {
  for (std::size_t i = 0; i + 1 < H::kBucketCount; ++i) {
    ASSERT_EQ(H::bucket_highest(i) + 1, H::bucket_lowest(i + 1)) << "gap after bucket " << i;
    const double width = static_cast<double>(H::bucket_highest(i) - H::bucket_lowest(i)) + 1;
    ASSERT_LE(width, std::max(1.0, static_cast<double>(H::bucket_lowest(i)) * H::kMaxRelativeError))
        << "bucket " << i;
  }
  EXPECT_EQ(H::bucket_lowest(0), 0u);
  EXPECT_EQ(H::bucket_highest(H::kBucketCount - 1), kU64Max);
}

TEST(HistogramBuckets, EveryValueLandsInsideItsBucket) {
  std::mt19937_64 rng(42);
  for (int i = 0; i < 100000; ++i) {
    const std::uint64_t v = rng() >> (rng() % 64);  // spread over all magnitudes
    const std::size_t b = H::bucket_index(v);
    ASSERT_LT(b, H::kBucketCount);
    ASSERT_LE(H::bucket_lowest(b), v);
    ASSERT_GE(H::bucket_highest(b), v);
  }
  for (std::uint64_t v : {std::uint64_t{128}, std::uint64_t{255}, std::uint64_t{256},
                          std::uint64_t{1} << 40, kU64Max - 1, kU64Max}) {
    const std::size_t b = H::bucket_index(v);
    EXPECT_LE(H::bucket_lowest(b), v);
    EXPECT_GE(H::bucket_highest(b), v);
  }
}

TEST(Histogram, EmptyHistogram) {
  const auto h = std::make_unique<H>();
  EXPECT_EQ(h->count(), 0u);
  EXPECT_EQ(h->min(), 0u);
  EXPECT_EQ(h->max(), 0u);
  EXPECT_EQ(h->mean(), 0.0);
  for (double p : {0.0, 50.0, 99.9, 100.0}) EXPECT_EQ(h->percentile(p), 0u);
}

TEST(Histogram, SingleValue) {
  auto h = std::make_unique<H>();
  h->record(123456);
  EXPECT_EQ(h->count(), 1u);
  // Clamped to [min, max], so a lone value comes back exactly.
  for (double p : {0.0, 50.0, 99.0, 99.9, 100.0}) EXPECT_EQ(h->percentile(p), 123456u);
  EXPECT_DOUBLE_EQ(h->mean(), 123456.0);
}

TEST(Histogram, ExactBelow128) {
  auto h = std::make_unique<H>();
  for (std::uint64_t v = 1; v <= 100; ++v) h->record(v);
  EXPECT_EQ(h->percentile(50), 50u);
  EXPECT_EQ(h->percentile(90), 90u);
  EXPECT_EQ(h->percentile(99), 99u);
  EXPECT_EQ(h->percentile(99.9), 100u);
  EXPECT_EQ(h->percentile(100), 100u);
  EXPECT_EQ(h->percentile(0), 1u);
  EXPECT_DOUBLE_EQ(h->mean(), 50.5);
}

TEST(Histogram, UniformDistribution) {
  std::vector<std::uint64_t> values;
  for (std::uint64_t v = 1; v <= 1'000'000; ++v) values.push_back(v);
  check_distribution(std::move(values));
}

TEST(Histogram, ExponentialLatencies) {
  std::mt19937_64 rng(7);
  std::exponential_distribution<double> dist(1.0 / 300.0);  // mean 300 ns
  std::vector<std::uint64_t> values;
  for (int i = 0; i < 200000; ++i) values.push_back(50 + static_cast<std::uint64_t>(dist(rng)));
  check_distribution(std::move(values));
}

TEST(Histogram, LogUniformOverManyDecades) {
  std::mt19937_64 rng(11);
  std::uniform_real_distribution<double> exponent(0.0, 12.0);  // 1 ns .. 1 s
  std::vector<std::uint64_t> values;
  for (int i = 0; i < 200000; ++i) {
    values.push_back(static_cast<std::uint64_t>(std::pow(10.0, exponent(rng))));
  }
  check_distribution(std::move(values));
}

TEST(Histogram, MaxIsExactAndTailIsSeen) {
  auto h = std::make_unique<H>();
  for (int i = 0; i < 999; ++i) h->record(100);
  h->record(6'000'000'123);  // one 6 s preemption among 100 ns samples
  EXPECT_EQ(h->max(), 6'000'000'123u);
  EXPECT_EQ(h->percentile(100), 6'000'000'123u);
  EXPECT_EQ(h->percentile(99.9), 100u);  // rank 999 of 1000 is still a 100
  EXPECT_EQ(h->percentile(99.95), 6'000'000'123u);  // clamped to max within its bucket
  h->record(kU64Max);
  EXPECT_EQ(h->max(), kU64Max);
  EXPECT_EQ(h->percentile(100), kU64Max);
}

TEST(Histogram, RecordNEqualsRepeatedRecord) {
  auto a = std::make_unique<H>();
  auto b = std::make_unique<H>();
  a->record(5000, 7);
  a->record(12, 0);  // n = 0 records nothing
  for (int i = 0; i < 7; ++i) b->record(5000);
  EXPECT_EQ(a->count(), 7u);
  EXPECT_EQ(a->count(), b->count());
  EXPECT_EQ(a->min(), b->min());
  EXPECT_EQ(a->percentile(50), b->percentile(50));
  EXPECT_DOUBLE_EQ(a->mean(), b->mean());
}

TEST(Histogram, MergeEqualsRecordingEverything) {
  std::mt19937_64 rng(3);
  std::lognormal_distribution<double> dist(5.0, 1.0);
  auto all = std::make_unique<H>();
  auto left = std::make_unique<H>();
  auto right = std::make_unique<H>();
  for (int i = 0; i < 100000; ++i) {
    const auto v = static_cast<std::uint64_t>(dist(rng));
    all->record(v);
    (i % 3 == 0 ? *left : *right).record(v);
  }
  left->merge(*right);
  EXPECT_EQ(left->count(), all->count());
  EXPECT_EQ(left->min(), all->min());
  EXPECT_EQ(left->max(), all->max());
  EXPECT_DOUBLE_EQ(left->mean(), all->mean());
  for (double p : {0.0, 50.0, 90.0, 99.0, 99.9, 100.0}) {
    EXPECT_EQ(left->percentile(p), all->percentile(p)) << "p" << p;
  }
}

TEST(Histogram, MergeWithEmpty) {
  auto h = std::make_unique<H>();
  auto empty = std::make_unique<H>();
  h->record(1000);
  h->record(3000);
  h->merge(*empty);  // no-op: empty's min sentinel must not leak in
  EXPECT_EQ(h->count(), 2u);
  EXPECT_EQ(h->min(), 1000u);
  EXPECT_EQ(h->max(), 3000u);

  empty->merge(*h);  // into an empty one
  EXPECT_EQ(empty->count(), 2u);
  EXPECT_EQ(empty->min(), 1000u);
  EXPECT_EQ(empty->max(), 3000u);
  EXPECT_EQ(empty->percentile(50), h->percentile(50));
}

TEST(Histogram, ResetEmpties) {
  auto h = std::make_unique<H>();
  h->record(42);
  h->record(1'000'000);
  h->reset();
  EXPECT_EQ(h->count(), 0u);
  EXPECT_EQ(h->max(), 0u);
  EXPECT_EQ(h->percentile(50), 0u);
  h->record(7);
  EXPECT_EQ(h->min(), 7u);
  EXPECT_EQ(h->percentile(50), 7u);
}

}  // namespace
}  // namespace bus::bench

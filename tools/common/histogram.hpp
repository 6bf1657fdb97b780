// tools/common/histogram.hpp — an HDR-style, log-bucketed latency histogram of nanosecond values.
//
// Provides LatencyHistogram:
//   record(ns) / record(ns, n)   O(1), no allocation, no branches on the bucket search
//   merge(other), reset()
//   count(), min(), max(), mean()
//   percentile(p)                p in [0, 100]: p50, p90, p99, p99.9 ...; percentile(100) == max()
//
// Layout: values below 2 * kSubBuckets (128) each get an exact bucket; above that every power of
// two [2^m, 2^(m+1)) is split into kSubBuckets (64) equal buckets. A bucket's width is therefore
// at most 1/64 of its lowest value, so a reported percentile lies in the same bucket as the exact
// nearest-rank value and differs from it by less than kMaxRelativeError (1/64 = 1.56%) of it.
// The whole uint64 range is covered: 59 * 64 = 3776 counters, ~30 KiB, fixed at compile time.
// (Heap- or static-allocate it; it is a bit large for a small thread stack.)
//
// Not thread-safe: one writer per histogram; merge per-thread histograms afterwards.
#pragma once

#include <algorithm>
#include <array>
#include <bit>
#include <cstddef>
#include <cstdint>
#include <limits>

namespace bus::bench {

class LatencyHistogram {
 public:
  static constexpr unsigned kSubBucketBits = 6;
  static constexpr std::uint64_t kSubBuckets = std::uint64_t{1} << kSubBucketBits;  // 64
  static constexpr std::size_t kBucketCount = (64 - kSubBucketBits + 1) * kSubBuckets;  // 3776
  /// Upper bound of (bucket width / bucket's lowest value) for every inexact bucket.
  static constexpr double kMaxRelativeError = 1.0 / static_cast<double>(kSubBuckets);

  /// Bucket of a value: shift = how many low bits the bucket ignores; index = (shift << 6) + the
  /// value's top 7 significant bits (64..127), which is contiguous with the exact range [0, 128).
  static constexpr std::size_t bucket_index(std::uint64_t value) noexcept {
    const int width = std::bit_width(value);  // 0 for value 0
    const int shift = std::max(0, width - static_cast<int>(kSubBucketBits) - 1);
    return (static_cast<std::size_t>(shift) << kSubBucketBits) +
           static_cast<std::size_t>(value >> shift);
  }
  /// Smallest value that lands in bucket `index`.
  static constexpr std::uint64_t bucket_lowest(std::size_t index) noexcept {
    const auto [shift, sub] = split(index);
    return sub << shift;
  }
  /// Largest value that lands in bucket `index` (wraps to UINT64_MAX for the last bucket).
  static constexpr std::uint64_t bucket_highest(std::size_t index) noexcept {
    const auto [shift, sub] = split(index);
    return ((sub + 1) << shift) - 1;
  }

  void record(std::uint64_t ns) noexcept { record(ns, 1); }

  void record(std::uint64_t ns, std::uint64_t n) noexcept {
    if (n == 0) return;
    counts_[bucket_index(ns)] += n;
    count_ += n;
    sum_ += ns * n;  // wraps only after ~584 years of summed latency
    min_ = std::min(min_, ns);
    max_ = std::max(max_, ns);
  }

  void merge(const LatencyHistogram& other) noexcept {
    if (other.count_ == 0) return;
    for (std::size_t i = 0; i < kBucketCount; ++i) counts_[i] += other.counts_[i];
    count_ += other.count_;
    sum_ += other.sum_;
    min_ = std::min(min_, other.min_);
    max_ = std::max(max_, other.max_);
  }

  void reset() noexcept {
    counts_.fill(0);  // in place: no 30 KiB temporary on the stack
    count_ = 0;
    sum_ = 0;
    min_ = std::numeric_limits<std::uint64_t>::max();
    max_ = 0;
  }

  std::uint64_t count() const noexcept { return count_; }
  /// Exact smallest / largest recorded value; 0 when empty.
  std::uint64_t min() const noexcept { return count_ == 0 ? 0 : min_; }
  std::uint64_t max() const noexcept { return max_; }
  /// Exact arithmetic mean; 0 when empty.
  double mean() const noexcept {
    return count_ == 0 ? 0.0 : static_cast<double>(sum_) / static_cast<double>(count_);
  }

  /// Nearest-rank percentile: the value at rank ceil(p/100 * count). Returns the midpoint of the
  /// bucket holding that rank, clamped to [min(), max()]; exact for values below 128, for p <= 0
  /// (min) and for p >= 100 (max). 0 when empty.
  std::uint64_t percentile(double p) const noexcept {
    if (count_ == 0) return 0;
    if (!(p > 0.0)) return min_;  // also catches NaN
    if (p >= 100.0) return max_;
    const double exact_rank = p / 100.0 * static_cast<double>(count_);
    auto rank = static_cast<std::uint64_t>(exact_rank);
    // ceil, tolerant of p/100 not being exact in binary (99.9 / 100 * 1000 = 999.0000000000001)
    if (exact_rank - static_cast<double>(rank) > 1e-9 * std::max(1.0, exact_rank)) ++rank;
    rank = std::clamp<std::uint64_t>(rank, 1, count_);
    std::uint64_t seen = 0;
    for (std::size_t i = 0; i < kBucketCount; ++i) {
      seen += counts_[i];
      if (seen >= rank) {
        const std::uint64_t lo = bucket_lowest(i);
        const std::uint64_t mid = lo + (bucket_highest(i) - lo) / 2;
        return std::clamp(mid, min_, max_);
      }
    }
    return max_;  // unreachable while count_ equals the sum of counts_
  }

 private:
  struct Split {
    int shift;
    std::uint64_t sub;
  };
  static constexpr Split split(std::size_t index) noexcept {
    if (index < 2 * kSubBuckets) return {0, index};
    return {static_cast<int>(index >> kSubBucketBits) - 1,
            (index & (kSubBuckets - 1)) + kSubBuckets};
  }

  std::array<std::uint64_t, kBucketCount> counts_{};
  std::uint64_t count_ = 0;
  std::uint64_t sum_ = 0;
  std::uint64_t min_ = std::numeric_limits<std::uint64_t>::max();
  std::uint64_t max_ = 0;
};

static_assert(LatencyHistogram::bucket_index(127) == 127);
static_assert(LatencyHistogram::bucket_index(128) == 128);
static_assert(LatencyHistogram::bucket_lowest(128) == 128);
static_assert(LatencyHistogram::bucket_highest(128) == 129);
static_assert(LatencyHistogram::bucket_index(std::numeric_limits<std::uint64_t>::max()) ==
              LatencyHistogram::kBucketCount - 1);
static_assert(LatencyHistogram::bucket_highest(LatencyHistogram::kBucketCount - 1) ==
              std::numeric_limits<std::uint64_t>::max());

}  // namespace bus::bench

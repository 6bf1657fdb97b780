// bench/bench_match.cpp — what subject routing costs the broker per publish.
//
// Answers: how long does the Sublist take to resolve one literal subject against 10,000
// subscriptions (mostly unrelated, a few wildcard hits), compared with scanning every
// pattern; and what one `subject_matches` pair and one `validate_publish_subject` cost.
#include <benchmark/benchmark.h>

#include <cstdint>
#include <cstdlib>
#include <string>
#include <vector>

#include "subject/subject.hpp"
#include "subject/sublist.hpp"

namespace {

using bus::detail::Sublist;

constexpr std::uint32_t kSubscriptions = 10'000;
constexpr const char* kHotSubject = "svc.4242.req";

// 10,000 patterns: 9,000 literal service subjects (one of them kHotSubject), 990
// wildcards under unrelated prefixes, and 10 wildcards that all match kHotSubject.
std::vector<std::string> make_patterns() {
  std::vector<std::string> patterns;
  patterns.reserve(kSubscriptions);
  for (int i = 0; i < 9'000; ++i) patterns.push_back("svc." + std::to_string(i) + ".req");
  for (int i = 0; i < 495; ++i) {
    patterns.push_back("metrics.host" + std::to_string(i) + ".*");
    patterns.push_back("logs.app" + std::to_string(i) + ".>");
  }
  for (const char* hit : {"svc.*.req", "svc.>", ">", "*.4242.req", "svc.4242.*", "*.*.req", "svc.*.>", "*.>",
                          "svc.4242.>", "*.*.*"}) {
    patterns.emplace_back(hit);
  }
  return patterns;
}

const std::vector<std::string>& patterns() {
  static const std::vector<std::string> kPatterns = make_patterns();
  return kPatterns;
}

const Sublist& populated_sublist() {
  static const Sublist kSublist = [] {
    Sublist sublist;
    std::uint32_t id = 0;
    for (const std::string& p : patterns()) {
      if (!sublist.insert(p, id++)) std::abort();  // a broken fixture would measure nothing
    }
    return sublist;
  }();
  return kSublist;
}

void BM_SublistMatch10k(benchmark::State& state, const char* subject) {
  const Sublist& sublist = populated_sublist();
  std::vector<std::uint32_t> out;
  out.reserve(64);
  for (auto _ : state) {
    out.clear();
    sublist.match(subject, out);
    benchmark::DoNotOptimize(out.data());
    benchmark::ClobberMemory();
  }
  state.counters["matches"] = static_cast<double>(out.size());
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK_CAPTURE(BM_SublistMatch10k, hot_subject, kHotSubject);
BENCHMARK_CAPTURE(BM_SublistMatch10k, unrelated_subject, "orders.eu.created");
BENCHMARK_CAPTURE(BM_SublistMatch10k, deep_subject, "logs.app7.web.eu.pod3.stderr");

// The baseline the trie exists to beat: test every pattern in turn.
void BM_BruteForceMatch10k(benchmark::State& state) {
  const std::vector<std::string>& all = patterns();
  std::vector<std::uint32_t> out;
  out.reserve(64);
  for (auto _ : state) {
    out.clear();
    for (std::uint32_t id = 0; id < all.size(); ++id) {
      if (bus::detail::subject_matches(all[id], kHotSubject)) out.push_back(id);
    }
    benchmark::DoNotOptimize(out.data());
  }
  state.counters["matches"] = static_cast<double>(out.size());
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_BruteForceMatch10k);

void BM_SubjectMatches(benchmark::State& state, const char* pattern, const char* subject) {
  const std::string p = pattern;
  const std::string s = subject;
  bool matched = false;
  for (auto _ : state) {
    benchmark::DoNotOptimize(p.data());
    benchmark::DoNotOptimize(s.data());
    matched = bus::detail::subject_matches(p, s);
    benchmark::DoNotOptimize(matched);
  }
  state.counters["matched"] = matched ? 1 : 0;
}
BENCHMARK_CAPTURE(BM_SubjectMatches, literal_equal, "orders.eu-west.created", "orders.eu-west.created");
BENCHMARK_CAPTURE(BM_SubjectMatches, literal_first_token_differs, "metrics.eu-west.created",
                  "orders.eu-west.created");
BENCHMARK_CAPTURE(BM_SubjectMatches, star_middle, "orders.*.created", "orders.eu-west.created");
BENCHMARK_CAPTURE(BM_SubjectMatches, full_wildcard_deep, "orders.>", "orders.eu-west.zone-b.rack-7.host-12.created");

void BM_ValidatePublishSubject(benchmark::State& state, std::string subject) {
  bool ok = false;
  for (auto _ : state) {
    benchmark::DoNotOptimize(subject.data());
    ok = bus::detail::validate_publish_subject(subject).ok();
    benchmark::DoNotOptimize(ok);
  }
  if (!ok) state.SkipWithError("fixture subject is invalid");
  state.SetBytesProcessed(state.iterations() * static_cast<std::int64_t>(subject.size()));
}
BENCHMARK_CAPTURE(BM_ValidatePublishSubject, typical_22_bytes, std::string("orders.eu-west.created"));
BENCHMARK_CAPTURE(BM_ValidatePublishSubject, max_255_bytes, [] {
  std::string s;
  while (s.size() + 8 <= bus::detail::kMaxSubjectBytes) s += "segment.";
  s.append(bus::detail::kMaxSubjectBytes - s.size(), 'x');
  return s;
}());

}  // namespace

// Own main, like every bench program here; a linked benchmark_main is then simply unused.
BENCHMARK_MAIN();

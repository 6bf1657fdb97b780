// bench_journal.cpp — the journal on its own (libbus/src/journal/): append and read back, in
// process, page cache only (sync never). What streams add on top (routing, acks, consumers) is
// measured by `bus bench --stream` once it exists; these are the floor under it.
//
//   BM_JournalAppend/64      one thread appending 64-byte payloads to a fresh journal
//   BM_JournalAppend/1024
//   BM_JournalAppendThreads  4 threads appending 64 B to one journal (the claim CAS shared)
//   BM_JournalRead/64        Journal::read(sequence) in order, checksum verified on each record
//   BM_JournalReplay/64      a Cursor over the same records (what replays and consumers use)
#include <benchmark/benchmark.h>
#include <stdlib.h>

#include <filesystem>
#include <memory>
#include <string>

#include "journal/journal.hpp"

namespace {

using bus::detail::journal::Journal;
using bus::detail::journal::JournalOptions;

// A journal in a fresh directory under $TMPDIR (or /tmp), removed afterwards.
struct BenchJournal {
  BenchJournal() {
    const char* base = std::getenv("TMPDIR");
    std::string tmpl = std::string(base != nullptr ? base : "/tmp") + "/bus-bench-journal-XXXXXX";
    dir = ::mkdtemp(tmpl.data());
    JournalOptions options;
    options.segment_bytes = 256ull << 20;
    auto opened = Journal::open(dir + "/s", options);
    if (opened) journal = std::move(opened).value();
  }
  ~BenchJournal() {
    journal.reset();
    std::filesystem::remove_all(dir);
  }
  std::string dir;
  std::unique_ptr<Journal> journal;
};

void BM_JournalAppend(benchmark::State& state) {
  BenchJournal b;
  if (!b.journal) {
    state.SkipWithError("cannot open a journal");
    return;
  }
  const std::string payload(static_cast<std::size_t>(state.range(0)), 'x');
  for (auto _ : state) {
    auto seq = b.journal->append("bench.journal", "", payload);
    if (!seq) {
      state.SkipWithError(seq.error().message.c_str());
      break;
    }
    benchmark::DoNotOptimize(seq.value());
  }
  state.SetItemsProcessed(state.iterations());
  state.SetBytesProcessed(state.iterations() * state.range(0));
}
BENCHMARK(BM_JournalAppend)->Arg(64)->Arg(1024)->Iterations(1'000'000);

BenchJournal* g_shared = nullptr;

void BM_JournalAppendThreads(benchmark::State& state) {
  if (state.thread_index() == 0) g_shared = new BenchJournal();
  const std::string payload(64, 'x');
  for (auto _ : state) {
    auto seq = g_shared->journal->append("bench.journal", "", payload);
    benchmark::DoNotOptimize(seq);
  }
  state.SetItemsProcessed(state.iterations());
  if (state.thread_index() == 0) {
    delete g_shared;
    g_shared = nullptr;
  }
}
BENCHMARK(BM_JournalAppendThreads)->Threads(4)->Iterations(250'000)->UseRealTime();

constexpr std::uint64_t kRecords = 1'000'000;

// A journal holding kRecords records of state.range(0) bytes, for the read benchmarks; false
// (and the benchmark skipped) if it cannot be made.
bool fill(BenchJournal& b, benchmark::State& state) {
  if (!b.journal) {
    state.SkipWithError("cannot open a journal");
    return false;
  }
  const std::string payload(static_cast<std::size_t>(state.range(0)), 'x');
  for (std::uint64_t i = 0; i < kRecords; ++i) (void)b.journal->append("bench.journal", "", payload);
  return true;
}

void BM_JournalRead(benchmark::State& state) {
  BenchJournal b;
  if (!fill(b, state)) return;
  std::uint64_t seq = 1, bytes = 0;
  for (auto _ : state) {
    auto r = b.journal->read(seq);
    if (!r) {
      state.SkipWithError(r.error().message.c_str());
      break;
    }
    bytes += r->payload.size();
    seq = seq == kRecords ? 1 : seq + 1;
  }
  benchmark::DoNotOptimize(bytes);
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_JournalRead)->Arg(64)->Iterations(1'000'000);

void BM_JournalReplay(benchmark::State& state) {
  BenchJournal b;
  if (!fill(b, state)) return;
  auto cursor = b.journal->cursor(1);
  std::uint64_t bytes = 0;
  bus::detail::journal::RecordView view;
  for (auto _ : state) {
    if (cursor->next(view) != bus::detail::journal::ReadStatus::ok) cursor = b.journal->cursor(1);
    bytes += view.payload.size();
  }
  benchmark::DoNotOptimize(bytes);
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_JournalReplay)->Arg(64)->Iterations(1'000'000);

}  // namespace

BENCHMARK_MAIN();

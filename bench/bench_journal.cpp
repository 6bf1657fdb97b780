// bench_journal.cpp — the journal on its own (libbus/src/journal/): append and read back, in
// process, page cache only (sync never). What streams add on top (routing, acks, consumers) is
// measured by `bus bench --stream` once it exists; these are the floor under it.
//
//   BM_JournalAppend/64      one thread appending 64-byte payloads to a fresh journal
//   BM_JournalAppend/1024
//   BM_JournalAppendThreads  4 threads appending 64 B to one journal (the claim CAS shared)
//   BM_StreamPublish/64      Connection::stream_publish() of 64 B into a file stream (sync
//                            never) of an embedded broker: the same append behind the client's
//                            publish path (route, checks, the acknowledgement); its ratio to
//                            BM_JournalAppend/64 is what the client adds
//   BM_JournalRead/64        Journal::read(sequence) in order, checksum verified on each record
//   BM_JournalReplay/64      a Cursor over the same records (what replays and consumers use)
//   BM_StreamReplay/64       a StreamReader over a stream of 4 M records stream_publish() wrote:
//                            the client's replay, across segments, from records long out of cache
//   BM_JournalSeekIndexed    a fresh handle (another process's view) reads a random sequence of
//                            a 64 MiB segment of 1 M records: from the position index
//   BM_JournalSeekWalk       the same found by walking from the segment's start (the baseline:
//                            what a read cost before the index)
//   BM_JournalLastOnSubjectIndexed  the last message of one of 1000 subjects (the subject index)
//   BM_JournalLastOnSubjectWalk     the same by reading back from the end (the baseline)
//   BM_JournalMakeSpare      a 64 MiB spare segment made (allocated and zero-filled into the page
//                            cache), what each roll-over costs whoever makes it: bytes_per_second
//                            is the rate at which a journal can grow into fresh page cache here
#include <benchmark/benchmark.h>
#include <fcntl.h>
#include <stdlib.h>
#include <unistd.h>

#include <filesystem>
#include <memory>
#include <optional>
#include <string>

#include "bus/bus.hpp"
#include "common/bus_peer.hpp"
#include "journal/journal.hpp"

namespace {

using bus::detail::journal::Journal;
using bus::detail::journal::JournalOptions;

// A fresh directory under $TMPDIR (or /tmp), removed afterwards.
struct BenchDir {
  BenchDir() {
    const char* base = std::getenv("TMPDIR");
    std::string tmpl = std::string(base != nullptr ? base : "/tmp") + "/bus-bench-journal-XXXXXX";
    dir = ::mkdtemp(tmpl.data());
  }
  ~BenchDir() { std::filesystem::remove_all(dir); }
  std::string dir;
};

// A journal in a fresh directory, removed afterwards.
struct BenchJournal : BenchDir {
  explicit BenchJournal(std::uint64_t segment_bytes = 256ull << 20) {
    JournalOptions options;
    options.segment_bytes = segment_bytes;
    auto opened = Journal::open(dir + "/s", options);
    if (opened) journal = std::move(opened).value();
  }
  ~BenchJournal() { journal.reset(); }  // unmapped before the directory goes
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

// An embedded broker with a file stream BENCH (sync never) capturing `subject`, and a client
// connection to it; on failure `state` is told why and ok() is false.
struct BenchStream {
  BenchStream(benchmark::State& state, const std::string& subject) {
    bus::BrokerOptions o = bus::bench::bench_broker_options(bus::bench::unique_bus_name("stream"));
    o.store_dir = store.dir + "/store";  // no journal of its own here: 256 MiB of page cache less
    auto started = bus::Broker::start(o);
    if (!started) {
      state.SkipWithError(started.error().message.c_str());
      return;
    }
    broker.emplace(std::move(started).value());
    auto connected = bus::Connection::connect(o.bus_name);
    if (!connected) {
      state.SkipWithError(connected.error().message.c_str());
      return;
    }
    conn.emplace(std::move(connected).value());
    bus::StreamConfig config;
    config.name = "BENCH";
    config.subjects = {subject};
    config.sync = bus::SyncPolicy::never;
    if (auto info = bus::Streams(*conn).add(config); !info) {
      state.SkipWithError(info.error().message.c_str());
      conn.reset();
    }
  }
  bool ok() const noexcept { return conn.has_value(); }
  BenchDir store;
  std::optional<bus::Broker> broker;
  std::optional<bus::Connection> conn;
};

void BM_StreamPublish(benchmark::State& state) {
  BenchStream b(state, "bench.journal");
  if (!b.ok()) return;
  bus::Connection* conn = &*b.conn;
  const std::string payload(static_cast<std::size_t>(state.range(0)), 'x');
  for (auto _ : state) {
    auto ack = conn->stream_publish("bench.journal", payload);
    if (!ack) {
      state.SkipWithError(ack.error().message.c_str());
      break;
    }
    benchmark::DoNotOptimize(ack->sequence);
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_StreamPublish)->Arg(64)->Iterations(1'000'000);

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

// What a client's replay costs beside the bare cursor above: a StreamReader (the public API)
// over a stream that stream_publish() filled through an embedded broker, in 64 MiB segments
// made from the broker's spares, the records written long before they are read.
void BM_StreamReplay(benchmark::State& state) {
  BenchStream b(state, "bench.replay");
  if (!b.ok()) return;
  bus::Connection* conn = &*b.conn;
  bus::Streams streams(*conn);
  const std::string payload(static_cast<std::size_t>(state.range(0)), 'x');
  for (std::uint64_t i = 0; i < 4 * kRecords; ++i) {
    if (auto ack = conn->stream_publish("bench.replay", payload); !ack) {
      state.SkipWithError(ack.error().message.c_str());
      return;
    }
  }
  auto reader = streams.reader("BENCH", 1);
  if (!reader) {
    state.SkipWithError(reader.error().message.c_str());
    return;
  }
  bus::StoredMessageView v;
  std::uint64_t bytes = 0;
  for (auto _ : state) {
    auto next = reader->next(v);
    if (!next || !next.value()) {
      state.SkipWithError("the replay stopped short");
      break;
    }
    bytes += v.data.size();
  }
  benchmark::DoNotOptimize(bytes);
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_StreamReplay)->Arg(64)->Iterations(1'000'000);

// One journal of kRecords 64-byte records in 64 MiB segments (the broker's size) on 1000
// subjects, shared by the seek benchmarks (made once: filling it takes a second).
constexpr std::uint64_t kSeekSegment = 64ull << 20;
constexpr int kSubjects = 1000;
BenchJournal& seek_journal() {
  static BenchJournal b(kSeekSegment);
  static bool filled = false;
  if (!filled && b.journal) {
    const std::string payload(64, 'x');
    for (std::uint64_t i = 0; i < kRecords; ++i) {
      (void)b.journal->append("bench.key." + std::to_string(i % kSubjects), "", payload);
    }
    filled = true;
  }
  return b;
}

std::unique_ptr<Journal> fresh_handle(const BenchJournal& b) {
  JournalOptions options;
  options.segment_bytes = kSeekSegment;
  auto j = Journal::attach(b.dir + "/s", options);
  return j ? std::move(j).value() : nullptr;
}

// Each iteration a fresh handle (another process's view, nothing walked yet) finds a pseudo-
// random sequence with `find(handle, sequence)`, which returns what it found.
template <class Find>
void seek_from_fresh_handles(benchmark::State& state, Find find) {
  BenchJournal& b = seek_journal();
  std::uint64_t target = 1, found = 0;
  for (auto _ : state) {
    state.PauseTiming();
    auto j = fresh_handle(b);
    target = (target * 7919 + 104729) % b.journal->last_seq() + 1;
    state.ResumeTiming();
    if (!j) {
      state.SkipWithError("cannot attach");
      break;
    }
    found += find(*j, target);
  }
  benchmark::DoNotOptimize(found);
  state.SetItemsProcessed(state.iterations());
}

void BM_JournalSeekIndexed(benchmark::State& state) {
  seek_from_fresh_handles(state, [](const Journal& j, std::uint64_t target) -> std::uint64_t {
    auto r = j.read(target);
    return r ? r->sequence : 0;
  });
}
BENCHMARK(BM_JournalSeekIndexed)->Iterations(2000);

void BM_JournalSeekWalk(benchmark::State& state) {
  seek_from_fresh_handles(state, [](const Journal& j, std::uint64_t target) -> std::uint64_t {
    bus::detail::journal::RecordView view;
    auto c = j.cursor(1);  // from the segment's start: record lengths, one after another
    while (c->sequence() < target && c->next(view) == bus::detail::journal::ReadStatus::ok) {
    }
    return c->sequence();
  });
}
BENCHMARK(BM_JournalSeekWalk)->Iterations(200);

void BM_JournalLastOnSubjectIndexed(benchmark::State& state) {
  BenchJournal& b = seek_journal();
  const Journal& j = *b.journal;
  (void)j.last_on_subject("bench.key.0", j.last_seq());  // the index made and filled once
  int key = 0;
  std::uint64_t found = 0;
  for (auto _ : state) {
    key = (key + 337) % kSubjects;
    auto seq = j.last_on_subject("bench.key." + std::to_string(key), j.last_seq());
    found += seq ? seq.value() : 0;
  }
  benchmark::DoNotOptimize(found);
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_JournalLastOnSubjectIndexed)->Iterations(100'000);

void BM_JournalLastOnSubjectWalk(benchmark::State& state) {
  BenchJournal& b = seek_journal();
  const Journal& j = *b.journal;
  int key = 0;
  std::uint64_t found = 0;
  for (auto _ : state) {
    key = (key + 337) % kSubjects;
    const std::string subject = "bench.key." + std::to_string(key);
    for (std::uint64_t seq = j.last_seq(); seq >= 1; --seq) {
      auto r = j.read(seq);
      if (r && r->subject == subject) {
        found += seq;
        break;
      }
    }
  }
  benchmark::DoNotOptimize(found);
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_JournalLastOnSubjectWalk)->Iterations(20'000);

void BM_JournalMakeSpare(benchmark::State& state) {
  BenchJournal b(kSeekSegment);
  const int dir_fd = ::open((b.dir + "/s").c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  for (auto _ : state) {
    using bus::detail::journal::PageShape;
    // As for a stream that never syncs (the one whose growth the row "journal growth limit" bounds).
    if (auto st = bus::detail::journal::SegmentFile::make_spare(b.dir + "/s", kSeekSegment, PageShape::appends, dir_fd);
        !st) {
      state.SkipWithError(st.error().message.c_str());
      break;
    }
    state.PauseTiming();
    ::unlinkat(dir_fd, "spare", 0);  // its pages go back to the kernel, to be handed out again
    state.ResumeTiming();
  }
  ::close(dir_fd);
  state.SetBytesProcessed(state.iterations() * static_cast<std::int64_t>(kSeekSegment));
}
BENCHMARK(BM_JournalMakeSpare)->Iterations(8)->Unit(benchmark::kMillisecond);

}  // namespace

BENCHMARK_MAIN();

// test_peer.cpp — a client process for the multi-process tests, driven by argv.
//
//   test_peer sub     BUS PATTERN COUNT TIMEOUT_MS [QUEUE]   prints "ready", then one payload per
//                                                           line; exit 0 after COUNT, 3 on timeout
//   test_peer pub     BUS SUBJECT COUNT [SLEEP_US] [PREFIX]  publishes PREFIX1..PREFIXCOUNT
//   test_peer pubseq  BUS SUBJECT COUNTER_FILE MILLIS        publishes 1,2,3... for MILLIS, storing
//                                                           "about to publish n" in COUNTER_FILE
//                                                           before each publish, then "end"
//   test_peer subcheck BUS PATTERN COUNTER_FILE TIMEOUT_MS  subscribes, reads the counter, and
//                                                           checks that every later sequence
//                                                           arrives, contiguous, until "end"
//   test_peer qsub    BUS PATTERN GROUP TIMEOUT_MS          joins queue group GROUP, prints "ready",
//                                                           then one payload per line until nothing
//                                                           arrived for TIMEOUT_MS; then exits 0
//   test_peer reply   BUS SUBJECT [GROUP]                   responder (queue member of GROUP if
//                                                           given): prints "ready", answers each
//                                                           request with "re:<body>", copying header
//                                                           X-Req and adding X-Responder: <pid>,
//                                                           until killed
//   test_peer journal-append DIR WRITER COUNT SEGMENT_BYTES appends WRITER:1..COUNT to the journal
//                                                           in DIR, printing "ack SEQ I ." for each
//   test_peer kv-incr BUS STREAM SUBJECT COUNT             COUNT times: reads the last value on
//                                                           SUBJECT (a number; none = 0) and stores
//                                                           value+1 with Nats-Expected-Last-Subject-
//                                                           Sequence, again on a refusal; prints
//                                                           "stored VALUE SEQ" for each
//   test_peer req     BUS SUBJECT BODY TIMEOUT_MS           one request: prints the reply body, or
//                                                           the errc name (exit 5 no_responders,
//                                                           3 timeout)
// Exit codes: 0 ok, 1 API error (message on stderr), 2 usage, 3 timeout, 4 check failed,
// 5 no responders.
#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <thread>

#include "bus/bus.hpp"
#include "journal/journal.hpp"

namespace {

int fail(const bus::Error& e) {
  std::fprintf(stderr, "test_peer: %s: %s\n", bus::errc_name(e.code), e.message.c_str());
  return 1;
}

std::atomic<std::uint64_t>* map_counter(const char* path) {
  const int fd = ::open(path, O_RDWR | O_CREAT, 0600);
  if (fd < 0 || ::ftruncate(fd, 4096) != 0) return nullptr;
  void* p = ::mmap(nullptr, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  ::close(fd);
  return p == MAP_FAILED ? nullptr : static_cast<std::atomic<std::uint64_t>*>(p);
}

int run_sub(bus::Connection& conn, const char* pattern, long count, long timeout_ms, const char* queue) {
  bus::SubscribeOptions options;
  if (queue != nullptr) options.queue_group = queue;
  auto sub = conn.subscribe(pattern, options);
  if (!sub) return fail(sub.error());
  std::printf("ready\n");
  std::fflush(stdout);
  for (long i = 0; i < count; ++i) {
    auto msg = sub->next(std::chrono::milliseconds(timeout_ms));
    if (!msg) {
      if (msg.error().code == bus::Errc::timeout) return 3;
      return fail(msg.error());
    }
    std::printf("%s\n", msg->data.c_str());
    std::fflush(stdout);
  }
  return 0;
}

int run_pub(bus::Connection& conn, const char* subject, long count, long sleep_us, const char* prefix) {
  for (long i = 1; i <= count; ++i) {
    auto st = conn.publish(subject, std::string(prefix) + std::to_string(i));
    if (!st) return fail(st.error());
    if (sleep_us > 0) std::this_thread::sleep_for(std::chrono::microseconds(sleep_us));
  }
  std::printf("done\n");
  std::fflush(stdout);
  return 0;
}

int run_pubseq(bus::Connection& conn, const char* subject, const char* counter_file, long millis) {
  auto* counter = map_counter(counter_file);
  if (counter == nullptr) return 1;
  const auto end = std::chrono::steady_clock::now() + std::chrono::milliseconds(millis);
  std::uint64_t n = 0;
  while (std::chrono::steady_clock::now() < end) {
    ++n;
    // seq_cst: the subscriber's read of the counter after subscribe() returns is ordered with
    // this store; any n it has not seen yet starts its publish after that point.
    counter->store(n, std::memory_order_seq_cst);
    if (auto st = conn.publish(subject, std::to_string(n)); !st) return fail(st.error());
    if ((n & 63) == 0) std::this_thread::sleep_for(std::chrono::microseconds(50));
  }
  for (int i = 0; i < 100; ++i) {  // "end" must not be lost to a full ring
    if (auto st = conn.publish(subject, "end"); !st) return fail(st.error());
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  std::printf("published %llu\n", static_cast<unsigned long long>(n));
  return 0;
}

int run_subcheck(bus::Connection& conn, const char* pattern, const char* counter_file, long timeout_ms) {
  auto* counter = map_counter(counter_file);
  if (counter == nullptr) return 1;
  auto sub = conn.subscribe(pattern);
  if (!sub) return fail(sub.error());
  const std::uint64_t seen_before = counter->load(std::memory_order_seq_cst);
  // Every publish numbered > seen_before started after subscribe() returned.
  std::uint64_t expect = seen_before + 1;
  std::uint64_t first = 0;
  for (;;) {
    auto msg = sub->next(std::chrono::milliseconds(timeout_ms));
    if (!msg) return msg.error().code == bus::Errc::timeout ? 3 : fail(msg.error());
    if (msg->data == "end") break;
    const std::uint64_t n = std::strtoull(msg->data.c_str(), nullptr, 10);
    if (first == 0) first = n;
    if (n < expect) continue;  // published concurrently with subscribe(): allowed either way
    if (n != expect) {
      std::printf("gap: expected %llu got %llu (counter at subscribe %llu)\n",
                  static_cast<unsigned long long>(expect), static_cast<unsigned long long>(n),
                  static_cast<unsigned long long>(seen_before));
      return 4;
    }
    ++expect;
  }
  std::printf("ok after=%llu first=%llu last=%llu dropped=%llu\n",
              static_cast<unsigned long long>(seen_before), static_cast<unsigned long long>(first),
              static_cast<unsigned long long>(expect - 1),
              static_cast<unsigned long long>(sub->dropped_count()));
  return sub->dropped_count() == 0 ? 0 : 4;
}

int run_qsub(bus::Connection& conn, const char* pattern, const char* group, long timeout_ms) {
  auto sub = conn.queue_subscribe(pattern, group);
  if (!sub) return fail(sub.error());
  std::printf("ready\n");
  std::fflush(stdout);
  for (;;) {
    auto msg = sub->next(std::chrono::milliseconds(timeout_ms));
    if (!msg) {
      if (msg.error().code == bus::Errc::timeout) return 0;  // idle: done
      return fail(msg.error());
    }
    std::printf("%s\n", msg->data.c_str());
    std::fflush(stdout);
  }
}

int run_reply(bus::Connection& conn, const char* subject, const char* group) {
  auto sub = group != nullptr ? conn.queue_subscribe(subject, group) : conn.subscribe(subject);
  if (!sub) return fail(sub.error());
  const std::string me = std::to_string(::getpid());
  std::printf("ready\n");
  std::fflush(stdout);
  for (;;) {
    auto msg = sub->next(std::chrono::seconds(1));
    if (!msg) {
      if (msg.error().code == bus::Errc::timeout) continue;  // runs until killed
      return fail(msg.error());
    }
    bus::Headers out;
    auto in = msg->header();
    if (!in) return fail(in.error());
    for (auto v : in->values("X-Req")) {
      if (auto st = out.add("X-Req", v); !st) return fail(st.error());
    }
    if (auto st = out.add("X-Responder", me); !st) return fail(st.error());
    if (auto st = msg->respond("re:" + msg->data, out); !st) return fail(st.error());
  }
}

int run_req(bus::Connection& conn, const char* subject, const char* body, long timeout_ms) {
  auto reply = conn.request(subject, body, std::chrono::milliseconds(timeout_ms));
  if (!reply) {
    std::printf("%s\n", bus::errc_name(reply.error().code));
    std::fflush(stdout);
    if (reply.error().code == bus::Errc::no_responders) return 5;
    if (reply.error().code == bus::Errc::timeout) return 3;
    return fail(reply.error());
  }
  std::printf("%s\n", reply->data.c_str());
  std::fflush(stdout);
  return 0;
}

// Appends WRITER:1, WRITER:2, ... to the journal in DIR, printing "ack SEQ I ." once each is
// stored; the final " ." tells a complete line from one cut short by a kill.
int run_journal_append(const char* dir, const char* writer, long count, long segment_bytes) {
  bus::detail::journal::JournalOptions options;
  options.segment_bytes = static_cast<std::uint64_t>(segment_bytes);
  auto journal = bus::detail::journal::Journal::open(dir, options);
  if (!journal) return fail(journal.error());
  for (long i = 1; i <= count; ++i) {
    auto seq = journal.value()->append("journal.test", "", std::string(writer) + ":" + std::to_string(i));
    if (!seq) return fail(seq.error());
    std::printf("ack %llu %ld .\n", static_cast<unsigned long long>(seq.value()), i);
    std::fflush(stdout);
  }
  return 0;
}

// Optimistic concurrency, as a key/value store's update does it: read, then store only if the
// subject's last message is still the one read.
int run_kv_incr(bus::Connection& conn, const char* stream, const char* subject, long count) {
  bus::Streams streams(conn);
  for (long i = 0; i < count; ++i) {
    for (int attempt = 0;; ++attempt) {
      if (attempt > 100000) {
        std::fprintf(stderr, "test_peer: kept losing the race on %s\n", subject);
        return 4;
      }
      auto last = streams.get_last(stream, subject);
      if (!last && last.error().code != bus::Errc::not_found) return fail(last.error());
      const long value = last ? std::atol(last->data.c_str()) : 0;
      const std::uint64_t seq = last ? last->sequence : 0;
      bus::Headers h;
      if (auto st = h.set("Nats-Expected-Last-Subject-Sequence", std::to_string(seq)); !st) return fail(st.error());
      auto ack = conn.stream_publish(subject, std::to_string(value + 1), &h);
      if (!ack) {
        if (ack.error().code == bus::Errc::expectation_failed) continue;  // another writer came first
        return fail(ack.error());
      }
      std::printf("stored %ld %llu\n", value + 1, static_cast<unsigned long long>(ack->sequence));
      break;
    }
  }
  std::fflush(stdout);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 4) return 2;
  const std::string mode = argv[1];
  // Journal modes need no bus.
  if (mode == "journal-append" && argc >= 6) {
    return run_journal_append(argv[2], argv[3], std::atol(argv[4]), std::atol(argv[5]));
  }
  auto conn = bus::Connection::connect(argv[2], {.name = "test_peer " + mode});
  if (!conn) return fail(conn.error());
  if (mode == "sub" && argc >= 6) {
    return run_sub(*conn, argv[3], std::atol(argv[4]), std::atol(argv[5]), argc >= 7 ? argv[6] : nullptr);
  }
  if (mode == "pub" && argc >= 5) {
    return run_pub(*conn, argv[3], std::atol(argv[4]), argc >= 6 ? std::atol(argv[5]) : 0,
                   argc >= 7 ? argv[6] : "");
  }
  if (mode == "pubseq" && argc >= 6) return run_pubseq(*conn, argv[3], argv[4], std::atol(argv[5]));
  if (mode == "subcheck" && argc >= 6) return run_subcheck(*conn, argv[3], argv[4], std::atol(argv[5]));
  if (mode == "qsub" && argc >= 6) return run_qsub(*conn, argv[3], argv[4], std::atol(argv[5]));
  if (mode == "reply") return run_reply(*conn, argv[3], argc >= 5 ? argv[4] : nullptr);
  if (mode == "req" && argc >= 6) return run_req(*conn, argv[3], argv[4], std::atol(argv[5]));
  if (mode == "kv-incr" && argc >= 6) return run_kv_incr(*conn, argv[3], argv[4], std::atol(argv[5]));
  return 2;
}

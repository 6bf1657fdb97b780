// bench_stream.cpp — `bus bench SUBJECT --stream NAME`: acknowledged publishes into a stream
// (each waits for its acknowledgement, as `nats bench --js` publishes synchronously), timed one
// by one, then a replay of what was stored with a zero-copy StreamReader. One process: the
// publishing thread appends to the journal itself, so there is nobody else to time.
#include <unistd.h>

#include <cstdio>
#include <string>

#include <nlohmann/json.hpp>

#include "bench_proto.hpp"
#include "histogram.hpp"
#include "progress_bar.hpp"

namespace bus::cli {

int run_stream_bench(const BenchFlags& flags) {
  if (auto valid = validate_publish_subject(flags.subject); !valid) return report(valid.error());
  if (flags.pubs != 1 || flags.subs != 0 || flags.latency || flags.request || !flags.queue.empty()) {
    return report_usage("--stream measures one publisher and a replay: no --pub, --sub, --latency, --request or --queue");
  }
  if (flags.msgs == 0) return report_usage("--msgs: '0' is not a whole number of at least 1");
  auto conn = connect(flags.client, "bus bench");
  if (!conn) return report(conn.error());
  if (flags.size > conn->max_payload()) {
    return report(make_error(Errc::payload_too_large, "--size " + std::to_string(flags.size) +
                                                          " bytes exceeds the bus's max_payload"));
  }
  Streams streams(*conn);
  auto info = streams.info(flags.stream);
  if (!info) return report(info.error());
  const std::string payload(flags.size, 'x');

  // Acknowledged publishes, each timed. The first one also opens the journal: not measured.
  auto first = conn->stream_publish(flags.subject, payload);
  if (!first) return report(first.error());
  if (first->stream != flags.stream) {
    return report(make_error(Errc::invalid_argument, "subject '" + flags.subject + "' is captured by stream '" +
                                                         first->stream + "', not '" + flags.stream + "'"));
  }
  ProgressBar bar(!flags.json && ::isatty(STDERR_FILENO) == 1, flags.msgs, "Publishing");
  bench::LatencyHistogram acks;
  const std::int64_t start = now_ns();
  std::uint64_t last_seq = first->sequence;
  for (std::uint64_t i = 1; i < flags.msgs && !stop_requested(); ++i) {
    const std::int64_t t0 = now_ns();
    auto ack = conn->stream_publish(flags.subject, payload);
    const std::int64_t t1 = now_ns();
    if (!ack) return report(ack.error());
    acks.record(static_cast<std::uint64_t>(t1 - t0));
    last_seq = ack->sequence;
    if ((i & 4095) == 0) bar.draw(i);
  }
  bar.clear();
  const double publish_s = static_cast<double>(now_ns() - start) / 1e9;
  const std::uint64_t published = acks.count();

  // Replay of this run's messages (others may have published into the stream meanwhile).
  auto reader = streams.reader(flags.stream, first->sequence);
  if (!reader) return report(reader.error());
  StoredMessageView m;
  std::uint64_t replayed = 0, bytes = 0;
  const std::int64_t replay_start = now_ns();
  while (reader->sequence() <= last_seq) {
    auto got = reader->next(m);
    if (!got) {
      reader->skip();
      continue;
    }
    if (!got.value()) break;
    ++replayed;
    bytes += m.data.size();
  }
  const double replay_s = static_cast<double>(now_ns() - replay_start) / 1e9;
  const double ack_rate = publish_s > 0 ? static_cast<double>(published) / publish_s : 0;
  const double replay_rate = replay_s > 0 ? static_cast<double>(replayed) / replay_s : 0;
  auto pct = [&](double p) { return acks.percentile(p); };
  if (flags.json) {
    const nlohmann::json j{{"mode", "stream"},
                           {"subject", flags.subject},
                           {"stream", flags.stream},
                           {"sync", to_string(info->config.sync)},
                           {"msgs", published + 1},
                           {"size", flags.size},
                           {"ack_msgs_per_s", ack_rate},
                           {"ack_latency_ns",
                            {{"p50", pct(50)}, {"p90", pct(90)}, {"p99", pct(99)}, {"p999", pct(99.9)}, {"max", acks.max()}}},
                           {"replay_msgs", replayed},
                           {"replay_msgs_per_s", replay_rate},
                           {"replay_bytes_per_s", replay_s > 0 ? static_cast<double>(bytes) / replay_s : 0}};
    std::printf("%s\n", j.dump(2).c_str());
    return kExitOk;
  }
  std::printf("Stream benchmark: %llu acknowledged publishes of %llu B into stream %s (sync %s)\n\n",
              static_cast<unsigned long long>(published + 1), static_cast<unsigned long long>(flags.size),
              flags.stream.c_str(), to_string(info->config.sync));
  std::printf("  acknowledged publish  %12.0f msgs/s\n", ack_rate);
  std::printf("  ack latency           p50 %llu ns  p90 %llu ns  p99 %llu ns  p99.9 %llu ns  max %llu ns\n",
              static_cast<unsigned long long>(pct(50)), static_cast<unsigned long long>(pct(90)),
              static_cast<unsigned long long>(pct(99)), static_cast<unsigned long long>(pct(99.9)),
              static_cast<unsigned long long>(acks.max()));
  std::printf("  replay                %12.0f msgs/s (%llu messages)\n", replay_rate,
              static_cast<unsigned long long>(replayed));
  return kExitOk;
}

}  // namespace bus::cli

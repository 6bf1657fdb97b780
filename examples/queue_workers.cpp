// queue_workers.cpp — a queue group: each job published on `jobs.*` goes to exactly one of the
// workers in group "workers" (they could as well be in different processes).
// Needs a broker: `busd &` first. Usage: queue_workers [BUS]
#include <bus/bus.hpp>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <string>
#include <thread>
#include <vector>

int main(int argc, char** argv) {
  const std::string bus_name = argc > 1 ? argv[1] : "default";
  auto conn = bus::Connection::connect(bus_name);
  if (!conn) {
    std::fprintf(stderr, "queue_workers: %s\n", conn.error().message.c_str());
    return 1;
  }
  constexpr int kWorkers = 3, kJobs = 30;
  std::atomic<int> done[kWorkers] = {};
  std::vector<bus::Subscription> workers;
  for (int w = 0; w < kWorkers; ++w) {
    // Each worker's handler runs on its own thread.
    auto sub = conn->queue_subscribe("jobs.*", "workers", [&done, w](const bus::MessageView&) { ++done[w]; });
    if (!sub) {
      std::fprintf(stderr, "queue_workers: %s\n", sub.error().message.c_str());
      return 1;
    }
    workers.push_back(std::move(sub).value());
  }
  for (int j = 0; j < kJobs; ++j) {
    if (auto st = conn->publish("jobs.resize", "job " + std::to_string(j)); !st) {
      std::fprintf(stderr, "queue_workers: %s\n", st.error().message.c_str());
      return 1;
    }
  }
  int total = 0;
  for (int waited = 0; waited < 200 && total < kJobs; ++waited) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
    total = 0;
    for (auto& d : done) total += d.load();
  }
  for (auto& w : workers) (void)w.drain();  // finish what each has, then leave the group
  for (int w = 0; w < kWorkers; ++w) std::printf("worker %d did %d jobs\n", w, done[w].load());
  if (total != kJobs) {
    std::fprintf(stderr, "queue_workers: %d jobs done, expected each of %d exactly once\n", total, kJobs);
    return 1;
  }
  return 0;
}

// Process identity and liveness (os/process.hpp): what every "is this writer dead?" decision of
// the ring and the broker rests on. Dead only on positive evidence, and a reused pid is not the
// process that had it.
#include <pthread.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>

#include "os/process.hpp"

namespace bus::detail {
namespace {

using namespace std::chrono_literals;

// Field `n` of /proc/<pid>/stat, counted independently of the code under test.
std::string stat_field(pid_t pid, int n) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  std::istringstream rest(text.substr(text.rfind(')') + 2));
  std::string field;
  for (int i = 3; i <= n; ++i) rest >> field;
  return field;
}

bool wait_for_state(pid_t pid, char state, std::chrono::milliseconds timeout) {
  const auto until = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < until) {
    if (stat_field(pid, 3) == std::string(1, state)) return true;
    std::this_thread::sleep_for(5ms);
  }
  return false;
}

TEST(Process, should_read_the_start_time_field_of_proc_stat) {
  const auto ticks = process_start_ticks(::getpid());
  ASSERT_TRUE(ticks.has_value());
  EXPECT_NE(*ticks, 0u) << "field 21 (itrealvalue) is always 0; field 22 is the start time";
  EXPECT_EQ(std::to_string(*ticks), stat_field(::getpid(), 22));
}

TEST(Process, should_tell_a_reused_pid_from_the_process_that_had_it) {
  const auto ticks = process_start_ticks(::getpid());
  ASSERT_TRUE(ticks.has_value());
  EXPECT_TRUE(process_alive(::getpid(), *ticks));
  EXPECT_FALSE(process_alive(::getpid(), *ticks + 1)) << "another start time: another process";
}

TEST(Process, should_count_an_exited_child_as_dead_before_and_after_it_is_reaped) {
  const pid_t child = ::fork();
  ASSERT_GE(child, 0);
  if (child == 0) ::_exit(0);
  ASSERT_TRUE(wait_for_state(child, 'Z', 5s));
  const auto ticks = process_start_ticks(child);
  ASSERT_TRUE(ticks.has_value());
  EXPECT_FALSE(process_alive(child, *ticks)) << "a zombie writes nothing";
  ASSERT_EQ(::waitpid(child, nullptr, 0), child);
  EXPECT_FALSE(process_alive(child, *ticks)) << "no such pid";
}

void* sleep_then_exit(void*) {
  ::usleep(400'000);
  return nullptr;
}

TEST(Process, should_count_a_process_whose_main_thread_exited_as_alive_while_other_threads_run) {
  const pid_t child = ::fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    pthread_t thread;
    if (::pthread_create(&thread, nullptr, sleep_then_exit, nullptr) != 0) ::_exit(1);
    // The leader leaves alone (the exit system call, not exit_group; pthread_exit would unwind
    // through the test framework): it shows 'Z' while the other thread (a publisher, say) runs.
    ::syscall(SYS_exit, 0);
  }
  ASSERT_TRUE(wait_for_state(child, 'Z', 5s));
  const auto ticks = process_start_ticks(child);
  ASSERT_TRUE(ticks.has_value());
  EXPECT_EQ(stat_field(child, 20), "2");
  EXPECT_TRUE(process_alive(child, *ticks)) << "its other thread may still be writing into a ring";
  int status = 0;
  ASSERT_EQ(::waitpid(child, &status, 0), child);
  EXPECT_FALSE(process_alive(child, *ticks));
}

}  // namespace
}  // namespace bus::detail

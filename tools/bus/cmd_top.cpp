// cmd_top.cpp — `bus top`, after nats-top: a live view of the clients and subscriptions of a
// bus, refreshed every second, with rates between refreshes. `--once` prints one frame as plain
// text (two looks an interval apart, for the rates) and exits: for scripts and tests.
#include <ncurses.h>

#include <array>
#include <cstdio>
#include <memory>
#include <string>
#include <optional>
#include <thread>

#include <unistd.h>

#include "common.hpp"
#include "monitor_view.hpp"
#include "units.hpp"
#include "verbs.hpp"
#include "cli_units.hpp"

namespace bus::cli {
namespace {

struct TopFlags {
  ClientFlags client;
  bool once = false;
  std::string sort = "cid";
  std::string sub_sort = "sid";
  std::size_t top = 0;
  std::chrono::nanoseconds interval = std::chrono::seconds(1);
};

constexpr std::array kClientSorts{"cid", "msgs_from", "msgs_to", "bytes_from", "bytes_to", "subs", "dropped", "start"};
constexpr std::array kSubSorts{"sid", "msgs", "bytes", "pending", "high_water", "dropped", "subject"};

std::string frame(const monitor::BusSnapshot& now, const Rates& rates, const TopFlags& f) {
  std::string out = summary_lines(now, rates) + "\n";
  out += clients_table(now, rates, f.sort, f.top).render() + "\n";
  out += subscriptions_table(now, rates, f.sub_sort, f.top).render();
  return out;
}

double seconds_between(const monitor::BusSnapshot& a, const monitor::BusSnapshot& b) {
  return b.now_unix_ns > a.now_unix_ns ? static_cast<double>(b.now_unix_ns - a.now_unix_ns) / 1e9 : 0;
}

template <std::size_t N>
std::string next_key(const std::array<const char*, N>& keys, const std::string& current) {
  for (std::size_t i = 0; i < N; ++i) {
    if (current == keys[i]) return keys[(i + 1) % N];
  }
  return keys[0];
}

int run_once(const TopFlags& f) {
  auto first = bus_snapshot(f.client);
  if (!first) return report(first.error());
  std::this_thread::sleep_for(f.interval);
  auto second = monitor::snapshot(f.client.bus_name);
  if (!second) return report(second.error());
  std::fputs(frame(*second, {&*first, seconds_between(*first, *second)}, f).c_str(), stdout);
  return kExitOk;
}

int run_live(TopFlags f) {
  auto previous = bus_snapshot(f.client);
  if (!previous) return report(previous.error());
  install_stop_signals();
  initscr();
  cbreak();
  noecho();
  curs_set(0);
  keypad(stdscr, TRUE);
  timeout(static_cast<int>(std::chrono::duration_cast<std::chrono::milliseconds>(f.interval).count()));
  std::optional<monitor::BusSnapshot> before;
  int code = kExitOk;
  while (!stop_requested()) {
    auto now = monitor::snapshot(f.client.bus_name);
    if (!now) {
      endwin();
      return report(now.error());
    }
    const Rates rates = before ? Rates{&*before, seconds_between(*before, *now)} : Rates{};
    const std::string text = frame(*now, rates, f) +
                             "\n[q] quit  [s] sort connections (" + f.sort + ")  [o] sort subscriptions (" +
                             f.sub_sort + ")";
    erase();
    int row = 0;
    std::size_t start = 0;
    while (start <= text.size() && row < LINES) {
      std::size_t end = text.find('\n', start);
      if (end == std::string::npos) end = text.size();
      const std::string line = text.substr(start, std::min<std::size_t>(end - start, static_cast<std::size_t>(COLS)));
      mvaddstr(row++, 0, line.c_str());
      start = end + 1;
    }
    refresh();
    before = std::move(now).value();
    const int key = getch();  // waits up to the interval
    if (key == 'q' || key == 'Q') break;
    if (key == 's') f.sort = next_key(kClientSorts, f.sort);
    if (key == 'o') f.sub_sort = next_key(kSubSorts, f.sub_sort);
  }
  endwin();
  return code;
}

}  // namespace

VerbRunner setup_top(CLI::App& command) {
  auto f = std::make_shared<TopFlags>();
  command.add_flag("--once", f->once, "Print one frame as plain text and exit");
  command.add_option("--sort", f->sort, "Sort connections by cid, msgs_from, msgs_to, bytes_from, bytes_to, subs, dropped, start")
      ->type_name("KEY")
      ->capture_default_str();
  command.add_option("--sub-sort", f->sub_sort, "Sort subscriptions by sid, msgs, bytes, pending, high_water, dropped, subject")
      ->type_name("KEY")
      ->capture_default_str();
  command.add_option("-n,--top", f->top, "Show at most N of each")->type_name("N");
  tools::add_duration_option(command, "--interval", f->interval, "Refresh interval (and --once's sampling)",
                             /*positive=*/true);
  add_client_flags(command, f->client,
                   {"", false,
                    "Wait this long for the bus to have a segment and a live broker before the first frame, e.g. "
                    "2s (default: look at once)"});
  return [f] {
    if (!valid_client_sort(f->sort)) return report_usage("unknown sort key '" + f->sort + "'");
    if (!valid_subscription_sort(f->sub_sort)) return report_usage("unknown sort key '" + f->sub_sort + "'");
    if (f->once) return run_once(*f);
    if (::isatty(STDOUT_FILENO) == 0) return report_usage("bus top needs a terminal (use --once for plain text)");
    return run_live(*f);
  };
}

}  // namespace bus::cli

// scaling_report.cpp — turns what bench/scaling/run.sh measured into the scaling tables and plots.
//
//   scaling_report --out DIR [--command CMD] [--label TEXT] [--mode smoke|full] [--repeat R]
//                  [--load-start "1 5 15"] [--wall-seconds S]
//
// Reads DIR/samples.jsonl (one line per measurement, written by run.sh:
//   {"curve":C,"x":X,"rep":R,"kind":K,"load":"l1 l5 l15","data":{...}}   or ... "error":"..."
// where data is the JSON line of `bus bench --json` or `scaling_peer`) and DIR/raw/routehit.json
// (bench_bus --benchmark_format=json, BM_PublishRouteHit only). Every point is the median of its
// repetitions, metric by metric. Writes:
//   DIR/scaling.json                   environment, the medians per point, every raw sample
//   DIR/subscribers.md, subscriptions.md, payload.md   one table each; DIR/scaling.md all three
//   DIR/{subscribers,subscriptions,payload}.dat + .gp  gnuplot input (run.sh renders the PNGs)
// and prints the three tables on stdout. Exit 1 if a sample failed (the tables still come out).
#include <sys/utsname.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <ctime>
#include <fstream>
#include <iostream>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>
#include <sstream>
#include <string>
#include <vector>

namespace {

using json = nlohmann::json;

struct Options {
  std::string out;
  std::string command;
  std::string label;
  std::string mode = "full";
  int repeat = 0;
  std::string load_start;
  double wall_seconds = 0;
};

[[noreturn]] void usage(const std::string& why) {
  std::cerr << "scaling_report: " << why << "\nusage: scaling_report --out DIR [--command CMD] [--label TEXT] "
            << "[--mode smoke|full] [--repeat R] [--load-start L] [--wall-seconds S]\n";
  std::exit(2);
}

Options parse(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    const std::string f = argv[i];
    auto value = [&]() -> std::string {
      if (i + 1 >= argc) usage(f + " needs a value");
      return argv[++i];
    };
    if (f == "--out") o.out = value();
    else if (f == "--command") o.command = value();
    else if (f == "--label") o.label = value();
    else if (f == "--mode") o.mode = value();
    else if (f == "--repeat") o.repeat = std::atoi(value().c_str());
    else if (f == "--load-start") o.load_start = value();
    else if (f == "--wall-seconds") o.wall_seconds = std::atof(value().c_str());
    else usage("unknown flag " + f);
  }
  if (o.out.empty()) usage("--out is required");
  return o;
}

std::string read_file(const std::string& path) {
  std::ifstream f(path);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

std::string trim(std::string s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == ' ')) s.pop_back();
  return s;
}

std::string cpu_model() {
  std::istringstream in(read_file("/proc/cpuinfo"));
  for (std::string line; std::getline(in, line);) {
    if (line.rfind("model name", 0) == 0) {
      const auto colon = line.find(':');
      if (colon != std::string::npos) return trim(line.substr(colon + 2));
    }
  }
  return "unknown CPU";
}

std::string utc_now() {
  const std::time_t t = std::time(nullptr);
  std::tm tm{};
  ::gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%d %H:%M UTC", &tm);
  return buf;
}

double median(std::vector<double> v) {
  if (v.empty()) return NAN;
  std::sort(v.begin(), v.end());
  const std::size_t n = v.size();
  return n % 2 == 1 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

double load1(const std::string& load) { return load.empty() ? NAN : std::atof(load.c_str()); }

// ---------------------------------------------------------------------------------- formatting

std::string fmt(const char* f, double v) {
  char buf[64];
  std::snprintf(buf, sizeof buf, f, v);
  return buf;
}

std::string rate(double v) {  // messages per second
  if (std::isnan(v)) return "-";
  if (v >= 1e6) return fmt(v >= 1e8 ? "%.0f M/s" : v >= 1e7 ? "%.1f M/s" : "%.2f M/s", v / 1e6);
  if (v >= 1e3) return fmt(v >= 1e5 ? "%.0f k/s" : v >= 1e4 ? "%.1f k/s" : "%.2f k/s", v / 1e3);
  return fmt("%.0f /s", v);
}

std::string bytes_rate(double v) {
  if (std::isnan(v)) return "-";
  if (v >= 1e9) return fmt("%.2f GB/s", v / 1e9);
  if (v >= 1e6) return fmt(v >= 1e8 ? "%.0f MB/s" : "%.1f MB/s", v / 1e6);
  return fmt("%.1f kB/s", v / 1e3);
}

std::string nanos(double v) {
  if (std::isnan(v)) return "-";
  if (v < 1e4) return fmt("%.0f ns", v);
  if (v < 1e6) return fmt(v < 1e5 ? "%.1f us" : "%.0f us", v / 1e3);
  if (v < 1e9) return fmt(v < 1e7 ? "%.2f ms" : v < 1e8 ? "%.1f ms" : "%.0f ms", v / 1e6);
  return fmt("%.2f s", v / 1e9);
}

std::string percent(double v) {
  if (std::isnan(v)) return "-";
  if (v == 0) return "0";
  if (v < 0.01) return "<0.01 %";
  return fmt(v < 10 ? "%.2f %%" : "%.1f %%", v);
}

std::string size_name(double b) {
  const auto v = static_cast<std::uint64_t>(b);
  if (v >= (1u << 20) && v % (1u << 20) == 0) return std::to_string(v >> 20) + " MiB";
  if (v >= 1024 && v % 1024 == 0) return std::to_string(v >> 10) + " KiB";
  return std::to_string(v) + " B";
}

std::string count_name(double x) {
  std::string digits = std::to_string(static_cast<std::uint64_t>(x));
  std::string out;
  for (std::size_t i = 0; i < digits.size(); ++i) {
    if (i > 0 && (digits.size() - i) % 3 == 0) out += ',';
    out += digits[i];
  }
  return out;
}

std::string dat(double v) { return std::isnan(v) ? "NaN" : fmt("%.6g", v); }

// A markdown table: header, alignment (l/r per column), rows.
std::string table(const std::vector<std::string>& head, const std::string& align,
                  const std::vector<std::vector<std::string>>& rows) {
  std::vector<std::size_t> w(head.size(), 3);
  auto width = [](const std::string& s) {  // "µ" and "→" are one column each
    std::size_t n = 0;
    for (unsigned char c : s) n += (c & 0xC0) != 0x80;
    return n;
  };
  for (std::size_t c = 0; c < head.size(); ++c) w[c] = std::max(w[c], width(head[c]));
  for (const auto& r : rows) {
    for (std::size_t c = 0; c < r.size(); ++c) w[c] = std::max(w[c], width(r[c]));
  }
  auto cell = [&](const std::string& s, std::size_t c) {
    const std::string pad(w[c] - width(s), ' ');
    return align[c] == 'r' ? pad + s : s + pad;
  };
  std::ostringstream out;
  out << "|";
  for (std::size_t c = 0; c < head.size(); ++c) out << " " << cell(head[c], c) << " |";
  out << "\n|";
  for (std::size_t c = 0; c < head.size(); ++c) {
    out << (align[c] == 'r' ? " " + std::string(w[c] - 1, '-') + ": |" : " :" + std::string(w[c] - 1, '-') + " |");
  }
  out << "\n";
  for (const auto& r : rows) {
    out << "|";
    for (std::size_t c = 0; c < r.size(); ++c) out << " " << cell(r[c], c) << " |";
    out << "\n";
  }
  return out.str();
}

// ------------------------------------------------------------------------------------- samples

struct Sample {
  std::string curve, kind, load, error;
  double x = 0;
  int rep = 0;
  json data;
};

// (curve, x) -> kind -> samples
using Points = std::map<std::string, std::map<double, std::map<std::string, std::vector<Sample>>>>;

// The median over a point's samples of `kind` of f(data), ignoring failed samples and NaN.
template <class F>
double med(Points& p, const std::string& curve, double x, const std::string& kind, F f) {
  std::vector<double> v;
  for (const auto& s : p[curve][x][kind]) {
    if (!s.error.empty()) continue;
    const double d = f(s.data);
    if (!std::isnan(d)) v.push_back(d);
  }
  return median(v);
}

double get(const json& j, std::initializer_list<const char*> path) {
  const json* cur = &j;
  for (const char* k : path) {
    if (!cur->is_object() || !cur->contains(k)) return NAN;
    cur = &(*cur)[k];
  }
  return cur->is_number() ? cur->get<double>() : NAN;
}

// Max 1-minute load average seen by any sample of the point.
double point_load(Points& p, const std::string& curve, double x) {
  double m = NAN;
  for (const auto& [kind, samples] : p[curve][x]) {
    for (const auto& s : samples) {
      const double l = load1(s.load);
      if (!std::isnan(l)) m = std::isnan(m) ? l : std::max(m, l);
    }
  }
  return m;
}

std::string errors_of(Points& p, const std::string& curve, double x) {
  std::set<std::string> e;
  for (const auto& [kind, samples] : p[curve][x]) {
    for (const auto& s : samples) {
      if (!s.error.empty()) e.insert(kind + ": " + s.error);
    }
  }
  std::string out;
  for (const auto& s : e) out += (out.empty() ? "" : "; ") + s;
  return out;
}

double limit_p50(const json& d) { return get(d, {"p50_ns"}); }

double drop_pct(const json& d) {
  const double pub = get(d, {"published"});
  const double subs = get(d, {"subscribers"});
  const double dropped = get(d, {"dropped"});
  if (std::isnan(pub) || std::isnan(subs) || pub * subs == 0) return NAN;
  return 100.0 * dropped / (pub * subs);
}

double per_sub(const json& d, bool slowest) {
  if (!d.contains("subs") || !d["subs"].is_array() || d["subs"].empty()) return NAN;
  double sum = 0, lo = INFINITY;
  for (const auto& s : d["subs"]) {
    const double r = get(s, {"msgs_per_s"});
    sum += r;
    lo = std::min(lo, r);
  }
  return slowest ? lo : sum / static_cast<double>(d["subs"].size());
}

}  // namespace

int main(int argc, char** argv) {
  const Options o = parse(argc, argv);
  Points points;
  json raw_samples = json::array();
  int failures = 0;
  {
    std::ifstream in(o.out + "/samples.jsonl");
    if (!in) usage("cannot read " + o.out + "/samples.jsonl");
    int lineno = 0;
    for (std::string line; std::getline(in, line);) {
      ++lineno;
      if (trim(line).empty()) continue;
      json j = json::parse(line, nullptr, false);
      if (j.is_discarded() || !j.is_object()) {
        std::cerr << "scaling_report: samples.jsonl line " << lineno << " is not JSON: " << line.substr(0, 120) << "\n";
        ++failures;
        continue;
      }
      Sample s;
      s.curve = j.value("curve", "");
      s.kind = j.value("kind", "");
      s.x = j.value("x", 0.0);
      s.rep = j.value("rep", 0);
      s.load = j.value("load", "");
      s.error = j.value("error", "");
      if (j.contains("data")) s.data = j["data"];
      if (!s.error.empty()) ++failures;
      raw_samples.push_back(j);
      points[s.curve][s.x][s.kind].push_back(std::move(s));
    }
  }
  // BM_PublishRouteHit/<subs>[/iterations:N]: real_time of every repetition, ns per publish+poll.
  std::map<double, std::vector<double>> routehit;
  std::map<double, std::vector<double>> routehit_load;
  json routehit_raw;
  {
    const std::string text = read_file(o.out + "/raw/routehit.json");
    if (!text.empty()) {
      routehit_raw = json::parse(text, nullptr, false);
      if (routehit_raw.is_discarded()) {
        std::cerr << "scaling_report: raw/routehit.json is not JSON\n";
        ++failures;
        routehit_raw = nullptr;
      } else {
        double load = NAN;
        if (routehit_raw.contains("context") && routehit_raw["context"].contains("load_avg") &&
            !routehit_raw["context"]["load_avg"].empty()) {
          load = routehit_raw["context"]["load_avg"][0].get<double>();
        }
        for (const auto& b : routehit_raw.value("benchmarks", json::array())) {
          if (b.value("run_type", "iteration") != "iteration") continue;
          if (b.contains("error_occurred") && b["error_occurred"].get<bool>()) {
            std::cerr << "scaling_report: " << b.value("name", "?") << ": " << b.value("error_message", "") << "\n";
            ++failures;
            continue;
          }
          const std::string name = b.value("run_name", b.value("name", ""));
          static const std::string kPrefix = "BM_PublishRouteHit/";
          if (name.rfind(kPrefix, 0) != 0) continue;  // the warm-up benchmark
          const double subs = std::atof(name.c_str() + kPrefix.size());
          double ns = b.value("real_time", NAN);
          const std::string unit = b.value("time_unit", "ns");
          if (unit == "us") ns *= 1e3;
          if (unit == "ms") ns *= 1e6;
          routehit[subs].push_back(ns);
          routehit_load[subs].push_back(load);
        }
      }
    }
  }

  json env;
  env["date_utc"] = utc_now();
  env["label"] = o.label;
  env["mode"] = o.mode;
  env["repeat"] = o.repeat;
  env["command"] = o.command;
  env["cpu_model"] = cpu_model();
  env["cpus_online"] = static_cast<int>(::sysconf(_SC_NPROCESSORS_ONLN));
  utsname u{};
  if (::uname(&u) == 0) env["kernel"] = std::string(u.sysname) + " " + u.release;
  env["loadavg_start"] = o.load_start;
  {
    std::istringstream in(read_file("/proc/loadavg"));
    std::string a, b, c;
    in >> a >> b >> c;
    env["loadavg_end"] = a + " " + b + " " + c;
  }
  env["wall_seconds"] = o.wall_seconds;

  json medians = json::object();
  std::ostringstream all_md;

  // ------------------------------------------------------------------------ 1. subscribers
  std::string subs_md;
  {
    const std::string c = "subscribers";
    std::vector<std::vector<std::string>> rows;
    std::ofstream d(o.out + "/subscribers.dat");
    d << "# subs delivered_all per_sub slowest pub p50 p99 last_p99 s0_p50 s0_p99 s0_last_p99 drop_pct limit_p50 (medians)\n";
    medians[c] = json::array();
    for (auto& [x, kinds] : points[c]) {
      (void)kinds;
      const double pub = med(points, c, x, "tput", [](const json& j) { return get(j, {"pub_msgs_per_s"}); });
      const double agg = med(points, c, x, "tput", [](const json& j) { return get(j, {"sub_msgs_per_s"}); });
      const double mean = med(points, c, x, "tput", [](const json& j) { return per_sub(j, false); });
      const double slow = med(points, c, x, "tput", [](const json& j) { return per_sub(j, true); });
      const double drop = med(points, c, x, "tput", drop_pct);
      const double p50 = med(points, c, x, "fanout", [](const json& j) { return get(j, {"latency_ns", "p50"}); });
      const double p99 = med(points, c, x, "fanout", [](const json& j) { return get(j, {"latency_ns", "p99"}); });
      const double l99 = med(points, c, x, "fanout", [](const json& j) { return get(j, {"last_ns", "p99"}); });
      const double s50 = med(points, c, x, "fanout_spin0", [](const json& j) { return get(j, {"latency_ns", "p50"}); });
      const double s99 = med(points, c, x, "fanout_spin0", [](const json& j) { return get(j, {"latency_ns", "p99"}); });
      const double sl99 = med(points, c, x, "fanout_spin0", [](const json& j) { return get(j, {"last_ns", "p99"}); });
      const double load = point_load(points, c, x);
      const double lim = med(points, c, x, "probe", limit_p50);
      medians[c].push_back({{"subs", x}, {"limit_p50_ns", lim}, {"pub_msgs_per_s", pub}, {"delivered_msgs_per_s", agg},
                            {"per_sub_msgs_per_s", mean}, {"slowest_sub_msgs_per_s", slow}, {"dropped_pct", drop},
                            {"latency_p50_ns", p50}, {"latency_p99_ns", p99}, {"all_have_it_p99_ns", l99},
                            {"spin0_latency_p50_ns", s50}, {"spin0_latency_p99_ns", s99},
                            {"spin0_all_have_it_p99_ns", sl99}, {"load1_max", load},
                            {"errors", errors_of(points, c, x)}});
      rows.push_back({count_name(x), rate(pub), rate(agg), rate(mean), rate(slow), percent(drop), nanos(p50),
                      nanos(p99), nanos(l99), nanos(s50), nanos(s99), nanos(sl99), nanos(lim), fmt("%.2f", load)});
      d << x << " " << dat(agg) << " " << dat(mean) << " " << dat(slow) << " " << dat(pub) << " " << dat(p50) << " "
        << dat(p99) << " " << dat(l99) << " " << dat(s50) << " " << dat(s99) << " " << dat(sl99) << " " << dat(drop)
        << " " << dat(lim) << "\n";
    }
    subs_md = table({"subscribers", "published", "delivered (all)", "per subscriber", "slowest", "dropped",
                     "p50", "p99", "p99 all have it", "p50 spin 0", "p99 spin 0", "p99 all, spin 0", "limit",
                     "load"},
                    "rrrrrrrrrrrrrr", rows);
    std::ofstream md(o.out + "/subscribers.md");
    md << "## Subscribers: 1 publisher -> M subscriber processes, 16 B\n\n" << subs_md;
  }

  // ---------------------------------------------------------------------- 2. subscriptions
  std::string subn_md;
  {
    const std::string c = "subscriptions";
    std::set<double> xs;
    for (const auto& [x, k] : points[c]) xs.insert(x);
    for (const auto& [x, v] : routehit) xs.insert(x);
    std::vector<std::vector<std::string>> rows;
    std::ofstream d(o.out + "/subscriptions.dat");
    d << "# plot_x idle_subs publish_ns delivered p50 p99 drop_pct subscribe_s publish_min_ns limit_p50 (medians; plot_x = max(idle_subs, 1))\n";
    medians[c] = json::array();
    for (const double x : xs) {
      const double bm = routehit.count(x) ? median(routehit[x]) : NAN;
      const double bm_min =
          routehit.count(x) && !routehit[x].empty() ? *std::min_element(routehit[x].begin(), routehit[x].end()) : NAN;
      const double lim = points[c].count(x) ? med(points, c, x, "probe", limit_p50) : NAN;
      const double agg = med(points, c, x, "tput", [](const json& j) { return get(j, {"sub_msgs_per_s"}); });
      const double drop = med(points, c, x, "tput", drop_pct);
      const double p50 = med(points, c, x, "lat", [](const json& j) { return get(j, {"latency_ns", "p50"}); });
      const double p99 = med(points, c, x, "lat", [](const json& j) { return get(j, {"latency_ns", "p99"}); });
      const double sub_s = med(points, c, x, "idle", [](const json& j) { return get(j, {"seconds"}); });
      double load = points[c].count(x) ? point_load(points, c, x) : NAN;
      if (routehit_load.count(x)) {
        for (const double l : routehit_load[x]) {
          if (!std::isnan(l)) load = std::isnan(load) ? l : std::max(load, l);
        }
      }
      medians[c].push_back({{"idle_subscriptions", x}, {"publish_poll_ns", bm}, {"publish_poll_min_ns", bm_min},
                            {"publish_poll_runs", routehit.count(x) ? routehit[x].size() : 0}, {"limit_p50_ns", lim},
                            {"delivered_msgs_per_s", agg},
                            {"dropped_pct", drop}, {"latency_p50_ns", p50}, {"latency_p99_ns", p99},
                            {"subscribe_seconds", sub_s}, {"load1_max", load},
                            {"errors", points[c].count(x) ? errors_of(points, c, x) : ""}});
      rows.push_back({count_name(x), std::isnan(bm) ? "-" : fmt("%.1f ns", bm),
                      std::isnan(bm_min) ? "-" : fmt("%.1f ns", bm_min), rate(agg), percent(drop), nanos(p50),
                      nanos(p99), std::isnan(sub_s) ? "-" : fmt("%.2f s", sub_s), nanos(lim), fmt("%.2f", load)});
      d << std::max(x, 1.0) << " " << x << " " << dat(bm) << " " << dat(agg) << " " << dat(p50) << " " << dat(p99)
        << " " << dat(drop) << " " << dat(sub_s) << " " << dat(bm_min) << " " << dat(lim) << "\n";
    }
    subn_md = table({"non-matching subscriptions", "publish + poll, median", "best run", "1→1 delivered", "dropped",
                     "one-way p50", "one-way p99", "time to subscribe them", "limit", "load"},
                    "rrrrrrrrrr", rows);
    std::ofstream md(o.out + "/subscriptions.md");
    md << "## Subscriptions: publish cost and 1->1 with K idle non-matching subscriptions\n\n" << subn_md;
  }

  // ---------------------------------------------------------------------------- 3. payload
  std::string pay_md;
  {
    const std::string c = "payload";
    std::vector<std::vector<std::string>> rows;
    std::ofstream d(o.out + "/payload.dat");
    d << "# size delivered_msgs delivered_bytes p50 p99 drop_pct pub_msgs (medians)\n";
    medians[c] = json::array();
    for (auto& [x, kinds] : points[c]) {
      (void)kinds;
      const double pub = med(points, c, x, "tput", [](const json& j) { return get(j, {"pub_msgs_per_s"}); });
      const double agg = med(points, c, x, "tput", [](const json& j) { return get(j, {"sub_msgs_per_s"}); });
      const double bytes = med(points, c, x, "tput", [](const json& j) { return get(j, {"sub_bytes_per_s"}); });
      const double drop = med(points, c, x, "tput", drop_pct);
      const double p50 = med(points, c, x, "lat", [](const json& j) { return get(j, {"latency_ns", "p50"}); });
      const double p99 = med(points, c, x, "lat", [](const json& j) { return get(j, {"latency_ns", "p99"}); });
      const double load = point_load(points, c, x);
      const double lim = med(points, c, x, "probe", limit_p50);
      medians[c].push_back({{"size", x}, {"limit_p50_ns", lim}, {"pub_msgs_per_s", pub}, {"delivered_msgs_per_s", agg},
                            {"delivered_bytes_per_s", bytes}, {"dropped_pct", drop}, {"latency_p50_ns", p50},
                            {"latency_p99_ns", p99}, {"load1_max", load}, {"errors", errors_of(points, c, x)}});
      rows.push_back({size_name(x), rate(pub), rate(agg), bytes_rate(bytes), percent(drop), nanos(p50), nanos(p99),
                      nanos(lim), fmt("%.2f", load)});
      d << x << " " << dat(agg) << " " << dat(bytes) << " " << dat(p50) << " " << dat(p99) << " " << dat(drop) << " "
        << dat(pub) << "\n";
    }
    pay_md = table({"payload", "published", "1→1 delivered", "delivered bytes", "dropped", "one-way p50",
                    "one-way p99", "limit", "load"},
                   "rrrrrrrrr", rows);
    std::ofstream md(o.out + "/payload.md");
    md << "## Payload: 1 publisher -> 1 subscriber\n\n" << pay_md;
  }

  // ------------------------------------------------------------------------------- report
  std::ostringstream envs;
  envs << o.mode << " run, " << env["date_utc"].get<std::string>();
  if (!o.label.empty()) envs << ", " << o.label;
  envs << "; " << env["cpu_model"].get<std::string>() << ", " << env["cpus_online"].get<int>() << " CPUs, "
       << env.value("kernel", std::string("?")) << "\n";
  envs << "load average: " << o.load_start << " (start), " << env["loadavg_end"].get<std::string>() << " (end)";
  if (o.wall_seconds > 0) envs << "; " << fmt("%.0f", o.wall_seconds) << " s in all";
  envs << "\n";
  if (o.repeat > 0) envs << "every cell: median of " << o.repeat << " run(s), metric by metric\n";
  if (!o.command.empty()) envs << "command: " << o.command << "\n";

  all_md << "# bus scaling curves\n\n" << "```\n" << envs.str() << "```\n\n"
         << "## 1. Subscribers: 1 publisher -> M subscriber processes, 16 B\n\n" << subs_md << "\n"
         << "## 2. Subscriptions: K idle non-matching subscriptions\n\n" << subn_md << "\n"
         << "## 3. Payload: 1 publisher -> 1 subscriber\n\n" << pay_md;
  {
    std::ofstream f(o.out + "/scaling.md");
    f << all_md.str();
  }
  std::cout << "\n1. subscribers (1 publisher -> M subscriber processes, 16 B)\n" << subs_md
            << "\n2. subscriptions (K idle non-matching subscriptions)\n" << subn_md
            << "\n3. payload (1 -> 1)\n" << pay_md << "\n" << envs.str();

  // -------------------------------------------------------------------------------- plots
  const std::string title_tail = " (" + o.mode + " run, " + env["date_utc"].get<std::string>() + ")";
  auto gp_head = [&](std::ofstream& gp, const std::string& name) {
    gp << "# gnuplot " << o.out << "/" << name << ".gp  (run.sh does this)\n"
       << "set terminal pngcairo size 1400,560 noenhanced font ',10'\n"
       << "set output '" << o.out << "/" << name << ".png'\n"
       << "set datafile missing 'NaN'\nset grid\n"
       << "set multiplot layout 1,2\n";
  };
  const std::string ns_tics =
      "set ytics ('100 ns' 100, '300 ns' 300, '1 us' 1e3, '3 us' 3e3, '10 us' 1e4, '30 us' 3e4, '100 us' 1e5, "
      "'300 us' 3e5, '1 ms' 1e6, '3 ms' 3e6, '10 ms' 1e7, '30 ms' 3e7, '100 ms' 1e8)\n";
  // x ranges a little wider than the points, so the tics at the ends show.
  auto xrange = [&](const std::string& c, double lo_floor) {
    double lo = INFINITY, hi = 0;
    for (const auto& [x, k] : points[c]) {
      lo = std::min(lo, std::max(x, lo_floor));
      hi = std::max(hi, x);
    }
    if (c == "subscriptions") {
      for (const auto& [x, v] : routehit) {
        lo = std::min(lo, std::max(x, lo_floor));
        hi = std::max(hi, x);
      }
    }
    if (hi <= 0) return std::string();
    return "set xrange [" + fmt("%g", lo / 1.25) + ":" + fmt("%g", hi * 1.25) + "]\n";
  };
  {
    std::ofstream gp(o.out + "/subscribers.gp");
    const std::string f = "'" + o.out + "/subscribers.dat'";
    gp_head(gp, "subscribers");
    gp << xrange("subscribers", 1);
    gp << "set title '1 -> M fan-out, 16 B: throughput" << title_tail << "'\n"
       << "set logscale xy 2\nset logscale y 10\nset xtics (1,2,4,8,16,32,64)\nset xlabel 'subscriber processes'\n"
       << "set ylabel 'messages/s'\nset format y '%.0s%c'\nset key bottom left\n"
       << "plot " << f << " using 1:2 with linespoints lw 2 title 'delivered, all subscribers', "
       << f << " using 1:3 with linespoints lw 2 title 'per subscriber (mean)', "
       << f << " using 1:5 with linespoints lw 2 dt 2 title 'published'\n"
       << "set title 'publish -> receive latency vs subscribers (closed loop, subscribers share 1 CPU)'\n"
       << "set format y '%g'\nset ylabel 'latency'\nset key top left\n"
       << ns_tics
       << "plot " << f << " using 1:6 with linespoints lw 2 title 'p50, spin 50 us (default)', "
       << f << " using 1:7 with linespoints lw 2 title 'p99, spin 50 us (default)', "
       << f << " using 1:9 with linespoints lw 2 dt 2 title 'p50, spin 0 (futex every time)', "
       << f << " using 1:10 with linespoints lw 2 dt 2 title 'p99, spin 0 (futex every time)'\n"
       << "unset multiplot\n";
  }
  {
    std::ofstream gp(o.out + "/subscriptions.gp");
    const std::string f = "'" + o.out + "/subscriptions.dat'";
    gp_head(gp, "subscriptions");
    gp << xrange("subscriptions", 1);
    gp << "set title 'publish + poll cost (BM_PublishRouteHit) vs idle subscriptions" << title_tail
       << "'\n"
       << "set logscale x 10\nset xtics ('0' 1, '10' 10, '100' 100, '1k' 1000, '10k' 1e4, '100k' 1e5)\n"
       << "set xlabel 'idle non-matching subscriptions'\nset ylabel 'ns per publish + poll'\nset yrange [0:*]\n"
       << "set y2label '1->1 delivered messages/s'\nset y2tics\nset format y2 '%.0s%c'\nset y2range [0:*]\n"
       << "set key bottom left\n"
       << "plot " << f << " using 1:3 with linespoints lw 2 title 'publish + poll, ns, median (left)', "
       << f << " using 1:9 with linespoints lw 2 dt 2 title 'publish + poll, ns, best run (left)', "
       << f << " using 1:4 axes x1y2 with linespoints lw 2 title '1->1 delivered msgs/s, 16 B, 4 KiB rings (right)'\n"
       << "unset y2tics\nunset y2label\nset yrange [*:*]\n"
       << "set title '1->1 one-way latency (bus bench --latency, 16 B) with K idle subscriptions'\n"
       << "set logscale y 10\nset ylabel 'one-way latency'\nset key top left\n"
       << ns_tics
       << "plot " << f << " using 1:5 with linespoints lw 2 title 'p50', " << f
       << " using 1:6 with linespoints lw 2 title 'p99'\n"
       << "unset multiplot\n";
  }
  {
    std::ofstream gp(o.out + "/payload.gp");
    const std::string f = "'" + o.out + "/payload.dat'";
    gp_head(gp, "payload");
    gp << xrange("payload", 1);
    gp << "set title '1->1 throughput vs payload" << title_tail << "'\n"
       << "set logscale x 2\nset logscale y 10\n"
       << "set xtics ('16 B' 16, '256 B' 256, '4 KiB' 4096, '64 KiB' 65536, '1 MiB' 1048576)\n"
       << "set xlabel 'payload'\nset ylabel 'messages/s delivered'\nset format y '%.0s%c'\n"
       << "set y2label 'bytes/s delivered'\nset logscale y2 10\nset y2tics\nset format y2 '%.0s%cB/s'\n"
       << "set key bottom left\n"
       << "plot " << f << " using 1:2 with linespoints lw 2 title 'messages/s (left)', "
       << f << " using 1:3 axes x1y2 with linespoints lw 2 title 'bytes/s (right)'\n"
       << "unset y2tics\nunset y2label\nunset logscale y2\nset format y '%g'\n"
       << "set title '1->1 one-way latency vs payload (bus bench --latency, RTT/2)'\n"
       << "set ylabel 'one-way latency'\nset key top left\n"
       << ns_tics
       << "plot " << f << " using 1:4 with linespoints lw 2 title 'p50', " << f
       << " using 1:5 with linespoints lw 2 title 'p99'\n"
       << "unset multiplot\n";
  }

  json results = {{"env", env}, {"medians", medians}, {"samples", raw_samples}, {"routehit", routehit_raw}};
  {
    std::ofstream f(o.out + "/scaling.json");
    f << results.dump(1) << "\n";
  }
  std::cout << "\nwrote " << o.out << "/scaling.json, scaling.md, subscribers.md, subscriptions.md, payload.md\n";
  if (failures > 0) std::cerr << "scaling_report: " << failures << " sample(s) failed (see scaling.json)\n";
  return failures == 0 ? 0 : 1;
}

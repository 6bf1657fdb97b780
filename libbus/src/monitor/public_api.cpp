// monitor/public_api.cpp — bus/monitor.hpp: snapshots, their JSON, and the buses of this host.
#include <dirent.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <cstddef>
#include <cstring>

#include "bus/monitor.hpp"
#include "monitor/endpoints.hpp"
#include "monitor/snapshot.hpp"
#include "os/process.hpp"
#include "proto/control.hpp"
#include "subject/subject.hpp"

namespace bus::monitor {
namespace {

constexpr std::string_view kShmDir = "/dev/shm/";
constexpr std::string_view kObjectPrefix = "bus.";

/// Holds the bus's single-broker lock (its abstract control socket name) while alive: no broker
/// can start on the bus meanwhile. Empty when a broker holds it.
class BrokerLock {
 public:
  explicit BrokerLock(std::string_view bus_name) {
    int err = 0;
    fd_ = detail::bind_control_socket(bus_name, 0, err);
  }
  ~BrokerLock() {
    if (fd_ >= 0) ::close(fd_);
  }
  BrokerLock(const BrokerLock&) = delete;
  BrokerLock& operator=(const BrokerLock&) = delete;
  bool held() const noexcept { return fd_ >= 0; }

 private:
  int fd_ = -1;
};

BusListing look_at(const std::string& name) {
  BusListing b;
  b.name = name;
  b.path = std::string(kShmDir) + std::string(kObjectPrefix) + name;
  struct stat st {};
  if (::stat(b.path.c_str(), &st) == 0) b.size = static_cast<std::uint64_t>(st.st_size);
  // The header first: a file without a bus's magic would make open() wait for it (2 s).
  const auto header = detail::Segment::peek(name);
  if (!header.valid_magic) {
    b.readable = false;
    b.recognised = false;
    b.error = "no bus segment header (not one of ours, or never finished)";
    return b;
  }
  auto seg = detail::Segment::open_read_only(name);
  if (!seg) {
    b.readable = false;
    b.error = seg.error().message;
    const auto peek = detail::Segment::peek(name);
    b.recognised = peek.valid_magic;
    b.broker_pid = peek.broker_pid;
    b.broker_alive = peek.broker_pid != 0 && detail::process_alive(static_cast<pid_t>(peek.broker_pid),
                                                                     peek.broker_start_ticks);
    return b;
  }
  const BusSnapshot snap = detail::monitor::take_snapshot(*seg, name);
  b.broker_pid = snap.broker_pid;
  b.broker_alive = snap.broker_alive;
  for (const ClientSnapshot& c : snap.clients) {
    ++b.clients;
    if (c.alive && !c.internal) ++b.live_clients;
  }
  return b;
}

}  // namespace

Result<BusSnapshot> snapshot(std::string_view bus_name) {
  auto seg = detail::Segment::open_read_only(bus_name);
  if (!seg) return std::move(seg).error();
  return detail::monitor::take_snapshot(*seg, std::string(bus_name));
}

std::string varz_json(const BusSnapshot& s) { return detail::monitor::varz(s).dump(2); }

Result<std::string> connz_json(const BusSnapshot& s, const ConnzOptions& options) {
  auto sort = detail::monitor::parse_conn_sort(options.sort);
  if (!sort) {
    return make_error(Errc::invalid_argument, "unknown sort key '" + options.sort +
                                                  "' (cid, start, subs, msgs_to, msgs_from, bytes_to, "
                                                  "bytes_from, dropped, uptime)");
  }
  return detail::monitor::connz(s, {*sort, options.offset, options.limit, options.subs}).dump(2);
}

Result<std::string> subsz_json(const BusSnapshot& s, const SubszOptions& options) {
  auto sort = detail::monitor::parse_sub_sort(options.sort);
  if (!sort) {
    return make_error(Errc::invalid_argument, "unknown sort key '" + options.sort +
                                                  "' (sid, subject, msgs, bytes, pending, dropped, high_water)");
  }
  if (!options.test.empty()) {
    if (auto st = detail::validate_publish_subject(options.test); !st) return std::move(st).error();
  }
  return detail::monitor::subsz(s, {options.subs, *sort, options.offset, options.limit, options.test}).dump(2);
}

std::string healthz_json(const BusSnapshot& s) { return detail::monitor::healthz(s).dump(); }
std::string prometheus_text(const BusSnapshot& s) { return detail::monitor::prometheus(s); }

std::vector<BusListing> list_buses() {
  std::vector<BusListing> out;
  DIR* dir = ::opendir(std::string(kShmDir).c_str());
  if (dir == nullptr) return out;
  while (dirent* e = ::readdir(dir)) {
    const std::string_view file = e->d_name;
    if (file.size() <= kObjectPrefix.size() || file.substr(0, kObjectPrefix.size()) != kObjectPrefix) continue;
    const std::string name(file.substr(kObjectPrefix.size()));
    if (!detail::validate_bus_name(name)) continue;  // not one of ours (bus.* made by something else)
    out.push_back(look_at(name));
  }
  ::closedir(dir);
  std::sort(out.begin(), out.end(), [](const BusListing& a, const BusListing& b) { return a.name < b.name; });
  return out;
}

std::vector<CleanOutcome> clean_stale_buses(bool dry_run, const std::vector<std::string>& only) {
  std::vector<CleanOutcome> out;
  for (const BusListing& b : list_buses()) {
    if (!only.empty() && std::find(only.begin(), only.end(), b.name) == only.end()) continue;
    CleanOutcome o{b.name, false, {}};
    // The broker's own lock first: while we hold it no broker can start and adopt the segment
    // under our feet, and if we cannot take it a broker is running (whatever the header says).
    BrokerLock lock(b.name);
    if (!lock.held() || b.broker_alive) {
      o.why = "served by broker pid " + std::to_string(b.broker_pid);
    } else if (!b.readable && (b.recognised || ::access(b.path.c_str(), W_OK) != 0)) {
      // Another user's, or another version's (whose clients we cannot judge): not ours to judge.
      o.why = "left alone: " + b.error;
    } else if (b.live_clients > 0) {
      // Their data path goes on without a broker, and the next broker adopts the segment.
      o.why = std::to_string(b.live_clients) + " live client(s) still use it; a new broker adopts it";
    } else {
      const BusListing again = look_at(b.name);  // under the lock: nobody attached since?
      if (again.live_clients > 0) {
        o.why = "a client attached meanwhile";
      } else {
        o.removed = dry_run || detail::Segment::remove(b.name);
        o.why = b.readable ? "its broker (pid " + std::to_string(b.broker_pid) + ") is dead and no live client uses it"
                           : "not a readable bus segment (" + b.error + ")";
        if (!o.removed) o.why = "could not remove " + b.path;
      }
    }
    out.push_back(std::move(o));
  }
  return out;
}

}  // namespace bus::monitor

// stream/store.cpp — the streams of one bus, on disk.
#include "stream/store.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <xxhash.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "journal/journal.hpp"
#include "os/files.hpp"
#include "os/process.hpp"
#include "subject/subject.hpp"

namespace bus::detail::stream {


std::string default_state_dir(std::string_view bus_name) {
  std::string base;
  if (const char* dir = std::getenv("BUS_STATE_DIR"); dir != nullptr && *dir != '\0') {
    base = dir;
  } else if (::geteuid() == 0) {
    base = "/var/lib/bus";
  } else if (const char* xdg = std::getenv("XDG_STATE_HOME"); xdg != nullptr && *xdg == '/') {
    base = std::string(xdg) + "/bus";
  } else if (const char* home = std::getenv("HOME"); home != nullptr && *home == '/') {
    base = std::string(home) + "/.local/state/bus";
  } else {
    base = "/var/lib/bus";
  }
  return base + "/" + std::string(bus_name);
}

Result<StreamStore> StreamStore::open(std::string state_dir) {
  if (auto st = make_private_dir(state_dir + "/streams"); !st) return std::move(st).error();
  if (auto st = make_private_dir(state_dir); !st) return std::move(st).error();
  // One owner at a time (the broker): two brokers on one store would hand out the same
  // journals under different rules. flock: the kernel drops it when its holder dies.
  const std::string lock = state_dir + "/lock";
  const int fd = ::open(lock.c_str(), O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
  if (fd < 0) return make_error(Errc::io_error, errno_message(("open " + lock).c_str(), errno));
  if (::flock(fd, LOCK_EX | LOCK_NB) != 0) {
    ::close(fd);
    return make_error(Errc::already_exists, "the stream store " + state_dir + " is in use by another broker");
  }
  StreamStore store;
  store.dir_ = std::move(state_dir);
  store.lock_fd_ = fd;
  // Leftovers of an add or a remove that a crash interrupted (see add() and remove()).
  if (DIR* d = ::opendir((store.dir_ + "/streams").c_str())) {
    std::vector<std::string> stale;
    while (dirent* e = ::readdir(d)) {
      const std::string name = e->d_name;
      if (name.rfind(".new-", 0) == 0 || name.rfind(".trash-", 0) == 0) stale.push_back(name);
    }
    ::closedir(d);
    for (const auto& name : stale) {
      std::error_code ec;
      std::filesystem::remove_all(store.dir_ + "/streams/" + name, ec);
    }
  }
  return store;
}

StreamStore::StreamStore(StreamStore&& other) noexcept
    : dir_(std::move(other.dir_)), lock_fd_(std::exchange(other.lock_fd_, -1)) {}

StreamStore& StreamStore::operator=(StreamStore&& other) noexcept {
  if (this != &other) {
    if (lock_fd_ >= 0) ::close(lock_fd_);
    dir_ = std::move(other.dir_);
    lock_fd_ = std::exchange(other.lock_fd_, -1);
  }
  return *this;
}

StreamStore::~StreamStore() {
  if (lock_fd_ >= 0) ::close(lock_fd_);
}

namespace {
// Where memory streams keep their journals: the tmpfs every Linux mounts for shared memory.
constexpr std::string_view kMemoryRoot = "/dev/shm";
}  // namespace

std::string StreamStore::memory_dir() const {
  char id[17];
  std::snprintf(id, sizeof id, "%016llx", static_cast<unsigned long long>(XXH3_64bits(dir_.data(), dir_.size())));
  return std::string(kMemoryRoot) + "/bus-streams-" + std::to_string(::geteuid()) + "-" + id;
}

std::string StreamStore::journal_dir(const StreamConfig& config) const {
  if (config.storage == Storage::memory) return memory_dir() + "/" + config.name;
  return stream_dir(config.name) + "/journal";
}

Status StreamStore::prepare_journal_dir(const StreamConfig& config) const {
  if (config.storage != Storage::memory) return {};
  return make_private_dir(memory_dir());
}

Status StreamStore::check_overlap(const StreamConfig& config, std::vector<std::string>* damaged) const {
  for (const StreamConfig& other : list(damaged)) {
    if (other.name == config.name) continue;
    for (const std::string& mine : config.subjects) {
      for (const std::string& theirs : other.subjects) {
        if (subjects_overlap(mine, theirs)) {
          return make_error(Errc::invalid_argument, "subjects overlap with an existing stream: '" + mine + "' of '" +
                                                        config.name + "' and '" + theirs + "' of '" + other.name + "'");
        }
      }
    }
  }
  return {};
}

Status StreamStore::update(StreamConfig config) {
  normalize(config);
  if (auto st = validate(config); !st) return st;
  if (auto st = check_overlap(config, nullptr); !st) return st;
  if (auto st = write_file_atomically(stream_dir(config.name) + "/stream.json", to_json(config)); !st) return st;
  return sync_directory(stream_dir(config.name));
}

Status StreamStore::add(StreamConfig config) {
  normalize(config);
  if (auto st = validate(config); !st) return st;
  std::vector<std::string> damaged;
  std::error_code ec;  // the non-throwing overloads: the broker's loop must never see an exception
  for (const StreamConfig& other : list(&damaged)) {
    if (other.name == config.name) return make_error(Errc::already_exists, "stream '" + config.name + "' exists");
  }
  if (auto st = check_overlap(config, nullptr); !st) return st;
  if (std::find(damaged.begin(), damaged.end(), config.name) != damaged.end() ||
      std::filesystem::exists(stream_dir(config.name), ec)) {
    return make_error(Errc::already_exists, "stream '" + config.name + "' exists (its configuration is damaged)");
  }
  // Built aside, then renamed into place: a crash leaves either no stream or a whole one
  // (open() sweeps the leftover), never a directory that blocks the name forever.
  const std::string building = dir_ + "/streams/.new-" + config.name;
  std::filesystem::remove_all(building, ec);
  if (auto st = make_private_dir(building); !st) return st;
  journal::JournalOptions options;
  options.sync = config.sync;
  {
    // A memory stream's journal lives in tmpfs; one left by a removed stream of the name goes.
    std::string dir = building + "/journal";
    if (config.storage == Storage::memory) {
      if (auto st = prepare_journal_dir(config); !st) return st;
      dir = journal_dir(config);
      std::filesystem::remove_all(dir, ec);
    }
    auto journal = journal::Journal::open(dir, options);
    if (!journal) return std::move(journal).error();
  }
  if (auto st = write_file_atomically(building + "/stream.json", to_json(config)); !st) return st;
  if (::rename(building.c_str(), stream_dir(config.name).c_str()) != 0) {
    return make_error(Errc::io_error, errno_message(("rename " + building).c_str(), errno));
  }
  return sync_directory(dir_ + "/streams");
}

Result<StreamConfig> StreamStore::info(const std::string& name) const {
  StreamConfig probe;
  probe.name = name;
  probe.subjects = {"x"};
  if (auto st = validate(probe); !st) return std::move(st).error();  // no path tricks in a name
  std::ifstream in(stream_dir(name) + "/stream.json");
  if (!in) return make_error(Errc::invalid_argument, "no stream '" + name + "'");
  std::stringstream text;
  text << in.rdbuf();
  auto config = from_json(text.str());
  if (!config) {
    return make_error(Errc::journal_corrupt, "stream '" + name + "': " + stream_dir(name) + "/stream.json: " +
                                                 config.error().message);
  }
  if (config->name != name) {
    return make_error(Errc::journal_corrupt, "stream '" + name + "': its stream.json names '" + config->name + "'");
  }
  return config;
}

std::vector<StreamConfig> StreamStore::list(std::vector<std::string>* damaged) const {
  std::vector<StreamConfig> out;
  if (DIR* d = ::opendir((dir_ + "/streams").c_str())) {
    while (dirent* e = ::readdir(d)) {
      const std::string name = e->d_name;
      if (name.empty() || name[0] == '.') continue;  // ".", "..", and add/remove in progress
      auto config = info(name);
      if (config) {
        out.push_back(std::move(config).value());
      } else if (damaged != nullptr) {
        damaged->push_back(name);
      }
    }
    ::closedir(d);
  }
  std::sort(out.begin(), out.end(), [](const StreamConfig& a, const StreamConfig& b) { return a.name < b.name; });
  return out;
}

Status StreamStore::remove(const std::string& name) {
  auto config = info(name);
  if (!config && config.error().code == Errc::invalid_argument) return std::move(config).error();
  // Out of the way first (one rename: the stream is gone at once, and a crash during the
  // slow part leaves a leftover that open() sweeps), then deleted.
  const std::string trash = dir_ + "/streams/.trash-" + name + "-" + std::to_string(realtime_ns());
  if (::rename(stream_dir(name).c_str(), trash.c_str()) != 0) {
    return make_error(Errc::io_error, errno_message(("remove stream " + name).c_str(), errno));
  }
  if (auto st = sync_directory(dir_ + "/streams"); !st) return st;
  // The stream is gone with the rename; what remove_all leaves (a file a late publisher or the
  // broker's preparer made meanwhile) is swept by the next open().
  std::error_code ec;
  std::filesystem::remove_all(trash, ec);
  if (config && config->storage == Storage::memory) std::filesystem::remove_all(journal_dir(*config), ec);
  return {};
}

std::optional<StreamConfig> StreamStore::capturing(std::string_view subject) const {
  for (StreamConfig& config : list()) {
    for (const std::string& pattern : config.subjects) {
      if (subject_matches(pattern, subject)) return std::move(config);
    }
  }
  return std::nullopt;
}

}  // namespace bus::detail::stream

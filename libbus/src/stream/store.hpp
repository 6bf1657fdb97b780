// stream/store.hpp — the streams of one bus, on disk under its state directory:
//
//   <state dir>/                      mode 0700; default_state_dir()
//     streams/<name>/stream.json      mode 0600; the StreamConfig (written whole, then renamed)
//     streams/<name>/journal/         the stream's journal (docs/design/journal.md)
//   /dev/shm/bus-streams-<uid>-<id>/<name>/   the journal of a storage memory stream: tmpfs,
//                                     gone with a reboot (<id>: a hash of the state directory)
//
// Adding, listing, inspecting and removing streams. The broker owns the StreamStore (one
// broker per store: it holds <state dir>/lock) and serves the `bus stream` verbs from it.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "bus/result.hpp"
#include "stream/config.hpp"

namespace bus::detail::stream {

/// Where a bus keeps its streams unless configured: $BUS_STATE_DIR/<bus>, else /var/lib/bus/<bus>
/// for root, else $XDG_STATE_HOME/bus/<bus> or ~/.local/state/bus/<bus>. Never /tmp.
std::string default_state_dir(std::string_view bus_name);

class StreamStore {
 public:
  /// Opens (making it, 0700, if missing) the state directory, and holds it: a second open
  /// while this one lives (another broker) fails with Errc::already_exists.
  static Result<StreamStore> open(std::string state_dir);
  StreamStore(StreamStore&& other) noexcept;
  StreamStore& operator=(StreamStore&& other) noexcept;
  StreamStore(const StreamStore&) = delete;
  StreamStore& operator=(const StreamStore&) = delete;
  ~StreamStore();

  /// Adds a stream: its configuration must be valid, its name new, and none of its subjects
  /// may overlap another stream's (Errc::already_exists / invalid_argument otherwise). Makes
  /// its journal.
  Status add(StreamConfig config);
  /// Replaces the configuration of an existing stream (its subjects may not overlap another's).
  Status update(StreamConfig config);
  /// The configuration of `name` (Errc::invalid_argument "no stream NAME" if none).
  Result<StreamConfig> info(const std::string& name) const;
  /// Every stream's configuration, by name; a stream whose file is damaged is left out and
  /// named in `damaged` (if given).
  std::vector<StreamConfig> list(std::vector<std::string>* damaged = nullptr) const;
  /// Removes the stream and its journal.
  Status remove(const std::string& name);
  /// The directory of the stream's journal: under its stream directory (storage file), or in
  /// /dev/shm (storage memory; made, with its parent, by prepare_journal_dir()).
  std::string journal_dir(const StreamConfig& config) const;
  /// Makes the parent of a memory stream's journal directory if missing (after a reboot,
  /// tmpfs is empty); nothing for a file stream.
  Status prepare_journal_dir(const StreamConfig& config) const;
  /// The stream whose subjects capture `subject`, if any (at most one: they do not overlap).
  std::optional<StreamConfig> capturing(std::string_view subject) const;

  const std::string& state_dir() const noexcept { return dir_; }

 private:
  std::string stream_dir(const std::string& name) const { return dir_ + "/streams/" + name; }
  std::string memory_dir() const;  // /dev/shm/bus-streams-<uid>-<hash of dir_>
  /// Errc::invalid_argument if a subject of `config` overlaps one of another stream.
  Status check_overlap(const StreamConfig& config, std::vector<std::string>* damaged) const;
  StreamStore() = default;
  std::string dir_;
  int lock_fd_ = -1;
};

}  // namespace bus::detail::stream

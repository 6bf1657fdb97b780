// torture_files.hpp — the files the kill-torture peers and their driver share.
//
// Every peer of a torture run keeps its figures in a small file of its own, mmap'ed
// MAP_SHARED, in the run's directory, so the driver reads them at any moment — also while the
// peer is stopped, and after it was SIGKILLed — without a round trip:
//
//   pub-<id>.ctr      PubCounter: per subject, "about to publish n" (stored before publish())
//                     and "published n" (after it returned). A subscriber reads `about` right
//                     after its subscribe() returned: every later number started after that and
//                     must arrive, or be a counted loss. `done` bounds what must have arrived
//                     once the publisher is gone.
//   peer-<name>.stats PeerStats of a subscriber, queue member, responder or requester: what it
//                     checked, what it found, and per (publisher, subject) the last number seen.
//
// A file is created under a temporary name, sized, then renamed into place, so whoever opens
// the final name finds a full-sized file of zeros at worst (never a SIGBUS past its end).
// Fields are single-writer atomics; readers take them one at a time (each is monotonic).
#pragma once

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cstdint>
#include <cstdio>
#include <string>

namespace bus::torture {

inline constexpr std::uint64_t kPubMagic = 0x5055'4243'4f55'4e54ull;    // "PUBCOUNT"
inline constexpr std::uint64_t kStatsMagic = 0x5045'4552'5354'4154ull;  // "PEERSTAT"
inline constexpr std::uint32_t kMaxSubjects = 2;  ///< subjects per publisher: t.p<id>.s0, t.p<id>.s1
inline constexpr std::uint32_t kMaxPublishers = 4096;  ///< publisher ids are 1 .. kMaxPublishers-1

using Counter = std::atomic<std::uint64_t>;
static_assert(Counter::is_always_lock_free);

struct PubCounter {
  Counter magic;     ///< kPubMagic once `subjects` is set
  Counter pid;
  Counter subjects;  ///< how many of about/done are used
  Counter about[kMaxSubjects];  ///< n of the publish in progress (seq_cst before publish())
  Counter done[kMaxSubjects];   ///< last n whose publish() returned
  Counter publish_errors;       ///< publish() returned an error (never expected)
  Counter finished;             ///< 1: stopped cleanly (SIGTERM or count reached)
  Counter disconnects;
  Counter reconnects;
};

struct PeerStats {
  Counter magic;
  Counter pid;
  Counter ready;             ///< subscribed (or connected, for the requester)
  Counter received;          ///< messages checked
  Counter gaps;              ///< numbers missing between two received ones (after the baseline)
  Counter order_violations;  ///< n below the last one seen from that publisher and subject
  Counter duplicates;        ///< n equal to the last one seen
  Counter corrupt;           ///< payload or subject not what its publisher sends
  Counter uncovered;         ///< a gap found while gaps > dropped + skipped
  Counter dropped;           ///< Subscription::dropped_count(), as last read
  Counter skipped;           ///< Subscription::skipped_count(), as last read
  Counter api_errors;        ///< a libbus call failed where it must not
  Counter disconnects;
  Counter reconnects;
  Counter probes_ok;
  Counter probes_failed;
  Counter req_sent;
  Counter req_ok;
  Counter req_timeout;
  Counter req_no_responders;
  Counter req_error;
  Counter req_mismatch;      ///< a reply that does not answer the request it came for
  Counter req_overdue;       ///< request() returned long after its timeout (a hang)
  Counter replies_sent;
  Counter reply_errors;
  Counter heartbeat_ns;      ///< CLOCK_MONOTONIC of the peer's last loop turn
  Counter last[kMaxPublishers][kMaxSubjects];  ///< last n seen per (publisher, subject)
};

inline std::string pub_counter_path(const std::string& dir, std::uint64_t id) {
  return dir + "/pub-" + std::to_string(id) + ".ctr";
}
inline std::string stats_path(const std::string& dir, const std::string& name) {
  return dir + "/peer-" + name + ".stats";
}

/// Maps `path` read-write, creating it zero-filled (via a temporary name and rename) when
/// `create`. nullptr when it cannot.
template <class T>
T* map_file(const std::string& path, bool create) {
  constexpr std::size_t size = (sizeof(T) + 4095) / 4096 * 4096;
  int fd = -1;
  if (create) {
    const std::string tmp = path + ".tmp";
    fd = ::open(tmp.c_str(), O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0) return nullptr;
    if (::ftruncate(fd, static_cast<off_t>(size)) != 0 || ::rename(tmp.c_str(), path.c_str()) != 0) {
      ::close(fd);
      return nullptr;
    }
  } else {
    fd = ::open(path.c_str(), O_RDWR | O_CLOEXEC);
    if (fd < 0) return nullptr;
    struct stat st {};
    if (::fstat(fd, &st) != 0 || static_cast<std::size_t>(st.st_size) < size) {
      ::close(fd);
      return nullptr;
    }
  }
  void* p = ::mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  ::close(fd);
  return p == MAP_FAILED ? nullptr : static_cast<T*>(p);
}

template <class T>
void unmap_file(T* p) {
  if (p != nullptr) ::munmap(static_cast<void*>(p), (sizeof(T) + 4095) / 4096 * 4096);
}

/// The subject publisher `id` sends its sequence `s` on.
inline std::string pub_subject(std::uint64_t id, std::uint32_t s) {
  return "t.p" + std::to_string(id) + ".s" + std::to_string(s);
}

/// Payload of message n of (id, s): "id.s.n.len:" then `len` filler bytes derived from n, so a
/// torn, mixed or misrouted record is recognised. Lengths vary (0..299) so records of many
/// sizes wrap the rings at different offsets.
inline std::size_t filler_length(std::uint64_t id, std::uint64_t n) { return static_cast<std::size_t>((n * 37 + id * 11) % 300); }
inline char filler_byte(std::uint64_t n, std::size_t k) { return static_cast<char>('a' + (n + k) % 26); }

inline std::string make_payload(std::uint64_t id, std::uint32_t s, std::uint64_t n) {
  const std::size_t len = filler_length(id, n);
  std::string out = std::to_string(id) + "." + std::to_string(s) + "." + std::to_string(n) + "." +
                    std::to_string(len) + ":";
  out.reserve(out.size() + len);
  for (std::size_t k = 0; k < len; ++k) out.push_back(filler_byte(n, k));
  return out;
}

struct ParsedPayload {
  std::uint64_t id = 0;
  std::uint32_t s = 0;
  std::uint64_t n = 0;
};

/// Parses and verifies a payload made by make_payload(); false when it is not one, byte for byte.
inline bool parse_payload(const std::string& data, ParsedPayload& out) {
  std::uint64_t fields[4] = {0, 0, 0, 0};
  std::size_t pos = 0;
  for (int f = 0; f < 4; ++f) {
    const char end = f == 3 ? ':' : '.';
    const std::size_t start = pos;
    std::uint64_t v = 0;
    while (pos < data.size() && data[pos] >= '0' && data[pos] <= '9') {
      if (pos - start > 18) return false;
      v = v * 10 + static_cast<std::uint64_t>(data[pos] - '0');
      ++pos;
    }
    if (pos == start || pos >= data.size() || data[pos] != end) return false;
    fields[f] = v;
    ++pos;
  }
  out.id = fields[0];
  out.s = static_cast<std::uint32_t>(fields[1]);
  out.n = fields[2];
  if (out.id == 0 || out.id >= kMaxPublishers || out.s >= kMaxSubjects || out.n == 0) return false;
  const std::size_t len = filler_length(out.id, out.n);
  if (fields[3] != len || data.size() - pos != len) return false;
  for (std::size_t k = 0; k < len; ++k) {
    if (data[pos + k] != filler_byte(out.n, k)) return false;
  }
  return true;
}

}  // namespace bus::torture

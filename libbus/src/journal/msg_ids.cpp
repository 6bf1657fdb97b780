// journal/msg_ids.cpp — the Nats-Msg-Id table (msg_ids.hpp).
#include "journal/msg_ids.hpp"

#include <fcntl.h>

#include <cstring>
#include <ctime>
#include <thread>

#include <xxhash.h>

#include "os/process.hpp"

namespace bus::detail::journal {

namespace {
constexpr char kMagicText[8] = {'B', 'U', 'S', 'M', 'S', 'G', 'I', 'D'};
constexpr std::uint32_t kVersion = 1;
constexpr std::uint64_t kHeaderBytes = 64;
// A slot being rewritten holds an even key stamped with the time it was taken (keys are odd):
// others wait for it, and one stamped long ago (its taker died mid-rewrite) is taken over.
constexpr std::uint64_t kBusyStaleNs = 100'000'000;
constexpr std::uint64_t busy_mark(std::uint64_t now_ns) noexcept { return ((now_ns >> 10) << 1) | 2u; }
constexpr bool is_busy(std::uint64_t key) noexcept { return key != 0 && (key & 1u) == 0; }
constexpr std::uint64_t busy_since(std::uint64_t mark) noexcept { return (mark >> 1) << 10; }
constexpr std::uint64_t kReleased = UINT64_MAX;  // sequence of a claim given back: reusable


std::uint64_t magic_word() {
  std::uint64_t m = 0;
  std::memcpy(&m, kMagicText, sizeof m);
  return m;
}
}  // namespace

struct MsgIdTable::Header {
  std::uint64_t magic;
  std::uint32_t version;
  std::uint32_t slot_count;
  std::atomic<std::uint64_t> window_ns;
  std::atomic<std::uint64_t> forgotten;
  std::uint8_t reserved[32];
};
static_assert(sizeof(MsgIdTable::Header) == kHeaderBytes);

struct MsgIdTable::Slot {
  std::atomic<std::uint64_t> key;
  std::atomic<std::uint64_t> sequence;
  std::atomic<std::uint64_t> time_ns;
  std::uint64_t reserved;
};
static_assert(sizeof(MsgIdTable::Slot) == 32);

MsgIdTable::Slot* MsgIdTable::slot(std::uint64_t i) const noexcept {
  return reinterpret_cast<Slot*>(base() + kHeaderBytes) + (i & mask_);
}

Result<MsgIdTable> MsgIdTable::checked(TableMapping file, const std::string& path) {
  const auto* h = reinterpret_cast<const Header*>(file.data());
  const std::uint64_t size = file.size();
  const std::uint64_t slots = size >= kHeaderBytes ? h->slot_count : 0;
  // Untrusted: the header must describe exactly this file.
  if (size < kHeaderBytes + sizeof(Slot) || h->magic != magic_word() || h->version != kVersion || slots == 0 ||
      (slots & (slots - 1)) != 0 || kHeaderBytes + slots * sizeof(Slot) != size) {
    return make_error(Errc::journal_corrupt, path + " is not a message-id table of this version (or is damaged)");
  }
  MsgIdTable t;
  t.mask_ = slots - 1;
  t.file_ = std::move(file);
  return t;
}

Result<MsgIdTable> MsgIdTable::open(const std::string& path, std::uint64_t window_ns, std::uint32_t slots) {
  Header h{};
  h.magic = magic_word();
  h.version = kVersion;
  h.slot_count = slots;
  auto file = TableMapping::open_or_make(AT_FDCWD, path, &h, sizeof h, kHeaderBytes + std::uint64_t{slots} * sizeof(Slot),
                                         /*allocate=*/false);
  if (!file) return std::move(file).error();
  auto t = checked(std::move(file).value(), path);
  if (!t) return t;
  t->header()->window_ns.store(window_ns, std::memory_order_relaxed);
  return t;
}

Result<MsgIdTable> MsgIdTable::attach(const std::string& path) {
  auto file = TableMapping::open(AT_FDCWD, path);
  if (!file) return std::move(file).error();
  return checked(std::move(file).value(), path);
}

std::uint64_t MsgIdTable::window_ns() const noexcept {
  return base() != nullptr ? header()->window_ns.load(std::memory_order_relaxed) : 0;
}
std::uint64_t MsgIdTable::forgotten() const noexcept {
  return base() != nullptr ? header()->forgotten.load(std::memory_order_relaxed) : 0;
}

Result<MsgIdTable::Claim> MsgIdTable::claim(std::string_view id, std::uint64_t now_ns,
                                            const std::function<bool(std::uint64_t)>& stored_with_id) {
  if (base() == nullptr) return Claim{};
  const std::uint64_t key = XXH3_64bits(id.data(), id.size()) | 1u;
  const std::uint64_t window = window_ns();
  const std::uint64_t give_up = monotonic_ns() + 2 * kClaimTimeoutNs;  // every wait has a bound
  auto expired = [&](std::uint64_t seq, std::uint64_t t) {
    return seq == kReleased || (seq != 0 && now_ns > t && now_ns - t > window);
  };
  // Takes slot i from `seen` (its key now) for our key: CAS to busy, fill, publish the key.
  auto take = [&](std::uint64_t i, std::uint64_t seen) {
    Slot* s = slot(i);
    if (!s->key.compare_exchange_strong(seen, busy_mark(realtime_ns()), std::memory_order_acq_rel)) return false;
    s->sequence.store(0, std::memory_order_relaxed);
    s->time_ns.store(now_ns, std::memory_order_relaxed);
    // [RM1] release: the fields above before the key; pairs with [AM1].
    s->key.store(key, std::memory_order_release);
    return true;
  };
  while (monotonic_ns() < give_up) {
    std::int64_t free_at = -1, reuse_at = -1, oldest_at = -1;
    std::uint64_t free_key = 0, reuse_key = 0, oldest_key = 0, oldest_time = UINT64_MAX;
    bool again = false;
    for (std::uint32_t probe = 0; probe < kProbe && !again; ++probe) {
      const std::uint64_t i = (key + probe) & mask_;
      Slot* s = slot(i);
      // [AM1] acquire: pairs with [RM1]; the slot's fields are at least the claim's.
      const std::uint64_t k = s->key.load(std::memory_order_acquire);
      if (k == 0) {
        free_at = static_cast<std::int64_t>(i);  // the end of the chain: our id is not further
        free_key = 0;
        break;
      }
      if (is_busy(k)) {
        // Being rewritten this instant (possibly for our id): wait; taken over if stale.
        const std::uint64_t t_now = realtime_ns();
        if (t_now > busy_since(k) && t_now - busy_since(k) > kBusyStaleNs) {
          if (take(i, k)) return Claim{0, static_cast<std::int64_t>(i)};
        }
        std::this_thread::yield();
        again = true;
        continue;
      }
      // [AM2] acquire: pairs with [RM2]; the time is the stored message's.
      const std::uint64_t seq = s->sequence.load(std::memory_order_acquire);
      const std::uint64_t t = s->time_ns.load(std::memory_order_relaxed);
      if (k == key) {
        if (seq == 0) {
          // Another publisher is storing this id now: wait for it (or, if it died, take over).
          if (now_ns - std::min(now_ns, t) < kClaimTimeoutNs) {
            std::this_thread::yield();
            now_ns = realtime_ns();  // the claim's age is measured on the clock it was stamped with
            again = true;
            continue;
          }
          if (take(i, k)) return Claim{0, static_cast<std::int64_t>(i)};
          again = true;
          continue;
        }
        if (!expired(seq, t)) {
          if (stored_with_id(seq)) return Claim{seq, -1};
          continue;  // another id with the same hash
        }
        if (take(i, k)) return Claim{0, static_cast<std::int64_t>(i)};
        again = true;
        continue;
      }
      if (reuse_at < 0 && expired(seq, t)) {
        reuse_at = static_cast<std::int64_t>(i);
        reuse_key = k;
      } else if (seq != 0 && t < oldest_time) {
        oldest_time = t;
        oldest_at = static_cast<std::int64_t>(i);
        oldest_key = k;
      }
    }
    if (again) continue;
    std::int64_t at = reuse_at >= 0 ? reuse_at : free_at;
    std::uint64_t seen = reuse_at >= 0 ? reuse_key : free_key;
    bool evicting = false;
    if (at < 0 && oldest_at >= 0) {
      at = oldest_at;  // full within reach: the oldest id is forgotten before its window ends
      seen = oldest_key;
      evicting = true;
    }
    if (at < 0) return Claim{};  // every slot in reach is being stored: not de-duplicated
    if (take(static_cast<std::uint64_t>(at), seen)) {
      if (evicting) header()->forgotten.fetch_add(1, std::memory_order_relaxed);
      return Claim{0, at};
    }
  }
  return Claim{};  // the table kept changing under us for two seconds: stored without de-duplication
}

void MsgIdTable::commit(const Claim& claim, std::uint64_t sequence, std::uint64_t time_ns) noexcept {
  if (claim.slot < 0 || base() == nullptr) return;
  Slot* s = slot(static_cast<std::uint64_t>(claim.slot));
  s->time_ns.store(time_ns, std::memory_order_relaxed);
  // [RM2] release: the time before the sequence; pairs with [AM2].
  s->sequence.store(sequence, std::memory_order_release);
}

void MsgIdTable::release(const Claim& claim) noexcept {
  if (claim.slot < 0 || base() == nullptr) return;
  slot(static_cast<std::uint64_t>(claim.slot))->sequence.store(kReleased, std::memory_order_release);
}

}  // namespace bus::detail::journal

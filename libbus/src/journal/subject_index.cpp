// journal/subject_index.cpp — the per-subject last-sequence index (subject_index.hpp).
#include "journal/subject_index.hpp"

#include <cstddef>
#include <cstring>
#include <memory>

#include <xxhash.h>

namespace bus::detail::journal {

namespace {
constexpr char kMagicText[8] = {'B', 'U', 'S', 'S', 'U', 'B', 'J', '1'};
constexpr std::uint32_t kVersion = 1;
constexpr std::uint64_t kHeaderBytes = 4096;

std::uint64_t magic_word() {
  std::uint64_t m = 0;
  std::memcpy(&m, kMagicText, sizeof m);
  return m;
}

std::uint64_t key_of(std::string_view subject) noexcept {
  const std::uint64_t k = XXH3_64bits(subject.data(), subject.size());
  return k == 0 ? 1 : k;
}
}  // namespace

struct SubjectIndex::Header {
  std::uint64_t magic;
  std::uint32_t version;
  std::uint32_t slot_count;
  std::uint64_t stream_id;
  std::uint8_t reserved0[104];
  alignas(128) std::atomic<std::uint64_t> indexed_upto;
  std::uint8_t reserved1[120];
  alignas(128) std::atomic<std::uint32_t> full;
  std::uint8_t reserved2[kHeaderBytes - 260];
};
static_assert(offsetof(SubjectIndex::Header, stream_id) == 16);
static_assert(offsetof(SubjectIndex::Header, indexed_upto) == 128);
static_assert(offsetof(SubjectIndex::Header, full) == 256);
static_assert(sizeof(SubjectIndex::Header) == kHeaderBytes);
static_assert(sizeof(SubjectIndex::Slot) == 16);

Result<SubjectIndex> SubjectIndex::checked(TableMapping file, const std::string& path, std::uint64_t stream_id) {
  const auto* h = reinterpret_cast<const Header*>(file.data());
  const std::uint64_t size = file.size();
  const std::uint64_t slots = size >= kHeaderBytes ? h->slot_count : 0;
  // Untrusted: the header must describe exactly this file, of this stream.
  if (size < kHeaderBytes + sizeof(Slot) || h->magic != magic_word() || h->version != kVersion || slots == 0 ||
      (slots & (slots - 1)) != 0 || kHeaderBytes + slots * sizeof(Slot) != size || h->stream_id != stream_id) {
    return make_error(Errc::journal_corrupt, path + " is not this journal's subject index (or is damaged)");
  }
  SubjectIndex t;
  t.mask_ = slots - 1;
  t.file_ = std::move(file);
  return t;
}

Result<SubjectIndex> SubjectIndex::open_or_make(int dirfd, const std::string& directory, std::uint64_t stream_id,
                                                std::uint32_t slots) {
  auto h = std::make_unique<Header>();
  std::memset(static_cast<void*>(h.get()), 0, sizeof *h);
  h->magic = magic_word();
  h->version = kVersion;
  h->slot_count = slots;
  h->stream_id = stream_id;
  auto file = TableMapping::open_or_make(dirfd, kFileName, h.get(), sizeof *h,
                                         kHeaderBytes + std::uint64_t{slots} * sizeof(Slot), /*allocate=*/true);
  if (!file) return std::move(file).error();
  return checked(std::move(file).value(), directory + "/" + kFileName, stream_id);
}

Result<SubjectIndex> SubjectIndex::open(int dirfd, const std::string& directory, std::uint64_t stream_id) {
  auto file = TableMapping::open(dirfd, kFileName);
  if (!file) return std::move(file).error();
  return checked(std::move(file).value(), directory + "/" + kFileName, stream_id);
}

SubjectIndex::Slot& SubjectIndex::slot(std::uint64_t i) const noexcept {
  return reinterpret_cast<Slot*>(file_.data() + kHeaderBytes)[i & mask_];
}

SubjectIndex::Slot* SubjectIndex::find(std::uint64_t key, Slot** free_at) const noexcept {
  if (free_at != nullptr) *free_at = nullptr;
  for (std::uint32_t probe = 0; probe < kProbe; ++probe) {
    Slot& s = slot(key + probe);
    // Relaxed: a key is only a name for the slot; what the sequences mean is published by
    // indexed_upto ([RX1]/[AX1]).
    const std::uint64_t k = s.key.load(std::memory_order_relaxed);
    if (k == key) return &s;
    if (k == 0) {
      if (free_at != nullptr) *free_at = &s;
      return nullptr;  // keys are never removed: the chain ends here
    }
  }
  return nullptr;
}

bool SubjectIndex::note(std::string_view subject, std::uint64_t sequence) noexcept {
  const std::uint64_t key = key_of(subject);
  Slot* s = nullptr;
  for (int attempt = 0; attempt < static_cast<int>(kProbe) && s == nullptr; ++attempt) {
    Slot* free_at = nullptr;
    s = find(key, &free_at);
    if (s != nullptr) break;
    if (free_at == nullptr) {
      header()->full.store(1, std::memory_order_relaxed);
      return false;
    }
    std::uint64_t expected = 0;
    // Another noter may take the free slot first (for this key or another): look again.
    if (free_at->key.compare_exchange_strong(expected, key, std::memory_order_relaxed) || expected == key) s = free_at;
  }
  if (s == nullptr) return false;
  std::uint64_t seen = s->last.load(std::memory_order_relaxed);
  while (seen < sequence && !s->last.compare_exchange_weak(seen, sequence, std::memory_order_relaxed)) {
  }
  return true;
}

SubjectIndex::Lookup SubjectIndex::last(std::string_view subject, std::uint64_t& sequence) const noexcept {
  const Slot* s = find(key_of(subject), nullptr);
  if (s == nullptr) return full() ? Lookup::unknown : Lookup::absent;
  sequence = s->last.load(std::memory_order_relaxed);
  return Lookup::found;
}

void SubjectIndex::replace(std::string_view subject, std::uint64_t stale, std::uint64_t replacement) noexcept {
  if (Slot* s = find(key_of(subject), nullptr)) {
    s->last.compare_exchange_strong(stale, replacement, std::memory_order_relaxed);
  }
}

std::uint64_t SubjectIndex::indexed_upto() const noexcept {
  // [AX1] acquire: pairs with [RX1]; every note up to the value is visible.
  return header()->indexed_upto.load(std::memory_order_acquire);
}

void SubjectIndex::raise_indexed_upto(std::uint64_t sequence) noexcept {
  std::atomic<std::uint64_t>& w = header()->indexed_upto;
  std::uint64_t seen = w.load(std::memory_order_relaxed);
  // [RX1] release CAS-max: our notes before the mark that says they are done; pairs with [AX1].
  while (seen < sequence && !w.compare_exchange_weak(seen, sequence, std::memory_order_release,
                                                     std::memory_order_relaxed)) {
  }
}

bool SubjectIndex::full() const noexcept { return header()->full.load(std::memory_order_relaxed) != 0; }

}  // namespace bus::detail::journal

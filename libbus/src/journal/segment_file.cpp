// journal/segment_file.cpp — create, open, append, read, recover one journal segment file.
#include "journal/segment_file.hpp"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#define XXH_STATIC_LINKING_ONLY  // XXH3_state_t on the stack, no allocation per record
// Inlined here (xxHash's header-only mode): every append and every read hashes a record of
// ~100 bytes, where a call into the shared library costs a good part of the hash. The other
// files that hash (message ids, subjects) call the library as before.
#define XXH_INLINE_ALL
#include <xxhash.h>

#include <atomic>
#include <bit>
#include <cerrno>
#include <cstddef>
#include <cstdio>
#include <cstring>

#include "os/process.hpp"

namespace bus::detail::journal {

namespace {

// A damaged record is stepped over by looking for the next one that verifies, up to this many
// sequences on: a sequence further away can only be a coincidence in the bytes.
constexpr std::uint64_t kMaxResyncGap = 1u << 20;

// A flush owner that has not finished after this long (stopped, or killed mid-flush) is
// bypassed: another appender flushes too. Two flushes at once are harmless, only slower.
constexpr std::uint64_t kSyncTakeoverNs = 1'000'000'000;

// How long flush() waits for another thread's flush of the same file in this process.
constexpr std::uint64_t kFlushWaitNs = 10'000'000'000;

// Flush epochs wrap at 2^32: `done` has reached `need` if it is not behind it.
constexpr bool epoch_reached(std::uint32_t done, std::uint32_t need) noexcept {
  return static_cast<std::int32_t>(done - need) >= 0;
}

Error io_error(const std::string& what, const std::string& path, int err) {
  return make_error(Errc::io_error, errno_message((what + " " + path).c_str(), err));
}

// The name to open relative to `dirfd`: the whole path, or its last component in dirfd.
const char* at_name(const std::string& path, int dirfd) noexcept {
  if (dirfd == AT_FDCWD) return path.c_str();
  const std::size_t slash = path.rfind('/');
  return slash == std::string::npos ? path.c_str() : path.c_str() + slash + 1;
}

struct FileCloser {
  int fd;
  ~FileCloser() { ::close(fd); }
};

// What create(), create_from_spare() and make_spare() accept: sequences 1..2^63 (0 for a spare,
// which has none yet) and a size the 32-bit claim offsets can address.
Status check_shape(std::uint64_t first_seq, std::uint64_t capacity, bool spare) {
  if (!spare && (first_seq == 0 || first_seq > kMaxSequence)) {
    return make_error(Errc::invalid_argument, "a journal's sequences run from 1 to 2^63");
  }
  if (capacity < kSegmentHeaderBytes + 4096 || capacity > kMaxSegmentBytes || capacity % 4096 != 0) {
    return make_error(Errc::invalid_argument, "journal segment size " + std::to_string(capacity) +
                                                  " must be a multiple of 4096 between 8 KiB and 32 GiB");
  }
  return {};
}

// A claim word that could have been made by appends to a file of `size` bytes: its offset
// inside the records (or sealed), and no more records than headers fit before it.
bool claim_plausible(std::uint64_t word, std::uint64_t size) noexcept {
  const std::uint64_t count = claim_count(word);
  const std::uint64_t at = std::uint64_t{claim_units(word)} * kRecordAlign;
  return at >= kSegmentHeaderBytes && at <= size && count <= (at - kSegmentHeaderBytes) / kRecordHeaderBytes;
}

}  // namespace

namespace {

// The fixed fields a record's checksum covers, by value (the flags, which change after commit,
// are left out): the first bytes hashed, before the body.
struct ChecksumFixed {
  std::uint32_t length;
  std::uint16_t subject_len;
  std::uint16_t zero;
  std::uint64_t timestamp_ns;
  std::uint32_t headers_len;
  std::uint32_t payload_len;
};
static_assert(sizeof(ChecksumFixed) == 24);

ChecksumFixed checksum_fixed(const RecordHeader& h) noexcept {
  return ChecksumFixed{h.length, h.subject_len, 0, h.timestamp_ns, h.headers_len, h.payload_len};
}

// The fixed fields at `to` as the three 8-byte words they make (the format is little-endian):
// the same bytes as a copy of `f`, but stored whole, so the hash's 8-byte loads of them are
// forwarded from the stores (loads of several smaller stores wait until those reach the cache).
void put_fixed(unsigned char* to, const ChecksumFixed& f) noexcept {
  static_assert(std::endian::native == std::endian::little, "the journal's format is little-endian");
  static_assert(offsetof(ChecksumFixed, subject_len) == 4 && offsetof(ChecksumFixed, zero) == 6 &&
                offsetof(ChecksumFixed, timestamp_ns) == 8 && offsetof(ChecksumFixed, headers_len) == 16 &&
                offsetof(ChecksumFixed, payload_len) == 20);
  const std::uint64_t words[3] = {
      f.length | std::uint64_t{f.subject_len} << 32 | std::uint64_t{f.zero} << 48, f.timestamp_ns,
      f.headers_len | std::uint64_t{f.payload_len} << 32};
  static_assert(sizeof words == sizeof(ChecksumFixed));
  std::memcpy(to, words, sizeof words);
}

// A record's header, all but its commit word (flags clear).
void put_header(RecordHeader& r, const ChecksumFixed& f, std::uint64_t checksum) noexcept {
  r.length = f.length;
  r.subject_len = f.subject_len;
  r.flags.store(0, std::memory_order_relaxed);
  r.timestamp_ns = f.timestamp_ns;
  r.headers_len = f.headers_len;
  r.payload_len = f.payload_len;
  r.checksum = checksum;
}

// A record's body (subject, headers, payload) written at `to`.
void put_body(unsigned char* to, std::string_view subject, std::string_view headers, std::string_view payload) noexcept {
  if (!subject.empty()) std::memcpy(to, subject.data(), subject.size());
  if (!headers.empty()) std::memcpy(to + subject.size(), headers.data(), headers.size());
  if (!payload.empty()) std::memcpy(to + subject.size() + headers.size(), payload.data(), payload.size());
}

// Records up to this many bytes hashed (fixed fields and body) are hashed in one call over a
// copy on the stack: XXH3 of the concatenation is the value the streaming calls give, at a
// fraction of their cost.
constexpr std::size_t kOneShotBytes = 256;

// How far ahead of the record it reads a reader prefetches (read()): one page.
constexpr std::uint64_t kReadAheadBytes = 4096;

// XXH3 of the fixed fields and then the body, seeded with the sequence.
std::uint64_t checksum_of(std::uint64_t sequence, const ChecksumFixed& fixed, const std::byte* body,
                          std::size_t body_len) noexcept {
  if (body_len <= kOneShotBytes - sizeof fixed) {
    alignas(8) unsigned char buffer[kOneShotBytes];
    put_fixed(buffer, fixed);
    if (body_len != 0) std::memcpy(buffer + sizeof fixed, body, body_len);
    return XXH3_64bits_withSeed(buffer, sizeof fixed + body_len, sequence);
  }
  XXH3_state_t state;
  // Required before the first reset (xxhash.h): reset skips building the secret when leftover
  // stack bytes happen to hold the same seed, and the hash then used garbage as its secret.
  XXH3_INITSTATE(&state);
  XXH3_64bits_reset_withSeed(&state, sequence);
  XXH3_64bits_update(&state, &fixed, sizeof fixed);
  XXH3_64bits_update(&state, body, body_len);
  return XXH3_64bits_digest(&state);
}

}  // namespace

std::uint64_t record_checksum(std::uint64_t sequence, const RecordHeader& h, const std::byte* body,
                              std::size_t body_len) noexcept {
  return checksum_of(sequence, checksum_fixed(h), body, body_len);
}

std::string segment_file_name(std::uint64_t first_seq) {
  char name[32];
  std::snprintf(name, sizeof name, "%020llu.jrnl", static_cast<unsigned long long>(first_seq));
  return name;
}

SegmentFile& SegmentFile::operator=(SegmentFile&& other) noexcept {
  if (this != &other) {
    if (base_ != nullptr) ::munmap(base_, size_);
    path_ = std::move(other.path_);
    base_ = std::exchange(other.base_, nullptr);
    size_ = std::exchange(other.size_, 0);
    stride_ = std::exchange(other.stride_, 0);
    std::swap(flush_mutex_, other.flush_mutex_);
  }
  return *this;
}

SegmentFile::~SegmentFile() {
  if (base_ != nullptr) ::munmap(base_, size_);
  base_ = nullptr;
}

namespace {

// Makes `fd` `size` bytes of zeros by writing them (from .bss, which maps the kernel's one
// zero page): 0 or an errno. Written, not posix_fallocate'd: ext4 gives a written file's pages
// to the page cache directly, where fallocate's unwritten extents make each page a read that
// zero-fills it and later an extent conversion (64 MiB in 12.5 ms against 18 ms on this VM,
// from memory it had used before). The disk space is taken (or refused: ENOSPC) here either
// way, so a later store never meets a full disk. The size of each write sets the size of the
// folios the kernel makes (see PageShape).
int write_zeros(int fd, std::uint64_t size, PageShape shape) noexcept {
  constexpr std::size_t kLargest = 2u << 20;
  alignas(4096) static char zeros[kLargest];  // never written: every page the zero page
  const std::size_t chunk = shape == PageShape::appends ? kLargest : 4096;
  std::uint64_t done = 0;
  while (done < size) {
    const std::size_t n = static_cast<std::size_t>(std::min<std::uint64_t>(chunk, size - done));
    const ssize_t w = ::pwrite(fd, zeros, n, static_cast<off_t>(done));
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) return w < 0 ? errno : ENOSPC;
    done += static_cast<std::uint64_t>(w);
  }
  return 0;
}

}  // namespace

Result<SegmentFile> SegmentFile::create(const std::string& path, std::uint64_t first_seq, std::uint64_t capacity,
                                        std::uint64_t stream_id, PageShape shape, int dirfd) {
  if (auto st = check_shape(first_seq, capacity, /*spare=*/false); !st) return std::move(st).error();
  const int fd = ::openat(dirfd, at_name(path, dirfd), O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
  if (fd < 0) {
    if (errno == EEXIST) return make_error(Errc::already_exists, path + " exists");
    return io_error("create", path, errno);
  }
  // The mapping keeps the file; the descriptor is closed once it is made (one fd per segment
  // per process would run into the fd limit on a long stream).
  const FileCloser closer{fd};
  // 0600 whatever the umask; its disk space taken before it is mapped, so a full disk is an
  // error here and never a SIGBUS on a later store.
  if (::fchmod(fd, 0600) != 0) return io_error("chmod", path, errno);
  if (const int err = write_zeros(fd, capacity, shape); err != 0) {
    ::unlinkat(dirfd, at_name(path, dirfd), 0);
    return io_error("allocate", path, err);
  }
  return map_new(fd, path, dirfd, first_seq, capacity, stream_id);
}

Result<SegmentFile> SegmentFile::map_new(int fd, const std::string& path, int dirfd, std::uint64_t first_seq,
                                         std::uint64_t capacity, std::uint64_t stream_id) {
  void* base = ::mmap(nullptr, capacity, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  if (base == MAP_FAILED) {
    const int err = errno;
    ::unlinkat(dirfd, at_name(path, dirfd), 0);  // never published: nobody can have it open
    return io_error("map", path, err);
  }
  SegmentFile seg;
  seg.path_ = path;
  seg.base_ = static_cast<std::byte*>(base);
  seg.size_ = capacity;
  seg.publish_header(first_seq, stream_id);
  return seg;
}

void SegmentFile::publish_header(std::uint64_t first_seq, std::uint64_t stream_id) noexcept {
#ifdef MADV_POPULATE_WRITE
  // Map every page now, once, rather than one page fault per 4 KiB of appends (~13 us each on
  // this VM: the first 40 records of every page paid for it). Best effort: older kernels skip.
  // For a spare, whose pages are in the page cache already, this only maps them.
  (void)::madvise(base_, size_, MADV_POPULATE_WRITE);
#endif
  SegmentHeader* h = header();
  h->major = kJournalMajor;
  h->minor = kJournalMinor;
  h->header_bytes = kSegmentHeaderBytes;
  h->capacity = size_;
  h->first_seq = first_seq;
  h->created_unix_ns = realtime_ns();
  h->stream_id = stream_id;
  h->index_stride = position_stride(size_);
  stride_ = h->index_stride;
  h->claim.store(claim_word(kSegmentHeaderBytes / kRecordAlign, 0), std::memory_order_relaxed);
  // [RJ0] release: every header field before the magic that makes the file a segment.
  std::atomic_ref<std::uint64_t>(h->magic).store(kSegmentMagic, std::memory_order_release);
}

Status SegmentFile::make_spare(const std::string& directory, std::uint64_t capacity, PageShape shape, int dirfd,
                               const char* name) {
  if (auto st = check_shape(0, capacity, /*spare=*/true); !st) return st;
  // Built under a private name, then renamed to `name` only if there is none: one at a time.
  const std::string tmp = "spare.tmp-" + std::to_string(::getpid());
  const int fd = ::openat(dirfd, tmp.c_str(), O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
  if (fd < 0) return io_error("create", directory + "/" + tmp, errno);
  // Zero-filled into the page cache here, off every publisher's path: the roller then maps
  // pages that exist instead of making 64 MiB of them.
  int err = ::fchmod(fd, 0600) == 0 ? write_zeros(fd, capacity, shape) : errno;
  ::close(fd);
  const bool ok = err == 0;
  if (!ok || ::renameat2(dirfd, tmp.c_str(), dirfd, name, RENAME_NOREPLACE) != 0) {
    if (ok) err = errno;
    ::unlinkat(dirfd, tmp.c_str(), 0);
    if (ok && err == EEXIST) return {};  // someone else made one meanwhile
    return io_error("prepare a spare segment in", directory, err);
  }
  return {};
}

Result<SegmentFile> SegmentFile::create_from_spare(const std::string& path, std::uint64_t first_seq,
                                                   std::uint64_t capacity, std::uint64_t stream_id, int dirfd) {
  if (auto st = check_shape(first_seq, capacity, /*spare=*/false); !st) return std::move(st).error();
  // Taken by name: whoever renames it first has it (RENAME_NOREPLACE: never over a segment).
  if (::renameat2(dirfd, "spare", dirfd, at_name(path, dirfd), RENAME_NOREPLACE) != 0) {
    if (errno == EEXIST) return make_error(Errc::already_exists, path + " exists");
    return make_error(Errc::not_found, "no spare segment");
  }
  const int fd = ::openat(dirfd, at_name(path, dirfd), O_RDWR | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
  if (fd < 0) return io_error("open", path, errno);
  const FileCloser closer{fd};
  struct stat st{};
  std::uint64_t magic = 1;
  // Ours, of the size this journal uses, and never published (a spare's magic is zero).
  if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) || st.st_uid != ::geteuid() ||
      static_cast<std::uint64_t>(st.st_size) != capacity || ::pread(fd, &magic, sizeof magic, 0) != sizeof magic ||
      magic != 0) {
    ::unlinkat(dirfd, at_name(path, dirfd), 0);
    return make_error(Errc::not_found, "the spare segment was not one (removed)");
  }
  return map_new(fd, path, dirfd, first_seq, capacity, stream_id);
}

Result<SegmentFile> SegmentFile::open(const std::string& path, int dirfd) {
  const int fd = ::openat(dirfd, at_name(path, dirfd), O_RDWR | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
  if (fd < 0) return io_error("open", path, errno);
  const FileCloser closer{fd};
  SegmentFile seg;
  seg.path_ = path;
  struct stat st{};
  if (::fstat(fd, &st) != 0) return io_error("stat", path, errno);
  if (!S_ISREG(st.st_mode)) return make_error(Errc::journal_corrupt, path + " is not a regular file");
  if (st.st_uid != ::geteuid()) return make_error(Errc::permission_denied, path + " belongs to another user");
  const auto size = static_cast<std::uint64_t>(st.st_size);
  if (size < kSegmentHeaderBytes + 4096 || size > kMaxSegmentBytes) {
    return make_error(Errc::journal_corrupt, path + ": " + std::to_string(size) + " bytes is no journal segment's size");
  }
  void* base = ::mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  if (base == MAP_FAILED) return io_error("map", path, errno);
  seg.base_ = static_cast<std::byte*>(base);
  seg.size_ = size;
  const SegmentHeader* h = seg.header();
  // [AJ0] acquire: pairs with [RJ0]; the header is complete.
  if (std::atomic_ref<const std::uint64_t>(h->magic).load(std::memory_order_acquire) != kSegmentMagic) {
    return make_error(Errc::journal_corrupt, path + " is not a journal segment (bad magic)");
  }
  if (h->major != kJournalMajor) {
    return make_error(Errc::version_mismatch, path + " has journal format " + std::to_string(h->major) +
                                                  ", this build reads " + std::to_string(kJournalMajor));
  }
  if (h->header_bytes != kSegmentHeaderBytes || h->capacity != size || h->first_seq == 0 ||
      h->first_seq > kMaxSequence) {
    return make_error(Errc::journal_corrupt, path + ": header disagrees with the file (size or first sequence)");
  }
  if (!claim_plausible(h->claim.load(std::memory_order_acquire), size)) {
    return make_error(Errc::journal_corrupt, path + ": its claim word points outside the file");
  }
  // A file made before minor 4 has no position index (0); any other stride than the one this
  // size gets is damage, and the index is not used (reads walk, as before it existed).
  seg.stride_ = h->index_stride == position_stride(size) ? h->index_stride : 0;
  return seg;
}

bool SegmentFile::unfinished(const std::string& path, int dirfd) noexcept {
  const int fd = ::openat(dirfd, at_name(path, dirfd), O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
  if (fd < 0) return false;
  struct stat st{};
  std::uint64_t magic = 1;
  // Killed before its allocation (short), or before its magic (zero): it never held a record,
  // since appends begin only once create() has returned.
  const bool ours = ::fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && st.st_uid == ::geteuid();
  const bool short_file = ours && static_cast<std::uint64_t>(st.st_size) < kSegmentHeaderBytes;
  const bool zero = ours && !short_file && ::pread(fd, &magic, sizeof magic, 0) == sizeof magic && magic == 0;
  ::close(fd);
  return short_file || zero;
}

std::uint64_t SegmentFile::next_seq() const noexcept {
  return first_seq() + claim_count(header()->claim.load(std::memory_order_acquire));
}

bool SegmentFile::sealed() const noexcept { return claim_sealed(header()->claim.load(std::memory_order_acquire)); }

std::uint64_t SegmentFile::claimed_end() const noexcept {
  const std::uint64_t word = header()->claim.load(std::memory_order_acquire);
  return std::min<std::uint64_t>(std::uint64_t{claim_units(word)} * kRecordAlign, size_);
}

AppendStatus SegmentFile::append(std::string_view subject, std::string_view headers, std::string_view payload,
                                 std::uint64_t timestamp_ns, std::uint64_t& sequence, std::uint64_t& offset,
                                 std::uint64_t expected_next) noexcept {
  const std::uint64_t bytes = record_bytes(subject.size(), headers.size(), payload.size());
  // Lengths are stored in 32 bits (and the subject's in 16): larger is refused, never truncated.
  if (subject.size() > 0xFFFF || bytes > 0xFFFF'FFF8u || bytes > size_ - kSegmentHeaderBytes) {
    return AppendStatus::too_large;
  }
  SegmentHeader* h = header();
  std::uint64_t word = h->claim.load(std::memory_order_relaxed);
  for (;;) {
    if (claim_sealed(word)) return AppendStatus::full;
    if (expected_next != 0 && h->first_seq + claim_count(word) != expected_next) {
      sequence = h->first_seq + claim_count(word);  // what it would have been
      return AppendStatus::wrong_last;
    }
    const std::uint64_t at = std::uint64_t{claim_units(word)} * kRecordAlign;
    // A word pointing into the header or past the end is damage: seal rather than write there.
    if (at < kSegmentHeaderBytes || at > size_ || bytes > size_ - at || claim_count(word) == kMaxClaimCount) {
      // [SJ1] Seal it, keeping the count: the next segment starts at first_seq + count, and
      // whoever seals first decides that for everyone.
      // seq_cst (not just acq_rel): the seal is one side of [SJ5]'s store-buffering pair too.
      if (h->claim.compare_exchange_weak(word, sealed_word(word), std::memory_order_seq_cst,
                                         std::memory_order_relaxed)) {
        wake_readers();  // a reader asleep here must move on to the next segment
        return AppendStatus::full;
      }
      continue;
    }
    // Relaxed: the space and the sequence are ours once this wins; the record publishes itself
    // by its commit word ([RJ1]).
    if (h->claim.compare_exchange_weak(word, claim_word(static_cast<std::uint32_t>((at + bytes) / kRecordAlign),
                                                        claim_count(word) + 1),
                                       std::memory_order_relaxed, std::memory_order_relaxed)) {
      offset = at;
      sequence = h->first_seq + claim_count(word);
      break;
    }
  }
  auto* r = reinterpret_cast<RecordHeader*>(base_ + offset);
  const ChecksumFixed fixed{static_cast<std::uint32_t>(bytes), static_cast<std::uint16_t>(subject.size()), 0,
                            timestamp_ns, static_cast<std::uint32_t>(headers.size()),
                            static_cast<std::uint32_t>(payload.size())};
  std::byte* body = base_ + offset + kRecordHeaderBytes;
  const std::size_t body_len = subject.size() + headers.size() + payload.size();
  if (body_len <= kOneShotBytes - sizeof(ChecksumFixed)) {
    // Small (most): the record is put together on the stack, hashed there and copied into the
    // file once. Hashing it back out of the file made every write a load soon after (~10% of
    // an acknowledged 64-B publish). And nothing goes into the file before the hash is done:
    // x86 makes stores visible in order, so stores to lines of the file not yet in this core's
    // cache held back the stack's stores behind them, and with them the hash's loads that
    // could not be forwarded (56% of the append's perf samples, on two such loads).
    alignas(8) unsigned char buffer[kOneShotBytes];
    put_fixed(buffer, fixed);
    put_body(buffer + sizeof fixed, subject, headers, payload);
    const std::uint64_t checksum = XXH3_64bits_withSeed(buffer, sizeof fixed + body_len, sequence);
    std::atomic_signal_fence(std::memory_order_seq_cst);  // the compiler must not hoist the stores below
    put_header(*r, fixed, checksum);
    std::memcpy(body, buffer + sizeof fixed, body_len);
  } else {
    put_body(reinterpret_cast<unsigned char*>(body), subject, headers, payload);
    put_header(*r, fixed, checksum_of(sequence, fixed, body, body_len));
  }
  if (((sequence - h->first_seq) & (stride_ - 1)) == 0) note_position(sequence, offset, timestamp_ns);
  // [RJ1] release (seq_cst, for [SJ2]): every byte of the record before its commit word;
  // pairs with [AJ1].
  r->commit.store(sequence, std::memory_order_seq_cst);
  // [SJ2] seq_cst load after the seq_cst commit; pairs with raise_skip() ([SJ3]) followed by the
  // reader's re-check of the commit word: either the reader sees our commit, or we see its skip
  // (store buffering: not both missed). Seen: the reader may have passed us.
  const bool abandoned = sequence < h->skipped_below.load(std::memory_order_seq_cst);
  wake_readers();
  return abandoned ? AppendStatus::abandoned : AppendStatus::appended;
}

void SegmentFile::note_position(std::uint64_t sequence, std::uint64_t offset, std::uint64_t timestamp_ns) const noexcept {
  if (stride_ == 0 || sequence < first_seq() || ((sequence - first_seq()) & (stride_ - 1)) != 0) return;
  const std::uint64_t entry = (sequence - first_seq()) / stride_;
  if (entry >= kPositionEntries || offset < kSegmentHeaderBytes || offset >= size_ || offset % kRecordAlign != 0) return;
  PositionEntry& e = header()->positions[entry];
  if (e.offset_units.load(std::memory_order_relaxed) != 0) return;  // noted already (the same place)
  e.timestamp_ns.store(timestamp_ns, std::memory_order_relaxed);
  // [RJ6] release: the timestamp before the offset; pairs with [AJ6].
  e.offset_units.store(static_cast<std::uint32_t>(offset / kRecordAlign), std::memory_order_release);
}

bool SegmentFile::noted_position(std::uint64_t entry, std::uint64_t& offset, std::uint64_t& timestamp_ns) const noexcept {
  if (stride_ == 0 || entry >= kPositionEntries) return false;
  const PositionEntry& e = header()->positions[entry];
  // [AJ6] acquire: pairs with [RJ6].
  const std::uint64_t at = std::uint64_t{e.offset_units.load(std::memory_order_acquire)} * kRecordAlign;
  // Untrusted: inside the claimed records (the record there is verified by whoever reads it).
  if (at < kSegmentHeaderBytes || at + kRecordHeaderBytes > claimed_end()) return false;
  offset = at;
  timestamp_ns = e.timestamp_ns.load(std::memory_order_relaxed);
  return true;
}

bool SegmentFile::mark_deleted(std::uint64_t offset) const noexcept {
  if (offset < kSegmentHeaderBytes || offset % kRecordAlign != 0 || offset > size_ - kRecordHeaderBytes) return false;
  auto* r = reinterpret_cast<RecordHeader*>(base_ + offset);
  // Relaxed: a flag readers look at when they read the record; nothing else is published by it.
  return (r->flags.fetch_or(kRecordDeleted, std::memory_order_relaxed) & kRecordDeleted) == 0;
}

bool SegmentFile::deleted_at(std::uint64_t offset, std::uint32_t& bytes) const noexcept {
  if (offset < kSegmentHeaderBytes || offset % kRecordAlign != 0 || offset > size_ - kRecordHeaderBytes) return false;
  const auto* r = reinterpret_cast<const RecordHeader*>(base_ + offset);
  bytes = r->length;
  return (r->flags.load(std::memory_order_relaxed) & kRecordDeleted) != 0;
}

void SegmentFile::wake_readers() const noexcept {
  SegmentHeader* h = header();
  // [SJ5] seq_cst load after the seq_cst commit (or the acq_rel seal); pairs with [SJ4]. Nobody
  // asleep (the usual case): one load of a line that stays shared, no store, no syscall.
  if (h->readers_waiting.load(std::memory_order_seq_cst) == 0) return;
  // [RJ4] release: pairs with [AJ4].
  h->commit_wake.fetch_add(1, std::memory_order_release);
  futex_wake_all(reinterpret_cast<std::uint32_t*>(&h->commit_wake));
}

ReadStatus SegmentFile::check(std::uint64_t offset, std::uint64_t sequence, RecordView& out) const noexcept {
  if (offset < kSegmentHeaderBytes || offset % kRecordAlign != 0 || offset > size_ - kRecordHeaderBytes) {
    return ReadStatus::corrupt;
  }
  const auto* r = reinterpret_cast<const RecordHeader*>(base_ + offset);
  // [AJ1] acquire: pairs with [RJ1]; the record is complete if this is its sequence.
  if (r->commit.load(std::memory_order_acquire) != sequence) return ReadStatus::not_committed;
  // Each length read once; only the copies are checked and used (another process may scribble).
  RecordHeader fields{};
  fields.length = r->length;
  fields.subject_len = r->subject_len;
  fields.timestamp_ns = r->timestamp_ns;
  fields.headers_len = r->headers_len;
  fields.payload_len = r->payload_len;
  const std::uint64_t checksum = r->checksum;
  const std::uint64_t body_len = std::uint64_t{fields.subject_len} + fields.headers_len + fields.payload_len;
  if (fields.length < kRecordHeaderBytes || fields.length % kRecordAlign != 0 || fields.length > size_ - offset ||
      kRecordHeaderBytes + body_len > fields.length) {
    return ReadStatus::corrupt;
  }
  const std::byte* body = base_ + offset + kRecordHeaderBytes;
  if (record_checksum(sequence, fields, body, body_len) != checksum) return ReadStatus::corrupt;
  const char* text = reinterpret_cast<const char*>(body);
  out.sequence = sequence;
  out.timestamp_ns = fields.timestamp_ns;
  out.flags = r->flags.load(std::memory_order_relaxed);
  out.subject = std::string_view(text, fields.subject_len);
  out.headers = std::string_view(text + fields.subject_len, fields.headers_len);
  out.payload = std::string_view(text + fields.subject_len + fields.headers_len, fields.payload_len);
  out.offset = offset;
  out.bytes = fields.length;
  return ReadStatus::ok;
}

ReadStatus SegmentFile::step(std::uint64_t offset, std::uint64_t sequence, std::uint32_t& bytes) const noexcept {
  if (offset < kSegmentHeaderBytes || offset % kRecordAlign != 0 || offset > size_ - kRecordHeaderBytes) {
    return ReadStatus::corrupt;
  }
  const auto* r = reinterpret_cast<const RecordHeader*>(base_ + offset);
  // [AJ1] acquire, as in check(): the length is the committed record's.
  if (r->commit.load(std::memory_order_acquire) != sequence) return ReadStatus::not_committed;
  const std::uint32_t length = r->length;  // read once
  if (length < kRecordHeaderBytes || length % kRecordAlign != 0 || length > size_ - offset) return ReadStatus::corrupt;
  bytes = length;
  return ReadStatus::ok;
}

ReadStatus SegmentFile::read(std::uint64_t offset, std::uint64_t sequence, RecordView& out) const noexcept {
  // Readers go forward: a line a page ahead is asked for now. The hardware prefetcher stops at
  // 4 KiB pages, so without it each page's first lines (and its TLB entry) came on demand; a
  // replay of records out of cache took ~19% longer (BM_StreamReplay). A prefetch never faults.
  if (offset + kReadAheadBytes < size_) __builtin_prefetch(base_ + offset + kReadAheadBytes);
  return check(offset, sequence, out);
}

Recovery SegmentFile::recover(std::vector<std::pair<std::uint64_t, std::uint64_t>>& index) {
  Recovery rec;
  index.clear();
  SegmentHeader* h = header();
  // Nobody else has the file open: a flush owner or sleepers counted here are left over.
  h->sync_owner.store(0, std::memory_order_relaxed);
  h->sync_waiters.store(0, std::memory_order_relaxed);
  const std::uint64_t word = h->claim.load(std::memory_order_acquire);
  std::uint64_t offset = kSegmentHeaderBytes;
  std::uint64_t expected = h->first_seq;
  std::uint64_t last_end = kSegmentHeaderBytes;
  RecordView view;
  // The position index is noted again from the records that verify: an entry may point at a
  // record cut below, or at bytes a scribble left.
  for (PositionEntry& e : h->positions) {
    e.offset_units.store(0, std::memory_order_relaxed);
    e.timestamp_ns.store(0, std::memory_order_relaxed);
  }
  // The claim word may be behind the records (a crash flushed data pages but not the header
  // page) or anywhere (a scribble): the scan covers the whole file; past the real end it is
  // zeroes, which never verify.
  while (offset + kRecordHeaderBytes <= size_) {
    if (check(offset, expected, view) == ReadStatus::ok) {
      index.emplace_back(expected, offset);
      note_position(expected, offset, view.timestamp_ns);
      ++rec.records;
      offset += view.bytes;
      last_end = offset;
      ++expected;
      continue;
    }
    // Damaged or unfinished: find the next record that verifies as a later sequence.
    std::uint64_t found = 0, found_seq = 0;
    for (std::uint64_t at = offset + kRecordAlign; at + kRecordHeaderBytes <= size_; at += kRecordAlign) {
      const auto* r = reinterpret_cast<const RecordHeader*>(base_ + at);
      const std::uint64_t s = r->commit.load(std::memory_order_relaxed);
      if (s <= expected || s - expected > kMaxResyncGap) continue;
      // Every record before this one took at least a header's bytes: a sequence further on
      // than that many records is a forged or coincidental word (and would size the index).
      if (s - h->first_seq > (at - kSegmentHeaderBytes) / kRecordHeaderBytes) continue;
      if (check(at, s, view) == ReadStatus::ok) {
        found = at;
        found_seq = s;
        break;
      }
    }
    if (found == 0) break;
    rec.lost_records += found_seq - expected;
    rec.lost_bytes += found - offset;
    rec.damage.push_back("sequences " + std::to_string(expected) + ".." + std::to_string(found_seq - 1) +
                         " at bytes " + std::to_string(offset) + ".." + std::to_string(found) + " of " + path_ +
                         " failed their checks: dropped");
    offset = found;
    expected = found_seq;
  }
  // Whatever follows the last valid record is cut: a torn tail, or a record whose writer died.
  const std::uint64_t claimed = std::uint64_t{claim_units(word)} * kRecordAlign;
  const std::uint64_t claimed_seq = h->first_seq + claim_count(word);
  if (claimed > last_end || claimed_seq > expected) {
    rec.truncated_at = last_end;
    rec.lost_records += claimed_seq > expected ? claimed_seq - expected : 0;
    if (claimed > last_end) rec.lost_bytes += std::min(claimed, size_) - last_end;
    if (claimed_seq > expected) {
      rec.damage.push_back("sequences " + std::to_string(expected) + ".." + std::to_string(claimed_seq - 1) +
                           " after byte " + std::to_string(last_end) + " of " + path_ +
                           " were claimed but never completely written: cut");
    }
  }
  // Clear what was cut: appends will reuse the space, and a stale record left among the new
  // ones could otherwise verify again in a later recovery's resync.
  if (claimed > last_end) std::memset(base_ + last_end, 0, std::min(claimed, size_) - last_end);
  // A sealed segment stays sealed (a later one may exist); else appends resume after the last
  // valid record, with the next sequence.
  const auto count = static_cast<std::uint32_t>(expected - h->first_seq);
  const std::uint64_t resumed = claim_word(static_cast<std::uint32_t>(last_end / kRecordAlign), count);
  h->claim.store(claim_sealed(word) ? sealed_word(resumed) : resumed, std::memory_order_release);
  return rec;
}

void SegmentFile::raise_skip(std::uint64_t sequence) const noexcept {
  std::atomic<std::uint64_t>& word = header()->skipped_below;
  std::uint64_t seen = word.load(std::memory_order_relaxed);
  // [SJ3] seq_cst CAS-max; pairs with [SJ2]. The caller re-checks the record afterwards.
  while (seen <= sequence && !word.compare_exchange_weak(seen, sequence + 1, std::memory_order_seq_cst)) {
  }
  std::atomic_thread_fence(std::memory_order_seq_cst);
}

std::uint64_t SegmentFile::skipped_below() const noexcept {
  return header()->skipped_below.load(std::memory_order_acquire);
}

std::uint64_t SegmentFile::find(std::uint64_t sequence, std::uint64_t from) const noexcept {
  const std::uint64_t end = claimed_end();
  if (end < kSegmentHeaderBytes + kRecordHeaderBytes) return 0;  // nothing claimed (or scribbled)
  // A record with this sequence has at least (sequence - first) headers before it.
  const std::uint64_t first = header()->first_seq;
  if (sequence < first) return 0;
  const std::uint64_t before = sequence - first;
  if (before > (end - kSegmentHeaderBytes) / kRecordHeaderBytes) return 0;
  RecordView view;
  std::uint64_t start = kSegmentHeaderBytes + before * kRecordHeaderBytes;
  if (from > start) start = (from + kRecordAlign - 1) / kRecordAlign * kRecordAlign;
  for (std::uint64_t at = start; at + kRecordHeaderBytes <= end; at += kRecordAlign) {
    const auto* r = reinterpret_cast<const RecordHeader*>(base_ + at);
    if (r->commit.load(std::memory_order_relaxed) != sequence) continue;
    if (check(at, sequence, view) == ReadStatus::ok) return at;
  }
  return 0;
}

bool SegmentFile::has_failed() const noexcept {
  return header()->sync_failed.load(std::memory_order_acquire) != 0;
}

Status SegmentFile::failed() const {
  const std::uint32_t err = header()->sync_failed.load(std::memory_order_acquire);
  if (err == 0) return {};
  return make_error(Errc::io_error, path_ + ": an earlier flush to disk failed (" +
                                        errno_message("msync", static_cast<int>(err)) +
                                        "): what it held is not known to be on disk");
}

Status SegmentFile::flush_pages(std::uint32_t& epoch, std::uint64_t deadline_ns) const {
  SegmentHeader* h = header();
  // Polled, not a timed lock: contention is rare (one flush owner per file at a time), and
  // ThreadSanitizer of Debian 12's GCC does not see pthread_mutex_clocklock.
  std::unique_lock lock(*flush_mutex_, std::try_to_lock);
  while (!lock.owns_lock()) {
    if (monotonic_ns() >= deadline_ns) {
      return make_error(Errc::timeout, path_ + ": a flush of it by another thread has not finished (is the disk stuck?)");
    }
    ::usleep(100);
    (void)lock.try_lock();
  }
  // [SG1] seq_cst: the epoch is taken after every commit that read an older one ([SG0]), so this
  // flush covers those records (msync runs after it, in program order).
  epoch = h->sync_started.fetch_add(1, std::memory_order_seq_cst) + 1;
  const std::uint64_t page = static_cast<std::uint64_t>(::sysconf(_SC_PAGESIZE));
  const std::uint64_t end = std::min(size_, (claimed_end() + page - 1) / page * page);
  // The whole claimed range: the kernel writes only its dirty pages, so this costs what one
  // record's range would, and it also takes records committed since by others.
  if (::msync(base_, end, MS_SYNC) != 0) {
    const int err = errno;
    // Sticky, and the segment sealed: the kernel reports a lost writeback once, so a later
    // msync's success would say nothing about these pages; appends go on in a new file.
    std::uint32_t none = 0;
    h->sync_failed.compare_exchange_strong(none, static_cast<std::uint32_t>(err == 0 ? EIO : err),
                                           std::memory_order_release, std::memory_order_relaxed);
    seal();
    wake_syncers();  // they fail now instead of at their deadline
    return io_error("sync", path_, err);
  }
  return failed();  // another process's flush may have failed meanwhile
}

void SegmentFile::publish_flush(std::uint32_t epoch) const {
  SegmentHeader* h = header();
  std::uint32_t seen = h->sync_done.load(std::memory_order_relaxed);
  // [RG2] release CAS-max: pairs with [AG2]; raised only (a bypassed owner finishing late
  // must not lower it).
  while (!epoch_reached(seen, epoch) &&
         !h->sync_done.compare_exchange_weak(seen, epoch, std::memory_order_release, std::memory_order_relaxed)) {
  }
  wake_syncers();
}

void SegmentFile::wake_syncers() const noexcept {
  SegmentHeader* h = header();
  // [SG3] seq_cst load after the store above; pairs with [SG4] (count, then re-check).
  std::atomic_thread_fence(std::memory_order_seq_cst);
  if (h->sync_waiters.load(std::memory_order_seq_cst) != 0) {
    futex_wake_all(reinterpret_cast<std::uint32_t*>(&h->sync_done));
  }
}

Status SegmentFile::flush() const {
  std::uint32_t epoch = 0;
  if (auto st = flush_pages(epoch, monotonic_ns() + kFlushWaitNs); !st) return st;
  publish_flush(epoch);
  return {};
}

void SegmentFile::seal() const noexcept {
  SegmentHeader* h = header();
  std::uint64_t word = h->claim.load(std::memory_order_relaxed);
  // [SJ1] as append's seal: seq_cst, keeping the count.
  while (!claim_sealed(word) &&
         !h->claim.compare_exchange_weak(word, sealed_word(word), std::memory_order_seq_cst, std::memory_order_relaxed)) {
  }
  wake_readers();
}

Status SegmentFile::make_durable(std::chrono::nanoseconds timeout) const {
  SegmentHeader* h = header();
  // [SG0] seq_cst fence between our commit (already stored) and the load of the epoch: a flush
  // whose [SG1] comes later in the single order sees our commit, and its epoch is past `need - 1`.
  std::atomic_thread_fence(std::memory_order_seq_cst);
  const std::uint32_t need = h->sync_started.load(std::memory_order_seq_cst) + 1;
  const auto me = static_cast<std::uint32_t>(::gettid());
  const std::uint64_t deadline = monotonic_ns() + static_cast<std::uint64_t>(timeout.count());
  for (;;) {
    // [AG2] acquire: pairs with [RG2]; a flush with an epoch >= need began after our commit.
    const std::uint32_t done = h->sync_done.load(std::memory_order_acquire);
    if (epoch_reached(done, need)) return {};
    if (auto st = failed(); !st) return st;
    const std::uint64_t now = monotonic_ns();
    // Checked first, every round: scribbled epochs (never reached) cannot keep us here.
    if (now >= deadline) {
      return make_error(Errc::timeout, path_ + ": not confirmed on disk within " +
                                           std::to_string(timeout.count() / 1'000'000) + " ms (is the disk stuck?)");
    }
    std::uint32_t owner = h->sync_owner.load(std::memory_order_relaxed);
    const std::uint64_t since = h->sync_since_ns.load(std::memory_order_relaxed);
    // A stale owner: stopped, died mid-flush, or left by a machine that rebooted (the clock
    // restarted below its mark).
    const bool stale = owner != 0 && (now < since || now - since > kSyncTakeoverNs);
    if ((owner == 0 || stale) &&
        h->sync_owner.compare_exchange_strong(owner, me, std::memory_order_acquire, std::memory_order_relaxed)) {
      h->sync_since_ns.store(now, std::memory_order_relaxed);
      std::uint32_t epoch = 0;
      Status st = flush_pages(epoch, deadline);
      // Released before the waiters are woken: one whose commit came after our epoch finds the
      // flush free and takes it at once (released only if nobody bypassed us meanwhile).
      std::uint32_t mine = me;
      h->sync_owner.compare_exchange_strong(mine, 0, std::memory_order_release, std::memory_order_relaxed);
      if (!st) return st;  // flush_pages woke the waiters: they fail too
      publish_flush(epoch);
      // Our own flush began after our commit (epoch >= need), whatever the shared words say.
      return {};
    }
    // Another appender flushes: sleep until its flush (or a later one) finishes. Bounded so
    // that a stuck owner is noticed and bypassed.
    // [SG4] seq_cst count, then the re-check: pairs with [SG3].
    h->sync_waiters.fetch_add(1, std::memory_order_seq_cst);
    std::atomic_thread_fence(std::memory_order_seq_cst);
    if (h->sync_done.load(std::memory_order_acquire) == done && !has_failed()) {
      const std::uint64_t left = std::min<std::uint64_t>(deadline - now, 50'000'000);
      futex_wait(reinterpret_cast<std::uint32_t*>(&h->sync_done), done, std::chrono::nanoseconds(left));
    }
    h->sync_waiters.fetch_sub(1, std::memory_order_relaxed);
  }
}

bool SegmentFile::directory_synced() const noexcept {
  return header()->dir_synced.load(std::memory_order_acquire) != 0;
}

void SegmentFile::mark_directory_synced() const noexcept {
  header()->dir_synced.store(1, std::memory_order_release);
}

}  // namespace bus::detail::journal

// journal/table_file.cpp — shared table files (table_file.hpp).
#include "journal/table_file.hpp"

#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <utility>

#include "os/process.hpp"

namespace bus::detail::journal {

TableMapping& TableMapping::operator=(TableMapping&& other) noexcept {
  if (this != &other) {
    if (base_ != nullptr) ::munmap(base_, size_);
    base_ = std::exchange(other.base_, nullptr);
    size_ = std::exchange(other.size_, 0);
  }
  return *this;
}

TableMapping::~TableMapping() {
  if (base_ != nullptr) ::munmap(base_, size_);
}

Result<TableMapping> TableMapping::map(int fd, const std::string& name) {
  struct stat st{};
  if (::fstat(fd, &st) != 0) return make_error(Errc::io_error, errno_message(("stat " + name).c_str(), errno));
  if (!S_ISREG(st.st_mode) || st.st_uid != ::geteuid() || st.st_size <= 0) {
    return make_error(Errc::journal_corrupt, name + " is not a table file of this user");
  }
  const auto size = static_cast<std::uint64_t>(st.st_size);
  void* p = ::mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  if (p == MAP_FAILED) return make_error(Errc::io_error, errno_message(("mmap " + name).c_str(), errno));
  TableMapping t;
  t.base_ = static_cast<std::byte*>(p);
  t.size_ = size;
  return t;
}

Result<TableMapping> TableMapping::open(int dirfd, const std::string& name) {
  const int fd = ::openat(dirfd, name.c_str(), O_RDWR | O_CLOEXEC | O_NOFOLLOW);
  if (fd < 0) {
    if (errno == ENOENT) return make_error(Errc::not_found, name + " does not exist");
    return make_error(Errc::io_error, errno_message(("open " + name).c_str(), errno));
  }
  auto t = map(fd, name);
  ::close(fd);
  return t;
}

Result<TableMapping> TableMapping::open_or_make(int dirfd, const std::string& name, const void* header,
                                                std::size_t header_len, std::uint64_t size, bool allocate) {
  auto existing = open(dirfd, name);
  if (existing || existing.error().code != Errc::not_found) return existing;
  // Made whole aside, then linked into place: whoever links first made it; the others use it.
  const std::string tmp = name + ".new." + std::to_string(::getpid());
  const int t = ::openat(dirfd, tmp.c_str(), O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
  if (t < 0) return make_error(Errc::io_error, errno_message(("create " + tmp).c_str(), errno));
  int err = 0;
  bool ok = ::fchmod(t, 0600) == 0 && ::ftruncate(t, static_cast<off_t>(size)) == 0;
  if (!ok) err = errno;
  if (ok && allocate) {
    err = ::posix_fallocate(t, 0, static_cast<off_t>(size));
    ok = err == 0;
  }
  if (ok) {
    ok = ::pwrite(t, header, header_len, 0) == static_cast<ssize_t>(header_len) && ::fsync(t) == 0;
    if (!ok) err = errno;
  }
  ::close(t);
  if (!ok) {
    ::unlinkat(dirfd, tmp.c_str(), 0);
    return make_error(Errc::io_error, errno_message(("write " + tmp).c_str(), err));
  }
  if (::linkat(dirfd, tmp.c_str(), dirfd, name.c_str(), 0) != 0 && errno != EEXIST) {
    err = errno;
    ::unlinkat(dirfd, tmp.c_str(), 0);
    return make_error(Errc::io_error, errno_message(("link " + name).c_str(), err));
  }
  ::unlinkat(dirfd, tmp.c_str(), 0);
  return open(dirfd, name);
}

}  // namespace bus::detail::journal

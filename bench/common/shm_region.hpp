// bench/common/shm_region.hpp — memory shared between a benchmark and the children it forks.
//
// Provides
//   ShmRegion        an anonymous MAP_SHARED mapping, pre-faulted (MAP_POPULATE) so page faults stay
//                    out of timed loops; page-aligned; RAII munmap; move-only. Create it BEFORE
//                    fork(): parent and child then see the same physical pages.
//   SharedObject<T>  a ShmRegion holding one T constructed in place (T must be usable across
//                    processes: lock-free atomics and plain data, no pointers to private memory).
//
// Throws std::system_error if mmap fails. A forked child should leave with _exit() (ForkPeer does),
// so it never runs these destructors; unmapping in the parent does not affect the child's mapping.
#pragma once

#include <sys/mman.h>
#include <unistd.h>

#include <cerrno>
#include <cstddef>
#include <new>
#include <system_error>
#include <type_traits>
#include <utility>

namespace bus::bench {

class ShmRegion {
 public:
  explicit ShmRegion(std::size_t bytes) : size_(round_to_pages(bytes)) {
    void* p = ::mmap(nullptr, size_, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS | MAP_POPULATE,
                     -1, 0);
    if (p == MAP_FAILED) throw std::system_error(errno, std::generic_category(), "mmap(shared)");
    data_ = p;
  }
  ~ShmRegion() { unmap(); }

  ShmRegion(ShmRegion&& other) noexcept
      : data_(std::exchange(other.data_, nullptr)), size_(std::exchange(other.size_, 0)) {}
  ShmRegion& operator=(ShmRegion&& other) noexcept {
    if (this != &other) {
      unmap();
      data_ = std::exchange(other.data_, nullptr);
      size_ = std::exchange(other.size_, 0);
    }
    return *this;
  }
  ShmRegion(const ShmRegion&) = delete;
  ShmRegion& operator=(const ShmRegion&) = delete;

  void* data() const noexcept { return data_; }
  std::size_t size() const noexcept { return size_; }

 private:
  static std::size_t round_to_pages(std::size_t bytes) {
    const long page = ::sysconf(_SC_PAGESIZE);
    const std::size_t p = page > 0 ? static_cast<std::size_t>(page) : 4096;
    return ((bytes == 0 ? 1 : bytes) + p - 1) / p * p;
  }
  void unmap() noexcept {
    if (data_ != nullptr) ::munmap(data_, size_);
    data_ = nullptr;
  }

  void* data_ = nullptr;
  std::size_t size_ = 0;
};

/// One T placed at the start of its own shared mapping. The parent's destructor runs ~T() then
/// unmaps; keep T trivially destructible if a child might still be using it at that point.
template <class T>
class SharedObject {
  static_assert(alignof(T) <= 4096, "a mapping is only page-aligned");

 public:
  template <class... Args>
  explicit SharedObject(Args&&... args) : region_(sizeof(T)) {
    object_ = ::new (region_.data()) T(std::forward<Args>(args)...);
  }
  ~SharedObject() {
    if constexpr (!std::is_trivially_destructible_v<T>) object_->~T();
  }
  SharedObject(const SharedObject&) = delete;
  SharedObject& operator=(const SharedObject&) = delete;

  T* get() const noexcept { return object_; }
  T* operator->() const noexcept { return object_; }
  T& operator*() const noexcept { return *object_; }

 private:
  ShmRegion region_;
  T* object_ = nullptr;
};

}  // namespace bus::bench

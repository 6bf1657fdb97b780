// journal/table_file.hpp — the files beside a journal's segments that hold shared hash tables
// (msg_ids.hpp, subject_index.hpp): made whole aside and linked into place, so a process that
// opens one never sees half a header, then mapped by every process that uses the journal.
#pragma once

#include <fcntl.h>

#include <cstddef>
#include <cstdint>
#include <string>

#include "bus/result.hpp"

namespace bus::detail::journal {

/// A table file mapped read-write; unmapped when it goes.
class TableMapping {
 public:
  TableMapping() = default;
  TableMapping(TableMapping&& other) noexcept { *this = std::move(other); }
  TableMapping& operator=(TableMapping&& other) noexcept;
  TableMapping(const TableMapping&) = delete;
  TableMapping& operator=(const TableMapping&) = delete;
  ~TableMapping();

  /// Maps `name` in `dirfd` (AT_FDCWD: `name` is a path) if it exists, else makes it first:
  /// mode 0600, `size` bytes (allocated on disk when `allocate`: a store to a mapped hole on a
  /// full disk is a SIGBUS), beginning with `header`. Its contents are for the caller to check.
  static Result<TableMapping> open_or_make(int dirfd, const std::string& name, const void* header,
                                           std::size_t header_len, std::uint64_t size, bool allocate);
  /// Maps an existing table file (Errc::not_found if there is none).
  static Result<TableMapping> open(int dirfd, const std::string& name);

  std::byte* data() const noexcept { return base_; }
  std::uint64_t size() const noexcept { return size_; }

 private:
  static Result<TableMapping> map(int fd, const std::string& name);
  std::byte* base_ = nullptr;
  std::uint64_t size_ = 0;
};

}  // namespace bus::detail::journal

// journal_helpers.hpp — what the journal's unit tests share.
#pragma once

#include <gtest/gtest.h>

#include <cstdio>
#include <memory>
#include <string>

#include "journal/journal.hpp"

namespace bus::test {

/// A journal opened (made if missing) in `dir` with small segments; null (and a test failure) if
/// it cannot be.
inline std::unique_ptr<detail::journal::Journal> open_journal(const std::string& dir,
                                                               std::uint64_t segment_bytes = 1 << 20) {
  detail::journal::JournalOptions options;
  options.segment_bytes = segment_bytes;
  auto j = detail::journal::Journal::open(dir, options);
  EXPECT_TRUE(j) << j.error().message;
  return j ? std::move(j).value() : nullptr;
}

/// The journal in `dir` attached as another process would (no recovery); null (and a test
/// failure) if it cannot be.
inline std::unique_ptr<detail::journal::Journal> attach_journal(const std::string& dir,
                                                                 std::uint64_t segment_bytes = 1 << 20) {
  detail::journal::JournalOptions options;
  options.segment_bytes = segment_bytes;
  auto j = detail::journal::Journal::attach(dir, options);
  EXPECT_TRUE(j) << j.error().message;
  return j ? std::move(j).value() : nullptr;
}

/// Writes `bytes` into the file at `offset`, as a crash or a scribbler would leave them.
inline void poke(const std::string& file, std::uint64_t offset, const void* bytes, std::size_t n) {
  std::FILE* f = std::fopen(file.c_str(), "r+b");
  ASSERT_NE(f, nullptr);
  ASSERT_EQ(std::fseek(f, static_cast<long>(offset), SEEK_SET), 0);
  ASSERT_EQ(std::fwrite(bytes, 1, n, f), n);
  std::fclose(f);
}

}  // namespace bus::test

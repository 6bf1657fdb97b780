// journal_helpers.hpp — what the journal's unit tests share.
#pragma once

#include <gtest/gtest.h>

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

}  // namespace bus::test

// shm/shared_text.hpp — fixed-size text fields in the segment, read and written byte by byte
// with relaxed atomics.
//
// Subjects and patterns live in fixed char arrays that the broker rewrites while clients may be
// reading them (a route's subject under its seqlock, a subscription's pattern checked by an
// inbox reply). The seqlock or a state word decides whether what was read counts; these helpers
// only make the reads and writes themselves defined (and quiet under ThreadSanitizer).
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace bus::detail {

/// Writes `text` into `field[capacity]`, NUL-padded. The caller checked text.size() < capacity.
inline void store_text(char* field, std::size_t capacity, std::string_view text) noexcept {
  for (std::size_t i = 0; i < capacity; ++i) {
    std::atomic_ref<char>(field[i]).store(i < text.size() ? text[i] : '\0', std::memory_order_relaxed);
  }
}

/// Whether `field` holds `text` in its first text.size() bytes.
inline bool text_equals(char* field, std::size_t capacity, std::string_view text) noexcept {
  if (text.size() > capacity) return false;
  for (std::size_t i = 0; i < text.size(); ++i) {
    if (std::atomic_ref<char>(field[i]).load(std::memory_order_relaxed) != text[i]) return false;
  }
  return true;
}

/// The first `len` bytes of `field`, or nullopt when `len` does not leave room for the NUL
/// (an untrusted length: checked before anything is read).
inline std::optional<std::string> load_text(char* field, std::size_t capacity, std::uint32_t len) {
  if (len >= capacity) return std::nullopt;
  std::string out(len, '\0');
  for (std::uint32_t i = 0; i < len; ++i) out[i] = std::atomic_ref<char>(field[i]).load(std::memory_order_relaxed);
  return out;
}

/// A length word the broker may be rewriting.
inline std::uint32_t load_length(std::uint32_t& word) noexcept {
  return std::atomic_ref<std::uint32_t>(word).load(std::memory_order_relaxed);
}
inline void store_length(std::uint32_t& word, std::size_t value) noexcept {
  std::atomic_ref<std::uint32_t>(word).store(static_cast<std::uint32_t>(value), std::memory_order_relaxed);
}

}  // namespace bus::detail

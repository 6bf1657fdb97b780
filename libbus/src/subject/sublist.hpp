// subject/sublist.hpp — the broker's subscription trie (NATS `Sublist` without the cache).
//
// Maps subscription patterns to caller-chosen 32-bit ids and answers "which ids match this
// literal subject?" in time proportional to the subject's depth and the trie nodes it can
// reach, not to the number of patterns. Each node has a hash map of literal child tokens
// plus one child for '*' and one for '>'; nodes left empty by `remove` are freed at once.
// Results agree with `subject_matches` for every pattern and subject (the unit test
// checks it against brute force).
//
// Process-local and single-threaded: the broker owns it and serialises access. It never
// lives in shared memory, so std containers are fine; it only stores ids, never pointers
// into shared tables. Allocation failure follows the std containers (terminate under
// -fno-exceptions).
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace bus::detail {

class Sublist {
 public:
  Sublist();
  ~Sublist();
  Sublist(Sublist&&) noexcept;
  Sublist& operator=(Sublist&&) noexcept;
  Sublist(const Sublist&) = delete;
  Sublist& operator=(const Sublist&) = delete;

  /// Adds `id` under `pattern`. False when the pattern fails `validate_subscribe_subject`
  /// or this exact (pattern, id) pair is already present. One id may sit under many patterns.
  bool insert(std::string_view pattern, std::uint32_t id);

  /// Removes the (pattern, id) pair and frees trie nodes it leaves empty. False if absent.
  bool remove(std::string_view pattern, std::uint32_t id);

  /// Appends to `out` the id of every (pattern, id) pair whose pattern matches the literal
  /// `subject`; an id under two matching patterns is appended twice. Order is unspecified.
  /// A subject with an empty token matches nothing.
  void match(std::string_view subject, std::vector<std::uint32_t>& out) const;

  /// Number of (pattern, id) pairs stored.
  std::size_t size() const noexcept { return size_; }

  /// Number of trie nodes below the root; 0 once everything is removed (shows pruning).
  std::size_t node_count() const noexcept { return node_count_; }

 private:
  struct Node;

  // Heterogeneous lookup so match() can probe with a string_view without allocating.
  struct TokenHash {
    using is_transparent = void;
    std::size_t operator()(std::string_view token) const noexcept { return std::hash<std::string_view>{}(token); }
  };

  struct Level {
    std::unordered_map<std::string, std::unique_ptr<Node>, TokenHash, std::equal_to<>> literals_;
    std::unique_ptr<Node> single_wildcard_;  // the '*' child
    std::unique_ptr<Node> full_wildcard_;    // the '>' child; it never has children of its own

    bool empty() const noexcept { return literals_.empty() && !single_wildcard_ && !full_wildcard_; }
  };

  struct Node {
    Level children_;
    std::vector<std::uint32_t> ids_;  // sorted, for duplicate checks and removal by binary search

    bool empty() const noexcept { return ids_.empty() && children_.empty(); }
  };

  bool remove_below(Level& level, std::string_view rest, std::uint32_t id);
  static void match_below(const Level& level, std::string_view rest, std::vector<std::uint32_t>& out);

  Level root_;
  std::size_t size_ = 0;
  std::size_t node_count_ = 0;
};

}  // namespace bus::detail

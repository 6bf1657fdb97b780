// subject/sublist.cpp — the subscription trie (see sublist.hpp).
//
// Recursion depth is bounded by the number of tokens in a stored pattern (at most 128,
// since patterns are at most kMaxSubjectBytes), because every step descends one level.
#include "subject/sublist.hpp"

#include <algorithm>

#include "subject/subject.hpp"

namespace bus::detail {
namespace {

constexpr char kTokenSeparator = '.';
constexpr std::string_view kSingleWildcard = "*";
constexpr std::string_view kFullWildcard = ">";

// Splits `rest` into its first token and what follows the separator. `is_last` is set
// when no separator follows (so an empty `tail` after a trailing '.' is still a token).
struct Split {
  std::string_view head;
  std::string_view tail;
  bool is_last;
};

Split split_first(std::string_view rest) noexcept {
  const std::size_t dot = rest.find(kTokenSeparator);
  if (dot == std::string_view::npos) return {rest, {}, true};
  return {rest.substr(0, dot), rest.substr(dot + 1), false};
}

bool has_empty_token(std::string_view s) noexcept {
  if (s.empty() || s.front() == kTokenSeparator || s.back() == kTokenSeparator) return true;
  return s.find("..") != std::string_view::npos;
}

void append_ids(const std::vector<std::uint32_t>& ids, std::vector<std::uint32_t>& out) {
  out.insert(out.end(), ids.begin(), ids.end());
}

}  // namespace

Sublist::Sublist() = default;
Sublist::~Sublist() = default;
Sublist::Sublist(Sublist&&) noexcept = default;
Sublist& Sublist::operator=(Sublist&&) noexcept = default;

bool Sublist::insert(std::string_view pattern, std::uint32_t id) {
  if (!validate_subscribe_subject(pattern).ok()) return false;

  Level* level = &root_;
  Node* node = nullptr;
  for (std::string_view rest = pattern;;) {
    const Split split = split_first(rest);
    std::unique_ptr<Node>* slot = nullptr;
    if (split.head == kSingleWildcard) {
      slot = &level->single_wildcard_;
    } else if (split.head == kFullWildcard) {
      slot = &level->full_wildcard_;
    } else {
      auto it = level->literals_.find(split.head);
      if (it == level->literals_.end()) {
        // The node is built before the map entry so a literal child is never null.
        it = level->literals_.emplace(std::string(split.head), std::make_unique<Node>()).first;
        ++node_count_;
      }
      slot = &it->second;
    }
    if (!*slot) {
      *slot = std::make_unique<Node>();
      ++node_count_;
    }
    node = slot->get();
    if (split.is_last) break;
    level = &node->children_;
    rest = split.tail;
  }

  const auto pos = std::lower_bound(node->ids_.begin(), node->ids_.end(), id);
  // A duplicate never creates nodes: validation passed and the path already existed.
  if (pos != node->ids_.end() && *pos == id) return false;
  node->ids_.insert(pos, id);
  ++size_;
  return true;
}

bool Sublist::remove(std::string_view pattern, std::uint32_t id) {
  if (!validate_subscribe_subject(pattern).ok()) return false;
  return remove_below(root_, pattern, id);
}

// Removes the pair under `level` and, on the way back up, frees the child it went through
// if that child is left with no ids and no children.
bool Sublist::remove_below(Level& level, std::string_view rest, std::uint32_t id) {
  const Split split = split_first(rest);
  std::unique_ptr<Node>* slot = nullptr;
  decltype(level.literals_)::iterator literal;
  if (split.head == kSingleWildcard) {
    slot = &level.single_wildcard_;
  } else if (split.head == kFullWildcard) {
    slot = &level.full_wildcard_;
  } else {
    literal = level.literals_.find(split.head);
    if (literal == level.literals_.end()) return false;
    slot = &literal->second;
  }
  Node* node = slot->get();
  if (node == nullptr) return false;

  if (split.is_last) {
    const auto pos = std::lower_bound(node->ids_.begin(), node->ids_.end(), id);
    if (pos == node->ids_.end() || *pos != id) return false;
    node->ids_.erase(pos);
    --size_;
  } else if (!remove_below(node->children_, split.tail, id)) {
    return false;
  }

  if (node->empty()) {
    if (slot == &level.single_wildcard_ || slot == &level.full_wildcard_) {
      slot->reset();
    } else {
      level.literals_.erase(literal);
    }
    --node_count_;
  }
  return true;
}

void Sublist::match(std::string_view subject, std::vector<std::uint32_t>& out) const {
  // NATS: a subject with an empty token matches nothing, not even '>'.
  if (has_empty_token(subject)) return;
  match_below(root_, subject, out);
}

void Sublist::match_below(const Level& level, std::string_view rest, std::vector<std::uint32_t>& out) {
  const Split split = split_first(rest);
  // '>' takes this token and everything after it.
  if (level.full_wildcard_) append_ids(level.full_wildcard_->ids_, out);

  const auto visit = [&](const Node& node) {
    if (split.is_last) {
      append_ids(node.ids_, out);
    } else if (!node.children_.empty()) {
      match_below(node.children_, split.tail, out);
    }
  };
  if (level.single_wildcard_) visit(*level.single_wildcard_);
  if (const auto it = level.literals_.find(split.head); it != level.literals_.end()) visit(*it->second);
}

}  // namespace bus::detail

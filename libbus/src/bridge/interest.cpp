// bridge/interest.cpp — pattern intersection and the NATS subscriptions for the bus's interest.
#include "bridge/interest.hpp"

#include <algorithm>
#include <nlohmann/json.hpp>
#include <tuple>

#include "subject/subject.hpp"

namespace bus::detail::bridge {
namespace {

std::vector<std::string_view> tokens(std::string_view s) {
  std::vector<std::string_view> out;
  std::size_t start = 0;
  for (;;) {
    const std::size_t dot = s.find('.', start);
    out.push_back(s.substr(start, dot == std::string_view::npos ? std::string_view::npos : dot - start));
    if (dot == std::string_view::npos) return out;
    start = dot + 1;
  }
}

std::string join(const std::vector<std::string_view>& parts) {
  std::string out;
  for (std::size_t i = 0; i < parts.size(); ++i) {
    if (i != 0) out += '.';
    out += parts[i];
  }
  return out;
}

}  // namespace

bool is_plumbing(std::string_view subject) noexcept {
  return subject.substr(0, 7) == "_INBOX." || (!subject.empty() && subject[0] == '$');
}

std::optional<std::string> intersect(std::string_view a, std::string_view b) {
  const auto ta = tokens(a);
  const auto tb = tokens(b);
  std::vector<std::string_view> out;
  std::size_t i = 0;
  for (;; ++i) {
    const bool a_done = i == ta.size(), b_done = i == tb.size();
    if (a_done || b_done) {
      if (a_done && b_done) return join(out);
      return std::nullopt;  // one pattern wants more tokens than the other can have
    }
    const std::string_view x = ta[i], y = tb[i];
    if (x == ">") {  // the rest of b (at least one token: b is not done)
      out.insert(out.end(), tb.begin() + static_cast<std::ptrdiff_t>(i), tb.end());
      return join(out);
    }
    if (y == ">") {
      out.insert(out.end(), ta.begin() + static_cast<std::ptrdiff_t>(i), ta.end());
      return join(out);
    }
    if (x == "*") {
      out.push_back(y);
    } else if (y == "*" || x == y) {
      out.push_back(x);
    } else {
      return std::nullopt;
    }
  }
}

bool covers(std::string_view outer, std::string_view inner) noexcept {
  // Token by token: a literal covers only itself, '*' any one token but not '>', '>' the rest.
  std::size_t o = 0, n = 0;
  for (;;) {
    const bool o_done = o > outer.size(), n_done = n > inner.size();
    if (o_done || n_done) return o_done && n_done;
    const std::size_t oe = std::min(outer.find('.', o), outer.size());
    const std::size_t ne = std::min(inner.find('.', n), inner.size());
    const std::string_view ot = outer.substr(o, oe - o), nt = inner.substr(n, ne - n);
    if (ot == ">") return true;  // inner has a token here, so it has at least one more
    if (nt == ">") return false;
    if (ot != "*" && (nt == "*" || ot != nt)) return false;
    o = oe + 1;
    n = ne + 1;
  }
}

std::vector<NatsInterest> nats_interest(const std::vector<BusInterest>& interest, const std::vector<ImportRule>& rules) {
  std::vector<NatsInterest> wanted;
  for (const BusInterest& sub : interest) {
    if (is_plumbing(sub.pattern)) continue;
    for (std::size_t r = 0; r < rules.size(); ++r) {
      const auto both = intersect(sub.pattern, rules[r].pattern);
      if (!both) continue;
      std::string subject = rules[r].prefix + *both;
      if (subject.size() > kMaxSubjectBytes) continue;  // nothing the bus could carry
      wanted.push_back(NatsInterest{std::move(subject), sub.group, r});
    }
  }
  std::sort(wanted.begin(), wanted.end(), [](const NatsInterest& x, const NatsInterest& y) {
    return std::tie(x.subject, x.group, x.rule) < std::tie(y.subject, y.group, y.rule);
  });
  // One subscription per (subject, group): the first rule serves it.
  wanted.erase(std::unique(wanted.begin(), wanted.end(),
                           [](const NatsInterest& x, const NatsInterest& y) {
                             return x.subject == y.subject && x.group == y.group;
                           }),
               wanted.end());
  // A plain subscription another plain one covers would bring every message twice.
  std::vector<NatsInterest> out;
  for (const NatsInterest& w : wanted) {
    bool covered = false;
    if (w.group.empty()) {
      for (const NatsInterest& other : wanted) {
        if (&other != &w && other.group.empty() && covers(other.subject, w.subject) &&
            // Two equal-coverage patterns cannot both be here (deduplicated), so the covering
            // one is strictly wider unless they are the same set: keep the smaller subject.
            !(covers(w.subject, other.subject) && w.subject < other.subject)) {
          covered = true;
          break;
        }
      }
    }
    if (!covered) out.push_back(w);
  }
  return out;
}

std::optional<std::vector<std::string>> connz_subjects(std::string_view json, const std::vector<NatsClientId>& own) {
  const auto j = nlohmann::json::parse(json.begin(), json.end(), nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object() || !j.contains("data") || !j["data"].is_object()) return std::nullopt;
  const auto& data = j["data"];
  const std::string server = data.value("server_id", std::string());
  std::vector<std::string> out;
  if (!data.contains("connections") || !data["connections"].is_array()) return out;
  for (const auto& c : data["connections"]) {
    if (!c.is_object()) continue;
    const std::uint64_t cid = c.value("cid", std::uint64_t{0});
    if (std::find(own.begin(), own.end(), NatsClientId{server, cid}) != own.end()) continue;
    if (!c.contains("subscriptions_list_detail") || !c["subscriptions_list_detail"].is_array()) continue;
    for (const auto& s : c["subscriptions_list_detail"]) {
      if (!s.is_object() || !s.contains("subject") || !s["subject"].is_string()) continue;
      std::string subject = s["subject"].get<std::string>();
      if (subject.rfind("_INBOX.", 0) == 0) continue;
      out.push_back(std::move(subject));
    }
  }
  return out;
}

std::vector<std::string> export_interest(const std::vector<std::string>& nats_subjects, const ImportRule& rule) {
  const std::string wide = rule.prefix + rule.pattern;
  std::vector<std::string> wanted;
  for (const auto& s : nats_subjects) {
    auto both = intersect(s, wide);
    if (!both || both->size() <= rule.prefix.size() || both->compare(0, rule.prefix.size(), rule.prefix) != 0) continue;
    wanted.push_back(both->substr(rule.prefix.size()));
  }
  std::sort(wanted.begin(), wanted.end());
  wanted.erase(std::unique(wanted.begin(), wanted.end()), wanted.end());
  std::vector<std::string> out;
  for (const auto& w : wanted) {
    const bool covered = std::any_of(wanted.begin(), wanted.end(), [&](const std::string& other) {
      return other != w && covers(other, w);
    });
    if (!covered) out.push_back(w);
  }
  return out;
}

std::size_t first_plain_match(const std::vector<std::string>& plain, std::string_view subject) noexcept {
  for (std::size_t i = 0; i < plain.size(); ++i) {
    if (subject_matches(plain[i], subject)) return i;
  }
  return plain.size();
}

}  // namespace bus::detail::bridge

// bridge/interest.hpp — which NATS subscriptions a bridge needs for the bus's interest.
//
// The bridge subscribes on NATS only for what bus subscribers want (an import rule alone costs
// nothing): for each bus subscription and each import rule whose patterns can share a subject,
// the NATS subscription is their intersection, under the rule's prefix, with the subscription's
// queue group. Plain patterns another plain pattern covers are left out, so NATS sends a
// message once where it can; where two plain patterns only overlap (a.*.c, a.b.*), the bridge
// delivers what both receive once (Interest::first_plain_match). Pure functions: no NATS, no bus.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace bus::detail::bridge {

/// The pattern matching exactly the subjects both `a` and `b` match, or nullopt when no
/// subject matches both. Valid subscribe patterns in; "a.*" and "*.b" give "a.b", "a.>" and
/// "a.*.c" give "a.*.c", "a.>" and "a" nothing.
std::optional<std::string> intersect(std::string_view a, std::string_view b);

/// Does every subject `inner` matches also match `outer`? ("a.b" in "a.*", "a.*.c" in "a.>").
bool covers(std::string_view outer, std::string_view inner) noexcept;

/// The bus's own plumbing, which no bridge carries: request inboxes (`_INBOX.`: replies cross by
/// the bridge's reply mapping) and `$` subjects ($SYS, $JS, $BUS).
bool is_plumbing(std::string_view subject) noexcept;

/// One bus subscription as interest: its pattern and queue group ("" when plain).
struct BusInterest {
  std::string pattern;
  std::string group;
};

/// One NATS subscription the bridge wants: the NATS subject (prefix included), the queue group
/// ("" for a plain subscription) and the import rule it serves.
struct NatsInterest {
  std::string subject;
  std::string group;
  std::size_t rule = 0;
  friend bool operator==(const NatsInterest&, const NatsInterest&) = default;
};

/// An import rule as interest needs it.
struct ImportRule {
  std::string pattern;  // bus side
  std::string prefix;   // NATS subject = prefix + bus subject
};

/// The NATS subscriptions `interest` calls for under `rules`: deduplicated, plain ones that
/// another plain one covers left out, sorted (subject, group) so results compare cheaply.
/// The bus's own plumbing (`_INBOX.`, `$` subjects) is never imported by interest.
std::vector<NatsInterest> nats_interest(const std::vector<BusInterest>& interest, const std::vector<ImportRule>& rules);

/// A connection as CONNZ names it: the server it is on and its client id there.
struct NatsClientId {
  std::string server_id;
  std::uint64_t cid = 0;
  friend bool operator==(const NatsClientId&, const NatsClientId&) = default;
};

/// The subscription subjects one answer to $SYS.REQ.ACCOUNT.PING.CONNZ (asked with
/// subscriptions_detail) lists, leaving out the connections in `own` and request inboxes
/// (`_INBOX.`: replies to NATS requesters never go through an export). nullopt when `json` is
/// not such an answer.
std::optional<std::vector<std::string>> connz_subjects(std::string_view json, const std::vector<NatsClientId>& own);

/// The bus patterns an export rule (bus `pattern`, NATS subject = prefix + bus subject) must
/// subscribe to for the NATS subscriptions `nats_subjects`: their intersections with the rule,
/// prefix taken off, deduplicated, covered ones left out, sorted.
std::vector<std::string> export_interest(const std::vector<std::string>& nats_subjects, const ImportRule& rule);

/// Of `plain` (NATS subjects of the plain subscriptions in place), the index of the first that
/// matches `subject`, or plain.size(): a message NATS delivered on several of them is passed
/// on by that one only.
std::size_t first_plain_match(const std::vector<std::string>& plain, std::string_view subject) noexcept;

}  // namespace bus::detail::bridge

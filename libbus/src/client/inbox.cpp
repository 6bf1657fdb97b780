// client/inbox.cpp — request/reply over one inbox subscription per connection.
#include "client/inbox.hpp"

#include <charconv>
#include <random>

#include "client/connection_impl.hpp"
#include "client/subscription_impl.hpp"
#include "os/process.hpp"

namespace bus::detail {

namespace {

// The pump reads in slices so that it notices new deadlines and close() promptly.
constexpr std::uint64_t kPumpSliceNs = 10'000'000;
// A sync requester that finds another thread reading the inbox waits this long per check.
constexpr auto kHandOffWait = std::chrono::milliseconds(1);

std::string random_token() {
  static constexpr char kAlphabet[] = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
  std::random_device device;
  std::mt19937_64 gen((static_cast<std::uint64_t>(device()) << 32) ^ device() ^ monotonic_ns());
  std::string token(22, '0');  // as long as a NATS NUID
  for (char& c : token) c = kAlphabet[gen() % (sizeof kAlphabet - 1)];
  return token;
}

bool parse_hex(std::string_view s, std::uint32_t& out) noexcept {
  if (s.empty() || s.size() > 8) return false;
  const auto [ptr, ec] = std::from_chars(s.data(), s.data() + s.size(), out, 16);
  return ec == std::errc() && ptr == s.data() + s.size();
}

// "<ring>-<incarnation>" in hex.
bool parse_ring_address(std::string_view address, InboxAddress& out) noexcept {
  const std::size_t dash = address.find('-');
  if (dash == std::string_view::npos) return false;
  return parse_hex(address.substr(0, dash), out.ring) && parse_hex(address.substr(dash + 1), out.incarnation);
}

std::string to_hex(std::uint32_t v) {
  char buf[8];
  const auto [ptr, ec] = std::to_chars(buf, buf + sizeof buf, v, 16);
  return std::string(buf, ptr);
}

std::uint64_t deadline_after(std::chrono::nanoseconds timeout) {
  const std::uint64_t now = monotonic_ns();
  return timeout.count() <= 0 ? now : now + static_cast<std::uint64_t>(timeout.count());
}

}  // namespace

bool is_no_responders_status(std::string_view headers) noexcept {
  // "NATS/1.0 503" and then the end of the line or a description.
  constexpr std::string_view status = "NATS/1.0 503";
  return headers.substr(0, status.size()) == status &&
         (headers.size() == status.size() || headers[status.size()] == '\r' || headers[status.size()] == ' ');
}

std::optional<InboxAddress> parse_inbox_address(std::string_view subject) noexcept {
  if (subject.substr(0, kInboxPrefix.size()) != kInboxPrefix) return std::nullopt;
  const std::size_t random_end = subject.find('.', kInboxPrefix.size());
  if (random_end == std::string_view::npos) return std::nullopt;
  const std::size_t address_end = subject.find('.', random_end + 1);
  if (address_end == std::string_view::npos || subject.find('.', address_end + 1) != std::string_view::npos) {
    return std::nullopt;  // exactly four tokens
  }
  InboxAddress out;
  if (!parse_ring_address(subject.substr(random_end + 1, address_end - random_end - 1), out)) return std::nullopt;
  out.pattern_prefix = subject.substr(0, random_end + 1);
  return out;
}

std::string ring_address(std::uint32_t ring, std::uint32_t incarnation) {
  return to_hex(ring) + "-" + to_hex(incarnation);
}

std::optional<InboxAddress> parse_ack_address(std::string_view subject) noexcept {
  if (subject.substr(0, kAckPrefix.size()) != kAckPrefix) return std::nullopt;
  // Exactly 10 tokens after the prefix; the address is the last.
  std::size_t dots = 0, last_dot = 0;
  for (std::size_t i = kAckPrefix.size(); i < subject.size(); ++i) {
    if (subject[i] == '.') {
      ++dots;
      last_dot = i;
    }
  }
  if (dots != 9) return std::nullopt;
  InboxAddress out;
  if (!parse_ring_address(subject.substr(last_dot + 1), out)) return std::nullopt;
  out.pattern_prefix = kAckPrefix;
  return out;
}

Inbox::Inbox(ConnectionImpl& connection) : connection_(connection) {}

Inbox::~Inbox() { close(); }

Result<DirectInbox> open_direct_inbox(ConnectionImpl& connection, const SubscribeOptions& options) {
  const std::string pattern_prefix = std::string(kInboxPrefix) + random_token() + ".";
  auto sub = connection.subscribe(pattern_prefix + ">", options);
  if (!sub) return std::move(sub).error();
  DirectInbox inbox;
  inbox.subscription = std::move(sub).value();
  inbox.subscription->set_rebindable(false);
  inbox.reply_prefix =
      pattern_prefix + ring_address(inbox.subscription->index(), inbox.subscription->incarnation()) + ".";
  return inbox;
}

Status Inbox::open() {
  auto inbox = open_direct_inbox(connection_);
  if (!inbox) return std::move(inbox).error();
  subscription_ = std::move(inbox->subscription);
  reply_prefix_ = std::move(inbox->reply_prefix);
  return {};
}

void Inbox::close() {
  {
    std::lock_guard lock(mutex_);
    if (stopping_) return;
    stopping_ = true;
    for (auto& [id, p] : pending_) {
      if (p->async) p->promise.set_value(make_error(Errc::closed, "connection closed"));
    }
    pending_.clear();
    connection_.note_pending_requests(0);
  }
  changed_.notify_all();
  if (subscription_) subscription_->detach();  // wakes a reader; it then sees closed
  if (pump_.joinable()) pump_.join();
  std::lock_guard consume(consume_mutex_);  // wait for any reader to leave
  subscription_.reset();
}

Result<std::shared_ptr<Inbox::Pending>> Inbox::send(std::string_view subject, std::string_view data,
                                                    std::string_view headers,
                                                    std::chrono::nanoseconds timeout, bool async,
                                                    std::uint64_t& id) {
  auto entry = std::make_shared<Pending>();
  entry->async = async;
  entry->deadline_ns = deadline_after(timeout);
  {
    std::lock_guard lock(mutex_);
    if (stopping_) return make_error(Errc::closed, "connection is closed");
    id = next_id_++;
    pending_.emplace(id, entry);
    connection_.note_pending_requests(pending_.size());
    if (async) ++async_outstanding_;
  }
  auto forget = [&] {
    std::lock_guard lock(mutex_);
    pending_.erase(id);
    connection_.note_pending_requests(pending_.size());
    if (async) --async_outstanding_;
  };
  auto matched = connection_.publish(subject, reply_prefix_ + std::to_string(id), headers, data);
  if (!matched) {
    forget();
    return std::move(matched).error();
  }
  if (matched.value() == 0) {
    forget();
    return make_error(Errc::no_responders, "no responders available for request on '" + std::string(subject) + "'");
  }
  return entry;
}

void Inbox::complete(std::uint64_t id, Result<Message> result) {
  auto it = pending_.find(id);
  if (it == pending_.end()) return;  // a late reply to a request that timed out: dropped
  Pending& p = *it->second;
  p.done = true;
  if (p.async) {
    p.promise.set_value(std::move(result));
    --async_outstanding_;
  } else {
    p.result = std::move(result);
  }
  pending_.erase(it);
  connection_.note_pending_requests(pending_.size());
}

void Inbox::read_one_locked(std::uint64_t deadline_ns) {
  const std::uint64_t now = monotonic_ns();
  auto msg = subscription_->next(std::chrono::nanoseconds(deadline_ns > now ? deadline_ns - now : 0));
  if (!msg) return;  // timeout (callers re-check their deadlines) or closed (stopping_)
  const std::string_view subject = msg->subject;
  if (subject.size() <= reply_prefix_.size() || subject.substr(0, reply_prefix_.size()) != reply_prefix_) return;
  std::uint64_t id = 0;
  const std::string_view tail = subject.substr(reply_prefix_.size());
  const auto [ptr, ec] = std::from_chars(tail.data(), tail.data() + tail.size(), id);
  if (ec != std::errc() || ptr != tail.data() + tail.size()) return;
  // A NATS no-responders status as the reply (what a bridge relays when nobody on NATS serves
  // the subject): the request fails as one nobody on the bus serves does.
  Result<Message> result = std::move(msg);
  if (is_no_responders_status(result->headers)) {
    result = make_error(Errc::no_responders, "no responders available for request (answered by NATS, through a bridge)");
  }
  {
    std::lock_guard lock(mutex_);
    complete(id, std::move(result));
  }
  changed_.notify_all();
}

void Inbox::expire_async_locked(std::uint64_t now_ns) {
  for (auto it = pending_.begin(); it != pending_.end();) {
    Pending& p = *it->second;
    if (p.async && now_ns >= p.deadline_ns) {
      p.promise.set_value(make_error(Errc::timeout, "no reply within the timeout"));
      --async_outstanding_;
      it = pending_.erase(it);
    } else {
      ++it;
    }
  }
  connection_.note_pending_requests(pending_.size());
}

Result<Message> Inbox::request(std::string_view subject, std::string_view data, std::string_view headers,
                               std::chrono::nanoseconds timeout) {
  std::uint64_t id = 0;
  auto sent = send(subject, data, headers, timeout, false, id);
  if (!sent) return std::move(sent).error();
  const std::shared_ptr<Pending> entry = std::move(sent).value();
  for (;;) {
    {
      std::unique_lock lock(mutex_);
      if (entry->done) return std::move(*entry->result);
      if (stopping_) return make_error(Errc::closed, "connection closed");
      if (monotonic_ns() >= entry->deadline_ns) {
        pending_.erase(id);
        connection_.note_pending_requests(pending_.size());
        return make_error(Errc::timeout, "no reply to request on '" + std::string(subject) + "' within the timeout");
      }
    }
    // Read the inbox ourselves if nobody else is: the reply then costs no thread hand-off.
    std::unique_lock consume(consume_mutex_, std::try_to_lock);
    if (consume.owns_lock()) {
      read_one_locked(entry->deadline_ns);
    } else {
      std::unique_lock lock(mutex_);
      changed_.wait_for(lock, kHandOffWait, [&] { return entry->done || stopping_; });
    }
  }
}

std::future<Result<Message>> Inbox::request_async(std::string_view subject, std::string_view data,
                                                  std::string_view headers, std::chrono::nanoseconds timeout) {
  std::uint64_t id = 0;
  auto sent = send(subject, data, headers, timeout, true, id);
  if (!sent) {
    std::promise<Result<Message>> failed;
    failed.set_value(std::move(sent).error());
    return failed.get_future();
  }
  std::future<Result<Message>> future = sent.value()->promise.get_future();
  {
    std::lock_guard lock(mutex_);
    if (!pump_.joinable() && !stopping_) pump_ = std::thread([this] { pump(); });
  }
  changed_.notify_all();
  return future;
}

void Inbox::pump() {
  for (;;) {
    std::uint64_t slice_end = 0;
    {
      std::unique_lock lock(mutex_);
      changed_.wait(lock, [&] { return stopping_ || async_outstanding_ > 0; });
      if (stopping_) return;
      const std::uint64_t now = monotonic_ns();
      expire_async_locked(now);
      if (async_outstanding_ == 0) continue;
      slice_end = now + kPumpSliceNs;
      for (auto& [id, p] : pending_) {
        if (p->async) slice_end = std::min(slice_end, p->deadline_ns);
      }
    }
    std::unique_lock consume(consume_mutex_, std::try_to_lock);
    if (consume.owns_lock()) {
      read_one_locked(slice_end);
    } else {
      std::unique_lock lock(mutex_);  // a sync requester is reading; it routes our replies too
      changed_.wait_for(lock, kHandOffWait);
    }
  }
}

}  // namespace bus::detail

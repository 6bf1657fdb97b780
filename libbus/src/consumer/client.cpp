// consumer/client.cpp — the client side of consumers: administration and fetch as JetStream's
// API requests ($JS.API.CONSUMER.*), acknowledgements as publishes to a message's reply.
#include <thread>

#include <nlohmann/json.hpp>

#include "bus/connection.hpp"
#include "bus/consumer.hpp"
#include "client/connection_impl.hpp"
#include "client/inbox.hpp"
#include "client/subscription_impl.hpp"
#include "consumer/config.hpp"
#include "os/process.hpp"
#include "stream/config.hpp"

namespace bus::detail {

/// A fetch's replies come straight into this inbox's ring; request n asks on reply_prefix + n,
/// so a status (timeout, no messages) left over from an earlier fetch is told apart.
struct FetchInbox {
  ConnectionImpl* connection = nullptr;
  DirectInbox inbox;
  std::uint64_t next_id = 1;
};

}  // namespace bus::detail

namespace bus {

namespace {

constexpr std::chrono::seconds kApiTimeout{5};

Status acknowledge(const MessageView& m, std::string_view body) {
  if (!detail::consumer::parse_ack_subject(m.reply)) {
    return make_error(Errc::invalid_argument, "message was not delivered by a consumer (no $JS.ACK reply subject)");
  }
  return m.respond(body);
}

Result<nlohmann::json> parse(const Result<std::string>& body) {
  if (!body) return body.error();
  nlohmann::json j = nlohmann::json::parse(body.value(), nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) return make_error(Errc::protocol_error, "consumer API reply is not JSON");
  if (auto e = detail::consumer::reply_error(j)) return *e;
  return j;
}

}  // namespace

Result<MessageMetadata> metadata(const MessageView& message) {
  auto m = detail::consumer::parse_ack_subject(message.reply);
  if (!m) return make_error(Errc::invalid_argument, "message was not delivered by a consumer (no $JS.ACK reply subject)");
  return *m;
}

Status ack(const MessageView& m) { return acknowledge(m, "+ACK"); }
Status nak(const MessageView& m, std::chrono::nanoseconds delay) {
  if (delay.count() <= 0) return acknowledge(m, "-NAK");
  return acknowledge(m, "-NAK {\"delay\":" + std::to_string(delay.count()) + "}");
}
Status in_progress(const MessageView& m) { return acknowledge(m, "+WPI"); }
Status term(const MessageView& m) { return acknowledge(m, "+TERM"); }

Status ack_sync(const MessageView& m, std::chrono::nanoseconds timeout) {
  if (!detail::consumer::parse_ack_subject(m.reply)) {
    return make_error(Errc::invalid_argument, "message was not delivered by a consumer (no $JS.ACK reply subject)");
  }
  if (m.origin == nullptr) return make_error(Errc::closed, "the connection that received the message is closed");
  auto reply = m.origin->request(m.reply, "+ACK", {}, timeout);
  // Nobody to confirm it: the broker (and its consumer engine) is restarting. Asked again
  // within the caller's timeout, so the acknowledgement reaches the new one.
  const auto give_up = std::chrono::steady_clock::now() + timeout;
  while (!reply && reply.error().code == Errc::no_responders && std::chrono::steady_clock::now() < give_up) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    reply = m.origin->request(m.reply, "+ACK", {}, timeout);
  }
  if (!reply) {
    if (reply.error().code == Errc::timeout) {
      return make_error(Errc::timeout, "the acknowledgement was not confirmed in time (it may be redelivered)");
    }
    return std::move(reply).error();
  }
  return {};
}

Result<std::string> Consumers::call(const std::string& subject, const std::string& body) {
  // The broker starts its consumer engine with the first stream: for a moment after that,
  // nobody answers yet. Asked again for up to 2 s before that counts as no consumers served.
  auto reply = connection_->request(subject, body, kApiTimeout);
  for (int i = 0; i < 100 && !reply && reply.error().code == Errc::no_responders; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    reply = connection_->request(subject, body, kApiTimeout);
  }
  if (!reply) {
    if (reply.error().code == Errc::no_responders) {
      return make_error(Errc::no_responders, "no consumers served on this bus: the broker serves no streams yet");
    }
    return std::move(reply).error();
  }
  return std::move(reply->data);
}

Result<ConsumerInfo> Consumers::add(std::string_view stream, const ConsumerConfig& config) {
  ConsumerConfig c = config;
  if (auto st = detail::stream::validate_name(stream, "stream"); !st) return std::move(st).error();
  if (auto st = detail::consumer::validate(c); !st) return std::move(st).error();
  detail::consumer::normalize(c);
  const nlohmann::json body{{"stream_name", stream}, {"config", detail::consumer::to_json_value(c)}};
  const std::string subject = c.name.empty() ? std::string(detail::consumer::kApiPrefix) + "CREATE." + std::string(stream)
                                             : detail::consumer::create_subject(stream, c.name);
  auto j = parse(call(subject, detail::stream::json_text(body)));
  if (!j) return std::move(j).error();
  return detail::consumer::info_from_json(j.value());
}

Result<ConsumerInfo> Consumers::info(std::string_view stream, std::string_view name) {
  if (auto st = detail::stream::validate_name(stream, "stream"); !st) return std::move(st).error();
  if (auto st = detail::stream::validate_name(name, "consumer"); !st) return std::move(st).error();
  auto j = parse(call(detail::consumer::info_subject(stream, name), {}));
  if (!j) return std::move(j).error();
  return detail::consumer::info_from_json(j.value());
}

Result<std::vector<ConsumerInfo>> Consumers::list(std::string_view stream) {
  if (auto st = detail::stream::validate_name(stream, "stream"); !st) return std::move(st).error();
  auto j = parse(call(detail::consumer::list_subject(stream), {}));
  if (!j) return std::move(j).error();
  if (!j->contains("consumers") || !j->at("consumers").is_array()) {
    return make_error(Errc::protocol_error, "consumer list reply without consumers");
  }
  std::vector<ConsumerInfo> out;
  for (const auto& item : j->at("consumers")) {
    auto info = detail::consumer::info_from_json(item);
    if (!info) return std::move(info).error();
    out.push_back(std::move(info).value());
  }
  return out;
}

Status Consumers::remove(std::string_view stream, std::string_view name) {
  if (auto st = detail::stream::validate_name(stream, "stream"); !st) return std::move(st).error();
  if (auto st = detail::stream::validate_name(name, "consumer"); !st) return std::move(st).error();
  auto j = parse(call(detail::consumer::delete_subject(stream, name), {}));
  if (!j) return std::move(j).error();
  return {};
}

Result<std::vector<Message>> Consumers::fetch(std::string_view stream, std::string_view name, std::size_t batch,
                                              std::chrono::nanoseconds expires) {
  const auto& impl = detail::ConnectionAccess::impl(*connection_);
  if (!impl) return make_error(Errc::closed, "connection is closed");
  if (auto st = detail::stream::validate_name(stream, "stream"); !st) return std::move(st).error();
  if (auto st = detail::stream::validate_name(name, "consumer"); !st) return std::move(st).error();
  if (batch == 0) return make_error(Errc::invalid_argument, "fetch batch must be at least 1");
  if (expires.count() <= 0) return make_error(Errc::invalid_argument, "fetch expiry must be positive");
  if (!fetch_inbox_ || fetch_inbox_->connection != impl.get()) {
    auto inbox = detail::open_direct_inbox(*impl);
    if (!inbox) return std::move(inbox).error();
    fetch_inbox_ = std::make_shared<detail::FetchInbox>();
    fetch_inbox_->connection = impl.get();
    fetch_inbox_->inbox = std::move(inbox).value();
  }
  detail::FetchInbox& f = *fetch_inbox_;
  const std::string reply = f.inbox.reply_prefix + std::to_string(f.next_id++);
  const nlohmann::json body{{"batch", batch}, {"expires", expires.count()}};
  auto matched = impl->publish(detail::consumer::next_subject(stream, name), reply, {}, detail::stream::json_text(body));
  for (int i = 0; i < 100 && matched && matched.value() == 0; ++i) {  // as call(): the engine may be starting
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    matched = impl->publish(detail::consumer::next_subject(stream, name), reply, {}, detail::stream::json_text(body));
  }
  if (!matched) return std::move(matched).error();
  if (matched.value() == 0) {
    return make_error(Errc::no_responders, "no consumers served on this bus: the broker serves no streams yet");
  }
  std::vector<Message> out;
  // The broker answers a request that expires with a 408 status; a little slack past it.
  const std::uint64_t deadline = detail::monotonic_ns() + static_cast<std::uint64_t>(expires.count()) + 200'000'000ull;
  while (out.size() < batch) {
    const std::uint64_t now = detail::monotonic_ns();
    if (now >= deadline) break;
    auto m = f.inbox.subscription->next(std::chrono::nanoseconds(deadline - now));
    if (!m) {
      if (m.error().code == Errc::timeout) break;
      fetch_inbox_.reset();  // the inbox is gone (reconnect, close): a new one next time
      if (!out.empty()) break;
      return std::move(m).error();
    }
    if (m->subject.rfind(f.inbox.reply_prefix, 0) == 0) {
      if (m->subject != reply) continue;  // an earlier fetch's status
      auto h = Headers::parse(m->headers);
      const int status = h ? h->status() : 0;
      const std::string what = h ? std::string(h->description()) : std::string();
      if (status == 408 || (status == 404 && what == "No Messages")) break;  // expired; nothing more now
      if (!out.empty()) break;
      return make_error(status == 404 ? Errc::not_found : Errc::invalid_argument,
                        "consumer '" + std::string(name) + "' on stream '" + std::string(stream) + "': " +
                            (what.empty() ? "refused the fetch" : what));
    }
    auto meta = detail::consumer::parse_ack_subject(m->reply);
    if (!meta || meta->stream != stream || meta->consumer != name) continue;  // another consumer's late delivery
    out.push_back(std::move(m).value());
  }
  return out;
}

}  // namespace bus

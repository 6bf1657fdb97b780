// consumer/config.cpp — consumer configuration: validation, JSON, subjects.
#include "consumer/config.hpp"

#include <charconv>

#include "stream/config.hpp"
#include "subject/subject.hpp"

namespace bus {

const char* to_string(DeliverPolicy p) noexcept {
  switch (p) {
    case DeliverPolicy::all: return "all";
    case DeliverPolicy::last: return "last";
    case DeliverPolicy::new_messages: return "new";
    case DeliverPolicy::by_start_sequence: return "by_start_sequence";
    case DeliverPolicy::by_start_time: return "by_start_time";
    case DeliverPolicy::last_per_subject: return "last_per_subject";
  }
  return "?";
}
const char* to_string(AckPolicy p) noexcept {
  switch (p) {
    case AckPolicy::none: return "none";
    case AckPolicy::all: return "all";
    case AckPolicy::explicit_ack: return "explicit";
  }
  return "?";
}
const char* to_string(ReplayPolicy p) noexcept { return p == ReplayPolicy::original ? "original" : "instant"; }

std::string to_json(const ConsumerInfo& info) {
  nlohmann::json j = detail::consumer::info_to_json(info);
  return detail::stream::json_text(j, 2);
}

}  // namespace bus

namespace bus::detail::consumer {

namespace {

Error invalid(const std::string& what) { return make_error(Errc::invalid_argument, what); }

struct BadField {
  std::string what;
};

template <class E>
bool parse_enum(const std::string& text, std::initializer_list<E> values, E& out) {
  for (const E value : values) {
    if (text == to_string(value)) {
      out = value;
      return true;
    }
  }
  return false;
}

std::int64_t int_field(const nlohmann::json& j, const char* field, std::int64_t fallback) {
  const auto it = j.find(field);
  if (it == j.end() || it->is_null()) return fallback;
  // Integers only, in range: get<int64_t>() would truncate 1.5 and wrap 2^64 - 1 silently.
  if (!it->is_number_integer() || (it->is_number_unsigned() && it->get<std::uint64_t>() > INT64_MAX)) {
    throw BadField{std::string(field) + " must be an integer (as int64)"};
  }
  return it->get<std::int64_t>();
}

std::uint64_t uint_field(const nlohmann::json& j, const char* field) {
  const std::int64_t v = int_field(j, field, 0);
  if (v < 0) throw BadField{std::string(field) + " must not be negative"};
  return static_cast<std::uint64_t>(v);
}

std::string text_field(const nlohmann::json& j, const char* field) {
  const auto it = j.find(field);
  if (it == j.end() || it->is_null()) return {};
  if (!it->is_string()) throw BadField{std::string(field) + " must be a string"};
  return it->get<std::string>();
}

nlohmann::json sequence_json(const SequenceInfo& s) {
  return {{"consumer_seq", s.consumer_seq}, {"stream_seq", s.stream_seq}, {"last_active", s.last_active_ns}};
}

SequenceInfo sequence_from(const nlohmann::json& j) {
  SequenceInfo s;
  if (!j.is_object()) return s;
  s.consumer_seq = uint_field(j, "consumer_seq");
  s.stream_seq = uint_field(j, "stream_seq");
  s.last_active_ns = int_field(j, "last_active", 0);
  return s;
}

void append_token(std::string& out, std::uint64_t v) {
  char digits[24];
  const auto r = std::to_chars(digits, digits + sizeof digits, v);
  out.push_back('.');
  out.append(digits, r.ptr);
}

}  // namespace

Status validate(const ConsumerConfig& c) {
  if (!c.durable_name.empty()) {
    if (auto st = stream::validate_name(c.durable_name, "consumer"); !st) return st;
    if (!c.name.empty() && c.name != c.durable_name) return invalid("consumer name and durable_name must be the same");
  }
  if (!c.name.empty()) {
    if (auto st = stream::validate_name(c.name, "consumer"); !st) return st;
  }
  if ((c.deliver_policy == DeliverPolicy::by_start_sequence) != (c.opt_start_seq != 0)) {
    return invalid("opt_start_seq goes with deliver policy by_start_sequence, and only with it");
  }
  if ((c.deliver_policy == DeliverPolicy::by_start_time) != (c.opt_start_time_ns != 0)) {
    return invalid("opt_start_time goes with deliver policy by_start_time, and only with it");
  }
  if (c.ack_wait.count() <= 0) return invalid("ack_wait must be positive");
  for (const auto& b : c.backoff) {
    if (b.count() <= 0) return invalid("every backoff must be positive");
  }
  if (c.max_deliver < -1) return invalid("max_deliver must be -1 (unlimited) or positive");
  if (!c.backoff.empty() && c.max_deliver != -1 && c.max_deliver <= static_cast<std::int64_t>(c.backoff.size())) {
    return invalid("max_deliver must be larger than the number of backoff values");
  }
  if (c.max_ack_pending < -1) return invalid("max_ack_pending must be -1 (unlimited) or positive");
  if (c.max_waiting < 0) return invalid("max_waiting must not be negative");
  if (c.inactive_threshold.count() < 0) return invalid("inactive_threshold must not be negative");
  for (std::size_t i = 0; i < c.filter_subjects.size(); ++i) {
    if (auto st = validate_subscribe_subject(c.filter_subjects[i]); !st) return st;
    for (std::size_t k = 0; k < i; ++k) {
      if (subjects_overlap(c.filter_subjects[i], c.filter_subjects[k])) {
        return invalid("filter subjects '" + c.filter_subjects[k] + "' and '" + c.filter_subjects[i] + "' overlap");
      }
    }
  }
  if (!c.deliver_subject.empty()) {
    if (auto st = validate_publish_subject(c.deliver_subject); !st) return st;
    if (c.max_waiting > 0) return invalid("max_waiting is for pull consumers (no deliver_subject)");
  } else if (!c.deliver_group.empty()) {
    return invalid("deliver_group needs a deliver_subject (push consumers only)");
  }
  if (!c.deliver_group.empty()) {
    if (auto st = validate_queue_group(c.deliver_group); !st) return st;
  }
  return {};
}

void normalize(ConsumerConfig& c) {
  if (!c.durable_name.empty()) c.name = c.durable_name;
  if (c.max_deliver == 0) c.max_deliver = -1;
  if (c.max_ack_pending == 0) c.max_ack_pending = c.ack_policy == AckPolicy::none ? -1 : 1000;
  if (c.max_waiting == 0 && c.deliver_subject.empty()) c.max_waiting = 512;
  if (c.durable_name.empty() && c.inactive_threshold.count() == 0) c.inactive_threshold = std::chrono::seconds(5);
}

bool same(const ConsumerConfig& a, const ConsumerConfig& b) { return to_json_value(a) == to_json_value(b); }

nlohmann::json to_json_value(const ConsumerConfig& c) {
  nlohmann::json backoff = nlohmann::json::array();
  for (const auto& b : c.backoff) backoff.push_back(b.count());
  nlohmann::json j{{"durable_name", c.durable_name},
                   {"name", c.name},
                   {"description", c.description},
                   {"deliver_policy", to_string(c.deliver_policy)},
                   {"ack_policy", to_string(c.ack_policy)},
                   {"ack_wait", c.ack_wait.count()},
                   {"backoff", backoff},
                   {"max_deliver", c.max_deliver},
                   {"filter_subjects", c.filter_subjects},
                   {"replay_policy", to_string(c.replay_policy)},
                   {"max_ack_pending", c.max_ack_pending},
                   {"max_waiting", c.max_waiting},
                   {"deliver_subject", c.deliver_subject},
                   {"deliver_group", c.deliver_group},
                   {"inactive_threshold", c.inactive_threshold.count()}};
  if (c.opt_start_seq != 0) j["opt_start_seq"] = c.opt_start_seq;
  if (c.opt_start_time_ns != 0) j["opt_start_time"] = rfc3339(c.opt_start_time_ns);
  if (c.opt_start_time_ns != 0) j["opt_start_time_ns"] = c.opt_start_time_ns;
  return j;
}

Result<ConsumerConfig> from_json_value(const nlohmann::json& j) {
  if (!j.is_object()) return invalid("consumer configuration is not a JSON object");
  ConsumerConfig c;
  try {
    c.durable_name = text_field(j, "durable_name");
    c.name = text_field(j, "name");
    c.description = text_field(j, "description");
    const std::string deliver = text_field(j, "deliver_policy");
    if (!deliver.empty() &&
        !parse_enum(deliver,
                    {DeliverPolicy::all, DeliverPolicy::last, DeliverPolicy::new_messages,
                     DeliverPolicy::by_start_sequence, DeliverPolicy::by_start_time, DeliverPolicy::last_per_subject},
                    c.deliver_policy)) {
      return invalid("deliver_policy must be all, last, new, by_start_sequence, by_start_time or last_per_subject");
    }
    const std::string ack = text_field(j, "ack_policy");
    if (!ack.empty() && !parse_enum(ack, {AckPolicy::none, AckPolicy::all, AckPolicy::explicit_ack}, c.ack_policy)) {
      return invalid("ack_policy must be none, all or explicit");
    }
    const std::string replay = text_field(j, "replay_policy");
    if (!replay.empty() && !parse_enum(replay, {ReplayPolicy::instant, ReplayPolicy::original}, c.replay_policy)) {
      return invalid("replay_policy must be instant or original");
    }
    c.opt_start_seq = uint_field(j, "opt_start_seq");
    c.opt_start_time_ns = int_field(j, "opt_start_time_ns", 0);
    c.ack_wait = std::chrono::nanoseconds(int_field(j, "ack_wait", 30'000'000'000));
    if (const auto it = j.find("backoff"); it != j.end() && !it->is_null()) {
      if (!it->is_array()) throw BadField{"backoff must be an array of durations in ns"};
      for (const auto& b : *it) {
        if (!b.is_number_integer()) throw BadField{"backoff must be an array of durations in ns"};
        c.backoff.emplace_back(b.get<std::int64_t>());
      }
    }
    c.max_deliver = int_field(j, "max_deliver", -1);
    if (const auto it = j.find("filter_subjects"); it != j.end() && !it->is_null()) {
      c.filter_subjects = it->get<std::vector<std::string>>();
    }
    if (const std::string one = text_field(j, "filter_subject"); !one.empty()) c.filter_subjects.push_back(one);
    c.max_ack_pending = int_field(j, "max_ack_pending", 0);
    c.max_waiting = int_field(j, "max_waiting", 0);
    c.deliver_subject = text_field(j, "deliver_subject");
    c.deliver_group = text_field(j, "deliver_group");
    c.inactive_threshold = std::chrono::nanoseconds(int_field(j, "inactive_threshold", 0));
  } catch (const nlohmann::json::exception& e) {
    return invalid(std::string("consumer configuration: ") + e.what());
  } catch (const BadField& e) {
    return invalid("consumer configuration: " + e.what);
  }
  if (auto st = validate(c); !st) return std::move(st).error();
  normalize(c);
  return c;
}

nlohmann::json info_to_json(const ConsumerInfo& info) {
  return {{"stream_name", info.stream_name},
          {"name", info.name},
          {"created", rfc3339(info.created_ns)},
          {"created_ns", info.created_ns},
          {"config", to_json_value(info.config)},
          {"delivered", sequence_json(info.delivered)},
          {"ack_floor", sequence_json(info.ack_floor)},
          {"num_ack_pending", info.num_ack_pending},
          {"num_redelivered", info.num_redelivered},
          {"num_waiting", info.num_waiting},
          {"num_pending", info.num_pending}};
}

Result<ConsumerInfo> info_from_json(const nlohmann::json& j) {
  if (!j.is_object() || !j.contains("config")) return make_error(Errc::protocol_error, "consumer info without config");
  auto config = from_json_value(j.at("config"));
  if (!config) return std::move(config).error();
  ConsumerInfo info;
  try {
    info.config = std::move(config).value();
    info.stream_name = text_field(j, "stream_name");
    info.name = text_field(j, "name");
    info.created_ns = int_field(j, "created_ns", 0);
    if (j.contains("delivered")) info.delivered = sequence_from(j.at("delivered"));
    if (j.contains("ack_floor")) info.ack_floor = sequence_from(j.at("ack_floor"));
    info.num_ack_pending = uint_field(j, "num_ack_pending");
    info.num_redelivered = uint_field(j, "num_redelivered");
    info.num_waiting = uint_field(j, "num_waiting");
    info.num_pending = uint_field(j, "num_pending");
  } catch (const nlohmann::json::exception& e) {
    return make_error(Errc::protocol_error, std::string("consumer info: ") + e.what());
  } catch (const BadField& e) {
    return make_error(Errc::protocol_error, "consumer info: " + e.what);
  }
  return info;
}

std::string create_subject(std::string_view stream, std::string_view consumer) {
  return std::string(kApiPrefix) + "CREATE." + std::string(stream) + "." + std::string(consumer);
}
std::string info_subject(std::string_view stream, std::string_view consumer) {
  return std::string(kApiPrefix) + "INFO." + std::string(stream) + "." + std::string(consumer);
}
std::string delete_subject(std::string_view stream, std::string_view consumer) {
  return std::string(kApiPrefix) + "DELETE." + std::string(stream) + "." + std::string(consumer);
}
std::string list_subject(std::string_view stream) { return std::string(kApiPrefix) + "LIST." + std::string(stream); }
std::string next_subject(std::string_view stream, std::string_view consumer) {
  return std::string(kApiPrefix) + "MSG.NEXT." + std::string(stream) + "." + std::string(consumer);
}

std::string ack_subject(std::string_view stream, std::string_view consumer, const MessageMetadata& m,
                        std::string_view address) {
  std::string s;
  s.reserve(48 + stream.size() + consumer.size() + 5 * 20 + address.size());
  // v2 (with an address): no domain ("_", as JetStream writes none) and our account name.
  s.append("$JS.ACK.");
  if (!address.empty()) s.append("_.bus.");
  s.append(stream).append(".").append(consumer);
  append_token(s, m.num_delivered);
  append_token(s, m.stream_seq);
  append_token(s, m.consumer_seq);
  append_token(s, static_cast<std::uint64_t>(m.time_ns));
  append_token(s, m.num_pending);
  if (!address.empty()) s.append(".").append(address);
  return s;
}

std::optional<MessageMetadata> parse_ack_subject(std::string_view subject) {
  constexpr std::string_view prefix = "$JS.ACK.";
  if (subject.substr(0, prefix.size()) != prefix) return std::nullopt;
  subject.remove_prefix(prefix.size());
  // v1: stream, consumer, 5 numbers; v2: domain, account, the same, and an optional token.
  std::string_view tokens[10];
  int n = 0;
  for (;;) {
    if (n == 10) return std::nullopt;
    const std::size_t dot = subject.find('.');
    tokens[n] = subject.substr(0, dot);
    if (tokens[n].empty()) return std::nullopt;
    ++n;
    if (dot == std::string_view::npos) break;
    subject.remove_prefix(dot + 1);
  }
  if (n != 7 && n != 9 && n != 10) return std::nullopt;
  const int first = n == 7 ? 0 : 2;
  MessageMetadata m;
  m.stream = std::string(tokens[first]);
  m.consumer = std::string(tokens[first + 1]);
  std::uint64_t values[5];
  for (int i = 0; i < 5; ++i) {
    const std::string_view t = tokens[first + 2 + i];
    const auto r = std::from_chars(t.data(), t.data() + t.size(), values[i]);
    if (r.ec != std::errc{} || r.ptr != t.data() + t.size()) return std::nullopt;
  }
  m.num_delivered = values[0];
  m.stream_seq = values[1];
  m.consumer_seq = values[2];
  m.time_ns = static_cast<std::int64_t>(values[3]);
  m.num_pending = values[4];
  return m;
}

std::string error_reply(const Error& error) {
  int code = 500;
  int err_code = 10000;
  switch (error.code) {
    case Errc::not_found:
      code = 404;
      err_code = error.message.rfind("stream", 0) == 0 ? 10059 : 10014;  // stream / consumer not found
      break;
    case Errc::already_exists: code = 400; err_code = 10148; break;  // consumer already exists
    case Errc::invalid_argument:
    case Errc::invalid_subject: code = 400; err_code = 10003; break;  // bad request
    case Errc::resource_exhausted: code = 400; err_code = 10026; break;  // maximum consumers limit
    default: break;
  }
  nlohmann::json j{{"error",
                    {{"code", code},
                     {"err_code", err_code},
                     {"description", error.message},
                     {"bus_code", static_cast<int>(error.code)}}}};
  return stream::json_text(j);
}

std::optional<Error> reply_error(const nlohmann::json& reply) {
  if (!reply.is_object()) return std::nullopt;
  const auto it = reply.find("error");
  if (it == reply.end() || !it->is_object()) return std::nullopt;
  Error e;
  e.code = Errc::protocol_error;
  if (const auto c = it->find("bus_code"); c != it->end() && c->is_number_integer()) {
    const int v = c->get<int>();
    if (v > 0 && v <= static_cast<int>(Errc::expectation_failed)) e.code = static_cast<Errc>(v);
  }
  if (const auto d = it->find("description"); d != it->end() && d->is_string()) e.message = d->get<std::string>();
  return e;
}

}  // namespace bus::detail::consumer

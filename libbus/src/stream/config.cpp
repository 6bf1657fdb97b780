// stream/config.cpp — stream configuration: validation and JSON.
#include "stream/config.hpp"

#include <cstdio>
#include <ctime>

#include <nlohmann/json.hpp>

#include "subject/subject.hpp"

namespace bus {

const char* to_string(Retention r) noexcept {
  switch (r) {
    case Retention::limits: return "limits";
    case Retention::interest: return "interest";
    case Retention::workqueue: return "workqueue";
  }
  return "?";
}
const char* to_string(Discard d) noexcept { return d == Discard::old_messages ? "old" : "new"; }
const char* to_string(Storage s) noexcept { return s == Storage::file ? "file" : "memory"; }
const char* to_string(SyncPolicy s) noexcept {
  switch (s) {
    case SyncPolicy::always: return "always";
    case SyncPolicy::interval: return "interval";
    case SyncPolicy::never: break;
  }
  return "never";
}

std::string rfc3339(std::int64_t unix_ns) {
  if (unix_ns <= 0) return "0001-01-01T00:00:00Z";
  const std::time_t seconds = static_cast<std::time_t>(unix_ns / 1'000'000'000);
  std::tm tm{};
  ::gmtime_r(&seconds, &tm);
  char text[64];
  const std::size_t n = std::strftime(text, sizeof text, "%Y-%m-%dT%H:%M:%S", &tm);
  std::snprintf(text + n, sizeof text - n, ".%09lldZ", static_cast<long long>(unix_ns % 1'000'000'000));
  return text;
}

std::string to_json(const StreamConfig& config) {
  return detail::stream::json_text(detail::stream::to_json_value(config), 2);
}

std::string to_json(const StreamInfo& info) {
  const StreamState& st = info.state;
  nlohmann::json j{{"config", detail::stream::to_json_value(info.config)},
                   {"state",
                    {{"messages", st.messages},
                     {"bytes", st.bytes},
                     {"first_seq", st.first_seq},
                     {"first_ts", rfc3339(st.first_ts_ns)},
                     {"last_seq", st.last_seq},
                     {"last_ts", rfc3339(st.last_ts_ns)},
                     {"lost", st.lost_msgs},
                     {"consumer_count", st.consumer_count}}}};
  return detail::stream::json_text(j, 2);
}

}  // namespace bus

namespace bus::detail::stream {

namespace {

Error invalid(const std::string& what) { return make_error(Errc::invalid_argument, what); }

// Well-formed UTF-8 (no overlongs or surrogates checked: the JSON writer's rule is the bar).
bool valid_utf8(std::string_view s) {
  for (std::size_t i = 0; i < s.size();) {
    const auto c = static_cast<unsigned char>(s[i]);
    const std::size_t n = c < 0x80 ? 1 : (c >> 5) == 0x6 ? 2 : (c >> 4) == 0xE ? 3 : (c >> 3) == 0x1E ? 4 : 0;
    if (n == 0 || i + n > s.size()) return false;
    for (std::size_t k = 1; k < n; ++k) {
      if ((static_cast<unsigned char>(s[i + k]) >> 6) != 0x2) return false;
    }
    i += n;
  }
  return true;
}

struct BadField {
  std::string what;
};

template <class E>
bool parse_enum(const std::string& text, std::initializer_list<std::pair<const char*, E>> names, E& out) {
  for (const auto& [name, value] : names) {
    if (text == name) {
      out = value;
      return true;
    }
  }
  return false;
}

}  // namespace

Status validate_name(std::string_view name, const char* what) {
  if (name.empty() || name.size() > 255) return invalid(std::string(what) + " name must be 1 to 255 bytes");
  for (const char ch : name) {
    if (ch == '.' || ch == '*' || ch == '>' || ch == '/' || ch == '\\' || static_cast<unsigned char>(ch) <= ' ' ||
        static_cast<unsigned char>(ch) >= 0x7f) {
      return invalid(std::string(what) + " name '" + std::string(name) +
                     "' may not contain whitespace, '.', '*', '>', '/', '\\' or non-ASCII bytes");
    }
  }
  return {};
}

Status validate(const StreamConfig& c) {
  if (auto st = validate_name(c.name, "stream"); !st) return st;
  if (c.subjects.empty()) return invalid("stream '" + c.name + "' needs at least one subject");
  for (std::size_t i = 0; i < c.subjects.size(); ++i) {
    if (auto st = validate_subscribe_subject(c.subjects[i]); !st) return st;
    if (!valid_utf8(c.subjects[i])) return invalid("stream '" + c.name + "': a subject is not valid UTF-8");
    for (std::size_t k = 0; k < i; ++k) {
      if (subjects_overlap(c.subjects[i], c.subjects[k])) {
        return invalid("stream '" + c.name + "': subjects '" + c.subjects[k] + "' and '" + c.subjects[i] + "' overlap");
      }
    }
  }
  for (const auto& [value, field] : {std::pair{c.max_msgs, "max_msgs"}, std::pair{c.max_bytes, "max_bytes"},
                                     std::pair{c.max_msg_size, "max_msg_size"},
                                     std::pair{c.max_msgs_per_subject, "max_msgs_per_subject"}}) {
    if (value < -1) return invalid(std::string(field) + " must be -1 or 0 (unlimited) or positive");
  }
  if (c.max_age.count() < 0) return invalid("max_age must not be negative");
  if (c.duplicate_window.count() < 0) return invalid("duplicate_window must not be negative");
  // Bounded below: the broker's flusher must not turn into a busy loop of msyncs.
  if (c.sync_interval < std::chrono::milliseconds(10) || c.sync_interval > std::chrono::hours(24)) {
    return invalid("sync_interval must be from 10ms to 24h");
  }
  if (c.max_age.count() > 0 && c.duplicate_window > c.max_age) {
    return invalid("duplicate_window must not be longer than max_age");
  }
  return {};
}

void normalize(StreamConfig& c) {
  for (std::int64_t* limit : {&c.max_msgs, &c.max_bytes, &c.max_msg_size, &c.max_msgs_per_subject}) {
    if (*limit == 0) *limit = -1;
  }
}

nlohmann::json to_json_value(const StreamConfig& c) {
  return nlohmann::json{{"name", c.name},
                   {"subjects", c.subjects},
                   {"retention", to_string(c.retention)},
                   {"max_msgs", c.max_msgs},
                   {"max_bytes", c.max_bytes},
                   {"max_age", c.max_age.count()},
                   {"max_msg_size", c.max_msg_size},
                   {"max_msgs_per_subject", c.max_msgs_per_subject},
                   {"discard", to_string(c.discard)},
                   {"duplicate_window", c.duplicate_window.count()},
                   {"storage", to_string(c.storage)},
                   {"sync", to_string(c.sync)},
                   {"sync_interval", c.sync_interval.count()},
                   {"allow_rollup_hdrs", c.allow_rollup_hdrs}};
}

Result<StreamConfig> from_json(std::string_view text) {
  const nlohmann::json j = nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) return invalid("stream configuration is not JSON");
  return from_json_value(j);
}

Result<StreamConfig> from_json_value(const nlohmann::json& j) {
  if (!j.is_object()) return invalid("stream configuration is not a JSON object");
  StreamConfig c;
  try {
    c.name = j.at("name").get<std::string>();
    c.subjects = j.at("subjects").get<std::vector<std::string>>();
    auto text_of = [&](const char* field, const char* fallback) {
      return j.contains(field) ? j.at(field).get<std::string>() : std::string(fallback);
    };
    auto int_of = [&](const char* field, std::int64_t fallback) -> std::int64_t {
      if (!j.contains(field)) return fallback;
      const nlohmann::json& v = j.at(field);
      // Integers only, in range: get<int64_t>() would truncate 1.5 and wrap 2^64 - 1 silently.
      if (!v.is_number_integer() || (v.is_number_unsigned() && v.get<std::uint64_t>() > INT64_MAX)) {
        throw BadField{std::string(field) + " must be an integer (as int64)"};
      }
      return v.get<std::int64_t>();
    };
    if (!parse_enum<Retention>(text_of("retention", "limits"),
                               {{"limits", Retention::limits}, {"interest", Retention::interest},
                                {"workqueue", Retention::workqueue}},
                               c.retention)) {
      return invalid("retention must be limits, interest or workqueue");
    }
    if (!parse_enum<Discard>(text_of("discard", "old"), {{"old", Discard::old_messages}, {"new", Discard::new_messages}},
                             c.discard)) {
      return invalid("discard must be old or new");
    }
    if (!parse_enum<Storage>(text_of("storage", "file"), {{"file", Storage::file}, {"memory", Storage::memory}},
                             c.storage)) {
      return invalid("storage must be file or memory");
    }
    if (!parse_enum<SyncPolicy>(text_of("sync", "never"),
                                {{"never", SyncPolicy::never}, {"always", SyncPolicy::always},
                                 {"interval", SyncPolicy::interval}},
                                c.sync)) {
      return invalid("sync must be never, always or interval");
    }
    c.sync_interval = std::chrono::nanoseconds(int_of("sync_interval", 1'000'000'000));
    c.max_msgs = int_of("max_msgs", -1);
    c.max_bytes = int_of("max_bytes", -1);
    c.max_age = std::chrono::nanoseconds(int_of("max_age", 0));
    c.max_msg_size = int_of("max_msg_size", -1);
    c.max_msgs_per_subject = int_of("max_msgs_per_subject", -1);
    c.duplicate_window = std::chrono::nanoseconds(int_of("duplicate_window", 120'000'000'000));
    if (j.contains("allow_rollup_hdrs")) {
      if (!j.at("allow_rollup_hdrs").is_boolean()) throw BadField{"allow_rollup_hdrs must be true or false"};
      c.allow_rollup_hdrs = j.at("allow_rollup_hdrs").get<bool>();
    }
  } catch (const nlohmann::json::exception& e) {
    return invalid(std::string("stream configuration: ") + e.what());
  } catch (const BadField& e) {
    return invalid("stream configuration: " + e.what);
  }
  if (auto st = validate(c); !st) return std::move(st).error();
  return c;
}

std::string json_text(const nlohmann::json& value, int indent) {
  return value.dump(indent, ' ', false, nlohmann::json::error_handler_t::replace);
}

nlohmann::json info_to_json(const StreamInfo& info) {
  const StreamState& st = info.state;
  return nlohmann::json{{"config", to_json_value(info.config)},
                        {"state",
                         {{"messages", st.messages},
                          {"bytes", st.bytes},
                          {"first_seq", st.first_seq},
                          {"last_seq", st.last_seq},
                          {"first_ts", st.first_ts_ns},
                          {"last_ts", st.last_ts_ns},
                          {"lost", st.lost_msgs},
                          {"consumer_count", st.consumer_count}}}};
}

Result<StreamInfo> info_from_json(const nlohmann::json& j) {
  if (!j.is_object() || !j.contains("config") || !j.contains("state") || !j.at("state").is_object()) {
    return make_error(Errc::protocol_error, "stream info without config or state");
  }
  auto config = from_json_value(j.at("config"));
  if (!config) return std::move(config).error();
  StreamInfo info;
  info.config = std::move(config).value();
  const nlohmann::json& st = j.at("state");
  auto number = [&](const char* field) -> std::uint64_t {
    const auto it = st.find(field);
    return it != st.end() && it->is_number_unsigned() ? it->get<std::uint64_t>() : 0;
  };
  info.state.messages = number("messages");
  info.state.bytes = number("bytes");
  info.state.first_seq = number("first_seq");
  info.state.last_seq = number("last_seq");
  info.state.first_ts_ns = static_cast<std::int64_t>(number("first_ts"));
  info.state.last_ts_ns = static_cast<std::int64_t>(number("last_ts"));
  info.state.lost_msgs = number("lost");
  info.state.consumer_count = static_cast<std::uint32_t>(number("consumer_count"));
  return info;
}

}  // namespace bus::detail::stream

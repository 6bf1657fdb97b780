// stream/config.cpp — stream configuration: validation and JSON.
#include "stream/config.hpp"

#include <nlohmann/json.hpp>

#include "subject/subject.hpp"

namespace bus::detail::stream {

namespace {

Error invalid(const std::string& what) { return make_error(Errc::invalid_argument, what); }

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

Status validate(const StreamConfig& c) {
  if (c.name.empty() || c.name.size() > 255) return invalid("stream name must be 1 to 255 bytes");
  for (const char ch : c.name) {
    if (ch == '.' || ch == '*' || ch == '>' || ch == '/' || ch == '\\' || static_cast<unsigned char>(ch) <= ' ' ||
        ch == 0x7f) {
      return invalid("stream name '" + c.name + "' may not contain whitespace, '.', '*', '>', '/' or '\\'");
    }
  }
  if (c.subjects.empty()) return invalid("stream '" + c.name + "' needs at least one subject");
  for (std::size_t i = 0; i < c.subjects.size(); ++i) {
    if (auto st = validate_subscribe_subject(c.subjects[i]); !st) return st;
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
  if (c.max_age.count() > 0 && c.duplicate_window > c.max_age) {
    return invalid("duplicate_window must not be longer than max_age");
  }
  if (c.storage == Storage::memory) {
    return invalid("stream '" + c.name + "': storage memory is not built yet; use file (with sync never it is "
                   "as fast: the journal lives in the page cache)");
  }
  return {};
}

void normalize(StreamConfig& c) {
  for (std::int64_t* limit : {&c.max_msgs, &c.max_bytes, &c.max_msg_size, &c.max_msgs_per_subject}) {
    if (*limit == 0) *limit = -1;
  }
}

std::string to_json(const StreamConfig& c) {
  nlohmann::json j{{"name", c.name},
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
                   {"sync", c.sync == journal::SyncPolicy::always ? "always" : "never"}};
  return j.dump(2);
}

Result<StreamConfig> from_json(std::string_view text) {
  const nlohmann::json j = nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object()) return invalid("stream configuration is not a JSON object");
  StreamConfig c;
  try {
    c.name = j.at("name").get<std::string>();
    c.subjects = j.at("subjects").get<std::vector<std::string>>();
    auto text_of = [&](const char* field, const char* fallback) {
      return j.contains(field) ? j.at(field).get<std::string>() : std::string(fallback);
    };
    auto int_of = [&](const char* field, std::int64_t fallback) {
      return j.contains(field) ? j.at(field).get<std::int64_t>() : fallback;
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
    if (!parse_enum<journal::SyncPolicy>(text_of("sync", "never"),
                                         {{"never", journal::SyncPolicy::never}, {"always", journal::SyncPolicy::always}},
                                         c.sync)) {
      return invalid("sync must be never or always");
    }
    c.max_msgs = int_of("max_msgs", -1);
    c.max_bytes = int_of("max_bytes", -1);
    c.max_age = std::chrono::nanoseconds(int_of("max_age", 0));
    c.max_msg_size = int_of("max_msg_size", -1);
    c.max_msgs_per_subject = int_of("max_msgs_per_subject", -1);
    c.duplicate_window = std::chrono::nanoseconds(int_of("duplicate_window", 120'000'000'000));
  } catch (const nlohmann::json::exception& e) {
    return invalid(std::string("stream configuration: ") + e.what());
  }
  if (auto st = validate(c); !st) return std::move(st).error();
  return c;
}

}  // namespace bus::detail::stream

// consumer/store.cpp — durable consumers on disk (store.hpp).
#include "consumer/store.hpp"

#include <filesystem>
#include <fstream>
#include <sstream>

#include <nlohmann/json.hpp>

#include "consumer/config.hpp"
#include "os/files.hpp"
#include "stream/config.hpp"

namespace bus::detail::consumer {

namespace {

Result<nlohmann::json> read_json(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return make_error(Errc::io_error, "cannot read " + path);
  std::stringstream text;
  text << in.rdbuf();
  nlohmann::json j = nlohmann::json::parse(text.str(), nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object()) return make_error(Errc::journal_corrupt, path + " is not a JSON object");
  return j;
}

nlohmann::json sequence_json(const SequenceInfo& s) {
  return {{"consumer_seq", s.consumer_seq}, {"stream_seq", s.stream_seq}, {"last_active", s.last_active_ns}};
}

bool read_sequence(const nlohmann::json& j, const char* field, SequenceInfo& out) {
  const auto it = j.find(field);
  if (it == j.end() || !it->is_object()) return false;
  const auto c = it->find("consumer_seq");
  const auto s = it->find("stream_seq");
  const auto a = it->find("last_active");
  if (c == it->end() || s == it->end() || !c->is_number_unsigned() || !s->is_number_unsigned()) return false;
  out.consumer_seq = c->get<std::uint64_t>();
  out.stream_seq = s->get<std::uint64_t>();
  out.last_active_ns = a != it->end() && a->is_number_integer() ? a->get<std::int64_t>() : 0;
  return true;
}

Result<ConsumerState> parse_state(const nlohmann::json& j, const std::string& path) {
  ConsumerState st;
  auto bad = [&](const char* what) { return make_error(Errc::journal_corrupt, path + ": " + what); };
  if (!read_sequence(j, "delivered", st.delivered) || !read_sequence(j, "ack_floor", st.ack_floor)) {
    return bad("delivered or ack_floor missing");
  }
  if (st.ack_floor.stream_seq > st.delivered.stream_seq || st.ack_floor.consumer_seq > st.delivered.consumer_seq) {
    return bad("ack floor above the delivered sequence");
  }
  const auto pending = j.find("pending");
  if (pending == j.end() || !pending->is_array()) return bad("pending missing");
  std::uint64_t previous = st.ack_floor.stream_seq;
  for (const auto& p : *pending) {
    if (!p.is_array() || p.size() != 3 || !p[0].is_number_unsigned() || !p[1].is_number_unsigned() ||
        !p[2].is_number_integer()) {
      return bad("a pending entry is not [stream_seq, consumer_seq, time]");
    }
    PendingEntry e{p[0].get<std::uint64_t>(), p[1].get<std::uint64_t>(), p[2].get<std::int64_t>()};
    // In order, above the floor, at most what was delivered: anything else is damage.
    if (e.stream_seq <= previous || e.stream_seq > st.delivered.stream_seq ||
        e.consumer_seq > st.delivered.consumer_seq) {
      return bad("pending entries out of order or outside the delivered range");
    }
    previous = e.stream_seq;
    st.pending.push_back(e);
  }
  const auto redelivered = j.find("redelivered");
  if (redelivered != j.end()) {
    if (!redelivered->is_array()) return bad("redelivered is not an array");
    for (const auto& r : *redelivered) {
      if (!r.is_array() || r.size() != 2 || !r[0].is_number_unsigned() || !r[1].is_number_unsigned()) {
        return bad("a redelivered entry is not [stream_seq, count]");
      }
      st.redelivered.emplace_back(r[0].get<std::uint64_t>(), r[1].get<std::uint64_t>());
    }
  }
  return st;
}

}  // namespace

std::string consumer_dir(const std::string& state_dir, const std::string& stream, const std::string& name) {
  return state_dir + "/streams/" + stream + "/consumers/" + name;
}

Status save_consumer(const std::string& state_dir, const StoredConsumer& c) {
  const std::string dir = consumer_dir(state_dir, c.stream, c.config.name);
  // Only under a stream that exists: a create racing the stream's removal must not bring its
  // directory back (a stream directory without stream.json reads as damaged).
  std::error_code ec;
  if (!std::filesystem::is_regular_file(state_dir + "/streams/" + c.stream + "/stream.json", ec)) {
    return make_error(Errc::not_found, "stream not found: '" + c.stream + "'");
  }
  if (auto st = make_private_dir(dir); !st) return st;
  nlohmann::json j{{"stream_name", c.stream}, {"created_ns", c.created_ns}, {"config", to_json_value(c.config)}};
  if (auto st = write_file_atomically(dir + "/consumer.json", stream::json_text(j, 2)); !st) return st;
  if (auto st = save_state(dir, c.state); !st) return st;
  return sync_directory(dir);
}

Status save_state(const std::string& dir, const ConsumerState& st) {
  nlohmann::json pending = nlohmann::json::array();
  for (const auto& p : st.pending) pending.push_back({p.stream_seq, p.consumer_seq, p.delivered_ns});
  nlohmann::json redelivered = nlohmann::json::array();
  for (const auto& [seq, count] : st.redelivered) redelivered.push_back({seq, count});
  nlohmann::json j{{"delivered", sequence_json(st.delivered)},
                   {"ack_floor", sequence_json(st.ack_floor)},
                   {"pending", std::move(pending)},
                   {"redelivered", std::move(redelivered)}};
  return write_file_atomically(dir + "/state.json", j.dump());
}

Status remove_consumer(const std::string& state_dir, const std::string& stream, const std::string& name) {
  const std::string dir = consumer_dir(state_dir, stream, name);
  std::error_code ec;
  std::filesystem::remove_all(dir, ec);
  if (ec) return make_error(Errc::io_error, "remove " + dir + ": " + ec.message());
  return sync_directory(state_dir + "/streams/" + stream + "/consumers");
}

std::vector<StoredConsumer> load_consumers(const std::string& state_dir, std::vector<std::string>& damaged) {
  std::vector<StoredConsumer> out;
  std::error_code ec;
  const std::filesystem::path streams = std::filesystem::path(state_dir) / "streams";
  // increment(ec), not ++: the throwing form must not reach the broker's threads.
  for (std::filesystem::directory_iterator s(streams, ec), end; !ec && s != end; s.increment(ec)) {
    const std::string stream = s->path().filename().string();
    if (stream.rfind('.', 0) == 0) continue;  // .new-NAME / .trash-NAME: not a stream
    std::error_code ec2;
    for (std::filesystem::directory_iterator c(s->path() / "consumers", ec2); !ec2 && c != end; c.increment(ec2)) {
      const std::string dir = c->path().string();
      auto meta = read_json(dir + "/consumer.json");
      if (!meta) {
        damaged.push_back(meta.error().message);
        continue;
      }
      auto config = meta->contains("config") ? from_json_value(meta->at("config"))
                                              : Result<ConsumerConfig>(make_error(Errc::journal_corrupt, "no config"));
      if (!config || config->name != c->path().filename().string()) {
        damaged.push_back(dir + "/consumer.json: " + (config ? "name differs from the directory" : config.error().message));
        continue;
      }
      auto state_json = read_json(dir + "/state.json");
      if (!state_json) {
        damaged.push_back(state_json.error().message);
        continue;
      }
      auto state = parse_state(state_json.value(), dir + "/state.json");
      if (!state) {
        damaged.push_back(state.error().message);
        continue;
      }
      StoredConsumer sc;
      sc.stream = stream;
      sc.config = std::move(config).value();
      const auto created = meta->find("created_ns");
      sc.created_ns = created != meta->end() && created->is_number_integer() ? created->get<std::int64_t>() : 0;
      sc.state = std::move(state).value();
      out.push_back(std::move(sc));
    }
  }
  return out;
}

}  // namespace bus::detail::consumer

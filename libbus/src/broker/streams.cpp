// broker/streams.cpp — the streams a broker serves: store, journals, the segment's stream table.
#include "broker/streams.hpp"

#include <algorithm>
#include <chrono>
#include <filesystem>

#include "journal/msg_ids.hpp"
#include "os/process.hpp"
#include "shm/seqlock.hpp"
#include "shm/shared_text.hpp"
#include "subject/subject.hpp"

namespace bus::detail {

namespace {

Error no_stream(std::string_view name) {
  return make_error(Errc::not_found, "stream not found: '" + std::string(name) + "'");
}

// Segment files of a stream's journal: large, so a roll-over is rare; created on first need.
constexpr std::uint64_t kJournalSegmentBytes = 64ull << 20;

// How often the preparer looks at the streams' tails: a 64 MiB segment of 64-byte records
// takes a publisher ~100 ms to fill at 10 M/s, and half of it is left when it looks.
constexpr auto kPrepareInterval = std::chrono::milliseconds(20);

// Records the subject index takes in per tick and stream (~20 ns each): the loop goes on.
constexpr std::uint64_t kIndexPerTick = 500'000;

}  // namespace

BrokerStreams::~BrokerStreams() {
  {
    std::lock_guard lock(preparer_mutex_);
    preparer_stop_ = true;
  }
  preparer_cv_.notify_all();
  if (preparer_.joinable()) preparer_.join();
}

void BrokerStreams::start_preparer() {
  if (!preparer_.joinable()) preparer_ = std::thread([this] { prepare_loop(); });
}

void BrokerStreams::publish_journals() {
  std::lock_guard lock(preparer_mutex_);
  std::vector<Prepared> before = std::move(prepared_);
  prepared_.clear();
  for (const auto& s : streams_) {
    Prepared p{s.journal, s.config.sync,
               s.config.sync == SyncPolicy::interval ? static_cast<std::uint64_t>(s.config.sync_interval.count()) : 0,
               0};
    for (const auto& b : before) {
      if (b.journal == s.journal && b.flush_every_ns == p.flush_every_ns) p.next_flush_ns = b.next_flush_ns;
    }
    prepared_.push_back(std::move(p));
  }
}

void BrokerStreams::prepare_loop() {
  std::unique_lock lock(preparer_mutex_);
  std::string last_error;  // logged once, not every round (a full disk stays full for a while)
  auto report = [&](const journal::Journal& j, const Error& e, const char* then) {
    std::string line = "stream journal " + j.directory() + ": " + e.message;
    if (line != last_error) log_(line + then);
    last_error = std::move(line);
  };
  while (!preparer_stop_) {
    auto journals = prepared_;
    lock.unlock();
    for (auto& p : journals) {
      // The policy as it is now (an edit changes `p.sync`, not the broker's open journal).
      if (auto st = p.journal->prepare_spare(p.sync); !st) {
        report(*p.journal, st.error(), " (the roll-over will make the file itself)");
      }
      if (p.sync == SyncPolicy::never) continue;
      // Read per journal: a spare or a flush before this one may have taken a while.
      const std::uint64_t now = monotonic_ns();
      // Interval: everything, when due. Always and interval: deletes every round (publishers
      // sync their own records under always; flush() skips segments with no change).
      const bool due = p.flush_every_ns != 0 && now >= p.next_flush_ns;
      if (!due && !p.journal->has_unflushed_deletes()) continue;
      if (auto st = p.journal->flush(); !st) report(*p.journal, st.error(), " (flush retried next round)");
      if (due) p.next_flush_ns = now + p.flush_every_ns;
    }
    lock.lock();
    // Keep the schedule for journals still served (the list may have changed meanwhile).
    for (auto& p : prepared_) {
      for (const auto& q : journals) {
        if (q.journal == p.journal && q.flush_every_ns == p.flush_every_ns) p.next_flush_ns = q.next_flush_ns;
      }
    }
    preparer_cv_.wait_for(lock, kPrepareInterval, [this] { return preparer_stop_; });
  }
}

Status BrokerStreams::open_store(const std::string& store_dir, Log log, RouteCheck route_check) {
  log_ = std::move(log);
  route_check_ = std::move(route_check);
  std::error_code ec;
  const std::string absolute = std::filesystem::absolute(store_dir, ec).lexically_normal().string();
  if (ec) return make_error(Errc::invalid_argument, "store directory " + store_dir + ": " + ec.message());
  store_dir_ = absolute;
  // A bus that never had a stream leaves no directory behind: made by the first `stream add`.
  if (!std::filesystem::exists(absolute, ec)) return {};
  return make_store();
}

Status BrokerStreams::make_store() {
  auto store = stream::StreamStore::open(store_dir_);
  if (!store) return std::move(store).error();
  store_.emplace(std::move(store).value());
  return {};
}

void BrokerStreams::load(Segment& segment, bool adopted) {
  segment_ = &segment;
  streams_.clear();
  if (!store_) {
    for (std::uint32_t i = 0; i < segment.config().max_streams; ++i) publish_slot(i, nullptr);
    return;
  }
  const std::string& absolute = store_->state_dir();
  const std::uint32_t slots = segment.config().max_streams;

  // What a previous broker left in the table: name -> (slot, incarnation).
  struct Left {
    std::string name, dir;
    std::uint64_t stream_id;
    std::uint32_t incarnation;
    bool active;
  };
  std::vector<Left> left(slots);
  for (std::uint32_t i = 0; i < slots; ++i) {
    StreamLayout* l = segment.stream(i);
    left[i].incarnation = l->incarnation.load(std::memory_order_relaxed);
    left[i].active = false;
    if (!adopted) continue;
    // Untrusted: a length that does not fit leaves the slot unmatched (it is rewritten below).
    auto name = load_text(l->name, sizeof l->name, load_length(l->name_len));
    auto dir = load_text(l->journal_dir, sizeof l->journal_dir, load_length(l->dir_len));
    if (name && dir && l->state.load(std::memory_order_relaxed) == static_cast<std::uint32_t>(StreamSlotState::active)) {
      left[i].name = std::move(*name);
      left[i].dir = std::move(*dir);
      left[i].stream_id = l->stream_id.load(std::memory_order_relaxed);
      left[i].active = true;
    }
  }
  std::vector<std::string> damaged;
  std::vector<StreamConfig> configs = store_->list(&damaged);
  for (const auto& name : damaged) {
    log_("stream '" + name + "' is not served: its configuration in " + absolute + "/streams/" + name +
         " is damaged");
  }
  std::vector<bool> taken(slots, false);
  std::vector<StreamConfig> unplaced;
  for (auto& config : configs) {
    // The same stream only if the same journal: name, directory (another --store-dir is another
    // stream) and, once opened, its id (below).
    const std::string dir = store_->journal_dir(config);
    auto it = std::find_if(left.begin(), left.end(),
                           [&](const Left& l) { return l.active && l.name == config.name && l.dir == dir; });
    if (it == left.end()) {
      unplaced.push_back(std::move(config));
      continue;
    }
    const auto slot = static_cast<std::uint32_t>(it - left.begin());
    taken[slot] = true;
    it->active = false;
    const std::string name = config.name;
    if (auto st = serve(std::move(config), slot, it->incarnation); !st) {
      taken[slot] = false;
      log_("stream '" + name + "' is not served: " + st.error().message);
    } else if (streams_.back().journal->stream_id() != it->stream_id) {
      // Another journal under the same path: publishers' cached targets must not match it.
      streams_.back().incarnation = it->incarnation + 1;
      publish_slot(slot, &streams_.back());
    }
  }
  // Slots no stream kept are freed before new streams take them (new incarnations).
  for (std::uint32_t i = 0; i < slots; ++i) {
    if (!taken[i]) publish_slot(i, nullptr);
  }
  for (auto& config : unplaced) {
    const std::string name = config.name;
    auto slot = free_slot();
    if (!slot) {
      log_("stream '" + name + "' is not served: all " + std::to_string(slots) + " stream slots are taken (busd --max-streams)");
      continue;
    }
    const std::uint32_t incarnation = segment.stream(*slot)->incarnation.load(std::memory_order_relaxed) + 1;
    if (auto st = serve(std::move(config), *slot, incarnation); !st) {
      log_("stream '" + name + "' is not served: " + st.error().message);
    }
  }
  publish_journals();
  if (!streams_.empty()) {
    start_preparer();  // only with streams: an idle broker without any wakes nobody
    std::string names;
    for (const auto& s : streams_) names += (names.empty() ? "" : ", ") + s.config.name;
    log_("serving " + std::to_string(streams_.size()) + " stream(s) from " + absolute + ": " + names);
  }
}

Status BrokerStreams::serve(StreamConfig config, std::uint32_t slot, std::uint32_t incarnation) {
  const std::string dir = store_->journal_dir(config);
  if (dir.size() >= kJournalDirBytes) {
    return make_error(Errc::invalid_argument, "its journal path is longer than " +
                                                  std::to_string(kJournalDirBytes - 1) + " bytes: " + dir);
  }
  journal::JournalOptions options;
  options.segment_bytes = kJournalSegmentBytes;
  options.sync = config.sync;
  // A memory stream after a reboot: its tmpfs directory went; the journal starts again empty.
  if (auto st = store_->prepare_journal_dir(config); !st) return std::move(st).error();
  auto journal = journal::Journal::open(dir, options);
  if (!journal) return std::move(journal).error();
  const journal::Recovery& r = journal.value()->recovery();
  if (!journal.value()->recovered()) {
    log_("stream '" + config.name + "': its journal is in use by running publishers; served as it is");
  } else if (r.lost_records > 0 || !r.damage.empty()) {
    log_("stream '" + config.name + "': recovery kept " + std::to_string(r.records) + " messages, lost " +
         std::to_string(r.lost_records) + " (" + std::to_string(r.lost_bytes) + " bytes)");
    for (const auto& line : r.damage) log_("stream '" + config.name + "': " + line);
  }
  // Nats-Msg-Id de-duplication: the table publishers share, with this stream's window.
  auto ids = journal::MsgIdTable::open(dir + "/msgids", static_cast<std::uint64_t>(config.duplicate_window.count()));
  if (!ids) return std::move(ids).error();
  Served s;
  s.config = std::move(config);
  s.slot = slot;
  s.incarnation = incarnation;
  s.journal = std::move(journal).value();
  streams_.push_back(std::move(s));
  publish_slot(slot, &streams_.back());
  return {};
}

std::optional<std::uint32_t> BrokerStreams::free_slot() const {
  for (std::uint32_t i = 0; i < segment_->config().max_streams; ++i) {
    if (std::none_of(streams_.begin(), streams_.end(), [&](const Served& s) { return s.slot == i; })) return i;
  }
  return std::nullopt;
}

void BrokerStreams::publish_slot(std::uint32_t slot, const Served* s) {
  StreamLayout* l = segment_->stream(slot);
  if (l == nullptr) return;
  // [R8] release when `write` ends: the entry is complete for a reader that acquires the even
  // version ([A8] in client/streams.cpp).
  const SeqlockWrite write(l->version);
  if (s != nullptr) {
    const std::string dir = store_->journal_dir(s->config);
    l->incarnation.store(s->incarnation, std::memory_order_relaxed);
    l->sync.store(static_cast<std::uint32_t>(s->config.sync), std::memory_order_relaxed);
    l->flags.store((s->config.allow_rollup_hdrs ? kStreamAllowRollup : 0u) |
                       (s->config.discard == Discard::new_messages ? kStreamDiscardNew : 0u),
                   std::memory_order_relaxed);
    l->max_msgs.store(s->config.max_msgs, std::memory_order_relaxed);
    l->max_bytes.store(s->config.max_bytes, std::memory_order_relaxed);
    l->max_msg_size.store(s->config.max_msg_size, std::memory_order_relaxed);
    l->segment_bytes.store(kJournalSegmentBytes, std::memory_order_relaxed);
    l->stream_id.store(s->journal->stream_id(), std::memory_order_relaxed);
    store_length(l->name_len, s->config.name.size());
    store_text(l->name, sizeof l->name, s->config.name);
    store_length(l->dir_len, dir.size());
    store_text(l->journal_dir, sizeof l->journal_dir, dir);
    l->state.store(static_cast<std::uint32_t>(StreamSlotState::active), std::memory_order_relaxed);
    publish_usage(*s);
  } else {
    l->state.store(static_cast<std::uint32_t>(StreamSlotState::free), std::memory_order_relaxed);
  }
}

void BrokerStreams::publish_usage(const Served& s) {
  StreamLayout* l = segment_->stream(s.slot);
  if (l == nullptr) return;
  const journal::Journal& j = *s.journal;
  // What stream::live_messages() and live_bytes() subtract, so that a publisher's
  // last_seq - removed_msgs is the broker's count (docs/design/journal.md, discard new).
  const std::uint64_t first = j.first_seq();
  const std::uint64_t removed = (first - 1) + j.deleted_count() + j.recovery().lost_records;
  // [R10] release when `write` ends; pairs with [A10] in client/streams.cpp.
  const SeqlockWrite write(l->usage_version);
  l->removed_msgs.store(removed, std::memory_order_relaxed);
  l->first_segment.store(first, std::memory_order_relaxed);
  l->removed_bytes.store(j.deleted_bytes(), std::memory_order_relaxed);
}

BrokerStreams::Served* BrokerStreams::find(std::string_view name) {
  for (auto& s : streams_) {
    if (s.config.name == name) return &s;
  }
  return nullptr;
}

std::optional<BrokerStreams::Target> BrokerStreams::capturing(std::string_view subject) const {
  for (const auto& s : streams_) {
    for (const auto& pattern : s.config.subjects) {
      if (subject_matches(pattern, subject)) return Target{s.slot, s.incarnation};
    }
  }
  return std::nullopt;
}

void BrokerStreams::enforce_limits() {
  const auto now = static_cast<std::int64_t>(realtime_ns());
  for (Served& s : streams_) {
    const StreamConfig& c = s.config;
    if (c.max_msgs >= 0 || c.max_bytes >= 0 || c.max_age.count() > 0 || c.max_msgs_per_subject >= 0) {
      stream::enforce_limits(*s.journal, c, s.subjects, now);
    }
    // Interest retention with no consumer at all: nobody is interested, so nothing is kept
    // (JetStream drops such a message as it is stored; here within a tick). Never before the
    // engine has loaded its durable consumers: not known yet is not none.
    if (c.retention == Retention::interest && consumer_count_ && consumer_count_(c.name) == std::optional<std::uint32_t>(0)) {
      stream::purge(*s.journal, {}, 0, s.journal->last_seq() + 1);
    }
    // Every tick: deletes by the consumer engine's retention and by ages reach the publishers
    // of a discard-new stream within one (until then they count too many: they refuse early).
    publish_usage(s);
    // A stream whose subject index is in use (Nats-Expected-Last-Subject-Sequence, last per
    // subject) is kept indexed, so a publisher's check walks only what came since the tick.
    s.journal->index_subjects(kIndexPerTick);
  }
}

StreamInfo BrokerStreams::info_of(const Served& s) const {
  StreamInfo info;
  info.config = s.config;
  const journal::Journal& j = *s.journal;
  const std::uint64_t first = j.first_live_seq();  // JetStream: the first not deleted
  const std::uint64_t last = j.last_seq();
  StreamState& st = info.state;
  st.lost_msgs = j.recovery().lost_records;
  st.consumer_count = consumer_count_ ? consumer_count_(s.config.name).value_or(0) : 0;
  if (last >= first) {
    st.first_seq = first;
    st.last_seq = last;
    st.messages = stream::live_messages(j);
    st.bytes = stream::live_bytes(j);
    if (auto r = j.read(first)) st.first_ts_ns = static_cast<std::int64_t>(r->timestamp_ns);
    if (auto r = j.read(last)) st.last_ts_ns = static_cast<std::int64_t>(r->timestamp_ns);
  } else {
    st.first_seq = first;  // JetStream: an empty stream's first_seq is the next one
    st.last_seq = last;
  }
  return info;
}

std::string BrokerStreams::info_reply(const Served& s) const {
  return stream::json_text(stream::info_to_json(info_of(s)));
}

Result<std::string> BrokerStreams::handle(StreamOp op, std::string_view name, std::string_view body,
                                          bool& routes_changed) {
  routes_changed = false;
  if (segment_ == nullptr || segment_->config().max_streams == 0) {
    return make_error(Errc::invalid_argument, "this broker serves no streams (busd --max-streams 0)");
  }
  if (!store_ && op == StreamOp::add) {
    if (auto st = make_store(); !st) return std::move(st).error();
  }
  switch (op) {
    case StreamOp::add: return add(body, routes_changed);
    case StreamOp::edit: return edit(body, routes_changed);
    case StreamOp::remove: return remove(name, routes_changed);
    case StreamOp::info: {
      const Served* s = find(name);
      if (s == nullptr) return no_stream(name);
      return info_reply(*s);
    }
    case StreamOp::purge: {
      Served* s = find(name);
      if (s == nullptr) return no_stream(name);
      nlohmann::json j = nlohmann::json::parse(body, nullptr, /*allow_exceptions=*/false);
      std::string filter;
      std::uint64_t keep = 0, upto = 0;
      if (j.is_object()) {
        if (auto f = j.find("filter"); f != j.end() && f->is_string()) filter = f->get<std::string>();
        if (auto k = j.find("keep"); k != j.end() && k->is_number_unsigned()) keep = k->get<std::uint64_t>();
        if (auto q = j.find("seq"); q != j.end() && q->is_number_unsigned()) upto = q->get<std::uint64_t>();
      }
      if (!filter.empty()) {
        if (auto st = validate_subscribe_subject(filter); !st) return std::move(st).error();
      }
      const std::uint64_t purged = stream::purge(*s->journal, filter, keep, upto);
      s->subjects = {};  // rebuilt from what is left
      publish_usage(*s);
      log_("stream '" + s->config.name + "': purged " + std::to_string(purged) + " message(s)");
      return stream::json_text(nlohmann::json{{"success", true}, {"purged", purged}});
    }
    case StreamOp::delete_msg: {
      Served* s = find(name);
      if (s == nullptr) return no_stream(name);
      nlohmann::json j = nlohmann::json::parse(body, nullptr, /*allow_exceptions=*/false);
      // Batches (the consumer engine's workqueue and interest retention): every one it can.
      if (j.is_object() && (j.contains("seqs") || j.contains("from"))) {
        std::uint64_t deleted = 0;
        if (auto seqs = j.find("seqs"); seqs != j.end() && seqs->is_array()) {
          for (const auto& q : *seqs) {
            if (q.is_number_unsigned() && s->journal->remove(q.get<std::uint64_t>())) ++deleted;
          }
        }
        const auto from = j.find("from"), to = j.find("to");
        if (from != j.end() && to != j.end() && from->is_number_unsigned() && to->is_number_unsigned()) {
          const std::uint64_t last = std::min(to->get<std::uint64_t>(), s->journal->last_seq());
          for (std::uint64_t q = std::max(from->get<std::uint64_t>(), s->journal->first_live_seq()); q <= last; ++q) {
            if (s->journal->remove(q)) ++deleted;
          }
        }
        if (deleted > 0) s->journal->drop_deleted_segments();
        publish_usage(*s);
        return stream::json_text(nlohmann::json{{"success", true}, {"deleted", deleted}});
      }
      if (!j.is_object() || !j.contains("seq") || !j.at("seq").is_number_unsigned()) {
        return make_error(Errc::invalid_argument, "a message delete needs {\"seq\": N}");
      }
      const auto seq = j.at("seq").get<std::uint64_t>();
      if (auto st = s->journal->remove(seq); !st) {
        return make_error(Errc::not_found, "no message " + std::to_string(seq) + " in stream '" + s->config.name + "'");
      }
      s->journal->drop_deleted_segments();
      publish_usage(*s);
      return stream::json_text(nlohmann::json{{"success", true}});
    }
    case StreamOp::list: {
      nlohmann::json list = nlohmann::json::array();
      std::vector<const Served*> sorted;
      for (const auto& s : streams_) sorted.push_back(&s);
      std::sort(sorted.begin(), sorted.end(), [](auto* a, auto* b) { return a->config.name < b->config.name; });
      for (const Served* s : sorted) list.push_back(stream::info_to_json(info_of(*s)));
      std::string out = stream::json_text(nlohmann::json{{"streams", list}});
      if (out.size() > kMaxControlBody) {
        return make_error(Errc::resource_exhausted, "the list of streams is too long for one reply");
      }
      return out;
    }
  }
  return make_error(Errc::protocol_error, "unknown stream request");
}

Result<std::string> BrokerStreams::add(std::string_view body, bool& routes_changed) {
  auto parsed = stream::from_json(body);
  if (!parsed) return std::move(parsed).error();
  StreamConfig config = std::move(parsed).value();
  stream::normalize(config);
  if (Served* existing = find(config.name)) {
    // JetStream: adding an identical stream again is fine and answers with its info.
    if (stream::to_json(existing->config) == stream::to_json(config)) {
      return info_reply(*existing);
    }
    return make_error(Errc::already_exists, "stream name already in use with a different configuration: '" +
                                                config.name + "'");
  }
  auto slot = free_slot();
  if (!slot) {
    return make_error(Errc::resource_exhausted, "all " + std::to_string(segment_->config().max_streams) +
                                                    " stream slots are taken (busd --max-streams)");
  }
  if (route_check_) {
    if (auto st = route_check_(config); !st) return std::move(st).error();
  }
  if (auto st = store_->add(config); !st) return std::move(st).error();
  const std::uint32_t incarnation = segment_->stream(*slot)->incarnation.load(std::memory_order_relaxed) + 1;
  const std::string name = config.name;
  if (auto st = serve(std::move(config), *slot, incarnation); !st) {
    (void)store_->remove(name);  // not served: not kept either
    return std::move(st).error();
  }
  routes_changed = true;
  publish_journals();
  start_preparer();
  log_("stream '" + name + "' added");
  return info_reply(streams_.back());
}

Result<std::string> BrokerStreams::edit(std::string_view body, bool& routes_changed) {
  auto parsed = stream::from_json(body);
  if (!parsed) return std::move(parsed).error();
  StreamConfig config = std::move(parsed).value();
  stream::normalize(config);
  Served* s = find(config.name);
  if (s == nullptr) return no_stream(config.name);
  if (config.retention != s->config.retention) return make_error(Errc::invalid_argument, "stream retention can not be changed");
  if (config.storage != s->config.storage) return make_error(Errc::invalid_argument, "stream storage can not be changed");
  if (route_check_) {
    if (auto st = route_check_(config); !st) return std::move(st).error();
  }
  if (auto st = store_->update(config); !st) return std::move(st).error();
  // Publishers read max_msg_size and sync when they open a stream: a new incarnation makes
  // them open it again (their routes change with it).
  auto ids = journal::MsgIdTable::open(store_->journal_dir(config) + "/msgids",
                                       static_cast<std::uint64_t>(config.duplicate_window.count()));
  if (!ids) log_("stream '" + config.name + "': " + ids.error().message);
  s->config = std::move(config);
  s->incarnation += 1;
  s->subjects = {};
  publish_slot(s->slot, s);
  publish_journals();  // the preparer flushes by the new sync policy
  routes_changed = true;
  log_("stream '" + s->config.name + "' edited");
  return info_reply(*s);
}

Result<std::string> BrokerStreams::remove(std::string_view name, bool& routes_changed) {
  Served* s = find(name);
  if (s == nullptr) return no_stream(name);
  // Off the table first (publishers stop appending once their routes change), then off disk.
  publish_slot(s->slot, nullptr);
  const std::string removed = s->config.name;
  streams_.erase(streams_.begin() + (s - streams_.data()));
  publish_journals();
  routes_changed = true;
  if (auto st = store_->remove(removed); !st) return std::move(st).error();
  log_("stream '" + removed + "' removed");
  return std::string("{}");
}

}  // namespace bus::detail

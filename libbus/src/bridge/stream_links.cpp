// bridge/stream_links.cpp — StreamLink: a bus stream into JetStream, or JetStream into a bus
// stream, at least once (stream_links.hpp).
#include "bridge/stream_links.hpp"

#include <chrono>
#include <cstdio>
#include <mutex>
#include <thread>
#include <unordered_map>

#include "bridge/nats_msg.hpp"
#include "bus/consumer.hpp"
#include "bus/headers.hpp"
#include "bus/stream.hpp"

namespace bus::detail::bridge {
namespace {

constexpr const char* kMsgIdHeader = "Nats-Msg-Id";
constexpr std::size_t kBatch = 256;
constexpr auto kFetchWait = std::chrono::milliseconds(250);
constexpr auto kFetchBusy = std::chrono::milliseconds(20);

/// A name usable as one subject token (consumer names go into $JS subjects).
std::string token_of(std::string text) {
  for (char& ch : text) {
    if (ch == '.' || ch == '*' || ch == '>' || ch == ' ' || static_cast<unsigned char>(ch) < 0x20) ch = '_';
  }
  return text;
}

}  // namespace

struct StreamLink::State {
  BridgeStreamRule rule;
  BridgeOptions options;
  Connection* bus = nullptr;
  natsConnection* nc = nullptr;
  jsCtx* js = nullptr;
  std::string origin;
  std::atomic<bool> stopping{false};
  std::atomic<int> in_ack_handler{0};  // nats.c's thread is in on_js_pub_ack (the State must stay)
  std::atomic<std::uint64_t> copied{0}, duplicates{0}, retried{0}, skipped{0}, pending{0};
  mutable std::mutex mutex;  // guards in_flight and last_error
  std::unordered_map<std::string, Message> in_flight;  // export: Nats-Msg-Id -> bus message to ack
  std::string last_error;

  void note_error(const std::string& what) {
    std::lock_guard lock(mutex);
    if (what == last_error) return;  // once per distinct failure, not per message
    last_error = what;
    if (options.log) {
      std::fprintf(stderr, "bus bridge %s: stream %s: %s\n", options.name.c_str(), rule.bus_stream.c_str(), what.c_str());
    }
  }
};

// JetStream answered an export's publish: acknowledge the bus message (or have it redelivered).
static void on_js_pub_ack(jsCtx*, natsMsg* msg, jsPubAck* pa, jsPubAckErr* pae, void* closure) {
  auto* s = static_cast<StreamLink::State*>(closure);
  s->in_ack_handler.fetch_add(1, std::memory_order_relaxed);
  const char* id = nullptr;
  Message m;
  bool found = false;
  if (natsMsgHeader_Get(msg, kMsgIdHeader, &id) == NATS_OK && id != nullptr) {
    std::lock_guard lock(s->mutex);
    if (auto it = s->in_flight.find(id); it != s->in_flight.end()) {
      m = std::move(it->second);
      s->in_flight.erase(it);
      found = true;
    }
  }
  if (found) {
    s->pending.fetch_sub(1, std::memory_order_relaxed);
    if (pa != nullptr) {
      (pa->Duplicate ? s->duplicates : s->copied).fetch_add(1, std::memory_order_relaxed);
      (void)ack(m);
    } else {
      s->retried.fetch_add(1, std::memory_order_relaxed);
      if (pae != nullptr && pae->ErrText != nullptr) s->note_error(std::string("JetStream refused: ") + pae->ErrText);
      (void)nak(m, std::chrono::seconds(1));
    }
  }
  natsMsg_Destroy(msg);
  // release: pairs with the acquire in ~StreamLink; the last touch of s.
  s->in_ack_handler.fetch_sub(1, std::memory_order_release);
}

Result<std::unique_ptr<StreamLink>> StreamLink::start(const BridgeStreamRule& rule, const BridgeOptions& options,
                                                      Connection& bus, natsConnection* nc, std::string origin) {
  auto s = std::make_unique<State>();
  s->rule = rule;
  if (s->rule.js_stream.empty()) s->rule.js_stream = rule.bus_stream;
  s->options = options;
  s->bus = &bus;
  s->nc = nc;
  s->origin = std::move(origin);
  jsOptions jo;
  jsOptions_Init(&jo);
  jo.PublishAsync.AckHandler = on_js_pub_ack;
  jo.PublishAsync.AckHandlerClosure = s.get();
  jo.PublishAsync.MaxPending = static_cast<int64_t>(kBatch) * 4;
  if (natsConnection_JetStream(&s->js, nc, &jo) != NATS_OK) {
    return make_error(Errc::resource_exhausted, "JetStream context for stream " + rule.bus_stream);
  }
  Streams streams(bus);
  auto info = streams.info(rule.bus_stream);
  if (!info) {
    jsCtx_Destroy(s->js);
    return make_error(info.error().code, "stream '" + rule.bus_stream + "' on the bus: " + info.error().message);
  }
  if (rule.direction == BridgeDirection::import_from_nats && !rule.prefix.empty()) {
    // Every subject of the JetStream stream must carry the prefix the link takes off.
    jsStreamInfo* si = nullptr;
    if (js_GetStreamInfo(&si, s->js, s->rule.js_stream.c_str(), nullptr, nullptr) == NATS_OK) {
      std::string lacking;
      for (int i = 0; si->Config != nullptr && i < si->Config->SubjectsLen; ++i) {
        const std::string_view subject = si->Config->Subjects[i];
        if (subject.substr(0, rule.prefix.size()) != rule.prefix) lacking = subject;
      }
      jsStreamInfo_Destroy(si);
      if (!lacking.empty()) {
        jsCtx_Destroy(s->js);
        return make_error(Errc::invalid_argument, "import stream '" + s->rule.js_stream + "': its subject '" + lacking +
                                                      "' does not start with the prefix '" + rule.prefix + "'");
      }
    }
  }
  if (rule.direction == BridgeDirection::export_to_nats) {
    // The JetStream stream, made like the bus one when it is not there yet.
    jsStreamInfo* si = nullptr;
    jsErrCode jerr = static_cast<jsErrCode>(0);
    natsStatus st = js_GetStreamInfo(&si, s->js, s->rule.js_stream.c_str(), nullptr, &jerr);
    if (st == NATS_OK) {
      jsStreamInfo_Destroy(si);
    } else if (st == NATS_NOT_FOUND) {
      std::vector<std::string> subjects;
      for (const auto& p : info->config.subjects) subjects.push_back(rule.prefix + p);
      std::vector<const char*> subject_ptrs;
      for (const auto& p : subjects) subject_ptrs.push_back(p.c_str());
      jsStreamConfig cfg;
      jsStreamConfig_Init(&cfg);
      cfg.Name = s->rule.js_stream.c_str();
      cfg.Subjects = subject_ptrs.data();
      cfg.SubjectsLen = static_cast<int>(subject_ptrs.size());
      cfg.Storage = js_FileStorage;
      st = js_AddStream(&si, s->js, &cfg, nullptr, &jerr);
      if (st != NATS_OK) {
        jsCtx_Destroy(s->js);
        const std::string hint = jerr == 10065 ? ": its subjects overlap another JetStream stream's; give the link a prefix"
                                               : std::string();
        return make_error(Errc::invalid_argument, "JetStream stream '" + s->rule.js_stream +
                                                      "' could not be made: " + natsStatus_GetText(st) +
                                                      " (JetStream error " + std::to_string(jerr) + ")" + hint);
      }
      jsStreamInfo_Destroy(si);
    } else {
      // JetStream unreachable now: the link retries as it goes (publishes fail, are redelivered).
      s->note_error(std::string("JetStream stream info: ") + natsStatus_GetText(st));
    }
  }
  std::unique_ptr<StreamLink> link(new StreamLink(std::move(s)));
  link->thread_ = std::thread([raw = link.get()] {
    if (raw->state_->rule.direction == BridgeDirection::export_to_nats) {
      raw->run_export();
    } else {
      raw->run_import();
    }
  });
  return link;
}

StreamLink::StreamLink(std::unique_ptr<State> state) : state_(std::move(state)) {}

StreamLink::~StreamLink() {
  stop();
  if (!state_) return;
  // jsCtx_Destroy starts no more acknowledgement handlers, but one may still be running on
  // nats.c's thread (the bridge closes the NATS connection before this): it finishes first.
  // acquire: pairs with the release at the end of on_js_pub_ack.
  for (int i = 0; i < 1000 && state_->in_ack_handler.load(std::memory_order_acquire) != 0; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
}

void StreamLink::stop() {
  if (!state_) return;
  state_->stopping.store(true, std::memory_order_release);
  if (thread_.joinable()) thread_.join();
  if (state_->js != nullptr) {
    // Acknowledgements on their way get a moment; what stays unacknowledged is redelivered by
    // the bus consumer next time (at least once).
    jsPubOptions po;
    jsPubOptions_Init(&po);
    po.MaxWait = 1000;
    (void)js_PublishAsyncComplete(state_->js, &po);
    jsCtx_Destroy(state_->js);
    state_->js = nullptr;
  }
}

BridgeStreamStats StreamLink::stats() const {
  BridgeStreamStats st;
  st.rule = state_->rule;
  st.copied = state_->copied.load(std::memory_order_relaxed);
  st.duplicates = state_->duplicates.load(std::memory_order_relaxed);
  st.retried = state_->retried.load(std::memory_order_relaxed);
  st.skipped = state_->skipped.load(std::memory_order_relaxed);
  st.pending = state_->pending.load(std::memory_order_relaxed);
  std::lock_guard lock(state_->mutex);
  st.last_error = state_->last_error;
  return st;
}

void StreamLink::run_export() {
  State& s = *state_;
  Consumers consumers(*s.bus);
  ConsumerConfig cc;
  cc.durable_name = token_of("bridge-" + s.options.name + "-" + s.rule.js_stream);
  cc.ack_policy = AckPolicy::explicit_ack;
  cc.ack_wait = std::chrono::seconds(5);  // an acknowledgement JetStream never sent: send again
  cc.max_ack_pending = static_cast<std::int64_t>(kBatch) * 4;
  bool added = false;
  bool busy = false;
  while (!s.stopping.load(std::memory_order_acquire)) {
    if (!added) {
      auto made = consumers.add(s.rule.bus_stream, cc);
      if (!made) {
        s.note_error("bus consumer: " + made.error().message);
        std::this_thread::sleep_for(kFetchWait);
        continue;
      }
      added = true;
    }
    // A fetch returns when its batch is full or it expires: short while messages flow (they
    // reach JetStream within ~20 ms), longer when the stream is idle (fewer requests).
    auto batch = consumers.fetch(s.rule.bus_stream, cc.durable_name, kBatch, busy ? kFetchBusy : kFetchWait);
    busy = batch && !batch->empty();
    if (!batch) {
      if (batch.error().code != Errc::timeout) {
        s.note_error("bus fetch: " + batch.error().message);
        if (batch.error().code == Errc::not_found) added = false;  // the consumer went (made again)
        std::this_thread::sleep_for(std::chrono::milliseconds(100));
      }
      continue;
    }
    for (Message& m : batch.value()) {
      auto headers = Headers::parse(m.headers);
      if (headers && headers->get(kOriginHeader)) {
        s.skipped.fetch_add(1, std::memory_order_relaxed);  // it came from NATS: not back there
        (void)ack(m);
        continue;
      }
      auto meta = metadata(m);
      std::string id;
      if (headers) {
        if (auto own = headers->get(kMsgIdHeader)) id = std::string(*own);
      }
      if (id.empty()) {
        id = "bus." + s.options.bus_name + "." + s.rule.bus_stream + "." + std::to_string(meta ? meta->stream_seq : 0);
      }
      const std::string subject = s.rule.prefix + m.subject;
      natsMsg* msg = nullptr;
      if (natsMsg_Create(&msg, subject.c_str(), nullptr, m.data.data(), static_cast<int>(m.data.size())) != NATS_OK) {
        (void)nak(m, std::chrono::seconds(1));
        continue;
      }
      put_bus_headers(msg, m.headers, s.origin);
      natsMsgHeader_Set(msg, kMsgIdHeader, id.c_str());
      {
        // A redelivery of a message still in flight replaces it (its acknowledgement is the
        // one to use): one entry, counted once, whichever PubAck comes first acknowledges it.
        std::lock_guard lock(s.mutex);
        if (s.in_flight.insert_or_assign(id, m).second) s.pending.fetch_add(1, std::memory_order_relaxed);
      }
      jsPubOptions po;
      jsPubOptions_Init(&po);
      po.MsgId = nullptr;  // set as a header above (the ack handler reads it back)
      const natsStatus st = js_PublishMsgAsync(s.js, &msg, &po);
      if (st != NATS_OK) {
        if (msg != nullptr) natsMsg_Destroy(msg);
        bool mine = false;
        {
          std::lock_guard lock(s.mutex);
          mine = s.in_flight.erase(id) != 0;
        }
        if (mine) {
          s.pending.fetch_sub(1, std::memory_order_relaxed);
          s.retried.fetch_add(1, std::memory_order_relaxed);
          (void)nak(m, std::chrono::seconds(1));
        }
        s.note_error(std::string("JetStream publish: ") + natsStatus_GetText(st));
      }
    }
  }
}

void StreamLink::run_import() {
  State& s = *state_;
  natsSubscription* sub = nullptr;
  const std::string durable = token_of("bus-bridge-" + s.options.name);
  while (!s.stopping.load(std::memory_order_acquire)) {
    if (sub == nullptr) {
      // The consumer's filter: the JetStream stream's one subject pattern (nats.c wants one),
      // or everything under the prefix when it has several.
      std::string filter = s.rule.prefix.empty() ? std::string(">") : s.rule.prefix + ">";
      jsStreamInfo* si = nullptr;
      if (js_GetStreamInfo(&si, s.js, s.rule.js_stream.c_str(), nullptr, nullptr) == NATS_OK) {
        if (si->Config != nullptr && si->Config->SubjectsLen == 1) filter = si->Config->Subjects[0];
        jsStreamInfo_Destroy(si);
      }
      jsSubOptions so;
      jsSubOptions_Init(&so);
      so.Stream = s.rule.js_stream.c_str();
      so.Config.AckPolicy = js_AckExplicit;
      so.Config.AckWait = 10'000'000'000LL;  // ns: not stored on the bus in time, sent again
      jsErrCode jerr = static_cast<jsErrCode>(0);
      const natsStatus st = js_PullSubscribe(&sub, s.js, filter.c_str(), durable.c_str(), nullptr, &so, &jerr);
      if (st != NATS_OK) {
        sub = nullptr;
        s.note_error(std::string("JetStream consumer: ") + natsStatus_GetText(st) + " (" + std::to_string(jerr) + ")");
        std::this_thread::sleep_for(kFetchWait);
        continue;
      }
    }
    natsMsgList list{};
    jsErrCode jerr = static_cast<jsErrCode>(0);
    const natsStatus st = natsSubscription_Fetch(&list, sub, static_cast<int>(kBatch), kFetchWait.count(), &jerr);
    if (st != NATS_OK) {
      if (st != NATS_TIMEOUT) {
        s.note_error(std::string("JetStream fetch: ") + natsStatus_GetText(st));
        std::this_thread::sleep_for(std::chrono::milliseconds(100));
      }
      continue;
    }
    for (int i = 0; i < list.Count; ++i) {
      natsMsg* msg = list.Msgs[i];
      std::string from;
      std::string block = bus_headers_of(msg, from);
      if (from == s.origin) {  // ours, exported earlier: the bus stream has it
        s.skipped.fetch_add(1, std::memory_order_relaxed);
        natsMsg_Ack(msg, nullptr);
        continue;
      }
      auto headers = Headers::parse(block);
      Headers h = headers ? std::move(headers).value() : Headers{};
      // Kept in the journal: what came from NATS is never exported back.
      (void)h.set(kOriginHeader, from.empty() ? std::string("nats") : from);
      if (!h.get(kMsgIdHeader)) {
        jsMsgMetaData* meta = nullptr;
        if (natsMsg_GetMetaData(&meta, msg) == NATS_OK) {
          (void)h.set(kMsgIdHeader, "js." + s.rule.js_stream + "." + std::to_string(meta->Sequence.Stream));
          jsMsgMetaData_Destroy(meta);
        }
      }
      std::string_view subject = natsMsg_GetSubject(msg);
      if (subject.substr(0, s.rule.prefix.size()) != s.rule.prefix) {
        // (start() refused a stream whose subjects lack the prefix; one edited since lands here.)
        s.skipped.fetch_add(1, std::memory_order_relaxed);
        s.note_error("subject '" + std::string(subject) + "' lacks the prefix '" + s.rule.prefix + "': not copied");
        natsMsg_Term(msg, nullptr);
        continue;
      }
      subject.remove_prefix(s.rule.prefix.size());
      const std::string_view data(natsMsg_GetData(msg), static_cast<std::size_t>(natsMsg_GetDataLength(msg)));
      auto stored = s.bus->stream_publish(subject, data, &h);
      if (stored) {
        (stored->duplicate ? s.duplicates : s.copied).fetch_add(1, std::memory_order_relaxed);
        natsMsg_Ack(msg, nullptr);
      } else {
        s.retried.fetch_add(1, std::memory_order_relaxed);
        s.note_error("bus stream refused '" + std::string(subject) + "': " + stored.error().message);
        natsMsg_NakWithDelay(msg, 1000, nullptr);
      }
    }
    natsMsgList_Destroy(&list);
  }
  if (sub != nullptr) natsSubscription_Destroy(sub);  // durable: its state stays on JetStream
}

}  // namespace bus::detail::bridge

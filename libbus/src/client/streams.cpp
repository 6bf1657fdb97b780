// client/streams.cpp — streams on the client side: the segment's stream table read under its
// seqlock, journals attached once per process, appends on the publishing thread, and the
// administration requests of bus::Streams.
#include <thread>

#include "bus/connection.hpp"
#include "bus/stream.hpp"
#include "client/connection_impl.hpp"
#include "journal/journal.hpp"
#include "os/process.hpp"
#include "shm/shared_text.hpp"
#include "stream/config.hpp"

namespace bus::detail {

namespace {

// A copy of one stream slot, consistent (taken under its seqlock).
struct SlotCopy {
  bool active = false;
  std::uint32_t incarnation = 0;
  SyncPolicy sync = SyncPolicy::never;
  std::int64_t max_msg_size = -1;
  std::uint64_t segment_bytes = 0;
  std::uint64_t stream_id = 0;
  std::string name, dir;
};

Result<SlotCopy> read_slot(const Segment& segment, std::uint32_t slot) {
  StreamLayout* l = segment.stream(slot);
  if (l == nullptr) return make_error(Errc::segment_corrupt, "a route names stream slot " + std::to_string(slot) + ", outside the table");
  // The broker holds the version odd for microseconds; stuck odd means it died mid-write.
  const std::uint64_t deadline = monotonic_ns() + 1'000'000'000ull;
  for (;;) {
    // [A8] acquire: pairs with [R8] (broker/streams.cpp); the fields are at least this version's.
    const std::uint32_t v1 = l->version.load(std::memory_order_acquire);
    if ((v1 & 1u) == 0) {
      SlotCopy c;
      // Relaxed: inside the seqlock; the version re-check below decides.
      c.active = l->state.load(std::memory_order_relaxed) == static_cast<std::uint32_t>(StreamSlotState::active);
      c.incarnation = l->incarnation.load(std::memory_order_relaxed);
      c.sync = l->sync.load(std::memory_order_relaxed) == 1 ? SyncPolicy::always : SyncPolicy::never;
      c.max_msg_size = l->max_msg_size.load(std::memory_order_relaxed);
      c.segment_bytes = l->segment_bytes.load(std::memory_order_relaxed);
      c.stream_id = l->stream_id.load(std::memory_order_relaxed);
      auto name = load_text(l->name, sizeof l->name, load_length(l->name_len));
      auto dir = load_text(l->journal_dir, sizeof l->journal_dir, load_length(l->dir_len));
      std::atomic_thread_fence(std::memory_order_acquire);  // the loads above before the re-read
      if (l->version.load(std::memory_order_relaxed) == v1) {
        if (!c.active) return c;
        StreamConfig probe;  // the name must pass the rules a stream name is added under
        if (name) probe.name = *name;
        probe.subjects = {"x"};
        if (!name || !dir || dir->empty() || (*dir)[0] != '/' || !stream::validate(probe)) {
          return make_error(Errc::segment_corrupt, "stream slot " + std::to_string(slot) + " holds a bad name or path");
        }
        c.name = std::move(*name);
        c.dir = std::move(*dir);
        return c;
      }
    }
    if (monotonic_ns() > deadline) return make_error(Errc::broker_gone, "stream table stayed locked by the broker for a second");
    std::this_thread::yield();
  }
}

}  // namespace

StreamHandle::~StreamHandle() = default;

Result<StreamHandle*> ConnectionImpl::stream_handle(const Attachment& a, std::uint32_t slot, std::uint32_t incarnation) {
  std::lock_guard lock(streams_mutex_);
  for (const auto& h : stream_handles_) {
    if (h->attachment == &a && h->slot == slot && h->incarnation == incarnation) return h.get();
  }
  auto copy = read_slot(a.segment, slot);
  if (!copy) return std::move(copy).error();
  if (!copy->active || copy->incarnation != incarnation) return nullptr;  // removed or replaced meanwhile
  journal::JournalOptions options;
  options.segment_bytes = copy->segment_bytes;
  options.sync = copy->sync;
  // Possibly on a publishing thread: a journal being recovered is an error for now (the
  // publish says not stored; the route retries in a second), never a long wait.
  options.lock_wait_ns = 1'000'000'000ull;
  auto journal = journal::Journal::attach(copy->dir, options);
  if (!journal) {
    return make_error(journal.error().code, "stream '" + copy->name + "': " + journal.error().message);
  }
  if (journal.value()->stream_id() != copy->stream_id) {
    return make_error(Errc::journal_corrupt, "stream '" + copy->name + "': " + copy->dir +
                                                 " holds another journal than the broker serves");
  }
  auto h = std::make_unique<StreamHandle>();
  h->attachment = &a;
  h->slot = slot;
  h->incarnation = incarnation;
  h->name = std::move(copy->name);
  h->max_msg_size = copy->max_msg_size;
  h->journal = std::move(journal).value();
  stream_handles_.push_back(std::move(h));
  return stream_handles_.back().get();
}

Result<StreamHandle*> ConnectionImpl::stream_named(std::string_view name) {
  const Attachment& a = attachment();
  for (std::uint32_t slot = 0; slot < a.segment.config().max_streams; ++slot) {
    auto copy = read_slot(a.segment, slot);
    if (!copy) return std::move(copy).error();
    if (!copy->active || copy->name != name) continue;
    auto h = stream_handle(a, slot, copy->incarnation);
    if (!h) return std::move(h).error();
    if (h.value() != nullptr) return h;
  }
  return make_error(Errc::not_found, "stream not found: '" + std::string(name) + "'");
}

Status ConnectionImpl::check_stream_size(const StreamHandle& stream, std::size_t bytes) {
  if (stream.max_msg_size >= 0 && bytes > static_cast<std::uint64_t>(stream.max_msg_size)) {
    return make_error(Errc::payload_too_large, "message of " + std::to_string(bytes) + " bytes exceeds stream '" +
                                                   stream.name + "''s max_msg_size of " +
                                                   std::to_string(stream.max_msg_size) + " (nothing was sent)");
  }
  return {};
}

Result<std::uint64_t> ConnectionImpl::store(StreamHandle& stream, std::string_view subject, std::string_view headers,
                                            std::string_view data) {
  auto sequence = stream.journal->append(subject, headers, data);
  if (!sequence) {
    return make_error(sequence.error().code, "not stored in stream '" + stream.name + "': " + sequence.error().message);
  }
  return sequence;
}

Result<std::string> ConnectionImpl::stream_request(StreamOp op, std::string_view name, std::string_view body) {
  if (closed()) return make_error(Errc::closed, "connection is closed");
  ControlMessage request;
  request.type = ControlType::stream_request;
  request.a = static_cast<std::uint32_t>(op);
  request.set_s1(name);
  if (name.size() >= sizeof request.str1) return make_error(Errc::invalid_argument, "stream name too long");
  std::string reply_body;
  auto reply = control_.call(request, body, reply_body, options_.control_timeout);
  if (!reply) return std::move(reply).error();
  if (reply->type != ControlType::stream_reply) return make_error(Errc::protocol_error, "unexpected reply to a stream request");
  return reply_body;
}

}  // namespace bus::detail

namespace bus::detail {

struct StreamReaderImpl {
  std::shared_ptr<ConnectionImpl> connection;  // owns the StreamHandle and so the journal
  StreamHandle* handle;
  journal::Journal::Cursor cursor;
};

}  // namespace bus::detail

namespace bus {

StreamReader::StreamReader() noexcept = default;
StreamReader::StreamReader(StreamReader&&) noexcept = default;
StreamReader& StreamReader::operator=(StreamReader&&) noexcept = default;
StreamReader::~StreamReader() = default;

Result<bool> StreamReader::next(StoredMessageView& out) {
  if (!impl_) return make_error(Errc::closed, "reader is not open");
  detail::journal::RecordView v;
  switch (impl_->cursor.next(v)) {
    case detail::journal::ReadStatus::ok:
      out.subject = v.subject;
      out.sequence = v.sequence;
      out.time_ns = static_cast<std::int64_t>(v.timestamp_ns);
      out.headers = v.headers;
      out.data = v.payload;
      return true;
    case detail::journal::ReadStatus::not_committed: return false;
    case detail::journal::ReadStatus::corrupt: break;
  }
  return make_error(Errc::journal_corrupt, "message " + std::to_string(impl_->cursor.sequence()) +
                                               " fails its checksum or bounds: not delivered");
}

void StreamReader::skip() noexcept {
  if (impl_) impl_->cursor.skip();
}

bool StreamReader::wait(std::chrono::nanoseconds timeout) {
  if (!impl_) return true;  // next() reports the error
  const auto& cursor = impl_->cursor;
  // Spin first: a sleep and its wake-up cost a futex round trip each (tens of µs in a VM).
  const std::uint64_t start = detail::monotonic_ns();
  const std::uint64_t budget = static_cast<std::uint64_t>(std::max<std::int64_t>(timeout.count(), 0));
  const std::uint64_t spin = std::min<std::uint64_t>(budget, 20'000);
  for (;;) {
    if (cursor.ready()) return true;
    const std::uint64_t spent = detail::monotonic_ns() - start;
    if (spent >= spin) break;
    std::this_thread::yield();
  }
  const std::uint64_t spent = detail::monotonic_ns() - start;
  if (spent >= budget) return false;
  cursor.wait(std::chrono::nanoseconds(budget - spent));
  return cursor.ready();
}

std::uint64_t StreamReader::sequence() const noexcept { return impl_ ? impl_->cursor.sequence() : 0; }

std::uint64_t StreamReader::last_sequence() const { return impl_ ? impl_->handle->journal->last_seq() : 0; }

Result<StreamReader> Streams::reader(std::string_view stream, std::uint64_t start_sequence) {
  if (!connection_->impl_) return make_error(Errc::closed, "connection is closed");
  auto handle = connection_->impl_->stream_named(stream);
  if (!handle) return std::move(handle).error();
  auto cursor = handle.value()->journal->cursor(start_sequence);
  if (!cursor) return std::move(cursor).error();
  StreamReader r;
  r.impl_ = std::make_unique<detail::StreamReaderImpl>(
      detail::StreamReaderImpl{connection_->impl_, handle.value(), std::move(cursor).value()});
  return r;
}

namespace {

Result<nlohmann::json> parse_reply(Result<std::string> body) {
  if (!body) return std::move(body).error();
  nlohmann::json j = nlohmann::json::parse(body.value(), nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) return make_error(Errc::protocol_error, "the broker's stream reply is not JSON");
  return j;
}

}  // namespace

Result<StreamInfo> Streams::add(const StreamConfig& config) {
  auto* impl = connection_->impl_.get();
  if (impl == nullptr) return make_error(Errc::closed, "connection is closed");
  StreamConfig normalized = config;
  detail::stream::normalize(normalized);
  if (auto st = detail::stream::validate(normalized); !st) return std::move(st).error();
  auto j = parse_reply(impl->stream_request(detail::StreamOp::add, config.name, detail::stream::to_json(normalized)));
  if (!j) return std::move(j).error();
  return detail::stream::info_from_json(j.value());
}

Result<StreamInfo> Streams::info(std::string_view name) {
  auto* impl = connection_->impl_.get();
  if (impl == nullptr) return make_error(Errc::closed, "connection is closed");
  auto j = parse_reply(impl->stream_request(detail::StreamOp::info, name, {}));
  if (!j) return std::move(j).error();
  return detail::stream::info_from_json(j.value());
}

Result<std::vector<StreamInfo>> Streams::list() {
  auto* impl = connection_->impl_.get();
  if (impl == nullptr) return make_error(Errc::closed, "connection is closed");
  auto j = parse_reply(impl->stream_request(detail::StreamOp::list, {}, {}));
  if (!j) return std::move(j).error();
  if (!j->is_object() || !j->contains("streams") || !j->at("streams").is_array()) {
    return make_error(Errc::protocol_error, "the broker's stream list has no streams array");
  }
  std::vector<StreamInfo> out;
  for (const auto& item : j->at("streams")) {
    auto info = detail::stream::info_from_json(item);
    if (!info) return std::move(info).error();
    out.push_back(std::move(info).value());
  }
  return out;
}

Status Streams::remove(std::string_view name) {
  auto* impl = connection_->impl_.get();
  if (impl == nullptr) return make_error(Errc::closed, "connection is closed");
  auto body = impl->stream_request(detail::StreamOp::remove, name, {});
  if (!body) return std::move(body).error();
  return {};
}

Result<StoredMessage> Streams::get(std::string_view stream, std::uint64_t sequence) {
  auto* impl = connection_->impl_.get();
  if (impl == nullptr) return make_error(Errc::closed, "connection is closed");
  auto handle = impl->stream_named(stream);
  if (!handle) return std::move(handle).error();
  auto view = handle.value()->journal->read(sequence);
  if (!view) {
    if (view.error().code == Errc::invalid_argument) {
      return make_error(Errc::not_found, "no message " + std::to_string(sequence) + " in stream '" +
                                                    std::string(stream) + "'");
    }
    return std::move(view).error();
  }
  StoredMessage m;
  m.subject = std::string(view->subject);
  m.sequence = view->sequence;
  m.time_ns = static_cast<std::int64_t>(view->timestamp_ns);
  m.headers = std::string(view->headers);
  m.data = std::string(view->payload);
  return m;
}

Result<PubAck> Connection::stream_publish(std::string_view subject, std::string_view data, const Headers* headers) {
  if (!impl_) return make_error(Errc::closed, "connection is closed");
  PubAck ack;
  auto matched = impl_->publish(subject, {}, headers != nullptr ? std::string_view(headers->encoded()) : std::string_view{},
                                data, &ack);
  if (!matched) return std::move(matched).error();
  if (ack.sequence == 0) {
    return make_error(Errc::no_responders, "no stream captures subject '" + std::string(subject) + "'");
  }
  return ack;
}

}  // namespace bus

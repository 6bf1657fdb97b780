// capi/capi.cpp — the C API (bus/bus.h) over the C++ one: each handle is a struct holding the
// C++ object, each call catches the Result and turns it into a bus_status plus the thread's
// last-error line. Nothing here may throw into C: the C++ API throws nothing of its own, and
// an allocation failure (std::bad_alloc) is the one exception caught, as BUS_RESOURCE_EXHAUSTED.
#include "bus/bus.h"

#include <atomic>
#include <chrono>
#include <exception>
#include <new>
#include <optional>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "bus/bus.hpp"

#ifndef BUS_VERSION_STRING
#define BUS_VERSION_STRING "unknown"
#endif

struct bus_options {
  bus::ConnectOptions options;
};

struct bus_headers {
  bus::Headers headers;
  // What get() and entry() hand out, NUL-terminated: rebuilt after each change.
  mutable std::vector<std::pair<std::string, std::string>> lines;
  mutable bool lines_current = false;
};

struct bus_message {
  bus::Message message;
  std::optional<bus_headers> headers;  // parsed on first bus_message_headers()
};

struct bus_connection {
  bus::Connection connection;
};

struct bus_subscription {
  bus::Subscription subscription;
  bus_connection* connection = nullptr;
  bus_message_handler handler = nullptr;
  void* closure = nullptr;
  // Set once `subscription` holds the subscription: a handler that runs before (a message in
  // the first microseconds) waits for it, so the handle it is given is whole.
  std::atomic<bool> ready{false};
};

struct bus_broker {
  bus::Broker broker;
};

// The C codes are bus::Errc's, value for value.
static_assert(BUS_OK == static_cast<int>(bus::Errc::ok));
static_assert(BUS_INVALID_ARGUMENT == static_cast<int>(bus::Errc::invalid_argument));
static_assert(BUS_INVALID_SUBJECT == static_cast<int>(bus::Errc::invalid_subject));
static_assert(BUS_PAYLOAD_TOO_LARGE == static_cast<int>(bus::Errc::payload_too_large));
static_assert(BUS_BROKER_NOT_RUNNING == static_cast<int>(bus::Errc::broker_not_running));
static_assert(BUS_BROKER_ALREADY_RUNNING == static_cast<int>(bus::Errc::broker_already_running));
static_assert(BUS_BROKER_GONE == static_cast<int>(bus::Errc::broker_gone));
static_assert(BUS_SEGMENT_CORRUPT == static_cast<int>(bus::Errc::segment_corrupt));
static_assert(BUS_VERSION_MISMATCH == static_cast<int>(bus::Errc::version_mismatch));
static_assert(BUS_PERMISSION_DENIED == static_cast<int>(bus::Errc::permission_denied));
static_assert(BUS_RESOURCE_EXHAUSTED == static_cast<int>(bus::Errc::resource_exhausted));
static_assert(BUS_TIMEOUT == static_cast<int>(bus::Errc::timeout));
static_assert(BUS_CLOSED == static_cast<int>(bus::Errc::closed));
static_assert(BUS_IO_ERROR == static_cast<int>(bus::Errc::io_error));
static_assert(BUS_PROTOCOL_ERROR == static_cast<int>(bus::Errc::protocol_error));
static_assert(BUS_NO_RESPONDERS == static_cast<int>(bus::Errc::no_responders));
static_assert(BUS_ALREADY_EXISTS == static_cast<int>(bus::Errc::already_exists));
static_assert(BUS_JOURNAL_CORRUPT == static_cast<int>(bus::Errc::journal_corrupt));
static_assert(BUS_NOT_FOUND == static_cast<int>(bus::Errc::not_found));
static_assert(BUS_EXPECTATION_FAILED == static_cast<int>(bus::Errc::expectation_failed));

namespace {

thread_local std::string t_last_error;

bus_status fail(bus::Errc code, std::string message) {
  t_last_error = std::move(message);
  return static_cast<bus_status>(code);
}

bus_status fail(const bus::Error& e) { return fail(e.code, e.message); }

bus_status invalid(const char* what) { return fail(bus::Errc::invalid_argument, what); }

bus_status out_of_memory() { return fail(bus::Errc::resource_exhausted, "out of memory"); }

std::string_view text(const char* s) { return s != nullptr ? std::string_view(s) : std::string_view{}; }

std::string_view bytes(const void* data, size_t len) {
  return len == 0 ? std::string_view{} : std::string_view(static_cast<const char*>(data), len);
}

// A timeout that must not be negative (C++ takes nanoseconds). Beyond what nanoseconds hold
// (~292 years; INT64_MAX ms is what a C caller writes for "forever") it is clamped, not wrapped.
bool to_timeout(int64_t ms, std::chrono::nanoseconds& out) {
  if (ms < 0) return false;
  constexpr int64_t kMaxMs = std::chrono::nanoseconds::max().count() / 1'000'000;
  out = std::chrono::milliseconds(ms < kMaxMs ? ms : kMaxMs);
  return true;
}

// Runs `body` (which returns a bus_status) with every C++ exception turned into a status: the
// C++ API throws nothing of its own, but allocation (std::bad_alloc) and thread creation
// (std::system_error, e.g. at a container's thread limit) can, and nothing may unwind into C.
template <class Body>
bus_status guarded(const char* call, Body&& body) noexcept {
  try {
    return body();
  } catch (const std::bad_alloc&) {
    return out_of_memory();
  } catch (const std::exception& e) {
    try {
      return fail(bus::Errc::resource_exhausted, std::string(call) + ": " + e.what());
    } catch (...) {
      return BUS_RESOURCE_EXHAUSTED;
    }
  } catch (...) {
    return BUS_RESOURCE_EXHAUSTED;
  }
}

bus_status take(bus::Status st) { return st ? BUS_OK : fail(st.error()); }

// Moves a received message into a new C handle; false (and the error set) when out of memory.
bus_message* new_message(bus::Message m) {
  auto* out = new (std::nothrow) bus_message;
  if (out == nullptr) return nullptr;
  out->message = std::move(m);
  return out;
}

void rebuild_lines(const bus_headers& h) {
  if (h.lines_current) return;
  h.lines.clear();
  for (const auto& [key, value] : h.headers.entries()) h.lines.emplace_back(std::string(key), std::string(value));
  h.lines_current = true;
}

bus_status subscribe(bus_subscription** out, bus_connection* nc, const char* pattern, const char* group,
                     bus_message_handler handler, void* closure) {
  return guarded("subscribe", [&]() -> bus_status {
    if (out == nullptr || nc == nullptr || pattern == nullptr) return invalid("subscribe: a NULL argument");
    *out = nullptr;
    auto* sub = new (std::nothrow) bus_subscription;
    if (sub == nullptr) return out_of_memory();
    sub->connection = nc;
    sub->handler = handler;
    sub->closure = closure;
    bus::Result<bus::Subscription> made = bus::make_error(bus::Errc::invalid_argument, "");
    if (handler != nullptr) {
      bus::MessageHandler run = [sub](const bus::MessageView& v) {
        while (!sub->ready.load(std::memory_order_acquire)) std::this_thread::yield();  // pairs with the release below
        bus_message* m = new_message(bus::Message::from(v));
        if (m != nullptr) sub->handler(sub->connection, sub, m, sub->closure);
      };
      made = group != nullptr ? nc->connection.queue_subscribe(pattern, group, std::move(run))
                              : nc->connection.subscribe(pattern, std::move(run));
    } else {
      made = group != nullptr ? nc->connection.queue_subscribe(pattern, group) : nc->connection.subscribe(pattern);
    }
    if (!made) {
      delete sub;
      return fail(made.error());
    }
    sub->subscription = std::move(made).value();
    sub->ready.store(true, std::memory_order_release);  // the handler may use the handle now
    *out = sub;
    return BUS_OK;
  });
}

}  // namespace

extern "C" {

const char* bus_status_text(bus_status s) {
  if (static_cast<int>(s) < 0 || static_cast<int>(s) > BUS_EXPECTATION_FAILED) return "unknown";
  return bus::errc_name(static_cast<bus::Errc>(s));
}

const char* bus_last_error(void) { return t_last_error.c_str(); }

const char* bus_version(void) { return BUS_VERSION_STRING; }

// ---- options -------------------------------------------------------------------------------

bus_status bus_options_create(bus_options** out) {
  if (out == nullptr) return invalid("bus_options_create: out is NULL");
  *out = new (std::nothrow) bus_options;
  return *out != nullptr ? BUS_OK : out_of_memory();
}

bus_status bus_options_set_name(bus_options* o, const char* name) {
  if (o == nullptr || name == nullptr) return invalid("bus_options_set_name: a NULL argument");
  try {
    o->options.name = name;
  } catch (const std::bad_alloc&) {
    return out_of_memory();
  }
  return BUS_OK;
}

bus_status bus_options_set_timeout(bus_options* o, int64_t timeout_ms) {
  if (o == nullptr) return invalid("bus_options_set_timeout: options is NULL");
  if (timeout_ms <= 0) return invalid("bus_options_set_timeout: the timeout must be at least 1 ms");
  o->options.control_timeout = std::chrono::milliseconds(timeout_ms);
  return BUS_OK;
}

bus_status bus_options_set_allow_reconnect(bus_options* o, int allow) {
  if (o == nullptr) return invalid("bus_options_set_allow_reconnect: options is NULL");
  o->options.allow_reconnect = allow != 0;
  return BUS_OK;
}

bus_status bus_options_set_max_reconnect(bus_options* o, int attempts) {
  if (o == nullptr) return invalid("bus_options_set_max_reconnect: options is NULL");
  if (attempts < -1) return invalid("bus_options_set_max_reconnect: attempts must be -1 (forever) or more");
  o->options.max_reconnects = attempts;
  return BUS_OK;
}

void bus_options_destroy(bus_options* o) { delete o; }

// ---- connection ----------------------------------------------------------------------------

bus_status bus_connection_connect(bus_connection** out, const char* bus_name, const bus_options* options) {
  if (out == nullptr) return invalid("bus_connection_connect: out is NULL");
  *out = nullptr;
  try {
    auto conn = bus::Connection::connect(bus_name != nullptr ? bus_name : "default",
                                         options != nullptr ? options->options : bus::ConnectOptions{});
    if (!conn) return fail(conn.error());
    auto* nc = new bus_connection{std::move(conn).value()};
    *out = nc;
  } catch (const std::bad_alloc&) {
    return out_of_memory();
  } catch (const std::exception& e) {
    return guarded("connect", [&]() -> bus_status { return fail(bus::Errc::resource_exhausted, std::string("connect: ") + e.what()); });
  }
  return BUS_OK;
}

bus_status bus_connection_publish(bus_connection* nc, const char* subject, const void* data, size_t len) {
  return bus_connection_publish_msg(nc, subject, nullptr, nullptr, data, len);
}

bus_status bus_connection_publish_msg(bus_connection* nc, const char* subject, const char* reply,
                                      const bus_headers* headers, const void* data, size_t len) {
  return guarded("publish", [&]() -> bus_status {
    if (nc == nullptr || subject == nullptr) return invalid("publish: a NULL connection or subject");
    if (data == nullptr && len != 0) return invalid("publish: data is NULL but len is not 0");
    if (headers != nullptr) return take(nc->connection.publish(subject, bytes(data, len), headers->headers, text(reply)));
    return take(nc->connection.publish(subject, bytes(data, len), text(reply)));
  });
}

bus_status bus_connection_request(bus_message** reply, bus_connection* nc, const char* subject, const void* data,
                                  size_t len, int64_t timeout_ms) {
  return bus_connection_request_msg(reply, nc, subject, nullptr, data, len, timeout_ms);
}

bus_status bus_connection_request_msg(bus_message** reply, bus_connection* nc, const char* subject,
                                      const bus_headers* headers, const void* data, size_t len, int64_t timeout_ms) {
  return guarded("request", [&]() -> bus_status {
    if (reply == nullptr || nc == nullptr || subject == nullptr) return invalid("request: a NULL argument");
    *reply = nullptr;
    if (data == nullptr && len != 0) return invalid("request: data is NULL but len is not 0");
    std::chrono::nanoseconds timeout{};
    if (!to_timeout(timeout_ms, timeout)) return invalid("request: the timeout must not be negative");
    auto got = nc->connection.request(subject, bytes(data, len), timeout, headers != nullptr ? &headers->headers : nullptr);
    if (!got) return fail(got.error());
    *reply = new_message(std::move(got).value());
    return *reply != nullptr ? BUS_OK : out_of_memory();
  });
}

bus_status bus_connection_subscribe(bus_subscription** out, bus_connection* nc, const char* pattern) {
  return subscribe(out, nc, pattern, nullptr, nullptr, nullptr);
}

bus_status bus_connection_subscribe_cb(bus_subscription** out, bus_connection* nc, const char* pattern,
                                       bus_message_handler handler, void* closure) {
  if (handler == nullptr) return invalid("bus_connection_subscribe_cb: handler is NULL");
  return subscribe(out, nc, pattern, nullptr, handler, closure);
}

bus_status bus_connection_queue_subscribe(bus_subscription** out, bus_connection* nc, const char* pattern,
                                          const char* group) {
  if (group == nullptr) return invalid("bus_connection_queue_subscribe: group is NULL");
  return subscribe(out, nc, pattern, group, nullptr, nullptr);
}

bus_status bus_connection_queue_subscribe_cb(bus_subscription** out, bus_connection* nc, const char* pattern,
                                             const char* group, bus_message_handler handler, void* closure) {
  if (group == nullptr || handler == nullptr) return invalid("bus_connection_queue_subscribe_cb: a NULL group or handler");
  return subscribe(out, nc, pattern, group, handler, closure);
}

uint64_t bus_connection_max_payload(const bus_connection* nc) {
  return nc != nullptr ? nc->connection.max_payload() : 0;
}

int bus_connection_connected(const bus_connection* nc) { return nc != nullptr && nc->connection.connected() ? 1 : 0; }

bus_status bus_connection_close(bus_connection* nc) {
  return guarded("close", [&]() -> bus_status {
    if (nc == nullptr) return invalid("bus_connection_close: connection is NULL");
    return take(nc->connection.close());
  });
}

void bus_connection_destroy(bus_connection* nc) {
  if (nc == nullptr) return;
  (void)nc->connection.close();
  delete nc;
}

// ---- subscription --------------------------------------------------------------------------

bus_status bus_subscription_next(bus_message** msg, bus_subscription* sub, int64_t timeout_ms) {
  return guarded("next", [&]() -> bus_status {
    if (msg == nullptr || sub == nullptr) return invalid("bus_subscription_next: a NULL argument");
    *msg = nullptr;
    if (sub->handler != nullptr) return invalid("bus_subscription_next: a callback subscription delivers to its handler");
    std::chrono::nanoseconds timeout{};
    if (!to_timeout(timeout_ms, timeout)) return invalid("bus_subscription_next: the timeout must not be negative");
    auto got = sub->subscription.next(timeout);
    if (!got) return fail(got.error());
    *msg = new_message(std::move(got).value());
    return *msg != nullptr ? BUS_OK : out_of_memory();
  });
}

bus_status bus_subscription_unsubscribe(bus_subscription* sub) {
  return guarded("unsubscribe", [&]() -> bus_status {
    if (sub == nullptr) return invalid("bus_subscription_unsubscribe: subscription is NULL");
    return take(sub->subscription.unsubscribe());
  });
}

bus_status bus_subscription_drain(bus_subscription* sub) {
  return guarded("drain", [&]() -> bus_status {
    if (sub == nullptr) return invalid("bus_subscription_drain: subscription is NULL");
    return take(sub->subscription.drain());
  });
}

uint64_t bus_subscription_dropped(const bus_subscription* sub) {
  return sub != nullptr ? sub->subscription.dropped_count() : 0;
}

uint64_t bus_subscription_delivered(const bus_subscription* sub) {
  return sub != nullptr ? sub->subscription.delivered_count() : 0;
}

void bus_subscription_destroy(bus_subscription* sub) {
  if (sub == nullptr) return;
  (void)sub->subscription.unsubscribe();  // the dispatch thread is joined: no handler runs after
  delete sub;
}

// ---- message -------------------------------------------------------------------------------

const char* bus_message_subject(const bus_message* m) { return m != nullptr ? m->message.subject.c_str() : nullptr; }

const char* bus_message_reply(const bus_message* m) {
  return m != nullptr && !m->message.reply.empty() ? m->message.reply.c_str() : nullptr;
}

const void* bus_message_data(const bus_message* m) { return m != nullptr ? m->message.data.c_str() : nullptr; }

size_t bus_message_data_len(const bus_message* m) { return m != nullptr ? m->message.data.size() : 0; }

const bus_headers* bus_message_headers(bus_message* m) {
  if (m == nullptr) {
    (void)invalid("bus_message_headers: message is NULL");
    return nullptr;
  }
  if (!m->headers) {
    auto parsed = m->message.header();
    if (!parsed) {
      (void)fail(parsed.error());
      return nullptr;
    }
    m->headers.emplace();
    m->headers->headers = std::move(parsed).value();
  }
  return &*m->headers;
}

bus_status bus_message_respond(const bus_message* m, const void* data, size_t len) {
  return bus_message_respond_msg(m, nullptr, data, len);
}

bus_status bus_message_respond_msg(const bus_message* m, const bus_headers* headers, const void* data, size_t len) {
  return guarded("respond", [&]() -> bus_status {
    if (m == nullptr) return invalid("bus_message_respond: message is NULL");
    if (data == nullptr && len != 0) return invalid("bus_message_respond: data is NULL but len is not 0");
    if (headers != nullptr) return take(m->message.respond(bytes(data, len), headers->headers));
    return take(m->message.respond(bytes(data, len)));
  });
}

void bus_message_destroy(bus_message* m) { delete m; }

// ---- headers -------------------------------------------------------------------------------

bus_status bus_headers_create(bus_headers** out) {
  if (out == nullptr) return invalid("bus_headers_create: out is NULL");
  *out = new (std::nothrow) bus_headers;
  return *out != nullptr ? BUS_OK : out_of_memory();
}

bus_status bus_headers_add(bus_headers* h, const char* key, const char* value) {
  return guarded("headers", [&]() -> bus_status {
    if (h == nullptr || key == nullptr || value == nullptr) return invalid("bus_headers_add: a NULL argument");
    h->lines_current = false;
    return take(h->headers.add(key, value));
  });
}

bus_status bus_headers_set(bus_headers* h, const char* key, const char* value) {
  return guarded("headers", [&]() -> bus_status {
    if (h == nullptr || key == nullptr || value == nullptr) return invalid("bus_headers_set: a NULL argument");
    h->lines_current = false;
    return take(h->headers.set(key, value));
  });
}

bus_status bus_headers_get(const bus_headers* h, const char* key, const char** value) {
  return guarded("headers", [&]() -> bus_status {
    if (h == nullptr || key == nullptr || value == nullptr) return invalid("bus_headers_get: a NULL argument");
    *value = nullptr;
    rebuild_lines(*h);
    for (const auto& [k, v] : h->lines) {
      if (k == key) {
        *value = v.c_str();
        return BUS_OK;
      }
    }
    return fail(bus::Errc::not_found, std::string("no header '") + key + "'");
  });
}

bus_status bus_headers_delete(bus_headers* h, const char* key) {
  return guarded("headers", [&]() -> bus_status {
    if (h == nullptr || key == nullptr) return invalid("bus_headers_delete: a NULL argument");
    h->lines_current = false;
    if (h->headers.remove(key) == 0) return fail(bus::Errc::not_found, std::string("no header '") + key + "'");
    return BUS_OK;
  });
}

size_t bus_headers_count(const bus_headers* h) { return h != nullptr ? h->headers.size() : 0; }

bus_status bus_headers_entry(const bus_headers* h, size_t index, const char** key, const char** value) {
  return guarded("headers", [&]() -> bus_status {
    if (h == nullptr || key == nullptr || value == nullptr) return invalid("bus_headers_entry: a NULL argument");
    rebuild_lines(*h);
    if (index >= h->lines.size()) {
      return fail(bus::Errc::not_found, "header line " + std::to_string(index) + " of " + std::to_string(h->lines.size()));
    }
    *key = h->lines[index].first.c_str();
    *value = h->lines[index].second.c_str();
    return BUS_OK;
  });
}

void bus_headers_destroy(bus_headers* h) { delete h; }

// ---- broker --------------------------------------------------------------------------------

bus_status bus_broker_start(bus_broker** out, const char* bus_name) {
  if (out == nullptr) return invalid("bus_broker_start: out is NULL");
  *out = nullptr;
  try {
    bus::BrokerOptions o;
    o.bus_name = bus_name != nullptr ? bus_name : "default";
    o.log = false;
    auto broker = bus::Broker::start(o);
    if (!broker) return fail(broker.error());
    *out = new bus_broker{std::move(broker).value()};
  } catch (const std::bad_alloc&) {
    return out_of_memory();
  } catch (const std::exception& e) {
    return guarded("broker start", [&]() -> bus_status { return fail(bus::Errc::resource_exhausted, std::string("broker start: ") + e.what()); });
  }
  return BUS_OK;
}

bus_status bus_broker_stop(bus_broker* b) {
  return guarded("broker stop", [&]() -> bus_status {
    if (b == nullptr) return invalid("bus_broker_stop: broker is NULL");
    return take(b->broker.stop());
  });
}

void bus_broker_destroy(bus_broker* b) { delete b; }

}  // extern "C"

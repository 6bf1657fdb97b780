/* bus/bus.h — the C API of libbus (C11; also valid C++), and the ABI other languages bind to.
 *
 * After nats.c: opaque handles, functions named bus_<type>_<verb>, every call that can fail
 * returns a bus_status, and the detail of the last failure on the calling thread is
 * bus_last_error(). A handle is closed (it stops working, other calls on it fail with
 * BUS_CLOSED) and destroyed (its memory freed) in two steps, as natsConnection_Close and
 * natsConnection_Destroy; destroy closes first if needed.
 *
 *   bus_connection* nc = NULL;
 *   if (bus_connection_connect(&nc, "default", NULL) != BUS_OK) {
 *     fprintf(stderr, "%s\n", bus_last_error());
 *     return 1;
 *   }
 *   bus_subscription* sub = NULL;
 *   bus_connection_subscribe(&sub, nc, "orders.>");
 *   bus_connection_publish(nc, "orders.eu.new", "{...}", 5);
 *   bus_message* m = NULL;
 *   if (bus_subscription_next(&m, sub, 1000) == BUS_OK) {
 *     printf("%s: %.*s\n", bus_message_subject(m), (int)bus_message_data_len(m), (const char*)bus_message_data(m));
 *     bus_message_destroy(m);
 *   }
 *   bus_subscription_destroy(sub);
 *   bus_connection_destroy(nc);
 *
 * Threads: a connection may publish from any number of threads at once (as in C++); one thread
 * at a time may call next() on a subscription. Strings are NUL-terminated UTF-8 subjects; data
 * is bytes with a length. Strings a call returns belong to the handle they came from (those of
 * a bus_headers until it next changes; bus_last_error's until the thread's next failing call).
 * Timeouts are in milliseconds and must not be negative; INT64_MAX waits as good as forever.
 * Nothing here throws or aborts: misuse (a NULL handle, a NULL out-pointer) is
 * BUS_INVALID_ARGUMENT, and a C++ exception from inside (an allocation, a thread the system
 * refuses) becomes BUS_RESOURCE_EXHAUSTED.
 *
 * A handler must not close or destroy its own connection or subscription, nor drain its own
 * subscription (the dispatch thread cannot wait for itself): hand that to another thread. A
 * message or headers object may be read from one thread at a time.
 */
#ifndef BUS_BUS_H
#define BUS_BUS_H

#include <stddef.h>
#include <stdint.h>

#if defined(__GNUC__)
#define BUS_C_API __attribute__((visibility("default")))
#else
#define BUS_C_API
#endif

#ifdef __cplusplus
extern "C" {
#endif

/* The codes of bus::Errc (bus/result.hpp), value for value; new ones are appended. */
typedef enum bus_status {
  BUS_OK = 0,
  BUS_INVALID_ARGUMENT = 1,       /* a bad option, name, size or handle */
  BUS_INVALID_SUBJECT = 2,        /* breaks the NATS subject rules */
  BUS_PAYLOAD_TOO_LARGE = 3,      /* headers + data over the bus's max_payload */
  BUS_BROKER_NOT_RUNNING = 4,     /* no broker serves this bus */
  BUS_BROKER_ALREADY_RUNNING = 5, /* a second broker on one bus */
  BUS_BROKER_GONE = 6,            /* the broker died or closed the control channel */
  BUS_SEGMENT_CORRUPT = 7,        /* shared memory failed a bounds check */
  BUS_VERSION_MISMATCH = 8,       /* a segment of another layout version */
  BUS_PERMISSION_DENIED = 9,      /* another user's bus, or a $SYS subject */
  BUS_RESOURCE_EXHAUSTED = 10,    /* no free client slot, subscription, ring or route */
  BUS_TIMEOUT = 11,               /* nothing came within the timeout */
  BUS_CLOSED = 12,                /* the handle was closed or unsubscribed */
  BUS_IO_ERROR = 13,              /* an OS call failed (bus_last_error names it) */
  BUS_PROTOCOL_ERROR = 14,        /* a malformed control message */
  BUS_NO_RESPONDERS = 15,         /* a request found nobody subscribed (NATS 503) */
  BUS_ALREADY_EXISTS = 16,        /* a stream, consumer or file of that name exists */
  BUS_JOURNAL_CORRUPT = 17,       /* a journal file failed a check */
  BUS_NOT_FOUND = 18,             /* no such stream, message or header */
  BUS_EXPECTATION_FAILED = 19     /* a Nats-Expected-* header did not hold */
} bus_status;

typedef struct bus_connection bus_connection;
typedef struct bus_subscription bus_subscription;
typedef struct bus_message bus_message;
typedef struct bus_headers bus_headers;
typedef struct bus_options bus_options;
typedef struct bus_broker bus_broker;

/* A handler of a callback subscription, run on the subscription's own thread. It owns `msg`
 * and must bus_message_destroy() it (as nats.c's natsMsgHandler). */
typedef void (*bus_message_handler)(bus_connection* nc, bus_subscription* sub, bus_message* msg, void* closure);

/* ---- errors and version --------------------------------------------------------------- */

/* A short fixed name of a status, e.g. "timeout"; "unknown" for a value not listed above. */
BUS_C_API const char* bus_status_text(bus_status s);
/* One line on the last call that failed on this thread ("" if none has): what it was given
 * and the rule it broke. Valid until the next failing call on this thread. */
BUS_C_API const char* bus_last_error(void);
/* The library's version, e.g. "0.1.0". */
BUS_C_API const char* bus_version(void);

/* ---- connection options (NULL everywhere means the defaults) -------------------------- */

BUS_C_API bus_status bus_options_create(bus_options** out);
/* The name monitoring tools show for the connection. */
BUS_C_API bus_status bus_options_set_name(bus_options* o, const char* name);
/* How long a control call (subscribe, a first publish to a subject, connect) waits for the
 * broker; default 5000 ms. */
BUS_C_API bus_status bus_options_set_timeout(bus_options* o, int64_t timeout_ms);
/* Reconnect to a restarted broker (default 1) and how often before giving up (-1: forever). */
BUS_C_API bus_status bus_options_set_allow_reconnect(bus_options* o, int allow);
BUS_C_API bus_status bus_options_set_max_reconnect(bus_options* o, int attempts);
BUS_C_API void bus_options_destroy(bus_options* o);

/* ---- connection ------------------------------------------------------------------------- */

/* Attaches to bus `bus_name` (NULL: "default"). BUS_BROKER_NOT_RUNNING when no broker serves it. */
BUS_C_API bus_status bus_connection_connect(bus_connection** out, const char* bus_name, const bus_options* options);
/* Publishes `len` bytes of `data` on the literal `subject`. Nobody subscribed is not an error. */
BUS_C_API bus_status bus_connection_publish(bus_connection* nc, const char* subject, const void* data, size_t len);
/* The same with a reply subject and headers; either may be NULL. */
BUS_C_API bus_status bus_connection_publish_msg(bus_connection* nc, const char* subject, const char* reply,
                                                const bus_headers* headers, const void* data, size_t len);
/* Sends a request and waits up to `timeout_ms` for the first reply, which *reply then owns.
 * BUS_NO_RESPONDERS at once when nobody subscribes to `subject`; BUS_TIMEOUT when no reply came. */
BUS_C_API bus_status bus_connection_request(bus_message** reply, bus_connection* nc, const char* subject,
                                            const void* data, size_t len, int64_t timeout_ms);
BUS_C_API bus_status bus_connection_request_msg(bus_message** reply, bus_connection* nc, const char* subject,
                                                const bus_headers* headers, const void* data, size_t len,
                                                int64_t timeout_ms);
/* Subscribes to `pattern` (`*` one token, `>` the rest) for pulling with bus_subscription_next(). */
BUS_C_API bus_status bus_connection_subscribe(bus_subscription** out, bus_connection* nc, const char* pattern);
/* Subscribes with `handler`, run on the subscription's own thread with `closure`. */
BUS_C_API bus_status bus_connection_subscribe_cb(bus_subscription** out, bus_connection* nc, const char* pattern,
                                                 bus_message_handler handler, void* closure);
/* Joins queue group `group`: each message on `pattern` goes to one member of the group. */
BUS_C_API bus_status bus_connection_queue_subscribe(bus_subscription** out, bus_connection* nc, const char* pattern,
                                                    const char* group);
BUS_C_API bus_status bus_connection_queue_subscribe_cb(bus_subscription** out, bus_connection* nc,
                                                       const char* pattern, const char* group,
                                                       bus_message_handler handler, void* closure);
/* Largest headers + data the bus accepts (0 for a NULL connection). */
BUS_C_API uint64_t bus_connection_max_payload(const bus_connection* nc);
/* 1 while a live broker serves the connection, else 0. */
BUS_C_API int bus_connection_connected(const bus_connection* nc);
/* Detaches: its subscriptions stop receiving, later calls on it fail with BUS_CLOSED. */
BUS_C_API bus_status bus_connection_close(bus_connection* nc);
/* Closes if needed and frees it. Destroy its subscriptions first (or after: they are closed). */
BUS_C_API void bus_connection_destroy(bus_connection* nc);

/* ---- subscription ----------------------------------------------------------------------- */

/* Waits up to `timeout_ms` for the next message, which *msg then owns. BUS_TIMEOUT when none
 * came, BUS_CLOSED after unsubscribe, BUS_INVALID_ARGUMENT on a callback subscription. */
BUS_C_API bus_status bus_subscription_next(bus_message** msg, bus_subscription* sub, int64_t timeout_ms);
/* Stops delivery: after it returns, nothing more is delivered. Called from the subscription's
 * own handler it stops delivery at once, but the broker lets go of the subscription only when
 * it is destroyed: until then messages routed to it (a queue group's share) are dropped. */
BUS_C_API bus_status bus_subscription_unsubscribe(bus_subscription* sub);
/* Lets a callback subscription finish what is in its ring, then unsubscribes (NATS drain). */
BUS_C_API bus_status bus_subscription_drain(bus_subscription* sub);
/* Messages dropped because its ring was full, and messages handed to the application. */
BUS_C_API uint64_t bus_subscription_dropped(const bus_subscription* sub);
BUS_C_API uint64_t bus_subscription_delivered(const bus_subscription* sub);
/* Unsubscribes if needed and frees it. Not from its own handler. */
BUS_C_API void bus_subscription_destroy(bus_subscription* sub);

/* ---- message ---------------------------------------------------------------------------- */

BUS_C_API const char* bus_message_subject(const bus_message* m);
/* The reply subject, or NULL when the publisher asked for no reply. */
BUS_C_API const char* bus_message_reply(const bus_message* m);
/* The payload (binary-safe; followed by a NUL that is not counted) and its length. */
BUS_C_API const void* bus_message_data(const bus_message* m);
BUS_C_API size_t bus_message_data_len(const bus_message* m);
/* The message's headers (empty when it has none), owned by the message; NULL if they do not
 * parse (bus_last_error says why). */
BUS_C_API const bus_headers* bus_message_headers(bus_message* m);
/* Publishes `data` to the message's reply subject through the connection that received it.
 * BUS_INVALID_ARGUMENT when it has no reply subject. */
BUS_C_API bus_status bus_message_respond(const bus_message* m, const void* data, size_t len);
BUS_C_API bus_status bus_message_respond_msg(const bus_message* m, const bus_headers* headers, const void* data,
                                             size_t len);
BUS_C_API void bus_message_destroy(bus_message* m);

/* ---- headers (NATS/1.0 header block) ----------------------------------------------------- */

BUS_C_API bus_status bus_headers_create(bus_headers** out);
/* Appends a value to `key` (a key may have several). */
BUS_C_API bus_status bus_headers_add(bus_headers* h, const char* key, const char* value);
/* Replaces every value of `key` with `value`. */
BUS_C_API bus_status bus_headers_set(bus_headers* h, const char* key, const char* value);
/* The first value of `key` (case-sensitive, as NATS): BUS_NOT_FOUND if none. Strings these
 * calls return are owned by `h` and valid until `h` next changes. */
BUS_C_API bus_status bus_headers_get(const bus_headers* h, const char* key, const char** value);
/* Removes every value of `key`: BUS_NOT_FOUND if there was none. */
BUS_C_API bus_status bus_headers_delete(bus_headers* h, const char* key);
/* How many key/value lines it has, and line `index` (0-based). */
BUS_C_API size_t bus_headers_count(const bus_headers* h);
BUS_C_API bus_status bus_headers_entry(const bus_headers* h, size_t index, const char** key, const char** value);
BUS_C_API void bus_headers_destroy(bus_headers* h);

/* ---- an embedded broker (or run busd) ---------------------------------------------------- */

/* Starts a broker for bus `bus_name` (NULL: "default") on its own thread in this process,
 * with busd's defaults and no log. BUS_BROKER_ALREADY_RUNNING if the bus has one. */
BUS_C_API bus_status bus_broker_start(bus_broker** out, const char* bus_name);
/* Stops it; clients reconnect to the next broker of the bus. */
BUS_C_API bus_status bus_broker_stop(bus_broker* b);
BUS_C_API void bus_broker_destroy(bus_broker* b);

#ifdef __cplusplus
}
#endif

#endif /* BUS_BUS_H */

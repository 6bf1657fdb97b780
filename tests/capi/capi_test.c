/* capi_test.c — the C API (bus/bus.h) from C, and the same file compiled as C++
 * (tests/CMakeLists.txt builds it twice): every call's status, the thread's last error, misuse
 * (NULL handles, a closed connection, a negative timeout) as errors and never a crash, and
 * pub/sub, callbacks, queue groups, request/respond and headers through an embedded broker.
 * A self-checking program: it prints each failed check and exits 1 if there was any. */
#include <bus/bus.h>

#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static int failures = 0;

#define CHECK(cond)                                                                        \
  do {                                                                                     \
    if (!(cond)) {                                                                         \
      fprintf(stderr, "%s:%d: CHECK(%s) failed (last error: %s)\n", __FILE__, __LINE__, #cond, \
              bus_last_error());                                                           \
      ++failures;                                                                          \
    }                                                                                      \
  } while (0)

static void sleep_ms(long ms) {
  struct timespec t;
  t.tv_sec = ms / 1000;
  t.tv_nsec = (ms % 1000) * 1000000L;
  nanosleep(&t, NULL);
}

static void test_errors_without_a_broker(const char* bus_name) {
  bus_connection* nc = (bus_connection*)&failures; /* must be reset to NULL on failure */
  CHECK(bus_connection_connect(&nc, bus_name, NULL) == BUS_BROKER_NOT_RUNNING);
  CHECK(nc == NULL);
  CHECK(strstr(bus_last_error(), bus_name) != NULL);
  CHECK(strcmp(bus_status_text(BUS_TIMEOUT), "timeout") == 0);
  CHECK(strcmp(bus_status_text(BUS_NO_RESPONDERS), "no_responders") == 0);
  CHECK(strcmp(bus_status_text((bus_status)999), "unknown") == 0);
  CHECK(strlen(bus_version()) > 0);
  /* Misuse is an error value, never a crash. */
  CHECK(bus_connection_connect(NULL, bus_name, NULL) == BUS_INVALID_ARGUMENT);
  CHECK(bus_connection_publish(NULL, "a", "x", 1) == BUS_INVALID_ARGUMENT);
  CHECK(bus_subscription_next(NULL, NULL, 0) == BUS_INVALID_ARGUMENT);
  CHECK(bus_message_subject(NULL) == NULL);
  CHECK(bus_connection_max_payload(NULL) == 0);
  bus_connection_destroy(NULL);
  bus_subscription_destroy(NULL);
  bus_message_destroy(NULL);
  bus_headers_destroy(NULL);
  bus_options_destroy(NULL);
  bus_options* o = NULL;
  CHECK(bus_options_create(&o) == BUS_OK);
  CHECK(bus_options_set_name(o, "capi test") == BUS_OK);
  CHECK(bus_options_set_timeout(o, 0) == BUS_INVALID_ARGUMENT);
  CHECK(bus_options_set_timeout(o, 500) == BUS_OK);
  CHECK(bus_options_set_max_reconnect(o, -2) == BUS_INVALID_ARGUMENT);
  bus_options_destroy(o);
}

static void test_headers(void) {
  bus_headers* h = NULL;
  const char* v = NULL;
  const char* k = NULL;
  CHECK(bus_headers_create(&h) == BUS_OK);
  CHECK(bus_headers_count(h) == 0);
  CHECK(bus_headers_get(h, "Missing", &v) == BUS_NOT_FOUND);
  CHECK(bus_headers_add(h, "Tag", "a") == BUS_OK);
  CHECK(bus_headers_add(h, "Tag", "b") == BUS_OK);
  CHECK(bus_headers_set(h, "Trace", "t1") == BUS_OK);
  CHECK(bus_headers_count(h) == 3);
  CHECK(bus_headers_get(h, "Tag", &v) == BUS_OK && strcmp(v, "a") == 0);
  CHECK(bus_headers_set(h, "Tag", "c") == BUS_OK);
  CHECK(bus_headers_count(h) == 2);
  CHECK(bus_headers_get(h, "Tag", &v) == BUS_OK && strcmp(v, "c") == 0);
  CHECK(bus_headers_entry(h, 0, &k, &v) == BUS_OK);
  CHECK(bus_headers_entry(h, 5, &k, &v) == BUS_NOT_FOUND);
  CHECK(bus_headers_add(h, "Bad Key", "x") == BUS_INVALID_ARGUMENT);
  CHECK(bus_headers_delete(h, "Tag") == BUS_OK);
  CHECK(bus_headers_delete(h, "Tag") == BUS_NOT_FOUND);
  CHECK(bus_headers_count(h) == 1);
  bus_headers_destroy(h);
}

typedef struct {
  volatile int count;
  char last_subject[64];
} seen_t;

static void on_message(bus_connection* nc, bus_subscription* sub, bus_message* m, void* closure) {
  seen_t* seen = (seen_t*)closure;
  (void)nc;
  (void)sub;
  snprintf(seen->last_subject, sizeof seen->last_subject, "%s", bus_message_subject(m));
  __atomic_add_fetch(&seen->count, 1, __ATOMIC_RELEASE);
  bus_message_destroy(m);
}

static void on_request(bus_connection* nc, bus_subscription* sub, bus_message* m, void* closure) {
  (void)nc;
  (void)sub;
  (void)closure;
  bus_headers* h = NULL;
  if (bus_headers_create(&h) == BUS_OK && bus_headers_set(h, "Answered-By", "capi") == BUS_OK) {
    (void)bus_message_respond_msg(m, h, bus_message_data(m), bus_message_data_len(m));
  }
  bus_headers_destroy(h);
  bus_message_destroy(m);
}

static int wait_count(seen_t* seen, int n) {
  for (int i = 0; i < 500 && __atomic_load_n(&seen->count, __ATOMIC_ACQUIRE) < n; ++i) sleep_ms(2);
  return __atomic_load_n(&seen->count, __ATOMIC_ACQUIRE);
}

static void test_with_a_broker(const char* bus_name) {
  bus_broker* b = NULL;
  bus_connection* nc = NULL;
  bus_subscription* pull = NULL;
  bus_message* m = NULL;
  CHECK(bus_broker_start(&b, bus_name) == BUS_OK);
  bus_broker* second = NULL;
  CHECK(bus_broker_start(&second, bus_name) == BUS_BROKER_ALREADY_RUNNING);
  CHECK(bus_connection_connect(&nc, bus_name, NULL) == BUS_OK);
  CHECK(bus_connection_connected(nc) == 1);
  CHECK(bus_connection_max_payload(nc) > 0);

  /* Pull subscription, with a reply subject and headers carried through. */
  bus_subscription* bad = (bus_subscription*)&failures; /* must be reset to NULL on failure */
  CHECK(bus_connection_subscribe(&bad, nc, "bad..pattern") == BUS_INVALID_SUBJECT);
  CHECK(bad == NULL);
  CHECK(bus_connection_subscribe(&pull, nc, "capi.*") == BUS_OK);
  CHECK(bus_subscription_next(&m, pull, 0) == BUS_TIMEOUT);
  CHECK(bus_subscription_next(&m, pull, -1) == BUS_INVALID_ARGUMENT);
  bus_headers* h = NULL;
  CHECK(bus_headers_create(&h) == BUS_OK && bus_headers_set(h, "K", "v") == BUS_OK);
  CHECK(bus_connection_publish_msg(nc, "capi.one", "capi.back", h, "bin\0ary", 7) == BUS_OK);
  bus_headers_destroy(h);
  CHECK(bus_subscription_next(&m, pull, 1000) == BUS_OK);
  if (m != NULL) {
    CHECK(strcmp(bus_message_subject(m), "capi.one") == 0);
    CHECK(bus_message_reply(m) != NULL && strcmp(bus_message_reply(m), "capi.back") == 0);
    CHECK(bus_message_data_len(m) == 7 && memcmp(bus_message_data(m), "bin\0ary", 7) == 0);
    const bus_headers* got = bus_message_headers(m);
    const char* v = NULL;
    CHECK(got != NULL && bus_headers_get(got, "K", &v) == BUS_OK && strcmp(v, "v") == 0);
    bus_message_destroy(m);
    m = NULL;
  }
  CHECK(bus_connection_publish(nc, "capi.x.too.deep", "x", 1) == BUS_OK);  /* matches nothing: not an error */
  CHECK(bus_connection_publish(nc, "bad subject", "x", 1) == BUS_INVALID_SUBJECT);
  CHECK(bus_connection_publish(nc, "capi.one", NULL, 3) == BUS_INVALID_ARGUMENT);
  CHECK(bus_subscription_next(&m, pull, 50) == BUS_TIMEOUT);

  /* A callback subscription and a queue group of two: each message to one member. */
  seen_t all, q1, q2;
  memset(&all, 0, sizeof all);
  memset(&q1, 0, sizeof q1);
  memset(&q2, 0, sizeof q2);
  bus_subscription *cb = NULL, *m1 = NULL, *m2 = NULL;
  CHECK(bus_connection_subscribe_cb(&cb, nc, "work.>", on_message, &all) == BUS_OK);
  CHECK(bus_connection_queue_subscribe_cb(&m1, nc, "work.>", "g", on_message, &q1) == BUS_OK);
  CHECK(bus_connection_queue_subscribe_cb(&m2, nc, "work.>", "g", on_message, &q2) == BUS_OK);
  CHECK(bus_subscription_next(&m, cb, 0) == BUS_INVALID_ARGUMENT);
  for (int i = 0; i < 20; ++i) CHECK(bus_connection_publish(nc, "work.item", "j", 1) == BUS_OK);
  CHECK(wait_count(&all, 20) == 20);
  for (int i = 0; i < 500 && q1.count + q2.count < 20; ++i) sleep_ms(2);
  CHECK(q1.count + q2.count == 20);
  CHECK(strcmp(all.last_subject, "work.item") == 0);
  for (int i = 0; i < 500 && bus_subscription_delivered(cb) < 20; ++i) sleep_ms(2); /* counted after the batch */
  CHECK(bus_subscription_delivered(cb) == 20);
  CHECK(bus_subscription_dropped(cb) == 0);
  bus_subscription_destroy(m2);
  bus_subscription_destroy(m1);
  CHECK(bus_subscription_unsubscribe(cb) == BUS_OK);
  CHECK(bus_connection_publish(nc, "work.item", "j", 1) == BUS_OK);
  sleep_ms(20);
  CHECK(all.count == 20); /* nothing after unsubscribe */
  bus_subscription_destroy(cb);

  /* Request/reply: the responder's headers come back; nobody listening is an error at once. */
  bus_subscription* svc = NULL;
  CHECK(bus_connection_subscribe_cb(&svc, nc, "svc.echo", on_request, NULL) == BUS_OK);
  CHECK(bus_connection_request(&m, nc, "svc.echo", "ping", 4, 1000) == BUS_OK);
  if (m != NULL) {
    CHECK(bus_message_data_len(m) == 4 && memcmp(bus_message_data(m), "ping", 4) == 0);
    const bus_headers* got = bus_message_headers(m);
    const char* v = NULL;
    CHECK(got != NULL && bus_headers_get(got, "Answered-By", &v) == BUS_OK && strcmp(v, "capi") == 0);
    CHECK(bus_message_respond(m, "x", 1) == BUS_INVALID_ARGUMENT); /* a reply has no reply subject */
    bus_message_destroy(m);
    m = NULL;
  }
  CHECK(bus_connection_request(&m, nc, "svc.nobody", "?", 1, 1000) == BUS_NO_RESPONDERS);
  CHECK(m == NULL);
  CHECK(bus_connection_request(&m, nc, "svc.echo", "?", 1, -5) == BUS_INVALID_ARGUMENT);
  bus_subscription_destroy(svc);

  /* Closed: every later call says so. */
  CHECK(bus_connection_close(nc) == BUS_OK);
  CHECK(bus_connection_publish(nc, "capi.one", "x", 1) == BUS_CLOSED);
  CHECK(bus_connection_connected(nc) == 0);
  bus_subscription_destroy(pull); /* after its connection closed: still fine */
  bus_connection_destroy(nc);
  CHECK(bus_broker_stop(b) == BUS_OK);
  bus_broker_destroy(b);
}

int main(void) {
  char name[64];
  snprintf(name, sizeof name, "capi-%d", (int)getpid());
  test_errors_without_a_broker(name);
  test_headers();
  test_with_a_broker(name);
  if (failures != 0) {
    fprintf(stderr, "%d check(s) failed\n", failures);
    return 1;
  }
  printf("capi_test (%s): all checks passed\n",
#ifdef __cplusplus
         "C++"
#else
         "C"
#endif
  );
  return 0;
}

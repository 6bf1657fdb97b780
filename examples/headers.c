/* headers.c — NATS message headers in C: set on publish, read on receipt.
 * Needs a broker: `busd &` first. Usage: headers_c [BUS] */
#include <bus/bus.h>

#include <stdio.h>
#include <string.h>

static int fail(const char* what) {
  fprintf(stderr, "headers_c: %s: %s\n", what, bus_last_error());
  return 1;
}

int main(int argc, char** argv) {
  bus_connection* nc = NULL;
  bus_subscription* sub = NULL;
  bus_headers* h = NULL;
  bus_message* m = NULL;
  if (bus_connection_connect(&nc, argc > 1 ? argv[1] : "default", NULL) != BUS_OK) return fail("connect");
  if (bus_connection_subscribe(&sub, nc, "events.>") != BUS_OK) return fail("subscribe");
  if (bus_headers_create(&h) != BUS_OK || bus_headers_set(h, "Trace-Id", "4bf92f35") != BUS_OK ||
      bus_headers_add(h, "Tag", "blue") != BUS_OK || bus_headers_add(h, "Tag", "fast") != BUS_OK) {
    return fail("headers");
  }
  if (bus_connection_publish_msg(nc, "events.login", NULL, h, "alice", 5) != BUS_OK) return fail("publish");
  bus_headers_destroy(h);
  if (bus_subscription_next(&m, sub, 1000) != BUS_OK) return fail("next");
  const bus_headers* got = bus_message_headers(m);
  if (got == NULL) return fail("parse headers");
  for (size_t i = 0; i < bus_headers_count(got); ++i) {
    const char* key = NULL;
    const char* value = NULL;
    if (bus_headers_entry(got, i, &key, &value) == BUS_OK) printf("%s: %s\n", key, value);
  }
  const char* trace = NULL;
  if (bus_headers_get(got, "Trace-Id", &trace) != BUS_OK || strcmp(trace, "4bf92f35") != 0 ||
      bus_headers_count(got) != 3) {
    fprintf(stderr, "headers_c: the headers did not arrive as sent\n");
    return 1;
  }
  printf("%s: %.*s\n", bus_message_subject(m), (int)bus_message_data_len(m), (const char*)bus_message_data(m));
  bus_message_destroy(m);
  bus_subscription_destroy(sub);
  bus_connection_destroy(nc);
  return 0;
}

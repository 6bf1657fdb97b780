/* pubsub.c — wildcard subscriptions in C: `*` matches one token, `>` the rest.
 * Needs a broker: `busd &` first. Usage: pubsub_c [BUS] */
#include <bus/bus.h>

#include <stdio.h>
#include <string.h>

static int fail(const char* what) {
  fprintf(stderr, "pubsub_c: %s: %s\n", what, bus_last_error());
  return 1;
}

/* Prints what `sub` has until it stays quiet for 200 ms; returns how many. */
static int drain_into_stdout(bus_subscription* sub, const char* label) {
  int n = 0;
  bus_message* m = NULL;
  while (bus_subscription_next(&m, sub, 200) == BUS_OK) {
    printf("%-13s %s: %.*s\n", label, bus_message_subject(m), (int)bus_message_data_len(m),
           (const char*)bus_message_data(m));
    bus_message_destroy(m);
    ++n;
  }
  return n;
}

int main(int argc, char** argv) {
  bus_connection* nc = NULL;
  bus_subscription* everything = NULL;
  bus_subscription* new_ones = NULL;
  if (bus_connection_connect(&nc, argc > 1 ? argv[1] : "default", NULL) != BUS_OK) return fail("connect");
  if (bus_connection_subscribe(&everything, nc, "orders.>") != BUS_OK) return fail("subscribe");
  if (bus_connection_subscribe(&new_ones, nc, "orders.*.new") != BUS_OK) return fail("subscribe");
  const char* subjects[] = {"orders.eu.new", "orders.us.paid", "orders.us.new"};
  for (int i = 0; i < 3; ++i) {
    char body[64];
    snprintf(body, sizeof body, "order on %s", subjects[i]);
    if (bus_connection_publish(nc, subjects[i], body, strlen(body)) != BUS_OK) return fail("publish");
  }
  const int got_all = drain_into_stdout(everything, "orders.>");
  const int got_new = drain_into_stdout(new_ones, "orders.*.new");
  bus_subscription_destroy(new_ones);
  bus_subscription_destroy(everything);
  bus_connection_destroy(nc);
  if (got_all != 3 || got_new != 2) {
    fprintf(stderr, "pubsub_c: expected 3 and 2 messages, got %d and %d\n", got_all, got_new);
    return 1;
  }
  return 0;
}

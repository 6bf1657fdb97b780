/* embedded_broker.c — the broker on a thread of this process (no busd), then a client of it,
 * in C. Usage: embedded_broker_c [BUS] */
#include <bus/bus.h>

#include <stdio.h>
#include <string.h>

static int fail(const char* what) {
  fprintf(stderr, "embedded_broker_c: %s: %s\n", what, bus_last_error());
  return 1;
}

int main(int argc, char** argv) {
  const char* bus_name = argc > 1 ? argv[1] : "embedded-example-c";
  bus_broker* broker = NULL;
  bus_connection* nc = NULL;
  bus_subscription* sub = NULL;
  bus_message* m = NULL;
  if (bus_broker_start(&broker, bus_name) != BUS_OK) return fail("broker");
  if (bus_connection_connect(&nc, bus_name, NULL) != BUS_OK) return fail("connect");
  if (bus_connection_subscribe(&sub, nc, "greetings") != BUS_OK) return fail("subscribe");
  const char* hello = "hello from an embedded broker";
  if (bus_connection_publish(nc, "greetings", hello, strlen(hello)) != BUS_OK) return fail("publish");
  if (bus_subscription_next(&m, sub, 1000) != BUS_OK) return fail("next");
  printf("%s: %.*s\n", bus_message_subject(m), (int)bus_message_data_len(m), (const char*)bus_message_data(m));
  bus_message_destroy(m);
  bus_subscription_destroy(sub);
  bus_connection_destroy(nc);
  if (bus_broker_stop(broker) != BUS_OK) return fail("stop");
  bus_broker_destroy(broker);
  return 0;
}

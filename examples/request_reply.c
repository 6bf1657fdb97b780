/* request_reply.c — a service answering on `svc.echo` and a synchronous request to it, in C;
 * and a request nobody answers (BUS_NO_RESPONDERS). Needs a broker: `busd &` first.
 * Usage: request_reply_c [BUS] */
#include <bus/bus.h>

#include <stdio.h>
#include <string.h>

/* The service, on its subscription's thread: answers each request with "echo: <body>". */
static void echo(bus_connection* nc, bus_subscription* sub, bus_message* request, void* closure) {
  (void)nc;
  (void)sub;
  (void)closure;
  char answer[256];
  int n = snprintf(answer, sizeof answer, "echo: %.*s", (int)bus_message_data_len(request),
                   (const char*)bus_message_data(request));
  if (n < 0) n = 0;
  if ((size_t)n >= sizeof answer) n = (int)sizeof answer - 1; /* a long request: its echo is cut short */
  if (bus_message_respond(request, answer, (size_t)n) != BUS_OK) fprintf(stderr, "respond: %s\n", bus_last_error());
  bus_message_destroy(request);
}

static int fail(const char* what) {
  fprintf(stderr, "request_reply_c: %s: %s\n", what, bus_last_error());
  return 1;
}

int main(int argc, char** argv) {
  bus_connection* nc = NULL;
  bus_subscription* service = NULL;
  bus_message* reply = NULL;
  if (bus_connection_connect(&nc, argc > 1 ? argv[1] : "default", NULL) != BUS_OK) return fail("connect");
  if (bus_connection_queue_subscribe_cb(&service, nc, "svc.echo", "echo", echo, NULL) != BUS_OK) return fail("subscribe");
  for (int i = 0; i < 3; ++i) {
    char body[32];
    snprintf(body, sizeof body, "hello %d", i);
    if (bus_connection_request(&reply, nc, "svc.echo", body, strlen(body), 1000) != BUS_OK) return fail("request");
    printf("reply: %.*s\n", (int)bus_message_data_len(reply), (const char*)bus_message_data(reply));
    bus_message_destroy(reply);
  }
  const bus_status s = bus_connection_request(&reply, nc, "svc.nobody", "?", 1, 1000);
  if (s != BUS_NO_RESPONDERS) {
    fprintf(stderr, "request_reply_c: expected no responders, got %s\n", bus_status_text(s));
    return 1;
  }
  printf("svc.nobody: %s (%s)\n", bus_status_text(s), bus_last_error());
  bus_subscription_destroy(service);
  bus_connection_destroy(nc);
  return 0;
}

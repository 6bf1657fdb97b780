/* queue_workers.c — a queue group in C: each job on `jobs.*` goes to exactly one worker of
 * group "workers". Needs a broker: `busd &` first. Usage: queue_workers_c [BUS] */
#include <bus/bus.h>

#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#define WORKERS 3
#define JOBS 30

static atomic_int done[WORKERS];

/* Runs on the worker's own thread; `closure` is the worker's index. */
static void work(bus_connection* nc, bus_subscription* sub, bus_message* msg, void* closure) {
  (void)nc;
  (void)sub;
  atomic_fetch_add(&done[(int)(size_t)closure], 1);
  bus_message_destroy(msg);
}

static int fail(const char* what) {
  fprintf(stderr, "queue_workers_c: %s: %s\n", what, bus_last_error());
  return 1;
}

int main(int argc, char** argv) {
  bus_connection* nc = NULL;
  bus_subscription* workers[WORKERS] = {NULL};
  if (bus_connection_connect(&nc, argc > 1 ? argv[1] : "default", NULL) != BUS_OK) return fail("connect");
  for (int w = 0; w < WORKERS; ++w) {
    if (bus_connection_queue_subscribe_cb(&workers[w], nc, "jobs.*", "workers", work, (void*)(size_t)w) != BUS_OK) {
      return fail("queue subscribe");
    }
  }
  for (int j = 0; j < JOBS; ++j) {
    char body[32];
    snprintf(body, sizeof body, "job %d", j);
    if (bus_connection_publish(nc, "jobs.resize", body, strlen(body)) != BUS_OK) return fail("publish");
  }
  int total = 0;
  for (int waited = 0; waited < 200 && total < JOBS; ++waited) {
    const struct timespec ten_ms = {0, 10 * 1000 * 1000};
    nanosleep(&ten_ms, NULL);
    total = 0;
    for (int w = 0; w < WORKERS; ++w) total += atomic_load(&done[w]);
  }
  for (int w = 0; w < WORKERS; ++w) {
    (void)bus_subscription_drain(workers[w]);
    bus_subscription_destroy(workers[w]);
    printf("worker %d did %d jobs\n", w, atomic_load(&done[w]));
  }
  bus_connection_destroy(nc);
  if (total != JOBS) {
    fprintf(stderr, "queue_workers_c: %d jobs done, expected each of %d exactly once\n", total, JOBS);
    return 1;
  }
  return 0;
}

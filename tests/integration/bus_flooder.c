/* An unprivileged caller flooding org.mfad1.Manager.GetUser (test_daemon_floods.py): one bus
 * connection keeping WINDOW calls in flight, each reply answered by the next call, the names
 * taken in turn from the command line ("@random" stands for a fresh random name each time), until
 * SIGTERM. Prints "ready" once the first reply came, then at the end one JSON line: the number of
 * replies by outcome (the D-Bus error name, or "ok").
 *
 *   bus_flooder ADDRESS WINDOW NAME...
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <systemd/sd-bus.h>
#include <systemd/sd-event.h>
#include <unistd.h>

#define MAX_OUTCOMES 16

static struct {
  char name[128];
  unsigned long count;
} outcomes[MAX_OUTCOMES];
static int n_outcomes;
static sd_bus* bus;
static char** names;
static int n_names;
static unsigned long next_name;
static int ready;

static void count(const char* name) {
  for (int i = 0; i < n_outcomes; i++) {
    if (strcmp(outcomes[i].name, name) == 0) {
      outcomes[i].count++;
      return;
    }
  }
  if (n_outcomes == MAX_OUTCOMES)
    return;
  snprintf(outcomes[n_outcomes].name, sizeof(outcomes[0].name), "%s", name);
  outcomes[n_outcomes++].count = 1;
}

static int on_reply(sd_bus_message* m, void* userdata, sd_bus_error* ret_error);

static int send_one(void) {
  char random_name[32];
  const char* name = names[next_name++ % (unsigned long)n_names];
  if (strcmp(name, "@random") == 0) {
    snprintf(random_name, sizeof(random_name), "flood-%08lx", (unsigned long)random());
    name = random_name;
  }
  return sd_bus_call_method_async(bus, NULL, "org.mfad1", "/org/mfad1", "org.mfad1.Manager",
                                  "GetUser", on_reply, NULL, "s", name);
}

static int on_reply(sd_bus_message* m, void* userdata, sd_bus_error* ret_error) {
  (void)userdata;
  (void)ret_error;
  const sd_bus_error* e = sd_bus_message_get_error(m);
  count(e ? e->name : "ok");
  if (!ready) {
    ready = 1;
    printf("ready\n");
    fflush(stdout);
  }
  int r = send_one();
  if (r < 0)
    count("send-failed");
  return 0;
}

int main(int argc, char** argv) {
  if (argc < 4) {
    fprintf(stderr, "usage: bus_flooder ADDRESS WINDOW NAME...\n");
    return 2;
  }
  int window = atoi(argv[2]);
  names = argv + 3;
  n_names = argc - 3;
  srandom((unsigned)getpid());

  sigset_t mask;
  sigemptyset(&mask);
  sigaddset(&mask, SIGTERM);
  sigprocmask(SIG_BLOCK, &mask, NULL);

  sd_event* event = NULL;
  int r = sd_event_default(&event);
  if (r >= 0)
    r = sd_event_add_signal(event, NULL, SIGTERM, NULL, NULL);
  if (r >= 0)
    r = sd_bus_new(&bus);
  if (r >= 0)
    r = sd_bus_set_address(bus, argv[1]);
  if (r >= 0)
    r = sd_bus_set_bus_client(bus, 1);
  if (r >= 0)
    r = sd_bus_start(bus);
  if (r >= 0)
    r = sd_bus_attach_event(bus, event, 0);
  for (int i = 0; r >= 0 && i < window; i++)
    r = send_one();
  if (r >= 0)
    r = sd_event_loop(event);
  if (r < 0) {
    fprintf(stderr, "bus_flooder: %s\n", strerror(-r));
    return 1;
  }
  printf("{");
  for (int i = 0; i < n_outcomes; i++)
    printf("%s\"%s\": %lu", i ? ", " : "", outcomes[i].name, outcomes[i].count);
  printf("}\n");
  return 0;
}

/* A flood of wrong codes through the PAM side of org.mfad1.Manager (bench_floods.py): as root, on
 * one connection, BeginAuthentication of the next account in turn, Verify with a wrong code,
 * EndAuthentication; at most WINDOW attempts in flight and RATE attempts a second offered, until
 * SIGTERM. Prints "ready" after the first reply, then at the end one line: "attempts N replies M
 * begin_errors B verify_errors V".
 *
 *   code_flooder ADDRESS RATE WINDOW USER...
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <systemd/sd-bus.h>
#include <systemd/sd-event.h>
#include <time.h>
#include <unistd.h>

static sd_bus* bus;
static sd_event* event;
static char** users;
static int n_users;
static unsigned long next_user, started, replies, begin_errors, verify_errors;
static int in_flight, window, ready;
static double rate;
static struct timespec t0;

static double elapsed(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)(t.tv_sec - t0.tv_sec) + (double)(t.tv_nsec - t0.tv_nsec) / 1e9;
}

static void start_attempts(void);

static void done(void) {
  in_flight--;
  replies++;
  if (!ready) {
    ready = 1;
    printf("ready\n");
    fflush(stdout);
  }
  start_attempts();
}

static int on_verify(sd_bus_message* m, void* userdata, sd_bus_error* error) {
  (void)error;
  char* challenge = userdata;
  if (sd_bus_message_is_method_error(m, NULL))
    verify_errors++;
  sd_bus_message* end = NULL;
  if (sd_bus_message_new_method_call(bus, &end, "org.mfad1", "/org/mfad1", "org.mfad1.Manager",
                                     "EndAuthentication") >= 0 &&
      sd_bus_message_append(end, "s", challenge) >= 0 &&
      sd_bus_message_set_expect_reply(end, 0) >= 0)
    (void)sd_bus_send(bus, end, NULL);
  sd_bus_message_unref(end);
  free(challenge);
  done();
  return 0;
}

static int on_begin(sd_bus_message* m, void* userdata, sd_bus_error* error) {
  (void)userdata;
  (void)error;
  const char* challenge = NULL;
  if (sd_bus_message_is_method_error(m, NULL) || sd_bus_message_read(m, "s", &challenge) <= 0) {
    begin_errors++;
    done();
    return 0;
  }
  char* copy = strdup(challenge);
  if (sd_bus_call_method_async(bus, NULL, "org.mfad1", "/org/mfad1", "org.mfad1.Manager", "Verify",
                               on_verify, copy, "ss", copy, "000000") < 0) {
    free(copy);
    verify_errors++;
    done();
  }
  return 0;
}

static void start_attempts(void) {
  while (in_flight < window && (double)started < rate * elapsed()) {
    const char* user = users[next_user++ % (unsigned long)n_users];
    int r = sd_bus_call_method_async(bus, NULL, "org.mfad1", "/org/mfad1", "org.mfad1.Manager",
                                     "BeginAuthentication", on_begin, NULL, "sa{ss}", user, 1,
                                     "service", "flood");
    if (r < 0)
      break;
    started++;
    in_flight++;
  }
}

static int on_tick(sd_event_source* s, uint64_t usec, void* userdata) {
  (void)userdata;
  start_attempts();
  return sd_event_source_set_time(s, usec + 1000);
}

static int on_term(sd_event_source* s, const struct signalfd_siginfo* si, void* userdata) {
  (void)s;
  (void)si;
  (void)userdata;
  return sd_event_exit(event, 0);
}

int main(int argc, char** argv) {
  if (argc < 5) {
    fprintf(stderr, "usage: code_flooder ADDRESS RATE WINDOW USER...\n");
    return 2;
  }
  rate = atof(argv[2]);
  window = atoi(argv[3]);
  users = argv + 4;
  n_users = argc - 4;
  sigset_t mask;
  sigemptyset(&mask);
  sigaddset(&mask, SIGTERM);
  sigprocmask(SIG_BLOCK, &mask, NULL);
  if (sd_event_default(&event) < 0 || sd_bus_new(&bus) < 0 ||
      sd_bus_set_address(bus, argv[1]) < 0 || sd_bus_set_bus_client(bus, 1) < 0 ||
      sd_bus_start(bus) < 0 || sd_bus_attach_event(bus, event, 0) < 0)
    return 1;
  sd_event_add_signal(event, NULL, SIGTERM, on_term, NULL);
  uint64_t now = 0;
  sd_event_now(event, CLOCK_MONOTONIC, &now);
  sd_event_source* tick = NULL;
  if (sd_event_add_time(event, &tick, CLOCK_MONOTONIC, now + 1000, 500, on_tick, NULL) < 0 ||
      sd_event_source_set_enabled(tick, SD_EVENT_ON) < 0)
    return 1;
  clock_gettime(CLOCK_MONOTONIC, &t0);
  start_attempts();
  sd_event_loop(event);
  printf("attempts %lu replies %lu begin_errors %lu verify_errors %lu seconds %.3f\n", started,
         replies, begin_errors, verify_errors, elapsed());
  return 0;
}

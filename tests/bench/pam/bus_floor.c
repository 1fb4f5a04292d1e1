/* Anchor of the PAM benchmark: what the bus alone costs a login. For each of N iterations, times
 * the bus traffic of one pam_mfa.so login with mfad doing nothing: a new connection to ADDRESS
 * (authentication and Hello), GetNameOwner of org.mfad1 sent with the Hello, the owner's
 * credentials, two Peer.Ping round trips to the owner where the module makes BeginAuthentication
 * and Verify, one Ping without a reply where it sends EndAuthentication, and the close. Prints
 * "RC MICROSECONDS" per iteration (RC 0: every call answered).
 *
 * With "reconnect" as a third argument, the traffic of pam_mfa.so since issue 21: the connection
 * is closed after the first Ping (where the module prompts), and a new one is made and waited
 * ready before the second Ping and the one without a reply. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <systemd/sd-bus.h>
#include <time.h>

static int owner_done;
static char owner[256];

static int on_owner(sd_bus_message* m, void* userdata, sd_bus_error* error) {
  (void)userdata;
  (void)error;
  const char* unique = NULL;
  if (!sd_bus_message_is_method_error(m, NULL) && sd_bus_message_read(m, "s", &unique) > 0)
    snprintf(owner, sizeof owner, "%s", unique);
  owner_done = 1;
  return 0;
}

static int connect_bus(const char* address, sd_bus** ret) {
  sd_bus* bus = NULL;
  int r = sd_bus_new(&bus);
  if (r >= 0)
    r = sd_bus_set_address(bus, address);
  if (r >= 0)
    r = sd_bus_set_bus_client(bus, 1);
  if (r >= 0)
    r = sd_bus_start(bus);
  while (r >= 0 && sd_bus_is_ready(bus) <= 0) {
    r = sd_bus_process(bus, NULL);
    if (r == 0)
      r = sd_bus_wait(bus, 5000000);
  }
  *ret = bus;
  return r;
}

static int login(const char* address, int reconnect) {
  sd_bus* bus = NULL;
  int r = sd_bus_new(&bus);
  if (r >= 0)
    r = sd_bus_set_address(bus, address);
  if (r >= 0)
    r = sd_bus_set_bus_client(bus, 1);
  if (r >= 0)
    r = sd_bus_start(bus);
  owner_done = 0;
  owner[0] = '\0';
  if (r >= 0)
    r = sd_bus_call_method_async(bus, NULL, "org.freedesktop.DBus", "/org/freedesktop/DBus",
                                 "org.freedesktop.DBus", "GetNameOwner", on_owner, NULL, "s",
                                 "org.mfad1");
  while (r >= 0 && !owner_done) {
    r = sd_bus_process(bus, NULL);
    if (r == 0)
      r = sd_bus_wait(bus, 5000000);
  }
  if (r >= 0 && owner[0] != ':')
    r = -1;
  sd_bus_creds* creds = NULL;
  if (r >= 0)
    r = sd_bus_get_name_creds(bus, owner, SD_BUS_CREDS_EUID | SD_BUS_CREDS_UID, &creds);
  sd_bus_creds_unref(creds);
  for (int i = 0; r >= 0 && i < 2; i++) {
    if (i == 1 && reconnect) {
      sd_bus_flush_close_unref(bus);
      r = connect_bus(address, &bus);
      if (r < 0)
        break;
    }
    sd_bus_error error = SD_BUS_ERROR_NULL;
    r = sd_bus_call_method(bus, owner, "/org/mfad1", "org.freedesktop.DBus.Peer", "Ping", &error,
                           NULL, "");
    sd_bus_error_free(&error);
  }
  sd_bus_message* m = NULL;
  if (r >= 0)
    r = sd_bus_message_new_method_call(bus, &m, owner, "/org/mfad1", "org.freedesktop.DBus.Peer",
                                       "Ping");
  if (r >= 0)
    r = sd_bus_message_set_expect_reply(m, 0);
  if (r >= 0)
    r = sd_bus_send(bus, m, NULL);
  sd_bus_message_unref(m);
  sd_bus_flush_close_unref(bus);
  return r < 0 ? 1 : 0;
}

int main(int argc, char** argv) {
  if (argc != 3 && argc != 4) {
    fprintf(stderr, "usage: bus_floor ADDRESS N [reconnect]\n");
    return 2;
  }
  const int n = atoi(argv[2]);
  for (int i = 0; i < n; i++) {
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    int rc = login(argv[1], argc == 4);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    long usec = (t1.tv_sec - t0.tv_sec) * 1000000L + (t1.tv_nsec - t0.tv_nsec) / 1000L;
    printf("%d %ld\n", rc, usec);
  }
  return 0;
}

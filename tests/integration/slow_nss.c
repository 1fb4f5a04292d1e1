/* A directory-backed host's NSS for test_daemon_floods.py, preloaded into mfad: every passwd and
 * group lookup takes MFA_TEST_NSS_DELAY_US microseconds (a round trip to LDAP, say) before the
 * local answer. mfad's own lookups are then as slow as they are on such hosts, while the test
 * changes nothing system-wide. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <grp.h>
#include <pwd.h>
#include <stdlib.h>
#include <time.h>

static void directory_round_trip(void) {
  const char* s = getenv("MFA_TEST_NSS_DELAY_US");
  long us = s ? atol(s) : 0;
  if (us <= 0)
    return;
  struct timespec ts = {us / 1000000, (us % 1000000) * 1000};
  while (nanosleep(&ts, &ts) != 0) {
  }
}

int getpwnam_r(const char* name, struct passwd* pw, char* buf, size_t size,
               struct passwd** result) {
  static int (*real)(const char*, struct passwd*, char*, size_t, struct passwd**);
  if (!real)
    *(void**)&real = dlsym(RTLD_NEXT, "getpwnam_r");
  directory_round_trip();
  return real(name, pw, buf, size, result);
}

int getpwuid_r(uid_t uid, struct passwd* pw, char* buf, size_t size, struct passwd** result) {
  static int (*real)(uid_t, struct passwd*, char*, size_t, struct passwd**);
  if (!real)
    *(void**)&real = dlsym(RTLD_NEXT, "getpwuid_r");
  directory_round_trip();
  return real(uid, pw, buf, size, result);
}

int getgrnam_r(const char* name, struct group* gr, char* buf, size_t size, struct group** result) {
  static int (*real)(const char*, struct group*, char*, size_t, struct group**);
  if (!real)
    *(void**)&real = dlsym(RTLD_NEXT, "getgrnam_r");
  directory_round_trip();
  return real(name, gr, buf, size, result);
}

int getgrouplist(const char* user, gid_t group, gid_t* groups, int* ngroups) {
  static int (*real)(const char*, gid_t, gid_t*, int*);
  if (!real)
    *(void**)&real = dlsym(RTLD_NEXT, "getgrouplist");
  directory_round_trip();
  return real(user, group, groups, ngroups);
}

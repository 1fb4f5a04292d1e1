/* A PAM application that runs out of memory on purpose: it replaces malloc and its siblings for
 * the whole process (the module, libpam, libsystemd and libc all allocate through them) and runs
 * the same login again and again, making allocations fail from the Nth on, for every N that the
 * login makes. pam_mfa.so must never abort the host and never return PAM_SUCCESS once an
 * allocation failed (docs/pam_mfa.md "Return codes": out of memory is PAM_BUF_ERR).
 *
 *   pam_oom_driver [--once] [--session] SERVICE USER ANSWER...
 *
 * Each login is pam_authenticate (and, with --session, pam_open_session and pam_close_session),
 * the answers given to the prompts in order. The first login fails nothing: it must succeed, and
 * it counts the allocations. --once: only the Nth allocation fails (the rest of the login may go
 * on), which checks that no single failure crashes anything. Load it under pam_wrapper.
 *
 * Prints one JSON object: {"allocations": T, "logins": K, "untouched": U, "results": {"rc":
 * count, ...}, "violations": [...]} (results: the last PAM result of each login in which an
 * allocation failed; untouched: the logins in which none did); exits 1 when there is a violation.
 * An abort or a crash ends the process, and the last "pam_oom_driver: N=..." line on stderr names
 * the allocation. */
#define _GNU_SOURCE
#include <errno.h>
#include <security/pam_appl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* glibc's own allocator under its exported internal names. */
extern void* __libc_malloc(size_t size);
extern void* __libc_calloc(size_t n, size_t size);
extern void* __libc_realloc(void* p, size_t size);
extern void* __libc_memalign(size_t alignment, size_t size);
extern void __libc_free(void* p);

static struct {
  int armed;
  int once;
  unsigned long count;   /* allocations since arming */
  unsigned long fail_at; /* the first allocation that fails (0: none) */
  unsigned long failed;  /* allocations refused since arming */
} g;

static int refuse(void) {
  if (!g.armed)
    return 0;
  ++g.count;
  if (g.fail_at == 0 || g.count < g.fail_at || (g.once && g.count != g.fail_at))
    return 0;
  ++g.failed;
  errno = ENOMEM;
  return 1;
}

void* malloc(size_t size) {
  return refuse() ? NULL : __libc_malloc(size);
}

void* calloc(size_t n, size_t size) {
  return refuse() ? NULL : __libc_calloc(n, size);
}

void* realloc(void* p, size_t size) {
  /* realloc(p, 0) frees: not an allocation that can fail. */
  if (p != NULL && size == 0)
    return __libc_realloc(p, size);
  return refuse() ? NULL : __libc_realloc(p, size);
}

void free(void* p) {
  __libc_free(p);
}

void* memalign(size_t alignment, size_t size) {
  return refuse() ? NULL : __libc_memalign(alignment, size);
}

void* aligned_alloc(size_t alignment, size_t size) {
  return memalign(alignment, size);
}

int posix_memalign(void** ret, size_t alignment, size_t size) {
  void* p = memalign(alignment, size);
  if (p == NULL)
    return ENOMEM;
  *ret = p;
  return 0;
}

void* valloc(size_t size) {
  return memalign(4096, size);
}

void* pvalloc(size_t size) {
  return memalign(4096, (size + 4095) & ~(size_t)4095);
}

struct answers {
  char** list;
  int count;
  int next;
};

static int conversation(int n, const struct pam_message** msg, struct pam_response** resp,
                        void* data) {
  struct answers* a = data;
  struct pam_response* r = calloc((size_t)n, sizeof *r);
  if (!r)
    return PAM_BUF_ERR;
  for (int i = 0; i < n; i++) {
    if (msg[i]->msg_style != PAM_PROMPT_ECHO_OFF && msg[i]->msg_style != PAM_PROMPT_ECHO_ON)
      continue;
    if (a->next >= a->count || (r[i].resp = strdup(a->list[a->next])) == NULL) {
      for (int j = 0; j < i; j++)
        free(r[j].resp);
      free(r);
      return a->next >= a->count ? PAM_CONV_ERR : PAM_BUF_ERR;
    }
    a->next++;
  }
  *resp = r;
  return PAM_SUCCESS;
}

enum { kAuthenticate, kOpenSession, kCloseSession, kPhases };
static const char* const kPhaseNames[kPhases] = {"authenticate", "open_session", "close_session"};

struct login {
  int phases;      /* how many of the phases ran */
  int rc[kPhases]; /* their results */
  int failed_in;   /* the first phase in which an allocation failed, or -1 */
};

/* One login with allocation fail_at (0: none) failing, and with --once only that one. */
static struct login run_login(const char* service, const char* user, char** list, int count,
                              int with_session, unsigned long fail_at) {
  struct login out = {0, {0}, -1};
  struct answers a = {list, count, 0};
  struct pam_conv conv = {conversation, &a};
  pam_handle_t* pamh = NULL;
  int rc = pam_start(service, user, &conv, &pamh);
  if (rc != PAM_SUCCESS) {
    fprintf(stderr, "pam_oom_driver: pam_start: %d\n", rc);
    exit(2);
  }
  (void)pam_set_item(pamh, PAM_RHOST, "192.0.2.7");
  (void)pam_set_item(pamh, PAM_TTY, "pts/3");
  g.count = 0;
  g.failed = 0;
  g.fail_at = fail_at;
  g.armed = 1;
  int last = with_session ? kCloseSession : kAuthenticate;
  for (int phase = kAuthenticate; phase <= last; phase++) {
    if (phase == kAuthenticate)
      rc = pam_authenticate(pamh, 0);
    else if (phase == kOpenSession)
      rc = pam_open_session(pamh, 0);
    else
      rc = pam_close_session(pamh, 0);
    out.rc[phase] = rc;
    out.phases = phase + 1;
    if (g.failed && out.failed_in < 0)
      out.failed_in = phase;
    if (rc != PAM_SUCCESS)
      break;
  }
  g.armed = 0;
  pam_end(pamh, rc);
  return out;
}

#define MAX_RC 64

int main(int argc, char** argv) {
  int once = 0;
  int with_session = 0;
  int i = 1;
  for (; i < argc && strncmp(argv[i], "--", 2) == 0; i++) {
    if (strcmp(argv[i], "--once") == 0)
      once = 1;
    else if (strcmp(argv[i], "--session") == 0)
      with_session = 1;
    else
      break;
  }
  if (argc - i < 2) {
    fprintf(stderr, "usage: pam_oom_driver [--once] [--session] SERVICE USER ANSWER...\n");
    return 2;
  }
  const char* service = argv[i];
  const char* user = argv[i + 1];
  char** list = argv + i + 2;
  int count = argc - i - 2;
  /* stdio's buffers are allocated now, not while allocations fail. */
  setvbuf(stdout, NULL, _IOLBF, 0);
  setvbuf(stderr, NULL, _IONBF, 0);
  printf("%s", "");

  struct login calibration = run_login(service, user, list, count, with_session, 0);
  unsigned long total = g.count;
  for (int p = 0; p < calibration.phases; p++) {
    if (calibration.rc[p] != PAM_SUCCESS) {
      fprintf(stderr, "pam_oom_driver: the login without failures: %s returned %d\n",
              kPhaseNames[p], calibration.rc[p]);
      return 2;
    }
  }

  g.once = once;
  unsigned long results[MAX_RC] = {0};
  unsigned long violations = 0;
  unsigned long untouched = 0;
  printf("{\"allocations\": %lu, \"violations\": [", total);
  for (unsigned long n = 1; n <= total; n++) {
    fprintf(stderr, "pam_oom_driver: N=%lu\n", n);
    struct login l = run_login(service, user, list, count, with_session, n);
    if (l.failed_in < 0) {
      /* This login made fewer allocations than the first (sd-bus reads what has arrived). */
      untouched++;
      continue;
    }
    int rc = l.rc[l.phases - 1];
    results[rc >= 0 && rc < MAX_RC ? rc : MAX_RC - 1]++;
    /* Failing from the Nth allocation on: the phase that saw the first failure, and every later
     * one, fails. --once: a later allocation may succeed again, so success stays possible. */
    if (!once && l.rc[l.failed_in] == PAM_SUCCESS) {
      printf("%s{\"n\": %lu, \"phase\": \"%s\"}", violations ? ", " : "", n,
             kPhaseNames[l.failed_in]);
      violations++;
    }
  }
  printf("], \"logins\": %lu, \"untouched\": %lu, \"results\": {", total + 1, untouched);
  int first = 1;
  for (int rc = 0; rc < MAX_RC; rc++) {
    if (results[rc]) {
      printf("%s\"%d\": %lu", first ? "" : ", ", rc, results[rc]);
      first = 0;
    }
  }
  printf("}}\n");
  return violations ? 1 : 0;
}

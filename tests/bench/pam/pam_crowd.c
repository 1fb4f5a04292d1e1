/* Many logins at the code prompt at once: one process per login, as sshd forks a child per
 * connection, each running pam_start_confdir(SERVICE, USER, CONFDIR) + pam_authenticate with the
 * real libpam. Driven over stdin/stdout by bench_crowd.py:
 *
 *   stdin   "USER CODE" lines, then "." : the logins, one process each, started at once
 *   stdout  "prompt N EARLY SECONDS"    : N processes show the prompt, EARLY ended before it
 *                                         (when every process has done one or the other, or at
 *                                         the prompt timeout)
 *   stdin   "go"                        : every waiting process answers its code at once
 *   stdout  "result RC PROMPTED MSGS USEC" per process; USEC from "go" to the end of
 *           pam_authenticate (-1 for one that never prompted); MSGS the error messages PAM showed,
 *           "busy" when one of them said the service was busy
 *           "clients_cpu_ms N": the CPU the processes used from their answer to their exit
 *           "done"
 * The modules' syslog lines go to stderr as well.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <security/pam_appl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

#define MAX_LOGINS 20000

struct login {
  char user[64];
  char code[16];
};

static struct login logins[MAX_LOGINS];
static int go_fd = -1;     /* read end: EOF is the signal to answer */
static int prompt_fd = -1; /* write end: one byte per process at its prompt */
static int busy_seen;
static int messages;
static const char* my_code;
static long long cpu_at_go = -1; /* this process's CPU time when it answered, usec */

static long long cpu_usec(void) {
  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  return (long long)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1000000LL + ru.ru_utime.tv_usec +
         ru.ru_stime.tv_usec;
}

static long long now_usec(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (long long)ts.tv_sec * 1000000LL + ts.tv_nsec / 1000;
}

static int converse(int n, const struct pam_message** msg, struct pam_response** resp, void* data) {
  (void)data;
  struct pam_response* r = calloc((size_t)n, sizeof *r);
  if (!r)
    return PAM_BUF_ERR;
  for (int i = 0; i < n; i++) {
    if (msg[i]->msg_style == PAM_PROMPT_ECHO_OFF || msg[i]->msg_style == PAM_PROMPT_ECHO_ON) {
      if (prompt_fd >= 0) {
        /* At the prompt: say so, then wait for everyone's answer time. */
        char c = 'P';
        (void)!write(prompt_fd, &c, 1);
        close(prompt_fd);
        prompt_fd = -1;
        char buf[1];
        while (read(go_fd, buf, 1) < 0 && errno == EINTR) {
        }
        cpu_at_go = cpu_usec();
      }
      r[i].resp = strdup(my_code);
    } else if (msg[i]->msg_style == PAM_ERROR_MSG) {
      messages++;
      if (msg[i]->msg && strstr(msg[i]->msg, "busy"))
        busy_seen = 1;
    }
  }
  *resp = r;
  return PAM_SUCCESS;
}

int main(int argc, char** argv) {
  if (argc != 3) {
    fprintf(stderr, "usage: pam_crowd CONFDIR SERVICE\n");
    return 2;
  }
  setvbuf(stdout, NULL, _IOLBF, 0);
  int n = 0;
  char line[256];
  while (fgets(line, sizeof line, stdin) && strcmp(line, ".\n") != 0) {
    if (n < MAX_LOGINS && sscanf(line, "%63s %15s", logins[n].user, logins[n].code) == 2)
      n++;
  }
  int go[2], prompts[2], results[2];
  if (pipe2(go, O_CLOEXEC) < 0 || pipe2(prompts, O_CLOEXEC) < 0 || pipe2(results, O_CLOEXEC) < 0)
    return 1;
  signal(SIGPIPE, SIG_IGN);
  const long long t_start = now_usec();
  for (int i = 0; i < n; i++) {
    pid_t pid = fork();
    if (pid < 0) {
      perror("fork");
      n = i;
      break;
    }
    if (pid == 0) {
      close(go[1]);
      close(prompts[0]);
      close(results[0]);
      go_fd = go[0];
      prompt_fd = prompts[1];
      my_code = logins[i].code;
      /* The modules' pam_syslog lines on stderr too (a test host may have no syslog). */
      openlog("pam_crowd", LOG_PERROR | LOG_PID, LOG_AUTHPRIV);
      struct pam_conv conv = {converse, NULL};
      pam_handle_t* pamh = NULL;
      int rc = pam_start_confdir(argv[2], logins[i].user, &conv, argv[1], &pamh);
      if (rc == PAM_SUCCESS) {
        rc = pam_authenticate(pamh, 0);
        pam_end(pamh, rc);
      }
      const long long t_end = now_usec();
      const int prompted = prompt_fd < 0;
      const long long cpu = cpu_at_go >= 0 ? cpu_usec() - cpu_at_go : 0;
      char out[128];
      int len = snprintf(out, sizeof out, "%d %d %d %d %lld %lld\n", i, rc, prompted,
                         busy_seen ? -1 : messages, prompted ? t_end : -1LL, cpu);
      (void)!write(results[1], out, (size_t)len);
      _exit(0);
    }
  }
  close(go[0]);
  close(prompts[1]);
  close(results[1]);

  /* Until every process is at its prompt or done. */
  int at_prompt = 0, early = 0;
  static char rbuf[1 << 16];
  size_t rlen = 0;
  static long long end_usec[MAX_LOGINS];
  static int rcs[MAX_LOGINS], prompted_flags[MAX_LOGINS], msgs[MAX_LOGINS], got[MAX_LOGINS];
  int results_in = 0;
  long long answer_cpu_usec = 0;
  const int prompt_timeout_ms = atoi(getenv("CROWD_PROMPT_TIMEOUT_MS") ?: "300000");

  /* Reads the lines available on the results pipe; returns -1 at EOF. */
#define READ_RESULTS()                                                                          \
  do {                                                                                          \
    ssize_t k = read(results[0], rbuf + rlen, sizeof rbuf - rlen - 1);                          \
    if (k <= 0) {                                                                               \
      results_eof = k == 0;                                                                     \
      break;                                                                                    \
    }                                                                                           \
    rlen += (size_t)k;                                                                          \
    char* p = rbuf;                                                                             \
    char* nl;                                                                                   \
    while ((nl = memchr(p, '\n', rlen - (size_t)(p - rbuf))) != NULL) {                         \
      *nl = '\0';                                                                               \
      int idx, rc, pr, ms;                                                                      \
      long long t;                                                                              \
      long long cpu = 0;                                                                        \
      if (sscanf(p, "%d %d %d %d %lld %lld", &idx, &rc, &pr, &ms, &t, &cpu) == 6 && idx >= 0 && \
          idx < n && !got[idx]) {                                                               \
        got[idx] = 1;                                                                           \
        rcs[idx] = rc;                                                                          \
        prompted_flags[idx] = pr;                                                               \
        msgs[idx] = ms;                                                                         \
        end_usec[idx] = t;                                                                      \
        answer_cpu_usec += cpu;                                                                 \
        results_in++;                                                                           \
        if (!pr)                                                                                \
          early++;                                                                              \
      }                                                                                         \
      p = nl + 1;                                                                               \
    }                                                                                           \
    rlen -= (size_t)(p - rbuf);                                                                 \
    memmove(rbuf, p, rlen);                                                                     \
  } while (0)

  int results_eof = 0;
  const long long prompt_deadline = now_usec() + (long long)prompt_timeout_ms * 1000;
  int prompts_open = 1;
  while (at_prompt + early < n && now_usec() < prompt_deadline) {
    struct pollfd fds[2] = {{prompts_open ? prompts[0] : -1, POLLIN, 0}, {results[0], POLLIN, 0}};
    int timeout = (int)((prompt_deadline - now_usec()) / 1000) + 1;
    if (poll(fds, 2, timeout) < 0 && errno != EINTR)
      break;
    if (prompts_open && (fds[0].revents & (POLLIN | POLLHUP))) {
      char buf[4096];
      ssize_t k = read(prompts[0], buf, sizeof buf);
      if (k > 0)
        at_prompt += (int)k;
      else if (k == 0)
        prompts_open = 0;
    }
    if (fds[1].revents & (POLLIN | POLLHUP))
      READ_RESULTS();
  }
  printf("prompt %d %d %.3f\n", at_prompt, early, (now_usec() - t_start) / 1e6);

  if (!fgets(line, sizeof line, stdin))
    line[0] = '\0';
  const long long t_go = now_usec();
  close(go[1]);
  while (results_in < n && !results_eof)
    READ_RESULTS();
  for (int i = 0; i < n; i++) {
    if (!got[i]) {
      printf("result -1 0 - -1\n");
      continue;
    }
    const char* m = msgs[i] < 0 ? "busy" : msgs[i] > 0 ? "msg" : "-";
    printf("result %d %d %s %lld\n", rcs[i], prompted_flags[i], m,
           prompted_flags[i] ? end_usec[i] - t_go : -1LL);
  }
  while (wait(NULL) > 0 || errno == EINTR) {
  }
  printf("clients_cpu_ms %lld\n", answer_cpu_usec / 1000);
  printf("done\n");
  return 0;
}

/* A long-running PAM application for the session tests: the session leader.
 *
 *   pam_session_client [-I rhost=H] [-I tty=T] [-I ruser=U] [-E VAR=value] [--authenticate]
 *                      SERVICE USER
 *
 * pam_start; optionally pam_authenticate (answers from stdin, one line each); pam_open_session;
 * prints one JSON line {"auth": rc, "open": rc, "session_id": "...", "pid": N}; then, when the
 * session is open, waits. SIGTERM or SIGINT: pam_close_session, prints {"close": rc} and exits 0.
 * SIGHUP and SIGKILL (mfad ending the session) kill it as they would a login. */
#define _GNU_SOURCE
#include <security/pam_appl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "pam_answer_line.h"

static int conversation(int n, const struct pam_message** msg, struct pam_response** resp,
                        void* data) {
  (void)data;
  struct pam_response* r = calloc((size_t)n, sizeof *r);
  if (!r)
    return PAM_BUF_ERR;
  for (int i = 0; i < n; i++) {
    if (msg[i]->msg_style == PAM_PROMPT_ECHO_OFF || msg[i]->msg_style == PAM_PROMPT_ECHO_ON) {
      r[i].resp = read_answer_line();
      if (!r[i].resp) {
        free_responses(r, i);
        return PAM_CONV_ERR;
      }
    } else {
      fprintf(stderr, "pam_session_client: message: %s\n", msg[i]->msg ? msg[i]->msg : "");
    }
  }
  *resp = r;
  return PAM_SUCCESS;
}

static void json_string(const char* s) {
  putchar('"');
  for (; s && *s; s++) {
    if (*s == '"' || *s == '\\')
      putchar('\\');
    if ((unsigned char)*s >= 0x20)
      putchar(*s);
  }
  putchar('"');
}

int main(int argc, char** argv) {
  const char* items[3][2] = {{0, 0}, {0, 0}, {0, 0}};
  const char* envs[8];
  int nenv = 0;
  int authenticate = 0;
  int i = 1;
  for (; i < argc; i++) {
    if (strcmp(argv[i], "-I") == 0 && i + 1 < argc) {
      const char* kv = argv[++i];
      if (strncmp(kv, "rhost=", 6) == 0)
        items[0][1] = kv + 6;
      else if (strncmp(kv, "tty=", 4) == 0)
        items[1][1] = kv + 4;
      else if (strncmp(kv, "ruser=", 6) == 0)
        items[2][1] = kv + 6;
    } else if (strcmp(argv[i], "-E") == 0 && i + 1 < argc && nenv < 8) {
      envs[nenv++] = argv[++i];
    } else if (strcmp(argv[i], "--authenticate") == 0) {
      authenticate = 1;
    } else {
      break;
    }
  }
  if (argc - i != 2) {
    fprintf(stderr, "usage: pam_session_client [-I k=v] [-E V=v] [--authenticate] SERVICE USER\n");
    return 2;
  }
  /* Block the signals we wait for before anything can send them. */
  sigset_t mask;
  sigemptyset(&mask);
  sigaddset(&mask, SIGTERM);
  sigaddset(&mask, SIGINT);
  sigprocmask(SIG_BLOCK, &mask, NULL);

  struct pam_conv conv = {conversation, NULL};
  pam_handle_t* pamh = NULL;
  int rc = pam_start(argv[i], argv[i + 1], &conv, &pamh);
  if (rc != PAM_SUCCESS) {
    printf("{\"start\": %d}\n", rc);
    return 1;
  }
  int item_ids[3] = {PAM_RHOST, PAM_TTY, PAM_RUSER};
  for (int k = 0; k < 3; k++) {
    if (items[k][1])
      pam_set_item(pamh, item_ids[k], items[k][1]);
  }
  for (int k = 0; k < nenv; k++)
    pam_putenv(pamh, envs[k]);
  int auth = -1;
  if (authenticate)
    auth = pam_authenticate(pamh, 0);
  int open = -1;
  if (!authenticate || auth == PAM_SUCCESS)
    open = pam_open_session(pamh, 0);
  const char* id = pam_getenv(pamh, "MFA_SESSION_ID");
  printf("{\"auth\": %d, \"open\": %d, \"pid\": %d, \"session_id\": ", auth, open, (int)getpid());
  json_string(id ? id : "");
  printf("}\n");
  fflush(stdout);
  if (open != PAM_SUCCESS) {
    pam_end(pamh, open);
    return 0;
  }
  int sig = 0;
  sigwait(&mask, &sig);
  int closed = pam_close_session(pamh, 0);
  printf("{\"close\": %d}\n", closed);
  fflush(stdout);
  pam_end(pamh, closed);
  return 0;
}

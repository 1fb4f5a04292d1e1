/* A PAM application for the integration tests and the benchmark: runs pam_authenticate for
 * SERVICE and USER (load it under pam_wrapper to pick the service directory) and prints one JSON
 * object: the exact return code and every message the user would have seen.
 *
 *   pam_driver [-I rhost=H] [-I tty=T] [-I ruser=U] [--authtok X] [--repeat N] SERVICE USER
 *
 * Applications cannot touch PAM_AUTHTOK: --authtok exports PAM_AUTHTOK for pam_wrapper's
 * pam_set_items.so to set in the stack, and an "authtok" event reports what pam_get_items.so
 * exported after the stack ran.
 *
 * Answers to prompts are read from stdin, one line each; at end of input the conversation fails
 * (PAM_CONV_ERR), which is how the tests provoke a conversation failure. */
#include <security/pam_appl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "pam_answer_line.h"

#define MAX_EVENTS 160

struct events {
  int count;
  char kind[MAX_EVENTS][8];
  char text[MAX_EVENTS][512];
};

static void add_event(struct events* ev, const char* kind, const char* text) {
  if (ev->count >= MAX_EVENTS)
    return;
  snprintf(ev->kind[ev->count], sizeof ev->kind[0], "%s", kind);
  snprintf(ev->text[ev->count], sizeof ev->text[0], "%s", text ? text : "");
  ev->count++;
}

static int conversation(int n, const struct pam_message** msg, struct pam_response** resp,
                        void* data) {
  struct events* ev = data;
  struct pam_response* r = calloc((size_t)n, sizeof *r);
  if (!r)
    return PAM_BUF_ERR;
  for (int i = 0; i < n; i++) {
    switch (msg[i]->msg_style) {
      case PAM_PROMPT_ECHO_OFF:
      case PAM_PROMPT_ECHO_ON: {
        add_event(ev, "prompt", msg[i]->msg);
        /* Tests that act mid-dialogue (kill or freeze the daemon) wait for this line. */
        fprintf(stderr, "pam_driver: prompt\n");
        fflush(stderr);
        r[i].resp = read_answer_line();
        if (!r[i].resp) {
          free_responses(r, i);
          add_event(ev, "eof", "");
          return PAM_CONV_ERR;
        }
        break;
      }
      case PAM_ERROR_MSG:
        add_event(ev, "error", msg[i]->msg);
        break;
      case PAM_TEXT_INFO:
        /* PAM_DRIVER_NO_INFO=1: an application that cannot show info messages. */
        if (getenv("PAM_DRIVER_NO_INFO")) {
          add_event(ev, "noinfo", msg[i]->msg);
          for (int j = 0; j < i; j++)
            free(r[j].resp);
          free(r);
          return PAM_CONV_ERR;
        }
        add_event(ev, "info", msg[i]->msg);
        /* Tests that answer from what was shown (a login enrollment's secret) read it here. */
        if (getenv("PAM_DRIVER_ECHO_INFO")) {
          fprintf(stderr, "pam_driver: info %s\n", msg[i]->msg);
          fflush(stderr);
        }
        break;
      default:
        for (int j = 0; j < i; j++)
          free(r[j].resp);
        free(r);
        return PAM_CONV_ERR;
    }
  }
  *resp = r;
  return PAM_SUCCESS;
}

static void json_string(const char* s) {
  putchar('"');
  for (; *s; s++) {
    unsigned char c = (unsigned char)*s;
    if (c == '"' || c == '\\')
      printf("\\%c", c);
    else if (c < 0x20)
      printf("\\u%04x", c);
    else
      putchar(c);
  }
  putchar('"');
}

int main(int argc, char** argv) {
  const char* items[3] = {NULL, NULL, NULL}; /* rhost, tty, ruser */
  const char* authtok = NULL;
  int repeat = 1;
  int i = 1;
  for (; i < argc; i++) {
    if (strcmp(argv[i], "-I") == 0 && i + 1 < argc) {
      const char* kv = argv[++i];
      if (strncmp(kv, "rhost=", 6) == 0)
        items[0] = kv + 6;
      else if (strncmp(kv, "tty=", 4) == 0)
        items[1] = kv + 4;
      else if (strncmp(kv, "ruser=", 6) == 0)
        items[2] = kv + 6;
      else
        return 2;
    } else if (strcmp(argv[i], "--authtok") == 0 && i + 1 < argc) {
      authtok = argv[++i];
    } else if (strcmp(argv[i], "--repeat") == 0 && i + 1 < argc) {
      repeat = atoi(argv[++i]);
    } else {
      break;
    }
  }
  if (argc - i != 2 || repeat < 1) {
    fprintf(stderr, "usage: pam_driver [-I item=value] [--authtok X] [--repeat N] SERVICE USER\n");
    return 2;
  }
  if (authtok)
    setenv("PAM_AUTHTOK", authtok, 1);
  const char* service = argv[i];
  const char* user = argv[i + 1];

  int rc = PAM_SYSTEM_ERR;
  struct events ev;
  struct timespec t0, t1;
  clock_gettime(CLOCK_MONOTONIC, &t0);
  for (int k = 0; k < repeat; k++) {
    memset(&ev, 0, sizeof ev);
    struct pam_conv conv = {conversation, &ev};
    pam_handle_t* pamh = NULL;
    rc = pam_start(service, user, &conv, &pamh);
    if (rc != PAM_SUCCESS)
      break;
    if (items[0])
      pam_set_item(pamh, PAM_RHOST, items[0]);
    if (items[1])
      pam_set_item(pamh, PAM_TTY, items[1]);
    if (items[2])
      pam_set_item(pamh, PAM_RUSER, items[2]);
    rc = pam_authenticate(pamh, 0);
    const char* tok = pam_getenv(pamh, "PAM_AUTHTOK");
    if (tok)
      add_event(&ev, "authtok", tok);
    pam_end(pamh, rc);
  }
  clock_gettime(CLOCK_MONOTONIC, &t1);
  double elapsed = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;

  printf("{\"rc\": %d, \"elapsed\": %.6f, \"events\": [", rc, elapsed);
  for (int k = 0; k < ev.count; k++) {
    printf("%s[", k ? ", " : "");
    json_string(ev.kind[k]);
    printf(", ");
    json_string(ev.text[k]);
    printf("]");
  }
  printf("]}\n");
  return 0;
}

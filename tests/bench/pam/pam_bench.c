/* In-process PAM login latency: for every "USER CODE" line on stdin, times pam_start +
 * pam_authenticate + pam_end for SERVICE (answering every prompt with CODE) and prints
 * "RC MICROSECONDS". Reading the next line is outside the timed region. Load under pam_wrapper
 * to choose the service directory. */
#include <security/pam_appl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static int answer_all(int n, const struct pam_message** msg, struct pam_response** resp,
                      void* data) {
  struct pam_response* r = calloc((size_t)n, sizeof *r);
  if (!r)
    return PAM_BUF_ERR;
  for (int i = 0; i < n; i++) {
    if (msg[i]->msg_style == PAM_PROMPT_ECHO_OFF || msg[i]->msg_style == PAM_PROMPT_ECHO_ON)
      r[i].resp = strdup((const char*)data);
  }
  *resp = r;
  return PAM_SUCCESS;
}

int main(int argc, char** argv) {
  if (argc != 2) {
    fprintf(stderr, "usage: pam_bench SERVICE < 'USER CODE' lines\n");
    return 2;
  }
  char user[256], code[256];
  while (scanf("%255s %255s", user, code) == 2) {
    struct pam_conv conv = {answer_all, code};
    pam_handle_t* pamh = NULL;
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    int rc = pam_start(argv[1], user, &conv, &pamh);
    if (rc == PAM_SUCCESS) {
      rc = pam_authenticate(pamh, 0);
      pam_end(pamh, rc);
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    long usec = (t1.tv_sec - t0.tv_sec) * 1000000L + (t1.tv_nsec - t0.tv_nsec) / 1000L;
    printf("%d %ld\n", rc, usec);
    fflush(stdout);
  }
  return 0;
}

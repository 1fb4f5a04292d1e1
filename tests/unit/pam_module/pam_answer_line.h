/* What the PAM test hosts (pam_driver, pam_session_client) share in their conversation functions:
 * a prompt is answered with the next line of stdin, and a conversation that runs out of answers
 * fails with PAM_CONV_ERR and hands back no responses. Included by .c files compiled alone
 * (tests/integration compiles them on the fly), hence static functions. */
#pragma once

#include <security/pam_appl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/types.h>

/* The next line of stdin without its newline (the caller frees it), or NULL at end of input. */
static char* read_answer_line(void) {
  char* line = NULL;
  size_t cap = 0;
  ssize_t len = getline(&line, &cap, stdin);
  if (len < 0) {
    free(line);
    return NULL;
  }
  if (len > 0 && line[len - 1] == '\n')
    line[len - 1] = '\0';
  return line;
}

/* Frees the first N responses and the array: what a failed conversation does with its answers. */
static void free_responses(struct pam_response* r, int n) {
  for (int j = 0; j < n; j++)
    free(r[j].resp);
  free(r);
}

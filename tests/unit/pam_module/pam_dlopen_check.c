/* pam_mfa.so loads with every symbol resolved (RTLD_NOW), as a PAM host loads it, and offers the
 * entry points the host looks up; the account and password hooks are deliberately absent. */
#include <dlfcn.h>
#include <stdio.h>

int main(int argc, char** argv) {
  if (argc != 2)
    return 2;
  void* handle = dlopen(argv[1], RTLD_NOW | RTLD_LOCAL);
  if (!handle) {
    fprintf(stderr, "dlopen: %s\n", dlerror());
    return 1;
  }
  const char* wanted[] = {"pam_sm_authenticate", "pam_sm_setcred", "pam_sm_open_session",
                          "pam_sm_close_session"};
  const char* absent[] = {"pam_sm_acct_mgmt", "pam_sm_chauthtok"};
  int failed = 0;
  for (size_t i = 0; i < sizeof wanted / sizeof wanted[0]; i++) {
    if (!dlsym(handle, wanted[i])) {
      fprintf(stderr, "missing %s\n", wanted[i]);
      failed = 1;
    }
  }
  for (size_t i = 0; i < sizeof absent / sizeof absent[0]; i++) {
    if (dlsym(handle, absent[i])) {
      fprintf(stderr, "unexpected %s\n", absent[i]);
      failed = 1;
    }
  }
  dlclose(handle);
  return failed;
}

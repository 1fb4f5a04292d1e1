// pam_mfa.so's entry points: a thin, synchronous sd-bus client of mfad (docs/architecture.md,
// docs/pam_mfa.md) that holds no secret beyond the answer being sent and leaves every decision to
// the daemon. Each hook parses its arguments, checks the user, and hands over to the dialogue
// (dialogue.hpp) or the session hook (session_hook.hpp); what they return goes through
// HookContext::finish, which makes any allocation failure PAM_BUF_ERR (hook_context.hpp).
#include <security/pam_ext.h>
#include <security/pam_modules.h>
#include <string.h>
#include <syslog.h>

#include "common/dbus_names.hpp"
#include "pam_module/dialogue.hpp"
#include "pam_module/hook_context.hpp"
#include "common/pam_args.hpp"
#include "pam_module/session_hook.hpp"

namespace mfa::pam {
namespace {

// PAM_SUCCESS with *ret_args set, or PAM_SERVICE_ERR after logging why.
int parse_arguments(pam_handle_t* pamh, int argc, const char** argv, PamArgs* ret_args) {
  PamArgsError error;
  if (!parse_pam_args(argc, argv, ret_args, &error)) {
    pam_syslog(pamh, LOG_ERR, "invalid module argument %.*s: %s",
               static_cast<int>(error.argument.size()), error.argument.data(), error.reason);
    return PAM_SERVICE_ERR;
  }
  return PAM_SUCCESS;
}

bool valid_user_name(const char* user) {
  return user != nullptr && user[0] != '\0' &&
         strnlen(user, dbus::kMaxUserNameLength + 1) <= dbus::kMaxUserNameLength;
}

int authenticate(pam_handle_t* pamh, int flags, int argc, const char** argv) {
  PamArgs args;
  int r = parse_arguments(pamh, argc, argv, &args);
  if (r != PAM_SUCCESS)
    return r;
  for (size_t i = 0; i < args.unknown_count; ++i) {
    pam_syslog(pamh, LOG_WARNING, "unknown module argument ignored: %.*s",
               static_cast<int>(args.unknown[i].size()), args.unknown[i].data());
  }

  const char* user = nullptr;
  r = pam_get_user(pamh, &user, nullptr);
  if (r == PAM_CONV_ERR || r == PAM_CONV_AGAIN)
    return PAM_CONV_ERR;
  if (r == PAM_BUF_ERR || r == PAM_SYSTEM_ERR)
    return r;
  if (r != PAM_SUCCESS || !valid_user_name(user))
    return PAM_USER_UNKNOWN;

  HookContext hook(pamh, flags, args);
  return hook.finish(authenticate_user(hook, user));
}

// The session hooks take the user PAM already has; they never ask for one.
int run_session_hook(pam_handle_t* pamh, int flags, int argc, const char** argv, bool open) {
  PamArgs args;
  int r = parse_arguments(pamh, argc, argv, &args);
  if (r != PAM_SUCCESS)
    return r;
  const void* user = nullptr;
  r = pam_get_item(pamh, PAM_USER, &user);
  if (r != PAM_SUCCESS || !valid_user_name(static_cast<const char*>(user)))
    return PAM_SESSION_ERR;
  HookContext hook(pamh, flags, args);
  return hook.finish(open ? open_session(hook, static_cast<const char*>(user))
                          : close_session(hook));
}

}  // namespace
}  // namespace mfa::pam

// The only symbols exported (pam_mfa.map). The module is built without exceptions, so none can
// cross into the C host; running out of memory is PAM_BUF_ERR (hook_context.hpp).
extern "C" {

PAM_EXTERN __attribute__((visibility("default"))) int pam_sm_authenticate(pam_handle_t* pamh,
                                                                          int flags, int argc,
                                                                          const char** argv) {
  return mfa::pam::authenticate(pamh, flags, argc, argv);
}

PAM_EXTERN __attribute__((visibility("default"))) int pam_sm_setcred(pam_handle_t*, int, int,
                                                                     const char**) {
  return PAM_SUCCESS;
}

// Session registration (docs/sessions.md): the same failure rules as authentication.
PAM_EXTERN __attribute__((visibility("default"))) int pam_sm_open_session(pam_handle_t* pamh,
                                                                          int flags, int argc,
                                                                          const char** argv) {
  return mfa::pam::run_session_hook(pamh, flags, argc, argv, true);
}

PAM_EXTERN __attribute__((visibility("default"))) int pam_sm_close_session(pam_handle_t* pamh,
                                                                           int flags, int argc,
                                                                           const char** argv) {
  return mfa::pam::run_session_hook(pamh, flags, argc, argv, false);
}

}  // extern "C"

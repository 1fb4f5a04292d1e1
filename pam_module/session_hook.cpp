#include "pam_module/session_hook.hpp"

#include <security/pam_ext.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <unistd.h>

#include "common/dbus_names.hpp"
#include "pam_module/bus_client.hpp"

namespace mfa::pam {
namespace {

constexpr char kFactorData[] = "pam_mfa_factor";
constexpr char kSessionData[] = "pam_mfa_session_id";
constexpr char kSessionEnv[] = "MFA_SESSION_ID";
constexpr size_t kMaxSessionId = 128;
// pam_systemd's XDG_SESSION_ID is sent when it is no longer than this.
constexpr size_t kMaxLogindSessionId = 64;

void free_data(pam_handle_t* /*pamh*/, void* data, int /*error_status*/) {
  free(data);
}

// A copy of value kept as PAM data under name; PAM_SUCCESS or PAM_BUF_ERR.
int keep_data(HookContext& hook, const char* name, const char* value) {
  char* copy = strdup(value);
  if (copy == nullptr)
    return hook.out_of_memory();
  int r = hook.checked(pam_set_data(hook.pamh(), name, copy, free_data));
  if (r != PAM_SUCCESS)
    free(copy);
  return r;
}

}  // namespace

void remember_factor(HookContext& hook, const char* method) {
  if (keep_data(hook, kFactorData, method) != PAM_SUCCESS)
    hook.debug("cannot remember the factor for the session");
}

int open_session(HookContext& hook, const char* user) {
  MfadClient client(hook);
  int r = client.open();
  if (r != PAM_SUCCESS)
    return r;

  BusContext context = login_context(hook);
  // pam_systemd, earlier in the stack, exports the logind session id.
  const char* logind = pam_getenv(hook.pamh(), "XDG_SESSION_ID");
  if (logind != nullptr && strnlen(logind, kMaxLogindSessionId + 1) <= kMaxLogindSessionId)
    context.add("logind_session", logind);
  char leader_pid[24];
  (void)snprintf(leader_pid, sizeof(leader_pid), "%ld", static_cast<long>(getpid()));
  context.add("leader_pid", leader_pid);
  const void* factor = nullptr;
  if (pam_get_data(hook.pamh(), kFactorData, &factor) == PAM_SUCCESS && factor != nullptr)
    context.add("factor", static_cast<const char*>(factor));

  CallResult res = client.call("OpenSession", false, user, nullptr, &context);
  if (res.status() == CallStatus::kOk) {
    const char* id = nullptr;
    r = res.read_string(&id);
    if (hook.failed_allocation(r))
      return PAM_BUF_ERR;
    if (r < 0 || id[0] == '\0' || strlen(id) > kMaxSessionId) {
      pam_syslog(hook.pamh(), LOG_ERR, "malformed OpenSession reply");
      return PAM_SESSION_ERR;
    }
    r = keep_data(hook, kSessionData, id);
    if (r != PAM_SUCCESS)
      return r;
    char env[sizeof(kSessionEnv) + 1 + kMaxSessionId];
    (void)snprintf(env, sizeof(env), "%s=%s", kSessionEnv, id);
    if (hook.checked(pam_putenv(hook.pamh(), env)) != PAM_SUCCESS)
      pam_syslog(hook.pamh(), LOG_WARNING, "cannot export %s", kSessionEnv);
    hook.debug("session %s registered for %s", id, user);
    return PAM_SUCCESS;
  }
  if (res.is(dbus::kErrorSessionLimit)) {
    hook.show(PAM_ERROR_MSG, res.message("Too many sessions; log out of another first").c_str());
    pam_syslog(hook.pamh(), LOG_NOTICE, "%s has too many sessions: denied", user);
    return PAM_PERM_DENIED;
  }
  if (res.is(dbus::kErrorNoSuchUser))
    return PAM_USER_UNKNOWN;
  if (res.is(dbus::kErrorInvalidArgument)) {
    pam_syslog(hook.pamh(), LOG_ERR, "mfad refused the session: %s", res.message().c_str());
    return PAM_SESSION_ERR;
  }
  return client.failure(res, "OpenSession");
}

int close_session(HookContext& hook) {
  const void* data = nullptr;
  const char* id = nullptr;
  if (pam_get_data(hook.pamh(), kSessionData, &data) == PAM_SUCCESS && data != nullptr)
    id = static_cast<const char*>(data);
  else
    id = pam_getenv(hook.pamh(), kSessionEnv);
  if (id == nullptr || id[0] == '\0' || strnlen(id, kMaxSessionId + 1) > kMaxSessionId) {
    hook.debug("no session was registered: nothing to close");
    return PAM_IGNORE;
  }
  MfadClient client(hook);
  int r = client.open();
  if (r != PAM_SUCCESS)
    return r;
  CallResult res = client.call("CloseSession", false, id, nullptr, nullptr);
  if (res.status() == CallStatus::kOk || res.is(dbus::kErrorNoSuchSession)) {
    // NoSuchSession: it was already ended (terminated, expired): nothing left to close.
    hook.debug("session %s closed", id);
    return PAM_SUCCESS;
  }
  return client.failure(res, "CloseSession");
}

}  // namespace mfa::pam

// pam_sm_open_session and pam_sm_close_session (docs/sessions.md): the session is
// registered with mfad, its id kept as PAM data and exported as MFA_SESSION_ID; closing ends it.
// The same failure rules as authentication.
#pragma once

#include "pam_module/hook_context.hpp"

namespace mfa::pam {

// For pam_sm_open_session in the same process: the factor this authentication used.
void remember_factor(HookContext& hook, const char* method);

int open_session(HookContext& hook, const char* user);
int close_session(HookContext& hook);

}  // namespace mfa::pam

// The login dialogue of pam_sm_authenticate (docs/pam_mfa.md, "The dialogue"):
// a challenge from mfad, one echo-off prompt per try, the word "sms" for a text, and the answer
// sent to mfad, which alone decides. The shape is fprintd's pam_fprintd.c: a multi-step dialogue
// that survives the daemon going away.
//
// Return contract: PAM_SUCCESS only right after a successful Verify reply (see `ret =
// PAM_SUCCESS` in dialogue.cpp, the only place it is produced); PAM_IGNORE only for nullok and
// failmode=ignore.
#pragma once

#include "pam_module/hook_context.hpp"

namespace mfa::pam {

// Authenticates user (already checked: not empty, not over the bus's limit) with mfad.
int authenticate_user(HookContext& hook, const char* user);

}  // namespace mfa::pam

// The login of a user with no factor whom mfad's rollout lets enroll or skip (docs/rollout.md):
// BeginAuthentication offered "enroll" and/or "skip" instead of factors. mfad decides and makes
// everything (the offer, the secret, the QR code's lines, the backup codes); the module shows
// them and sends the answers.
//
// Return contract: PAM_SUCCESS only right after ConfirmLoginEnrollment succeeded; PAM_IGNORE
// only after SkipEnrollment succeeded; anything else denies. An application that cannot show
// info messages cannot enroll: denied, with a clear log line. PAM_SILENT does not silence the
// enrollment (it is the dialogue itself; sudo sets PAM_SILENT on every authentication).
//
// When mfad has an enrollment notice ([Enrollment] Notice=/NoticeFile=), it is shown before
// anything else of the enrollment and must be accepted ("yes"); mfad records the acceptance with
// the text's hash (AcceptEnrollmentNotice, via "login"). Any other answer denies the login (an
// empty one skips where skipping is offered), and nothing is enrolled.
#pragma once

#include "pam_module/bus_client.hpp"
#include "pam_module/hook_context.hpp"

namespace mfa::pam {

int run_rollout(HookContext& hook, MfadClient& client, const char* user, const char* challenge,
                bool offers_enroll, bool offers_skip);

}  // namespace mfa::pam

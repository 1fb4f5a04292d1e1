// What the Authenticator's methods share, private to its authenticator_*.cpp files: the
// verification core, open challenges, SMS codes, and the checks every method makes first (who may
// call it, the tiers of docs/security-model.md, and step-up).
#pragma once

#include <span>
#include <string>
#include <string_view>
#include <unordered_map>

#include "common/result.hpp"
#include "core/authenticator.hpp"
#include "core/challenges.hpp"
#include "core/denial_coalescer.hpp"
#include "core/sms_codes.hpp"
#include "core/verifier.hpp"

namespace mfa {

// The issuer of new TOTP enrollments when neither the caller nor [TOTP] Issuer= names one: the
// host name (authenticator_enrollment.cpp).
std::string default_totp_issuer();

// The code that confirms a new TOTP secret (seed, params), counted like a login attempt (refused
// while locked, written before the check) and audited as kEnrollConfirm with details on failure.
Result<Verifier::Match> confirm_new_totp(Verifier& v, const Caller& caller, std::string_view user,
                                         const StringMap& details, std::span<const uint8_t> seed,
                                         const TotpParams& params, std::string_view code);

// Writes user's factor record (pending or active), created now (authenticator_enrollment.cpp).
Status put_factor(Verifier& v, std::string_view user, Method method, bool pending,
                  std::vector<uint8_t> sealed, std::string params, std::string device = {});

// A new set of kBackupCodeCount backup codes for user, replacing the old set: the codes as
// generated (to be shown once); only their keyed hashes are stored.
Result<std::vector<SecureString>> replace_backup_codes(Verifier& v, std::string_view user);

// What pam_mfa.so can offer a user with no factor (BeginAuthentication's context).
struct RolloutRequest {
  bool module_enrolls = false;  // the argument enroll, and methods= takes totp
  bool nullok = false;
};

struct Authenticator::Impl : Verifier {
  explicit Impl(AuthenticatorDeps deps) : Verifier(deps) {}

  struct Access {
    bool self = false;
    bool admin = false;
    std::string account;  // the key of the account's records (account_key)
  };

  ChallengeTable challenges;
  SmsCodes sms{*this};
  DenialCoalescer denials;

  // --- Access (authenticator_access.cpp). ---
  bool is_admin(const Caller& caller) const;
  // Audits a refusal of caller's (outcome denied; details name the "action"), coalesced with
  // its repeats (core/denial_coalescer.hpp).
  Status audit_denial(const Caller& caller, std::string_view user, AuditKind kind,
                      AuditReason reason, StringMap details);
  // The same for a refusal whose kind is given whole (an action that is not in its details, an
  // account counted apart).
  Status audit_denial(const Caller& caller, std::string_view user,
                      const DenialCoalescer::Denial& denial, StringMap details);
  // Writes the counted rows of windows that ended (all: every one).
  Status flush_denials(bool all);
  // Audits access.denied and returns NotAllowed with message.
  Error deny(const Caller& caller, std::string_view user, std::string_view action,
             std::string message);
  Status require_root(const Caller& caller, std::string_view action);
  Error deny_admin(const Caller& caller, std::string_view user, std::string_view action,
                   std::string message);
  Status require_admin(const Caller& caller, std::string_view action);
  // Self-service (own account) or admin, on a user NSS knows.
  Result<Access> authorize(const Caller& caller, std::string_view user, std::string_view action);
  // Admin-only methods that name a user (known to NSS, or with state here): the key of its
  // records (an account key; the name itself for records kept under a name NSS does not know).
  Result<std::string> admin_on_user(const Caller& caller, std::string_view user,
                                    std::string_view action);
  // The account key of a name NSS knows; NoSuchUser otherwise.
  Result<std::string> account_of(std::string_view user);
  Result<bool> has_state(std::string_view user);
  // ResetUser and Unlock by an admin other than root on their own account with an active factor:
  // refused (StepUpRequired, NotAllowed), as the admin tier is no second factor.
  enum class OwnAccountChange { kReset, kUnlock };
  Status admin_on_own_account(const Caller& caller, std::string_view user, OwnAccountChange what);
  // Step-up (docs/mfactl.md, "Step-up"; authenticator_step_up.cpp): a current code from a user
  // changing their own account (TOTP, backup, or a code SendStepUpCode texted).
  Status step_up(const Caller& caller, std::string_view user, const Access& access,
                 std::string_view current_code, const Factors& f, std::string_view action);

  // --- Rollout (authenticator_login_enrollment.cpp, docs/rollout.md). ---
  // BeginAuthentication of user, who has no factor at all, from a module that says what it can
  // offer: a challenge that offers enrolling and/or skipping, nullopt for NotEnrolled as ever,
  // or NotRequired / EnrollmentRequired.
  Result<std::optional<BeginResult>> rollout_begin(const Caller& caller, const std::string& user,
                                                   const RolloutRequest& request,
                                                   const StringMap& challenge_context,
                                                   StringMap details);
  // [Rollout] RequireToken=yes: spends user's enrollment token (one counted attempt: a wrong
  // token counts like a wrong code). EnrollmentTokenRequired when token is empty, NotAllowed
  // when it is not a live token of user's.
  Status spend_enrollment_token(const Caller& caller, const std::string& user,
                                std::string_view token, StringMap details);
  // Whether a first enrollment by caller on their own account needs a token.
  bool token_required(const Caller& caller, const Access& access, const Factors& f) const;

  // --- The enrollment notice (authenticator_data_rights.cpp). ---
  // Acceptances not yet used by an enrollment, by account: the hash of the text accepted and
  // until when (monotonic) it opens one.
  struct AcceptedNotice {
    std::string sha256_hex;
    uint64_t until_usec = 0;
  };
  std::unordered_map<std::string, AcceptedNotice> accepted_notices;
  // When a notice is configured, an enrollment of user's begins only after user (or an admin for
  // them) accepted its current text: NoticeNotAccepted, audited (enroll.begin, denied,
  // notice-not-accepted), otherwise.
  Status require_notice_acceptance(const Caller& caller, const std::string& user,
                                   StringMap details);
  // The enrollment has begun: the next one needs the notice accepted again.
  void use_notice_acceptance(const std::string& user);

  // --- What GetUser and ListUsers show (authenticator_admin.cpp). ---
  Result<UserInfo> user_info(std::string_view user);
};

}  // namespace mfa

// Step-up (docs/mfactl.md, "Step-up"): a user changing their own account, once any factor is
// active, proves it with a current code: of their authenticator, a backup code, or a code texted
// for it by SendStepUpCode (the only way for a user whose one factor is SMS, issue 19).
#include <optional>
#include <set>
#include <string>

#include "core/authenticator_impl.hpp"
#include "core/rate_limiter.hpp"
#include "core/validation.hpp"

namespace mfa {

// Root and admins acting on others skip it; an admin on their own account does not.
Status Authenticator::Impl::step_up(const Caller& caller, std::string_view user,
                                    const Access& access, std::string_view current_code,
                                    const Factors& f, std::string_view action) {
  if (!access.self || caller.uid == 0 || !f.any_active())
    return {};
  StringMap details{{"purpose", "step-up"}, {"action", std::string(action)}};
  if (current_code.empty()) {
    MFA_CHECK(
        audit_denial(caller, user, AuditKind::kAuthFailure, AuditReason::kStepUpRequired, details));
    return make_error(Errc::kStepUpRequired,
                      "This change needs a current code of your second factor");
  }
  MFA_CHECK(validate_code_length(current_code));
  const std::set<Method> allowed{Method::kTotp, Method::kBackup};
  const int64_t now_s = d_.clock.now_seconds();
  bool sms_expired = false;
  auto attempted =
      attempt(caller, user, AuditKind::kAuthFailure, details, [&]() -> Result<CheckOutcome> {
        // A code SendStepUpCode texted, while the phone it went to is still a factor: used up
        // when right, and a wrong try counts against it as at a login.
        if (f.sms) {
          MFA_TRY(ok, sms.check(user, kSmsPurposeStepUp, current_code, &sms_expired));
          if (ok) {
            CheckOutcome out;
            out.match = Match{Method::kSms, std::nullopt, 0};
            return out;
          }
        }
        MFA_TRY(out, check_code(user, current_code, allowed, f, now_s));
        if (!out.match && out.reason == AuditReason::kBadCode && sms_expired) {
          out.reason = AuditReason::kExpired;
          out.details["method"] = "sms";
        }
        return out;
      });
  if (!attempted.ok()) {
    Error e = std::move(attempted).error();
    if (e.code == Errc::kBadCode && sms_expired)
      return make_error(Errc::kCodeExpired,
                        "That SMS code has expired; ask for a new one. " + e.message);
    return e;
  }
  const Match& match = *attempted;
  details["method"] = method_name(match.method);
  if (match.drift)
    details["drift"] = std::to_string(*match.drift);
  if (!match.device.empty())
    details["device"] = match.device;
  MFA_CHECK(audit_success(AuditKind::kAuthSuccess, user, caller, details));
  return {};
}

Result<SmsMessage> Authenticator::send_step_up_code(const Caller& caller, std::string_view name) {
  Impl& m = *impl_;
  constexpr char kAction[] = "SendStepUpCode";
  MFA_CHECK(validate_user_name(name));
  const auto uid = m.d_.users.uid_of(name);
  if (!uid)
    return make_error(Errc::kNoSuchUser, "No such user '" + std::string(name) + "'");
  const std::string user = account_key(*uid);
  // Only the person proves it is them: an admin changing someone else's account needs no code.
  if (*uid != caller.uid)
    return m.deny(caller, user, kAction, "A step-up code is texted only to its own user");
  const StringMap details{{"action", kAction}};
  if (m.d_.config.sms_provider == SmsProvider::kNone) {
    StringMap d = details;
    d["purpose"] = kSmsPurposeStepUp;
    MFA_CHECK(m.audit(AuditKind::kSmsFailed, user, AuditOutcome::kDenied,
                      AuditReason::kSmsUnavailable, caller, d));
    return make_error(Errc::kSmsUnavailable, "SMS is not configured on this host");
  }
  MFA_TRY(f, m.load_factors(user));
  if (!f.sms)
    return make_error(Errc::kNotEnrolled,
                      "SMS is not one of your second factors: a step-up takes a code of your "
                      "authenticator app or a backup code");
  // A lockout stops the codes a text would bring: no text either, as at a login.
  MFA_STORE_TRY(limits, m.d_.store.get_limits(user));
  if (const int64_t rem = lock_remaining_usec(limits, m.d_.clock.realtime_usec()); rem > 0) {
    StringMap d = details;
    d["purpose"] = kSmsPurposeStepUp;
    MFA_CHECK(m.audit(AuditKind::kSmsFailed, user, AuditOutcome::kDenied, AuditReason::kLocked,
                      caller, d));
    return make_error(Errc::kRateLimited, lockout_message(rem));
  }
  MFA_TRY(phone, m.sms.open_phone(*f.sms, user, kSealSms));
  return m.sms.issue(caller, user, phone, kSmsPurposeStepUp, details);
}

}  // namespace mfa

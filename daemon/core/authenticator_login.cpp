// The PAM side (root only): BeginAuthentication, Verify, EndAuthentication, SendSmsCode, and what
// became of a text.
#include <algorithm>
#include <optional>
#include <set>
#include <utility>

#include "core/authenticator_impl.hpp"
#include "core/rate_limiter.hpp"
#include "core/sms_delivery.hpp"
#include "core/validation.hpp"

namespace mfa {

namespace {

std::string methods_list(const std::vector<std::string>& methods) {
  std::string s;
  for (const auto& m : methods)
    s += (s.empty() ? "" : ",") + m;
  return s;
}

// The methods a service's filter accepts, for people: "totp, backup".
std::string accepted_list(const std::optional<std::set<Method>>& filter) {
  std::string s;
  for (Method m : {Method::kTotp, Method::kSms, Method::kBackup}) {
    if (!filter || filter->count(m))
      s += (s.empty() ? "" : ", ") + std::string(method_name(m));
  }
  return s;
}

}  // namespace

namespace {

// BeginAuthentication's context: the methods filter ("methods", nullopt: any) and the rest.
struct BeginContext {
  std::optional<std::set<Method>> filter;
  StringMap details;
  // pam_mfa.so's "rollout" (docs/rollout.md): absent from an older module.
  bool rollout = false;
  bool module_enrolls = false;
  bool nullok = false;
};

Result<BeginContext> parse_begin_context(const StringMap& context) {
  BeginContext c;
  for (const auto& [k, v] : context) {
    if (k == "methods") {
      MFA_TRY(parsed, parse_methods_filter(v));
      c.filter = std::move(parsed);
    } else if (k == "rollout") {
      // What the module can offer: "enroll" (it has the argument enroll; skipping too) or "skip".
      if (v != "enroll" && v != "skip")
        return invalid_argument("The rollout context must be enroll or skip");
      c.rollout = true;
      c.module_enrolls = v == "enroll";
    } else if (k == "nullok") {
      if (v != "yes" && v != "no")
        return invalid_argument("The nullok context must be yes or no");
      c.nullok = v == "yes";
    } else {
      c.details[k] = v;
    }
  }
  return c;
}

// The methods a login is offered, in the order BeginAuthentication lists them.
std::vector<Method> offered_methods(const Verifier::Factors& f,
                                    const std::optional<std::set<Method>>& filter) {
  std::vector<Method> offered;
  const auto offer = [&](Method method, bool enrolled) {
    if (enrolled && (!filter || filter->count(method)))
      offered.push_back(method);
  };
  offer(Method::kTotp, f.totp.has_value());
  offer(Method::kSms, f.sms.has_value());
  offer(Method::kBackup, f.backup_left > 0);
  return offered;
}

}  // namespace

bool Authenticator::offers_factor(std::string_view name, const StringMap& context) {
  Impl& m = *impl_;
  if (!validate_user_name(name).ok() || !validate_context(context).ok())
    return false;
  auto account = m.account_of(name);
  if (!account.ok())
    return false;
  const std::string& user = *account;
  auto parsed = parse_begin_context(context);
  auto limits = m.d_.store.get_limits(user);
  if (!parsed.ok() || !limits.ok() || lock_remaining_usec(*limits, m.d_.clock.realtime_usec()) > 0)
    return false;
  auto f = m.load_factors(user);
  return f.ok() && !offered_methods(*f, parsed->filter).empty();
}

Result<BeginResult> Authenticator::begin_authentication(const Caller& caller, std::string_view name,
                                                        const StringMap& context) {
  Impl& m = *impl_;
  MFA_CHECK(m.require_root(caller, "BeginAuthentication"));
  MFA_CHECK(validate_user_name(name));
  MFA_CHECK(validate_context(context));
  MFA_TRY(parsed, parse_begin_context(context));
  // Resolved once: every record is the account's, whichever of its names the login used.
  MFA_TRY(user, m.account_of(name));
  StringMap details = std::move(parsed.details);
  if (account_display_name(m.d_.users, user) != name)
    details["login_name"] = std::string(name);
  const StringMap challenge_context = details;

  m.challenges.expire(m.d_.clock.monotonic_usec());
  const int64_t now = m.d_.clock.realtime_usec();
  MFA_STORE_TRY(limits, m.d_.store.get_limits(user));
  if (const int64_t rem = lock_remaining_usec(limits, now); rem > 0) {
    // A lockout in force: the refusal counts nothing and changes nothing. A guesser's flood of
    // them is counted per account (docs/audit-events.md, "Coalesced denials"), not a row each.
    const DenialCoalescer::Denial denial{caller.uid, "BeginAuthentication",
                                         AuditKind::kAuthRateLimited, AuditReason::kLocked, user};
    MFA_CHECK(m.audit_denial(caller, user, denial, details));
    return make_error(Errc::kRateLimited, lockout_message(rem));
  }

  MFA_TRY(f, m.load_factors(user));
  BeginResult result;
  std::set<Method> allowed;
  for (Method method : offered_methods(f, parsed.filter)) {
    allowed.insert(method);
    result.methods.push_back(method_name(method));
  }
  if (result.methods.empty() && f.any_active()) {
    // Enrolled, but for none of the methods this service accepts: never "not enrolled", which
    // nullok would turn into a login without a code (issue 17).
    details["accepted"] = accepted_list(parsed.filter);
    MFA_CHECK(m.audit(AuditKind::kAuthNotEnrolled, user, AuditOutcome::kDenied,
                      AuditReason::kMethodNotAccepted, caller, details));
    return make_error(Errc::kMethodNotAccepted,
                      "None of this user's second factors is accepted here; this service "
                      "accepts: " +
                          details["accepted"]);
  }
  if (result.methods.empty()) {
    // Records an older mfad kept under this very spelling (an alias that enrolled on its own,
    // left under its name by the migration to account keys): the person has a factor this
    // version cannot open, never "no factor", which nullok would let in without a code.
    MFA_STORE_TRY(legacy, m.d_.store.get_factors(name));
    MFA_STORE_TRY(legacy_codes, m.d_.store.count_backup_codes(name));
    if (!legacy.empty() || legacy_codes > 0) {
      MFA_CHECK(m.audit(AuditKind::kAuthNotEnrolled, user, AuditOutcome::kDenied,
                        AuditReason::kNotAllowed, caller, details));
      return make_error(Errc::kNotAllowed,
                        "This name's second factor was enrolled before mfad keyed factors by "
                        "account; an administrator must reset it (mfactl reset " +
                            std::string(name) + ") before it can log in");
    }
    if (parsed.rollout) {
      RolloutRequest request;
      request.module_enrolls =
          parsed.module_enrolls && (!parsed.filter || parsed.filter->count(Method::kTotp));
      request.nullok = parsed.nullok;
      MFA_TRY(offer, m.rollout_begin(caller, user, request, challenge_context, details));
      if (offer)
        return std::move(*offer);
    }
    MFA_CHECK(m.audit(AuditKind::kAuthNotEnrolled, user, AuditOutcome::kDenied,
                      AuditReason::kNotEnrolled, caller, details));
    return make_error(Errc::kNotEnrolled, "No second factor is enrolled for this user");
  }

  const auto per_user = static_cast<size_t>(std::max(1, m.d_.config.max_challenges_per_user));
  const auto per_caller = static_cast<size_t>(std::max(1, m.d_.config.max_challenges_per_caller));
  // A login abandoned at its prompt leaves its challenge until its expiry; once the user's cap
  // is reached, those whose process has exited make room.
  if (m.challenges.open_for_user(user) >= per_user)
    m.challenges.drop_exited_for_user(user);
  if (m.challenges.open_for_user(user) >= per_user ||
      m.challenges.open_for_caller(challenge_owner(caller)) >= per_caller) {
    MFA_CHECK(m.audit(AuditKind::kAuthBegin, user, AuditOutcome::kDenied,
                      AuditReason::kTooManyChallenges, caller, details));
    return make_error(Errc::kLimitExceeded, "Too many authentications are in progress");
  }

  const uint64_t timeout =
      static_cast<uint64_t>(std::max(1, m.d_.config.challenge_timeout_seconds)) * kUsecPerSecond;
  MFA_TRY(c, m.challenges.create(user, challenge_owner(caller), std::move(allowed),
                                 challenge_context, m.d_.clock.monotonic_usec() + timeout));
  result.challenge = c->id;
  details["methods"] = methods_list(result.methods);
  if (auto st = m.audit_success(AuditKind::kAuthBegin, user, caller, details); !st.ok()) {
    m.challenges.erase(result.challenge);
    return std::move(st).error();
  }
  return result;
}

Result<std::string> Authenticator::verify(const Caller& caller, std::string_view challenge,
                                          std::string_view code) {
  Impl& m = *impl_;
  MFA_CHECK(m.require_root(caller, "Verify"));
  MFA_CHECK(validate_code_length(code));
  Challenge* c = m.challenges.find(challenge, challenge_owner(caller));
  if (!c || c->done)
    return make_error(Errc::kNoSuchChallenge, "No such authentication is in progress");
  if (c->rollout)
    return make_error(Errc::kNotEnrolled,
                      "This login has no factor to check: it enrolls one or skips (rollout)");
  const std::string user = c->user;
  const std::set<Method> allowed = c->methods;
  StringMap details = c->context;
  if (m.d_.clock.monotonic_usec() >= c->expires_usec) {
    m.challenges.erase(challenge);
    MFA_CHECK(m.audit(AuditKind::kAuthFailure, user, AuditOutcome::kDenied, AuditReason::kExpired,
                      caller, details));
    return make_error(Errc::kChallengeExpired, "The authentication took too long; start again");
  }

  MFA_TRY(f, m.load_factors(user));
  const int64_t now_s = m.d_.clock.now_seconds();
  const bool sms_live = allowed.count(Method::kSms) && f.sms &&
                        m.sms.was_sent(challenge, m.d_.clock.monotonic_usec());
  // Why a failure is not a plain wrong code: the person is told (docs/troubleshooting.md).
  std::optional<int64_t> drift_seconds;
  bool sms_expired = false;
  auto attempted = m.attempt(
      caller, user, AuditKind::kAuthFailure, details, [&]() -> Result<Verifier::CheckOutcome> {
        if (sms_live) {
          MFA_TRY(ok, m.sms.check(user, kSmsPurposeLogin, code, &sms_expired));
          if (ok) {
            Verifier::CheckOutcome out;
            out.match = Verifier::Match{Method::kSms, std::nullopt, 0};
            return out;
          }
        }
        MFA_TRY(out, m.check_code(user, code, allowed, f, now_s));
        if (out.match || out.reason != AuditReason::kBadCode)
          return out;
        if (sms_expired) {
          out.reason = AuditReason::kExpired;
          out.details["method"] = "sms";
          return out;
        }
        if (allowed.count(Method::kTotp)) {
          MFA_TRY(drift, m.totp_drift(user, code, f, now_s));
          if (drift) {
            drift_seconds = drift;
            out.reason = AuditReason::kClockDrift;
            out.details["drift_seconds"] = std::to_string(*drift);
          }
        }
        return out;
      });
  if (!attempted.ok()) {
    Error e = std::move(attempted).error();
    if (e.code != Errc::kBadCode)
      return e;
    if (sms_expired)
      return make_error(Errc::kCodeExpired,
                        "That SMS code has expired; type sms for a new one. " + e.message);
    if (drift_seconds) {
      const int64_t off = *drift_seconds < 0 ? -*drift_seconds : *drift_seconds;
      return make_error(Errc::kClockDrift,
                        "That code is not valid now: your authenticator's clock seems " +
                            std::to_string(off) + " seconds " +
                            (*drift_seconds < 0 ? "behind" : "ahead") +
                            "; set it right and try again. " + e.message);
    }
    return e;
  }
  Verifier::Match match = std::move(attempted).value();
  if (Challenge* again = m.challenges.find(challenge, challenge_owner(caller)))
    m.challenges.mark_done(again);
  m.sms.forget(challenge);
  const std::string method = method_name(match.method);
  details["method"] = method;
  if (match.drift)
    details["drift"] = std::to_string(*match.drift);
  if (!match.device.empty())
    details["device"] = match.device;
  MFA_CHECK(m.audit_success(AuditKind::kAuthSuccess, user, caller, details));
  return method;
}

Status Authenticator::end_authentication(const Caller& caller, std::string_view challenge) {
  Impl& m = *impl_;
  MFA_CHECK(m.require_root(caller, "EndAuthentication"));
  Challenge* c = m.challenges.find(challenge, challenge_owner(caller));
  if (!c)
    return make_error(Errc::kNoSuchChallenge, "No such authentication is in progress");
  const bool done = c->done;
  const std::string user = c->user;
  const StringMap details = c->context;
  m.challenges.erase(challenge);
  m.sms.forget(challenge);
  if (!done)
    MFA_CHECK(m.audit(AuditKind::kAuthEnd, user, AuditOutcome::kInfo, AuditReason::kAbandoned,
                      caller, details));
  return {};
}

Result<SmsMessage> Authenticator::send_sms_code(const Caller& caller, std::string_view challenge) {
  Impl& m = *impl_;
  MFA_CHECK(m.require_root(caller, "SendSmsCode"));
  Challenge* c = m.challenges.find(challenge, challenge_owner(caller));
  if (!c || c->done)
    return make_error(Errc::kNoSuchChallenge, "No such authentication is in progress");
  if (m.d_.clock.monotonic_usec() >= c->expires_usec) {
    m.challenges.erase(challenge);
    return make_error(Errc::kChallengeExpired, "The authentication took too long; start again");
  }
  const std::string user = c->user;
  const StringMap details = c->context;
  const uint64_t expires = c->expires_usec;
  if (m.d_.config.sms_provider == SmsProvider::kNone) {
    MFA_CHECK(m.audit(AuditKind::kSmsFailed, user, AuditOutcome::kDenied,
                      AuditReason::kSmsUnavailable, caller, details));
    return make_error(Errc::kSmsUnavailable, "SMS is not configured on this host");
  }
  if (!c->methods.count(Method::kSms))
    return make_error(Errc::kNotEnrolled, "SMS is not a factor of this user here");
  MFA_STORE_TRY(limits, m.d_.store.get_limits(user));
  if (const int64_t rem = lock_remaining_usec(limits, m.d_.clock.realtime_usec()); rem > 0) {
    MFA_CHECK(m.audit(AuditKind::kSmsFailed, user, AuditOutcome::kDenied, AuditReason::kLocked,
                      caller, details));
    return make_error(Errc::kRateLimited, lockout_message(rem));
  }
  MFA_TRY(f, m.load_factors(user));
  if (!f.sms)
    return make_error(Errc::kNotEnrolled, "No phone is enrolled for this user");
  MFA_TRY(phone, m.sms.open_phone(*f.sms, user, kSealSms));
  MFA_TRY(message, m.sms.issue(caller, user, phone, kSmsPurposeLogin, details));
  m.sms.note_sent(challenge, expires);
  return message;
}

Result<std::string> Authenticator::sms_sent(const SmsMessage& message,
                                            const SmsDelivery& delivery) {
  Impl& m = *impl_;
  StringMap details = message.details;
  details["tries"] = std::to_string(delivery.tries);
  if (delivery.http_status)
    details["http_status"] = std::to_string(delivery.http_status);
  if (delivery.provider_code)
    details["provider_code"] = std::to_string(delivery.provider_code);
  if (delivery.status == SmsDeliveryStatus::kAccepted) {
    MFA_CHECK(m.audit_success(AuditKind::kSmsSent, message.user, message.caller, details));
    return message.masked;
  }
  // The code never reached the user: it must not stay usable.
  MFA_STORE_CHECK(m.d_.store.delete_sms_code(message.user, message.purpose));
  const bool config_error = delivery.status == SmsDeliveryStatus::kUnavailable;
  MFA_CHECK(m.audit(AuditKind::kSmsFailed, message.user,
                    config_error ? AuditOutcome::kError : AuditOutcome::kFailure, delivery.reason,
                    message.caller, details));
  if (config_error && m.d_.events) {
    m.d_.events->security_event(account_display_name(m.d_.users, message.user), "sms-unavailable",
                                {{"reason", audit_reason_name(delivery.reason)},
                                 {"http_status", std::to_string(delivery.http_status)}});
  }
  if (delivery.status == SmsDeliveryStatus::kRecipientError)
    return make_error(Errc::kSmsUnavailable,
                      "No text can be sent to " + message.masked + ": " + delivery.message);
  return make_error(Errc::kSmsUnavailable, delivery.message);
}

}  // namespace mfa

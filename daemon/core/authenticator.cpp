// Every decision mfad makes: who may call what, which code is good, when a user is locked out.
// The order inside each method is validate, authorize, act, audit, answer. Storage and audit
// failures are errors (fail closed); no path turns an error into a success.
#include "core/authenticator.hpp"

#include <unistd.h>

#include <algorithm>
#include <array>
#include <cstring>
#include <functional>
#include <set>
#include <utility>

#include "common/backup_codes.hpp"
#include "common/base32.hpp"
#include "common/crypto.hpp"
#include "common/dbus_names.hpp"
#include "common/otp.hpp"
#include "common/otpauth.hpp"
#include "core/challenges.hpp"
#include "core/rate_limiter.hpp"
#include "core/sms_codes.hpp"
#include "core/sms_delivery.hpp"
#include "core/sms_phone.hpp"
#include "core/validation.hpp"
#include "core/verifier.hpp"

namespace mfa {

namespace {

constexpr size_t kTotpSecretBytes = 20;  // 160 bits, RFC 4226 §4 R6 recommendation

Error not_allowed(std::string message) {
  return make_error(Errc::kNotAllowed, std::move(message));
}
Error invalid(std::string message) {
  return make_error(Errc::kInvalidArgument, std::move(message));
}

std::string host_name() {
  std::array<char, 256> buf{};
  if (gethostname(buf.data(), buf.size() - 1) != 0)
    return "mfad";
  std::string name(buf.data());
  if (name.empty() || !validate_issuer(name).ok())
    return "mfad";
  return name;
}

std::string methods_list(const std::vector<std::string>& methods) {
  std::string s;
  for (const auto& m : methods)
    s += (s.empty() ? "" : ",") + m;
  return s;
}

}  // namespace

std::string Caller::describe() const {
  std::string s = "uid=" + std::to_string(uid) + " pid=" + std::to_string(pid);
  if (!bus_name.empty())
    s += " " + bus_name;
  if (admin_authority && admin_authority->answer() == AdminAuthority::Answer::kYes)
    s += std::string(" via ") + admin_authority->name();
  return s;
}

namespace {

// A refusal for want of the admin tier that the caller's admin authority may still turn around:
// the authority learns that it is wanted.
bool admin_not_asked(const Caller& caller) {
  if (!caller.admin_authority ||
      caller.admin_authority->answer() != AdminAuthority::Answer::kNotAsked)
    return false;
  caller.admin_authority->wanted();
  return true;
}

}  // namespace

Error admin_refusal(const Caller& caller, Error denial) {
  (void)admin_not_asked(caller);
  return denial;
}

struct Authenticator::Impl : Verifier {
  explicit Impl(AuthenticatorDeps deps) : Verifier(deps) {}

  struct Access {
    bool self = false;
    bool admin = false;
  };

  ChallengeTable challenges;
  SmsCodes sms{*this};

  bool is_admin(const Caller& caller) const {
    if (caller.uid == 0)
      return true;
    if (caller.uid == static_cast<uid_t>(-1))
      return false;
    if (!d_.config.admin_group.empty() && d_.users.in_group(caller.uid, d_.config.admin_group))
      return true;
    return caller.admin_authority &&
           caller.admin_authority->answer() == AdminAuthority::Answer::kYes;
  }

  Error deny(const Caller& caller, std::string_view user, std::string_view action,
             std::string message) {
    auto st = audit("access.denied", user, "denied", "not-allowed", caller,
                    {{"action", std::string(action)}});
    if (!st.ok())
      return std::move(st).error();
    return not_allowed(std::move(message));
  }

  Status require_root(const Caller& caller, std::string_view action) {
    if (caller.uid == 0)
      return {};
    return deny(caller, "", action, "Only root may call " + std::string(action));
  }

  // A refusal for want of the admin tier: audited only once the admin authority had its say, so
  // that a call it then allows leaves no denial behind.
  Error deny_admin(const Caller& caller, std::string_view user, std::string_view action,
                   std::string message) {
    if (admin_not_asked(caller))
      return not_allowed(std::move(message));
    return deny(caller, user, action, std::move(message));
  }

  Status require_admin(const Caller& caller, std::string_view action) {
    if (is_admin(caller))
      return {};
    return deny_admin(caller, "", action, "Only an administrator may call " + std::string(action));
  }

  // Self-service (own account) or admin, on a user NSS knows.
  Result<Access> authorize(const Caller& caller, std::string_view user, std::string_view action) {
    MFA_CHECK(validate_user_name(user));
    const auto uid = d_.users.uid_of(user);
    if (!uid)
      return make_error(Errc::kNoSuchUser, "No such user '" + std::string(user) + "'");
    Access a;
    a.self = *uid == caller.uid;
    a.admin = is_admin(caller);
    if (!a.self && !a.admin)
      return deny_admin(caller, user, action, "You may only manage your own account");
    return a;
  }

  // Admin-only methods that name a user. An account deleted from NSS may still have state here
  // (factors, codes, a lockout): admins can still clear it.
  Status admin_on_user(const Caller& caller, std::string_view user, std::string_view action) {
    MFA_CHECK(require_admin(caller, action));
    MFA_CHECK(validate_user_name(user));
    if (d_.users.uid_of(user))
      return {};
    MFA_TRY(known, has_state(user));
    if (!known)
      return make_error(Errc::kNoSuchUser, "No such user '" + std::string(user) + "'");
    return {};
  }

  Result<bool> has_state(std::string_view user) {
    MFA_TRY(enrolled, d_.store.list_users());
    if (std::binary_search(enrolled.begin(), enrolled.end(), user))
      return true;
    MFA_TRY(limits, d_.store.get_limits(user));
    return limits.consecutive_failures > 0 || limits.locked_until_usec > 0 ||
           limits.day_failures > 0 || limits.lockout_count > 0;
  }

  // Step-up (CONTRACT): a user changing their own account, once any factor is active, proves it
  // with a current code. Root and admins acting on others skip it; an admin on their own account
  // does not.
  Status step_up(const Caller& caller, std::string_view user, const Access& access,
                 std::string_view current_code, const Factors& f, std::string_view action) {
    if (!access.self || caller.uid == 0 || !f.any_active())
      return {};
    StringMap details{{"purpose", "step-up"}, {"action", std::string(action)}};
    if (current_code.empty()) {
      MFA_CHECK(audit("auth.failure", user, "denied", "step-up-required", caller, details));
      return make_error(Errc::kStepUpRequired,
                        "This change needs a current code of your second factor");
    }
    if (current_code.size() > dbus::kMaxCodeLength)
      return invalid("The code is too long");
    const std::set<Method> allowed{Method::kTotp, Method::kBackup};
    const int64_t now_s = d_.clock.now_seconds();
    MFA_TRY(match, attempt(caller, user, "auth.failure", details,
                           [&]() { return check_code(user, current_code, allowed, f, now_s); }));
    details["method"] = method_name(match.method);
    if (match.drift)
      details["drift"] = std::to_string(*match.drift);
    MFA_CHECK(audit("auth.success", user, "success", "", caller, details));
    return {};
  }

  Result<UserInfo> user_info(std::string_view user) {
    MFA_TRY(f, load_factors(user));
    MFA_STORE_TRY(limits, d_.store.get_limits(user));
    UserInfo info;
    info.user = std::string(user);
    if (f.totp)
      info.methods.push_back(method_name(Method::kTotp));
    if (f.sms)
      info.methods.push_back(method_name(Method::kSms));
    if (f.backup_left > 0)
      info.methods.push_back(method_name(Method::kBackup));
    if (f.totp_pending)
      info.pending.push_back(method_name(Method::kTotp));
    if (f.sms_pending)
      info.pending.push_back(method_name(Method::kSms));
    info.backup_codes_left = static_cast<uint32_t>(f.backup_left);
    const int64_t now = d_.clock.realtime_usec();
    if (lock_remaining_usec(limits, now) > 0)
      info.locked_until =
          static_cast<uint64_t>((limits.locked_until_usec + kUsecPerSecond - 1) / kUsecPerSecond);
    info.failures = static_cast<uint32_t>(std::max(0, limits.consecutive_failures));
    if (f.sms)
      info.masked_phone = f.sms->params;
    if (f.totp) {
      MFA_TRY(params, record_params(*f.totp));
      info.totp = params;
    }
    return info;
  }
};

Authenticator::Authenticator(AuthenticatorDeps deps) : impl_(std::make_unique<Impl>(deps)) {}
Authenticator::~Authenticator() = default;

bool Authenticator::is_admin(const Caller& caller) const {
  return impl_->is_admin(caller);
}

namespace {

// BeginAuthentication's context: the methods filter ("methods", nullopt: any) and the rest.
struct BeginContext {
  std::optional<std::set<Method>> filter;
  StringMap details;
};

Result<BeginContext> parse_begin_context(const StringMap& context) {
  BeginContext c;
  for (const auto& [k, v] : context) {
    if (k == "methods") {
      MFA_TRY(parsed, parse_methods_filter(v));
      c.filter = std::move(parsed);
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

bool Authenticator::offers_factor(std::string_view user, const StringMap& context) {
  Impl& m = *impl_;
  if (!validate_user_name(user).ok() || !validate_context(context).ok())
    return false;
  auto parsed = parse_begin_context(context);
  auto limits = m.d_.store.get_limits(user);
  if (!parsed.ok() || !limits.ok() || lock_remaining_usec(*limits, m.d_.clock.realtime_usec()) > 0)
    return false;
  auto f = m.load_factors(user);
  return f.ok() && !offered_methods(*f, parsed->filter).empty();
}

Result<BeginResult> Authenticator::begin_authentication(const Caller& caller, std::string_view user,
                                                        const StringMap& context) {
  Impl& m = *impl_;
  MFA_CHECK(m.require_root(caller, "BeginAuthentication"));
  MFA_CHECK(validate_user_name(user));
  MFA_CHECK(validate_context(context));
  MFA_TRY(parsed, parse_begin_context(context));
  StringMap details = std::move(parsed.details);
  const StringMap challenge_context = details;

  m.challenges.expire(m.d_.clock.monotonic_usec());
  const int64_t now = m.d_.clock.realtime_usec();
  MFA_STORE_TRY(limits, m.d_.store.get_limits(user));
  if (const int64_t rem = lock_remaining_usec(limits, now); rem > 0) {
    MFA_CHECK(m.audit("auth.rate-limited", user, "denied", "locked", caller, details));
    return make_error(Errc::kRateLimited, lockout_message(rem));
  }

  MFA_TRY(f, m.load_factors(user));
  BeginResult result;
  std::set<Method> allowed;
  for (Method method : offered_methods(f, parsed.filter)) {
    allowed.insert(method);
    result.methods.push_back(method_name(method));
  }
  if (result.methods.empty()) {
    MFA_CHECK(m.audit("auth.not-enrolled", user, "denied", "not-enrolled", caller, details));
    return make_error(Errc::kNotEnrolled,
                      f.any_active() ? "None of this user's second factors is accepted here"
                                     : "No second factor is enrolled for this user");
  }

  const auto per_user = static_cast<size_t>(std::max(1, m.d_.config.max_challenges_per_user));
  const auto per_caller = static_cast<size_t>(std::max(1, m.d_.config.max_challenges_per_caller));
  if (m.challenges.open_for_user(user) >= per_user ||
      m.challenges.open_for_caller(caller.bus_name) >= per_caller) {
    MFA_CHECK(m.audit("auth.begin", user, "denied", "too-many-challenges", caller, details));
    return make_error(Errc::kLimitExceeded, "Too many authentications are in progress");
  }

  const uint64_t timeout =
      static_cast<uint64_t>(std::max(1, m.d_.config.challenge_timeout_seconds)) * kUsecPerSecond;
  MFA_TRY(c, m.challenges.create(std::string(user), caller.bus_name, std::move(allowed),
                                 challenge_context, m.d_.clock.monotonic_usec() + timeout));
  result.challenge = c->id;
  details["methods"] = methods_list(result.methods);
  if (auto st = m.audit("auth.begin", user, "success", "", caller, details); !st.ok()) {
    m.challenges.erase(result.challenge);
    return std::move(st).error();
  }
  return result;
}

Result<std::string> Authenticator::verify(const Caller& caller, std::string_view challenge,
                                          std::string_view code) {
  Impl& m = *impl_;
  MFA_CHECK(m.require_root(caller, "Verify"));
  if (code.size() > dbus::kMaxCodeLength)
    return invalid("The code is too long");
  Challenge* c = m.challenges.find(challenge, caller.bus_name);
  if (!c || c->done)
    return make_error(Errc::kNoSuchChallenge, "No such authentication is in progress");
  const std::string user = c->user;
  const std::set<Method> allowed = c->methods;
  StringMap details = c->context;
  if (m.d_.clock.monotonic_usec() >= c->expires_usec) {
    m.challenges.erase(challenge);
    MFA_CHECK(m.audit("auth.failure", user, "denied", "expired", caller, details));
    return make_error(Errc::kChallengeExpired, "The authentication took too long; start again");
  }

  MFA_TRY(f, m.load_factors(user));
  const int64_t now_s = m.d_.clock.now_seconds();
  const bool sms_live = allowed.count(Method::kSms) && f.sms &&
                        m.sms.was_sent(challenge, m.d_.clock.monotonic_usec());
  MFA_TRY(match,
          m.attempt(caller, user, "auth.failure", details, [&]() -> Result<Verifier::CheckOutcome> {
            if (sms_live) {
              MFA_TRY(ok, m.sms.check(user, kSmsPurposeLogin, code));
              if (ok) {
                Verifier::CheckOutcome out;
                out.match = Verifier::Match{Method::kSms, std::nullopt, 0};
                return out;
              }
            }
            return m.check_code(user, code, allowed, f, now_s);
          }));
  if (Challenge* again = m.challenges.find(challenge, caller.bus_name))
    again->done = true;
  m.sms.forget(challenge);
  const std::string method = method_name(match.method);
  details["method"] = method;
  if (match.drift)
    details["drift"] = std::to_string(*match.drift);
  MFA_CHECK(m.audit("auth.success", user, "success", "", caller, details));
  return method;
}

Status Authenticator::end_authentication(const Caller& caller, std::string_view challenge) {
  Impl& m = *impl_;
  MFA_CHECK(m.require_root(caller, "EndAuthentication"));
  Challenge* c = m.challenges.find(challenge, caller.bus_name);
  if (!c)
    return make_error(Errc::kNoSuchChallenge, "No such authentication is in progress");
  const bool done = c->done;
  const std::string user = c->user;
  const StringMap details = c->context;
  m.challenges.erase(challenge);
  m.sms.forget(challenge);
  if (!done)
    MFA_CHECK(m.audit("auth.end", user, "info", "abandoned", caller, details));
  return {};
}

Result<SmsMessage> Authenticator::send_sms_code(const Caller& caller, std::string_view challenge) {
  Impl& m = *impl_;
  MFA_CHECK(m.require_root(caller, "SendSmsCode"));
  Challenge* c = m.challenges.find(challenge, caller.bus_name);
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
    MFA_CHECK(m.audit("sms.failed", user, "denied", "sms-unavailable", caller, details));
    return make_error(Errc::kSmsUnavailable, "SMS is not configured on this host");
  }
  if (!c->methods.count(Method::kSms))
    return make_error(Errc::kNotEnrolled, "SMS is not a factor of this user here");
  MFA_STORE_TRY(limits, m.d_.store.get_limits(user));
  if (const int64_t rem = lock_remaining_usec(limits, m.d_.clock.realtime_usec()); rem > 0) {
    MFA_CHECK(m.audit("sms.failed", user, "denied", "locked", caller, details));
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

Result<SmsMessage> Authenticator::begin_sms_enrollment(const Caller& caller, std::string_view user,
                                                       std::string_view phone_e164,
                                                       std::string_view current_code) {
  Impl& m = *impl_;
  MFA_TRY(access, m.authorize(caller, user, "BeginSmsEnrollment"));
  if (current_code.size() > dbus::kMaxCodeLength)
    return invalid("The code is too long");
  MFA_CHECK(validate_e164(phone_e164));
  if (m.d_.config.sms_provider == SmsProvider::kNone)
    return make_error(Errc::kSmsUnavailable,
                      "SMS is not configured on this host ([SMS] Provider=none)");
  MFA_TRY(f, m.load_factors(user));
  if (f.sms)
    return make_error(Errc::kAlreadyEnrolled,
                      "A phone is already enrolled for this user; disable sms first");
  MFA_CHECK(m.step_up(caller, user, access, current_code, f, "enroll sms"));

  const SecureString phone(phone_e164);
  MFA_TRY(sealed, m.sms.seal_phone(phone.view(), user, kSealSmsPending));
  FactorRecord record;
  record.method = Method::kSms;
  record.pending = true;
  record.sealed = std::move(sealed);
  record.params = mask_phone(phone.view());
  record.created_usec = m.d_.clock.realtime_usec();
  MFA_STORE_CHECK(m.d_.store.put_factor(user, record));
  MFA_CHECK(m.audit("enroll.begin", user, "success", "", caller,
                    {{"method", "sms"}, {"phone", record.params}}));
  return m.sms.issue(caller, user, phone, kSmsPurposeEnroll, {{"method", "sms"}});
}

Status Authenticator::confirm_sms_enrollment(const Caller& caller, std::string_view user,
                                             std::string_view code) {
  Impl& m = *impl_;
  MFA_TRY(access, m.authorize(caller, user, "ConfirmSmsEnrollment"));
  (void)access;
  if (code.size() > dbus::kMaxCodeLength)
    return invalid("The code is too long");
  MFA_TRY(f, m.load_factors(user));
  if (!f.sms_pending)
    return make_error(Errc::kNoPendingEnrollment,
                      "No phone is pending for this user; run enroll sms first");
  if (f.sms)
    return make_error(Errc::kAlreadyEnrolled,
                      "A phone is already enrolled for this user; disable sms first");
  StringMap details{{"method", "sms"}, {"phone", f.sms_pending->params}};
  MFA_TRY(match, m.attempt(caller, user, "enroll.confirm", details,
                           [&]() -> Result<Verifier::CheckOutcome> {
                             Verifier::CheckOutcome out;
                             MFA_TRY(ok, m.sms.check(user, kSmsPurposeEnroll, code));
                             if (ok)
                               out.match = Verifier::Match{Method::kSms, std::nullopt, 0};
                             return out;
                           }));
  (void)match;
  MFA_TRY(phone, m.sms.open_phone(*f.sms_pending, user, kSealSmsPending));
  MFA_TRY(sealed, m.sms.seal_phone(phone.view(), user, kSealSms));
  FactorRecord active;
  active.method = Method::kSms;
  active.pending = false;
  active.sealed = std::move(sealed);
  active.params = f.sms_pending->params;
  active.created_usec = m.d_.clock.realtime_usec();
  MFA_STORE_CHECK(m.d_.store.put_factor(user, active));
  MFA_STORE_CHECK(m.d_.store.delete_factor(user, Method::kSms, true));
  MFA_CHECK(m.audit("enroll.confirm", user, "success", "", caller, details));
  return {};
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
    MFA_CHECK(m.audit("sms.sent", message.user, "success", "", message.caller, details));
    return message.masked;
  }
  // The code never reached the user: it must not stay usable.
  MFA_STORE_CHECK(m.d_.store.delete_sms_code(message.user, message.purpose));
  const bool config_error = delivery.status == SmsDeliveryStatus::kUnavailable;
  MFA_CHECK(m.audit("sms.failed", message.user, config_error ? "error" : "failure", delivery.reason,
                    message.caller, details));
  if (config_error && m.d_.events) {
    m.d_.events->security_event(
        message.user, "sms-unavailable",
        {{"reason", delivery.reason}, {"http_status", std::to_string(delivery.http_status)}});
  }
  if (delivery.status == SmsDeliveryStatus::kRecipientError)
    return make_error(Errc::kSmsUnavailable,
                      "No text can be sent to " + message.masked + ": " + delivery.message);
  return make_error(Errc::kSmsUnavailable, delivery.message);
}

Result<UserInfo> Authenticator::get_user(const Caller& caller, std::string_view user) {
  MFA_TRY(access, impl_->authorize(caller, user, "GetUser"));
  (void)access;
  return impl_->user_info(user);
}

Result<TotpEnrollment> Authenticator::begin_totp_enrollment(const Caller& caller,
                                                            std::string_view user,
                                                            const TotpEnrollmentOptions& options) {
  Impl& m = *impl_;
  MFA_TRY(access, m.authorize(caller, user, "BeginTotpEnrollment"));

  std::string issuer = options.issuer;
  if (!issuer.empty()) {
    MFA_CHECK(validate_issuer(issuer));
  } else {
    issuer = m.d_.config.issuer.empty() ? host_name() : m.d_.config.issuer;
  }
  TotpParams params = m.d_.config.totp;
  if (!options.algorithm.empty()) {
    const auto alg = parse_otp_algorithm(options.algorithm);
    if (!alg)
      return invalid("The algorithm must be SHA1, SHA256 or SHA512");
    params.algorithm = *alg;
  }
  if (options.digits != 0) {
    if (options.digits < 6 || options.digits > 8)
      return invalid("Digits must be 6, 7 or 8");
    params.digits = options.digits;
  }
  if (options.current_code.size() > dbus::kMaxCodeLength)
    return invalid("The code is too long");

  MFA_TRY(f, m.load_factors(user));
  if (f.totp)
    return make_error(Errc::kAlreadyEnrolled,
                      "TOTP is already enrolled for this user; disable it first");
  MFA_CHECK(m.step_up(caller, user, access, options.current_code.view(), f, "enroll totp"));

  SecureBytes secret(kTotpSecretBytes);
  if (!random_bytes(secret.span()).ok())
    return make_error(Errc::kInternal, "Could not create a secret (no randomness)");
  auto sealed = m.d_.sealer.seal(secret.span(), user, kSealTotpPending);
  if (!sealed.ok())
    return make_error(Errc::kInternal, "Could not seal the new secret");
  FactorRecord record;
  record.method = Method::kTotp;
  record.pending = true;
  record.sealed = std::move(sealed).value();
  record.params = format_totp_params(params);
  record.created_usec = m.d_.clock.realtime_usec();
  MFA_STORE_CHECK(m.d_.store.put_factor(user, record));

  TotpEnrollment out;
  {
    std::string b32 = base32_encode(secret.span());
    out.secret_base32 = SecureString(b32);
    secure_erase(b32.data(), b32.size());
  }
  OtpauthUri uri;
  uri.issuer = issuer;
  uri.account = std::string(user);
  uri.secret = secret.clone();
  uri.params = params;
  out.otpauth_uri = build_otpauth_uri(uri);

  MFA_CHECK(m.audit("enroll.begin", user, "success", "", caller,
                    {{"method", "totp"},
                     {"algorithm", otp_algorithm_name(params.algorithm)},
                     {"digits", std::to_string(params.digits)},
                     {"period", std::to_string(params.period)},
                     {"issuer", issuer}}));
  return out;
}

Status Authenticator::confirm_totp_enrollment(const Caller& caller, std::string_view user,
                                              std::string_view code) {
  Impl& m = *impl_;
  MFA_TRY(access, m.authorize(caller, user, "ConfirmTotpEnrollment"));
  (void)access;
  if (code.size() > dbus::kMaxCodeLength)
    return invalid("The code is too long");
  MFA_TRY(f, m.load_factors(user));
  if (!f.totp_pending)
    return make_error(Errc::kNoPendingEnrollment,
                      "No TOTP enrollment is pending for this user; begin one first");
  if (f.totp)
    return make_error(Errc::kAlreadyEnrolled,
                      "TOTP is already enrolled for this user; disable it first");
  MFA_TRY(params, m.record_params(*f.totp_pending));
  MFA_TRY(seed, m.open_seed(*f.totp_pending, user, kSealTotpPending));

  const int64_t now_s = m.d_.clock.now_seconds();
  StringMap details{{"method", "totp"}};
  MFA_TRY(
      match,
      m.attempt(caller, user, "enroll.confirm", details, [&]() -> Result<Verifier::CheckOutcome> {
        Verifier::CheckOutcome out;
        if (!Verifier::all_digits(code))
          return out;
        const auto step = totp_verify(seed.span(), code, params, now_s, m.window(), std::nullopt);
        if (step) {
          Verifier::Match mt;
          mt.method = Method::kTotp;
          mt.step = *step;
          mt.drift =
              static_cast<int64_t>(*step) - static_cast<int64_t>(totp_step(now_s, params.period));
          out.match = mt;
        }
        return out;
      }));

  auto sealed = m.d_.sealer.seal(seed.span(), user, kSealTotp);
  if (!sealed.ok())
    return make_error(Errc::kInternal, "Could not seal the secret");
  FactorRecord active;
  active.method = Method::kTotp;
  active.pending = false;
  active.sealed = std::move(sealed).value();
  active.params = f.totp_pending->params;
  active.created_usec = m.d_.clock.realtime_usec();
  MFA_STORE_CHECK(m.d_.store.put_factor(user, active));
  MFA_STORE_CHECK(m.d_.store.delete_factor(user, Method::kTotp, true));
  // The confirming code must not open a login as well.
  MFA_STORE_CHECK(m.d_.store.set_totp_watermark(user, match.step));
  if (match.drift)
    details["drift"] = std::to_string(*match.drift);
  MFA_CHECK(m.audit("enroll.confirm", user, "success", "", caller, details));
  return {};
}

Result<std::vector<SecureString>> Authenticator::generate_backup_codes(
    const Caller& caller, std::string_view user, std::string_view current_code) {
  Impl& m = *impl_;
  MFA_TRY(access, m.authorize(caller, user, "GenerateBackupCodes"));
  MFA_TRY(f, m.load_factors(user));
  MFA_CHECK(m.step_up(caller, user, access, current_code, f, "backup-codes"));

  std::vector<SecureString> codes = mfa::generate_backup_codes(kBackupCodeCount);
  if (codes.size() != static_cast<size_t>(kBackupCodeCount))
    return make_error(Errc::kInternal, "Could not generate backup codes");
  std::vector<CodeHash> hashes;
  hashes.reserve(codes.size());
  for (const auto& c : codes) {
    MFA_TRY(h, m.backup_hash(user, c.view()));
    hashes.push_back(h);
  }
  MFA_STORE_CHECK(m.d_.store.replace_backup_codes(user, hashes));
  MFA_CHECK(m.audit("backup.generate", user, "success", "", caller,
                    {{"count", std::to_string(codes.size())}}));
  return codes;
}

Status Authenticator::disable_method(const Caller& caller, std::string_view user,
                                     std::string_view method, std::string_view current_code) {
  Impl& m = *impl_;
  MFA_TRY(access, m.authorize(caller, user, "DisableMethod"));
  const auto which = parse_method(method);
  if (!which)
    return invalid("Unknown method (expected totp, sms or backup)");
  MFA_TRY(f, m.load_factors(user));
  bool enrolled = false;
  switch (*which) {
    case Method::kTotp:
      enrolled = f.totp || f.totp_pending;
      break;
    case Method::kSms:
      enrolled = f.sms || f.sms_pending;
      break;
    case Method::kBackup:
      enrolled = f.backup_left > 0;
      break;
  }
  if (!enrolled)
    return make_error(Errc::kNotEnrolled,
                      std::string(method_name(*which)) + " is not enrolled for this user");
  MFA_CHECK(m.step_up(caller, user, access, current_code, f, "disable"));

  switch (*which) {
    case Method::kTotp:
      if (f.totp)
        MFA_STORE_CHECK(m.d_.store.delete_factor(user, Method::kTotp, false));
      if (f.totp_pending)
        MFA_STORE_CHECK(m.d_.store.delete_factor(user, Method::kTotp, true));
      break;
    case Method::kSms:
      if (f.sms)
        MFA_STORE_CHECK(m.d_.store.delete_factor(user, Method::kSms, false));
      if (f.sms_pending)
        MFA_STORE_CHECK(m.d_.store.delete_factor(user, Method::kSms, true));
      // A code texted before must not outlive the phone: re-enrolled, it would work again.
      MFA_STORE_CHECK(m.d_.store.drop_sms_codes(user));
      break;
    case Method::kBackup:
      MFA_STORE_CHECK(m.d_.store.delete_backup_codes(user));
      break;
  }
  MFA_CHECK(
      m.audit("enroll.disable", user, "success", "", caller, {{"method", method_name(*which)}}));
  return {};
}

Result<std::vector<UserInfo>> Authenticator::list_users(const Caller& caller) {
  Impl& m = *impl_;
  MFA_CHECK(m.require_admin(caller, "ListUsers"));
  MFA_STORE_TRY(names, m.d_.store.list_users());
  std::vector<UserInfo> out;
  out.reserve(names.size());
  for (const auto& name : names) {
    MFA_TRY(info, m.user_info(name));
    out.push_back(std::move(info));
  }
  return out;
}

Status Authenticator::reset_user(const Caller& caller, std::string_view user) {
  Impl& m = *impl_;
  MFA_CHECK(m.admin_on_user(caller, user, "ResetUser"));
  MFA_STORE_CHECK(m.d_.store.delete_user(user));
  m.challenges.drop_user(user);
  MFA_CHECK(m.audit("admin.reset", user, "success", "", caller));
  return {};
}

Status Authenticator::unlock(const Caller& caller, std::string_view user) {
  Impl& m = *impl_;
  MFA_CHECK(m.admin_on_user(caller, user, "Unlock"));
  MFA_STORE_CHECK(m.d_.store.put_limits(user, LimitState{}));
  MFA_CHECK(m.audit("admin.unlock", user, "success", "", caller));
  return {};
}

Result<std::vector<AuditRecord>> Authenticator::list_audit_events(const Caller& caller,
                                                                  const AuditFilter& filter) {
  Impl& m = *impl_;
  MFA_CHECK(m.require_admin(caller, "ListAuditEvents"));
  if (filter.limit > dbus::kMaxAuditQueryLimit)
    return invalid("The limit must be at most " + std::to_string(dbus::kMaxAuditQueryLimit));
  if (filter.since_usec < 0)
    return invalid("The start time must not be negative");
  if (!filter.user.empty())
    MFA_CHECK(validate_user_name(filter.user));
  MFA_STORE_TRY(rows, m.d_.store.query_audit(filter));
  return rows;
}

Result<AuditVerification> Authenticator::verify_audit_trail(const Caller& caller) {
  Impl& m = *impl_;
  MFA_CHECK(m.require_admin(caller, "VerifyAuditTrail"));
  MFA_STORE_TRY(v, m.d_.store.verify_audit_chain());
  return v;
}

void Authenticator::drop_caller(std::string_view bus_name) {
  impl_->challenges.drop_caller(bus_name);
}

uint64_t Authenticator::expire_challenges() {
  return impl_->challenges.expire(impl_->d_.clock.monotonic_usec());
}

size_t Authenticator::open_challenges() const {
  return impl_->challenges.size();
}

std::string Authenticator::challenge_user(const Caller& caller, std::string_view challenge) {
  const Challenge* c = impl_->challenges.find(challenge, caller.bus_name);
  return c != nullptr ? c->user : std::string();
}

}  // namespace mfa

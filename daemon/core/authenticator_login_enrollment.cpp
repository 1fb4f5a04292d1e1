// The rollout (docs/rollout.md): a login of a user with no factor, which [Rollout] Deadline=,
// Groups= and the module's `enroll` let enroll a TOTP factor on the spot or skip for now; and the
// enrollment tokens of [Rollout] RequireToken=yes. pam_mfa.so only shows what mfad decides here:
// the secret is made, kept (in the challenge, in memory) and confirmed by mfad.
#include <algorithm>
#include <cctype>
#include <utility>

#include "common/backup_codes.hpp"
#include "common/base32.hpp"
#include "common/crypto.hpp"
#include "common/dbus_names.hpp"
#include "common/enrollment_card.hpp"
#include "common/otp.hpp"
#include "common/otpauth.hpp"
#include "core/authenticator_impl.hpp"
#include "core/rollout.hpp"
#include "core/validation.hpp"

namespace mfa {

namespace {

constexpr size_t kTotpSecretBytes = 20;
constexpr size_t kTokenBytes = 15;  // 120 bits: 24 base32 characters
constexpr int kMaxTokenHours = 8760;

// A typed token without its dashes and spaces, upper case; empty when it holds anything else.
std::string canonical_token(std::string_view typed) {
  std::string out;
  for (char c : typed) {
    if (c == '-' || c == ' ')
      continue;
    const char u = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
    if (!((u >= 'A' && u <= 'Z') || (u >= '2' && u <= '7')))
      return {};
    out.push_back(u);
  }
  return out;
}

// "ABCD-EFGH-...": how a token is shown.
std::string dashed(std::string_view token) {
  std::string out;
  for (size_t i = 0; i < token.size(); i += 4) {
    if (i > 0)
      out.push_back('-');
    out.append(token.substr(i, 4));
  }
  return out;
}

// What the person is told, in one line.
std::string offer_message(const RolloutOffer& offer, bool skip) {
  std::string s;
  if (offer.deadline && skip) {
    s = "Multi-factor authentication becomes mandatory for your account on " +
        format_utc(*offer.deadline) + " (" + std::to_string(offer.days_left) +
        (offer.days_left == 1 ? " day" : " days") + " left).";
  } else {
    s = "Multi-factor authentication is required for your account.";
  }
  if (offer.enroll) {
    s += skip ? " Set it up now with an authenticator app, or press Enter to skip for now."
              : " Set it up now with an authenticator app to log in.";
  } else {
    s += " Set it up with: mfactl enroll totp";
  }
  return s;
}

}  // namespace

bool Authenticator::Impl::token_required(const Caller& caller, const Access& access,
                                         const Factors& f) const {
  // Admins enrolling others need none; root is trusted with every account.
  return d_.config.rollout_require_token && access.self && caller.uid != 0 && !f.any_active();
}

Status Authenticator::Impl::spend_enrollment_token(const Caller& caller, const std::string& user,
                                                   std::string_view token, StringMap details) {
  details["purpose"] = "enrollment-token";
  if (token.empty()) {
    MFA_CHECK(audit(AuditKind::kEnrollBegin, user, AuditOutcome::kDenied,
                    AuditReason::kTokenRequired, caller, details));
    return make_error(Errc::kEnrollmentTokenRequired,
                      "A first enrollment on this host needs an enrollment token from your "
                      "administrator (mfactl enrollment-token USER)");
  }
  auto attempted =
      attempt(caller, user, AuditKind::kAuthFailure, details, [&]() -> Result<CheckOutcome> {
        CheckOutcome out;
        out.reason = AuditReason::kBadToken;
        const std::string canonical = canonical_token(token);
        if (canonical.empty())
          return out;
        // Keyed by the user: a token of another user's never matches.
        std::string data = "enrollment-token";
        data.push_back('\0');
        data.append(user);
        data.push_back('\0');
        data.append(canonical);
        MFA_TRY(hash, backup_hash(user, data));
        secure_erase(data.data(), data.size());
        MFA_STORE_TRY(spent, d_.store.spend_enrollment_token(user, hash, d_.clock.realtime_usec()));
        if (spent)
          out.match = Match{Method::kTotp, std::nullopt, 0};
        return out;
      });
  if (!attempted.ok()) {
    Error e = std::move(attempted).error();
    if (e.code != Errc::kBadCode)
      return e;
    return make_error(Errc::kNotAllowed,
                      "That enrollment token is not valid (wrong, already used, expired, or "
                      "another user's)");
  }
  MFA_CHECK(audit_success(AuditKind::kEnrollToken, user, caller, {{"action", "spent"}}));
  return {};
}

Result<EnrollmentToken> Authenticator::create_enrollment_token(const Caller& caller,
                                                               std::string_view name,
                                                               int valid_hours) {
  Impl& m = *impl_;
  MFA_CHECK(m.require_admin(caller, "CreateEnrollmentToken"));
  MFA_TRY(user, m.account_of(name));
  if (valid_hours < 1 || valid_hours > kMaxTokenHours)
    return invalid_argument("A token is valid for 1 to 8760 hours");
  SecureBytes raw(kTokenBytes);
  if (!random_bytes(raw.span()).ok())
    return make_error(Errc::kInternal, "Could not create a token (no randomness)");
  std::string token = base32_encode(raw.span());
  token.erase(std::remove(token.begin(), token.end(), '='), token.end());
  std::string data = "enrollment-token";
  data.push_back('\0');
  data.append(user);
  data.push_back('\0');
  data.append(token);
  auto hash = m.backup_hash(user, data);
  secure_erase(data.data(), data.size());
  if (!hash.ok()) {
    secure_erase(token.data(), token.size());
    return std::move(hash).error();
  }
  const int64_t now = m.d_.clock.realtime_usec();
  const int64_t expires = now + static_cast<int64_t>(valid_hours) * 3600 * kUsecPerSecond;
  EnrollmentToken out;
  out.token = SecureString(dashed(token));
  secure_erase(token.data(), token.size());
  out.expires = static_cast<uint64_t>(expires / kUsecPerSecond);
  MFA_STORE_CHECK(m.d_.store.put_enrollment_token(user, *hash, now, expires));
  MFA_CHECK(m.audit_success(AuditKind::kEnrollToken, user, caller,
                            {{"action", "created"},
                             {"valid_hours", std::to_string(valid_hours)},
                             {"expires", std::to_string(out.expires)}}));
  return out;
}

Result<std::optional<BeginResult>> Authenticator::Impl::rollout_begin(
    const Caller& caller, const std::string& user, const RolloutRequest& request,
    const StringMap& challenge_context, StringMap details) {
  const auto uid = account_key_uid(user);
  if (uid && !rollout_requires(d_.config, d_.users, *uid)) {
    details["required"] = "no";
    MFA_CHECK(audit(AuditKind::kAuthNotEnrolled, user, AuditOutcome::kInfo,
                    AuditReason::kNotEnrolled, caller, details));
    return make_error(Errc::kNotRequired,
                      "No second factor is enrolled for this user, and none is required "
                      "([Rollout] Groups=)");
  }
  const int64_t now_s = d_.clock.now_seconds();
  std::optional<RolloutOffer> offer = rollout_offer(d_.config, request.module_enrolls, now_s);
  // nullok is the service's own opt-out: it may skip while there is no deadline, never after one.
  const bool nullok_skip = request.nullok && !d_.config.rollout_deadline;
  if (!offer && !nullok_skip) {
    if (!d_.config.rollout_deadline)
      return std::optional<BeginResult>();  // NotEnrolled, as without a rollout
    details["deadline"] = std::to_string(*d_.config.rollout_deadline);
    MFA_CHECK(audit(AuditKind::kAuthNotEnrolled, user, AuditOutcome::kDenied,
                    AuditReason::kNotEnrolled, caller, details));
    return make_error(Errc::kEnrollmentRequired,
                      "The deadline to set up multi-factor authentication (" +
                          format_utc(*d_.config.rollout_deadline) +
                          ") has passed; ask your administrator");
  }
  if (!offer) {
    // nullok alone, no enroll: NotEnrolled, which the module turns into PAM_IGNORE as ever.
    return std::optional<BeginResult>();
  }
  LoginEnrollment rollout;
  rollout.enroll = offer->enroll;
  rollout.skip = offer->skip || nullok_skip;

  const auto per_user = static_cast<size_t>(std::max(1, d_.config.max_challenges_per_user));
  const auto per_caller = static_cast<size_t>(std::max(1, d_.config.max_challenges_per_caller));
  if (challenges.open_for_user(user) >= per_user ||
      challenges.open_for_caller(challenge_owner(caller)) >= per_caller) {
    MFA_CHECK(audit(AuditKind::kAuthBegin, user, AuditOutcome::kDenied,
                    AuditReason::kTooManyChallenges, caller, details));
    return make_error(Errc::kLimitExceeded, "Too many authentications are in progress");
  }
  const uint64_t timeout =
      static_cast<uint64_t>(std::max(1, d_.config.challenge_timeout_seconds)) * kUsecPerSecond;
  MFA_TRY(c, challenges.create(user, challenge_owner(caller), {}, challenge_context,
                               d_.clock.monotonic_usec() + timeout));
  c->rollout = std::move(rollout);
  BeginResult result;
  result.challenge = c->id;
  if (c->rollout->enroll)
    result.methods.emplace_back(dbus::kOfferEnroll);
  if (c->rollout->skip)
    result.methods.emplace_back(dbus::kOfferSkip);
  std::string offered;
  for (const auto& o : result.methods)
    offered += (offered.empty() ? "" : ",") + o;
  details["methods"] = offered;
  if (auto st = audit_success(AuditKind::kAuthBegin, user, caller, details); !st.ok()) {
    challenges.erase(result.challenge);
    return std::move(st).error();
  }
  return std::optional<BeginResult>(std::move(result));
}

namespace {

// The open rollout challenge of caller's, or the error to answer.
Result<Challenge*> rollout_challenge(ChallengeTable& table, const Clock& clock,
                                     const Caller& caller, std::string_view id) {
  Challenge* c = table.find(id, challenge_owner(caller));
  if (!c || c->done || !c->rollout)
    return make_error(Errc::kNoSuchChallenge, "No such login enrollment is in progress");
  if (clock.monotonic_usec() >= c->expires_usec) {
    table.erase(id);
    return make_error(Errc::kChallengeExpired, "The login took too long; start again");
  }
  return c;
}

}  // namespace

Result<LoginEnrollmentInfo> Authenticator::get_login_enrollment(const Caller& caller,
                                                                std::string_view challenge) {
  Impl& m = *impl_;
  MFA_CHECK(m.require_root(caller, "GetLoginEnrollment"));
  MFA_TRY(c, rollout_challenge(m.challenges, m.d_.clock, caller, challenge));
  const int64_t now_s = m.d_.clock.now_seconds();
  RolloutOffer offer;
  offer.enroll = c->rollout->enroll;
  offer.deadline = m.d_.config.rollout_deadline;
  if (offer.deadline)
    offer.days_left = days_left(*offer.deadline, now_s);
  LoginEnrollmentInfo info;
  info.enroll = c->rollout->enroll;
  info.skip = c->rollout->skip;
  info.token_required = m.d_.config.rollout_require_token && !c->rollout->token_checked;
  info.deadline = offer.deadline ? static_cast<uint64_t>(std::max<int64_t>(0, *offer.deadline)) : 0;
  info.days_left = static_cast<uint32_t>(std::clamp<int64_t>(offer.days_left, 0, 1000000));
  info.message = offer_message(offer, info.skip);
  return info;
}

Result<std::vector<SecureString>> Authenticator::begin_login_enrollment(const Caller& caller,
                                                                        std::string_view challenge,
                                                                        std::string_view token) {
  Impl& m = *impl_;
  MFA_CHECK(m.require_root(caller, "BeginLoginEnrollment"));
  if (token.size() > dbus::kMaxTokenLength)
    return invalid_argument("The token is too long");
  MFA_TRY(c, rollout_challenge(m.challenges, m.d_.clock, caller, challenge));
  if (!c->rollout->enroll)
    return m.deny(caller, c->user, "BeginLoginEnrollment",
                  "This login does not offer enrollment (the service lacks the argument enroll)");
  const std::string user = c->user;
  const std::string challenge_id(challenge);
  StringMap details = c->context;
  details["method"] = "totp";
  details["via"] = "login";
  // The answer is read again: an admin may have enrolled the user since BeginAuthentication.
  MFA_TRY(f, m.load_factors(user));
  if (f.any_active())
    return make_error(Errc::kAlreadyEnrolled,
                      "This account has a second factor by now; log in again to use it");
  // The notice before the token: a login that declined it is refused (and audited) here.
  MFA_CHECK(m.require_notice_acceptance(caller, user, details));
  if (m.d_.config.rollout_require_token && !c->rollout->token_checked) {
    MFA_CHECK(m.spend_enrollment_token(caller, user, token, details));
    // The challenge may have gone meanwhile (it is looked up again, never kept across calls).
    MFA_TRY(again, rollout_challenge(m.challenges, m.d_.clock, caller, challenge_id));
    again->rollout->token_checked = true;
    c = again;
  }

  SecureBytes secret(kTotpSecretBytes);
  if (!random_bytes(secret.span()).ok())
    return make_error(Errc::kInternal, "Could not create a secret (no randomness)");
  TotpParams params = m.d_.config.totp;
  const std::string issuer =
      m.d_.config.issuer.empty() ? default_totp_issuer() : m.d_.config.issuer;
  OtpauthUri uri;
  uri.issuer = issuer;
  uri.account = account_display_name(m.d_.users, user);
  uri.secret = secret.clone();
  uri.params = params;
  SecureString otpauth = build_otpauth_uri(uri);
  SecureString b32;
  {
    std::string s = base32_encode(secret.span());
    s.erase(std::remove(s.begin(), s.end(), '='), s.end());
    b32 = SecureString(s);
    secure_erase(s.data(), s.size());
  }
  MFA_TRY(lines, enrollment_card(otpauth.view(), b32.view(), dbus::kMaxEnrollmentLineLength));
  if (lines.size() > dbus::kMaxEnrollmentLines)
    return make_error(Errc::kInternal, "The enrollment does not fit the login's messages");
  m.use_notice_acceptance(user);
  c->rollout->secret = std::move(secret);
  c->rollout->params = params;
  c->rollout->issuer = issuer;
  details["algorithm"] = otp_algorithm_name(params.algorithm);
  details["digits"] = std::to_string(params.digits);
  details["period"] = std::to_string(params.period);
  details["issuer"] = issuer;
  MFA_CHECK(m.audit_success(AuditKind::kEnrollBegin, user, caller, details));
  return lines;
}

Result<std::vector<SecureString>> Authenticator::confirm_login_enrollment(
    const Caller& caller, std::string_view challenge, std::string_view code) {
  Impl& m = *impl_;
  MFA_CHECK(m.require_root(caller, "ConfirmLoginEnrollment"));
  MFA_CHECK(validate_code_length(code));
  MFA_TRY(c, rollout_challenge(m.challenges, m.d_.clock, caller, challenge));
  if (!c->rollout->secret)
    return make_error(Errc::kNoPendingEnrollment,
                      "No enrollment was begun in this login; call BeginLoginEnrollment first");
  const std::string user = c->user;
  const std::string challenge_id(challenge);
  SecureBytes seed = c->rollout->secret->clone();
  const TotpParams params = c->rollout->params;
  StringMap details = c->context;
  details["method"] = "totp";
  details["via"] = "login";
  MFA_TRY(f, m.load_factors(user));
  if (f.any_active())
    return make_error(Errc::kAlreadyEnrolled,
                      "This account has a second factor by now; log in again to use it");

  MFA_TRY(match, confirm_new_totp(m, caller, user, details, seed.span(), params, code));

  auto sealed = m.data_keys().seal(user, seed.span(), user, kSealTotp);
  if (!sealed.ok())
    return make_error(Errc::kInternal, "Could not seal the secret");
  // The first authenticator, enrolled at login: the device "default".
  MFA_CHECK(put_factor(m, user, Method::kTotp, false, std::move(sealed).value(),
                       format_totp_params(params), kDefaultTotpDevice));
  if (f.totp_pending)
    MFA_STORE_CHECK(m.d_.store.delete_factor(user, Method::kTotp, true));
  // The confirming code must not open another login as well.
  MFA_STORE_CHECK(m.d_.store.set_totp_watermark(user, kDefaultTotpDevice, match.step));

  MFA_TRY(codes, replace_backup_codes(m, user));

  if (Challenge* again = m.challenges.find(challenge_id, challenge_owner(caller))) {
    again->rollout->secret.reset();
    m.challenges.mark_done(again);
  }
  if (match.drift)
    details["drift"] = std::to_string(*match.drift);
  MFA_CHECK(m.audit_success(AuditKind::kEnrollConfirm, user, caller, details));
  MFA_CHECK(m.audit_success(AuditKind::kBackupGenerate, user, caller,
                            {{"count", std::to_string(codes.size())}, {"via", "login"}}));
  // Shown as people read them ("ABCD-EFGH"), once.
  std::vector<SecureString> shown;
  for (const auto& bc : codes) {
    std::string formatted = format_backup_code(bc.view());
    shown.emplace_back(formatted);
    secure_erase(formatted.data(), formatted.size());
  }
  StringMap login = c->context;
  login["method"] = "totp";
  login["enrolled"] = "yes";
  MFA_CHECK(m.audit_success(AuditKind::kAuthSuccess, user, caller, login));
  return shown;
}

Status Authenticator::skip_enrollment(const Caller& caller, std::string_view challenge) {
  Impl& m = *impl_;
  MFA_CHECK(m.require_root(caller, "SkipEnrollment"));
  MFA_TRY(c, rollout_challenge(m.challenges, m.d_.clock, caller, challenge));
  const std::string user = c->user;
  const std::string challenge_id(challenge);
  StringMap details = c->context;
  // Decided again now: the deadline may have passed, or been set, since BeginAuthentication.
  const int64_t now_s = m.d_.clock.now_seconds();
  const auto& deadline = m.d_.config.rollout_deadline;
  const bool still = c->rollout->skip && (deadline ? now_s < *deadline : true);
  if (!still) {
    if (deadline)
      details["deadline"] = std::to_string(*deadline);
    return m.deny(caller, user, "SkipEnrollment",
                  "Skipping is no longer allowed: the deadline to set up multi-factor "
                  "authentication has passed");
  }
  MFA_TRY(f, m.load_factors(user));
  if (f.any_active())
    return make_error(Errc::kAlreadyEnrolled,
                      "This account has a second factor by now; log in again to use it");
  if (deadline) {
    details["deadline"] = std::to_string(*deadline);
    details["days_left"] = std::to_string(days_left(*deadline, now_s));
  }
  if (Challenge* again = m.challenges.find(challenge_id, challenge_owner(caller)))
    m.challenges.mark_done(again);
  MFA_CHECK(m.audit(AuditKind::kAuthNotEnrolled, user, AuditOutcome::kInfo,
                    AuditReason::kEnrollmentSkipped, caller, details));
  return {};
}

}  // namespace mfa

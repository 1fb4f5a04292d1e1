// Self-service or admin changes of a user's factors: TOTP and SMS enrollment (two-phase: pending,
// then confirmed by a code), backup codes, disabling a factor. Step-up applies (docs/mfactl.md).
#include <set>
#include <utility>

#include "common/backup_codes.hpp"
#include "common/base32.hpp"
#include "common/crypto.hpp"
#include "common/host_name.hpp"
#include "common/otp.hpp"
#include "common/otpauth.hpp"
#include "common/totp_issuer.hpp"
#include "core/authenticator_impl.hpp"
#include "core/sms_phone.hpp"
#include "core/validation.hpp"

namespace mfa {

Result<Verifier::Match> confirm_new_totp(Verifier& v, const Caller& caller, std::string_view user,
                                         const StringMap& details, std::span<const uint8_t> seed,
                                         const TotpParams& params, std::string_view code) {
  const int64_t now_s = v.d_.clock.now_seconds();
  return v.attempt(
      caller, user, AuditKind::kEnrollConfirm, details, [&]() -> Result<Verifier::CheckOutcome> {
        Verifier::CheckOutcome out;
        if (!Verifier::all_digits(code))
          return out;
        const auto step = totp_verify(seed, code, params, now_s, v.window(), std::nullopt);
        if (step)
          out.match = Verifier::totp_match(*step, now_s, params.period);
        return out;
      });
}

Status put_factor(Verifier& v, std::string_view user, Method method, bool pending,
                  std::vector<uint8_t> sealed, std::string params, std::string device) {
  FactorRecord record;
  record.method = method;
  record.device = std::move(device);
  record.pending = pending;
  record.sealed = std::move(sealed);
  record.params = std::move(params);
  record.created_usec = v.d_.clock.realtime_usec();
  MFA_STORE_CHECK(v.d_.store.put_factor(user, record));
  return {};
}

Result<std::vector<SecureString>> replace_backup_codes(Verifier& v, std::string_view user) {
  std::vector<SecureString> codes = mfa::generate_backup_codes(kBackupCodeCount);
  if (codes.size() != static_cast<size_t>(kBackupCodeCount))
    return make_error(Errc::kInternal, "Could not generate backup codes");
  std::vector<CodeHash> hashes;
  hashes.reserve(codes.size());
  for (const auto& c : codes) {
    MFA_TRY(h, v.backup_hash(user, c.view()));
    hashes.push_back(h);
  }
  MFA_STORE_CHECK(v.d_.store.replace_backup_codes(user, hashes));
  return codes;
}

namespace {

constexpr size_t kTotpSecretBytes = 20;  // 160 bits, RFC 4226 §4 R6 recommendation

// The confirmed factor replaces its pending record.
Status activate_factor(Verifier& v, std::string_view user, Method method,
                       std::vector<uint8_t> sealed, std::string params) {
  MFA_CHECK(put_factor(v, user, method, false, std::move(sealed), std::move(params)));
  MFA_STORE_CHECK(v.d_.store.delete_factor(user, method, true));
  return {};
}

const FactorRecord* find_device(const Verifier::Factors& f, std::string_view device) {
  for (const auto& d : f.totp_devices)
    if (d.device == device)
      return &d;
  return nullptr;
}

std::string device_names(const Verifier::Factors& f) {
  std::string s;
  for (const auto& d : f.totp_devices)
    s += (s.empty() ? "" : ", ") + d.device;
  return s;
}

// Whether device may become one more active TOTP device of f's user (AlreadyEnrolled,
// LimitExceeded).
Status check_new_device(const Verifier::Factors& f, std::string_view device) {
  if (find_device(f, device))
    return make_error(Errc::kAlreadyEnrolled, "A TOTP device named " + std::string(device) +
                                                  " is already enrolled for this user; disable "
                                                  "it first (totp --name " +
                                                  std::string(device) + ")");
  if (f.totp_devices.size() >= static_cast<size_t>(kMaxTotpDevices))
    return make_error(Errc::kLimitExceeded,
                      "This user has " + std::to_string(kMaxTotpDevices) +
                          " TOTP devices, the most there can be; disable one first");
  return {};
}

}  // namespace

std::string default_totp_issuer() {
  auto name = host_name();
  if (!name.ok() || name->empty() || check_totp_issuer(*name) != IssuerProblem::kNone)
    return "mfad";
  return *name;
}

Result<SmsMessage> Authenticator::begin_sms_enrollment(const Caller& caller, std::string_view name,
                                                       std::string_view phone_e164,
                                                       std::string_view current_code) {
  Impl& m = *impl_;
  MFA_TRY(access, m.authorize(caller, name, "BeginSmsEnrollment"));
  const std::string& user = access.account;
  MFA_CHECK(validate_code_length(current_code));
  MFA_CHECK(validate_e164(phone_e164));
  if (m.d_.config.sms_provider == SmsProvider::kNone)
    return make_error(Errc::kSmsUnavailable,
                      "SMS is not configured on this host ([SMS] Provider=none)");
  // Premium-rate numbers are how SMS pumping pays: the admin may allow only the countries users
  // live in. The message names the allowed prefixes, never the number.
  if (!phone_allowed(phone_e164, m.d_.config.sms_allowed_prefixes)) {
    std::string allowed;
    for (const auto& prefix : m.d_.config.sms_allowed_prefixes)
      allowed += (allowed.empty() ? "" : " ") + prefix;
    return invalid_argument("This host sends texts only to numbers starting with " + allowed +
                            " ([SMS] AllowedPrefixes=)");
  }
  MFA_TRY(f, m.load_factors(user));
  if (f.sms)
    return make_error(Errc::kAlreadyEnrolled,
                      "A phone is already enrolled for this user; disable sms first");
  MFA_CHECK(m.require_notice_acceptance(caller, user, {{"method", "sms"}}));
  const SecureString phone(phone_e164);
  // Self-service only: admins are trusted with their users' numbers.
  if (!access.admin)
    MFA_CHECK(m.sms.check_phone_change(caller, user, phone));
  MFA_CHECK(m.step_up(caller, user, access, current_code, f, "enroll sms"));
  // [Rollout] RequireToken=yes: a first enrollment of one's own carries the token where a
  // current code would go (docs/rollout.md).
  if (m.token_required(caller, access, f))
    MFA_CHECK(m.spend_enrollment_token(caller, user, current_code, {{"method", "sms"}}));

  MFA_TRY(sealed, m.sms.seal_phone(phone.view(), user, kSealSmsPending));
  const std::string masked = mask_phone(phone.view());
  MFA_CHECK(put_factor(m, user, Method::kSms, true, std::move(sealed), masked));
  m.use_notice_acceptance(user);
  MFA_CHECK(m.audit_success(AuditKind::kEnrollBegin, user, caller,
                            {{"method", "sms"}, {"phone", masked}}));
  return m.sms.issue(caller, user, phone, kSmsPurposeEnroll, {{"method", "sms"}});
}

Status Authenticator::confirm_sms_enrollment(const Caller& caller, std::string_view name,
                                             std::string_view code) {
  Impl& m = *impl_;
  MFA_TRY(access, m.authorize(caller, name, "ConfirmSmsEnrollment"));
  const std::string& user = access.account;
  MFA_CHECK(validate_code_length(code));
  MFA_TRY(f, m.load_factors(user));
  if (!f.sms_pending)
    return make_error(Errc::kNoPendingEnrollment,
                      "No phone is pending for this user; run enroll sms first");
  if (f.sms)
    return make_error(Errc::kAlreadyEnrolled,
                      "A phone is already enrolled for this user; disable sms first");
  StringMap details{{"method", "sms"}, {"phone", f.sms_pending->params}};
  MFA_TRY(match, m.attempt(caller, user, AuditKind::kEnrollConfirm, details,
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
  MFA_CHECK(activate_factor(m, user, Method::kSms, std::move(sealed), f.sms_pending->params));
  MFA_CHECK(m.audit_success(AuditKind::kEnrollConfirm, user, caller, details));
  return {};
}

Result<TotpEnrollment> Authenticator::begin_totp_enrollment(const Caller& caller,
                                                            std::string_view name,
                                                            const TotpEnrollmentOptions& options) {
  Impl& m = *impl_;
  MFA_TRY(access, m.authorize(caller, name, "BeginTotpEnrollment"));
  const std::string& user = access.account;

  std::string issuer = options.issuer;
  if (!issuer.empty()) {
    MFA_CHECK(validate_issuer(issuer));
  } else {
    issuer = m.d_.config.issuer.empty() ? default_totp_issuer() : m.d_.config.issuer;
  }
  TotpParams params = m.d_.config.totp;
  if (!options.algorithm.empty()) {
    const auto alg = parse_otp_algorithm(options.algorithm);
    if (!alg)
      return invalid_argument("The algorithm must be SHA1, SHA256 or SHA512");
    params.algorithm = *alg;
  }
  if (options.digits != 0) {
    if (options.digits < 6 || options.digits > 8)
      return invalid_argument("Digits must be 6, 7 or 8");
    params.digits = options.digits;
  }
  MFA_CHECK(validate_code_length(options.current_code.view()));
  const std::string device = options.device.empty() ? kDefaultTotpDevice : options.device;
  MFA_CHECK(validate_device_name(device));

  MFA_TRY(f, m.load_factors(user));
  MFA_CHECK(check_new_device(f, device));
  MFA_CHECK(m.require_notice_acceptance(caller, user, {{"method", "totp"}, {"device", device}}));
  MFA_CHECK(m.step_up(caller, user, access, options.current_code.view(), f, "enroll totp"));
  if (m.token_required(caller, access, f))
    MFA_CHECK(
        m.spend_enrollment_token(caller, user, options.current_code.view(), {{"method", "totp"}}));

  SecureBytes secret(kTotpSecretBytes);
  if (!random_bytes(secret.span()).ok())
    return make_error(Errc::kInternal, "Could not create a secret (no randomness)");
  auto sealed = m.data_keys().seal(user, secret.span(), user, kSealTotpPending);
  if (!sealed.ok())
    return make_error(Errc::kInternal, "Could not seal the new secret");
  // One pending enrollment at a time: a new one replaces it, whichever device it was for.
  MFA_STORE_CHECK(m.d_.store.delete_factor(user, Method::kTotp, true));
  MFA_CHECK(put_factor(m, user, Method::kTotp, true, std::move(sealed).value(),
                       format_totp_params(params), device));
  m.use_notice_acceptance(user);

  TotpEnrollment out;
  {
    std::string b32 = base32_encode(secret.span());
    out.secret_base32 = SecureString(b32);
    secure_erase(b32.data(), b32.size());
  }
  OtpauthUri uri;
  uri.issuer = issuer;
  uri.account = std::string(name);
  uri.secret = secret.clone();
  uri.params = params;
  out.otpauth_uri = build_otpauth_uri(uri);

  MFA_CHECK(m.audit_success(AuditKind::kEnrollBegin, user, caller,
                            {{"method", "totp"},
                             {"device", device},
                             {"algorithm", otp_algorithm_name(params.algorithm)},
                             {"digits", std::to_string(params.digits)},
                             {"period", std::to_string(params.period)},
                             {"issuer", issuer}}));
  return out;
}

Status Authenticator::confirm_totp_enrollment(const Caller& caller, std::string_view name,
                                              std::string_view code) {
  Impl& m = *impl_;
  MFA_TRY(access, m.authorize(caller, name, "ConfirmTotpEnrollment"));
  const std::string& user = access.account;
  MFA_CHECK(validate_code_length(code));
  MFA_TRY(f, m.load_factors(user));
  if (!f.totp_pending)
    return make_error(Errc::kNoPendingEnrollment,
                      "No TOTP enrollment is pending for this user; begin one first");
  const std::string device =
      f.totp_pending->device.empty() ? kDefaultTotpDevice : f.totp_pending->device;
  MFA_CHECK(check_new_device(f, device));
  MFA_TRY(params, m.record_params(*f.totp_pending));
  MFA_TRY(seed, m.open_seed(*f.totp_pending, user, kSealTotpPending));

  StringMap details{{"method", "totp"}, {"device", device}};
  MFA_TRY(match, confirm_new_totp(m, caller, user, details, seed.span(), params, code));

  auto sealed = m.data_keys().seal(user, seed.span(), user, kSealTotp);
  if (!sealed.ok())
    return make_error(Errc::kInternal, "Could not seal the secret");
  MFA_CHECK(put_factor(m, user, Method::kTotp, false, std::move(sealed).value(),
                       f.totp_pending->params, device));
  MFA_STORE_CHECK(m.d_.store.delete_totp_device(user, f.totp_pending->device, true));
  // The confirming code must not open a login as well.
  MFA_STORE_CHECK(m.d_.store.set_totp_watermark(user, device, match.step));
  if (match.drift)
    details["drift"] = std::to_string(*match.drift);
  MFA_CHECK(m.audit_success(AuditKind::kEnrollConfirm, user, caller, details));
  return {};
}

Result<std::vector<SecureString>> Authenticator::generate_backup_codes(
    const Caller& caller, std::string_view name, std::string_view current_code) {
  Impl& m = *impl_;
  MFA_TRY(access, m.authorize(caller, name, "GenerateBackupCodes"));
  const std::string& user = access.account;
  MFA_TRY(f, m.load_factors(user));
  MFA_CHECK(m.step_up(caller, user, access, current_code, f, "backup-codes"));

  MFA_TRY(codes, replace_backup_codes(m, user));
  MFA_CHECK(m.audit_success(AuditKind::kBackupGenerate, user, caller,
                            {{"count", std::to_string(codes.size())}}));
  return codes;
}

Status Authenticator::disable_method(const Caller& caller, std::string_view name,
                                     std::string_view method, std::string_view current_code) {
  Impl& m = *impl_;
  MFA_TRY(access, m.authorize(caller, name, "DisableMethod"));
  const std::string& user = access.account;
  // "totp:NAME": one TOTP device.
  std::optional<std::string> device;
  std::string_view method_part = method;
  if (const size_t colon = method.find(':'); colon != std::string_view::npos) {
    method_part = method.substr(0, colon);
    if (method_part != method_name(Method::kTotp))
      return invalid_argument("Only totp takes a device name (totp:NAME)");
    device = std::string(method.substr(colon + 1));
    MFA_CHECK(validate_device_name(*device));
  }
  const auto which = parse_method(method_part);
  if (!which)
    return invalid_argument("Unknown method (expected totp, totp:NAME, sms or backup)");
  MFA_TRY(f, m.load_factors(user));
  bool enrolled = false;
  const bool device_pending =
      device && f.totp_pending &&
      (f.totp_pending->device.empty() ? kDefaultTotpDevice : f.totp_pending->device) == *device;
  switch (*which) {
    case Method::kTotp:
      if (device) {
        enrolled = find_device(f, *device) || device_pending;
        if (!enrolled)
          return make_error(Errc::kNotEnrolled,
                            "No TOTP device named " + *device + " is enrolled for this user");
      } else if (f.totp_devices.size() > 1) {
        return invalid_argument("This user has " + std::to_string(f.totp_devices.size()) +
                                " TOTP devices (" + device_names(f) +
                                "): name the one to remove (totp:NAME, or --name NAME)");
      } else {
        enrolled = f.totp || f.totp_pending;
      }
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
      if (device) {
        if (find_device(f, *device))
          MFA_STORE_CHECK(m.d_.store.delete_totp_device(user, *device, false));
        if (device_pending)
          MFA_STORE_CHECK(m.d_.store.delete_totp_device(user, f.totp_pending->device, true));
        break;
      }
      for (const auto& d : f.totp_devices)
        MFA_STORE_CHECK(m.d_.store.delete_totp_device(user, d.device, false));
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
  StringMap details{{"method", method_name(*which)}};
  if (device)
    details["device"] = *device;
  MFA_CHECK(m.audit_success(AuditKind::kEnrollDisable, user, caller, details));
  return {};
}

}  // namespace mfa

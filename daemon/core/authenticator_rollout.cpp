// The admin-only methods of a rollout (docs/admin-guide.md, "Rolling out"): ImportTotp (an
// authenticator the user already has, from google-authenticator's or pam_oath's files),
// GetReport (adoption and outcomes) and CheckHealth (what `mfactl doctor` cannot see itself).
#include <algorithm>
#include <map>
#include <set>

#include "common/backup_codes.hpp"
#include "common/dbus_names.hpp"
#include "core/authenticator_impl.hpp"
#include "core/login_accounts.hpp"
#include "core/validation.hpp"

namespace mfa {

namespace {

// RFC 4226 §4 R6 asks for 128 bits and recommends 160; google-authenticator writes 80 (16 base32
// characters). Shorter seeds are refused: they are guessable offline from a few codes.
constexpr size_t kMinImportedSecretBytes = 10;
constexpr size_t kMaxImportedSecretBytes = 64;
constexpr size_t kMaxImportedBackupCodes = 20;
constexpr int kMinPeriod = 10;
constexpr int kMaxPeriod = 120;

Status validate_source(std::string_view source) {
  if (source.size() > dbus::kMaxDeviceNameLength)
    return invalid_argument("The import's source name is too long");
  return validate_device_name(source.empty() ? "imported" : source);
}

// A login: BeginAuthentication's verification (step-ups carry purpose "step-up").
bool is_login(const AuditCount& c) {
  return c.purpose.empty();
}

}  // namespace

Result<TotpImportResult> Authenticator::import_totp(const Caller& caller, std::string_view name,
                                                    const TotpImport& import) {
  Impl& m = *impl_;
  MFA_CHECK(m.require_admin(caller, "ImportTotp"));
  MFA_CHECK(validate_user_name(name));
  // Only an account NSS knows: an imported factor must belong to someone who can log in.
  MFA_TRY(user, m.account_of(name));
  // A named device (issue 19), in fleet mode too.
  const std::string device = import.name.empty() ? "imported" : import.name;
  MFA_CHECK(validate_device_name(import.name.empty() ? "imported" : import.name));
  MFA_CHECK(validate_source(import.source));
  if (import.secret.size() < kMinImportedSecretBytes)
    return invalid_argument("The secret is shorter than 80 bits; enroll a new authenticator");
  if (import.secret.size() > kMaxImportedSecretBytes)
    return invalid_argument("The secret is longer than 512 bits");
  const TotpParams& params = import.params;
  if (params.digits < 6 || params.digits > 8)
    return invalid_argument("Digits must be 6, 7 or 8");
  if (params.period < kMinPeriod || params.period > kMaxPeriod)
    return invalid_argument("The time step must be 10 to 120 seconds");
  if (import.backup_codes.size() > kMaxImportedBackupCodes)
    return invalid_argument("At most 20 backup codes can be imported");
  std::vector<CodeHash> hashes;
  for (const auto& code : import.backup_codes) {
    auto canonical = canonical_backup_code(code.view());
    if (!canonical)
      return invalid_argument("A scratch code is neither 8 digits nor a backup code of mfad's");
    MFA_TRY(h, m.backup_hash(user, canonical->view()));
    if (std::find(hashes.begin(), hashes.end(), h) == hashes.end())
      hashes.push_back(h);
  }

  MFA_TRY(f, m.load_factors(user));
  const bool has_factor = f.totp || f.totp_pending || f.sms || f.sms_pending || f.backup_left > 0;
  if (has_factor && !import.force) {
    return make_error(Errc::kAlreadyEnrolled,
                      "This user already has a second factor; nothing was imported (--force "
                      "replaces their TOTP authenticator and backup codes)");
  }
  if (has_factor)
    MFA_CHECK(m.admin_on_own_account(caller, name, Impl::OwnAccountChange::kReset));

  auto sealed = m.data_keys().seal(user, import.secret.span(), user, kSealTotp);
  if (!sealed.ok())
    return make_error(Errc::kInternal, "Could not seal the secret");
  // --force replaces the user's TOTP devices, whatever their names.
  for (const auto& d : f.totp_devices)
    MFA_STORE_CHECK(m.d_.store.delete_totp_device(user, d.device, false));
  MFA_CHECK(put_factor(m, user, Method::kTotp, false, std::move(sealed).value(),
                       format_totp_params(params), device));
  if (f.totp_pending)
    MFA_STORE_CHECK(m.d_.store.delete_factor(user, Method::kTotp, true));
  // The old system may have accepted the code of the step before this one a moment ago: that
  // code must not open a login here too (google-authenticator's DISALLOW_REUSE, pam_oath's
  // counter). The current step and the window ahead stay open.
  const uint64_t now_step =
      static_cast<uint64_t>(m.d_.clock.now_seconds()) / static_cast<uint64_t>(params.period);
  MFA_STORE_CHECK(m.d_.store.set_totp_watermark(user, device, now_step > 0 ? now_step - 1 : 0));
  if (!hashes.empty())
    MFA_STORE_CHECK(m.d_.store.replace_backup_codes(user, hashes));
  m.challenges.drop_user(user);

  TotpImportResult out;
  out.backup_codes = static_cast<uint32_t>(hashes.size());
  out.replaced = has_factor;
  MFA_CHECK(m.audit_success(AuditKind::kEnrollImport, user, caller,
                            {{"method", "totp"},
                             {"source", import.source.empty() ? "imported" : import.source},
                             {"name", device},
                             {"algorithm", otp_algorithm_name(params.algorithm)},
                             {"digits", std::to_string(params.digits)},
                             {"period", std::to_string(params.period)},
                             {"backup_codes", std::to_string(out.backup_codes)},
                             {"replaced", has_factor ? "yes" : "no"}}));
  return out;
}

Result<AdoptionReport> Authenticator::adoption_report(const Caller& caller, int64_t since_usec) {
  Impl& m = *impl_;
  MFA_CHECK(m.require_admin(caller, "GetReport"));
  if (since_usec < 0)
    return invalid_argument("The start time must not be negative");
  AdoptionReport r;
  r.since_usec = since_usec;

  // Population: login accounts, plus whoever is enrolled outside them (root, a service account).
  MFA_TRY(accounts, list_login_accounts());
  std::map<std::string, std::string> group_of;  // account key → primary group
  for (const auto& a : accounts)
    group_of[account_key(a.uid)] = a.group;
  MFA_STORE_TRY(keys, m.d_.store.list_users());
  std::set<std::string> enrolled;
  for (const auto& key : keys) {
    MFA_TRY(f, m.load_factors(key));
    if (!f.any_active())
      continue;
    enrolled.insert(key);
    r.totp += f.totp ? 1 : 0;
    r.sms += f.sms ? 1 : 0;
    r.backup += f.backup_left > 0 ? 1 : 0;
    if (!group_of.count(key)) {
      const auto uid = account_key_uid(key);
      std::string group = uid ? primary_group_of(*uid) : "";
      group_of[key] = group.empty() ? "-" : group;
    }
  }
  r.users_total = group_of.size();
  r.users_enrolled = enrolled.size();
  std::map<std::string, GroupAdoption> groups;
  for (const auto& [key, group] : group_of) {
    GroupAdoption& g = groups[group];
    g.group = group;
    ++g.total;
    g.enrolled += enrolled.count(key);
  }
  for (auto& [name, g] : groups)
    r.groups.push_back(std::move(g));

  const std::vector<std::string> kinds{
      audit_kind_name(AuditKind::kAuthSuccess), audit_kind_name(AuditKind::kAuthFailure),
      audit_kind_name(AuditKind::kAuthLockout), audit_kind_name(AuditKind::kSmsSent),
      audit_kind_name(AuditKind::kSmsFailed)};
  MFA_STORE_TRY(counts, m.d_.store.count_audit(since_usec, kinds));
  for (const auto& c : counts) {
    if (c.kind == audit_kind_name(AuditKind::kAuthSuccess) && is_login(c))
      r.logins_success += c.count;
    else if (c.kind == audit_kind_name(AuditKind::kAuthFailure) && is_login(c))
      r.logins_failure += c.count;
    else if (c.kind == audit_kind_name(AuditKind::kAuthLockout))
      r.lockouts += c.count;
    else if (c.kind == audit_kind_name(AuditKind::kSmsSent))
      r.sms_sent += c.count;
    else if (c.kind == audit_kind_name(AuditKind::kSmsFailed))
      r.sms_failed += c.count;
  }
  MFA_STORE_TRY(tally, m.d_.store.tally_degraded(since_usec, /*current_period=*/false));
  r.degraded = tally;
  // Sessions: this host's (fleet mode's are the registry's too).
  auto sessions = m.d_.store.list_sessions("");
  if (sessions.ok())
    r.sessions_open = sessions->size();
  return r;
}

Result<HealthReport> Authenticator::check_health(const Caller& caller) {
  Impl& m = *impl_;
  MFA_CHECK(m.require_admin(caller, "CheckHealth"));
  HealthReport h;
  MFA_STORE_TRY(problem, m.d_.store.check_integrity());
  h.database_problem = std::move(problem);
  return h;
}

}  // namespace mfa

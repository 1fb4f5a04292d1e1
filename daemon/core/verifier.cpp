#include "core/verifier.hpp"

#include <algorithm>
#include <cstring>

#include <openssl/crypto.h>

#include "common/backup_codes.hpp"
#include "common/crypto.hpp"
#include "common/otp.hpp"
#include "core/log.hpp"
#include "core/validation.hpp"

namespace mfa {

Error storage_error(Error e) {
  if (e.code == Errc::kStorage)
    return e;
  return make_error(Errc::kStorage, "State storage failed: " + e.message);
}

bool Verifier::all_digits(std::string_view s) {
  return !s.empty() && std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; });
}

Verifier::Match Verifier::totp_match(uint64_t step, int64_t now_seconds, int period) {
  Match m;
  m.method = Method::kTotp;
  m.step = step;
  m.drift = static_cast<int64_t>(step) - static_cast<int64_t>(totp_step(now_seconds, period));
  return m;
}

int Verifier::window() const {
  return std::clamp(d_.config.window, 0, 10);
}

Status Verifier::audit(AuditKind kind, std::string_view user, AuditOutcome outcome,
                       AuditReason reason, const Caller& caller, StringMap details) {
  AuditEvent ev;
  ev.kind = kind;
  ev.user = std::string(user);
  ev.outcome = outcome;
  ev.reason = reason;
  ev.caller = caller.describe();
  ev.details = std::move(details);
  MFA_STORE_CHECK(d_.audit.record(ev));
  return {};
}

Status Verifier::audit_success(AuditKind kind, std::string_view user, const Caller& caller,
                               StringMap details) {
  return audit(kind, user, AuditOutcome::kSuccess, AuditReason::kNone, caller, std::move(details));
}

Result<Verifier::Factors> Verifier::load_factors(std::string_view user) {
  Factors f;
  MFA_STORE_TRY(records, d_.store.get_factors(user));
  for (auto& r : records) {
    if (r.method == Method::kTotp && r.pending) {
      f.totp_pending = std::move(r);
    } else if (r.method == Method::kTotp) {
      if (!f.totp)
        f.totp = r;
      f.totp_devices.push_back(std::move(r));
    } else if (r.method == Method::kSms) {
      (r.pending ? f.sms_pending : f.sms) = std::move(r);
    }
  }
  MFA_STORE_TRY(left, d_.store.count_backup_codes(user));
  f.backup_left = std::max(0, left);
  return f;
}

Result<TotpParams> Verifier::record_params(const FactorRecord& r) {
  const auto p = parse_totp_params(r.params);
  if (!p)
    return make_error(Errc::kStorage, "A stored TOTP record is damaged");
  return *p;
}

Result<SecureBytes> Verifier::open_sealed(std::span<const uint8_t> sealed, std::string_view user,
                                          std::string_view kind) {
  DataKeys keys = data_keys();
  auto opened = keys.open(user, sealed, user, kind);
  if (opened.ok())
    return opened;
  // Sealed before records were keyed by account: for the account's name (legacy_owner).
  if (auto owner = legacy_owner(d_.users, user))
    return keys.open(user, sealed, *owner, kind);
  return opened;
}

DataKeys Verifier::data_keys() const {
  // Fleet mode too: each host holds the copy of a person's key it read from Redis
  // (fleet/data_key_records.hpp), so that forgetting the person shreds every copy of the records.
  return DataKeys(data_key_directory(d_.config), d_.sealer, true);
}

Result<SecureBytes> Verifier::open_seed(const FactorRecord& r, std::string_view user,
                                        std::string_view kind) {
  auto seed = open_sealed(r.sealed, user, kind);
  if (!seed.ok()) {
    // The reason (a data key gone, a wrong key), never the record.
    MFA_LOG_ERROR("a stored TOTP secret of %s does not open: %s", std::string(user).c_str(),
                  seed.error().message.c_str());
    return make_error(Errc::kStorage,
                      "A stored TOTP secret could not be opened (damaged record or wrong key)");
  }
  return std::move(seed).value();
}

Result<CodeHash> Verifier::backup_hash(std::string_view user, std::string_view canonical) {
  SecureBytes data(user.size() + 1 + canonical.size());
  std::memcpy(data.data(), user.data(), user.size());
  data.data()[user.size()] = 0;
  std::memcpy(data.data() + user.size() + 1, canonical.data(), canonical.size());
  auto mac = hmac_sha256(d_.code_hash_key.span(), data.span());
  if (!mac.ok() || mac->size() != CodeHash{}.size())
    return make_error(Errc::kInternal, "Could not hash a backup code");
  CodeHash h{};
  std::memcpy(h.data(), mac->data(), h.size());
  return h;
}

// Checks a login or step-up code against the user's active factors, without any accounting.
// A matched TOTP step advances the replay watermark; a matched backup code is consumed.
Result<Verifier::CheckOutcome> Verifier::check_code(std::string_view user, std::string_view code,
                                                    const std::set<Method>& allowed,
                                                    const Factors& f, int64_t now_seconds) {
  CheckOutcome out;
  if (allowed.count(Method::kTotp) && !f.totp_devices.empty() && all_digits(code)) {
    // Every device is checked, whichever matched: no early exit tells a caller (by time) which
    // device a code belongs to, or that it belongs to none.
    std::optional<size_t> hit;
    uint64_t hit_step = 0;
    bool replay = false;
    for (size_t i = 0; i < f.totp_devices.size(); ++i) {
      const FactorRecord& device = f.totp_devices[i];
      MFA_TRY(params, record_params(device));
      if (code.size() != static_cast<size_t>(params.digits))
        continue;
      MFA_TRY(seed, open_seed(device, user, kSealTotp));
      MFA_STORE_TRY(watermark, d_.store.get_totp_watermark(user, device.device));
      const auto step = totp_verify(seed.span(), code, params, now_seconds, window(), watermark);
      const auto any_step =
          totp_verify(seed.span(), code, params, now_seconds, window(), std::nullopt);
      if (step && !hit) {
        hit = i;
        hit_step = *step;
      } else if (!step && any_step) {
        replay = true;  // a step at or below this device's watermark: used before
      }
    }
    if (hit) {
      const FactorRecord& device = f.totp_devices[*hit];
      MFA_TRY(params, record_params(device));
      MFA_STORE_TRY(advanced, d_.store.advance_totp_watermark(user, device.device, hit_step));
      if (advanced) {
        out.match = totp_match(hit_step, now_seconds, params.period);
        out.match->device = device.device;
        return out;
      }
      replay = true;  // another login took this step first
    }
    if (replay)
      out.reason = AuditReason::kReplay;
  }
  if (allowed.count(Method::kBackup) && f.backup_left > 0 && degraded() &&
      !d_.config.redis_degraded_backup_codes) {
    // Degraded mode: a code consumed here could be used again on a host cut off like this one
    // (docs/fleet.md). A right code is refused, unconsumed, with its own reason.
    if (auto canonical = normalize_backup_code(code)) {
      MFA_TRY(hash, backup_hash(user, canonical->view()));
      MFA_STORE_TRY(unused, d_.store.unused_backup_codes(user));
      bool known = false;
      for (const auto& h : unused)
        known |= CRYPTO_memcmp(h.data(), hash.data(), hash.size()) == 0;
      if (known)
        out.reason = AuditReason::kDegradedBackupCode;
    }
    return out;
  }
  if (allowed.count(Method::kBackup) && f.backup_left > 0) {
    // Imported scratch codes are 8 digits (canonical_backup_code); a TOTP code of 8 digits was
    // tried above and failed.
    if (auto canonical = canonical_backup_code(code)) {
      MFA_TRY(hash, backup_hash(user, canonical->view()));
      MFA_STORE_TRY(consumed, d_.store.consume_backup_code(user, hash));
      if (auto owner = consumed ? std::nullopt : legacy_owner(d_.users, user)) {
        // A code generated before records were keyed by account is bound to the account's name.
        MFA_TRY(legacy, backup_hash(*owner, canonical->view()));
        MFA_STORE_TRY(consumed_legacy, d_.store.consume_backup_code(user, legacy));
        consumed = consumed_legacy;
      }
      if (consumed) {
        Match m;
        m.method = Method::kBackup;
        out.match = m;
        return out;
      }
    }
  }
  return out;
}

Result<std::optional<int64_t>> Verifier::totp_drift(std::string_view user, std::string_view code,
                                                    const Factors& f, int64_t now_seconds) {
  std::optional<int64_t> none;
  if (!f.totp || !all_digits(code))
    return none;
  MFA_TRY(params, record_params(*f.totp));
  if (code.size() != static_cast<size_t>(params.digits) || params.period <= 0)
    return none;
  MFA_TRY(seed, open_seed(*f.totp, user, kSealTotp));
  const int wide = std::max(window(), kDriftSeconds / params.period);
  const auto step = totp_verify(seed.span(), code, params, now_seconds, wide, std::nullopt);
  if (!step)
    return none;
  const int64_t off =
      static_cast<int64_t>(*step) - static_cast<int64_t>(totp_step(now_seconds, params.period));
  if (off >= -window() && off <= window())
    return none;  // inside the window: a replay or a used step, not the clock
  return std::optional<int64_t>(off * params.period);
}

// One counted attempt (docs/security-model.md, "Attacks and answers"): refused while locked;
// counted and written before the code is checked; a failure may lock the user. Failures are audited
// here as `kind`; the caller audits the success, after acting on it.
Result<Verifier::Match> Verifier::attempt(const Caller& caller, std::string_view user,
                                          AuditKind kind, StringMap details, const Checker& check) {
  const int64_t now = d_.clock.realtime_usec();
  MFA_STORE_TRY(limits, d_.store.get_limits(user));
  roll_day(limits, now);
  if (const int64_t rem = lock_remaining_usec(limits, now); rem > 0) {
    MFA_CHECK(audit(kind, user, AuditOutcome::kDenied, AuditReason::kLocked, caller, details));
    return make_error(Errc::kRateLimited, lockout_message(rem));
  }
  count_attempt(limits, now);
  MFA_STORE_CHECK(d_.store.put_limits(user, limits));

  MFA_TRY(outcome, check());
  if (outcome.match) {
    record_success(limits);
    MFA_STORE_CHECK(d_.store.put_limits(user, limits));
    if (outcome.match->method == Method::kBackup) {
      MFA_STORE_TRY(left, d_.store.count_backup_codes(user));
      MFA_CHECK(audit_success(AuditKind::kBackupUsed, user, caller,
                              {{"left", std::to_string(std::max(0, left))}}));
    }
    return *outcome.match;
  }

  const LockReason lock = apply_failure(limits, policy(), now);
  MFA_STORE_CHECK(d_.store.put_limits(user, limits));
  for (auto& [key, value] : outcome.details)
    details[key] = value;
  MFA_CHECK(audit(kind, user, AuditOutcome::kFailure, outcome.reason, caller, details));
  if (lock == LockReason::kNone && outcome.reason == AuditReason::kDegradedBackupCode) {
    return make_error(Errc::kBadCode,
                      "Backup codes are not accepted while this host cannot reach the fleet's "
                      "shared store (Redis); use another factor");
  }
  if (lock == LockReason::kNone) {
    const int left = tries_left(limits, policy());
    return make_error(Errc::kBadCode, "Invalid code; " + std::to_string(left) +
                                          (left == 1 ? " try" : " tries") +
                                          " left before a temporary lockout");
  }
  const AuditReason reason =
      lock == LockReason::kDailyCap ? AuditReason::kDailyLimit : AuditReason::kConsecutiveFailures;
  StringMap lock_details = details;
  lock_details["locked_until"] = std::to_string(limits.locked_until_usec / kUsecPerSecond);
  lock_details["lockout_count"] = std::to_string(limits.lockout_count);
  MFA_CHECK(
      audit(AuditKind::kAuthLockout, user, AuditOutcome::kDenied, reason, caller, lock_details));
  if (d_.events) {
    d_.events->security_event(account_display_name(d_.users, user), "lockout",
                              {{"reason", audit_reason_name(reason)},
                               {"locked_until", lock_details["locked_until"]},
                               {"service", details.count("service") ? details["service"] : ""},
                               {"rhost", details.count("rhost") ? details["rhost"] : ""}});
  }
  return make_error(Errc::kRateLimited, lockout_message(lock_remaining_usec(limits, now)));
}

}  // namespace mfa

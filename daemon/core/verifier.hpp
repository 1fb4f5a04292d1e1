// The verification core shared by logins, step-up and enrollment: which factors a user has,
// whether a code matches one of them (advancing the TOTP replay watermark, consuming a backup
// code), and the accounting around one attempt (docs/security-model.md, "Attacks and answers").
// authenticator.cpp decides who may ask; this file decides whether the code is good.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <set>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "common/result.hpp"
#include "common/secure_buffer.hpp"
#include "core/audit.hpp"
#include "core/authenticator.hpp"
#include "core/data_keys.hpp"
#include "core/rate_limiter.hpp"
#include "core/store.hpp"

namespace mfa {

// Associated data kinds of sealed records (docs/security-model.md).
inline constexpr char kSealTotp[] = "totp";
inline constexpr char kSealTotpPending[] = "totp-pending";

// Every failure of the store (or of the audit trail, which lives in it) is a storage failure to
// the caller, whatever kind the store gave it.
Error storage_error(Error e);

// MFA_TRY / MFA_CHECK for store calls: the error becomes kStorage.
#define MFA_STORE_TRY(var, expr)                                               \
  auto MFA_CONCAT(mfa_store_, __LINE__) = (expr);                              \
  if (!MFA_CONCAT(mfa_store_, __LINE__).ok())                                  \
    return storage_error(std::move(MFA_CONCAT(mfa_store_, __LINE__)).error()); \
  auto var = std::move(MFA_CONCAT(mfa_store_, __LINE__)).value()
#define MFA_STORE_CHECK(expr)                                    \
  do {                                                           \
    auto mfa_store_check_ = (expr);                              \
    if (!mfa_store_check_.ok())                                  \
      return storage_error(std::move(mfa_store_check_).error()); \
  } while (0)

class Verifier {
 public:
  // What a user has enrolled, read once per request.
  struct Factors {
    // totp: the first active TOTP device (by name); totp_devices: every one. A user has at most
    // one pending TOTP enrollment, whatever its device name.
    std::optional<FactorRecord> totp, totp_pending, sms, sms_pending;
    std::vector<FactorRecord> totp_devices;
    int backup_left = 0;
    bool any_active() const { return totp || sms || backup_left > 0; }
  };

  struct Match {
    Method method = Method::kTotp;
    std::optional<int64_t> drift;  // TOTP: matched step - current step
    uint64_t step = 0;             // TOTP: the matched step
    std::string device;            // TOTP: the device whose secret matched
  };
  struct CheckOutcome {
    std::optional<Match> match;
    // Why there is no match: kBadCode, kReplay, kClockDrift, kExpired (an SMS code typed late).
    AuditReason reason = AuditReason::kBadCode;
    StringMap details;  // added to the failure's audit row
  };
  using Checker = std::function<Result<CheckOutcome>()>;

  explicit Verifier(AuthenticatorDeps deps) : d_(deps) {}

  // Appends to the audit trail; a failure is a storage error (fail closed).
  Status audit(AuditKind kind, std::string_view user, AuditOutcome outcome, AuditReason reason,
               const Caller& caller, StringMap details = {});
  // The same for a success, which has no reason.
  Status audit_success(AuditKind kind, std::string_view user, const Caller& caller,
                       StringMap details = {});
  Result<Factors> load_factors(std::string_view user);
  Result<TotpParams> record_params(const FactorRecord& r);
  Result<SecureBytes> open_seed(const FactorRecord& r, std::string_view user,
                                std::string_view kind);
  // Opens a record sealed for the account key user, or (sealed by an older mfad) for the
  // account's name.
  Result<SecureBytes> open_sealed(std::span<const uint8_t> sealed, std::string_view user,
                                  std::string_view kind);
  // Seals and opens records under the person's data key (core/data_keys.hpp).
  DataKeys data_keys() const;
  // HMAC(code_hash_key, user || 0x00 || canonical code).
  Result<CodeHash> backup_hash(std::string_view user, std::string_view canonical);
  // Checks a login or step-up code against the user's active factors, without any accounting.
  // A matched TOTP step advances the replay watermark; a matched backup code is consumed.
  Result<CheckOutcome> check_code(std::string_view user, std::string_view code,
                                  const std::set<Method>& allowed, const Factors& f,
                                  int64_t now_seconds);
  // A TOTP code of f's that matches within kDriftSeconds of now but outside Window=: the
  // authenticator's clock is off by the returned seconds (positive: ahead). Refused all the same.
  static constexpr int kDriftSeconds = 300;
  Result<std::optional<int64_t>> totp_drift(std::string_view user, std::string_view code,
                                            const Factors& f, int64_t now_seconds);
  // One counted attempt: refused while locked; counted and written before check runs; a failure
  // may lock the user. Failures are audited here as `kind`; the caller audits the success.
  Result<Match> attempt(const Caller& caller, std::string_view user, AuditKind kind,
                        StringMap details, const Checker& check);

  // Read per decision, so that a reloaded configuration applies at once.
  RatePolicy policy() const {
    return degraded() ? RatePolicy::degraded_from_config(d_.config)
                      : RatePolicy::from_config(d_.config);
  }
  bool degraded() const { return d_.fleet_degraded != nullptr && *d_.fleet_degraded; }
  int window() const;
  // A TOTP code matched at step, now_seconds being now.
  static Match totp_match(uint64_t step, int64_t now_seconds, int period);
  // A non-empty string of ASCII digits only.
  static bool all_digits(std::string_view s);

  AuthenticatorDeps d_;
};

}  // namespace mfa

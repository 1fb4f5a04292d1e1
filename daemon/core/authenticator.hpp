// The logic behind every D-Bus method, testable without a bus: validate, authorize, act, answer.
// daemon/bus/manager_calls.cpp is the D-Bus glue in front of it. Each method returns a Result
// whose error kind maps to the org.mfad1.Error name the caller sees.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/result.hpp"
#include "common/seal.hpp"
#include "common/secure_buffer.hpp"
#include "core/audit.hpp"
#include "core/clock.hpp"
#include "core/config.hpp"
#include "core/store.hpp"
#include "core/user_directory.hpp"

namespace mfa {

struct SmsMessage;   // sms_codes.hpp
struct SmsDelivery;  // sms_delivery.hpp

// The admin tier beyond root and AdminGroup (docs/security-model.md): an authority outside mfad,
// asked by the bus layer for the call at hand (polkit's org.mfad1.manage, daemon/bus/polkit.hpp).
class AdminAuthority {
 public:
  enum class Answer { kNo, kYes, kNotAsked };
  virtual ~AdminAuthority() = default;
  virtual Answer answer() const = 0;
  // Who answered, for the audit trail ("polkit").
  virtual const char* name() const = 0;
  // The call is refused for want of the admin tier while answer() is kNotAsked: the refusal is not
  // final. The bus layer asks, then decides the call again with the answer.
  virtual void wanted() = 0;
};

// Who is calling, from the bus's own credentials (never /proc-augmented fields).
struct Caller {
  uid_t uid = static_cast<uid_t>(-1);
  pid_t pid = 0;         // the audit trail; challenges belong to uid and pid (core/challenges.hpp)
  std::string bus_name;  // unique name (":1.42")
  // The kernel's audit session id and login uid of the calling process (/proc/PID/sessionid and
  // loginuid, read by the bus layer for OpenSession and CheckFreshSession only; never from a
  // string the caller sent). kUnsetAuditId: unknown or not set by pam_loginuid.
  static constexpr uint32_t kUnsetAuditId = 4294967295u;
  uint32_t audit_session = kUnsetAuditId;
  uint32_t audit_login_uid = kUnsetAuditId;
  // Asked when the caller is neither root nor in AdminGroup; none: no admin tier beyond those
  // (tests, internal callers).
  std::shared_ptr<AdminAuthority> admin_authority;
  std::string describe() const;  // "uid=0 pid=123 :1.42" (+ " via polkit" when it granted admin)
};

// A refusal for want of the admin tier: denial. Not final (the authority is told it is wanted)
// while caller's admin authority has not been asked.
Error admin_refusal(const Caller& caller, Error denial);

using StringMap = std::map<std::string, std::string>;

struct BeginResult {
  std::string challenge;             // 128-bit random, hex
  std::vector<std::string> methods;  // "totp", "sms", "backup", in that order
};

// GetUser / ListUsers (a{sv} on the bus, same keys):
//   "user" s, "methods" as (active), "pending" as, "backup_codes_left" u,
//   "locked_until" t (unix seconds, 0 = not locked), "failures" u, "masked_phone" s ("" = none),
//   "totp_algorithm" s, "totp_digits" u, "totp_period" u (only with an active TOTP: its first
//   device's), "totp_devices" aa{sv} (each: "name" s, "created" t and "last_used" t, unix seconds,
//   0 = never used)
struct TotpDeviceInfo {
  std::string name;
  uint64_t created = 0;
  uint64_t last_used = 0;
};
struct UserInfo {
  std::string user;
  std::vector<std::string> methods;
  std::vector<std::string> pending;
  uint32_t backup_codes_left = 0;
  uint64_t locked_until = 0;
  uint32_t failures = 0;
  std::string masked_phone;
  std::optional<TotpParams> totp;
  std::vector<TotpDeviceInfo> totp_devices;
  // Fleet mode: the last enrollment or reset another host wrote, until one made here (store.hpp).
  std::optional<ForeignChange> foreign_change;
};

struct TotpEnrollmentOptions {
  std::string device;         // the device's name; "" = "default"
  std::string issuer;         // "" = config issuer (or host name)
  std::string algorithm;      // "" = config default; "SHA1", "SHA256", "SHA512"
  int digits = 0;             // 0 = config default
  SecureString current_code;  // step-up
};

struct TotpEnrollment {
  SecureString secret_base32;
  SecureString otpauth_uri;
};

// ImportTotp (docs/mfactl.md, "import"): an authenticator the user already has, moved from
// google-authenticator's or pam_oath's files. The seed is sealed here and never leaves mfad again.
struct TotpImport {
  SecureBytes secret;
  TotpParams params;
  std::vector<SecureString> backup_codes;  // scratch codes: 8 digits, or mfad's own form
  std::string name;                        // the authenticator's name ("" = "imported")
  std::string source;                      // "google-authenticator", "oath", ... (audited)
  bool force = false;                      // replace the user's TOTP and backup codes
};
struct TotpImportResult {
  uint32_t backup_codes = 0;  // imported as backup codes
  bool replaced = false;      // --force replaced a factor
};

// What CheckHealth reports of the daemon's own state (the bus layer adds fleet mode's).
struct HealthReport {
  std::string database_problem;  // "" when PRAGMA quick_check finds nothing
};

// GetReport (docs/mfactl.md, "report"): adoption and outcomes, from the store and the audit
// trail. Logins are BeginAuthentication's verifications (step-ups are not logins).
struct GroupAdoption {
  std::string group;  // the primary group
  uint64_t total = 0;
  uint64_t enrolled = 0;
};
struct AdoptionReport {
  int64_t since_usec = 0;
  uint64_t users_total = 0;     // login accounts (core/login_accounts.hpp) and enrolled users
  uint64_t users_enrolled = 0;  // with an active factor
  uint64_t totp = 0;
  uint64_t sms = 0;
  uint64_t backup = 0;
  uint64_t logins_success = 0;
  uint64_t logins_failure = 0;
  uint64_t lockouts = 0;
  uint64_t sms_sent = 0;
  uint64_t sms_failed = 0;
  uint64_t sessions_open = 0;
  // Fleet mode: the degraded decisions in the window (docs/fleet.md, "Reconciliation report");
  // logins_success counts the allowed ones too, which stood on this host alone.
  DegradedTally degraded;
  std::vector<GroupAdoption> groups;
};

// GetLoginEnrollment (a{sv} on the bus, same keys): what a login of a user with no factor may do
// (docs/rollout.md).
struct LoginEnrollmentInfo {
  bool enroll = false;          // "enroll" b
  bool skip = false;            // "skip" b
  bool token_required = false;  // "token_required" b: BeginLoginEnrollment needs the token
  uint64_t deadline = 0;        // "deadline" t: unix seconds, 0 = none
  uint32_t days_left = 0;       // "days_left" u
  std::string message;          // "message" s: what to tell the person, one line
};

struct EnrollmentToken {
  SecureString token;    // shown once
  uint64_t expires = 0;  // unix seconds
};

// The notice shown before an enrollment ([Enrollment] Notice=/NoticeFile=); text "" = none.
struct EnrollmentNotice {
  std::string text;
  std::string sha256_hex;  // of text, as the audit row records it
};

// ListAuditEvents filter keys: "user" s, "since" t (unix seconds), "limit" u (<= 10000).
// Rows (a{sv}): "id" t, "time" t (unix usec), "kind" s, "user" s, "outcome" s, "reason" s,
// "caller" s, "details" s (JSON object), "hash" s.

// Receives security events for the SecurityEvent signal.
class EventSink {
 public:
  virtual ~EventSink() = default;
  virtual void security_event(const std::string& user, const std::string& kind,
                              const StringMap& details) = 0;
};

struct AuthenticatorDeps {
  const Config& config;
  Store& store;
  AuditLog& audit;
  const Sealer& sealer;
  const SecureBytes& code_hash_key;  // HKDF(master, "mfad code hash v1")
  const Clock& clock;
  const UserDirectory& users;
  EventSink* events = nullptr;
  // Fleet mode: true while Redis is unreachable (degraded mode applies its stricter rules:
  // DegradedBackupCodes, DegradedFailuresPercent). Null without fleet mode.
  const bool* fleet_degraded = nullptr;
};

class Authenticator {
 public:
  explicit Authenticator(AuthenticatorDeps deps);
  ~Authenticator();

  // --- Root only (the PAM side). ---
  // context keys: service, rhost, tty, ruser, and optionally "methods" ("totp,backup": what this
  // PAM service accepts). Errors: NotAllowed (caller not root), InvalidArgument, NoSuchUser (NSS
  // does not know the name), NotEnrolled (no factor at all), MethodNotAccepted (factors, none of
  // them in "methods"), RateLimited (locked out; the message gives the wait),
  // LimitExceeded (too many open challenges).
  Result<BeginResult> begin_authentication(const Caller& caller, std::string_view user,
                                           const StringMap& context);
  // Counts the attempt before checking the code. Returns "totp", "sms" or "backup".
  // Errors: BadCode (message says how many tries are left before a lockout), RateLimited,
  // NoSuchChallenge (unknown, or another caller's), ChallengeExpired, InvalidArgument.
  Result<std::string> verify(const Caller& caller, std::string_view challenge,
                             std::string_view code);
  Status end_authentication(const Caller& caller, std::string_view challenge);
  // Decides and stores (limits, a fresh code's hash); the bus layer sends the returned text and
  // reports what became of it with sms_sent(). Errors: SmsUnavailable (no provider), NotEnrolled
  // (no phone, or SMS not accepted by this service), SmsRateLimited, RateLimited, NoSuchChallenge.
  Result<SmsMessage> send_sms_code(const Caller& caller, std::string_view challenge);

  // --- Root only: enrollment during login (docs/rollout.md), bound to a challenge of
  // BeginAuthentication that offered "enroll" or "skip" (NoSuchChallenge otherwise, or NotAllowed
  // for what it did not offer). ---
  Result<LoginEnrollmentInfo> get_login_enrollment(const Caller& caller,
                                                   std::string_view challenge);
  // A new TOTP secret for the challenge (memory only), as the lines to show (QR code, secret,
  // URI). token: the enrollment token under RequireToken=yes (checked and spent once per
  // challenge). AlreadyEnrolled when the user has a factor by now.
  Result<std::vector<SecureString>> begin_login_enrollment(const Caller& caller,
                                                           std::string_view challenge,
                                                           std::string_view token);
  // A code of that secret makes it the user's TOTP factor and ends the login as a success; the
  // answer is a new set of backup codes, shown once. BadCode (counted), AlreadyEnrolled.
  Result<std::vector<SecureString>> confirm_login_enrollment(const Caller& caller,
                                                             std::string_view challenge,
                                                             std::string_view code);
  // The person skips enrolling (audited as enrollment-skipped): allowed only while the rollout
  // still allows it now (the deadline is read again) and the user still has no factor.
  Status skip_enrollment(const Caller& caller, std::string_view challenge);

  // --- Self-service (own account, with step-up) or admin. ---
  Result<UserInfo> get_user(const Caller& caller, std::string_view user);
  Result<TotpEnrollment> begin_totp_enrollment(const Caller& caller, std::string_view user,
                                               const TotpEnrollmentOptions& options);
  Status confirm_totp_enrollment(const Caller& caller, std::string_view user,
                                 std::string_view code);
  Result<std::vector<SecureString>> generate_backup_codes(const Caller& caller,
                                                          std::string_view user,
                                                          std::string_view current_code);
  // method: "totp", "sms", "backup", or "totp:NAME" (one TOTP device). "totp" with several
  // active devices is refused (InvalidArgument): it must name one.
  Status disable_method(const Caller& caller, std::string_view user, std::string_view method,
                        std::string_view current_code);
  // A pending phone and a text with a code to it (step-up when another factor is active).
  Result<SmsMessage> begin_sms_enrollment(const Caller& caller, std::string_view user,
                                          std::string_view phone_e164,
                                          std::string_view current_code);
  // The texted code activates the pending phone.
  Status confirm_sms_enrollment(const Caller& caller, std::string_view user, std::string_view code);
  // SendStepUpCode (authenticator_step_up.cpp): a text with a code to user's active phone, which
  // a step-up of theirs then accepts once as current_code. Only user themself may ask (NotAllowed
  // otherwise). Errors: NoSuchUser, NotEnrolled (SMS is not an active factor), SmsUnavailable
  // (no provider), RateLimited (locked out), SmsRateLimited (a send limit).
  Result<SmsMessage> send_step_up_code(const Caller& caller, std::string_view user);
  // What became of a text of send_sms_code, begin_sms_enrollment or send_step_up_code: audited; the
  // masked phone when the provider accepted it, otherwise SmsUnavailable with a message for people.
  Result<std::string> sms_sent(const SmsMessage& message, const SmsDelivery& delivery);

  // --- Admin only. ---
  Result<std::vector<UserInfo>> list_users(const Caller& caller);
  Status reset_user(const Caller& caller, std::string_view user);
  Status unlock(const Caller& caller, std::string_view user);
  Result<std::vector<AuditRecord>> list_audit_events(const Caller& caller,
                                                     const AuditFilter& filter);
  Result<AuditVerification> verify_audit_trail(const Caller& caller);
  // authenticator_rollout.cpp. ImportTotp: AlreadyEnrolled when the user has any factor and
  // import.force is false; InvalidArgument for a seed or parameters mfad cannot use.
  Result<TotpImportResult> import_totp(const Caller& caller, std::string_view user,
                                       const TotpImport& import);
  Result<AdoptionReport> adoption_report(const Caller& caller, int64_t since_usec);
  Result<HealthReport> check_health(const Caller& caller);
  // A one-time token for user's first enrollment ([Rollout] RequireToken=yes), valid for
  // valid_hours (1 to 8760); it replaces any earlier one. Stored as a keyed hash.
  Result<EnrollmentToken> create_enrollment_token(const Caller& caller, std::string_view user,
                                                  int valid_hours);

  // --- Data rights (docs/security-model.md, "Data rights"). ---
  // Self or admin: everything mfad holds about user except secrets, as a JSON object (docs/
  // mfactl.md, "export"). Audited (data.export).
  Result<std::string> export_user(const Caller& caller, std::string_view user);
  // Admin: erases user (factors, phone, backup codes, limits, sessions, devices) and destroys
  // their data key; their audit rows stay with a pseudonym. Audited (data.forget) under it.
  Result<ForgetReport> forget_user(const Caller& caller, std::string_view user);
  // Fleet mode: the same erasure on this host, for a forget another host made (its tombstone,
  // fleet/data_key_records.hpp); account is an account key. Audited (data.forget, fleet_host).
  Result<ForgetReport> apply_fleet_forget(std::string_view account, std::string_view from_host);
  // Self or admin ("" = everyone's: admin).
  Result<std::vector<DeviceRecord>> list_devices(const Caller& caller, std::string_view user);
  Status forget_device(const Caller& caller, std::string_view user, std::string_view device);
  // Anyone: the notice to show before an enrollment (read from NoticeFile= when asked).
  Result<EnrollmentNotice> enrollment_notice() const;
  // Self or admin (root, for the PAM module's enrollment at login): user accepted the notice
  // whose SHA-256 is sha256_hex, shown by via ("mfactl" or "login"). InvalidArgument when the
  // notice changed since. Audited (enroll.notice) with the hash.
  Status accept_enrollment_notice(const Caller& caller, std::string_view user,
                                  std::string_view sha256_hex, std::string_view via);

  // --- Housekeeping, driven by the bus layer. ---
  // Drops expired challenges; returns the monotonic usec of the next expiry (0: none).
  uint64_t expire_challenges();
  size_t open_challenges() const;
  // The user of caller's open challenge ("" when there is none): fleet mode prefetches that
  // user's shared state before Verify.
  std::string challenge_user(const Caller& caller, std::string_view challenge);
  // Whether BeginAuthentication(user, context) would offer a factor, from the local store alone
  // (not locked, a factor the context's filter accepts). Fleet mode answers only such a Begin
  // from its read cache: an answer that ends a login without a code is always read from Redis.
  bool offers_factor(std::string_view user, const StringMap& context);

  // A call of caller's refused before its handler ran (over the caller's rate limit, docs/
  // security-model.md "Floods"): audited as access.denied, coalesced like every denial.
  Status call_limited(const Caller& caller, std::string_view action);
  // Writes the counted rows of repeated denials whose window ended (every one with all:
  // shutdown), see core/denial_coalescer.hpp.
  Status flush_denials(bool all);
  // Whether repeated denials wait for their counted row (the bus layer's timer is wanted).
  bool counting_denials() const;
  // The key of the records a call naming user reads and writes (user_directory.hpp): its
  // account's key; "#<uid>" (how ListUsers shows an account NSS no longer knows) is that uid's;
  // anything else as it is. Fleet mode fetches and confirms the same records.
  std::string records_key(std::string_view user) const;
  // How people see the records of key: the account's name (account_display_name).
  std::string shown_name(std::string_view key) const;

  // Root, a member of AdminGroup, or granted the admin tier by caller's admin authority.
  bool is_admin(const Caller& caller) const;

 private:
  Result<ForgetReport> forget_account(const std::string& account, std::string_view user,
                                      const Caller& caller, StringMap details);

  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace mfa

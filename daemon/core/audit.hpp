// The audit trail (docs/audit-events.md): every decision goes to the hash-chained table in the
// store and to journald with structured fields and one MESSAGE_ID per event kind
// (docs/audit-events.md).
#pragma once

#include <functional>
#include <map>
#include <optional>
#include <string>
#include <string_view>

#include "core/clock.hpp"
#include "core/store.hpp"
#include "core/user_directory.hpp"

namespace mfa {

// What happened. audit_kind_name() gives the `kind` of the row, MFA_KIND and ListAuditEvents's
// "kind"; every kind has its own journald MESSAGE_ID.
enum class AuditKind {
  kAuthBegin,
  kAuthSuccess,
  kAuthFailure,
  kAuthLockout,
  kAuthNotEnrolled,
  kAuthRateLimited,
  kAuthEnd,
  kAccessDenied,
  kEnrollBegin,
  kEnrollConfirm,
  kEnrollDisable,
  kEnrollImport,
  kEnrollToken,
  kBackupGenerate,
  kBackupUsed,
  kAdminReset,
  kAdminUnlock,
  kSessionOpen,
  kSessionClose,
  kSessionTerminate,
  kSmsSent,
  kSmsFailed,
  kDegraded,
  kStorageError,
  kSecurityNewDevice,
  kSecurityFailureBurst,
  kConfigWarning,
  kDaemonStart,
  kDaemonStop,
  // The trail itself (docs/audit-events.md): written by the store (checkpoints, tampering found
  // while running) or by mfad at start (tampering found then).
  kAuditCheckpoint,
  kAuditTampering,
  // A `fresh=` authentication passed without a code on the strength of its session's own recent
  // second factor (docs/sudo.md).
  kFreshSession,
  // Fleet mode (docs/fleet.md, "Authenticated records"): a record in Redis that failed
  // verification (forged, copied, rolled back, or written by an older release): an attack.
  kFleetRecordRejected,
  // Data rights (docs/security-model.md, "Data rights").
  kDataExport,
  kDataForget,
  kDataForgetDevice,
  kEnrollNotice,
  // Fleet mode (docs/fleet.md, "Changes made elsewhere"): another host wrote an enrollment or a
  // reset of a user this host knew; shown by `mfactl status` until changed here.
  kFleetForeignChange,
};

enum class AuditOutcome { kSuccess, kFailure, kDenied, kError, kInfo };

// Why: a refusal's or failure's reason, or what an informational event was about.
enum class AuditReason {
  kNone,  // ""
  // Codes and attempts.
  kBadCode,
  kReplay,
  kExpired,
  kLocked,
  kStepUpRequired,
  kConsecutiveFailures,
  kDailyLimit,
  kClockDrift,  // a TOTP code of the authenticator's clock, off by more than Window= allows
  // Rollout (docs/rollout.md).
  kEnrollmentSkipped,
  kTokenRequired,
  kBadToken,
  // Data rights (docs/security-model.md).
  kNoticeNotAccepted,
  // Access and limits.
  kNotAllowed,
  kNotEnrolled,
  kMethodNotAccepted,
  kTooManyChallenges,
  kAbandoned,
  kRateLimited,
  kLimit,
  // Sessions (SessionEnd, sessions.hpp) and security events.
  kClosed,
  kAdmin,
  kUser,
  kIdle,
  kNewDevice,
  kFailureBurst,
  // What became of a text (SmsDelivery, sms_delivery.hpp).
  kSmsUnavailable,
  kAccepted,
  kInvalidNumber,
  kUnverifiedNumber,
  kOptedOut,
  kNotMobile,
  kRecipientError,
  kProviderAuth,
  kProviderRateLimited,
  kProviderError,
  kProviderUnreachable,
  kProviderTimeout,
  kProviderTls,
  kSenderError,
  kShutdown,
  // Fleet mode (fleet.md).
  kRedisUnavailable,
  kRedisAvailable,
  kFleetFailures,
  kReplayFleet,
  kConsumedElsewhere,
  kFactorChanged,
  kUnrecognisedRefusal,  // a refusal of the fleet's scripts this mfad has no name for
  // The daemon.
  kStart,
  kSignal,
  // The audit trail (audit.checkpoint, audit.tampering).
  kKeyed,
  kPruned,
  kTruncated,
  kHeadMismatch,
  kHeadMissing,
  kHeadUnreadable,
  // Degraded mode's stricter rules (docs/fleet.md) and fleet records (fleet.record-rejected).
  kDegradedBackupCode,
  kUnconfirmedNotEnrolled,
  kBadMac,
  kMalformedRecord,
  kLegacyRecord,
  kRolledBack,
  kForeignRequest,
  kCommitted,
  // degraded: a consumption write no replica acknowledged (Sentinel mode, docs/fleet.md).
  kUnreplicated,
  // degraded: a state older than this host's high-water mark, explained by unreplicated writes of
  // this host's, merged with them and written again (docs/fleet.md).
  kFleetReconciled,
};

// The names stored, logged and sent (docs/audit-events.md); they never change.
const char* audit_kind_name(AuditKind kind);
const char* audit_outcome_name(AuditOutcome outcome);
const char* audit_reason_name(AuditReason reason);
// For names that arrive as text (the fleet's scripts answer with one); nullopt when unknown.
std::optional<AuditKind> audit_kind_from_name(std::string_view name);
std::optional<AuditReason> audit_reason_from_name(std::string_view name);

struct AuditEvent {
  AuditKind kind = AuditKind::kAuthBegin;
  std::string user;
  AuditOutcome outcome = AuditOutcome::kInfo;
  AuditReason reason = AuditReason::kNone;
  std::string caller;
  std::map<std::string, std::string> details;  // never a secret, code or full phone number

  // The detail key's value, "" when absent.
  std::string detail(const std::string& key) const;
};

class AuditLog {
 public:
  AuditLog(Store& store, const Clock& clock) : store_(store), clock_(clock) {}
  // Appends to the store (inside the current transaction) and logs to journald (stderr when
  // there is no journal). A store failure is returned; the journald entry is written regardless,
  // at priority LOG_ALERT for a storage failure.
  Status record(const AuditEvent& event);
  // The journald MESSAGE_ID (32 hex digits) of an event kind.
  static const char* message_id(AuditKind kind);
  // Called with every event after it was recorded (the session registry watches successes and
  // failures); may record events of its own.
  void set_observer(std::function<void(const AuditEvent&)> observer) {
    observer_ = std::move(observer);
  }
  // Events about an account key (user_directory.hpp) are recorded under the account's name, with
  // its uid; without a directory (tests), under the key.
  void set_user_directory(const UserDirectory* users) { users_ = users; }

 private:
  std::function<void(const AuditEvent&)> observer_;
  const UserDirectory* users_ = nullptr;
  Store& store_;
  const Clock& clock_;
};

}  // namespace mfa

#include "core/audit.hpp"

#include <sys/uio.h>
#include <syslog.h>
#include <unistd.h>

#include <nlohmann/json.hpp>
#include <systemd/sd-daemon.h>
#include <systemd/sd-journal.h>

#include <iterator>
#include <optional>
#include <string>
#include <vector>

namespace mfa {
namespace {

struct KindName {
  AuditKind value;
  const char* name;
  const char* message_id;
};

// One fixed MESSAGE_ID per kind (docs/audit-events.md), generated once; never change one.
constexpr KindName kKinds[] = {
    {AuditKind::kAuthBegin, "auth.begin", "c4e8b2b321104c748c6f5067738cc0d1"},
    {AuditKind::kAuthSuccess, "auth.success", "d9326f504d654be38956ff8defa70708"},
    {AuditKind::kAuthFailure, "auth.failure", "a5b30892e9ee4c75a965baac52cc0cc3"},
    {AuditKind::kAuthLockout, "auth.lockout", "0113aa1da47245e4a54af3785cd7b43f"},
    {AuditKind::kAuthNotEnrolled, "auth.not-enrolled", "ac8f3f1b4411414895bda06d7d041c2c"},
    {AuditKind::kAuthRateLimited, "auth.rate-limited", "c0ece841a6e148be8cdb8f6b037c40c4"},
    {AuditKind::kAuthEnd, "auth.end", "e840eae1aa0a4f8facc2849768b26001"},
    {AuditKind::kAccessDenied, "access.denied", "859f4144603446489993f8d3da51acd8"},
    {AuditKind::kEnrollBegin, "enroll.begin", "f96e8db1289043d89264c87d6e28500e"},
    {AuditKind::kEnrollConfirm, "enroll.confirm", "5823b63bd70d4da2b55c5bf86c1a713b"},
    {AuditKind::kEnrollDisable, "enroll.disable", "47321ce613ff4e1b9113d737851ee33c"},
    {AuditKind::kEnrollImport, "enroll.import", "c48f8f6e5dfc4fca870e544cdc8e0a35"},
    {AuditKind::kEnrollToken, "enroll.token", "b9b2e8fbb6c04ae292f86ca991dd132b"},
    {AuditKind::kBackupGenerate, "backup.generate", "bbd1b8ffa77741ab94b1c2fbfd857c91"},
    {AuditKind::kBackupUsed, "backup.used", "4149042910ed4d03a30f1d355becc55b"},
    {AuditKind::kAdminReset, "admin.reset", "6b49551564d049c9a40ae7e5e19119a2"},
    {AuditKind::kAdminUnlock, "admin.unlock", "86ec7431afaa4a47b1230e303ac074aa"},
    {AuditKind::kSessionOpen, "session.open", "b4b053baa9f840eaa09280af35ae1033"},
    {AuditKind::kSessionClose, "session.close", "cdbb577a73b044dfa4a969749fb88a0e"},
    {AuditKind::kSessionTerminate, "session.terminate", "5c8fd0a122714fe08a47938c76dca48f"},
    {AuditKind::kSmsSent, "sms.sent", "096b4d98facd4acda8e0394693bab58d"},
    {AuditKind::kSmsFailed, "sms.failed", "67fc7972e48148e49c29353eee602ae1"},
    {AuditKind::kDegraded, "degraded", "4a3489b19b4142bd8e91f135626678c9"},
    {AuditKind::kStorageError, "storage.error", "e90073f35d434ea5b70ee2df0c5e309b"},
    {AuditKind::kSecurityNewDevice, "security.new-device", "33a9964cb9b44f1c981d28e55646102c"},
    {AuditKind::kSecurityFailureBurst, "security.failure-burst",
     "23b74709f3314a6a9218a79c3d5e677f"},
    {AuditKind::kConfigWarning, "config.warning", "ed2d3780676a42b79c7fcdaf9d787493"},
    {AuditKind::kDaemonStart, "daemon.start", "b6e207d17bdc413c9a7393fbe3f39759"},
    {AuditKind::kDaemonStop, "daemon.stop", "f131b182b97e456d81bf2c45e72fa32d"},
    {AuditKind::kAuditCheckpoint, "audit.checkpoint", "fdcb625d640d42aab4f8326c784249f1"},
    {AuditKind::kAuditTampering, "audit.tampering", "9716bd0602ef4f91aaba816d93cd56f3"},
    {AuditKind::kFreshSession, "fresh-session", "49894fd08c6f4032a6cadc2d67e7d3e9"},
    {AuditKind::kFleetRecordRejected, "fleet.record-rejected", "4c84fe7b4ca647058adb99fcb95c51c9"},
    {AuditKind::kDataExport, "data.export", "60af4218690729562aeaa093e314c070"},
    {AuditKind::kDataForget, "data.forget", "4f568a6bd056b64dfaa34cea46b33a39"},
    {AuditKind::kDataForgetDevice, "data.forget-device", "06a7c545290f4bdbe05565f98d6ff5b5"},
    {AuditKind::kEnrollNotice, "enroll.notice", "ba0b547f6fd2f2d9f0ee6d35d3d2729e"},
    {AuditKind::kFleetForeignChange, "fleet.foreign-change", "e73f98baf7244d33add6fc7abd0c3ad8"},
};

template <typename Enum>
struct Name {
  Enum value;
  const char* name;
};

constexpr Name<AuditOutcome> kOutcomes[] = {
    {AuditOutcome::kSuccess, "success"}, {AuditOutcome::kFailure, "failure"},
    {AuditOutcome::kDenied, "denied"},   {AuditOutcome::kError, "error"},
    {AuditOutcome::kInfo, "info"},
};

constexpr Name<AuditReason> kReasons[] = {
    {AuditReason::kNone, ""},
    {AuditReason::kBadCode, "bad-code"},
    {AuditReason::kReplay, "replay"},
    {AuditReason::kExpired, "expired"},
    {AuditReason::kLocked, "locked"},
    {AuditReason::kStepUpRequired, "step-up-required"},
    {AuditReason::kConsecutiveFailures, "consecutive-failures"},
    {AuditReason::kDailyLimit, "daily-limit"},
    {AuditReason::kClockDrift, "clock-drift"},
    {AuditReason::kEnrollmentSkipped, "enrollment-skipped"},
    {AuditReason::kTokenRequired, "token-required"},
    {AuditReason::kBadToken, "bad-token"},
    {AuditReason::kNoticeNotAccepted, "notice-not-accepted"},
    {AuditReason::kNotAllowed, "not-allowed"},
    {AuditReason::kNotEnrolled, "not-enrolled"},
    {AuditReason::kMethodNotAccepted, "method-not-accepted"},
    {AuditReason::kTooManyChallenges, "too-many-challenges"},
    {AuditReason::kAbandoned, "abandoned"},
    {AuditReason::kRateLimited, "rate-limited"},
    {AuditReason::kLimit, "limit"},
    {AuditReason::kClosed, "closed"},
    {AuditReason::kAdmin, "admin"},
    {AuditReason::kUser, "user"},
    {AuditReason::kIdle, "idle"},
    {AuditReason::kNewDevice, "new-device"},
    {AuditReason::kFailureBurst, "failure-burst"},
    {AuditReason::kSmsUnavailable, "sms-unavailable"},
    {AuditReason::kAccepted, "accepted"},
    {AuditReason::kInvalidNumber, "invalid-number"},
    {AuditReason::kUnverifiedNumber, "unverified-number"},
    {AuditReason::kOptedOut, "opted-out"},
    {AuditReason::kNotMobile, "not-mobile"},
    {AuditReason::kRecipientError, "recipient-error"},
    {AuditReason::kProviderAuth, "provider-auth"},
    {AuditReason::kProviderRateLimited, "provider-rate-limited"},
    {AuditReason::kProviderError, "provider-error"},
    {AuditReason::kProviderUnreachable, "provider-unreachable"},
    {AuditReason::kProviderTimeout, "provider-timeout"},
    {AuditReason::kProviderTls, "provider-tls"},
    {AuditReason::kSenderError, "sender-error"},
    {AuditReason::kShutdown, "shutdown"},
    {AuditReason::kRedisUnavailable, "redis-unavailable"},
    {AuditReason::kRedisAvailable, "redis-available"},
    {AuditReason::kFleetFailures, "fleet-failures"},
    {AuditReason::kReplayFleet, "replay-fleet"},
    {AuditReason::kConsumedElsewhere, "consumed-elsewhere"},
    {AuditReason::kFactorChanged, "factor-changed"},
    {AuditReason::kUnrecognisedRefusal, "unrecognised-refusal"},
    {AuditReason::kStart, "start"},
    {AuditReason::kSignal, "signal"},
    {AuditReason::kKeyed, "keyed"},
    {AuditReason::kPruned, "pruned"},
    {AuditReason::kTruncated, "truncated"},
    {AuditReason::kHeadMismatch, "head-mismatch"},
    {AuditReason::kHeadMissing, "head-missing"},
    {AuditReason::kHeadUnreadable, "head-unreadable"},
    {AuditReason::kDegradedBackupCode, "degraded-backup-code"},
    {AuditReason::kUnconfirmedNotEnrolled, "unconfirmed-not-enrolled"},
    {AuditReason::kBadMac, "bad-mac"},
    {AuditReason::kMalformedRecord, "malformed-record"},
    {AuditReason::kLegacyRecord, "legacy-record"},
    {AuditReason::kRolledBack, "rolled-back"},
    {AuditReason::kForeignRequest, "foreign-request"},
    {AuditReason::kCommitted, "committed"},
    {AuditReason::kUnreplicated, "unreplicated"},
    {AuditReason::kFleetReconciled, "fleet-reconciled"},
};

// Each table lists its enum in declaration order, once: the enum indexes it.
template <typename Table, typename Enum>
constexpr bool in_enum_order(const Table& table, Enum last) {
  size_t i = 0;
  for (const auto& entry : table) {
    if (static_cast<size_t>(entry.value) != i++)
      return false;
  }
  return i == static_cast<size_t>(last) + 1;
}
static_assert(in_enum_order(kKinds, AuditKind::kFleetForeignChange));
static_assert(in_enum_order(kOutcomes, AuditOutcome::kInfo));
static_assert(in_enum_order(kReasons, AuditReason::kFleetReconciled));

template <typename Table>
auto value_named(const Table& table, std::string_view name)
    -> std::optional<decltype(std::begin(table)->value)> {
  for (const auto& entry : table) {
    if (name == entry.name)
      return entry.value;
  }
  return std::nullopt;
}

// Journal fields and the stderr line stay bounded whatever a caller put in a detail.
constexpr size_t kMaxFieldValue = 1024;
constexpr size_t kMaxDetails = 32;

// One line, printable: control characters (a newline in an rhost, say) become '?', and long
// values are cut.
std::string sanitize(std::string_view value) {
  std::string out;
  size_t n = std::min(value.size(), kMaxFieldValue);
  out.reserve(n);
  for (size_t i = 0; i < n; ++i) {
    unsigned char c = static_cast<unsigned char>(value[i]);
    out.push_back(c < 0x20 || c == 0x7f ? '?' : static_cast<char>(c));
  }
  if (value.size() > n)
    out += "...";
  return out;
}

// "rhost" -> "MFA_RHOST": journald field names are upper-case letters, digits and '_'.
std::string detail_field_name(std::string_view key) {
  std::string name = "MFA_";
  for (char c : key.substr(0, 48)) {
    if (c >= 'a' && c <= 'z') {
      name.push_back(static_cast<char>(c - 'a' + 'A'));
    } else if ((c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')) {
      name.push_back(c);
    } else {
      name.push_back('_');
    }
  }
  return name;
}

int priority_of(const AuditEvent& event, bool store_failed) {
  if (store_failed)
    return LOG_ALERT;
  switch (event.kind) {
    case AuditKind::kStorageError:
    case AuditKind::kAuditTampering:
    case AuditKind::kFleetRecordRejected:
      return LOG_ALERT;
    case AuditKind::kAuthLockout:
    case AuditKind::kSecurityNewDevice:
    case AuditKind::kSecurityFailureBurst:
    case AuditKind::kDegraded:
      return LOG_WARNING;
    default:
      break;
  }
  switch (event.outcome) {
    case AuditOutcome::kError:
      return LOG_ERR;
    case AuditOutcome::kFailure:
    case AuditOutcome::kDenied:
      return LOG_NOTICE;
    default:
      return LOG_INFO;
  }
}

bool journal_available() {
  // Whether systemd runs the machine does not change while mfad runs; the socket may come and go.
  static const bool booted = sd_booted() > 0;
  return booted && access("/run/systemd/journal/socket", F_OK) == 0;
}

std::string summary(const AuditEvent& event) {
  std::string line = std::string("audit kind=") + audit_kind_name(event.kind);
  line += " user=" + sanitize(event.user);
  line += std::string(" outcome=") + audit_outcome_name(event.outcome);
  if (event.reason != AuditReason::kNone)
    line += std::string(" reason=") + audit_reason_name(event.reason);
  if (!event.caller.empty())
    line += " caller=" + sanitize(event.caller);
  size_t n = 0;
  for (const auto& [key, value] : event.details) {
    if (n++ == kMaxDetails)
      break;
    line += " " + sanitize(key) + "=" + sanitize(value);
  }
  return line;
}

void log_event(const AuditEvent& event, const Error* store_error) {
  std::string message = summary(event);
  if (store_error)
    message += " (NOT STORED: " + sanitize(store_error->message) + ")";

  if (!journal_available()) {
    std::string line = "mfad: " + message + "\n";
    // One write, so that concurrent writers never interleave within a line.
    (void)!write(STDERR_FILENO, line.data(), line.size());
    return;
  }

  std::vector<std::string> fields;
  fields.push_back("MESSAGE=" + message);
  fields.push_back(std::string("MESSAGE_ID=") + AuditLog::message_id(event.kind));
  fields.push_back("PRIORITY=" + std::to_string(priority_of(event, store_error != nullptr)));
  fields.push_back("SYSLOG_IDENTIFIER=mfad");
  fields.push_back(std::string("MFA_KIND=") + audit_kind_name(event.kind));
  fields.push_back("MFA_USER=" + sanitize(event.user));
  fields.push_back(std::string("MFA_OUTCOME=") + audit_outcome_name(event.outcome));
  fields.push_back(std::string("MFA_REASON=") + audit_reason_name(event.reason));
  fields.push_back("MFA_CALLER=" + sanitize(event.caller));
  if (store_error)
    fields.push_back("MFA_STORE_ERROR=" + sanitize(store_error->message));
  size_t n = 0;
  for (const auto& [key, value] : event.details) {
    if (n++ == kMaxDetails)
      break;
    fields.push_back(detail_field_name(key) + "=" + sanitize(value));
  }
  std::vector<struct iovec> iov;
  iov.reserve(fields.size());
  for (auto& f : fields)
    iov.push_back({f.data(), f.size()});
  (void)sd_journal_sendv(iov.data(), static_cast<int>(iov.size()));
}

}  // namespace

const char* audit_kind_name(AuditKind kind) {
  return kKinds[static_cast<size_t>(kind)].name;
}

const char* audit_outcome_name(AuditOutcome outcome) {
  return kOutcomes[static_cast<size_t>(outcome)].name;
}

const char* audit_reason_name(AuditReason reason) {
  return kReasons[static_cast<size_t>(reason)].name;
}

std::optional<AuditKind> audit_kind_from_name(std::string_view name) {
  return value_named(kKinds, name);
}

std::optional<AuditReason> audit_reason_from_name(std::string_view name) {
  return value_named(kReasons, name);
}

std::string AuditEvent::detail(const std::string& key) const {
  auto it = details.find(key);
  return it == details.end() ? std::string() : it->second;
}

const char* AuditLog::message_id(AuditKind kind) {
  return kKinds[static_cast<size_t>(kind)].message_id;
}

Status AuditLog::record(const AuditEvent& given) {
  // A record keyed by account (user_directory.hpp) is shown by the account's name, and its uid
  // is in the details: an auditor sees one account behind the names a login may use.
  std::optional<AuditEvent> shown;
  if (const auto uid = users_ ? account_key_uid(given.user) : std::nullopt) {
    shown = given;
    shown->user = account_display_name(*users_, given.user);
    shown->details["uid"] = std::to_string(*uid);
  }
  const AuditEvent& event = shown ? *shown : given;
  AuditRecord row;
  row.time_usec = clock_.realtime_usec();
  row.kind = audit_kind_name(event.kind);
  row.user = event.user;
  row.outcome = audit_outcome_name(event.outcome);
  row.reason = audit_reason_name(event.reason);
  row.caller = event.caller;
  nlohmann::json details = nlohmann::json::object();
  size_t n = 0;
  for (const auto& [key, value] : event.details) {
    if (n++ == kMaxDetails)
      break;
    details[key] = value;
  }
  // error_handler::replace: invalid UTF-8 in a detail (an rhost, a tty) must not throw.
  row.details_json = details.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);

  Status stored = store_.append_audit(row);
  log_event(event, stored.ok() ? nullptr : &stored.error());
  if (observer_)
    observer_(event);
  return stored;
}

}  // namespace mfa

// Persistent state behind one interface. SqliteStore (storage/) implements it; in fleet mode the
// same store is Redis's local cache, and the fleet layer uses it through this interface too (the
// fleet-mode section below). Secrets arrive here already sealed; codes only as keyed hashes.
//
// Transactions (group commit, docs/operations.md): the first write after a flush() opens a
// transaction (BEGIN IMMEDIATE); every later read and write joins it; flush() commits. The bus
// layer calls flush() once per batch of requests and sends success replies only after it returned
// ok. If flush() fails, everything since the previous flush is rolled back and every reply of the
// batch becomes an error.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/result.hpp"

namespace mfa {

enum class Method { kTotp, kSms, kBackup };
const char* method_name(Method m);  // "totp", "sms", "backup"
std::optional<Method> parse_method(std::string_view name);

using CodeHash = std::array<uint8_t, 32>;  // HMAC-SHA-256 under the code-hash key

// The TOTP device a secret enrolled before devices had names became (and the name fleet mode's
// records have).
inline constexpr char kDefaultTotpDevice[] = "default";
inline constexpr int kMaxTotpDevices = 5;

// An enrolled (or pending) TOTP secret or phone. Backup codes are kept apart (their hashes).
struct FactorRecord {
  Method method = Method::kTotp;
  std::string device;  // TOTP: the device's name ("default", "phone", ...); SMS: ""
  bool pending = false;
  std::vector<uint8_t> sealed;  // Sealer output; AAD = user, "totp"/"totp-pending"/"sms"/...
  std::string params;           // TOTP: "SHA1:6:30"; SMS: masked phone for display
  int64_t created_usec = 0;
};

// Rate-limit state of one user (docs/security-model.md, "Attacks and answers").
struct LimitState {
  int consecutive_failures = 0;
  int lockout_count = 0;          // lockouts so far; the next one lasts longer
  int64_t locked_until_usec = 0;  // 0: not locked
  int64_t day = 0;                // days since the epoch of day_failures
  int day_failures = 0;
};

struct AuditRecord {
  int64_t id = 0;  // assigned by the store
  int64_t time_usec = 0;
  std::string kind;  // "auth.begin", "auth.attempt", "auth.lockout", ...
  std::string user;
  std::string outcome;       // "success", "failure", "denied", "error", "info"
  std::string reason;        // short machine-readable reason ("bad-code", "replay", ...)
  std::string caller;        // "uid=0 pid=123"
  std::string details_json;  // service, rhost, tty, method, drift... never a secret
  // The row's link in the chain, assigned by the store: HMAC-SHA-256 under the audit chain key of
  // (prev_hash || canonical row); rows written before the chain was keyed: sha256 of the same.
  std::string hash_hex;
};

// SMS (docs/sms.md): a code waiting to be typed, as a keyed hash, and the sends that the limits
// count. A user has at most one code per purpose.
inline constexpr char kSmsPurposeLogin[] = "login";
inline constexpr char kSmsPurposeEnroll[] = "enroll";
// A code texted for a step-up (SendStepUpCode): it proves a change of the user's own account.
inline constexpr char kSmsPurposeStepUp[] = "step-up";
inline constexpr std::array<std::string_view, 3> kSmsPurposes{kSmsPurposeLogin, kSmsPurposeEnroll,
                                                              kSmsPurposeStepUp};

struct SmsCode {
  CodeHash hash{};
  int64_t expires_usec = 0;  // realtime
  int attempts = 0;          // wrong tries so far
};
struct SmsSendCounts {
  int user = 0;   // sends to this user
  int phone = 0;  // sends to this phone number, whoever asked
  int all = 0;    // every send of this host
};

struct AuditFilter {
  std::string user;  // empty: all
  int64_t since_usec = 0;
  size_t limit = 100;  // newest `limit` rows, returned oldest first
};

// A registered login session (docs/sessions.md; ListSessions rows carry the same fields).
struct SessionRecord {
  std::string id;  // 128-bit random, lower-case hex
  std::string user;
  std::string service;
  std::string rhost;
  std::string tty;
  std::string ruser;
  std::string logind_session;  // XDG_SESSION_ID; "" when logind did not register it
  uint32_t leader_pid = 0;     // the process that called pam_open_session; 0: unknown
  uint64_t leader_start = 0;   // its start time (/proc/PID/stat field 22); 0: unknown
  std::string factor;          // "totp", "sms", "backup" or "none"
  std::string device;          // device fingerprint (hex)
  // The PAM host's kernel audit session and login uid at OpenSession (4294967295: unset), what a
  // later `fresh=` authentication from a process of the same session matches (docs/sudo.md).
  uint32_t audit_session = 4294967295u;
  uint32_t audit_login_uid = 4294967295u;
  int64_t started_usec = 0;    // unix usec
  int64_t last_seen_usec = 0;  // unix usec
};

// Fleet mode (docs/fleet.md): one decision taken in degraded mode that Redis must still learn.
struct ReconcileItem {
  int64_t id = 0;  // assigned by the store
  std::string user;
  std::string kind;  // "watermark" (step), "backup" (hash), "failures" (count), "sms-..."
  uint64_t step = 0;
  std::optional<CodeHash> hash;
  int count = 0;
  // Sentinel mode: the state counter of the write no replica acknowledged ("unreplicated"), which
  // a failover may have lost; 0: a decision taken without Redis.
  uint64_t counter = 0;
};

// How many audit rows since a time share a kind, an outcome and the details' "method" and
// "purpose" ("" when absent): what `mfactl report` counts (core/adoption_report.hpp).
struct AuditCount {
  std::string kind;
  std::string outcome;
  std::string method;
  std::string purpose;
  uint64_t count = 0;
};

// Fleet mode: the last enrollment or reset of a user that another host wrote (audit row
// fleet.foreign-change, docs/fleet.md "Changes made elsewhere"), unless a change of the user's
// factors on this host came after it.
struct ForeignChange {
  std::string host;    // the writer's HostId
  std::string change;  // "enrollment" or "reset"
  std::string factor;  // the factor's field ("totp", "totp/NAME", "sms"); "" for a reset
  int64_t time_usec = 0;
};

// Fleet mode's degraded decisions, counted from the audit trail's `degraded` rows (docs/fleet.md,
// "Reconciliation report").
struct DegradedTally {
  uint64_t decisions = 0;       // calls decided without Redis (every degraded row of a user)
  uint64_t logins_allowed = 0;  // Verify calls that succeeded
  uint64_t logins_denied = 0;   // BeginAuthentication and Verify calls failed or refused
  uint64_t consumed = 0;        // successes that consumed a code (TOTP step, backup code, SMS)
  uint64_t unreplicated = 0;    // writes no replica acknowledged (Sentinel mode)
  uint64_t periods = 0;         // times Redis was lost (rows of entering degraded mode)
  uint64_t reconciled = 0;      // queued items Redis took on reconciliation (left rows' sum)
  uint64_t refused = 0;         // queued items Redis refused (it knew better; left rows' sum)
};

// A device a person logged in from (docs/sessions.md, "Devices"): the fingerprint of (user,
// rhost, service, tty kind), where from and through what, and when.
struct DeviceRecord {
  std::string user;
  std::string fingerprint;  // hex
  std::string rhost;        // "" for a local login
  std::string client;       // "sshd pts", "login tty": the PAM service and the kind of terminal
  int64_t first_seen_usec = 0;
  int64_t last_seen_usec = 0;
};

// What forget_user erases (docs/security-model.md, "Data rights"): every record under key (the
// account key) or under one of names (the names logins and the audit trail used), the person's
// sessions and devices; audit rows about names keep their place in the chain, with the
// name and phone replaced by a keyed pseudonym.
struct ForgetRequest {
  std::string key;
  std::vector<std::string> names;
};
struct ForgetReport {
  std::string pseudonym;    // what the audit rows now name
  int audit_rows = 0;       // rows pseudonymised
  int audit_rows_kept = 0;  // rows the chain does not let change (see sqlite_audit.cpp)
  int sessions = 0;
  int devices = 0;
  bool data_key = false;  // a data key was destroyed
};

struct AuditVerification {
  bool intact = true;
  uint64_t rows = 0;
  // Not intact: what is wrong (the first broken row, or "truncated: the trail is proven up to row
  // N; rows N+1..M are missing"). Intact: how far the trail is proven ("" from stores that do not
  // say).
  std::string message;
  int64_t first_id = 0;  // the first and last row verified; 0 when there is none
  int64_t last_id = 0;
};

class Store {
 public:
  virtual ~Store() = default;

  // Factors. put_factor replaces the record with the same (method, device, pending);
  // delete_factor removes every device's record of (method, pending), delete_totp_device one
  // device's. get_factors returns them by method, then device name.
  virtual Result<std::vector<FactorRecord>> get_factors(std::string_view user) = 0;
  virtual Status put_factor(std::string_view user, const FactorRecord& record) = 0;
  virtual Status delete_factor(std::string_view user, Method method, bool pending) = 0;
  virtual Status delete_totp_device(std::string_view user, std::string_view device,
                                    bool pending) = 0;
  // Every user with at least one factor (active or pending) or backup codes, sorted.
  virtual Result<std::vector<std::string>> list_users() = 0;
  // Removes factors, backup codes, watermark, limits and pending SMS codes of user.
  virtual Status delete_user(std::string_view user) = 0;

  // TOTP replay watermark of one device (the last accepted time step). advance: sets it to step
  // only if step is greater than the current one (or none); returns false, changing nothing,
  // otherwise.
  virtual Result<std::optional<uint64_t>> get_totp_watermark(std::string_view user,
                                                             std::string_view device) = 0;
  virtual Result<bool> advance_totp_watermark(std::string_view user, std::string_view device,
                                              uint64_t step) = 0;
  virtual Status set_totp_watermark(std::string_view user, std::string_view device,
                                    std::optional<uint64_t> step) = 0;

  // Backup codes. replace: the old set stops working. consume: true if the hash was unused and is
  // now consumed (exactly once).
  virtual Status replace_backup_codes(std::string_view user,
                                      const std::vector<CodeHash>& hashes) = 0;
  virtual Result<bool> consume_backup_code(std::string_view user, const CodeHash& hash) = 0;
  virtual Result<int> count_backup_codes(std::string_view user) = 0;  // unused ones
  virtual Status delete_backup_codes(std::string_view user) = 0;

  // Rate limits.
  virtual Result<LimitState> get_limits(std::string_view user) = 0;
  virtual Status put_limits(std::string_view user, const LimitState& state) = 0;

  // SMS codes, one per (user, purpose: "login", "enroll" or "step-up"); put replaces. The sends
  // table holds a keyed hash of the phone, never the number. record_sms_send also forgets sends
  // before forget_before_usec. The defaults refuse: a store without SMS support fails closed.
  virtual Result<std::optional<SmsCode>> get_sms_code(std::string_view user,
                                                      std::string_view purpose);
  virtual Status put_sms_code(std::string_view user, std::string_view purpose, const SmsCode& code);
  virtual Status delete_sms_code(std::string_view user, std::string_view purpose);
  // Every pending code of user, login and enrollment: they die with the phone they went to
  // (DisableMethod sms). Apart from delete_sms_code so that fleet mode can tell it from the
  // death of one spent or expired code.
  virtual Status drop_sms_codes(std::string_view user);
  // The live code of (user, purpose) was typed right: it is used up (deleted). Apart from
  // delete_sms_code so that fleet mode can tell a used code from a dead one.
  virtual Status use_sms_code(std::string_view user, std::string_view purpose) {
    return delete_sms_code(user, purpose);
  }
  virtual Status record_sms_send(std::string_view user, std::string_view phone_key,
                                 int64_t time_usec, int64_t forget_before_usec);
  virtual Result<SmsSendCounts> count_sms_sends(std::string_view user, std::string_view phone_key,
                                                int64_t since_usec);
  // How many numbers other than phone_key were texted for user since since_usec (the phone
  // changes [SMS] MaxPhoneChangesPerDay= counts).
  virtual Result<int> count_other_sms_phones(std::string_view user, std::string_view phone_key,
                                             int64_t since_usec);

  // Enrollment tokens ([Rollout] RequireToken=, docs/rollout.md): keyed hashes of one-time,
  // expiring tokens, one live token per user. put replaces user's tokens with this one; spend
  // marks a live (unspent, unexpired at now_usec) token of user's with that hash spent and says
  // whether there was one. The defaults refuse: a store without tokens fails closed.
  virtual Status put_enrollment_token(std::string_view user, const CodeHash& hash,
                                      int64_t created_usec, int64_t expires_usec);
  virtual Result<bool> spend_enrollment_token(std::string_view user, const CodeHash& hash,
                                              int64_t now_usec);

  // Audit trail: append-only, hash-chained. append assigns id and hash_hex.
  virtual Status append_audit(AuditRecord& record) = 0;
  virtual Result<std::vector<AuditRecord>> query_audit(const AuditFilter& filter) = 0;
  virtual Result<AuditVerification> verify_audit_chain() = 0;
  // Deletes rows older than cutoff (retention), keeping the chain verifiable from the first kept
  // row (its predecessor's hash is kept as the anchor; a keyed chain also gets an
  // "audit.checkpoint" row that vouches for the anchor).
  virtual Status prune_audit(int64_t cutoff_usec) = 0;
  // The rows of the given kinds at or after since_usec, counted by (kind, outcome, method,
  // purpose). The default refuses.
  virtual Result<std::vector<AuditCount>> count_audit(int64_t since_usec,
                                                      const std::vector<std::string>& kinds);
  // The degraded rows at or after since_usec, tallied; current_period: only those after the last
  // row of leaving degraded mode (the decisions of the period now ending). The default refuses.
  virtual Result<DegradedTally> tally_degraded(int64_t since_usec, bool current_period);
  // The last fleet.foreign-change row of user (named as the audit trail names it), unless a change
  // of its factors here (enroll.confirm, enroll.import, enroll.disable, backup.generate,
  // admin.reset) followed it. The default: none.
  virtual Result<std::optional<ForeignChange>> last_foreign_change(const std::string& user);
  // The database's own consistency check (SQLite's PRAGMA quick_check): "" when it finds nothing,
  // else its first findings. The default refuses.
  virtual Result<std::string> check_integrity();

  // Sessions (the sessions issue). put_session inserts or replaces by id; list_sessions("")
  // lists everyone's, oldest first; delete_session returns whether a row went.
  virtual Status put_session(const SessionRecord& session);
  virtual Result<std::optional<SessionRecord>> get_session(std::string_view id);
  virtual Result<std::vector<SessionRecord>> list_sessions(std::string_view user);
  virtual Result<bool> delete_session(std::string_view id);
  // Records a login from device (user, fingerprint); true when it was never seen before.
  // rhost and client describe the device (DeviceRecord) and are refreshed on every login.
  virtual Result<bool> note_device(std::string_view user, std::string_view fingerprint,
                                   int64_t now_usec, std::string_view rhost,
                                   std::string_view client);
  // user's devices, oldest first ("": everyone's); delete_device returns whether a row went.
  virtual Result<std::vector<DeviceRecord>> list_devices(std::string_view user);
  virtual Result<bool> delete_device(std::string_view user, std::string_view fingerprint);

  // Data rights (docs/security-model.md, "Data rights"): erases a person (ForgetRequest), inside
  // the batch transaction. The default refuses.
  virtual Result<ForgetReport> forget_user(const ForgetRequest& request);

  // Fleet mode (docs/fleet.md): this store is the local cache of Redis's shared state. The
  // defaults refuse: a store without them cannot serve fleet mode, and fails closed.
  //
  // The keyed hashes of user's unused backup codes, sorted: what the cache compares with Redis's
  // set, and writes to it.
  virtual Result<std::vector<CodeHash>> unused_backup_codes(std::string_view user);
  // user's SMS sends at or after since_usec become `sends` (phone key, time; earlier ones are
  // skipped): the fleet's, as Redis counts them, so that local limits see every host's texts.
  virtual Status replace_sms_sends(std::string_view user, int64_t since_usec,
                                   const std::vector<std::pair<std::string, int64_t>>& sends);
  // The reconciliation queue: what decisions taken without Redis consumed or counted, replayed
  // when Redis is back. queue_reconcile appends (the store assigns the id); list_reconcile
  // returns the oldest `limit` items, oldest first; delete_reconcile removes a replayed one.
  // Writes join the batch transaction like every other write.
  virtual Status queue_reconcile(const ReconcileItem& item);
  virtual Result<std::vector<ReconcileItem>> list_reconcile(size_t limit);
  virtual Status delete_reconcile(int64_t id);
  // user's queued items whose write's counter is above `above` (unreplicated writes a state of
  // that counter lacks), oldest first, at most `limit`.
  virtual Result<std::vector<ReconcileItem>> list_unreplicated(std::string_view user,
                                                               uint64_t above, size_t limit);
  // The rollback high-water mark (docs/fleet.md, "Authenticated records"): the highest counter of
  // user's state record this host has seen, kept across restarts. 0: none kept. raise keeps the
  // larger of the two (a mark never moves back); both join the batch transaction.
  virtual Result<uint64_t> get_fleet_highwater(std::string_view user);
  virtual Status raise_fleet_highwater(std::string_view user, uint64_t counter);
  virtual Status delete_fleet_highwater(std::string_view user);

  // Group commit (see above). flush() commits and waits for the disk. A pipeline splits it:
  // commit() commits without waiting for the disk, and sync() makes every commit so far durable;
  // sync() may run on another thread while this one goes on using the store.
  virtual Status flush() = 0;
  virtual bool in_transaction() const = 0;
  virtual Status commit() { return flush(); }
  virtual Status sync() { return {}; }
  // What follows a sync that no reply waits for (SqliteStore: the audit head file), on sync()'s
  // thread once the replies the sync covered are released. A failure here fails the next sync().
  virtual void after_sync() {}
};

}  // namespace mfa

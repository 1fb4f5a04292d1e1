// The embedded store (docs/operations.md, "Durability and group commit"): SQLite in WAL mode,
// numbered migrations, BEGIN IMMEDIATE group commit (see store.hpp) and a hash-chained, append-only
// audit table.
//
// One class, one file per job: sqlite_store.cpp (the connection, statements, reads and writes),
// sqlite_schema.cpp (migrations, pragmas), sqlite_commit.cpp (the batch transaction and the disk
// flush), then one per group of tables: sqlite_factors.cpp (factors, users, TOTP watermark),
// sqlite_backup_codes.cpp, sqlite_limits.cpp, sqlite_sms.cpp, sqlite_audit.cpp,
// sqlite_sessions.cpp (sessions, devices), sqlite_reconcile.cpp (fleet mode's queue).
#pragma once

#include <sqlite3.h>

#include <atomic>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "common/crypto.hpp"
#include "common/handles.hpp"
#include "common/result.hpp"
#include "common/seal.hpp"
#include "common/secure_buffer.hpp"
#include "core/clock.hpp"
#include "core/store.hpp"
#include "core/user_directory.hpp"
#include "storage/audit_head.hpp"

namespace mfa {

using SqlitePtr = std::unique_ptr<sqlite3, Deleter<sqlite3_close_v2>>;
using SqliteStmtPtr = std::unique_ptr<sqlite3_stmt, Deleter<sqlite3_finalize>>;

// What a start found wrong with the trail's head (docs/audit-events.md, "audit.tampering"): reason
// "truncated" (rows missing_from..missing_to gone), "head-mismatch" (the newest rows replaced),
// "head-missing" (no head file beside a keyed trail), "head-unreadable".
struct AuditHeadProblem {
  std::string reason;
  int64_t proven_to = 0;  // the trail is proven up to this row
  int64_t missing_from = 0;
  int64_t missing_to = 0;
  std::string message;
};

class SqliteStore final : public Store {
 public:
  // The schema version this build writes (the highest migration number).
  static int schema_version();
  // How many migrations this build knows (numbers may have gaps).
  static int migration_count();

  // Opens (creating with mode 0600 when missing) and migrates the database at path. users maps
  // the names of an older database to account keys (migration 6, user_directory.hpp); without
  // it, the system's.
  static Result<std::unique_ptr<SqliteStore>> open(const std::string& path, const Clock& clock);
  static Result<std::unique_ptr<SqliteStore>> open(const std::string& path, const Clock& clock,
                                                   const UserDirectory& users);
  // How many rows of the database at path only its master key opens or checks (sealed factors,
  // code hashes, the audit trail); 0 when there is no database. Opens it read-only.
  static Result<int64_t> count_keyed_rows(const std::string& path);
  // Rolls back writes not yet flushed.
  ~SqliteStore() override;
  SqliteStore(const SqliteStore&) = delete;
  SqliteStore& operator=(const SqliteStore&) = delete;

  Result<std::vector<FactorRecord>> get_factors(std::string_view user) override;
  Status put_factor(std::string_view user, const FactorRecord& record) override;
  Status delete_factor(std::string_view user, Method method, bool pending) override;
  Status delete_totp_device(std::string_view user, std::string_view device, bool pending) override;
  Result<std::vector<std::string>> list_users() override;
  Status delete_user(std::string_view user) override;

  Result<std::optional<uint64_t>> get_totp_watermark(std::string_view user,
                                                     std::string_view device) override;
  Result<bool> advance_totp_watermark(std::string_view user, std::string_view device,
                                      uint64_t step) override;
  Status set_totp_watermark(std::string_view user, std::string_view device,
                            std::optional<uint64_t> step) override;

  Status replace_backup_codes(std::string_view user, const std::vector<CodeHash>& hashes) override;
  Result<bool> consume_backup_code(std::string_view user, const CodeHash& hash) override;
  Result<int> count_backup_codes(std::string_view user) override;
  Status delete_backup_codes(std::string_view user) override;

  Result<LimitState> get_limits(std::string_view user) override;
  Status put_limits(std::string_view user, const LimitState& state) override;

  Result<std::optional<SmsCode>> get_sms_code(std::string_view user,
                                              std::string_view purpose) override;
  Status put_sms_code(std::string_view user, std::string_view purpose,
                      const SmsCode& code) override;
  Status delete_sms_code(std::string_view user, std::string_view purpose) override;
  Status record_sms_send(std::string_view user, std::string_view phone_key, int64_t time_usec,
                         int64_t forget_before_usec) override;
  Result<SmsSendCounts> count_sms_sends(std::string_view user, std::string_view phone_key,
                                        int64_t since_usec) override;
  Result<int> count_other_sms_phones(std::string_view user, std::string_view phone_key,
                                     int64_t since_usec) override;

  Status put_enrollment_token(std::string_view user, const CodeHash& hash, int64_t created_usec,
                              int64_t expires_usec) override;
  Result<bool> spend_enrollment_token(std::string_view user, const CodeHash& hash,
                                      int64_t now_usec) override;

  Status append_audit(AuditRecord& record) override;
  Result<std::vector<AuditRecord>> query_audit(const AuditFilter& filter) override;
  Result<AuditVerification> verify_audit_chain() override;
  Status prune_audit(int64_t cutoff_usec) override;
  // sqlite_report.cpp
  Result<std::vector<AuditCount>> count_audit(int64_t since_usec,
                                              const std::vector<std::string>& kinds) override;
  Result<DegradedTally> tally_degraded(int64_t since_usec, bool current_period) override;
  Result<std::optional<ForeignChange>> last_foreign_change(const std::string& user) override;
  Result<std::string> check_integrity() override;

  // Keys the audit chain (docs/audit-events.md, "The hash chain"): rows appended from now on
  // are linked with HMAC-SHA-256 under key, and the head (audit_head.hpp) is sealed with sealer
  // into head_path after every disk flush ("": no head file). A trail written before the chain
  // was keyed gets an "audit.checkpoint" row (reason "keyed") that carries its head, inside the
  // batch transaction. The head file is compared with the database: what is wrong is kept for
  // take_audit_head_problem(). sealer must outlive the store.
  Status set_audit_chain(SecureBytes key, std::string head_path, const Sealer* sealer);
  // What set_audit_chain() or an append found wrong with the head, once.
  std::optional<AuditHeadProblem> take_audit_head_problem();
  // The head as last committed, for the journal.
  AuditHead audit_head() const;
  // Retention of devices: forgets the ones not seen since before cutoff_usec; returns how many.
  Result<int> prune_devices(int64_t cutoff_usec);

  Status put_session(const SessionRecord& session) override;
  Result<std::optional<SessionRecord>> get_session(std::string_view id) override;
  Result<std::vector<SessionRecord>> list_sessions(std::string_view user) override;
  Result<bool> delete_session(std::string_view id) override;
  Result<bool> note_device(std::string_view user, std::string_view fingerprint, int64_t now_usec,
                           std::string_view rhost, std::string_view client) override;
  Result<std::vector<DeviceRecord>> list_devices(std::string_view user) override;
  Result<bool> delete_device(std::string_view user, std::string_view fingerprint) override;

  // Data rights (sqlite_data_rights.cpp).
  Result<ForgetReport> forget_user(const ForgetRequest& request) override;

  // Durability: SQLite commits with synchronous=NORMAL (WAL frames written, not fsync'd) and
  // sync() fdatasyncs the write-ahead log, so that the disk flush can run off the event loop.
  // flush() is commit() then sync(): every flushed or synced commit is as durable as with
  // synchronous=FULL.
  Status flush() override;
  Status commit() override;
  Status sync() override;
  // Writes the head file the last sync() allowed (docs/operations.md, "The audit trail"): after
  // the replies, since no reply needs it and the file's create and rename cost as much as the
  // disk flush on ext4.
  void after_sync() override;
  bool in_transaction() const override { return in_transaction_; }

  // Fleet mode's cache (store.hpp).
  Result<std::vector<CodeHash>> unused_backup_codes(std::string_view user) override;
  Status replace_sms_sends(std::string_view user, int64_t since_usec,
                           const std::vector<std::pair<std::string, int64_t>>& sends) override;
  Status queue_reconcile(const ReconcileItem& item) override;
  Result<std::vector<ReconcileItem>> list_reconcile(size_t limit) override;
  Status delete_reconcile(int64_t id) override;
  Result<std::vector<ReconcileItem>> list_unreplicated(std::string_view user, uint64_t above,
                                                       size_t limit) override;
  Result<uint64_t> get_fleet_highwater(std::string_view user) override;
  Status raise_fleet_highwater(std::string_view user, uint64_t counter) override;
  Status delete_fleet_highwater(std::string_view user) override;

 private:
  class Statement;
  SqliteStore(SqlitePtr db, const Clock& clock);

  Status configure();
  Status migrate(const UserDirectory& users);
  // Migration 6: records keyed by a name are keyed by its account.
  Status key_records_by_account(const UserDirectory& users);
  // Migration 7: the data-rights columns, each where it is missing.
  Status add_data_rights_columns();
  // Runs sql (not cached) and calls on_row for each row.
  Status exec_rows(const std::string& sql, const std::function<void()>& on_row);
  Result<int> current_schema_version();
  Result<sqlite3_stmt*> prepare(const char* sql);
  // Runs a write statement inside the batch transaction; returns sqlite3_changes().
  Result<int> write(const char* sql, const std::function<void(Statement&)>& bind);
  // Runs a query; on_row is called for each row.
  Status read(const char* sql, const std::function<void(Statement&)>& bind,
              const std::function<void(Statement&)>& on_row);
  Status exec(const char* sql);
  // Opens the batch transaction on the first write after a flush; fails at once while a failed
  // batch has not been reported by flush().
  Status begin_write();
  // Turns a failed write into a failed batch: rolls back and remembers the error for flush().
  Error fail_write(Error error);
  // After a forget (sqlite_data_rights.cpp): checkpoints the write-ahead log and truncates it, so
  // that no older copy of the erased rows stays in it.
  void erase_log();
  Error sqlite_error(int rc, const char* what) const;
  // The audit chain (sqlite_audit.cpp).
  std::string audit_link(std::string_view prev_hash, const AuditRecord& row) const;
  Status insert_audit_row(AuditRecord& row, int64_t id, const std::string& prev_hash);
  Status append_checkpoint(const std::string& reason, const std::string& details_json);
  // The commitment chain (docs/audit-events.md, "Commitments"): HMACs under commit_mac_.
  std::string commitment(std::string_view label, int64_t id, std::string_view value) const;
  std::string pseudonym(std::string_view name) const;
  std::string redaction_mac(const AuditRecord& row, std::string_view user_commit,
                            std::string_view details_commit) const;
  std::string commit_link(std::string_view prev_hash, const AuditRecord& row,
                          std::string_view user_commit, std::string_view details_commit) const;
  // Rewrites the rows linked before commitments into the commitment chain, once the old chain
  // verifies; an "audit.checkpoint" row (reason "committed") vouches for the old head.
  Status commit_old_rows();
  // The audit part of forget_user: rows naming one of names get the pseudonym.
  Status pseudonymise_audit(const std::vector<std::string>& names, ForgetReport& report);
  // The newest row (or where pruning left the chain); first_id only when asked (one more query).
  Result<AuditHead> audit_head_in_db(bool with_first_id = true);
  Result<int64_t> keyed_chain_start();
  Result<AuditVerification> verify_rows(int64_t keyed_from);
  void note_head_problem(AuditHeadProblem problem);
  // Called on commit and rollback: what the head file may say.
  void commit_audit_head();
  void rollback_audit_head();

  SqlitePtr db_;
  const Clock& clock_;
  Fd wal_;  // the write-ahead log, for sync(): fsync flushes the file, whichever fd wrote it
  std::atomic<bool> sync_failed_{false};  // sticky: see sync()
  std::unordered_map<const char*, SqliteStmtPtr> statements_;
  bool in_transaction_ = false;
  bool erase_log_after_commit_ = false;  // a forget is in the batch, or its checkpoint failed
  std::optional<Error> batch_error_;

  // The keyed chain. head_ follows the open transaction; committed_head_ is what the last commit
  // left, read by sync() on the commit thread (under head_mutex_), which writes it to head_path_.
  bool keyed_ = false;       // set_audit_chain() had a key (else the legacy unkeyed links)
  HmacSha256Key audit_mac_;  // that key, made ready for many rows
  // HKDF(that key, "mfad audit commitment v1"), made ready likewise.
  HmacSha256Key commit_mac_;
  std::string head_path_;
  const Sealer* head_sealer_ = nullptr;
  bool head_known_ = false;
  AuditHead head_;
  std::optional<AuditHeadProblem> head_problem_;
  mutable std::mutex head_mutex_;
  AuditHead committed_head_;               // guarded by head_mutex_
  bool committed_known_ = false;           // guarded by head_mutex_
  std::optional<AuditHead> written_head_;  // the commit thread's: what the file holds
  std::optional<AuditHead> synced_head_;   // the commit thread's: what the file may now hold
  std::optional<Error> head_write_error_;  // the commit thread's: after_sync() failed
  Status write_synced_head();
};

}  // namespace mfa

// SqliteStore's schema: the numbered migrations, the pragmas every connection runs with, and
// the migration of an older database at open.
#include <array>
#include <functional>
#include <iterator>
#include <string>
#include <utility>
#include <vector>

#include "core/log.hpp"
#include "core/user_directory.hpp"

#include "storage/sqlite_statement.hpp"
#include "storage/sqlite_store.hpp"

namespace mfa {
namespace {

// Numbered migrations, in increasing order of number. Numbers may have gaps (features developed
// apart take their own numbers); every known migration not yet recorded in schema_version is
// applied, in order. Append new ones; never edit or renumber one that has shipped.
struct Migration {
  int number;
  const char* sql;
  // Not SQL alone: key_records_by_account() (it asks NSS).
  bool key_by_account = false;
  // Not SQL alone: add_data_rights_columns() (columns added only where missing).
  bool data_rights = false;
};
constexpr Migration kMigrations[] = {
    // 1: everything.
    {1, R"sql(
CREATE TABLE factors(
  user TEXT NOT NULL,
  method TEXT NOT NULL,
  pending INTEGER NOT NULL,
  sealed BLOB NOT NULL,
  params TEXT NOT NULL,
  created INTEGER NOT NULL,
  PRIMARY KEY(user, method, pending));
CREATE TABLE backup_codes(
  user TEXT NOT NULL,
  hash BLOB NOT NULL,
  used_at INTEGER,
  PRIMARY KEY(user, hash));
CREATE TABLE totp_watermark(
  user TEXT PRIMARY KEY,
  step INTEGER NOT NULL);
CREATE TABLE limits(
  user TEXT PRIMARY KEY,
  consecutive_failures INTEGER NOT NULL,
  lockout_count INTEGER NOT NULL,
  locked_until INTEGER NOT NULL,
  day INTEGER NOT NULL,
  day_failures INTEGER NOT NULL);
CREATE TABLE audit(
  id INTEGER PRIMARY KEY,
  time INTEGER NOT NULL,
  kind TEXT NOT NULL,
  user TEXT NOT NULL,
  outcome TEXT NOT NULL,
  reason TEXT NOT NULL,
  caller TEXT NOT NULL,
  details TEXT NOT NULL,
  prev_hash TEXT NOT NULL,
  hash TEXT NOT NULL);
CREATE INDEX audit_by_user ON audit(user, id);
CREATE INDEX audit_by_time ON audit(time);
CREATE TABLE audit_anchor(
  id INTEGER PRIMARY KEY CHECK(id = 1),
  first_id INTEGER NOT NULL,
  prev_hash TEXT NOT NULL);
CREATE TABLE audit_guard(
  id INTEGER PRIMARY KEY CHECK(id = 1),
  pruning INTEGER NOT NULL);
INSERT INTO audit_guard(id, pruning) VALUES(1, 0);
CREATE TRIGGER audit_no_update BEFORE UPDATE ON audit
BEGIN SELECT RAISE(ABORT, 'audit rows are append-only'); END;
CREATE TRIGGER audit_no_delete BEFORE DELETE ON audit
WHEN (SELECT pruning FROM audit_guard WHERE id = 1) = 0
BEGIN SELECT RAISE(ABORT, 'audit rows are append-only'); END;
CREATE TRIGGER audit_anchor_no_insert BEFORE INSERT ON audit_anchor
WHEN (SELECT pruning FROM audit_guard WHERE id = 1) = 0
BEGIN SELECT RAISE(ABORT, 'the audit anchor changes only when pruning'); END;
CREATE TRIGGER audit_anchor_no_update BEFORE UPDATE ON audit_anchor
WHEN (SELECT pruning FROM audit_guard WHERE id = 1) = 0
BEGIN SELECT RAISE(ABORT, 'the audit anchor changes only when pruning'); END;
CREATE TRIGGER audit_anchor_no_delete BEFORE DELETE ON audit_anchor
WHEN (SELECT pruning FROM audit_guard WHERE id = 1) = 0
BEGIN SELECT RAISE(ABORT, 'the audit anchor changes only when pruning'); END;
)sql"},
    // 2: login sessions and the devices they came from (the sessions issue).
    {2, R"sql(
CREATE TABLE sessions(
  id TEXT PRIMARY KEY,
  user TEXT NOT NULL,
  service TEXT NOT NULL,
  rhost TEXT NOT NULL,
  tty TEXT NOT NULL,
  ruser TEXT NOT NULL,
  logind_session TEXT NOT NULL,
  leader_pid INTEGER NOT NULL,
  leader_start INTEGER NOT NULL,
  factor TEXT NOT NULL,
  device TEXT NOT NULL,
  started INTEGER NOT NULL,
  last_seen INTEGER NOT NULL);
CREATE INDEX sessions_by_user ON sessions(user, started);
CREATE TABLE devices(
  user TEXT NOT NULL,
  fingerprint TEXT NOT NULL,
  first_seen INTEGER NOT NULL,
  last_seen INTEGER NOT NULL,
  PRIMARY KEY(user, fingerprint));
)sql"},
    // 3: SMS codes (keyed hashes) and the sends the SMS limits count (keyed phone hashes).
    {3, R"sql(
CREATE TABLE sms_codes(
  user TEXT NOT NULL,
  purpose TEXT NOT NULL,
  hash BLOB NOT NULL,
  expires INTEGER NOT NULL,
  attempts INTEGER NOT NULL,
  PRIMARY KEY(user, purpose));
CREATE TABLE sms_sends(
  id INTEGER PRIMARY KEY,
  user TEXT NOT NULL,
  phone TEXT NOT NULL,
  time INTEGER NOT NULL);
CREATE INDEX sms_sends_by_time ON sms_sends(time);
CREATE INDEX sms_sends_by_user ON sms_sends(user, time);
CREATE INDEX sms_sends_by_phone ON sms_sends(phone, time);
)sql"},
    // 4: fleet mode: what degraded mode decided and Redis must still learn (docs/fleet.md).
    {4, R"sql(
CREATE TABLE fleet_reconcile(
  id INTEGER PRIMARY KEY,
  user TEXT NOT NULL,
  kind TEXT NOT NULL,
  step INTEGER NOT NULL DEFAULT 0,
  hash BLOB,
  count INTEGER NOT NULL DEFAULT 0,
  created INTEGER NOT NULL);
)sql"},
    // 5: before it, leader_start held /proc/PID/stat's vsize (field 23), not the start time
    // (field 22), and a live leader whose memory grew looked like a reused pid. 0 is "unknown":
    // such a session is checked by its pid alone, as one registered without a start time.
    {5, R"sql(
UPDATE sessions SET leader_start = 0;
)sql"},
    // 6: state is keyed by the account, not by the spelling of the name a login used (issue 17):
    // key_records_by_account().
    {6, "", true},
    // 7: enrollment tokens ([Rollout] RequireToken=, docs/rollout.md): keyed hashes, keyed by
    // account like the factors they open the way to; spent is 0 until used.
    {7, R"sql(
CREATE TABLE IF NOT EXISTS enrollment_tokens(
  user TEXT NOT NULL,
  hash BLOB NOT NULL,
  created INTEGER NOT NULL,
  expires INTEGER NOT NULL,
  spent INTEGER NOT NULL DEFAULT 0,
  PRIMARY KEY(user, hash));
)sql"},
    // 8: several named TOTP devices per user (issue 19), each with its own replay watermark. The
    // one secret a user had becomes the device "default"; SMS records have no device ("").
    {8, R"sql(
CREATE TABLE factors_v7(
  user TEXT NOT NULL,
  method TEXT NOT NULL,
  device TEXT NOT NULL,
  pending INTEGER NOT NULL,
  sealed BLOB NOT NULL,
  params TEXT NOT NULL,
  created INTEGER NOT NULL,
  PRIMARY KEY(user, method, device, pending));
INSERT INTO factors_v7(user, method, device, pending, sealed, params, created)
  SELECT user, method, CASE method WHEN 'totp' THEN 'default' ELSE '' END, pending, sealed,
         params, created FROM factors;
DROP TABLE factors;
ALTER TABLE factors_v7 RENAME TO factors;
CREATE TABLE totp_watermark_v7(
  user TEXT NOT NULL,
  device TEXT NOT NULL,
  step INTEGER NOT NULL,
  PRIMARY KEY(user, device));
INSERT INTO totp_watermark_v7(user, device, step) SELECT user, 'default', step FROM totp_watermark;
DROP TABLE totp_watermark;
ALTER TABLE totp_watermark_v7 RENAME TO totp_watermark;
)sql"},
    // 9: the kernel audit session of the process that opened a session (`fresh=`, issue 19).
    {9, R"sql(
ALTER TABLE sessions ADD COLUMN audit_session INTEGER NOT NULL DEFAULT 4294967295;
ALTER TABLE sessions ADD COLUMN audit_login_uid INTEGER NOT NULL DEFAULT 4294967295;
)sql"},
    // 10: data rights (docs/security-model.md, "Data rights"): devices described, and audit rows
    // whose chain covers commitments to the name and details instead
    // of the clear text, so that forgetting a person can replace them (sqlite_audit.cpp). Rows
    // change only while the guard is up, as when pruning.
    {10, "", false, true},
    // 11: fleet mode's rollback high-water marks survive a restart (issue 16, docs/fleet.md,
    // "Authenticated records"), and a queued consumption names the state counter of its
    // unacknowledged write (Sentinel mode), so that a state older than the mark is told apart: a
    // write a failover lost (merged again) or a copy put back (refused).
    {11, R"sql(
CREATE TABLE IF NOT EXISTS fleet_highwater(
  user TEXT PRIMARY KEY,
  counter INTEGER NOT NULL);
ALTER TABLE fleet_reconcile ADD COLUMN counter INTEGER NOT NULL DEFAULT 0;
)sql"},
};

// The tables whose records belong to a user's authentication state. Sessions, devices and the
// audit trail keep the name a login used: they are records of what happened, shown to people.
constexpr const char* kAccountTables[] = {"factors",   "backup_codes", "totp_watermark", "limits",
                                          "sms_codes", "sms_sends",    "fleet_reconcile"};
constexpr int kSchemaVersion = kMigrations[std::size(kMigrations) - 1].number;

constexpr int kBusyTimeoutMs = 5000;

}  // namespace

int SqliteStore::schema_version() {
  return kSchemaVersion;
}

int SqliteStore::migration_count() {
  return static_cast<int>(std::size(kMigrations));
}
Status SqliteStore::configure() {
  int rc = sqlite3_busy_timeout(db_.get(), kBusyTimeoutMs);
  if (rc != SQLITE_OK)
    return sqlite_error(rc, "cannot configure database");
  // journal_mode answers with the mode in force; anything but "wal" means it did not take.
  std::string mode;
  MFA_CHECK(read(
      "PRAGMA journal_mode=WAL", [](Statement&) {},
      [&](Statement& st) { mode = st.column_text(0); }));
  if (mode != "wal") {
    return make_error(Errc::kStorage,
                      "cannot switch the database to WAL mode (got \"" + mode + "\")");
  }
  // NORMAL, with sync() after every commit before anything is acknowledged: see sqlite_store.hpp.
  MFA_CHECK(exec("PRAGMA synchronous=NORMAL"));
  MFA_CHECK(exec("PRAGMA foreign_keys=ON"));
  // Deleted secrets (sealed records, code hashes) are overwritten, not left in free pages.
  MFA_CHECK(exec("PRAGMA secure_delete=ON"));
  MFA_CHECK(exec("PRAGMA trusted_schema=OFF"));
  return {};
}

Result<int> SqliteStore::current_schema_version() {
  int version = 0;
  MFA_CHECK(read(
      "SELECT coalesce(max(version), 0) FROM schema_version", [](Statement&) {},
      [&](Statement& st) { version = static_cast<int>(st.column_int(0)); }));
  return version;
}

Status SqliteStore::migrate(const UserDirectory& users) {
  Status status = [&]() -> Status {
    MFA_CHECK(exec("BEGIN IMMEDIATE"));
    MFA_CHECK(
        exec("CREATE TABLE IF NOT EXISTS schema_version("
             "version INTEGER PRIMARY KEY, applied INTEGER NOT NULL)"));
    MFA_TRY(version, current_schema_version());
    if (version > kSchemaVersion) {
      return make_error(Errc::kStorage, "database schema version " + std::to_string(version) +
                                            " is newer than this mfad supports (" +
                                            std::to_string(kSchemaVersion) + ")");
    }
    for (const Migration& migration : kMigrations) {
      bool applied = false;
      MFA_CHECK(read(
          "SELECT 1 FROM schema_version WHERE version = ?",
          [&](Statement& st) { st.integer(1, migration.number); },
          [&](Statement&) { applied = true; }));
      if (applied)
        continue;
      const int next = migration.number;
      if (migration.key_by_account)
        MFA_CHECK(key_records_by_account(users));
      else if (migration.data_rights)
        MFA_CHECK(add_data_rights_columns());
      else
        MFA_CHECK(exec(migration.sql));
      sqlite3_stmt* raw = nullptr;
      int rc =
          sqlite3_prepare_v2(db_.get(), "INSERT INTO schema_version(version, applied) VALUES(?, ?)",
                             -1, &raw, nullptr);
      SqliteStmtPtr stmt(raw);
      if (rc != SQLITE_OK)
        return sqlite_error(rc, "database migration failed");
      Statement st(stmt.get());
      st.integer(1, next);
      st.integer(2, clock_.realtime_usec());
      rc = st.step();
      if (rc != SQLITE_DONE)
        return sqlite_error(rc, "database migration failed");
    }
    return exec("COMMIT");
  }();
  if (!status.ok() && !sqlite3_get_autocommit(db_.get())) {
    sqlite3_exec(db_.get(), "ROLLBACK", nullptr, nullptr, nullptr);
  }
  return status;
}

// Every record of a name NSS resolves to the account's own name moves to the account's key
// (user_directory.hpp). Sealed records and backup-code hashes of that name stay bound to it, and
// the Verifier still opens them under the account's NSS name (legacy_owner). Records under any
// other spelling stay where they are, logged, for an admin to reset: a name NSS does not know
// (its account was deleted), or an alias of an account (a second passwd entry with the uid,
// another case), whose secrets are bound to that spelling and would not open under the account.
Status SqliteStore::key_records_by_account(const UserDirectory& users) {
  const auto run = [&](const std::string& sql, const std::function<void(Statement&)>& bind,
                       const std::function<void(Statement&)>& on_row) -> Status {
    sqlite3_stmt* raw = nullptr;
    int rc = sqlite3_prepare_v2(db_.get(), sql.c_str(), -1, &raw, nullptr);
    SqliteStmtPtr stmt(raw);
    if (rc != SQLITE_OK)
      return sqlite_error(rc, "database migration failed");
    Statement st(stmt.get());
    bind(st);
    while ((rc = st.step()) == SQLITE_ROW)
      on_row(st);
    if (rc != SQLITE_DONE)
      return sqlite_error(rc, "database migration failed");
    return {};
  };
  std::string names_sql;
  for (const char* table : kAccountTables)
    names_sql += std::string(names_sql.empty() ? "" : " UNION ") + "SELECT user FROM " + table;
  std::vector<std::string> names;
  MFA_CHECK(run(
      names_sql, [](Statement&) {}, [&](Statement& st) { names.push_back(st.column_text(0)); }));
  for (const std::string& name : names) {
    if (account_key_uid(name))
      continue;
    const auto uid = users.uid_of(name);
    if (!uid) {
      MFA_LOG_WARNING(
          "database migration: '%s' is not a user this host knows; its records stay under that "
          "name until an admin resets it (mfactl reset)",
          name.c_str());
      continue;
    }
    const auto own = users.name_of(*uid);
    if (!own || *own != name) {
      MFA_LOG_WARNING(
          "database migration: '%s' is another name of uid %u ('%s'); its records, sealed for "
          "that spelling, stay under it until an admin resets it (mfactl reset): enroll the "
          "account again",
          name.c_str(), static_cast<unsigned>(*uid), own ? own->c_str() : "?");
      continue;
    }
    const std::string key = account_key(*uid);
    for (const char* table : kAccountTables) {
      MFA_CHECK(run(
          std::string("UPDATE ") + table + " SET user = ?1 WHERE user = ?2",
          [&](Statement& st) {
            st.text(1, key);
            st.text(2, name);
          },
          [](Statement&) {}));
    }
    MFA_LOG_INFO("database migration: the records of '%s' are now keyed by its uid %u",
                 name.c_str(), static_cast<unsigned>(*uid));
  }
  return {};
}

// Migration 7, data rights (docs/security-model.md, "Data rights"): devices described, and audit
// rows whose chain covers commitments to the user and details instead of the clear text, so that
// forgetting a person can replace them (sqlite_audit_commitments.cpp). Rows change only while
// the guard is up, as when pruning. A column is added only where it is missing: a database whose
// recorded version is older than its tables (restored pieces) still opens.
Status SqliteStore::add_data_rights_columns() {
  static constexpr std::array<std::pair<const char*, const char*>, 5> kColumns{{
      {"devices", "rhost"},
      {"devices", "client"},
      {"audit", "user_commit"},
      {"audit", "details_commit"},
      {"audit", "redaction"},
  }};
  for (const auto& [table, column] : kColumns) {
    bool present = false;
    const std::string info = std::string("SELECT 1 FROM pragma_table_info('") + table +
                             "') WHERE name = '" + column + "'";
    MFA_CHECK(exec_rows(info, [&] { present = true; }));
    if (!present) {
      const std::string add = std::string("ALTER TABLE ") + table + " ADD COLUMN " + column +
                              " TEXT NOT NULL DEFAULT ''";
      MFA_CHECK(exec(add.c_str()));
    }
  }
  return exec(
      "DROP TRIGGER IF EXISTS audit_no_update; "
      "CREATE TRIGGER audit_no_update BEFORE UPDATE ON audit "
      "WHEN (SELECT pruning FROM audit_guard WHERE id = 1) = 0 "
      "BEGIN SELECT RAISE(ABORT, 'audit rows are append-only'); END;");
}

}  // namespace mfa

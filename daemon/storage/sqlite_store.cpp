#include "storage/sqlite_store.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <limits>
#include <span>

#include "common/crypto.hpp"

namespace mfa {
namespace {

// Numbered migrations, in increasing order of number. Numbers may have gaps (features developed
// apart take their own numbers); every known migration not yet recorded in schema_version is
// applied, in order. Append new ones; never edit or renumber one that has shipped.
struct Migration {
  int number;
  const char* sql;
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
};
constexpr int kSchemaVersion = kMigrations[std::size(kMigrations) - 1].number;

constexpr int kBusyTimeoutMs = 5000;
constexpr size_t kMaxAuditField = 64 * 1024;
constexpr size_t kMaxAuditQuery = 10000;
constexpr size_t kMaxBackupCodes = 100;
constexpr size_t kMaxUserName = 256;
constexpr const char* kGenesisHash =
    "0000000000000000000000000000000000000000000000000000000000000000";

std::string describe_sqlite(int rc) {
  switch (rc & 0xff) {
    case SQLITE_FULL:
      return "disk full (SQLITE_FULL)";
    case SQLITE_READONLY:
      return "database is read-only (SQLITE_READONLY)";
    case SQLITE_IOERR:
      return "I/O error (SQLITE_IOERR)";
    case SQLITE_CORRUPT:
      return "database file is corrupt (SQLITE_CORRUPT)";
    case SQLITE_NOTADB:
      return "file is not a database (SQLITE_NOTADB)";
    case SQLITE_BUSY:
      return "database is locked by another process (SQLITE_BUSY)";
    case SQLITE_LOCKED:
      return "database table is locked (SQLITE_LOCKED)";
    case SQLITE_CANTOPEN:
      return "cannot open the database file (SQLITE_CANTOPEN)";
    case SQLITE_NOMEM:
      return "out of memory (SQLITE_NOMEM)";
    case SQLITE_PERM:
      return "permission denied (SQLITE_PERM)";
    case SQLITE_CONSTRAINT:
      return "constraint failed (SQLITE_CONSTRAINT)";
    default:
      return std::string(sqlite3_errstr(rc)) + " (SQLite error " + std::to_string(rc) + ")";
  }
}

bool valid_user(std::string_view user) {
  return !user.empty() && user.size() <= kMaxUserName;
}

Error bad_user() {
  return make_error(Errc::kInvalidArgument, "invalid user name");
}

void put_u64(std::vector<uint8_t>& out, uint64_t v) {
  for (int shift = 56; shift >= 0; shift -= 8)
    out.push_back(static_cast<uint8_t>(v >> shift));
}

void put_field(std::vector<uint8_t>& out, std::string_view field) {
  put_u64(out, field.size());
  out.insert(out.end(), field.begin(), field.end());
}

// sha256(prev_hash || canonical row). Every field is length-prefixed, so no two different rows
// encode alike; the id is included, so rows cannot be reordered or renumbered unnoticed.
std::string audit_hash(std::string_view prev_hash_hex, const AuditRecord& r) {
  std::vector<uint8_t> buf;
  buf.reserve(128 + r.kind.size() + r.user.size() + r.outcome.size() + r.reason.size() +
              r.caller.size() + r.details_json.size());
  put_field(buf, prev_hash_hex);
  put_field(buf, "mfad-audit-v1");
  put_u64(buf, static_cast<uint64_t>(r.id));
  put_u64(buf, static_cast<uint64_t>(r.time_usec));
  put_field(buf, r.kind);
  put_field(buf, r.user);
  put_field(buf, r.outcome);
  put_field(buf, r.reason);
  put_field(buf, r.caller);
  put_field(buf, r.details_json);
  auto digest = sha256(buf);
  return to_hex(digest);
}

}  // namespace

// A cached prepared statement in use: bindings and the cursor are reset when it goes away.
class SqliteStore::Statement {
 public:
  explicit Statement(sqlite3_stmt* stmt) : stmt_(stmt) {}
  ~Statement() {
    sqlite3_reset(stmt_);
    sqlite3_clear_bindings(stmt_);
  }
  Statement(const Statement&) = delete;
  Statement& operator=(const Statement&) = delete;

  void text(int i, std::string_view v) {
    note(sqlite3_bind_text(stmt_, i, v.data(), static_cast<int>(v.size()), SQLITE_TRANSIENT));
  }
  void blob(int i, std::span<const uint8_t> v) {
    // A zero-length blob must still be a blob, not NULL.
    static const uint8_t kEmpty = 0;
    note(sqlite3_bind_blob(stmt_, i, v.empty() ? &kEmpty : v.data(), static_cast<int>(v.size()),
                           SQLITE_TRANSIENT));
  }
  void integer(int i, int64_t v) { note(sqlite3_bind_int64(stmt_, i, v)); }
  void null(int i) { note(sqlite3_bind_null(stmt_, i)); }

  int step() { return bind_rc_ != SQLITE_OK ? bind_rc_ : sqlite3_step(stmt_); }

  int64_t column_int(int i) const { return sqlite3_column_int64(stmt_, i); }
  bool column_is_null(int i) const { return sqlite3_column_type(stmt_, i) == SQLITE_NULL; }
  std::string column_text(int i) const {
    const auto* p = sqlite3_column_text(stmt_, i);
    int n = sqlite3_column_bytes(stmt_, i);
    return p ? std::string(reinterpret_cast<const char*>(p), static_cast<size_t>(n))
             : std::string();
  }
  std::vector<uint8_t> column_blob(int i) const {
    const auto* p = static_cast<const uint8_t*>(sqlite3_column_blob(stmt_, i));
    int n = sqlite3_column_bytes(stmt_, i);
    return p ? std::vector<uint8_t>(p, p + n) : std::vector<uint8_t>();
  }

 private:
  void note(int rc) {
    if (rc != SQLITE_OK && bind_rc_ == SQLITE_OK)
      bind_rc_ = rc;
  }
  sqlite3_stmt* stmt_;
  int bind_rc_ = SQLITE_OK;
};

int SqliteStore::schema_version() {
  return kSchemaVersion;
}

int SqliteStore::migration_count() {
  return static_cast<int>(std::size(kMigrations));
}

SqliteStore::SqliteStore(SqlitePtr db, const Clock& clock) : db_(std::move(db)), clock_(clock) {}

SqliteStore::~SqliteStore() {
  statements_.clear();
  if (in_transaction_ && db_ && !sqlite3_get_autocommit(db_.get())) {
    sqlite3_exec(db_.get(), "ROLLBACK", nullptr, nullptr, nullptr);
  }
}

Result<std::unique_ptr<SqliteStore>> SqliteStore::open(const std::string& path,
                                                       const Clock& clock) {
  if (path.empty() || path.find('\0') != std::string::npos) {
    return make_error(Errc::kInvalidArgument, "database path is empty");
  }
  // Create the file ourselves with mode 0600, so it never exists with a looser one; SQLite
  // creates the -wal and -shm files with the database file's mode.
  Fd fd(::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY, 0600));
  if (!fd.valid()) {
    return make_error(Errc::kStorage, "cannot open database " + path + ": " + std::strerror(errno));
  }
  struct stat st {};
  if (fstat(fd.get(), &st) < 0) {
    return make_error(Errc::kStorage, "cannot stat database " + path + ": " + std::strerror(errno));
  }
  if (!S_ISREG(st.st_mode)) {
    return make_error(Errc::kStorage, "database " + path + " is not a regular file");
  }
  if ((st.st_mode & 07777) != 0600 && fchmod(fd.get(), 0600) < 0) {
    return make_error(Errc::kStorage,
                      "cannot set mode 0600 on database " + path + ": " + std::strerror(errno));
  }
  fd.reset();

  sqlite3* raw = nullptr;
  // SQLite's unix VFS opens every file with O_CLOEXEC (os_unix.c robust_open).
  int rc =
      sqlite3_open_v2(path.c_str(), &raw,
                      SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX | SQLITE_OPEN_NOFOLLOW, nullptr);
  SqlitePtr db(raw);
  if (rc != SQLITE_OK) {
    return make_error(Errc::kStorage, "cannot open database " + path + ": " + describe_sqlite(rc));
  }
  sqlite3_extended_result_codes(db.get(), 1);
  std::unique_ptr<SqliteStore> store(new SqliteStore(std::move(db), clock));
  MFA_CHECK(store->configure());
  MFA_CHECK(store->migrate());
  // The migration's write transaction has created the log; it lives as long as the connection.
  const std::string wal_path = path + "-wal";
  store->wal_ = Fd(::open(wal_path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY));
  if (!store->wal_.valid()) {
    return make_error(Errc::kStorage,
                      "cannot open the database log " + wal_path + ": " + std::strerror(errno));
  }
  MFA_CHECK(store->sync());
  return store;
}

Error SqliteStore::sqlite_error(int rc, const char* what) const {
  std::string message = std::string(what) + ": " + describe_sqlite(rc);
  // For constraint failures the text names the rule (a trigger's message, a column), never a
  // bound value.
  if ((rc & 0xff) == SQLITE_CONSTRAINT && db_) {
    message += ": ";
    message += sqlite3_errmsg(db_.get());
  }
  return make_error(Errc::kStorage, std::move(message));
}

Status SqliteStore::exec(const char* sql) {
  int rc = sqlite3_exec(db_.get(), sql, nullptr, nullptr, nullptr);
  if (rc != SQLITE_OK)
    return sqlite_error(rc, "database error");
  return {};
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

Status SqliteStore::migrate() {
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

Result<sqlite3_stmt*> SqliteStore::prepare(const char* sql) {
  auto it = statements_.find(sql);
  if (it != statements_.end())
    return it->second.get();
  sqlite3_stmt* raw = nullptr;
  int rc = sqlite3_prepare_v3(db_.get(), sql, -1, SQLITE_PREPARE_PERSISTENT, &raw, nullptr);
  SqliteStmtPtr stmt(raw);
  if (rc != SQLITE_OK)
    return sqlite_error(rc, "database error");
  sqlite3_stmt* out = stmt.get();
  statements_.emplace(sql, std::move(stmt));
  return out;
}

Status SqliteStore::begin_write() {
  if (batch_error_)
    return *batch_error_;
  if (in_transaction_)
    return {};
  int rc = sqlite3_exec(db_.get(), "BEGIN IMMEDIATE", nullptr, nullptr, nullptr);
  if (rc != SQLITE_OK)
    return sqlite_error(rc, "database write failed");
  in_transaction_ = true;
  return {};
}

Error SqliteStore::fail_write(Error error) {
  if (in_transaction_) {
    if (!sqlite3_get_autocommit(db_.get())) {
      sqlite3_exec(db_.get(), "ROLLBACK", nullptr, nullptr, nullptr);
    }
    in_transaction_ = false;
    batch_error_ = error;
  }
  return error;
}

Result<int> SqliteStore::write(const char* sql, const std::function<void(Statement&)>& bind) {
  MFA_CHECK(begin_write());
  auto stmt = prepare(sql);
  if (!stmt.ok())
    return fail_write(std::move(stmt).error());
  Statement st(*stmt);
  bind(st);
  int rc = st.step();
  if (rc != SQLITE_DONE && rc != SQLITE_ROW) {
    return fail_write(sqlite_error(rc, "database write failed"));
  }
  return sqlite3_changes(db_.get());
}

Status SqliteStore::read(const char* sql, const std::function<void(Statement&)>& bind,
                         const std::function<void(Statement&)>& on_row) {
  auto stmt = prepare(sql);
  if (!stmt.ok())
    return std::move(stmt).error();
  Statement st(*stmt);
  bind(st);
  for (;;) {
    int rc = st.step();
    if (rc == SQLITE_DONE)
      return {};
    if (rc != SQLITE_ROW) {
      Error error = sqlite_error(rc, "database read failed");
      // An I/O error inside the batch may have rolled it back already: then the batch failed.
      if (in_transaction_ && sqlite3_get_autocommit(db_.get()))
        return fail_write(error);
      return error;
    }
    on_row(st);
  }
}

Status SqliteStore::flush() {
  MFA_CHECK(commit());
  return sync();
}

Status SqliteStore::sync() {
  // Runs on the commit thread: touches nothing but wal_, which is set before any thread starts,
  // and sync_failed_.
  //
  // Once a disk flush has failed, every later one fails too, until mfad restarts: Linux reports
  // a writeback error to fdatasync once, and the next call may succeed although the pages it
  // covered were dropped ("fsyncgate"; PostgreSQL panics for the same reason). A success reply
  // must never rest on such a sync, so mfad fails closed and says so in every reply.
  if (sync_failed_.load(std::memory_order_acquire)) {
    return make_error(Errc::kStorage,
                      "database write failed earlier (sync); restart mfad once the disk is fixed");
  }
  if (fdatasync(wal_.get()) < 0) {
    const int err = errno;
    sync_failed_.store(true, std::memory_order_release);
    return make_error(Errc::kStorage,
                      std::string("database write failed (sync): ") + std::strerror(err));
  }
  struct stat st {};
  if (fstat(wal_.get(), &st) < 0 || st.st_nlink == 0) {
    return make_error(Errc::kStorage, "database write failed: its log file was removed");
  }
  return {};
}

Status SqliteStore::commit() {
  if (batch_error_) {
    Error error = std::move(*batch_error_);
    batch_error_.reset();
    error.message += " (the batch was rolled back)";
    return error;
  }
  if (!in_transaction_)
    return {};
  in_transaction_ = false;
  int rc = sqlite3_exec(db_.get(), "COMMIT", nullptr, nullptr, nullptr);
  if (rc != SQLITE_OK) {
    Error error = sqlite_error(rc, "database write failed");
    if (!sqlite3_get_autocommit(db_.get())) {
      sqlite3_exec(db_.get(), "ROLLBACK", nullptr, nullptr, nullptr);
    }
    return error;
  }
  return {};
}

// --- Factors ---

Result<std::vector<FactorRecord>> SqliteStore::get_factors(std::string_view user) {
  if (!valid_user(user))
    return bad_user();
  std::vector<FactorRecord> out;
  MFA_CHECK(read(
      "SELECT method, pending, sealed, params, created FROM factors WHERE user = ? "
      "ORDER BY method, pending",
      [&](Statement& st) { st.text(1, user); },
      [&](Statement& st) {
        auto method = parse_method(st.column_text(0));
        if (!method)
          return;  // written by a newer mfad: not ours to interpret
        FactorRecord r;
        r.method = *method;
        r.pending = st.column_int(1) != 0;
        r.sealed = st.column_blob(2);
        r.params = st.column_text(3);
        r.created_usec = st.column_int(4);
        out.push_back(std::move(r));
      }));
  return out;
}

Status SqliteStore::put_factor(std::string_view user, const FactorRecord& record) {
  if (!valid_user(user))
    return bad_user();
  MFA_TRY(changes,
          write("INSERT INTO factors(user, method, pending, sealed, params, created) "
                "VALUES(?, ?, ?, ?, ?, ?) ON CONFLICT(user, method, pending) DO UPDATE SET "
                "sealed = excluded.sealed, params = excluded.params, "
                "created = excluded.created",
                [&](Statement& st) {
                  st.text(1, user);
                  st.text(2, method_name(record.method));
                  st.integer(3, record.pending ? 1 : 0);
                  st.blob(4, record.sealed);
                  st.text(5, record.params);
                  st.integer(6, record.created_usec);
                }));
  (void)changes;
  return {};
}

Status SqliteStore::delete_factor(std::string_view user, Method method, bool pending) {
  if (!valid_user(user))
    return bad_user();
  MFA_TRY(changes, write("DELETE FROM factors WHERE user = ? AND method = ? AND pending = ?",
                         [&](Statement& st) {
                           st.text(1, user);
                           st.text(2, method_name(method));
                           st.integer(3, pending ? 1 : 0);
                         }));
  (void)changes;
  return {};
}

Result<std::vector<std::string>> SqliteStore::list_users() {
  std::vector<std::string> out;
  MFA_CHECK(read(
      "SELECT user FROM factors UNION SELECT user FROM backup_codes ORDER BY 1", [](Statement&) {},
      [&](Statement& st) { out.push_back(st.column_text(0)); }));
  return out;
}

Status SqliteStore::delete_user(std::string_view user) {
  if (!valid_user(user))
    return bad_user();
  for (const char* sql :
       {"DELETE FROM factors WHERE user = ?", "DELETE FROM backup_codes WHERE user = ?",
        "DELETE FROM totp_watermark WHERE user = ?", "DELETE FROM limits WHERE user = ?",
        "DELETE FROM sms_codes WHERE user = ?"}) {
    MFA_TRY(changes, write(sql, [&](Statement& st) { st.text(1, user); }));
    (void)changes;
  }
  return {};
}

// --- TOTP watermark ---

Result<std::optional<uint64_t>> SqliteStore::get_totp_watermark(std::string_view user) {
  if (!valid_user(user))
    return bad_user();
  std::optional<uint64_t> step;
  MFA_CHECK(read(
      "SELECT step FROM totp_watermark WHERE user = ?", [&](Statement& st) { st.text(1, user); },
      [&](Statement& st) { step = static_cast<uint64_t>(st.column_int(0)); }));
  return step;
}

Result<bool> SqliteStore::advance_totp_watermark(std::string_view user, uint64_t step) {
  if (!valid_user(user))
    return bad_user();
  if (step > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
    return make_error(Errc::kInvalidArgument, "time step out of range");
  }
  // One statement: compare and set cannot be split by another writer.
  MFA_TRY(changes, write("INSERT INTO totp_watermark(user, step) VALUES(?, ?) "
                         "ON CONFLICT(user) DO UPDATE SET step = excluded.step "
                         "WHERE excluded.step > totp_watermark.step",
                         [&](Statement& st) {
                           st.text(1, user);
                           st.integer(2, static_cast<int64_t>(step));
                         }));
  return changes == 1;
}

Status SqliteStore::set_totp_watermark(std::string_view user, std::optional<uint64_t> step) {
  if (!valid_user(user))
    return bad_user();
  if (!step) {
    MFA_TRY(changes, write("DELETE FROM totp_watermark WHERE user = ?",
                           [&](Statement& st) { st.text(1, user); }));
    (void)changes;
    return {};
  }
  if (*step > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
    return make_error(Errc::kInvalidArgument, "time step out of range");
  }
  MFA_TRY(changes, write("INSERT INTO totp_watermark(user, step) VALUES(?, ?) "
                         "ON CONFLICT(user) DO UPDATE SET step = excluded.step",
                         [&](Statement& st) {
                           st.text(1, user);
                           st.integer(2, static_cast<int64_t>(*step));
                         }));
  (void)changes;
  return {};
}

// --- Backup codes ---

Status SqliteStore::replace_backup_codes(std::string_view user,
                                         const std::vector<CodeHash>& hashes) {
  if (!valid_user(user))
    return bad_user();
  if (hashes.size() > kMaxBackupCodes) {
    return make_error(Errc::kInvalidArgument, "too many backup codes");
  }
  MFA_TRY(deleted, write("DELETE FROM backup_codes WHERE user = ?",
                         [&](Statement& st) { st.text(1, user); }));
  (void)deleted;
  for (const auto& hash : hashes) {
    MFA_TRY(changes,
            write("INSERT OR IGNORE INTO backup_codes(user, hash, used_at) VALUES(?, ?, NULL)",
                  [&](Statement& st) {
                    st.text(1, user);
                    st.blob(2, hash);
                  }));
    (void)changes;
  }
  return {};
}

Result<bool> SqliteStore::consume_backup_code(std::string_view user, const CodeHash& hash) {
  if (!valid_user(user))
    return bad_user();
  // Exactly once: only the statement that flips used_at from NULL changes a row.
  MFA_TRY(changes, write("UPDATE backup_codes SET used_at = ? "
                         "WHERE user = ? AND hash = ? AND used_at IS NULL",
                         [&](Statement& st) {
                           st.integer(1, clock_.realtime_usec());
                           st.text(2, user);
                           st.blob(3, hash);
                         }));
  return changes == 1;
}

Result<int> SqliteStore::count_backup_codes(std::string_view user) {
  if (!valid_user(user))
    return bad_user();
  int count = 0;
  MFA_CHECK(read(
      "SELECT count(*) FROM backup_codes WHERE user = ? AND used_at IS NULL",
      [&](Statement& st) { st.text(1, user); },
      [&](Statement& st) { count = static_cast<int>(st.column_int(0)); }));
  return count;
}

Status SqliteStore::delete_backup_codes(std::string_view user) {
  if (!valid_user(user))
    return bad_user();
  MFA_TRY(changes, write("DELETE FROM backup_codes WHERE user = ?",
                         [&](Statement& st) { st.text(1, user); }));
  (void)changes;
  return {};
}

// --- Rate limits ---

Result<LimitState> SqliteStore::get_limits(std::string_view user) {
  if (!valid_user(user))
    return bad_user();
  LimitState state;
  MFA_CHECK(read(
      "SELECT consecutive_failures, lockout_count, locked_until, day, day_failures "
      "FROM limits WHERE user = ?",
      [&](Statement& st) { st.text(1, user); },
      [&](Statement& st) {
        state.consecutive_failures = static_cast<int>(st.column_int(0));
        state.lockout_count = static_cast<int>(st.column_int(1));
        state.locked_until_usec = st.column_int(2);
        state.day = st.column_int(3);
        state.day_failures = static_cast<int>(st.column_int(4));
      }));
  return state;
}

Status SqliteStore::put_limits(std::string_view user, const LimitState& state) {
  if (!valid_user(user))
    return bad_user();
  MFA_TRY(changes,
          write("INSERT INTO limits(user, consecutive_failures, lockout_count, locked_until, day, "
                "day_failures) VALUES(?, ?, ?, ?, ?, ?) ON CONFLICT(user) DO UPDATE SET "
                "consecutive_failures = excluded.consecutive_failures, "
                "lockout_count = excluded.lockout_count, locked_until = excluded.locked_until, "
                "day = excluded.day, day_failures = excluded.day_failures",
                [&](Statement& st) {
                  st.text(1, user);
                  st.integer(2, state.consecutive_failures);
                  st.integer(3, state.lockout_count);
                  st.integer(4, state.locked_until_usec);
                  st.integer(5, state.day);
                  st.integer(6, state.day_failures);
                }));
  (void)changes;
  return {};
}

// --- Audit ---

Status SqliteStore::append_audit(AuditRecord& record) {
  for (const std::string* field : {&record.kind, &record.user, &record.outcome, &record.reason,
                                   &record.caller, &record.details_json}) {
    if (field->size() > kMaxAuditField) {
      return make_error(Errc::kInvalidArgument, "audit record field too long");
    }
  }
  if (record.kind.empty())
    return make_error(Errc::kInvalidArgument, "audit record without kind");
  MFA_CHECK(begin_write());

  // The chain continues from the last row, or from the anchor left by pruning, or from zero.
  int64_t next_id = 0;
  std::string prev_hash;
  MFA_CHECK(read(
      "SELECT id, hash FROM audit ORDER BY id DESC LIMIT 1", [](Statement&) {},
      [&](Statement& st) {
        next_id = st.column_int(0) + 1;
        prev_hash = st.column_text(1);
      }));
  if (next_id == 0) {
    MFA_CHECK(read(
        "SELECT first_id, prev_hash FROM audit_anchor WHERE id = 1", [](Statement&) {},
        [&](Statement& st) {
          next_id = st.column_int(0);
          prev_hash = st.column_text(1);
        }));
  }
  if (next_id == 0) {
    next_id = 1;
    prev_hash = kGenesisHash;
  }

  AuditRecord row = record;
  row.id = next_id;
  if (row.time_usec == 0)
    row.time_usec = clock_.realtime_usec();
  row.hash_hex = audit_hash(prev_hash, row);
  MFA_TRY(changes, write("INSERT INTO audit(id, time, kind, user, outcome, reason, caller, "
                         "details, prev_hash, hash) VALUES(?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                         [&](Statement& st) {
                           st.integer(1, row.id);
                           st.integer(2, row.time_usec);
                           st.text(3, row.kind);
                           st.text(4, row.user);
                           st.text(5, row.outcome);
                           st.text(6, row.reason);
                           st.text(7, row.caller);
                           st.text(8, row.details_json);
                           st.text(9, prev_hash);
                           st.text(10, row.hash_hex);
                         }));
  (void)changes;
  record = std::move(row);
  return {};
}

Result<std::vector<AuditRecord>> SqliteStore::query_audit(const AuditFilter& filter) {
  std::vector<AuditRecord> out;
  size_t limit = std::min(filter.limit, kMaxAuditQuery);
  if (limit == 0)
    return out;
  MFA_CHECK(read(
      "SELECT id, time, kind, user, outcome, reason, caller, details, hash FROM ("
      "SELECT * FROM audit WHERE (?1 = '' OR user = ?1) AND time >= ?2 "
      "ORDER BY id DESC LIMIT ?3) ORDER BY id ASC",
      [&](Statement& st) {
        st.text(1, filter.user);
        st.integer(2, filter.since_usec);
        st.integer(3, static_cast<int64_t>(limit));
      },
      [&](Statement& st) {
        AuditRecord r;
        r.id = st.column_int(0);
        r.time_usec = st.column_int(1);
        r.kind = st.column_text(2);
        r.user = st.column_text(3);
        r.outcome = st.column_text(4);
        r.reason = st.column_text(5);
        r.caller = st.column_text(6);
        r.details_json = st.column_text(7);
        r.hash_hex = st.column_text(8);
        out.push_back(std::move(r));
      }));
  return out;
}

Result<AuditVerification> SqliteStore::verify_audit_chain() {
  AuditVerification v;
  int64_t expected_id = 1;
  std::string expected_prev = kGenesisHash;
  MFA_CHECK(read(
      "SELECT first_id, prev_hash FROM audit_anchor WHERE id = 1", [](Statement&) {},
      [&](Statement& st) {
        expected_id = st.column_int(0);
        expected_prev = st.column_text(1);
      }));
  MFA_CHECK(read(
      "SELECT id, time, kind, user, outcome, reason, caller, details, prev_hash, hash "
      "FROM audit ORDER BY id",
      [](Statement&) {},
      [&](Statement& st) {
        if (!v.intact)
          return;
        AuditRecord r;
        r.id = st.column_int(0);
        r.time_usec = st.column_int(1);
        r.kind = st.column_text(2);
        r.user = st.column_text(3);
        r.outcome = st.column_text(4);
        r.reason = st.column_text(5);
        r.caller = st.column_text(6);
        r.details_json = st.column_text(7);
        std::string prev_hash = st.column_text(8);
        std::string hash = st.column_text(9);
        ++v.rows;
        std::string id = std::to_string(r.id);
        if (r.id != expected_id) {
          v.intact = false;
          v.message = "audit row " + id + ": expected row " + std::to_string(expected_id) +
                      " here (rows removed or inserted)";
        } else if (prev_hash != expected_prev) {
          v.intact = false;
          v.message = "audit row " + id +
                      ": does not chain to the row before it (a row was changed, removed or "
                      "inserted)";
        } else if (audit_hash(prev_hash, r) != hash) {
          v.intact = false;
          v.message = "audit row " + id + ": contents do not match its hash (row modified)";
        }
        expected_id = r.id + 1;
        expected_prev = hash;
      }));
  return v;
}

Status SqliteStore::prune_audit(int64_t cutoff_usec) {
  MFA_CHECK(begin_write());
  int64_t first_id = 0;
  int64_t last_id = 0;
  std::string last_hash;
  MFA_CHECK(read(
      "SELECT id, hash FROM audit ORDER BY id DESC LIMIT 1", [](Statement&) {},
      [&](Statement& st) {
        last_id = st.column_int(0);
        last_hash = st.column_text(1);
      }));
  if (last_id == 0)
    return {};
  MFA_CHECK(read(
      "SELECT min(id) FROM audit", [](Statement&) {},
      [&](Statement& st) { first_id = st.column_int(0); }));

  // The first kept row; none kept: the anchor points past the last row.
  int64_t keep_id = last_id + 1;
  std::string anchor_hash = last_hash;
  MFA_CHECK(read(
      "SELECT id, prev_hash FROM audit WHERE id = (SELECT min(id) FROM audit WHERE time >= ?)",
      [&](Statement& st) { st.integer(1, cutoff_usec); },
      [&](Statement& st) {
        keep_id = st.column_int(0);
        anchor_hash = st.column_text(1);
      }));
  if (keep_id <= first_id)
    return {};

  MFA_TRY(guard_on, write("UPDATE audit_guard SET pruning = 1 WHERE id = 1", [](Statement&) {}));
  (void)guard_on;
  MFA_TRY(deleted,
          write("DELETE FROM audit WHERE id < ?", [&](Statement& st) { st.integer(1, keep_id); }));
  (void)deleted;
  MFA_TRY(anchored, write("INSERT INTO audit_anchor(id, first_id, prev_hash) VALUES(1, ?, ?) "
                          "ON CONFLICT(id) DO UPDATE SET first_id = excluded.first_id, "
                          "prev_hash = excluded.prev_hash",
                          [&](Statement& st) {
                            st.integer(1, keep_id);
                            st.text(2, anchor_hash);
                          }));
  (void)anchored;
  MFA_TRY(guard_off, write("UPDATE audit_guard SET pruning = 0 WHERE id = 1", [](Statement&) {}));
  (void)guard_off;
  return {};
}

// --- Sessions ---

namespace {
constexpr const char* kSessionColumns =
    "id, user, service, rhost, tty, ruser, logind_session, leader_pid, leader_start, factor, "
    "device, started, last_seen";
}  // namespace

Status SqliteStore::put_session(const SessionRecord& s) {
  if (!valid_user(s.user))
    return bad_user();
  if (s.id.empty() || s.id.size() > 128)
    return make_error(Errc::kInvalidArgument, "invalid session id");
  MFA_TRY(changes,
          write("INSERT OR REPLACE INTO sessions(id, user, service, rhost, tty, ruser, "
                "logind_session, leader_pid, leader_start, factor, device, started, last_seen) "
                "VALUES(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [&](Statement& st) {
                  st.text(1, s.id);
                  st.text(2, s.user);
                  st.text(3, s.service);
                  st.text(4, s.rhost);
                  st.text(5, s.tty);
                  st.text(6, s.ruser);
                  st.text(7, s.logind_session);
                  st.integer(8, s.leader_pid);
                  st.integer(9, static_cast<int64_t>(s.leader_start));
                  st.text(10, s.factor);
                  st.text(11, s.device);
                  st.integer(12, s.started_usec);
                  st.integer(13, s.last_seen_usec);
                }));
  (void)changes;
  return {};
}

namespace {
template <typename Row>
SessionRecord session_from_row(const Row& st) {
  SessionRecord s;
  s.id = st.column_text(0);
  s.user = st.column_text(1);
  s.service = st.column_text(2);
  s.rhost = st.column_text(3);
  s.tty = st.column_text(4);
  s.ruser = st.column_text(5);
  s.logind_session = st.column_text(6);
  s.leader_pid = static_cast<uint32_t>(st.column_int(7));
  s.leader_start = static_cast<uint64_t>(st.column_int(8));
  s.factor = st.column_text(9);
  s.device = st.column_text(10);
  s.started_usec = st.column_int(11);
  s.last_seen_usec = st.column_int(12);
  return s;
}
}  // namespace

Result<std::optional<SessionRecord>> SqliteStore::get_session(std::string_view id) {
  std::optional<SessionRecord> out;
  static const std::string sql =
      std::string("SELECT ") + kSessionColumns + " FROM sessions WHERE id = ?";
  MFA_CHECK(read(
      sql.c_str(), [&](Statement& st) { st.text(1, id); },
      [&](Statement& st) { out = session_from_row(st); }));
  return out;
}

Result<std::vector<SessionRecord>> SqliteStore::list_sessions(std::string_view user) {
  std::vector<SessionRecord> out;
  static const std::string sql = std::string("SELECT ") + kSessionColumns +
                                 " FROM sessions WHERE (?1 = '' OR user = ?1) "
                                 "ORDER BY started, id";
  MFA_CHECK(read(
      sql.c_str(), [&](Statement& st) { st.text(1, user); },
      [&](Statement& st) { out.push_back(session_from_row(st)); }));
  return out;
}

Result<bool> SqliteStore::delete_session(std::string_view id) {
  MFA_TRY(changes,
          write("DELETE FROM sessions WHERE id = ?", [&](Statement& st) { st.text(1, id); }));
  return changes > 0;
}

Result<bool> SqliteStore::note_device(std::string_view user, std::string_view fingerprint,
                                      int64_t now_usec) {
  if (!valid_user(user))
    return bad_user();
  MFA_TRY(updated, write("UPDATE devices SET last_seen = ? WHERE user = ? AND fingerprint = ?",
                         [&](Statement& st) {
                           st.integer(1, now_usec);
                           st.text(2, user);
                           st.text(3, fingerprint);
                         }));
  if (updated > 0)
    return false;
  MFA_TRY(inserted,
          write("INSERT INTO devices(user, fingerprint, first_seen, last_seen) VALUES(?, ?, ?, ?)",
                [&](Statement& st) {
                  st.text(1, user);
                  st.text(2, fingerprint);
                  st.integer(3, now_usec);
                  st.integer(4, now_usec);
                }));
  return inserted > 0;
}

// --- SMS ---

Result<std::optional<SmsCode>> SqliteStore::get_sms_code(std::string_view user,
                                                         std::string_view purpose) {
  if (!valid_user(user))
    return bad_user();
  std::optional<SmsCode> out;
  MFA_CHECK(read(
      "SELECT hash, expires, attempts FROM sms_codes WHERE user = ? AND purpose = ?",
      [&](Statement& st) {
        st.text(1, user);
        st.text(2, purpose);
      },
      [&](Statement& st) {
        const auto hash = st.column_blob(0);
        SmsCode c;
        if (hash.size() != c.hash.size())
          return;  // damaged: no code
        std::copy(hash.begin(), hash.end(), c.hash.begin());
        c.expires_usec = st.column_int(1);
        c.attempts = static_cast<int>(st.column_int(2));
        out = c;
      }));
  return out;
}

Status SqliteStore::put_sms_code(std::string_view user, std::string_view purpose,
                                 const SmsCode& code) {
  if (!valid_user(user))
    return bad_user();
  MFA_TRY(
      changes,
      write("INSERT INTO sms_codes(user, purpose, hash, expires, attempts) VALUES(?, ?, ?, ?, ?) "
            "ON CONFLICT(user, purpose) DO UPDATE SET hash = excluded.hash, "
            "expires = excluded.expires, attempts = excluded.attempts",
            [&](Statement& st) {
              st.text(1, user);
              st.text(2, purpose);
              st.blob(3, code.hash);
              st.integer(4, code.expires_usec);
              st.integer(5, code.attempts);
            }));
  (void)changes;
  return {};
}

Status SqliteStore::delete_sms_code(std::string_view user, std::string_view purpose) {
  if (!valid_user(user))
    return bad_user();
  MFA_TRY(changes,
          write("DELETE FROM sms_codes WHERE user = ? AND purpose = ?", [&](Statement& st) {
            st.text(1, user);
            st.text(2, purpose);
          }));
  (void)changes;
  return {};
}

Status SqliteStore::record_sms_send(std::string_view user, std::string_view phone_key,
                                    int64_t time_usec, int64_t forget_before_usec) {
  if (!valid_user(user))
    return bad_user();
  MFA_TRY(forgotten, write("DELETE FROM sms_sends WHERE time < ?",
                           [&](Statement& st) { st.integer(1, forget_before_usec); }));
  (void)forgotten;
  MFA_TRY(changes,
          write("INSERT INTO sms_sends(user, phone, time) VALUES(?, ?, ?)", [&](Statement& st) {
            st.text(1, user);
            st.text(2, phone_key);
            st.integer(3, time_usec);
          }));
  (void)changes;
  return {};
}

Result<SmsSendCounts> SqliteStore::count_sms_sends(std::string_view user,
                                                   std::string_view phone_key, int64_t since_usec) {
  if (!valid_user(user))
    return bad_user();
  SmsSendCounts counts;
  MFA_CHECK(read(
      "SELECT (SELECT count(*) FROM sms_sends WHERE user = ?1 AND time >= ?3), "
      "(SELECT count(*) FROM sms_sends WHERE phone = ?2 AND time >= ?3), "
      "(SELECT count(*) FROM sms_sends WHERE time >= ?3)",
      [&](Statement& st) {
        st.text(1, user);
        st.text(2, phone_key);
        st.integer(3, since_usec);
      },
      [&](Statement& st) {
        counts.user = static_cast<int>(st.column_int(0));
        counts.phone = static_cast<int>(st.column_int(1));
        counts.all = static_cast<int>(st.column_int(2));
      }));
  return counts;
}

// --- Fleet mode ---

Result<std::vector<CodeHash>> SqliteStore::unused_backup_codes(std::string_view user) {
  if (!valid_user(user))
    return bad_user();
  std::vector<CodeHash> out;
  MFA_CHECK(read(
      "SELECT hash FROM backup_codes WHERE user = ? AND used_at IS NULL ORDER BY hash",
      [&](Statement& st) { st.text(1, user); },
      [&](Statement& st) {
        const auto blob = st.column_blob(0);
        CodeHash h{};
        if (blob.size() == h.size()) {
          std::copy(blob.begin(), blob.end(), h.begin());
          out.push_back(h);
        }
      }));
  return out;
}

Status SqliteStore::queue_reconcile(const ReconcileItem& item) {
  if (!valid_user(item.user))
    return bad_user();
  MFA_TRY(changes, write("INSERT INTO fleet_reconcile(user, kind, step, hash, count, created) "
                         "VALUES(?, ?, ?, ?, ?, ?)",
                         [&](Statement& st) {
                           st.text(1, item.user);
                           st.text(2, item.kind);
                           st.integer(3, static_cast<int64_t>(item.step));
                           if (item.hash)
                             st.blob(4, *item.hash);
                           else
                             st.null(4);
                           st.integer(5, item.count);
                           st.integer(6, clock_.realtime_usec());
                         }));
  (void)changes;
  return {};
}

Result<std::vector<ReconcileItem>> SqliteStore::list_reconcile(size_t limit) {
  std::vector<ReconcileItem> out;
  MFA_CHECK(read(
      "SELECT id, user, kind, step, hash, count FROM fleet_reconcile ORDER BY id LIMIT ?",
      [&](Statement& st) { st.integer(1, static_cast<int64_t>(limit)); },
      [&](Statement& st) {
        ReconcileItem item;
        item.id = st.column_int(0);
        item.user = st.column_text(1);
        item.kind = st.column_text(2);
        item.step = static_cast<uint64_t>(st.column_int(3));
        const auto blob = st.column_blob(4);
        CodeHash h{};
        if (blob.size() == h.size()) {
          std::copy(blob.begin(), blob.end(), h.begin());
          item.hash = h;
        }
        item.count = static_cast<int>(st.column_int(5));
        out.push_back(std::move(item));
      }));
  return out;
}

Status SqliteStore::replace_sms_sends(std::string_view user, int64_t since_usec,
                                      const std::vector<std::pair<std::string, int64_t>>& sends) {
  if (!valid_user(user))
    return bad_user();
  MFA_TRY(removed, write("DELETE FROM sms_sends WHERE user = ? AND time >= ?", [&](Statement& st) {
            st.text(1, user);
            st.integer(2, since_usec);
          }));
  (void)removed;
  for (const auto& [phone, time] : sends) {
    if (time < since_usec)
      continue;
    MFA_TRY(changes,
            write("INSERT INTO sms_sends(user, phone, time) VALUES(?, ?, ?)", [&](Statement& st) {
              st.text(1, user);
              st.text(2, phone);
              st.integer(3, time);
            }));
    (void)changes;
  }
  return {};
}

Status SqliteStore::delete_reconcile(int64_t id) {
  MFA_TRY(changes, write("DELETE FROM fleet_reconcile WHERE id = ?",
                         [&](Statement& st) { st.integer(1, id); }));
  (void)changes;
  return {};
}

}  // namespace mfa

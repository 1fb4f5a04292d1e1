// SqliteStore's connection: opening the file (mode 0600, no symlink), the cache of prepared
// statements, and the read and write primitives every table's file uses. The schema and pragmas
// are in sqlite_schema.cpp, the batch transaction and the disk flush in sqlite_commit.cpp.
#include "storage/sqlite_store.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "storage/sqlite_statement.hpp"

namespace mfa {
namespace {

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

}  // namespace

SqliteStore::SqliteStore(SqlitePtr db, const Clock& clock) : db_(std::move(db)), clock_(clock) {}

SqliteStore::~SqliteStore() {
  statements_.clear();
  if (in_transaction_ && db_ && !sqlite3_get_autocommit(db_.get())) {
    sqlite3_exec(db_.get(), "ROLLBACK", nullptr, nullptr, nullptr);
  }
}

Result<std::unique_ptr<SqliteStore>> SqliteStore::open(const std::string& path,
                                                       const Clock& clock) {
  static const SystemUserDirectory system_users;
  return open(path, clock, system_users);
}

Result<std::unique_ptr<SqliteStore>> SqliteStore::open(const std::string& path, const Clock& clock,
                                                       const UserDirectory& users) {
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
  MFA_CHECK(store->migrate(users));
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

Status SqliteStore::exec_rows(const std::string& sql, const std::function<void()>& on_row) {
  sqlite3_stmt* raw = nullptr;
  int rc = sqlite3_prepare_v2(db_.get(), sql.c_str(), -1, &raw, nullptr);
  SqliteStmtPtr stmt(raw);
  if (rc != SQLITE_OK)
    return sqlite_error(rc, "database error");
  while ((rc = sqlite3_step(stmt.get())) == SQLITE_ROW)
    on_row();
  if (rc != SQLITE_DONE)
    return sqlite_error(rc, "database error");
  return {};
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

}  // namespace mfa

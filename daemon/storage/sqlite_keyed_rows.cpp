// Whether a database holds rows that only its master key opens or checks (docs/operations.md,
// "Key file lost"): a missing key is created only for a database with none of them.
#include <sqlite3.h>
#include <sys/stat.h>

#include <cerrno>
#include <cstring>

#include "storage/sqlite_store.hpp"

namespace mfa {
namespace {

// Sealed secrets and phones, backup-code and SMS-code hashes keyed by it, and the audit trail
// written beside them.
constexpr const char* kKeyedTables[] = {"factors", "backup_codes", "sms_codes", "audit"};

}  // namespace

Result<int64_t> SqliteStore::count_keyed_rows(const std::string& path) {
  struct stat st;
  if (lstat(path.c_str(), &st) < 0) {
    if (errno == ENOENT)
      return int64_t{0};
    return make_error(Errc::kStorage, "cannot examine " + path + ": " + strerror(errno));
  }
  if (S_ISREG(st.st_mode) && st.st_size == 0)
    return int64_t{0};
  // Read-only, never created: --check-config runs as root on the mfad user's database (the -shm
  // file SQLite may make for a WAL database gets the database file's owner).
  sqlite3* raw = nullptr;
  const int rc =
      sqlite3_open_v2(path.c_str(), &raw,
                      SQLITE_OPEN_READONLY | SQLITE_OPEN_NOMUTEX | SQLITE_OPEN_NOFOLLOW, nullptr);
  SqlitePtr db(raw);
  auto failed = [&](std::string_view what) {
    return make_error(Errc::kStorage, "cannot read " + path + " (" + std::string(what) +
                                          "): " + (db ? sqlite3_errmsg(db.get()) : "no memory"));
  };
  if (rc != SQLITE_OK)
    return failed("open");
  int64_t total = 0;
  for (const char* table : kKeyedTables) {
    // A table an older schema lacks holds nothing.
    const std::string sql = std::string(
                                "SELECT (SELECT count(*) FROM sqlite_master WHERE type = "
                                "'table' AND name = '") +
                            table + "')";
    sqlite3_stmt* raw_stmt = nullptr;
    if (sqlite3_prepare_v2(db.get(), sql.c_str(), -1, &raw_stmt, nullptr) != SQLITE_OK)
      return failed("schema");
    SqliteStmtPtr exists(raw_stmt);
    if (sqlite3_step(exists.get()) != SQLITE_ROW)
      return failed("schema");
    if (sqlite3_column_int64(exists.get(), 0) == 0)
      continue;
    const std::string count = std::string("SELECT count(*) FROM ") + table;
    if (sqlite3_prepare_v2(db.get(), count.c_str(), -1, &raw_stmt, nullptr) != SQLITE_OK)
      return failed(table);
    SqliteStmtPtr stmt(raw_stmt);
    if (sqlite3_step(stmt.get()) != SQLITE_ROW)
      return failed(table);
    total += sqlite3_column_int64(stmt.get(), 0);
  }
  return total;
}

}  // namespace mfa

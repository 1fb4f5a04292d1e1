// Inside SqliteStore (one file per table group, sqlite_*.cpp): the cached prepared statement a
// read or write binds and steps, and the checks every table's code shares. Not an interface:
// only the store's own files include it.
#pragma once

#include <sqlite3.h>

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "common/result.hpp"
#include "storage/sqlite_store.hpp"

namespace mfa {

namespace sqlite_rows {

inline constexpr size_t kMaxUserName = 256;

inline bool valid_user(std::string_view user) {
  return !user.empty() && user.size() <= kMaxUserName;
}

inline Error bad_user() {
  return make_error(Errc::kInvalidArgument, "invalid user name");
}

}  // namespace sqlite_rows

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

}  // namespace mfa

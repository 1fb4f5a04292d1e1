// SqliteStore: backup codes, as keyed hashes, each consumed exactly once.
#include <algorithm>

#include "storage/sqlite_statement.hpp"
#include "storage/sqlite_store.hpp"

namespace mfa {

using sqlite_rows::bad_user;
using sqlite_rows::valid_user;

namespace {
constexpr size_t kMaxBackupCodes = 100;

// Appends a hash read from a row (a value of another length is no hash of ours: skipped).
void append_code_hash(const std::vector<uint8_t>& blob, std::vector<CodeHash>* out) {
  CodeHash h{};
  if (blob.size() != h.size())
    return;
  std::copy(blob.begin(), blob.end(), h.begin());
  out->push_back(h);
}
}  // namespace

Status SqliteStore::replace_backup_codes(std::string_view user,
                                         const std::vector<CodeHash>& hashes) {
  if (!valid_user(user))
    return bad_user();
  if (hashes.size() > kMaxBackupCodes) {
    return make_error(Errc::kInvalidArgument, "too many backup codes");
  }
  // A code once used stays used: a new set never holds a used code's hash (codes are random),
  // so one that comes back is a state put back (a Redis record rolled back, or merged by another
  // host that had not seen the use: docs/security-model.md), and keeps its used_at.
  MFA_TRY(deleted, write("DELETE FROM backup_codes WHERE user = ? AND used_at IS NULL",
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
  // The used codes of earlier sets go, but not the ones the new set names again.
  std::vector<CodeHash> used;
  MFA_CHECK(read(
      "SELECT hash FROM backup_codes WHERE user = ? AND used_at IS NOT NULL",
      [&](Statement& st) { st.text(1, user); },
      [&](Statement& st) { append_code_hash(st.column_blob(0), &used); }));
  for (const auto& hash : used) {
    if (std::find(hashes.begin(), hashes.end(), hash) != hashes.end())
      continue;
    MFA_TRY(dropped,
            write("DELETE FROM backup_codes WHERE user = ? AND hash = ?", [&](Statement& st) {
              st.text(1, user);
              st.blob(2, hash);
            }));
    (void)dropped;
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
Result<std::vector<CodeHash>> SqliteStore::unused_backup_codes(std::string_view user) {
  if (!valid_user(user))
    return bad_user();
  std::vector<CodeHash> out;
  MFA_CHECK(read(
      "SELECT hash FROM backup_codes WHERE user = ? AND used_at IS NULL ORDER BY hash",
      [&](Statement& st) { st.text(1, user); },
      [&](Statement& st) { append_code_hash(st.column_blob(0), &out); }));
  return out;
}

}  // namespace mfa

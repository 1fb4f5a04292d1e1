// SqliteStore: enrollment tokens (keyed hashes; docs/rollout.md).
#include "storage/sqlite_statement.hpp"
#include "storage/sqlite_store.hpp"

namespace mfa {

using sqlite_rows::bad_user;
using sqlite_rows::valid_user;

Status SqliteStore::put_enrollment_token(std::string_view user, const CodeHash& hash,
                                         int64_t created_usec, int64_t expires_usec) {
  if (!valid_user(user))
    return bad_user();
  // One live token per user: a new one replaces whatever was issued before, spent or not.
  MFA_TRY(dropped, write("DELETE FROM enrollment_tokens WHERE user = ?",
                         [&](Statement& st) { st.text(1, user); }));
  (void)dropped;
  MFA_TRY(changes, write("INSERT INTO enrollment_tokens(user, hash, created, expires, spent) "
                         "VALUES(?, ?, ?, ?, 0)",
                         [&](Statement& st) {
                           st.text(1, user);
                           st.blob(2, hash);
                           st.integer(3, created_usec);
                           st.integer(4, expires_usec);
                         }));
  (void)changes;
  return {};
}

Result<bool> SqliteStore::spend_enrollment_token(std::string_view user, const CodeHash& hash,
                                                 int64_t now_usec) {
  if (!valid_user(user))
    return bad_user();
  // One statement: two logins racing with the same token cannot both spend it.
  MFA_TRY(changes, write("UPDATE enrollment_tokens SET spent = ? WHERE user = ? AND hash = ? AND "
                         "spent = 0 AND expires > ?",
                         [&](Statement& st) {
                           st.integer(1, now_usec);
                           st.text(2, user);
                           st.blob(3, hash);
                           st.integer(4, now_usec);
                         }));
  return changes == 1;
}

}  // namespace mfa

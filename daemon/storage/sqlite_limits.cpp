// SqliteStore: the rate-limit state of each user (failures, lockouts).
#include "storage/sqlite_statement.hpp"
#include "storage/sqlite_store.hpp"

namespace mfa {

using sqlite_rows::bad_user;
using sqlite_rows::valid_user;

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

}  // namespace mfa

// SqliteStore: pending SMS codes (keyed hashes) and the sends the SMS limits count (keyed phone
// hashes).
#include <algorithm>

#include "storage/sqlite_statement.hpp"
#include "storage/sqlite_store.hpp"

namespace mfa {

using sqlite_rows::bad_user;
using sqlite_rows::valid_user;

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
Result<int> SqliteStore::count_other_sms_phones(std::string_view user, std::string_view phone_key,
                                                int64_t since_usec) {
  if (!valid_user(user))
    return bad_user();
  int count = 0;
  MFA_CHECK(read(
      "SELECT count(DISTINCT phone) FROM sms_sends WHERE user = ?1 AND phone != ?2 AND time >= ?3",
      [&](Statement& st) {
        st.text(1, user);
        st.text(2, phone_key);
        st.integer(3, since_usec);
      },
      [&](Statement& st) { count = static_cast<int>(st.column_int(0)); }));
  return count;
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
  // Not a structured binding: clang 14 (the fuzz build) cannot capture one in the lambda.
  for (const auto& send : sends) {
    const auto& phone = send.first;
    const auto time = send.second;
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

}  // namespace mfa

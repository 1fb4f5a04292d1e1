// SqliteStore: enrolled and pending factors (sealed), the users they make, and the TOTP replay
// watermark.
#include <limits>

#include "storage/sqlite_statement.hpp"
#include "storage/sqlite_store.hpp"

namespace mfa {

using sqlite_rows::bad_user;
using sqlite_rows::valid_user;

// --- Factors ---

Result<std::vector<FactorRecord>> SqliteStore::get_factors(std::string_view user) {
  if (!valid_user(user))
    return bad_user();
  std::vector<FactorRecord> out;
  MFA_CHECK(read(
      "SELECT method, pending, sealed, params, created, device FROM factors WHERE user = ? "
      "ORDER BY method, device, pending",
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
        r.device = st.column_text(5);
        out.push_back(std::move(r));
      }));
  return out;
}

Status SqliteStore::put_factor(std::string_view user, const FactorRecord& record) {
  if (!valid_user(user))
    return bad_user();
  MFA_TRY(
      changes,
      write("INSERT INTO factors(user, method, pending, sealed, params, created, device) "
            "VALUES(?, ?, ?, ?, ?, ?, ?) ON CONFLICT(user, method, device, pending) DO UPDATE SET "
            "sealed = excluded.sealed, params = excluded.params, "
            "created = excluded.created",
            [&](Statement& st) {
              st.text(1, user);
              st.text(2, method_name(record.method));
              st.integer(3, record.pending ? 1 : 0);
              st.blob(4, record.sealed);
              st.text(5, record.params);
              st.integer(6, record.created_usec);
              st.text(7, record.device);
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

Status SqliteStore::delete_totp_device(std::string_view user, std::string_view device,
                                       bool pending) {
  if (!valid_user(user))
    return bad_user();
  MFA_TRY(changes,
          write("DELETE FROM factors WHERE user = ? AND method = 'totp' AND device = ? AND "
                "pending = ?",
                [&](Statement& st) {
                  st.text(1, user);
                  st.text(2, device);
                  st.integer(3, pending ? 1 : 0);
                }));
  (void)changes;
  if (!pending) {
    // A device enrolled again under this name starts with no watermark of its own.
    MFA_TRY(gone,
            write("DELETE FROM totp_watermark WHERE user = ? AND device = ?", [&](Statement& st) {
              st.text(1, user);
              st.text(2, device);
            }));
    (void)gone;
  }
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

Result<std::optional<uint64_t>> SqliteStore::get_totp_watermark(std::string_view user,
                                                                std::string_view device) {
  if (!valid_user(user))
    return bad_user();
  std::optional<uint64_t> step;
  MFA_CHECK(read(
      "SELECT step FROM totp_watermark WHERE user = ? AND device = ?",
      [&](Statement& st) {
        st.text(1, user);
        st.text(2, device);
      },
      [&](Statement& st) { step = static_cast<uint64_t>(st.column_int(0)); }));
  return step;
}

Result<bool> SqliteStore::advance_totp_watermark(std::string_view user, std::string_view device,
                                                 uint64_t step) {
  if (!valid_user(user))
    return bad_user();
  if (step > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
    return make_error(Errc::kInvalidArgument, "time step out of range");
  }
  // One statement: compare and set cannot be split by another writer.
  MFA_TRY(changes, write("INSERT INTO totp_watermark(user, device, step) VALUES(?, ?, ?) "
                         "ON CONFLICT(user, device) DO UPDATE SET step = excluded.step "
                         "WHERE excluded.step > totp_watermark.step",
                         [&](Statement& st) {
                           st.text(1, user);
                           st.text(2, device);
                           st.integer(3, static_cast<int64_t>(step));
                         }));
  return changes == 1;
}

Status SqliteStore::set_totp_watermark(std::string_view user, std::string_view device,
                                       std::optional<uint64_t> step) {
  if (!valid_user(user))
    return bad_user();
  if (!step) {
    MFA_TRY(changes,
            write("DELETE FROM totp_watermark WHERE user = ? AND device = ?", [&](Statement& st) {
              st.text(1, user);
              st.text(2, device);
            }));
    (void)changes;
    return {};
  }
  if (*step > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
    return make_error(Errc::kInvalidArgument, "time step out of range");
  }
  MFA_TRY(changes, write("INSERT INTO totp_watermark(user, device, step) VALUES(?, ?, ?) "
                         "ON CONFLICT(user, device) DO UPDATE SET step = excluded.step",
                         [&](Statement& st) {
                           st.text(1, user);
                           st.text(2, device);
                           st.integer(3, static_cast<int64_t>(*step));
                         }));
  (void)changes;
  return {};
}

}  // namespace mfa

// SqliteStore: this host's login sessions and the devices they came from.
#include <string>

#include "storage/sqlite_statement.hpp"
#include "storage/sqlite_store.hpp"

namespace mfa {

using sqlite_rows::bad_user;
using sqlite_rows::valid_user;

namespace {
constexpr const char* kSessionColumns =
    "id, user, service, rhost, tty, ruser, logind_session, leader_pid, leader_start, factor, "
    "device, started, last_seen, audit_session, audit_login_uid";
}  // namespace

Status SqliteStore::put_session(const SessionRecord& s) {
  if (!valid_user(s.user))
    return bad_user();
  if (s.id.empty() || s.id.size() > 128)
    return make_error(Errc::kInvalidArgument, "invalid session id");
  MFA_TRY(changes,
          write("INSERT OR REPLACE INTO sessions(id, user, service, rhost, tty, ruser, "
                "logind_session, leader_pid, leader_start, factor, device, started, last_seen, "
                "audit_session, audit_login_uid) "
                "VALUES(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
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
                  st.integer(14, static_cast<int64_t>(s.audit_session));
                  st.integer(15, static_cast<int64_t>(s.audit_login_uid));
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
  s.audit_session = static_cast<uint32_t>(st.column_int(13));
  s.audit_login_uid = static_cast<uint32_t>(st.column_int(14));
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
                                      int64_t now_usec, std::string_view rhost,
                                      std::string_view client) {
  if (!valid_user(user))
    return bad_user();
  MFA_TRY(updated, write("UPDATE devices SET last_seen = ?, rhost = ?, client = ? "
                         "WHERE user = ? AND fingerprint = ?",
                         [&](Statement& st) {
                           st.integer(1, now_usec);
                           st.text(2, rhost);
                           st.text(3, client);
                           st.text(4, user);
                           st.text(5, fingerprint);
                         }));
  if (updated > 0)
    return false;
  MFA_TRY(inserted, write("INSERT INTO devices(user, fingerprint, first_seen, last_seen, rhost, "
                          "client) VALUES(?, ?, ?, ?, ?, ?)",
                          [&](Statement& st) {
                            st.text(1, user);
                            st.text(2, fingerprint);
                            st.integer(3, now_usec);
                            st.integer(4, now_usec);
                            st.text(5, rhost);
                            st.text(6, client);
                          }));
  return inserted > 0;
}

Result<std::vector<DeviceRecord>> SqliteStore::list_devices(std::string_view user) {
  std::vector<DeviceRecord> out;
  MFA_CHECK(read(
      "SELECT user, fingerprint, rhost, client, first_seen, last_seen FROM devices "
      "WHERE (?1 = '' OR user = ?1) ORDER BY first_seen, user, fingerprint",
      [&](Statement& st) { st.text(1, user); },
      [&](Statement& st) {
        DeviceRecord d;
        d.user = st.column_text(0);
        d.fingerprint = st.column_text(1);
        d.rhost = st.column_text(2);
        d.client = st.column_text(3);
        d.first_seen_usec = st.column_int(4);
        d.last_seen_usec = st.column_int(5);
        out.push_back(std::move(d));
      }));
  return out;
}

Result<bool> SqliteStore::delete_device(std::string_view user, std::string_view fingerprint) {
  if (!valid_user(user))
    return bad_user();
  MFA_TRY(changes,
          write("DELETE FROM devices WHERE user = ? AND fingerprint = ?", [&](Statement& st) {
            st.text(1, user);
            st.text(2, fingerprint);
          }));
  return changes > 0;
}

Result<int> SqliteStore::prune_devices(int64_t cutoff_usec) {
  return write("DELETE FROM devices WHERE last_seen < ?",
               [&](Statement& st) { st.integer(1, cutoff_usec); });
}

}  // namespace mfa

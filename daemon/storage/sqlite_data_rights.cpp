// SqliteStore: data rights (docs/security-model.md, "Data rights"): the erasure of a person (their
// data key lives outside the database: core/data_keys.hpp).
#include <string>

#include "storage/sqlite_statement.hpp"
#include "storage/sqlite_store.hpp"

namespace mfa {

using sqlite_rows::bad_user;
using sqlite_rows::valid_user;

Result<ForgetReport> SqliteStore::forget_user(const ForgetRequest& request) {
  if (!valid_user(request.key))
    return bad_user();
  for (const std::string& name : request.names) {
    if (!valid_user(name))
      return bad_user();
  }
  MFA_CHECK(begin_write());
  ForgetReport report;
  std::vector<std::string> owners = request.names;
  owners.push_back(request.key);
  // The records of the person's authentication state: under the account key, or under a name
  // (records an older mfad kept under it).
  static constexpr const char* kByOwner[] = {
      "DELETE FROM factors WHERE user = ?",         "DELETE FROM backup_codes WHERE user = ?",
      "DELETE FROM totp_watermark WHERE user = ?",  "DELETE FROM limits WHERE user = ?",
      "DELETE FROM sms_codes WHERE user = ?",       "DELETE FROM sms_sends WHERE user = ?",
      "DELETE FROM fleet_reconcile WHERE user = ?", "DELETE FROM enrollment_tokens WHERE user = ?",
      "DELETE FROM fleet_highwater WHERE user = ?"};
  for (const std::string& owner : owners) {
    for (const char* sql : kByOwner) {
      MFA_TRY(changes, write(sql, [&](Statement& st) { st.text(1, owner); }));
      (void)changes;
    }
    MFA_TRY(sessions, write("DELETE FROM sessions WHERE user = ?",
                            [&](Statement& st) { st.text(1, owner); }));
    report.sessions += sessions;
    MFA_TRY(devices,
            write("DELETE FROM devices WHERE user = ?", [&](Statement& st) { st.text(1, owner); }));
    report.devices += devices;
  }
  MFA_CHECK(pseudonymise_audit(request.names, report));
  // secure_delete (configure()) zeroes what the batch deletes or rewrites, in the pages it
  // writes; the older copies of those pages stay in the write-ahead log until a checkpoint
  // overwrites it. commit() checkpoints and truncates the log once this batch is in.
  erase_log_after_commit_ = true;
  return report;
}

}  // namespace mfa

// SqliteStore: what `mfactl report`, `mfactl status` and `mfactl doctor` ask of the database
// (counts of audit rows, the degraded tally, the last foreign change, the integrity check).
#include <algorithm>

#include "storage/sqlite_statement.hpp"
#include "storage/sqlite_store.hpp"

namespace mfa {

namespace {

// quick_check names at most this many problems; the report keeps the first few.
constexpr int kMaxIntegrityRows = 5;
constexpr size_t kMaxCountedKinds = 16;

}  // namespace

Result<std::vector<AuditCount>> SqliteStore::count_audit(int64_t since_usec,
                                                         const std::vector<std::string>& kinds) {
  if (kinds.size() > kMaxCountedKinds)
    return make_error(Errc::kInvalidArgument, "too many audit kinds to count");
  std::vector<AuditCount> out;
  // One statement per kind keeps the SQL a literal (statements are cached by their text); the
  // index on time bounds the scan.
  for (const auto& kind : kinds) {
    MFA_CHECK(read(
        "SELECT outcome, "
        "CASE WHEN json_valid(details) THEN coalesce(json_extract(details, '$.method'), '') "
        "ELSE '' END AS method, "
        "CASE WHEN json_valid(details) THEN coalesce(json_extract(details, '$.purpose'), '') "
        "ELSE '' END AS purpose, count(*) "
        "FROM audit WHERE time >= ?1 AND kind = ?2 GROUP BY 1, 2, 3",
        [&](Statement& st) {
          st.integer(1, since_usec);
          st.text(2, kind);
        },
        [&](Statement& st) {
          AuditCount c;
          c.kind = kind;
          c.outcome = st.column_text(0);
          c.method = st.column_text(1);
          c.purpose = st.column_text(2);
          c.count = static_cast<uint64_t>(st.column_int(3));
          out.push_back(std::move(c));
        }));
  }
  return out;
}

Result<DegradedTally> SqliteStore::tally_degraded(int64_t since_usec, bool current_period) {
  int64_t after_id = 0;
  if (current_period) {
    // The rows are scanned from the newest: the last period's end is near.
    MFA_CHECK(read(
        "SELECT id FROM audit WHERE kind = 'degraded' AND reason = 'redis-available' "
        "ORDER BY id DESC LIMIT 1",
        [](Statement&) {}, [&](Statement& st) { after_id = st.column_int(0); }));
  }
  DegradedTally t;
  MFA_CHECK(read(
      "WITH r AS (SELECT outcome, reason, "
      "CASE WHEN json_valid(details) THEN json_extract(details, '$.method') END AS method, "
      "CASE WHEN json_valid(details) THEN json_extract(details, '$.call') END AS call, "
      "CASE WHEN json_valid(details) THEN json_extract(details, '$.reconciled') END AS done, "
      "CASE WHEN json_valid(details) THEN json_extract(details, '$.refused') END AS refused "
      "FROM audit WHERE kind = 'degraded' AND time >= ?1 AND id > ?2) "
      "SELECT coalesce(sum(outcome IN ('success', 'failure', 'denied')), 0), "
      "coalesce(sum(outcome = 'success' AND call = 'Verify'), 0), "
      "coalesce(sum(outcome IN ('failure', 'denied') AND "
      "call IN ('BeginAuthentication', 'Verify')), 0), "
      "coalesce(sum(outcome = 'success' AND method IN ('totp', 'backup', 'sms')), 0), "
      "coalesce(sum(reason = 'unreplicated'), 0), "
      "coalesce(sum(outcome = 'info' AND reason = 'redis-unavailable'), 0), "
      "coalesce(sum(CASE WHEN reason = 'redis-available' THEN CAST(coalesce(done, 0) AS INTEGER) "
      "ELSE 0 END), 0), "
      "coalesce(sum(CASE WHEN reason = 'redis-available' THEN CAST(coalesce(refused, 0) AS "
      "INTEGER) ELSE 0 END), 0) FROM r",
      [&](Statement& st) {
        st.integer(1, since_usec);
        st.integer(2, after_id);
      },
      [&](Statement& st) {
        uint64_t* fields[] = {&t.decisions,    &t.logins_allowed, &t.logins_denied, &t.consumed,
                              &t.unreplicated, &t.periods,        &t.reconciled,    &t.refused};
        for (int i = 0; i < 8; ++i)
          *fields[i] = static_cast<uint64_t>(std::max<int64_t>(0, st.column_int(i)));
      }));
  return t;
}

Result<std::optional<ForeignChange>> SqliteStore::last_foreign_change(const std::string& user) {
  std::optional<ForeignChange> out;
  // One walk back through the user's rows, to the newest foreign change or change made here,
  // whichever comes first: a change made here after the foreign one clears it.
  MFA_CHECK(read(
      "SELECT kind = 'fleet.foreign-change', time, "
      "coalesce(json_extract(details, '$.host'), ''), "
      "coalesce(json_extract(details, '$.change'), ''), "
      "coalesce(json_extract(details, '$.factor'), '') "
      "FROM audit WHERE user = ?1 AND ((kind = 'fleet.foreign-change' AND json_valid(details)) "
      "OR (outcome = 'success' AND kind IN ('enroll.confirm', 'enroll.import', "
      "'enroll.disable', 'backup.generate', 'admin.reset'))) "
      "ORDER BY id DESC LIMIT 1",
      [&](Statement& st) { st.text(1, user); },
      [&](Statement& st) {
        if (st.column_int(0) == 0)
          return;
        ForeignChange c;
        c.time_usec = st.column_int(1);
        c.host = st.column_text(2);
        c.change = st.column_text(3);
        c.factor = st.column_text(4);
        out = std::move(c);
      }));
  return out;
}

Result<std::string> SqliteStore::check_integrity() {
  std::string found;
  int rows = 0;
  MFA_CHECK(read(
      "PRAGMA quick_check(5)", [](Statement&) {},
      [&](Statement& st) {
        if (rows++ >= kMaxIntegrityRows)
          return;
        std::string line = st.column_text(0);
        if (line == "ok")
          return;
        found += (found.empty() ? "" : "; ") + line.substr(0, 200);
      }));
  return found;
}

}  // namespace mfa

// SqliteStore: what `mfactl report` and `mfactl doctor` ask of the database (counts of audit
// rows, the integrity check).
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

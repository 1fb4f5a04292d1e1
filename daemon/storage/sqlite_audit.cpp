// SqliteStore: the audit trail, append-only (triggers) and hash-chained, with its retention.
#include <algorithm>

#include "common/crypto.hpp"
#include "storage/sqlite_statement.hpp"
#include "storage/sqlite_store.hpp"

namespace mfa {
namespace {

constexpr size_t kMaxAuditField = 64 * 1024;
constexpr size_t kMaxAuditQuery = 10000;
constexpr const char* kGenesisHash =
    "0000000000000000000000000000000000000000000000000000000000000000";

void put_u64(std::vector<uint8_t>& out, uint64_t v) {
  for (int shift = 56; shift >= 0; shift -= 8)
    out.push_back(static_cast<uint8_t>(v >> shift));
}

void put_field(std::vector<uint8_t>& out, std::string_view field) {
  put_u64(out, field.size());
  out.insert(out.end(), field.begin(), field.end());
}

// sha256(prev_hash || canonical row). Every field is length-prefixed, so no two different rows
// encode alike; the id is included, so rows cannot be reordered or renumbered unnoticed.
std::string audit_hash(std::string_view prev_hash_hex, const AuditRecord& r) {
  std::vector<uint8_t> buf;
  buf.reserve(128 + r.kind.size() + r.user.size() + r.outcome.size() + r.reason.size() +
              r.caller.size() + r.details_json.size());
  put_field(buf, prev_hash_hex);
  put_field(buf, "mfad-audit-v1");
  put_u64(buf, static_cast<uint64_t>(r.id));
  put_u64(buf, static_cast<uint64_t>(r.time_usec));
  put_field(buf, r.kind);
  put_field(buf, r.user);
  put_field(buf, r.outcome);
  put_field(buf, r.reason);
  put_field(buf, r.caller);
  put_field(buf, r.details_json);
  auto digest = sha256(buf);
  return to_hex(digest);
}

// An audit row's fields from its first eight columns: id, time, kind, user, outcome, reason,
// caller, details (both readers select them first, in this order). A template: the statement
// type is SqliteStore's own.
template <typename Statement>
AuditRecord audit_row(Statement& st) {
  AuditRecord r;
  r.id = st.column_int(0);
  r.time_usec = st.column_int(1);
  r.kind = st.column_text(2);
  r.user = st.column_text(3);
  r.outcome = st.column_text(4);
  r.reason = st.column_text(5);
  r.caller = st.column_text(6);
  r.details_json = st.column_text(7);
  return r;
}

}  // namespace

Status SqliteStore::append_audit(AuditRecord& record) {
  for (const std::string* field : {&record.kind, &record.user, &record.outcome, &record.reason,
                                   &record.caller, &record.details_json}) {
    if (field->size() > kMaxAuditField) {
      return make_error(Errc::kInvalidArgument, "audit record field too long");
    }
  }
  if (record.kind.empty())
    return make_error(Errc::kInvalidArgument, "audit record without kind");
  MFA_CHECK(begin_write());

  // The chain continues from the last row, or from the anchor left by pruning, or from zero.
  int64_t next_id = 0;
  std::string prev_hash;
  MFA_CHECK(read(
      "SELECT id, hash FROM audit ORDER BY id DESC LIMIT 1", [](Statement&) {},
      [&](Statement& st) {
        next_id = st.column_int(0) + 1;
        prev_hash = st.column_text(1);
      }));
  if (next_id == 0) {
    MFA_CHECK(read(
        "SELECT first_id, prev_hash FROM audit_anchor WHERE id = 1", [](Statement&) {},
        [&](Statement& st) {
          next_id = st.column_int(0);
          prev_hash = st.column_text(1);
        }));
  }
  if (next_id == 0) {
    next_id = 1;
    prev_hash = kGenesisHash;
  }

  AuditRecord row = record;
  row.id = next_id;
  if (row.time_usec == 0)
    row.time_usec = clock_.realtime_usec();
  row.hash_hex = audit_hash(prev_hash, row);
  MFA_TRY(changes, write("INSERT INTO audit(id, time, kind, user, outcome, reason, caller, "
                         "details, prev_hash, hash) VALUES(?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                         [&](Statement& st) {
                           st.integer(1, row.id);
                           st.integer(2, row.time_usec);
                           st.text(3, row.kind);
                           st.text(4, row.user);
                           st.text(5, row.outcome);
                           st.text(6, row.reason);
                           st.text(7, row.caller);
                           st.text(8, row.details_json);
                           st.text(9, prev_hash);
                           st.text(10, row.hash_hex);
                         }));
  (void)changes;
  record = std::move(row);
  return {};
}

Result<std::vector<AuditRecord>> SqliteStore::query_audit(const AuditFilter& filter) {
  std::vector<AuditRecord> out;
  size_t limit = std::min(filter.limit, kMaxAuditQuery);
  if (limit == 0)
    return out;
  MFA_CHECK(read(
      "SELECT id, time, kind, user, outcome, reason, caller, details, hash FROM ("
      "SELECT * FROM audit WHERE (?1 = '' OR user = ?1) AND time >= ?2 "
      "ORDER BY id DESC LIMIT ?3) ORDER BY id ASC",
      [&](Statement& st) {
        st.text(1, filter.user);
        st.integer(2, filter.since_usec);
        st.integer(3, static_cast<int64_t>(limit));
      },
      [&](Statement& st) {
        AuditRecord r = audit_row(st);
        r.hash_hex = st.column_text(8);
        out.push_back(std::move(r));
      }));
  return out;
}

Result<AuditVerification> SqliteStore::verify_audit_chain() {
  AuditVerification v;
  int64_t expected_id = 1;
  std::string expected_prev = kGenesisHash;
  MFA_CHECK(read(
      "SELECT first_id, prev_hash FROM audit_anchor WHERE id = 1", [](Statement&) {},
      [&](Statement& st) {
        expected_id = st.column_int(0);
        expected_prev = st.column_text(1);
      }));
  MFA_CHECK(read(
      "SELECT id, time, kind, user, outcome, reason, caller, details, prev_hash, hash "
      "FROM audit ORDER BY id",
      [](Statement&) {},
      [&](Statement& st) {
        if (!v.intact)
          return;
        AuditRecord r = audit_row(st);
        std::string prev_hash = st.column_text(8);
        std::string hash = st.column_text(9);
        ++v.rows;
        std::string id = std::to_string(r.id);
        if (r.id != expected_id) {
          v.intact = false;
          v.message = "audit row " + id + ": expected row " + std::to_string(expected_id) +
                      " here (rows removed or inserted)";
        } else if (prev_hash != expected_prev) {
          v.intact = false;
          v.message = "audit row " + id +
                      ": does not chain to the row before it (a row was changed, removed or "
                      "inserted)";
        } else if (audit_hash(prev_hash, r) != hash) {
          v.intact = false;
          v.message = "audit row " + id + ": contents do not match its hash (row modified)";
        }
        expected_id = r.id + 1;
        expected_prev = hash;
      }));
  return v;
}

Status SqliteStore::prune_audit(int64_t cutoff_usec) {
  MFA_CHECK(begin_write());
  int64_t first_id = 0;
  int64_t last_id = 0;
  std::string last_hash;
  MFA_CHECK(read(
      "SELECT id, hash FROM audit ORDER BY id DESC LIMIT 1", [](Statement&) {},
      [&](Statement& st) {
        last_id = st.column_int(0);
        last_hash = st.column_text(1);
      }));
  if (last_id == 0)
    return {};
  MFA_CHECK(read(
      "SELECT min(id) FROM audit", [](Statement&) {},
      [&](Statement& st) { first_id = st.column_int(0); }));

  // The first kept row; none kept: the anchor points past the last row.
  int64_t keep_id = last_id + 1;
  std::string anchor_hash = last_hash;
  MFA_CHECK(read(
      "SELECT id, prev_hash FROM audit WHERE id = (SELECT min(id) FROM audit WHERE time >= ?)",
      [&](Statement& st) { st.integer(1, cutoff_usec); },
      [&](Statement& st) {
        keep_id = st.column_int(0);
        anchor_hash = st.column_text(1);
      }));
  if (keep_id <= first_id)
    return {};

  MFA_TRY(guard_on, write("UPDATE audit_guard SET pruning = 1 WHERE id = 1", [](Statement&) {}));
  (void)guard_on;
  MFA_TRY(deleted,
          write("DELETE FROM audit WHERE id < ?", [&](Statement& st) { st.integer(1, keep_id); }));
  (void)deleted;
  MFA_TRY(anchored, write("INSERT INTO audit_anchor(id, first_id, prev_hash) VALUES(1, ?, ?) "
                          "ON CONFLICT(id) DO UPDATE SET first_id = excluded.first_id, "
                          "prev_hash = excluded.prev_hash",
                          [&](Statement& st) {
                            st.integer(1, keep_id);
                            st.text(2, anchor_hash);
                          }));
  (void)anchored;
  MFA_TRY(guard_off, write("UPDATE audit_guard SET pruning = 0 WHERE id = 1", [](Statement&) {}));
  (void)guard_off;
  return {};
}

}  // namespace mfa

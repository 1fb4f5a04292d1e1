// SqliteStore: the audit trail, append-only (triggers) and chained, with its retention. The chain
// is keyed (HMAC under a key derived from the master key) once set_audit_chain() ran, and its head
// is kept outside the database too (audit_head.hpp), so that neither a forged row nor the loss of
// the newest rows goes unnoticed (docs/audit-events.md, "The hash chain").
#include <algorithm>
#include <climits>

#include <nlohmann/json.hpp>

#include "common/crypto.hpp"
#include "core/log.hpp"
#include "storage/sqlite_audit_rows.hpp"
#include "storage/sqlite_statement.hpp"
#include "storage/sqlite_store.hpp"

namespace mfa {

using audit_rows::audit_row;
using audit_rows::json_text;
using audit_rows::kGenesisHash;
using audit_rows::put_field;
using audit_rows::put_u64;

namespace {

constexpr size_t kMaxAuditField = 64 * 1024;
constexpr size_t kMaxAuditQuery = 10000;
// Rows the store writes itself (docs/audit-events.md); the names are AuditKind's.
constexpr char kCheckpointKind[] = "audit.checkpoint";
constexpr char kTamperingKind[] = "audit.tampering";

// prev_hash || canonical row. Every field is length-prefixed, so no two different rows encode
// alike; the id is included, so rows cannot be reordered or renumbered unnoticed.
std::vector<uint8_t> canonical_row(std::string_view prev_hash_hex, std::string_view version,
                                   const AuditRecord& r) {
  std::vector<uint8_t> buf;
  buf.reserve(128 + r.kind.size() + r.user.size() + r.outcome.size() + r.reason.size() +
              r.caller.size() + r.details_json.size());
  put_field(buf, prev_hash_hex);
  put_field(buf, version);
  put_u64(buf, static_cast<uint64_t>(r.id));
  put_u64(buf, static_cast<uint64_t>(r.time_usec));
  put_field(buf, r.kind);
  put_field(buf, r.user);
  put_field(buf, r.outcome);
  put_field(buf, r.reason);
  put_field(buf, r.caller);
  put_field(buf, r.details_json);
  return buf;
}

// Rows written before the chain was keyed: anyone with the file could recompute these.
std::string legacy_link(std::string_view prev_hash_hex, const AuditRecord& r) {
  return to_hex(sha256(canonical_row(prev_hash_hex, "mfad-audit-v1", r)));
}

// A detail of a row the store wrote itself ("" when absent or not a string).
std::string detail_of(const std::string& details_json, const char* key) {
  auto doc = nlohmann::json::parse(details_json, nullptr, /*allow_exceptions=*/false);
  if (!doc.is_object())
    return {};
  auto it = doc.find(key);
  return it != doc.end() && it->is_string() ? it->get<std::string>() : std::string();
}

std::string missing_range(int64_t from, int64_t to) {
  return from == to ? "row " + std::to_string(from) + " is"
                    : "rows " + std::to_string(from) + ".." + std::to_string(to) + " are";
}

std::string truncation_message(int64_t proven_to, int64_t missing_from, int64_t missing_to) {
  return "truncated: the trail is proven up to row " + std::to_string(proven_to) + "; " +
         missing_range(missing_from, missing_to) + " missing";
}

// What an "audit.tampering" row says, for VerifyAuditTrail.
std::string describe_tampering(const AuditRecord& r) {
  std::string found = " (found " + detail_of(r.details_json, "found") + ", recorded in row " +
                      std::to_string(r.id) + ")";
  if (r.reason == "truncated") {
    int64_t proven = 0, from = 0, to = 0;
    auto num = [&](const char* key, int64_t* out) {
      std::string text = detail_of(r.details_json, key);
      *out = text.empty() ? 0 : std::strtoll(text.c_str(), nullptr, 10);
    };
    num("proven_to", &proven);
    num("missing_from", &from);
    num("missing_to", &to);
    return truncation_message(proven, from, to) + found;
  }
  return detail_of(r.details_json, "message") + found;
}

}  // namespace

std::string SqliteStore::audit_link(std::string_view prev_hash, const AuditRecord& row) const {
  if (!keyed_)
    return legacy_link(prev_hash, row);
  auto mac = audit_mac_.mac(canonical_row(prev_hash, "mfad-audit-v2", row));
  // Never matches a stored link: a failed HMAC shows up as a broken row, not as a valid one.
  return mac.ok() ? to_hex(mac->span()) : std::string("hmac-failed");
}

Result<AuditHead> SqliteStore::audit_head_in_db(bool with_first_id) {
  AuditHead head;
  MFA_CHECK(read(
      "SELECT id, hash FROM audit ORDER BY id DESC LIMIT 1", [](Statement&) {},
      [&](Statement& st) {
        head.last_id = st.column_int(0);
        head.mac = st.column_text(1);
      }));
  if (head.last_id != 0 && !with_first_id)
    return head;
  int64_t anchor_first = 0;
  std::string anchor_prev;
  MFA_CHECK(read(
      "SELECT first_id, prev_hash FROM audit_anchor WHERE id = 1", [](Statement&) {},
      [&](Statement& st) {
        anchor_first = st.column_int(0);
        anchor_prev = st.column_text(1);
      }));
  if (head.last_id == 0) {
    // Empty: the chain goes on from the pruning anchor, or from nothing.
    if (anchor_first > 0) {
      head.first_id = anchor_first;
      head.last_id = anchor_first - 1;
      head.mac = anchor_prev;
    }
    return head;
  }
  MFA_CHECK(read(
      "SELECT min(id) FROM audit", [](Statement&) {},
      [&](Statement& st) { head.first_id = st.column_int(0); }));
  return head;
}

Result<int64_t> SqliteStore::keyed_chain_start() {
  // The checkpoint that started the keyed chain of a trail written before it; none: the trail
  // was keyed from its first row (or is not keyed at all, when there is no key).
  int64_t start = 0;
  MFA_CHECK(read(
      "SELECT coalesce(min(id), 0) FROM audit WHERE kind = 'audit.checkpoint' AND reason = 'keyed'",
      [](Statement&) {}, [&](Statement& st) { start = st.column_int(0); }));
  return start;
}

void SqliteStore::note_head_problem(AuditHeadProblem problem) {
  MFA_LOG_WARNING("audit trail: %s", problem.message.c_str());
  head_problem_ = std::move(problem);
}

std::optional<AuditHeadProblem> SqliteStore::take_audit_head_problem() {
  return std::exchange(head_problem_, std::nullopt);
}

AuditHead SqliteStore::audit_head() const {
  std::lock_guard lock(head_mutex_);
  return committed_head_;
}

Status SqliteStore::insert_audit_row(AuditRecord& row, int64_t id, const std::string& prev_hash) {
  row.id = id;
  if (row.time_usec == 0)
    row.time_usec = clock_.realtime_usec();
  // A keyed chain commits to the user and details (see commit_link); without a key, the
  // unkeyed link covers them in clear.
  std::string user_commit;
  std::string details_commit;
  if (!keyed_) {
    row.hash_hex = audit_link(prev_hash, row);
  } else {
    user_commit = commitment("user", row.id, row.user);
    details_commit = commitment("details", row.id, row.details_json);
    row.hash_hex = commit_link(prev_hash, row, user_commit, details_commit);
  }
  MFA_TRY(changes, write("INSERT INTO audit(id, time, kind, user, outcome, reason, caller, "
                         "details, prev_hash, hash, user_commit, details_commit) "
                         "VALUES(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
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
                           st.text(11, user_commit);
                           st.text(12, details_commit);
                         }));
  (void)changes;
  if (head_.first_id == 0 || head_.last_id < head_.first_id)
    head_.first_id = row.id;
  head_.last_id = row.id;
  head_.mac = row.hash_hex;
  return {};
}

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
  MFA_TRY(db_head, audit_head_in_db(/*with_first_id=*/false));
  int64_t next_id = db_head.last_id + 1;
  std::string prev_hash = db_head.last_id == 0 ? kGenesisHash : db_head.mac;

  // The database no longer ends where this mfad left it: rows were deleted (or replaced) behind
  // its back while it ran. The chain records it before it goes on.
  if (head_known_ && (db_head.last_id != head_.last_id || !ct_equal(db_head.mac, head_.mac))) {
    AuditHeadProblem problem;
    problem.proven_to = std::min(db_head.last_id, head_.last_id);
    if (db_head.last_id < head_.last_id) {
      problem.reason = "truncated";
      problem.missing_from = db_head.last_id + 1;
      problem.missing_to = head_.last_id;
      problem.message =
          truncation_message(problem.proven_to, problem.missing_from, problem.missing_to);
    } else {
      problem.reason = "head-mismatch";
      problem.message = "the newest audit rows are not the ones mfad wrote (row " +
                        std::to_string(db_head.last_id) + " replaced)";
    }
    AuditRecord tampering;
    tampering.kind = kTamperingKind;
    tampering.outcome = "failure";
    tampering.reason = problem.reason;
    tampering.caller = "mfad";
    tampering.details_json = json_text({{"found", "while running"},
                                        {"message", problem.message},
                                        {"proven_to", std::to_string(problem.proven_to)},
                                        {"missing_from", std::to_string(problem.missing_from)},
                                        {"missing_to", std::to_string(problem.missing_to)}});
    note_head_problem(std::move(problem));
    MFA_CHECK(insert_audit_row(tampering, next_id, prev_hash));
    next_id = tampering.id + 1;
    prev_hash = tampering.hash_hex;
  }

  AuditRecord row = record;
  MFA_CHECK(insert_audit_row(row, next_id, prev_hash));
  record = std::move(row);
  return {};
}

Status SqliteStore::append_checkpoint(const std::string& reason, const std::string& details_json) {
  AuditRecord row;
  row.kind = kCheckpointKind;
  row.outcome = "info";
  row.reason = reason;
  row.caller = "mfad";
  row.details_json = details_json;
  return append_audit(row);
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

Result<AuditVerification> SqliteStore::verify_rows(int64_t keyed_from) {
  AuditVerification v;
  int64_t expected_id = 1;
  std::string expected_prev = kGenesisHash;
  bool anchored = false;
  MFA_CHECK(read(
      "SELECT first_id, prev_hash FROM audit_anchor WHERE id = 1", [](Statement&) {},
      [&](Statement& st) {
        expected_id = st.column_int(0);
        expected_prev = st.column_text(1);
        anchored = true;
      }));
  const int64_t anchor_first = expected_id;
  const std::string anchor_prev = expected_prev;
  // The newest checkpoint's word on the anchor, and what "audit.tampering" rows say.
  std::optional<std::pair<std::string, std::string>> vouched;
  std::vector<std::string> tampering;
  MFA_CHECK(read(
      "SELECT id, time, kind, user, outcome, reason, caller, details, prev_hash, hash, "
      "user_commit, details_commit, redaction FROM audit ORDER BY id",
      [](Statement&) {},
      [&](Statement& st) {
        if (!v.intact)
          return;
        AuditRecord r = audit_row(st);
        std::string prev_hash = st.column_text(8);
        std::string hash = st.column_text(9);
        const std::string user_commit = st.column_text(10);
        const std::string details_commit = st.column_text(11);
        const std::string redaction = st.column_text(12);
        const bool committed = !user_commit.empty();
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
        } else if (committed) {
          if (!ct_equal(commit_link(prev_hash, r, user_commit, details_commit), hash)) {
            v.intact = false;
            v.message = "audit row " + id + ": contents do not match its hash (row modified)";
          } else if (redaction.empty()
                         ? !ct_equal(commitment("user", r.id, r.user), user_commit) ||
                               !ct_equal(commitment("details", r.id, r.details_json),
                                         details_commit)
                         : !ct_equal(redaction_mac(r, user_commit, details_commit), redaction)) {
            v.intact = false;
            v.message = "audit row " + id +
                        ": its user or details do not match what the chain committed to (row "
                        "modified)";
          }
        } else {
          std::string link =
              r.id >= keyed_from ? audit_link(prev_hash, r) : legacy_link(prev_hash, r);
          if (!ct_equal(link, hash)) {
            v.intact = false;
            v.message = "audit row " + id + ": contents do not match its hash (row modified)";
          }
        }
        if (!v.intact)
          return;
        if (v.first_id == 0)
          v.first_id = r.id;
        v.last_id = r.id;
        if ((committed || r.id >= keyed_from) && r.kind == kCheckpointKind)
          vouched.emplace(detail_of(r.details_json, "first_id"),
                          detail_of(r.details_json, "anchor"));
        if (r.kind == kTamperingKind)
          tampering.push_back(describe_tampering(r));
        expected_id = r.id + 1;
        expected_prev = hash;
      }));
  if (!v.intact)
    return v;
  // Rows pruned from the start leave an anchor; in a keyed chain the newest checkpoint vouches
  // for it, so that rows deleted from the start with the anchor moved along do not go unnoticed.
  if (keyed_ && anchored &&
      (!vouched || vouched->first != std::to_string(anchor_first) ||
       vouched->second != anchor_prev)) {
    v.intact = false;
    v.message = "the trail starts at row " + std::to_string(anchor_first) +
                " but no checkpoint row vouches for that (rows removed from its start)";
    return v;
  }
  if (!tampering.empty()) {
    v.intact = false;
    for (const auto& t : tampering)
      v.message += (v.message.empty() ? "" : "; ") + t;
  }
  return v;
}

Result<AuditVerification> SqliteStore::verify_audit_chain() {
  int64_t keyed_from = LLONG_MAX;
  if (keyed_) {
    MFA_TRY(start, keyed_chain_start());
    keyed_from = start;
  }
  MFA_TRY(v, verify_rows(keyed_from));
  if (!v.intact)
    return v;
  MFA_TRY(db_head, audit_head_in_db());
  const std::string proven = v.rows == 0 ? std::string("no rows")
                                         : "rows " + std::to_string(v.first_id) + ".." +
                                               std::to_string(v.last_id) + " proven";
  if (!keyed_) {
    v.message = proven + "; the chain is not keyed";
    return v;
  }
  if (head_known_ && db_head.last_id < head_.last_id) {
    v.intact = false;
    v.message = truncation_message(db_head.last_id, db_head.last_id + 1, head_.last_id);
    return v;
  }
  if (head_known_ && (db_head.last_id != head_.last_id || !ct_equal(db_head.mac, head_.mac))) {
    v.intact = false;
    v.message =
        "the newest audit rows are not the ones mfad wrote (the trail is proven up to "
        "row " +
        std::to_string(std::min(db_head.last_id, head_.last_id)) + ")";
    return v;
  }
  if (head_path_.empty()) {
    v.message = proven + "; no head file";
    return v;
  }
  auto file = read_audit_head(head_path_, *head_sealer_);
  if (!file.ok()) {
    v.message = proven + "; " + file.error().message;
  } else if (!*file) {
    v.message = proven + "; the head file " + head_path_ + " is missing";
  } else if ((*file)->last_id == db_head.last_id && ct_equal((*file)->mac, db_head.mac)) {
    v.message = proven + "; the head file matches row " + std::to_string(db_head.last_id);
  } else {
    v.message = proven + "; the head file is at row " + std::to_string((*file)->last_id) +
                " (written after the next disk flush)";
  }
  return v;
}

Status SqliteStore::set_audit_chain(SecureBytes key, std::string head_path, const Sealer* sealer) {
  if (key.empty() || (!head_path.empty() && !sealer))
    return make_error(Errc::kInvalidArgument, "audit chain: no key or no sealer");
  MFA_TRY(db_head, audit_head_in_db());
  MFA_TRY(keyed_start, keyed_chain_start());
  const bool trail_empty = db_head.last_id == 0 && db_head.first_id == 0;

  std::optional<AuditHead> file_head;
  std::optional<Error> file_error;
  if (!head_path.empty()) {
    auto read_head = read_audit_head(head_path, *sealer);
    if (read_head.ok())
      file_head = *read_head;
    else
      file_error = read_head.error();
  }

  // A trail written before the chain was keyed: no keyed start, no head file, and its newest row
  // is linked with the unkeyed hash (a keyed trail whose head file went is not taken for one).
  bool legacy = false;
  if (keyed_start == 0 && !trail_empty && !file_head && !file_error) {
    MFA_CHECK(read(
        "SELECT id, time, kind, user, outcome, reason, caller, details, prev_hash, hash "
        "FROM audit ORDER BY id DESC LIMIT 1",
        [](Statement&) {},
        [&](Statement& st) {
          AuditRecord r = audit_row(st);
          legacy = ct_equal(legacy_link(st.column_text(8), r), st.column_text(9));
        }));
    // Everything pruned under the unkeyed chain: only an anchor is left.
    if (db_head.first_id > db_head.last_id)
      legacy = true;
  }

  auto commit_key = hkdf_sha256(key.span(), "mfad audit commitment v1", 32);
  if (!commit_key.ok())
    return commit_key.error();
  keyed_ = !key.empty();
  audit_mac_ = HmacSha256Key(key.span());
  commit_mac_ = HmacSha256Key(commit_key->span());
  head_path_ = std::move(head_path);
  head_sealer_ = sealer;
  head_ = db_head;
  head_known_ = false;

  if (legacy) {
    // Verified once more under the unkeyed hash; the checkpoint's link covers the legacy head,
    // so from now on no row before it can change unnoticed either.
    MFA_TRY(lv, verify_rows(LLONG_MAX));
    int64_t anchor_first = 1;
    std::string anchor_prev = kGenesisHash;
    MFA_CHECK(read(
        "SELECT first_id, prev_hash FROM audit_anchor WHERE id = 1", [](Statement&) {},
        [&](Statement& st) {
          anchor_first = st.column_int(0);
          anchor_prev = st.column_text(1);
        }));
    nlohmann::json details = {{"legacy_rows", std::to_string(lv.rows)},
                              {"legacy_intact", lv.intact ? "true" : "false"},
                              {"legacy_head", db_head.mac},
                              {"first_id", std::to_string(anchor_first)},
                              {"anchor", anchor_prev}};
    if (!lv.intact)
      details["legacy_message"] = lv.message;
    MFA_CHECK(append_checkpoint("keyed", json_text(details)));
    MFA_LOG_INFO(
        "audit trail: %llu rows written before the chain was keyed (%s); the keyed "
        "chain goes on from row %lld",
        static_cast<unsigned long long>(lv.rows), lv.intact ? "intact" : lv.message.c_str(),
        static_cast<long long>(head_.last_id));
  } else if (file_error) {
    note_head_problem({"head-unreadable", db_head.last_id, 0, 0,
                       file_error->message + "; the trail cannot be proven complete"});
  } else if (!file_head && !head_path_.empty() && !trail_empty) {
    note_head_problem({"head-missing", db_head.last_id, 0, 0,
                       "the audit head file " + head_path_ +
                           " is missing: rows at the end of the trail may have been removed "
                           "(the trail is proven up to row " +
                           std::to_string(db_head.last_id) + ")"});
  } else if (file_head && file_head->last_id > db_head.last_id) {
    note_head_problem(
        {"truncated", db_head.last_id, db_head.last_id + 1, file_head->last_id,
         truncation_message(db_head.last_id, db_head.last_id + 1, file_head->last_id)});
  } else if (file_head && file_head->last_id > 0) {
    // Equal, or behind (a crash between a commit and the head file's update): the row the file
    // names must still be the one mfad wrote.
    std::string mac;
    MFA_CHECK(read(
        "SELECT hash FROM audit WHERE id = ?",
        [&](Statement& st) { st.integer(1, file_head->last_id); },
        [&](Statement& st) { mac = st.column_text(0); }));
    const bool pruned_since = file_head->last_id < db_head.first_id;
    if (!pruned_since && !ct_equal(mac, file_head->mac)) {
      note_head_problem({"head-mismatch", file_head->last_id - 1, 0, 0,
                         "audit row " + std::to_string(file_head->last_id) +
                             " is not the one mfad wrote (the newest rows were replaced)"});
    }
  }
  MFA_CHECK(commit_old_rows());
  head_known_ = true;
  std::lock_guard lock(head_mutex_);
  if (!in_transaction_)
    committed_head_ = head_;
  else
    committed_head_ = db_head;
  committed_known_ = true;
  return {};
}

void SqliteStore::commit_audit_head() {
  std::lock_guard lock(head_mutex_);
  committed_head_ = head_;
}

void SqliteStore::rollback_audit_head() {
  std::lock_guard lock(head_mutex_);
  head_ = committed_head_;
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
  head_.first_id = keep_id;
  if (!keyed_)
    return {};
  // The anchor is a plain row anyone with the file could move: the checkpoint's link vouches for
  // it, and says what went (docs/audit-events.md, "audit.checkpoint").
  return append_checkpoint("pruned", json_text({{"pruned_first", std::to_string(first_id)},
                                                {"pruned_last", std::to_string(keep_id - 1)},
                                                {"pruned_rows", std::to_string(deleted)},
                                                {"pruned_head", anchor_hash},
                                                {"cutoff", std::to_string(cutoff_usec)},
                                                {"first_id", std::to_string(keep_id)},
                                                {"anchor", anchor_hash}}));
}

}  // namespace mfa

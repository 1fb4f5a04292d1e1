// SqliteStore: the audit trail's commitment chain (docs/audit-events.md, "The hash chain",
// Commitments): the commitments and pseudonyms, the carrying over of rows linked before
// commitments, and the pseudonymisation of a forgotten person's rows.
#include <algorithm>
#include <optional>

#include <nlohmann/json.hpp>

#include "common/crypto.hpp"
#include "core/log.hpp"
#include "storage/sqlite_audit_rows.hpp"
#include "storage/sqlite_statement.hpp"
#include "storage/sqlite_store.hpp"

namespace mfa {

using audit_rows::audit_row;
using audit_rows::commitment_input;
using audit_rows::committed_row;
using audit_rows::json_text;
using audit_rows::kGenesisHash;
using audit_rows::kPseudonymPrefix;
using audit_rows::put_field;

std::string SqliteStore::commitment(std::string_view label, int64_t id,
                                    std::string_view value) const {
  auto mac = commit_mac_.mac(commitment_input(label, id, value));
  return mac.ok() ? to_hex(mac->span()) : std::string("hmac-failed");
}

std::string SqliteStore::pseudonym(std::string_view name) const {
  auto mac = commit_mac_.mac(commitment_input("pseudonym", 0, name));
  // A name never contains '/' (validate_user_name): no pseudonym is anyone's name.
  return kPseudonymPrefix + (mac.ok() ? to_hex(mac->span()).substr(0, 16) : std::string("x"));
}

std::string SqliteStore::redaction_mac(const AuditRecord& row, std::string_view user_commit,
                                       std::string_view details_commit) const {
  std::vector<uint8_t> buf = commitment_input("redaction", row.id, user_commit);
  put_field(buf, details_commit);
  put_field(buf, row.user);
  put_field(buf, row.details_json);
  auto mac = commit_mac_.mac(buf);
  return mac.ok() ? to_hex(mac->span()) : std::string("hmac-failed");
}

std::string SqliteStore::commit_link(std::string_view prev_hash, const AuditRecord& row,
                                     std::string_view user_commit,
                                     std::string_view details_commit) const {
  auto mac = audit_mac_.mac(committed_row(prev_hash, row, user_commit, details_commit));
  return mac.ok() ? to_hex(mac->span()) : std::string("hmac-failed");
}

Status SqliteStore::commit_old_rows() {
  int64_t old_rows = 0;
  MFA_CHECK(read(
      "SELECT count(*) FROM audit WHERE user_commit = ''", [](Statement&) {},
      [&](Statement& st) { old_rows = st.column_int(0); }));
  if (old_rows == 0)
    return {};
  // Only a chain that verifies is carried over: a broken one stays as it is, for an admin to see
  // (its rows keep their names: forgetting cannot replace them without breaking the chain).
  MFA_TRY(keyed_start, keyed_chain_start());
  MFA_TRY(old, verify_rows(keyed_start));
  if (!old.intact) {
    MFA_LOG_WARNING(
        "audit trail: %lld rows linked before commitments stay as they are, the chain does not "
        "verify (%s)",
        static_cast<long long>(old_rows), old.message.c_str());
    return {};
  }
  MFA_TRY(old_head, audit_head_in_db());
  int64_t anchor_first = 1;
  std::string anchor_prev = kGenesisHash;
  MFA_CHECK(read(
      "SELECT first_id, prev_hash FROM audit_anchor WHERE id = 1", [](Statement&) {},
      [&](Statement& st) {
        anchor_first = st.column_int(0);
        anchor_prev = st.column_text(1);
      }));
  struct Relink {
    int64_t id;
    std::string prev, hash, user_commit, details_commit;
  };
  std::vector<Relink> relinks;
  std::optional<std::string> prev;
  MFA_CHECK(read(
      "SELECT id, time, kind, user, outcome, reason, caller, details, prev_hash FROM audit "
      "ORDER BY id",
      [](Statement&) {},
      [&](Statement& st) {
        AuditRecord r = audit_row(st);
        if (!prev)
          prev = st.column_text(8);  // the anchor, or the genesis
        Relink l{r.id, *prev, "", commitment("user", r.id, r.user),
                 commitment("details", r.id, r.details_json)};
        l.hash = commit_link(l.prev, r, l.user_commit, l.details_commit);
        prev = l.hash;
        relinks.push_back(std::move(l));
      }));
  MFA_CHECK(begin_write());
  MFA_TRY(guard_on, write("UPDATE audit_guard SET pruning = 1 WHERE id = 1", [](Statement&) {}));
  (void)guard_on;
  for (const Relink& l : relinks) {
    MFA_TRY(changes, write("UPDATE audit SET prev_hash = ?, hash = ?, user_commit = ?, "
                           "details_commit = ? WHERE id = ?",
                           [&](Statement& st) {
                             st.text(1, l.prev);
                             st.text(2, l.hash);
                             st.text(3, l.user_commit);
                             st.text(4, l.details_commit);
                             st.integer(5, l.id);
                           }));
    (void)changes;
  }
  MFA_TRY(guard_off, write("UPDATE audit_guard SET pruning = 0 WHERE id = 1", [](Statement&) {}));
  (void)guard_off;
  MFA_TRY(new_head, audit_head_in_db());
  head_ = new_head;
  // The checkpoint's link covers the old chain's head: the old rows were proven up to it, and
  // are proven from now on by the commitment chain.
  MFA_CHECK(
      append_checkpoint("committed", json_text({{"committed_rows", std::to_string(relinks.size())},
                                                {"previous_head", old_head.mac},
                                                {"previous_last", std::to_string(old_head.last_id)},
                                                {"first_id", std::to_string(anchor_first)},
                                                {"anchor", anchor_prev}})));
  MFA_LOG_INFO("audit trail: %zu rows carried over to the commitment chain (old head %s)",
               relinks.size(), old_head.mac.c_str());
  return {};
}

namespace {

// A pseudonymised row's details: the phone and the uid go, and every value that is one of names
// becomes the pseudonym.
std::string scrub_details(const std::string& details_json, const std::vector<std::string>& names,
                          const std::string& pseudonym) {
  auto doc = nlohmann::json::parse(details_json, nullptr, /*allow_exceptions=*/false);
  if (!doc.is_object())
    return "{}";
  for (auto& [key, value] : doc.items()) {
    if (key == "phone" || key == "masked_phone" || key == "uid") {
      value = "forgotten";
      continue;
    }
    if (value.is_string() &&
        std::find(names.begin(), names.end(), value.get<std::string>()) != names.end())
      value = pseudonym;
  }
  return json_text(doc);
}

}  // namespace

Status SqliteStore::pseudonymise_audit(const std::vector<std::string>& names,
                                       ForgetReport& report) {
  if (names.empty())
    return {};
  report.pseudonym = keyed_ ? pseudonym(names[0]) : std::string(kPseudonymPrefix);
  struct Row {
    AuditRecord record;
    std::string user_commit, details_commit;
  };
  std::vector<Row> rows;
  for (const std::string& name : names) {
    MFA_CHECK(read(
        "SELECT id, time, kind, user, outcome, reason, caller, details, user_commit, "
        "details_commit FROM audit WHERE user = ? ORDER BY id",
        [&](Statement& st) { st.text(1, name); },
        [&](Statement& st) {
          rows.push_back({audit_row(st), st.column_text(8), st.column_text(9)});
        }));
  }
  MFA_CHECK(begin_write());
  MFA_TRY(guard_on, write("UPDATE audit_guard SET pruning = 1 WHERE id = 1", [](Statement&) {}));
  (void)guard_on;
  for (Row& row : rows) {
    // A row linked over its clear name (a chain that did not verify when commitments came, or
    // no key): changing it would break the chain.
    if (row.user_commit.empty() || !keyed_) {
      ++report.audit_rows_kept;
      continue;
    }
    row.record.user = report.pseudonym;
    row.record.details_json = scrub_details(row.record.details_json, names, report.pseudonym);
    const std::string mac = redaction_mac(row.record, row.user_commit, row.details_commit);
    MFA_TRY(changes, write("UPDATE audit SET user = ?, details = ?, redaction = ? WHERE id = ?",
                           [&](Statement& st) {
                             st.text(1, row.record.user);
                             st.text(2, row.record.details_json);
                             st.text(3, mac);
                             st.integer(4, row.record.id);
                           }));
    report.audit_rows += changes;
  }
  MFA_TRY(guard_off, write("UPDATE audit_guard SET pruning = 0 WHERE id = 1", [](Statement&) {}));
  (void)guard_off;
  return {};
}

}  // namespace mfa

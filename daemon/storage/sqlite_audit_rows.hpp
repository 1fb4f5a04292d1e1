// Inside SqliteStore's audit files (sqlite_audit.cpp, sqlite_audit_commitments.cpp): how a row is
// encoded for its link and read from its columns. Not an interface: only those files include it.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/store.hpp"

namespace mfa::audit_rows {

inline constexpr const char* kGenesisHash =
    "0000000000000000000000000000000000000000000000000000000000000000";

inline void put_u64(std::vector<uint8_t>& out, uint64_t v) {
  for (int shift = 56; shift >= 0; shift -= 8)
    out.push_back(static_cast<uint8_t>(v >> shift));
}

inline void put_field(std::vector<uint8_t>& out, std::string_view field) {
  put_u64(out, field.size());
  out.insert(out.end(), field.begin(), field.end());
}

// The commitment chain (docs/audit-events.md, "Commitments"): a row's link covers commitments to
// its user and details (keyed HMACs bound to the row's id), not their clear text, so that
// forgetting a person can replace the name and phone in their rows with a pseudonym and the
// chain still proves every row. The clear fields are checked against the commitments, or, in a
// pseudonymised row, against the redaction MAC mfad wrote when it replaced them.
inline std::vector<uint8_t> commitment_input(std::string_view label, int64_t id,
                                             std::string_view value) {
  std::vector<uint8_t> buf;
  put_field(buf, label);
  put_u64(buf, static_cast<uint64_t>(id));
  put_field(buf, value);
  return buf;
}

inline std::vector<uint8_t> committed_row(std::string_view prev_hash_hex, const AuditRecord& r,
                                          std::string_view user_commit,
                                          std::string_view details_commit) {
  std::vector<uint8_t> buf;
  buf.reserve(256 + r.kind.size() + r.outcome.size() + r.reason.size() + r.caller.size());
  put_field(buf, prev_hash_hex);
  put_field(buf, "mfad-audit-v3");
  put_u64(buf, static_cast<uint64_t>(r.id));
  put_u64(buf, static_cast<uint64_t>(r.time_usec));
  put_field(buf, r.kind);
  put_field(buf, user_commit);
  put_field(buf, r.outcome);
  put_field(buf, r.reason);
  put_field(buf, r.caller);
  put_field(buf, details_commit);
  return buf;
}

inline constexpr char kPseudonymPrefix[] = "forgotten/";

// An audit row's fields from its first eight columns: id, time, kind, user, outcome, reason,
// caller, details (both readers select them first, in this order). A template: the statement
// type is SqliteStore's own.
template <typename Statement>
inline AuditRecord audit_row(Statement& st) {
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

inline std::string json_text(const nlohmann::json& details) {
  return details.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

}  // namespace mfa::audit_rows

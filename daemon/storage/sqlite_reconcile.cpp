// SqliteStore: fleet mode's reconciliation queue, what degraded mode decided and Redis must
// still learn (docs/fleet.md).
#include <algorithm>

#include "storage/sqlite_statement.hpp"
#include "storage/sqlite_store.hpp"

namespace mfa {

using sqlite_rows::bad_user;
using sqlite_rows::valid_user;

Status SqliteStore::queue_reconcile(const ReconcileItem& item) {
  if (!valid_user(item.user))
    return bad_user();
  MFA_TRY(changes, write("INSERT INTO fleet_reconcile(user, kind, step, hash, count, created) "
                         "VALUES(?, ?, ?, ?, ?, ?)",
                         [&](Statement& st) {
                           st.text(1, item.user);
                           st.text(2, item.kind);
                           st.integer(3, static_cast<int64_t>(item.step));
                           if (item.hash)
                             st.blob(4, *item.hash);
                           else
                             st.null(4);
                           st.integer(5, item.count);
                           st.integer(6, clock_.realtime_usec());
                         }));
  (void)changes;
  return {};
}

Result<std::vector<ReconcileItem>> SqliteStore::list_reconcile(size_t limit) {
  std::vector<ReconcileItem> out;
  MFA_CHECK(read(
      "SELECT id, user, kind, step, hash, count FROM fleet_reconcile ORDER BY id LIMIT ?",
      [&](Statement& st) { st.integer(1, static_cast<int64_t>(limit)); },
      [&](Statement& st) {
        ReconcileItem item;
        item.id = st.column_int(0);
        item.user = st.column_text(1);
        item.kind = st.column_text(2);
        item.step = static_cast<uint64_t>(st.column_int(3));
        const auto blob = st.column_blob(4);
        CodeHash h{};
        if (blob.size() == h.size()) {
          std::copy(blob.begin(), blob.end(), h.begin());
          item.hash = h;
        }
        item.count = static_cast<int>(st.column_int(5));
        out.push_back(std::move(item));
      }));
  return out;
}

Status SqliteStore::delete_reconcile(int64_t id) {
  MFA_TRY(changes, write("DELETE FROM fleet_reconcile WHERE id = ?",
                         [&](Statement& st) { st.integer(1, id); }));
  (void)changes;
  return {};
}

}  // namespace mfa

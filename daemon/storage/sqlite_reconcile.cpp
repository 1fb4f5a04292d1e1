// SqliteStore: fleet mode's reconciliation queue, what degraded mode decided and Redis must
// still learn, and the rollback high-water marks (docs/fleet.md).
#include <algorithm>
#include <limits>

#include "storage/sqlite_statement.hpp"
#include "storage/sqlite_store.hpp"

namespace mfa {

using sqlite_rows::bad_user;
using sqlite_rows::valid_user;

namespace {

// Counters are times in microseconds (fleet/user_state.hpp); one past int64_t is refused rather
// than stored negative, where SQL's comparisons would put it below every other.
bool storable(uint64_t counter) {
  return counter <= static_cast<uint64_t>(std::numeric_limits<int64_t>::max());
}

Error bad_counter() {
  return make_error(Errc::kInvalidArgument, "state counter out of range");
}

// A row of "SELECT id, user, kind, step, hash, count, counter" (a template: the statement type is
// SqliteStore's own).
template <typename Row>
ReconcileItem item_of(Row& st) {
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
  item.counter = static_cast<uint64_t>(std::max<int64_t>(0, st.column_int(6)));
  return item;
}

}  // namespace

Status SqliteStore::queue_reconcile(const ReconcileItem& item) {
  if (!valid_user(item.user))
    return bad_user();
  if (!storable(item.counter))
    return bad_counter();
  MFA_TRY(changes,
          write("INSERT INTO fleet_reconcile(user, kind, step, hash, count, created, counter) "
                "VALUES(?, ?, ?, ?, ?, ?, ?)",
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
                  st.integer(7, static_cast<int64_t>(item.counter));
                }));
  (void)changes;
  return {};
}

Result<std::vector<ReconcileItem>> SqliteStore::list_reconcile(size_t limit) {
  std::vector<ReconcileItem> out;
  MFA_CHECK(read(
      "SELECT id, user, kind, step, hash, count, counter FROM fleet_reconcile ORDER BY id LIMIT ?",
      [&](Statement& st) { st.integer(1, static_cast<int64_t>(limit)); },
      [&](Statement& st) { out.push_back(item_of(st)); }));
  return out;
}

Result<std::vector<ReconcileItem>> SqliteStore::list_unreplicated(std::string_view user,
                                                                  uint64_t above, size_t limit) {
  if (!valid_user(user))
    return bad_user();
  std::vector<ReconcileItem> out;
  if (!storable(above))
    return out;
  MFA_CHECK(read(
      "SELECT id, user, kind, step, hash, count, counter FROM fleet_reconcile "
      "WHERE user = ? AND counter > ? ORDER BY id LIMIT ?",
      [&](Statement& st) {
        st.text(1, user);
        st.integer(2, static_cast<int64_t>(above));
        st.integer(3, static_cast<int64_t>(limit));
      },
      [&](Statement& st) { out.push_back(item_of(st)); }));
  return out;
}

Status SqliteStore::delete_reconcile(int64_t id) {
  MFA_TRY(changes, write("DELETE FROM fleet_reconcile WHERE id = ?",
                         [&](Statement& st) { st.integer(1, id); }));
  (void)changes;
  return {};
}

Result<uint64_t> SqliteStore::get_fleet_highwater(std::string_view user) {
  if (!valid_user(user))
    return bad_user();
  uint64_t counter = 0;
  MFA_CHECK(read(
      "SELECT counter FROM fleet_highwater WHERE user = ?",
      [&](Statement& st) { st.text(1, user); },
      [&](Statement& st) {
        counter = static_cast<uint64_t>(std::max<int64_t>(0, st.column_int(0)));
      }));
  return counter;
}

Status SqliteStore::raise_fleet_highwater(std::string_view user, uint64_t counter) {
  if (!valid_user(user))
    return bad_user();
  if (!storable(counter))
    return bad_counter();
  MFA_TRY(changes, write("INSERT INTO fleet_highwater(user, counter) VALUES(?1, ?2) "
                         "ON CONFLICT(user) DO UPDATE SET counter = ?2 WHERE counter < ?2",
                         [&](Statement& st) {
                           st.text(1, user);
                           st.integer(2, static_cast<int64_t>(counter));
                         }));
  (void)changes;
  return {};
}

Status SqliteStore::delete_fleet_highwater(std::string_view user) {
  if (!valid_user(user))
    return bad_user();
  MFA_TRY(changes, write("DELETE FROM fleet_highwater WHERE user = ?",
                         [&](Statement& st) { st.text(1, user); }));
  (void)changes;
  return {};
}

}  // namespace mfa

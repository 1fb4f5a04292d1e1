// SqliteStore: every table, group-commit semantics and storage failures a user would meet.
#include <dirent.h>
#include <fcntl.h>
#include <sched.h>
#include <sqlite3.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdarg>
#include <cstddef>
#include <csetjmp>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

extern "C" {
#include <cmocka.h>
}

#include "core/clock.hpp"
#include "core/user_directory.hpp"
#include "storage/sqlite_store.hpp"

using namespace mfa;

namespace {

// Linked with --wrap=fdatasync: the store's disk flushes come here, and fail while asked to.
bool g_fail_fdatasync = false;

}  // namespace

extern "C" int __real_fdatasync(int fd);
extern "C" int __wrap_fdatasync(int fd) {
  if (g_fail_fdatasync) {
    errno = EIO;
    return -1;
  }
  return __real_fdatasync(fd);
}

namespace {

struct Fixture {
  std::string dir;
  std::string db;
  FakeClock clock;
  std::unique_ptr<SqliteStore> store;
};

std::string make_temp_dir() {
  char tmpl[] = "/tmp/mfad-test-store-XXXXXX";
  char* d = mkdtemp(tmpl);
  assert_non_null(d);
  return d;
}

int setup(void** state) {
  auto* f = new Fixture;
  f->dir = make_temp_dir();
  f->db = f->dir + "/mfad.db";
  auto store = SqliteStore::open(f->db, f->clock);
  if (!store.ok()) {
    fprintf(stderr, "open: %s\n", store.error().message.c_str());
    return -1;
  }
  f->store = std::move(store).value();
  *state = f;
  return 0;
}

int teardown(void** state) {
  auto* f = static_cast<Fixture*>(*state);
  f->store.reset();
  std::filesystem::remove_all(f->dir);
  delete f;
  return 0;
}

void reopen(Fixture* f) {
  f->store.reset();
  auto store = SqliteStore::open(f->db, f->clock);
  assert_true(store.ok());
  f->store = std::move(store).value();
}

FactorRecord factor(Method m, bool pending, std::string params) {
  FactorRecord r;
  r.method = m;
  r.pending = pending;
  r.sealed = {1, 2, 3, static_cast<uint8_t>(params.size())};
  r.params = std::move(params);
  r.created_usec = 1700000000000000;
  return r;
}

CodeHash code_hash(uint8_t seed) {
  CodeHash h{};
  for (size_t i = 0; i < h.size(); ++i)
    h[i] = static_cast<uint8_t>(seed + i);
  return h;
}

// Runs one query on a separate raw connection; returns the first column of the first row.
std::string raw_query(const std::string& db, const char* sql) {
  sqlite3* raw = nullptr;
  assert_int_equal(sqlite3_open_v2(db.c_str(), &raw, SQLITE_OPEN_READWRITE, nullptr), SQLITE_OK);
  sqlite3_stmt* stmt = nullptr;
  assert_int_equal(sqlite3_prepare_v2(raw, sql, -1, &stmt, nullptr), SQLITE_OK);
  std::string out;
  if (sqlite3_step(stmt) == SQLITE_ROW && sqlite3_column_text(stmt, 0)) {
    out = reinterpret_cast<const char*>(sqlite3_column_text(stmt, 0));
  }
  sqlite3_finalize(stmt);
  sqlite3_close(raw);
  return out;
}

void test_factors_crud(void** state) {
  auto* f = static_cast<Fixture*>(*state);
  auto& s = *f->store;
  auto none = s.get_factors("alice");
  assert_true(none.ok());
  assert_true(none->empty());

  assert_true(s.put_factor("alice", factor(Method::kTotp, false, "SHA1:6:30")).ok());
  assert_true(s.put_factor("alice", factor(Method::kSms, true, "+1******0006")).ok());
  assert_true(s.put_factor("bob", factor(Method::kTotp, false, "SHA256:8:30")).ok());
  auto got = s.get_factors("alice");
  assert_true(got.ok());
  assert_int_equal(got->size(), 2);
  // Sorted by method name: "sms" < "totp".
  assert_int_equal(static_cast<int>((*got)[0].method), static_cast<int>(Method::kSms));
  assert_true((*got)[0].pending);
  assert_string_equal((*got)[0].params.c_str(), "+1******0006");
  assert_int_equal(static_cast<int>((*got)[1].method), static_cast<int>(Method::kTotp));
  assert_false((*got)[1].pending);
  assert_int_equal((*got)[1].sealed.size(), 4);
  assert_int_equal((*got)[1].created_usec, 1700000000000000);

  // Same (method, pending) replaces.
  assert_true(s.put_factor("alice", factor(Method::kTotp, false, "SHA512:8:60")).ok());
  got = s.get_factors("alice");
  assert_int_equal(got->size(), 2);
  assert_string_equal((*got)[1].params.c_str(), "SHA512:8:60");
  // A pending TOTP beside the active one is a separate record.
  assert_true(s.put_factor("alice", factor(Method::kTotp, true, "SHA1:6:30")).ok());
  assert_int_equal(s.get_factors("alice")->size(), 3);

  assert_true(s.delete_factor("alice", Method::kSms, true).ok());
  assert_true(s.delete_factor("alice", Method::kTotp, true).ok());
  got = s.get_factors("alice");
  assert_int_equal(got->size(), 1);
  assert_string_equal((*got)[0].params.c_str(), "SHA512:8:60");
  assert_int_equal(s.get_factors("bob")->size(), 1);
  assert_true(s.flush().ok());

  // An empty user name is refused, not stored.
  auto bad = s.put_factor("", factor(Method::kTotp, false, "x"));
  assert_false(bad.ok());
  assert_int_equal(static_cast<int>(bad.error().code), static_cast<int>(Errc::kInvalidArgument));
}

void test_watermark_monotonic(void** state) {
  auto& s = *static_cast<Fixture*>(*state)->store;
  auto w = s.get_totp_watermark("alice", "default");
  assert_true(w.ok());
  assert_false(w->has_value());

  auto r = s.advance_totp_watermark("alice", "default", 100);
  assert_true(r.ok());
  assert_true(*r);
  r = s.advance_totp_watermark("alice", "default", 100);  // equal: a replay
  assert_true(r.ok());
  assert_false(*r);
  r = s.advance_totp_watermark("alice", "default", 99);  // lower: refused
  assert_false(*r);
  assert_int_equal(**s.get_totp_watermark("alice", "default"), 100);
  r = s.advance_totp_watermark("alice", "default", 101);
  assert_true(*r);
  assert_int_equal(**s.get_totp_watermark("alice", "default"), 101);
  // Another user's watermark is independent.
  assert_true(*s.advance_totp_watermark("bob", "default", 5));

  assert_true(s.set_totp_watermark("alice", "default", std::nullopt).ok());
  assert_false(s.get_totp_watermark("alice", "default")->has_value());
  assert_true(s.set_totp_watermark("alice", "default", 7).ok());
  assert_int_equal(**s.get_totp_watermark("alice", "default"), 7);
  assert_true(s.flush().ok());
}

void test_backup_codes_exactly_once(void** state) {
  auto& s = *static_cast<Fixture*>(*state)->store;
  std::vector<CodeHash> first = {code_hash(1), code_hash(2), code_hash(3)};
  assert_true(s.replace_backup_codes("alice", first).ok());
  assert_int_equal(*s.count_backup_codes("alice"), 3);

  auto used = s.consume_backup_code("alice", code_hash(2));
  assert_true(used.ok());
  assert_true(*used);
  used = s.consume_backup_code("alice", code_hash(2));  // second use
  assert_true(used.ok());
  assert_false(*used);
  assert_int_equal(*s.count_backup_codes("alice"), 2);
  // Another user cannot consume alice's code.
  assert_false(*s.consume_backup_code("bob", code_hash(1)));
  assert_true(s.flush().ok());
  assert_false(*s.consume_backup_code("alice", code_hash(2)));  // also after a commit

  // A new set: the old codes stop working.
  std::vector<CodeHash> second = {code_hash(50), code_hash(60)};
  assert_true(s.replace_backup_codes("alice", second).ok());
  assert_int_equal(*s.count_backup_codes("alice"), 2);
  assert_false(*s.consume_backup_code("alice", code_hash(1)));
  assert_false(*s.consume_backup_code("alice", code_hash(3)));
  assert_true(*s.consume_backup_code("alice", code_hash(60)));
  assert_int_equal(*s.count_backup_codes("alice"), 1);
  // The same set again (a fleet state put back that still lists code 60 unused): a used code
  // stays used; a set without it forgets it.
  assert_true(s.replace_backup_codes("alice", second).ok());
  assert_int_equal(*s.count_backup_codes("alice"), 1);
  assert_false(*s.consume_backup_code("alice", code_hash(60)));
  assert_true(s.replace_backup_codes("alice", {code_hash(50)}).ok());
  assert_true(s.replace_backup_codes("alice", second).ok());
  assert_int_equal(*s.count_backup_codes("alice"), 2);
  assert_true(s.replace_backup_codes("alice", second).ok());

  assert_true(s.delete_backup_codes("alice").ok());
  assert_int_equal(*s.count_backup_codes("alice"), 0);
  assert_false(*s.consume_backup_code("alice", code_hash(50)));
  assert_true(s.flush().ok());
}

void test_limits_round_trip(void** state) {
  auto* f = static_cast<Fixture*>(*state);
  auto& s = *f->store;
  auto fresh = s.get_limits("alice");
  assert_true(fresh.ok());
  assert_int_equal(fresh->consecutive_failures, 0);
  assert_int_equal(fresh->locked_until_usec, 0);

  LimitState st;
  st.consecutive_failures = 4;
  st.lockout_count = 2;
  st.locked_until_usec = 1700000900000000;
  st.day = 19675;
  st.day_failures = 17;
  assert_true(s.put_limits("alice", st).ok());
  assert_true(s.flush().ok());
  reopen(f);
  auto got = f->store->get_limits("alice");
  assert_true(got.ok());
  assert_int_equal(got->consecutive_failures, 4);
  assert_int_equal(got->lockout_count, 2);
  assert_int_equal(got->locked_until_usec, 1700000900000000);
  assert_int_equal(got->day, 19675);
  assert_int_equal(got->day_failures, 17);
  st.consecutive_failures = 0;
  assert_true(f->store->put_limits("alice", st).ok());
  assert_int_equal(f->store->get_limits("alice")->consecutive_failures, 0);
}

void test_list_and_delete_user(void** state) {
  auto& s = *static_cast<Fixture*>(*state)->store;
  assert_true(s.put_factor("carol", factor(Method::kTotp, false, "SHA1:6:30")).ok());
  assert_true(s.put_factor("alice", factor(Method::kTotp, true, "SHA1:6:30")).ok());
  assert_true(s.replace_backup_codes("bob", {code_hash(9)}).ok());
  assert_true(s.replace_backup_codes("alice", {code_hash(8)}).ok());
  // Watermark and limits alone do not make a user enrolled.
  assert_true(*s.advance_totp_watermark("dave", "default", 3));

  auto users = s.list_users();
  assert_true(users.ok());
  assert_int_equal(users->size(), 3);
  assert_string_equal((*users)[0].c_str(), "alice");
  assert_string_equal((*users)[1].c_str(), "bob");
  assert_string_equal((*users)[2].c_str(), "carol");

  LimitState st;
  st.consecutive_failures = 3;
  assert_true(s.put_limits("alice", st).ok());
  assert_true(*s.advance_totp_watermark("alice", "default", 10));
  assert_true(s.delete_user("alice").ok());
  assert_true(s.flush().ok());
  users = s.list_users();
  assert_int_equal(users->size(), 2);
  assert_string_equal((*users)[0].c_str(), "bob");
  assert_true(s.get_factors("alice")->empty());
  assert_int_equal(*s.count_backup_codes("alice"), 0);
  assert_false(s.get_totp_watermark("alice", "default")->has_value());
  assert_int_equal(s.get_limits("alice")->consecutive_failures, 0);
  // Others untouched.
  assert_int_equal(s.get_factors("carol")->size(), 1);
  assert_int_equal(*s.count_backup_codes("bob"), 1);
}

void test_persistence_and_schema(void** state) {
  auto* f = static_cast<Fixture*>(*state);
  assert_true(f->store->put_factor("alice", factor(Method::kTotp, false, "SHA1:6:30")).ok());
  assert_true(f->store->replace_backup_codes("alice", {code_hash(1), code_hash(2)}).ok());
  assert_true(*f->store->advance_totp_watermark("alice", "default", 42));
  assert_true(f->store->flush().ok());
  reopen(f);
  const std::string applied = raw_query(f->db, "SELECT group_concat(version) FROM schema_version");
  reopen(f);  // migrating an up-to-date database changes nothing
  assert_int_equal(f->store->get_factors("alice")->size(), 1);
  assert_int_equal(*f->store->count_backup_codes("alice"), 2);
  assert_int_equal(**f->store->get_totp_watermark("alice", "default"), 42);

  assert_string_equal(raw_query(f->db, "SELECT max(version) FROM schema_version").c_str(),
                      std::to_string(SqliteStore::schema_version()).c_str());
  assert_string_equal(raw_query(f->db, "SELECT group_concat(version) FROM schema_version").c_str(),
                      applied.c_str());
  assert_string_equal(raw_query(f->db, "PRAGMA journal_mode").c_str(), "wal");

  struct stat st {};
  assert_int_equal(stat(f->db.c_str(), &st), 0);
  assert_int_equal(st.st_mode & 07777, 0600);
}

// Migration 5: sessions registered before it hold /proc/PID/stat's vsize as their leader's start
// time; it becomes 0 ("unknown") so that a live leader whose memory grew is not taken for a pid
// that was reused.
void test_migration_forgets_old_leader_start(void** state) {
  auto* f = static_cast<Fixture*>(*state);
  f->store.reset();
  raw_query(f->db,
            "INSERT INTO sessions(id, user, service, rhost, tty, ruser, logind_session, "
            "leader_pid, leader_start, factor, device, started, last_seen) VALUES('s1', "
            "'alice', 'sshd', '', '', '', '', 42, 123456, 'totp', '', 1, 1)");
  raw_query(f->db, "DELETE FROM schema_version WHERE version = 5");
  reopen(f);
  assert_string_equal(raw_query(f->db, "SELECT leader_start FROM sessions WHERE id = 's1'").c_str(),
                      "0");
  assert_string_equal(raw_query(f->db, "SELECT max(version) FROM schema_version").c_str(),
                      std::to_string(SqliteStore::schema_version()).c_str());
}

// Migration 6 (issue 17): records keyed by a name become the account's (its uid's), for the
// account's own name; other spellings and names NSS no longer knows keep theirs, for an admin.
class MigrationUsers final : public UserDirectory {
 public:
  std::optional<uid_t> uid_of(std::string_view user) const override {
    if (user == "alice" || user == "alice2")
      return 1000;
    if (user == "bob")
      return 1001;
    return std::nullopt;
  }
  std::optional<std::string> name_of(uid_t uid) const override {
    if (uid == 1000)
      return "alice";
    if (uid == 1001)
      return "bob";
    return std::nullopt;
  }
  bool in_group(uid_t, std::string_view) const override { return false; }
};

void test_migration_keys_records_by_account(void** state) {
  auto* f = static_cast<Fixture*>(*state);
  assert_true(f->store->put_factor("alice", factor(Method::kTotp, false, "SHA1:6:30")).ok());
  assert_true(f->store->replace_backup_codes("alice", {code_hash(1)}).ok());
  assert_true(*f->store->advance_totp_watermark("alice", "default", 42));
  LimitState locked;
  locked.consecutive_failures = 3;
  locked.locked_until_usec = 99;
  assert_true(f->store->put_limits("bob", locked).ok());
  assert_true(f->store->put_factor("alice2", factor(Method::kSms, false, "+1****")).ok());
  assert_true(f->store->put_factor("gone", factor(Method::kTotp, false, "SHA1:6:30")).ok());
  assert_true(f->store->flush().ok());
  f->store.reset();
  // The database as the previous schema left it.
  raw_query(f->db, "DELETE FROM schema_version WHERE version = 6");

  MigrationUsers users;
  auto store = SqliteStore::open(f->db, f->clock, users);
  assert_true(store.ok());
  f->store = std::move(store).value();
  assert_int_equal(f->store->get_factors("uid/1000")->size(), 1);
  assert_int_equal((*f->store->get_factors("uid/1000"))[0].method, Method::kTotp);
  assert_int_equal(*f->store->count_backup_codes("uid/1000"), 1);
  assert_int_equal(**f->store->get_totp_watermark("uid/1000", "default"), 42);
  assert_int_equal(f->store->get_limits("uid/1001")->locked_until_usec, 99);
  assert_true(f->store->get_factors("alice")->empty());
  assert_int_equal(f->store->get_limits("bob")->locked_until_usec, 0);
  // Kept, not lost: an alias's records (sealed for that spelling), a deleted account's.
  assert_int_equal(f->store->get_factors("alice2")->size(), 1);
  assert_int_equal(f->store->get_factors("gone")->size(), 1);
  const auto listed = f->store->list_users();
  assert_true(listed.ok());
  assert_int_equal(listed->size(), 3);
  assert_string_equal(raw_query(f->db, "SELECT max(version) FROM schema_version").c_str(),
                      std::to_string(SqliteStore::schema_version()).c_str());
}

// Migration 8 (issue 19): the one TOTP secret and watermark a user had become the device
// "default"; a phone has no device.
void test_migration_names_the_totp_device_default(void** state) {
  auto* f = static_cast<Fixture*>(*state);
  f->store.reset();
  // The tables as migrations 1 to 7 left them (raw_query runs one statement at a time).
  for (const char* sql : {
           "DROP TABLE factors",
           "CREATE TABLE factors(user TEXT NOT NULL, method TEXT NOT NULL, pending INTEGER NOT "
           "NULL, sealed BLOB NOT NULL, params TEXT NOT NULL, created INTEGER NOT NULL, PRIMARY "
           "KEY(user, method, pending))",
           "INSERT INTO factors VALUES('alice', 'totp', 0, x'01', 'SHA1:6:30', 5), ('alice', "
           "'totp', 1, x'02', 'SHA1:6:30', 6), ('alice', 'sms', 0, x'03', '+1**', 7)",
           "DROP TABLE totp_watermark",
           "CREATE TABLE totp_watermark(user TEXT PRIMARY KEY, step INTEGER NOT NULL)",
           "INSERT INTO totp_watermark VALUES('alice', 42)",
           "DELETE FROM schema_version WHERE version = 8",
       })
    raw_query(f->db, sql);
  reopen(f);
  auto records = f->store->get_factors("alice");
  assert_true(records.ok());
  assert_int_equal(records->size(), 3);
  for (const auto& r : *records)
    assert_string_equal(r.device.c_str(), r.method == Method::kTotp ? "default" : "");
  assert_int_equal(**f->store->get_totp_watermark("alice", "default"), 42);
  assert_false(f->store->get_totp_watermark("alice", "phone")->has_value());
}

// Several devices: each its own record and watermark; removing one leaves the others.
void test_totp_devices_have_their_own_watermarks(void** state) {
  auto* f = static_cast<Fixture*>(*state);
  auto& s = *f->store;
  FactorRecord phone = factor(Method::kTotp, false, "SHA1:6:30");
  phone.device = "phone";
  FactorRecord laptop = phone;
  laptop.device = "laptop";
  assert_true(s.put_factor("alice", phone).ok());
  assert_true(s.put_factor("alice", laptop).ok());
  assert_int_equal(s.get_factors("alice")->size(), 2);
  assert_true(*s.advance_totp_watermark("alice", "phone", 10));
  assert_true(*s.advance_totp_watermark("alice", "laptop", 10));  // the same step: its own
  assert_false(*s.advance_totp_watermark("alice", "phone", 10));  // a replay on phone
  assert_true(s.delete_totp_device("alice", "phone", false).ok());
  auto left = s.get_factors("alice");
  assert_int_equal(left->size(), 1);
  assert_string_equal((*left)[0].device.c_str(), "laptop");
  assert_false(s.get_totp_watermark("alice", "phone")->has_value());
  assert_int_equal(**s.get_totp_watermark("alice", "laptop"), 10);
}

void test_loose_mode_tightened(void** state) {
  auto* f = static_cast<Fixture*>(*state);
  f->store.reset();
  assert_int_equal(chmod(f->db.c_str(), 0644), 0);
  reopen(f);
  struct stat st {};
  assert_int_equal(stat(f->db.c_str(), &st), 0);
  assert_int_equal(st.st_mode & 07777, 0600);
}

void test_newer_schema_refused(void** state) {
  auto* f = static_cast<Fixture*>(*state);
  f->store.reset();
  raw_query(f->db, "INSERT INTO schema_version(version, applied) VALUES(999, 0)");
  auto store = SqliteStore::open(f->db, f->clock);
  assert_false(store.ok());
  assert_int_equal(static_cast<int>(store.error().code), static_cast<int>(Errc::kStorage));
  assert_non_null(strstr(store.error().message.c_str(), "newer than this mfad supports"));
  raw_query(f->db, "DELETE FROM schema_version WHERE version = 999");
  reopen(f);
}

void test_unflushed_write_rolled_back(void** state) {
  auto* f = static_cast<Fixture*>(*state);
  auto& s = *f->store;
  assert_false(s.in_transaction());
  (void)s.get_factors("alice");  // a read opens no transaction
  assert_false(s.in_transaction());
  assert_true(s.put_factor("alice", factor(Method::kTotp, false, "SHA1:6:30")).ok());
  assert_true(s.in_transaction());
  // Reads join the open transaction and see its writes.
  assert_int_equal(s.get_factors("alice")->size(), 1);
  // Another connection does not see them before the commit.
  assert_string_equal(raw_query(f->db, "SELECT count(*) FROM factors").c_str(), "0");
  assert_true(s.flush().ok());
  assert_false(s.in_transaction());
  assert_string_equal(raw_query(f->db, "SELECT count(*) FROM factors").c_str(), "1");
  assert_true(s.flush().ok());  // nothing to commit is fine

  // Written, never flushed, store destroyed: gone.
  assert_true(s.put_factor("bob", factor(Method::kTotp, false, "SHA1:6:30")).ok());
  assert_true(*s.advance_totp_watermark("alice", "default", 9));
  reopen(f);
  assert_true(f->store->get_factors("bob")->empty());
  assert_false(f->store->get_totp_watermark("alice", "default")->has_value());
  assert_int_equal(f->store->get_factors("alice")->size(), 1);
}

// The pipeline's halves: commit() makes a batch visible (and survives the process), sync() makes
// it durable, from another thread while this one writes the next batch; a log removed under the
// store is a failed sync, never a silent success.
void test_commit_then_sync(void** state) {
  auto* f = static_cast<Fixture*>(*state);
  auto& s = *f->store;
  assert_true(s.put_factor("alice", factor(Method::kTotp, false, "SHA1:6:30")).ok());
  assert_true(s.commit().ok());
  assert_false(s.in_transaction());
  assert_string_equal(raw_query(f->db, "SELECT count(*) FROM factors").c_str(), "1");
  Status synced;
  std::thread syncer([&] { synced = s.sync(); });
  assert_true(s.put_factor("bob", factor(Method::kTotp, false, "SHA1:6:30")).ok());
  syncer.join();
  assert_true(synced.ok());
  assert_true(s.commit().ok());
  assert_true(s.sync().ok());
  reopen(f);
  assert_int_equal(f->store->get_factors("bob")->size(), 1);

  assert_int_equal(unlink((f->db + "-wal").c_str()), 0);
  Status gone = f->store->sync();
  assert_false(gone.ok());
  assert_int_equal(static_cast<int>(gone.error().code), static_cast<int>(Errc::kStorage));
}

// A failed disk flush stays failed (see SqliteStore::sync): the next flush, which the kernel may
// report as a success after dropping the pages, is refused too.
void test_failed_sync_is_sticky(void** state) {
  auto* f = static_cast<Fixture*>(*state);
  auto& s = *f->store;
  assert_true(s.put_factor("alice", factor(Method::kTotp, false, "SHA1:6:30")).ok());
  assert_true(s.commit().ok());
  g_fail_fdatasync = true;
  Status failed = s.sync();
  g_fail_fdatasync = false;
  assert_false(failed.ok());
  assert_int_equal(static_cast<int>(failed.error().code), static_cast<int>(Errc::kStorage));
  assert_non_null(strstr(failed.error().message.c_str(), "Input/output error"));

  assert_true(s.put_factor("bob", factor(Method::kTotp, false, "SHA1:6:30")).ok());
  Status again = s.flush();
  assert_false(again.ok());
  assert_non_null(strstr(again.error().message.c_str(), "restart mfad"));
  assert_false(s.sync().ok());

  // A restart starts from what the disk holds, with working flushes.
  reopen(f);
  assert_true(f->store->put_factor("carol", factor(Method::kTotp, false, "SHA1:6:30")).ok());
  assert_true(f->store->flush().ok());
}

void test_failed_write_fails_batch(void** state) {
  auto* f = static_cast<Fixture*>(*state);
  f->store.reset();
  // A write that the database refuses, planted from outside.
  raw_query(f->db,
            "CREATE TRIGGER boom BEFORE INSERT ON limits WHEN NEW.user = 'boom' "
            "BEGIN SELECT RAISE(ABORT, 'planted failure'); END");
  reopen(f);
  auto& s = *f->store;
  assert_true(s.put_factor("alice", factor(Method::kTotp, false, "SHA1:6:30")).ok());
  Status failed = s.put_limits("boom", LimitState{});
  assert_false(failed.ok());
  assert_int_equal(static_cast<int>(failed.error().code), static_cast<int>(Errc::kStorage));
  assert_non_null(strstr(failed.error().message.c_str(), "database write failed"));
  // The whole batch is lost: later writes of it fail too, and so does its flush.
  assert_false(s.put_factor("bob", factor(Method::kTotp, false, "SHA1:6:30")).ok());
  Status flushed = s.flush();
  assert_false(flushed.ok());
  assert_non_null(strstr(flushed.error().message.c_str(), "rolled back"));
  assert_true(s.get_factors("alice")->empty());
  assert_true(s.get_factors("bob")->empty());
  // The next batch starts clean.
  assert_true(s.put_factor("carol", factor(Method::kTotp, false, "SHA1:6:30")).ok());
  assert_true(s.flush().ok());
  reopen(f);
  assert_int_equal(f->store->get_factors("carol")->size(), 1);
  assert_true(f->store->get_factors("alice")->empty());
}

void test_fds_close_on_exec(void** state) {
  auto* f = static_cast<Fixture*>(*state);
  assert_true(f->store->put_factor("alice", factor(Method::kTotp, false, "SHA1:6:30")).ok());
  assert_true(f->store->flush().ok());  // the -wal and -shm files are open now
  int found = 0;
  DIR* d = opendir("/proc/self/fd");
  assert_non_null(d);
  while (struct dirent* e = readdir(d)) {
    if (e->d_name[0] == '.')
      continue;
    std::string link = std::string("/proc/self/fd/") + e->d_name;
    char target[4096];
    ssize_t n = readlink(link.c_str(), target, sizeof target - 1);
    if (n <= 0)
      continue;
    target[n] = '\0';
    if (strncmp(target, f->db.c_str(), f->db.size()) != 0)
      continue;
    std::ifstream info(std::string("/proc/self/fdinfo/") + e->d_name);
    std::string key;
    std::string flags;
    while (info >> key) {
      if (key == "flags:") {
        info >> flags;
        break;
      }
    }
    unsigned long value = strtoul(flags.c_str(), nullptr, 8);
    if (!(value & O_CLOEXEC))
      fprintf(stderr, "fd %s (%s) lacks O_CLOEXEC\n", e->d_name, target);
    assert_true(value & O_CLOEXEC);
    ++found;
  }
  closedir(d);
  assert_true(found >= 2);  // the database and its WAL at least
}

void test_corrupt_file_is_storage_error(void** state) {
  auto* f = static_cast<Fixture*>(*state);
  std::string path = f->dir + "/garbage.db";
  {
    std::ofstream out(path);
    for (int i = 0; i < 200; ++i)
      out << "this is not an SQLite database, just text\n";
  }
  auto store = SqliteStore::open(path, f->clock);
  assert_false(store.ok());
  assert_int_equal(static_cast<int>(store.error().code), static_cast<int>(Errc::kStorage));
  assert_non_null(strstr(store.error().message.c_str(), "not a database"));
}

// A private mount namespace, so the tmpfs mounts below vanish with the test process and never
// show in anyone else's view. false when not permitted (not root): the test is skipped.
bool private_mounts() {
  static int done = 0;
  if (done == 0) {
    done = (unshare(CLONE_NEWNS) == 0 &&
            mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) == 0)
               ? 1
               : -1;
  }
  return done == 1;
}

void test_read_only_filesystem(void** state) {
  auto* f = static_cast<Fixture*>(*state);
  if (!private_mounts())
    skip();
  std::string mnt = f->dir + "/ro";
  assert_int_equal(mkdir(mnt.c_str(), 0700), 0);
  assert_int_equal(mount("none", mnt.c_str(), "tmpfs", 0, "size=1m"), 0);
  std::string db = mnt + "/mfad.db";
  {
    auto store = SqliteStore::open(db, f->clock);
    assert_true(store.ok());
    assert_true((*store)->put_factor("alice", factor(Method::kTotp, false, "SHA1:6:30")).ok());
    assert_true((*store)->flush().ok());
  }
  assert_int_equal(mount("none", mnt.c_str(), nullptr, MS_REMOUNT | MS_RDONLY, nullptr), 0);
  auto store = SqliteStore::open(db, f->clock);
  assert_false(store.ok());
  assert_int_equal(static_cast<int>(store.error().code), static_cast<int>(Errc::kStorage));
  assert_non_null(strstr(store.error().message.c_str(), "Read-only file system"));
  assert_int_equal(umount(mnt.c_str()), 0);
}

void test_disk_full(void** state) {
  auto* f = static_cast<Fixture*>(*state);
  if (!private_mounts())
    skip();
  std::string mnt = f->dir + "/full";
  assert_int_equal(mkdir(mnt.c_str(), 0700), 0);
  assert_int_equal(mount("none", mnt.c_str(), "tmpfs", 0, "size=256k"), 0);
  {
    auto opened = SqliteStore::open(mnt + "/mfad.db", f->clock);
    assert_true(opened.ok());
    auto& s = **opened;
    assert_true(s.put_factor("alice", factor(Method::kTotp, false, "SHA1:6:30")).ok());
    assert_true(s.flush().ok());

    std::string filler(8000, 'x');
    std::optional<Error> failure;
    int committed = 0;
    for (int i = 0; i < 1000 && !failure; ++i) {
      AuditRecord r;
      r.kind = "auth.begin";
      r.user = "alice";
      r.outcome = "info";
      r.details_json = "{\"pad\":\"" + filler + "\"}";
      Status st = s.append_audit(r);
      if (!st.ok()) {
        failure = st.error();
        // The batch failed: flush reports it too.
        assert_false(s.flush().ok());
        break;
      }
      st = s.flush();
      if (!st.ok()) {
        failure = st.error();
        break;
      }
      ++committed;
    }
    assert_true(failure.has_value());
    assert_int_equal(static_cast<int>(failure->code), static_cast<int>(Errc::kStorage));
    fprintf(stderr, "after %d commits: %s\n", committed, failure->message.c_str());
    assert_non_null(strstr(failure->message.c_str(), "disk full (SQLITE_FULL)"));
    assert_false(s.in_transaction());

    // Committed state is intact and readable; the chain still verifies.
    assert_int_equal(s.get_factors("alice")->size(), 1);
    auto v = s.verify_audit_chain();
    assert_true(v.ok());
    assert_true(v->intact);
    assert_int_equal(v->rows, committed);
  }
  assert_int_equal(umount(mnt.c_str()), 0);
}

}  // namespace

int main() {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_factors_crud, setup, teardown),
      cmocka_unit_test_setup_teardown(test_migration_keys_records_by_account, setup, teardown),
      cmocka_unit_test_setup_teardown(test_migration_names_the_totp_device_default, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_totp_devices_have_their_own_watermarks, setup, teardown),
      cmocka_unit_test_setup_teardown(test_watermark_monotonic, setup, teardown),
      cmocka_unit_test_setup_teardown(test_backup_codes_exactly_once, setup, teardown),
      cmocka_unit_test_setup_teardown(test_limits_round_trip, setup, teardown),
      cmocka_unit_test_setup_teardown(test_list_and_delete_user, setup, teardown),
      cmocka_unit_test_setup_teardown(test_persistence_and_schema, setup, teardown),
      cmocka_unit_test_setup_teardown(test_migration_forgets_old_leader_start, setup, teardown),
      cmocka_unit_test_setup_teardown(test_loose_mode_tightened, setup, teardown),
      cmocka_unit_test_setup_teardown(test_newer_schema_refused, setup, teardown),
      cmocka_unit_test_setup_teardown(test_unflushed_write_rolled_back, setup, teardown),
      cmocka_unit_test_setup_teardown(test_commit_then_sync, setup, teardown),
      cmocka_unit_test_setup_teardown(test_failed_sync_is_sticky, setup, teardown),
      cmocka_unit_test_setup_teardown(test_failed_write_fails_batch, setup, teardown),
      cmocka_unit_test_setup_teardown(test_fds_close_on_exec, setup, teardown),
      cmocka_unit_test_setup_teardown(test_corrupt_file_is_storage_error, setup, teardown),
      cmocka_unit_test_setup_teardown(test_read_only_filesystem, setup, teardown),
      cmocka_unit_test_setup_teardown(test_disk_full, setup, teardown),
  };
  return cmocka_run_group_tests(tests, nullptr, nullptr);
}

// The keyed audit chain (docs/audit-events.md, "The hash chain"): HMAC links, the head kept in
// a sealed file, truncation found at start and while running, the migration of an unkeyed trail,
// and pruning vouched for by a checkpoint row.
#include <sqlite3.h>
#include <sys/stat.h>
#include <unistd.h>

#include <csetjmp>
#include <cstdarg>
#include <cstddef>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>

extern "C" {
#include <cmocka.h>
}

#include "common/crypto.hpp"
#include "common/seal.hpp"
#include "core/clock.hpp"
#include "storage/audit_head.hpp"
#include "storage/sqlite_store.hpp"

using namespace mfa;

namespace {

constexpr int64_t kDayUsec = 86400LL * 1000000;

struct Fixture {
  std::string dir;
  std::string db;
  std::string head;
  FakeClock clock;
  std::unique_ptr<Sealer> sealer;
  std::unique_ptr<SqliteStore> store;
};

SecureBytes chain_key() {
  std::vector<uint8_t> k(32, 0x42);
  return SecureBytes(k);
}

// Opens the store; keyed: as mfad does, with the head file beside the database.
void open_store(Fixture* f, bool keyed = true) {
  f->store.reset();
  auto store = SqliteStore::open(f->db, f->clock);
  assert_true(store.ok());
  f->store = std::move(store).value();
  if (keyed)
    assert_true(f->store->set_audit_chain(chain_key(), f->head, f->sealer.get()).ok());
}

int setup(void** state) {
  auto* f = new Fixture;
  char tmpl[] = "/tmp/mfad-test-chain-XXXXXX";
  if (!mkdtemp(tmpl))
    return -1;
  f->dir = tmpl;
  f->db = f->dir + "/mfad.db";
  f->head = f->dir + "/audit.head";
  std::vector<uint8_t> master(32, 0x17);
  auto sealer = Sealer::create(master);
  if (!sealer.ok())
    return -1;
  f->sealer = std::make_unique<Sealer>(std::move(sealer).value());
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

// The tamperer's view: a raw connection without the append-only triggers.
void tamper(const std::string& db, const std::string& sql) {
  sqlite3* raw = nullptr;
  assert_int_equal(sqlite3_open_v2(db.c_str(), &raw, SQLITE_OPEN_READWRITE, nullptr), SQLITE_OK);
  std::string all =
      "DROP TRIGGER IF EXISTS audit_no_update; DROP TRIGGER IF EXISTS audit_no_delete; "
      "DROP TRIGGER IF EXISTS audit_anchor_no_insert; DROP TRIGGER IF EXISTS "
      "audit_anchor_no_update; " +
      sql;
  int rc = sqlite3_exec(raw, all.c_str(), nullptr, nullptr, nullptr);
  sqlite3_close(raw);
  assert_int_equal(rc, SQLITE_OK);
}

void append(Fixture* f, int n, int64_t step_usec = 60 * 1000000) {
  for (int i = 0; i < n; ++i) {
    AuditRecord r;
    r.kind = "auth.begin";
    r.user = "alice";
    r.outcome = "info";
    r.caller = "uid=0";
    r.details_json = "{\"n\":\"" + std::to_string(i) + "\"}";
    assert_true(f->store->append_audit(r).ok());
    f->clock.advance_usec(step_usec);
  }
  assert_true(f->store->flush().ok());
}

void expect_message(const AuditVerification& v, const std::string& want) {
  if (v.message.find(want) == std::string::npos)
    fprintf(stderr, "message: %s\n(wanted %s)\n", v.message.c_str(), want.c_str());
  assert_true(v.message.find(want) != std::string::npos);
}

// A row rewritten with its link recomputed the unkeyed way verifies in an unkeyed chain; the
// keyed chain refuses it.
void test_forged_link_needs_the_key(void** state) {
  auto* f = static_cast<Fixture*>(*state);
  open_store(f);
  append(f, 3);
  auto v = f->store->verify_audit_chain();
  assert_true(v->intact);
  assert_int_equal(v->rows, 3);
  expect_message(*v, "rows 1..3 proven; the head file matches row 3");
  // The attacker rewrites the last row and recomputes its link as sha256 (the unkeyed scheme).
  auto rows = f->store->query_audit(AuditFilter{});
  AuditRecord last = rows->back();
  std::vector<uint8_t> buf;
  auto put_u64 = [&](uint64_t x) {
    for (int s = 56; s >= 0; s -= 8)
      buf.push_back(static_cast<uint8_t>(x >> s));
  };
  auto put = [&](const std::string& s) {
    put_u64(s.size());
    buf.insert(buf.end(), s.begin(), s.end());
  };
  put((*rows)[1].hash_hex);
  put("mfad-audit-v1");
  put_u64(3);
  put_u64(static_cast<uint64_t>(last.time_usec));
  put(last.kind);
  put("mallory");
  put(last.outcome);
  put(last.reason);
  put(last.caller);
  put(last.details_json);
  std::string forged = to_hex(sha256(buf));
  tamper(f->db, "UPDATE audit SET user = 'mallory', hash = '" + forged + "' WHERE id = 3");
  open_store(f);
  v = f->store->verify_audit_chain();
  assert_false(v->intact);
  expect_message(*v, "audit row 3: contents do not match its hash");
}

// Newest rows deleted while mfad was stopped: a chain that still verifies, but not the head.
void test_truncation_found_at_start(void** state) {
  auto* f = static_cast<Fixture*>(*state);
  open_store(f);
  append(f, 10);
  f->store.reset();
  tamper(f->db, "DELETE FROM audit WHERE id > 7");
  open_store(f);
  auto problem = f->store->take_audit_head_problem();
  assert_true(problem.has_value());
  assert_string_equal(problem->reason.c_str(), "truncated");
  assert_int_equal(problem->proven_to, 7);
  assert_int_equal(problem->missing_from, 8);
  assert_int_equal(problem->missing_to, 10);
  assert_string_equal(problem->message.c_str(),
                      "truncated: the trail is proven up to row 7; rows 8..10 are missing");
  assert_false(f->store->take_audit_head_problem().has_value());  // once
}

// Deleted while mfad runs: VerifyAuditTrail sees it at once, and the next row records it.
void test_truncation_while_running(void** state) {
  auto* f = static_cast<Fixture*>(*state);
  open_store(f);
  append(f, 6);
  tamper(f->db, "DELETE FROM audit WHERE id > 4");
  auto v = f->store->verify_audit_chain();
  assert_false(v->intact);
  assert_string_equal(v->message.c_str(),
                      "truncated: the trail is proven up to row 4; rows 5..6 are missing");
  append(f, 1);
  auto problem = f->store->take_audit_head_problem();
  assert_true(problem.has_value());
  assert_string_equal(problem->reason.c_str(), "truncated");
  auto rows = f->store->query_audit(AuditFilter{});
  assert_int_equal(rows->size(), 6);
  assert_string_equal((*rows)[4].kind.c_str(), "audit.tampering");
  assert_string_equal((*rows)[4].reason.c_str(), "truncated");
  // The record stays in the chain: the trail is reported broken until it is pruned.
  open_store(f);
  assert_false(f->store->take_audit_head_problem().has_value());
  v = f->store->verify_audit_chain();
  assert_false(v->intact);
  expect_message(*v, "truncated: the trail is proven up to row 4; rows 5..6 are missing");
}

// A keyed trail whose head file went is reported, not taken for a fresh start.
void test_missing_head_reported(void** state) {
  auto* f = static_cast<Fixture*>(*state);
  open_store(f);
  append(f, 2);
  f->store.reset();
  assert_int_equal(unlink(f->head.c_str()), 0);
  open_store(f);
  auto problem = f->store->take_audit_head_problem();
  assert_true(problem.has_value());
  assert_string_equal(problem->reason.c_str(), "head-missing");
  // A fresh, empty trail has no head yet: nothing to report.
  f->store.reset();
  std::filesystem::remove(f->db);
  std::filesystem::remove(f->db + "-wal");
  std::filesystem::remove(f->db + "-shm");
  std::filesystem::remove(f->head);
  open_store(f);
  assert_false(f->store->take_audit_head_problem().has_value());
}

// The head file says the same as the database, sealed: another key or a changed byte does not
// open.
void test_head_file_sealed(void** state) {
  auto* f = static_cast<Fixture*>(*state);
  open_store(f);
  append(f, 3);
  auto head = read_audit_head(f->head, *f->sealer);
  assert_true(head.ok() && head->has_value());
  assert_int_equal((*head)->last_id, 3);
  assert_int_equal((*head)->first_id, 1);
  assert_int_equal((*head)->rows(), 3);
  assert_true((*head)->mac == f->store->query_audit(AuditFilter{})->back().hash_hex);
  std::vector<uint8_t> other(32, 0x18);
  auto stranger = Sealer::create(other);
  assert_false(read_audit_head(f->head, *stranger).ok());
  f->store.reset();
  FILE* file = fopen(f->head.c_str(), "r+b");
  assert_non_null(file);
  fseek(file, 30, SEEK_SET);
  fputc(0x55, file);
  fclose(file);
  open_store(f);
  auto problem = f->store->take_audit_head_problem();
  assert_true(problem.has_value());
  assert_string_equal(problem->reason.c_str(), "head-unreadable");
}

// Each disk flush rewrites the head: the newest opens from the file, and the two files trade
// places rather than a new one being made each time (the head's inode comes back every other
// write, the previous head stays whole as the temporary file).
void test_head_rewritten_in_two_files(void** state) {
  auto* f = static_cast<Fixture*>(*state);
  std::vector<ino_t> inodes;
  for (int64_t last = 1; last <= 4; ++last) {
    AuditHead head;
    head.first_id = 1;
    head.last_id = last;
    head.mac = std::string(64, static_cast<char>('a' + last));
    assert_true(write_audit_head(f->head, *f->sealer, head, false).ok());
    auto read = read_audit_head(f->head, *f->sealer);
    assert_true(read.ok() && read->has_value());
    assert_true(**read == head);
    if (last > 1) {
      // The previous head, whole, is the next write's temporary file.
      auto previous = read_audit_head(f->head + ".tmp", *f->sealer);
      assert_true(previous.ok() && previous->has_value());
      assert_int_equal((*previous)->last_id, last - 1);
    }
    struct stat st {};
    assert_int_equal(stat(f->head.c_str(), &st), 0);
    assert_int_equal(st.st_mode & 07777, 0600);
    inodes.push_back(st.st_ino);
  }
  assert_true(inodes[1] != inodes[2]);
  assert_true(inodes[1] == inodes[3]);
  assert_true(inodes[2] != inodes[3]);
}

// The temporary file is rewritten in place: a shorter head written over a longer one (ids with
// fewer digits, another mac) leaves no byte of the longer one behind, and both files still open.
void test_head_rewritten_in_place_shrinks(void** state) {
  auto* f = static_cast<Fixture*>(*state);
  AuditHead long_head;
  long_head.first_id = 1000000000;
  long_head.last_id = 9000000000;
  long_head.mac = std::string(64, 'f');
  AuditHead short_head;
  short_head.first_id = 1;
  short_head.last_id = 2;
  short_head.mac = std::string(64, 'e');
  for (const AuditHead* head : {&long_head, &long_head, &short_head, &short_head}) {
    assert_true(write_audit_head(f->head, *f->sealer, *head, false).ok());
    auto read = read_audit_head(f->head, *f->sealer);
    assert_true(read.ok() && read->has_value());
    assert_true(**read == *head);
  }
  auto previous = read_audit_head(f->head + ".tmp", *f->sealer);
  assert_true(previous.ok() && previous->has_value());
  assert_true(**previous == short_head);
  // A temporary file that is not a regular file is refused, not followed or written through.
  assert_int_equal(unlink((f->head + ".tmp").c_str()), 0);
  assert_int_equal(mkfifo((f->head + ".tmp").c_str(), 0600), 0);
  assert_false(write_audit_head(f->head, *f->sealer, long_head, false).ok());
  auto kept = read_audit_head(f->head, *f->sealer);
  assert_true(kept.ok() && kept->has_value() && **kept == short_head);
  // Nor is a hard link to another file written through.
  const std::string other = f->head + ".other";
  { std::ofstream(other) << "not a head"; }
  assert_int_equal(link(other.c_str(), (f->head + ".tmp").c_str()), 0);
  assert_false(write_audit_head(f->head, *f->sealer, long_head, false).ok());
  std::ifstream in(other);
  std::string content((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  assert_string_equal(content.c_str(), "not a head");
}

// An unkeyed trail (written by an older mfad) is verified and continued with a keyed chain from
// a checkpoint that carries its head; its rows can then no longer be rewritten unnoticed.
void test_legacy_trail_migrated(void** state) {
  auto* f = static_cast<Fixture*>(*state);
  open_store(f, /*keyed=*/false);
  append(f, 4);
  std::string legacy_head = f->store->query_audit(AuditFilter{})->back().hash_hex;
  open_store(f);
  assert_false(f->store->take_audit_head_problem().has_value());
  assert_true(f->store->flush().ok());
  auto rows = f->store->query_audit(AuditFilter{});
  // The keyed checkpoint, then the whole trail carried over to the commitment chain.
  assert_int_equal(rows->size(), 6);
  assert_string_equal((*rows)[4].kind.c_str(), "audit.checkpoint");
  assert_string_equal((*rows)[4].reason.c_str(), "keyed");
  assert_true((*rows)[4].details_json.find("\"legacy_head\":\"" + legacy_head + "\"") !=
              std::string::npos);
  assert_true((*rows)[4].details_json.find("\"legacy_intact\":\"true\"") != std::string::npos);
  assert_string_equal((*rows)[5].reason.c_str(), "committed");
  assert_true((*rows)[5].details_json.find("\"committed_rows\":\"5\"") != std::string::npos);
  append(f, 2);
  auto v = f->store->verify_audit_chain();
  assert_true(v->intact);
  assert_int_equal(v->rows, 8);
  // Reopened: no second checkpoint, the head file matches.
  open_store(f);
  assert_false(f->store->take_audit_head_problem().has_value());
  assert_true(f->store->flush().ok());
  assert_int_equal(f->store->query_audit(AuditFilter{})->size(), 8);
  // A row written before the migration can now be pseudonymised, and the chain still verifies.
  auto report = f->store->forget_user(ForgetRequest{"uid/1", {"alice"}});
  assert_true(report.ok());
  assert_int_equal(report->audit_rows, 6);
  assert_int_equal(report->audit_rows_kept, 0);
  assert_true(f->store->flush().ok());
  v = f->store->verify_audit_chain();
  assert_true(v->intact);
  // An old row rewritten: it no longer matches what the chain committed to.
  tamper(f->db, "UPDATE audit SET caller = 'mallory' WHERE id = 2");
  v = f->store->verify_audit_chain();
  assert_false(v->intact);
  expect_message(*v, "audit row 2:");
}

// The commitment chain (docs/audit-events.md, "Commitments"): forgetting a person replaces the
// name and phone in their rows with a keyed pseudonym; the chain still verifies; a changed user
// or details, in a plain or a pseudonymised row, is found.
void test_forget_pseudonymises(void** state) {
  auto* f = static_cast<Fixture*>(*state);
  open_store(f);
  for (const char* user : {"alice", "bob", "alice"}) {
    AuditRecord r;
    r.kind = "sms.sent";
    r.user = user;
    r.outcome = "success";
    r.caller = "uid=0";
    r.details_json = std::string("{\"phone\":\"+1****4321\",\"ruser\":\"") + user + "\"}";
    assert_true(f->store->append_audit(r).ok());
  }
  assert_true(f->store->flush().ok());
  auto report = f->store->forget_user(ForgetRequest{"uid/1000", {"alice"}});
  assert_true(report.ok());
  assert_int_equal(report->audit_rows, 2);
  assert_true(report->pseudonym.rfind("forgotten/", 0) == 0);
  assert_true(f->store->flush().ok());
  auto rows = f->store->query_audit(AuditFilter{});
  for (const AuditRecord& r : *rows) {
    assert_true(r.user.find("alice") == std::string::npos);
    assert_true(r.details_json.find("alice") == std::string::npos);
  }
  assert_string_equal((*rows)[0].user.c_str(), report->pseudonym.c_str());
  assert_true((*rows)[0].details_json.find("4321") == std::string::npos);
  assert_true((*rows)[1].details_json.find("4321") != std::string::npos);  // bob's stays
  auto v = f->store->verify_audit_chain();
  assert_true(v->intact);
  // Same name, same pseudonym: the rows of one person stay linkable as one.
  assert_string_equal((*rows)[2].user.c_str(), report->pseudonym.c_str());

  // A pseudonymised row's details changed: its redaction MAC no longer matches.
  tamper(f->db, "UPDATE audit SET details = '{}' WHERE id = 1");
  v = f->store->verify_audit_chain();
  assert_false(v->intact);
  expect_message(*v, "audit row 1:");
}

void test_commitments_catch_a_renamed_row(void** state) {
  auto* f = static_cast<Fixture*>(*state);
  open_store(f);
  append(f, 3);
  assert_true(f->store->flush().ok());
  // The name changed, or passed off as a pseudonym: the commitment does not match.
  tamper(f->db, "UPDATE audit SET user = 'forgotten/0123456789abcdef' WHERE id = 2");
  auto v = f->store->verify_audit_chain();
  assert_false(v->intact);
  expect_message(*v, "audit row 2:");
}

// Retention under a keyed chain: a checkpoint row vouches for the pruned range; rows deleted from
// the start with the anchor moved along are found.
void test_prune_checkpoint(void** state) {
  auto* f = static_cast<Fixture*>(*state);
  open_store(f);
  const int64_t start = f->clock.realtime_usec();
  append(f, 10, kDayUsec);
  assert_true(f->store->prune_audit(start + 5 * kDayUsec).ok());
  assert_true(f->store->flush().ok());
  auto rows = f->store->query_audit(AuditFilter{});
  assert_int_equal(rows->size(), 6);
  assert_int_equal((*rows)[0].id, 6);
  const AuditRecord& cp = rows->back();
  assert_int_equal(cp.id, 11);
  assert_string_equal(cp.kind.c_str(), "audit.checkpoint");
  assert_string_equal(cp.reason.c_str(), "pruned");
  assert_true(cp.details_json.find("\"pruned_first\":\"1\"") != std::string::npos);
  assert_true(cp.details_json.find("\"pruned_last\":\"5\"") != std::string::npos);
  assert_true(cp.details_json.find("\"pruned_rows\":\"5\"") != std::string::npos);
  auto v = f->store->verify_audit_chain();
  assert_true(v->intact);
  assert_int_equal(v->first_id, 6);
  assert_int_equal(v->last_id, 11);
  auto head = read_audit_head(f->head, *f->sealer);
  assert_int_equal((*head)->first_id, 6);
  assert_int_equal((*head)->last_id, 11);

  // Everything pruned: the checkpoint is the trail; it goes on, and survives a reopen.
  assert_true(f->store->prune_audit(f->clock.realtime_usec() + kDayUsec).ok());
  append(f, 1);
  open_store(f);
  assert_false(f->store->take_audit_head_problem().has_value());
  v = f->store->verify_audit_chain();
  assert_true(v->intact);
  assert_int_equal(v->rows, 2);

  // The tamperer deletes the oldest kept row and moves the anchor along: the chain from the
  // anchor verifies, the checkpoint does not vouch for it.
  auto all = f->store->query_audit(AuditFilter{});
  const AuditRecord first = all->front();
  tamper(f->db, "UPDATE audit_guard SET pruning = 1; DELETE FROM audit WHERE id = " +
                    std::to_string(first.id) +
                    "; UPDATE audit_anchor SET first_id = " + std::to_string(first.id + 1) +
                    ", prev_hash = '" + first.hash_hex + "'; UPDATE audit_guard SET pruning = 0;");
  v = f->store->verify_audit_chain();
  assert_false(v->intact);
  expect_message(*v, "no checkpoint row vouches for that");
}

// Devices not seen within the retention are forgotten.
void test_prune_devices(void** state) {
  auto* f = static_cast<Fixture*>(*state);
  open_store(f);
  const int64_t now = f->clock.realtime_usec();
  assert_true(f->store->note_device("alice", "old", now - 400 * kDayUsec, "", "").ok());
  assert_true(f->store->note_device("alice", "new", now - 10 * kDayUsec, "", "").ok());
  auto pruned = f->store->prune_devices(now - 365 * kDayUsec);
  assert_true(pruned.ok());
  assert_int_equal(*pruned, 1);
  assert_false(*f->store->note_device("alice", "new", now, "", ""));
  assert_true(*f->store->note_device("alice", "old", now, "", ""));  // new again
}

}  // namespace

int main() {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_forged_link_needs_the_key, setup, teardown),
      cmocka_unit_test_setup_teardown(test_truncation_found_at_start, setup, teardown),
      cmocka_unit_test_setup_teardown(test_truncation_while_running, setup, teardown),
      cmocka_unit_test_setup_teardown(test_missing_head_reported, setup, teardown),
      cmocka_unit_test_setup_teardown(test_head_rewritten_in_place_shrinks, setup, teardown),
      cmocka_unit_test_setup_teardown(test_head_rewritten_in_two_files, setup, teardown),
      cmocka_unit_test_setup_teardown(test_head_file_sealed, setup, teardown),
      cmocka_unit_test_setup_teardown(test_legacy_trail_migrated, setup, teardown),
      cmocka_unit_test_setup_teardown(test_prune_checkpoint, setup, teardown),
      cmocka_unit_test_setup_teardown(test_prune_devices, setup, teardown),
      cmocka_unit_test_setup_teardown(test_forget_pseudonymises, setup, teardown),
      cmocka_unit_test_setup_teardown(test_commitments_catch_a_renamed_row, setup, teardown),
  };
  return cmocka_run_group_tests(tests, nullptr, nullptr);
}

// The audit trail: hash chain, tamper detection, pruning, queries, journald/stderr output.
#include <fcntl.h>
#include <sqlite3.h>
#include <unistd.h>

#include <algorithm>
#include <cstdarg>
#include <cstddef>
#include <csetjmp>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>
#include <string>

extern "C" {
#include <cmocka.h>
}

#include <nlohmann/json.hpp>

#include "core/audit.hpp"
#include "core/clock.hpp"
#include "storage/sqlite_store.hpp"

using namespace mfa;

namespace {

constexpr int64_t kDayUsec = 86400LL * 1000000;

struct Fixture {
  std::string dir;
  std::string db;
  FakeClock clock;
  std::unique_ptr<SqliteStore> store;
  std::unique_ptr<AuditLog> audit;
};

void open_store(Fixture* f) {
  f->audit.reset();
  f->store.reset();
  auto store = SqliteStore::open(f->db, f->clock);
  assert_true(store.ok());
  f->store = std::move(store).value();
  f->audit = std::make_unique<AuditLog>(*f->store, f->clock);
}

int setup(void** state) {
  auto* f = new Fixture;
  char tmpl[] = "/tmp/mfad-test-audit-XXXXXX";
  if (!mkdtemp(tmpl))
    return -1;
  f->dir = tmpl;
  f->db = f->dir + "/mfad.db";
  auto store = SqliteStore::open(f->db, f->clock);
  if (!store.ok())
    return -1;
  f->store = std::move(store).value();
  f->audit = std::make_unique<AuditLog>(*f->store, f->clock);
  *state = f;
  return 0;
}

int teardown(void** state) {
  auto* f = static_cast<Fixture*>(*state);
  f->audit.reset();
  f->store.reset();
  std::filesystem::remove_all(f->dir);
  delete f;
  return 0;
}

// Runs SQL on a separate raw connection (the tamperer's view).
int raw_exec(const std::string& db, const char* sql) {
  sqlite3* raw = nullptr;
  assert_int_equal(sqlite3_open_v2(db.c_str(), &raw, SQLITE_OPEN_READWRITE, nullptr), SQLITE_OK);
  int rc = sqlite3_exec(raw, sql, nullptr, nullptr, nullptr);
  sqlite3_close(raw);
  return rc;
}

// Records n events, one a minute, alternating users; commits.
void record_events(Fixture* f, int n) {
  for (int i = 0; i < n; ++i) {
    AuditEvent e;
    e.kind = i % 2 ? AuditKind::kAuthFailure : AuditKind::kAuthBegin;
    e.user = i % 3 == 0 ? "bob" : "alice";
    e.outcome = i % 2 ? AuditOutcome::kFailure : AuditOutcome::kInfo;
    e.reason = i % 2 ? AuditReason::kBadCode : AuditReason::kNone;
    e.caller = "uid=0 pid=" + std::to_string(100 + i);
    e.details = {{"service", "sshd"}, {"rhost", "10.0.0." + std::to_string(i)}};
    assert_true(f->audit->record(e).ok());
    f->clock.advance_seconds(60);
  }
  assert_true(f->store->flush().ok());
}

void expect_broken_at(Fixture* f, int64_t id) {
  auto v = f->store->verify_audit_chain();
  assert_true(v.ok());
  assert_false(v->intact);
  std::string want = "audit row " + std::to_string(id) + ":";
  if (v->message.find(want) != 0) {
    fprintf(stderr, "message: %s (wanted %s)\n", v->message.c_str(), want.c_str());
  }
  assert_int_equal(v->message.find(want), 0);
}

void test_chain_verifies(void** state) {
  auto* f = static_cast<Fixture*>(*state);
  auto empty = f->store->verify_audit_chain();
  assert_true(empty.ok());
  assert_true(empty->intact);
  assert_int_equal(empty->rows, 0);

  record_events(f, 10);
  auto v = f->store->verify_audit_chain();
  assert_true(v.ok());
  assert_true(v->intact);
  assert_int_equal(v->rows, 10);

  // Rows carry what was recorded: time from the clock, details as a JSON object.
  AuditFilter all;
  auto rows = f->store->query_audit(all);
  assert_true(rows.ok());
  assert_int_equal(rows->size(), 10);
  const auto& first = (*rows)[0];
  assert_int_equal(first.id, 1);
  assert_int_equal(first.time_usec, 1700000000LL * 1000000);
  assert_string_equal(first.kind.c_str(), "auth.begin");
  assert_string_equal(first.user.c_str(), "bob");
  assert_string_equal(first.caller.c_str(), "uid=0 pid=100");
  auto details = nlohmann::json::parse(first.details_json);
  assert_string_equal(details["service"].get<std::string>().c_str(), "sshd");
  assert_string_equal(details["rhost"].get<std::string>().c_str(), "10.0.0.0");
  assert_int_equal(first.hash_hex.size(), 64);
  assert_string_not_equal((*rows)[0].hash_hex.c_str(), (*rows)[1].hash_hex.c_str());

  // Survives a reopen.
  open_store(f);
  v = f->store->verify_audit_chain();
  assert_true(v->intact);
  assert_int_equal(v->rows, 10);
}

void test_append_only_triggers(void** state) {
  auto* f = static_cast<Fixture*>(*state);
  record_events(f, 3);
  f->audit.reset();
  f->store.reset();
  assert_int_equal(raw_exec(f->db, "UPDATE audit SET outcome = 'success' WHERE id = 2"),
                   SQLITE_CONSTRAINT);
  assert_int_equal(raw_exec(f->db, "DELETE FROM audit WHERE id = 2"), SQLITE_CONSTRAINT);
  assert_int_equal(raw_exec(f->db,
                            "INSERT INTO audit_anchor(id, first_id, prev_hash) "
                            "VALUES(1, 5, 'x')"),
                   SQLITE_CONSTRAINT);
  open_store(f);
  auto v = f->store->verify_audit_chain();
  assert_true(v->intact);
  assert_int_equal(v->rows, 3);
}

void test_tampered_row_detected(void** state) {
  auto* f = static_cast<Fixture*>(*state);
  record_events(f, 8);
  f->audit.reset();
  f->store.reset();
  // An attacker with the file turns a failure into a success.
  assert_int_equal(raw_exec(f->db,
                            "DROP TRIGGER audit_no_update; "
                            "UPDATE audit SET outcome = 'success' WHERE id = 4"),
                   SQLITE_OK);
  open_store(f);
  expect_broken_at(f, 4);
}

void test_forged_hash_detected(void** state) {
  auto* f = static_cast<Fixture*>(*state);
  record_events(f, 6);
  f->audit.reset();
  f->store.reset();
  // Changing a row and writing a made-up hash for it.
  assert_int_equal(raw_exec(f->db,
                            "DROP TRIGGER audit_no_update; "
                            "UPDATE audit SET user = 'mallory', hash = "
                            "'00000000000000000000000000000000000000000000000000000000000000"
                            "01' WHERE id = 3"),
                   SQLITE_OK);
  open_store(f);
  expect_broken_at(f, 3);  // its hash no longer matches its contents
}

void test_deleted_row_detected(void** state) {
  auto* f = static_cast<Fixture*>(*state);
  record_events(f, 6);
  f->audit.reset();
  f->store.reset();
  assert_int_equal(raw_exec(f->db, "DROP TRIGGER audit_no_delete; DELETE FROM audit WHERE id = 5"),
                   SQLITE_OK);
  open_store(f);
  expect_broken_at(f, 6);

  f->audit.reset();
  f->store.reset();
  assert_int_equal(raw_exec(f->db, "DELETE FROM audit WHERE id = 1"), SQLITE_OK);
  open_store(f);
  expect_broken_at(f, 2);  // the head of the chain went missing
}

void test_prune_keeps_chain(void** state) {
  auto* f = static_cast<Fixture*>(*state);
  // One event a day for ten days.
  int64_t start = f->clock.realtime_usec();
  for (int i = 0; i < 10; ++i) {
    AuditEvent e;
    e.kind = AuditKind::kAuthSuccess;
    e.user = "alice";
    e.outcome = AuditOutcome::kSuccess;
    assert_true(f->audit->record(e).ok());
    f->clock.advance_usec(kDayUsec);
  }
  assert_true(f->store->flush().ok());

  assert_true(f->store->prune_audit(start + 5 * kDayUsec).ok());
  assert_true(f->store->flush().ok());
  auto rows = f->store->query_audit(AuditFilter{});
  assert_true(rows.ok());
  assert_int_equal(rows->size(), 5);
  assert_int_equal((*rows)[0].id, 6);
  auto v = f->store->verify_audit_chain();
  assert_true(v->intact);
  assert_int_equal(v->rows, 5);

  // The chain goes on after pruning, also across a reopen.
  AuditEvent e;
  e.kind = AuditKind::kAdminUnlock;
  e.user = "alice";
  e.outcome = AuditOutcome::kSuccess;
  assert_true(f->audit->record(e).ok());
  assert_true(f->store->flush().ok());
  open_store(f);
  v = f->store->verify_audit_chain();
  assert_true(v->intact);
  assert_int_equal(v->rows, 6);

  // Pruning again at the same cutoff changes nothing; pruning everything leaves an intact,
  // empty chain that continues with the next id.
  assert_true(f->store->prune_audit(start + 5 * kDayUsec).ok());
  assert_int_equal(f->store->verify_audit_chain()->rows, 6);
  assert_true(f->store->prune_audit(f->clock.realtime_usec() + kDayUsec).ok());
  assert_true(f->store->flush().ok());
  v = f->store->verify_audit_chain();
  assert_true(v->intact);
  assert_int_equal(v->rows, 0);
  assert_true(f->audit->record(e).ok());
  assert_true(f->store->flush().ok());
  rows = f->store->query_audit(AuditFilter{});
  assert_int_equal(rows->size(), 1);
  assert_int_equal((*rows)[0].id, 12);
  v = f->store->verify_audit_chain();
  assert_true(v->intact);
  assert_int_equal(v->rows, 1);

  // Rows removed behind the anchor's back are still noticed.
  f->audit.reset();
  f->store.reset();
  assert_int_equal(raw_exec(f->db,
                            "DROP TRIGGER audit_anchor_no_update; "
                            "UPDATE audit_anchor SET first_id = 11"),
                   SQLITE_OK);
  open_store(f);
  expect_broken_at(f, 12);
}

void test_query_filters(void** state) {
  auto* f = static_cast<Fixture*>(*state);
  record_events(f, 12);  // ids 1..12; bob at 1,4,7,10; a minute apart

  AuditFilter filter;
  filter.limit = 3;
  auto rows = f->store->query_audit(filter);
  assert_true(rows.ok());
  // The newest three, oldest first.
  assert_int_equal(rows->size(), 3);
  assert_int_equal((*rows)[0].id, 10);
  assert_int_equal((*rows)[2].id, 12);

  filter.user = "bob";
  filter.limit = 100;
  rows = f->store->query_audit(filter);
  assert_int_equal(rows->size(), 4);
  assert_int_equal((*rows)[0].id, 1);
  assert_int_equal((*rows)[3].id, 10);
  for (const auto& r : *rows)
    assert_string_equal(r.user.c_str(), "bob");

  filter.limit = 2;
  rows = f->store->query_audit(filter);
  assert_int_equal(rows->size(), 2);
  assert_int_equal((*rows)[0].id, 7);
  assert_int_equal((*rows)[1].id, 10);

  filter.user = "";
  filter.limit = 100;
  filter.since_usec = 1700000000LL * 1000000 + 9 * 60 * 1000000LL;  // the 10th event's time
  rows = f->store->query_audit(filter);
  assert_int_equal(rows->size(), 3);
  assert_int_equal((*rows)[0].id, 10);

  filter.user = "nobody";
  filter.since_usec = 0;
  assert_true(f->store->query_audit(filter)->empty());
  filter.user = "";
  filter.limit = 0;
  assert_true(f->store->query_audit(filter)->empty());
}

std::string audit_doc() {
  std::ifstream doc(MFA_SOURCE_DIR "/docs/audit-events.md");
  assert_true(doc.good());
  std::stringstream text;
  text << doc.rdbuf();
  return text.str();
}

// The kinds as stored, logged and sent: each has one enum value, its own MESSAGE_ID, and a row
// in docs/audit-events.md; no enum value has another name.
void test_kind_catalogue(void** state) {
  (void)state;
  const char* kinds[] = {"auth.begin",
                         "auth.success",
                         "auth.failure",
                         "auth.lockout",
                         "auth.not-enrolled",
                         "auth.rate-limited",
                         "auth.end",
                         "access.denied",
                         "enroll.begin",
                         "enroll.confirm",
                         "enroll.disable",
                         "enroll.import",
                         "enroll.token",
                         "backup.generate",
                         "backup.used",
                         "admin.reset",
                         "admin.unlock",
                         "session.open",
                         "session.close",
                         "session.terminate",
                         "sms.sent",
                         "sms.failed",
                         "degraded",
                         "storage.error",
                         "security.new-device",
                         "security.failure-burst",
                         "config.warning",
                         "daemon.start",
                         "daemon.stop",
                         "audit.checkpoint",
                         "audit.tampering"};
  const std::string doc = audit_doc();
  std::set<std::string> seen_ids;
  std::set<int> seen_kinds;
  for (const char* name : kinds) {
    const auto kind = audit_kind_from_name(name);
    assert_true(kind.has_value());
    assert_string_equal(audit_kind_name(*kind), name);
    assert_true(seen_kinds.insert(static_cast<int>(*kind)).second);
    std::string id = AuditLog::message_id(*kind);
    assert_int_equal(id.size(), 32);
    assert_true(std::all_of(id.begin(), id.end(), [](char c) {
      return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
    }));
    assert_true(seen_ids.insert(id).second);  // distinct
    // The documentation names the kind with its id on one line.
    std::string row = std::string("| `") + name + "` | `" + id + "` |";
    if (doc.find(row) == std::string::npos)
      fprintf(stderr, "docs lack %s\n", row.c_str());
    assert_true(doc.find(row) != std::string::npos);
  }
  assert_int_equal(seen_kinds.size(), static_cast<size_t>(AuditKind::kAuditTampering) + 1);
  assert_false(audit_kind_from_name("no.such-kind").has_value());
}

// Outcomes and reasons as stored: every enum value has the name listed here (a renamed one
// would split the trail in two), each reason is documented, and names parse back.
void test_outcome_and_reason_catalogue(void** state) {
  (void)state;
  const char* outcomes[] = {"success", "failure", "denied", "error", "info"};
  for (size_t i = 0; i < std::size(outcomes); ++i)
    assert_string_equal(audit_outcome_name(static_cast<AuditOutcome>(i)), outcomes[i]);
  assert_int_equal(std::size(outcomes), static_cast<size_t>(AuditOutcome::kInfo) + 1);

  const char* reasons[] = {"",
                           "bad-code",
                           "replay",
                           "expired",
                           "locked",
                           "step-up-required",
                           "consecutive-failures",
                           "daily-limit",
                           "clock-drift",
                           "enrollment-skipped",
                           "token-required",
                           "bad-token",
                           "notice-not-accepted",
                           "not-allowed",
                           "not-enrolled",
                           "method-not-accepted",
                           "too-many-challenges",
                           "abandoned",
                           "rate-limited",
                           "limit",
                           "closed",
                           "admin",
                           "user",
                           "idle",
                           "new-device",
                           "failure-burst",
                           "sms-unavailable",
                           "accepted",
                           "invalid-number",
                           "unverified-number",
                           "opted-out",
                           "not-mobile",
                           "recipient-error",
                           "provider-auth",
                           "provider-rate-limited",
                           "provider-error",
                           "provider-unreachable",
                           "provider-timeout",
                           "provider-tls",
                           "sender-error",
                           "shutdown",
                           "redis-unavailable",
                           "redis-available",
                           "fleet-failures",
                           "replay-fleet",
                           "consumed-elsewhere",
                           "factor-changed",
                           "unrecognised-refusal",
                           "start",
                           "signal",
                           "keyed",
                           "pruned",
                           "truncated",
                           "head-mismatch",
                           "head-missing",
                           "head-unreadable"};
  assert_int_equal(std::size(reasons), static_cast<size_t>(AuditReason::kHeadUnreadable) + 1);
  const std::string doc = audit_doc();
  for (size_t i = 0; i < std::size(reasons); ++i) {
    const auto reason = static_cast<AuditReason>(i);
    assert_string_equal(audit_reason_name(reason), reasons[i]);
    const auto parsed = audit_reason_from_name(reasons[i]);
    assert_true(parsed.has_value());
    assert_int_equal(static_cast<int>(*parsed), static_cast<int>(reason));
    if (i == 0)
      continue;
    if (doc.find(std::string("`") + reasons[i] + "`") == std::string::npos)
      fprintf(stderr, "docs lack the reason %s\n", reasons[i]);
    assert_true(doc.find(std::string("`") + reasons[i] + "`") != std::string::npos);
  }
  assert_false(audit_reason_from_name("no-such-reason").has_value());
}

// Captures what fd 2 receives while fn runs.
template <typename Fn>
std::string capture_stderr(Fn fn) {
  char path[] = "/tmp/mfad-test-stderr-XXXXXX";
  int fd = mkostemp(path, O_CLOEXEC);
  assert_true(fd >= 0);
  unlink(path);
  fflush(stderr);
  int saved = fcntl(STDERR_FILENO, F_DUPFD_CLOEXEC, 10);
  dup2(fd, STDERR_FILENO);
  fn();
  fflush(stderr);
  dup2(saved, STDERR_FILENO);
  close(saved);
  std::string out;
  char buf[4096];
  lseek(fd, 0, SEEK_SET);
  ssize_t n;
  while ((n = read(fd, buf, sizeof buf)) > 0)
    out.append(buf, static_cast<size_t>(n));
  close(fd);
  return out;
}

void test_stderr_without_journal(void** state) {
  auto* f = static_cast<Fixture*>(*state);
  if (access("/run/systemd/journal/socket", F_OK) == 0 && access("/run/systemd/system", F_OK) == 0)
    skip();  // a real journal: entries go there
  AuditEvent e;
  e.kind = AuditKind::kAuthFailure;
  e.user = "alice";
  e.outcome = AuditOutcome::kFailure;
  e.reason = AuditReason::kBadCode;
  e.caller = "uid=0 pid=7";
  e.details = {{"service", "sshd"}, {"rhost", "evil\nmfad: audit kind=auth.success"}};
  std::string out = capture_stderr([&] { assert_true(f->audit->record(e).ok()); });
  // One line, the forged second line neutralised.
  assert_int_equal(std::count(out.begin(), out.end(), '\n'), 1);
  assert_int_equal(out.find("mfad: audit kind=auth.failure user=alice outcome=failure "
                            "reason=bad-code caller=uid=0 pid=7"),
                   0);
  assert_non_null(strstr(out.c_str(), "service=sshd"));
  assert_non_null(strstr(out.c_str(), "rhost=evil?mfad"));
  // And the row is in the store.
  assert_true(f->store->flush().ok());
  auto rows = f->store->query_audit(AuditFilter{});
  assert_int_equal(rows->size(), 1);
  assert_string_equal((*rows)[0].reason.c_str(), "bad-code");
}

void test_store_failure_reported(void** state) {
  auto* f = static_cast<Fixture*>(*state);
  AuditEvent e;
  e.kind = AuditKind::kAuthBegin;
  e.user = "alice";
  e.outcome = AuditOutcome::kInfo;
  e.details = {{"pad", std::string(70 * 1024, 'x')}};  // over the store's field bound
  Status st = Status();
  std::string out = capture_stderr([&] { st = f->audit->record(e); });
  assert_false(st.ok());
  if (access("/run/systemd/system", F_OK) != 0) {
    assert_non_null(strstr(out.c_str(), "NOT STORED"));
  }
  assert_true(f->store->query_audit(AuditFilter{})->empty());
}

}  // namespace

int main() {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_chain_verifies, setup, teardown),
      cmocka_unit_test_setup_teardown(test_append_only_triggers, setup, teardown),
      cmocka_unit_test_setup_teardown(test_tampered_row_detected, setup, teardown),
      cmocka_unit_test_setup_teardown(test_forged_hash_detected, setup, teardown),
      cmocka_unit_test_setup_teardown(test_deleted_row_detected, setup, teardown),
      cmocka_unit_test_setup_teardown(test_prune_keeps_chain, setup, teardown),
      cmocka_unit_test_setup_teardown(test_query_filters, setup, teardown),
      cmocka_unit_test(test_kind_catalogue),
      cmocka_unit_test(test_outcome_and_reason_catalogue),
      cmocka_unit_test_setup_teardown(test_stderr_without_journal, setup, teardown),
      cmocka_unit_test_setup_teardown(test_store_failure_reported, setup, teardown),
  };
  return cmocka_run_group_tests(tests, nullptr, nullptr);
}

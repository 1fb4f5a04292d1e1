// The session registry (daemon/sessions.cpp) against a real SqliteStore on a temp file, a
// FakeClock, fake processes and terminals, and recording effects: limits (deny, evict-oldest),
// reaping, lifetime and idle expiry, authorization, factor linking, new-device and failure-burst
// events, and the migration runner with the sessions migration.
#include <sqlite3.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "core/audit.hpp"
#include "core/authenticator.hpp"
#include "core/clock.hpp"
#include "core/config.hpp"
#include "core/sessions.hpp"
#include "storage/sqlite_store.hpp"
#include "core_fakes.hpp"
#include "cmocka_cpp.hpp"

using namespace mfa;
using namespace mfa::test;

namespace {

constexpr int64_t kSecond = 1000000;

class FakeEffects final : public SessionEffects {
 public:
  void session_opened(const SessionRecord& s) override { opened.push_back(s.id); }
  void session_closed(const SessionRecord& s, SessionEnd reason) override {
    closed.emplace_back(s.id, session_end_name(reason));
  }
  void end_processes(const SessionRecord& s) override { ended.push_back(s.id); }
  std::optional<uint64_t> process_start(pid_t pid) override {
    auto it = processes.find(pid);
    if (it == processes.end())
      return std::nullopt;
    return it->second;
  }
  std::optional<int64_t> tty_last_use(std::string_view tty) override {
    auto it = ttys.find(std::string(tty));
    if (it == ttys.end())
      return std::nullopt;
    return it->second;
  }
  std::vector<std::string> opened;
  std::vector<std::pair<std::string, std::string>> closed;
  std::vector<std::string> ended;
  std::map<pid_t, uint64_t> processes;
  std::map<std::string, int64_t> ttys;
};

class RecordingListener final : public SessionListener {
 public:
  void session_removed(const SessionRecord& s) override { removed.push_back(s.id); }
  std::vector<std::string> removed;
};

struct Env {
  explicit Env(Config cfg = Config()) : config(std::move(cfg)) {
    char tmpl[] = "/tmp/mfad-sessions-test-XXXXXX";
    assert_non_null(mkdtemp(tmpl));
    dir = tmpl;
    auto opened = SqliteStore::open(dir + "/mfad.db", clock);
    assert_true(opened.ok());
    store = std::move(opened).value();
    audit = std::make_unique<AuditLog>(*store, clock);
    std::vector<uint8_t> master(32, 7);
    auto s = Sealer::create(master);
    assert_true(s.ok());
    sealer.emplace(std::move(s).value());
    hash_key = SecureBytes(32);
    auth = std::make_unique<Authenticator>(
        AuthenticatorDeps{config, *store, *audit, *sealer, hash_key, clock, users, &sink});
    registry = std::make_unique<SessionRegistry>(
        SessionDeps{config, *store, *audit, clock, users, *auth, effects, &sink});
    audit->set_observer([this](const AuditEvent& e) { registry->observe(e); });
  }
  ~Env() {
    registry.reset();
    auth.reset();
    audit.reset();
    store.reset();
    std::error_code ec;
    std::filesystem::remove_all(dir, ec);
  }

  // A session of user led by pid (alive), from rhost.
  Result<std::string> open(const std::string& user, pid_t pid, const std::string& rhost = "h1",
                           const std::string& tty = "pts/1", const std::string& factor = "") {
    effects.processes[pid] = 4242;
    StringMap ctx{{"service", "sshd"},
                  {"rhost", rhost},
                  {"tty", tty},
                  {"ruser", ""},
                  {"leader_pid", std::to_string(pid)}};
    if (!factor.empty())
      ctx["factor"] = factor;
    auto r = registry->open(root, user, ctx);
    assert_true(store->flush().ok());
    clock.advance_usec(1000);
    return r;
  }
  std::vector<SessionRecord> list(const std::string& user = "") {
    auto r = store->list_sessions(user);
    assert_true(r.ok());
    return *r;
  }
  // The newest audit row of kind.
  AuditRecord last_audit(const std::string& kind) {
    AuditFilter f;
    f.limit = 10000;
    auto rows = store->query_audit(f);
    assert_true(rows.ok());
    for (auto it = rows->rbegin(); it != rows->rend(); ++it) {
      if (it->kind == kind)
        return *it;
    }
    fail_msg("no %s row", kind.c_str());
    return {};
  }
  size_t audit_count(const std::string& kind, const std::string& reason = "") {
    AuditFilter f;
    f.limit = 10000;
    auto rows = store->query_audit(f);
    assert_true(rows.ok());
    size_t n = 0;
    for (auto& r : *rows)
      n += r.kind == kind && (reason.empty() || r.reason == reason);
    return n;
  }

  std::string dir;
  Config config;
  FakeClock clock;
  FakeUsers users;
  FakeEffects effects;
  RecordingSink sink;
  std::unique_ptr<SqliteStore> store;
  std::unique_ptr<AuditLog> audit;
  std::optional<Sealer> sealer;
  SecureBytes hash_key;
  std::unique_ptr<Authenticator> auth;
  std::unique_ptr<SessionRegistry> registry;
  Caller root{0, 1, ":1.1"};
  Caller alice{kAlice, 2, ":1.2"};
  Caller bob{kBob, 3, ":1.3"};
  Caller carol{kCarol, 4, ":1.4"};
};

void test_open_and_close(void**) {
  Env e;
  auto id = e.open("alice", 100);
  assert_true(id.ok());
  assert_int_equal(id->size(), 32);
  auto rows = e.list("alice");
  assert_int_equal(rows.size(), 1);
  assert_string_equal(rows[0].factor.c_str(), "none");
  assert_int_equal(rows[0].leader_pid, 100);
  assert_int_equal(rows[0].leader_start, 4242);
  assert_true(e.registry->close(e.root, *id).ok());
  assert_true(e.list().empty());
  assert_int_equal(e.registry->close(e.root, *id).error().code, Errc::kNoSuchSession);
  assert_int_equal(e.effects.closed.size(), 1);
  assert_string_equal(e.effects.closed[0].second.c_str(), "closed");
  assert_true(e.effects.ended.empty());  // a close kills nothing
  // The PAM side is root's.
  assert_int_equal(e.registry->open(e.alice, "alice", {}).error().code, Errc::kNotAllowed);
  assert_int_equal(e.registry->close(e.alice, "x").error().code, Errc::kNotAllowed);
}

void test_limit_deny(void**) {
  Config c;
  c.sessions_max_per_user = 2;
  Env e(c);
  assert_true(e.open("alice", 100).ok());
  assert_true(e.open("alice", 101).ok());
  auto third = e.open("alice", 102);
  assert_false(third.ok());
  assert_int_equal(third.error().code, Errc::kSessionLimit);
  assert_int_equal(e.list("alice").size(), 2);
  assert_int_equal(e.audit_count("session.open", "limit"), 1);
  assert_true(e.open("bob", 103).ok());
  // A dead leader does not count.
  e.effects.processes.erase(100);
  assert_true(e.open("alice", 104).ok());
  assert_int_equal(e.list("alice").size(), 2);
  // A pid reused by another process is not the leader.
  e.effects.processes[101] = 9999;
  assert_true(e.open("alice", 105).ok());
}

void test_limit_evict_oldest(void**) {
  Config c;
  c.sessions_max_per_user = 2;
  c.sessions_on_limit = SessionLimitAction::kEvictOldest;
  Env e(c);
  auto first = e.open("alice", 100);
  auto second = e.open("alice", 101);
  auto third = e.open("alice", 102);
  assert_true(first.ok() && second.ok() && third.ok());
  auto rows = e.list("alice");
  assert_int_equal(rows.size(), 2);
  assert_string_equal(rows[0].id.c_str(), second->c_str());
  assert_int_equal(e.effects.ended.size(), 1);
  assert_string_equal(e.effects.ended[0].c_str(), first->c_str());
  assert_string_equal(e.effects.closed[0].second.c_str(), "limit");
}

// Fleet mode's steps: prepare (nothing stored), admit with or without this host's limit, refuse,
// ending at another host's request, and the listener that hears of every end.
void test_steps_for_fleet_mode(void**) {
  Config c;
  c.sessions_max_per_user = 1;
  Env e(c);
  RecordingListener listener;
  e.registry->set_listener(&listener);
  auto ctx = [&](pid_t pid) {
    e.effects.processes[pid] = 4242;
    return StringMap{{"service", "sshd"}, {"rhost", "h1"}, {"leader_pid", std::to_string(pid)}};
  };
  auto first = e.registry->prepare(e.root, "alice", ctx(100));
  assert_true(first.ok());
  assert_int_equal(first->id.size(), 32);
  assert_int_equal(first->leader_start, 4242);
  assert_true(e.list().empty());
  assert_int_equal(e.audit_count("session.open"), 0);
  assert_int_equal(e.registry->prepare(e.alice, "alice", {}).error().code, Errc::kNotAllowed);
  assert_int_equal(e.registry->prepare(e.root, "alice", {{"colour", "red"}}).error().code,
                   Errc::kInvalidArgument);

  // The fleet decided: this host's own limit does not apply.
  assert_true(e.registry->admit(e.root, *first, /*local_limit=*/false).ok());
  auto second = e.registry->prepare(e.root, "alice", ctx(101));
  assert_true(second.ok());
  assert_string_not_equal(second->id.c_str(), first->id.c_str());
  assert_true(e.registry->admit(e.root, *second, false).ok());
  assert_int_equal(e.list("alice").size(), 2);
  assert_int_equal(e.effects.opened.size(), 2);
  // Degraded: this host's limit.
  auto third = e.registry->prepare(e.root, "alice", ctx(102));
  assert_int_equal(e.registry->admit(e.root, *third, true).error().code, Errc::kSessionLimit);
  Error refused = e.registry->refuse(e.root, *third, 7);
  assert_int_equal(refused.code, Errc::kSessionLimit);
  assert_non_null(strstr(refused.message.c_str(), "already has 7 (at most 1)"));
  assert_int_equal(e.audit_count("session.open", "limit"), 2);
  assert_int_equal(e.list("alice").size(), 2);

  // Another host asked: ended as a local termination would be, the request in the audit row.
  assert_true(e.registry
                  ->end_by_id(first->id, SessionEnd::kAdmin, "uid=0 pid=7 :1.5 on host-b",
                              {{"requested_by", "host-b"}})
                  .ok());
  assert_string_equal(e.effects.ended.back().c_str(), first->id.c_str());
  assert_string_equal(e.effects.closed.back().second.c_str(), "admin");
  auto row = e.last_audit("session.terminate");
  assert_string_equal(row.reason.c_str(), "admin");
  assert_string_equal(row.caller.c_str(), "uid=0 pid=7 :1.5 on host-b");
  assert_non_null(strstr(row.details_json.c_str(), "\"requested_by\":\"host-b\""));
  assert_int_equal(e.registry->end_by_id(first->id, SessionEnd::kAdmin, "x", {}).error().code,
                   Errc::kNoSuchSession);
  // Every end reaches the listener: a request, a close, a dead leader.
  assert_true(e.registry->close(e.root, second->id).ok());
  assert_true(e.open("bob", 103).ok());
  e.effects.processes.erase(103);
  assert_true(e.registry->reap("bob").ok());
  assert_int_equal(listener.removed.size(), 3);
  assert_string_equal(listener.removed[0].c_str(), first->id.c_str());
  assert_string_equal(listener.removed[1].c_str(), second->id.c_str());

  // A session of another host ended at a caller's request here: its reason, and an audit row
  // naming the owner.
  assert_true(e.registry->remote_end_reason(e.alice, "alice") == SessionEnd::kUser);
  assert_true(e.registry->remote_end_reason(e.carol, "alice") == SessionEnd::kAdmin);
  assert_true(e.registry->may_see(e.alice, "alice") && e.registry->may_see(e.carol, "alice"));
  assert_false(e.registry->may_see(e.bob, "alice"));
  SessionRecord remote;
  remote.id = "00ff";
  remote.user = "alice";
  assert_true(e.registry->note_remote_end(e.carol, remote, SessionEnd::kAdmin, "host-a").ok());
  row = e.last_audit("session.terminate");
  assert_string_equal(row.reason.c_str(), "admin");
  assert_non_null(strstr(row.details_json.c_str(), "\"host\":\"host-a\""));
  assert_non_null(strstr(row.details_json.c_str(), "\"session\":\"00ff\""));
}

void test_lifetime_and_idle_expiry(void**) {
  Config c;
  c.sessions_max_lifetime_seconds = 100;
  c.sessions_idle_timeout_seconds = 30;
  Env e(c);
  e.effects.ttys["pts/1"] = e.clock.realtime_usec();
  auto busy = e.open("alice", 100, "h1", "pts/1");
  auto idle = e.open("alice", 101, "h1", "pts/2");
  auto notty = e.open("alice", 102, "h1", "");
  e.effects.ttys["pts/2"] = e.clock.realtime_usec();
  auto next = e.registry->expire();
  assert_true(next.ok());
  assert_true(*next > e.clock.realtime_usec());
  e.clock.advance_seconds(20);
  e.effects.ttys["pts/1"] = e.clock.realtime_usec();  // typing
  e.clock.advance_seconds(15);
  assert_true(e.registry->expire().ok());
  assert_true(e.store->flush().ok());
  assert_int_equal(e.list().size(), 2);
  assert_string_equal(e.effects.closed.back().first.c_str(), idle->c_str());
  assert_string_equal(e.effects.closed.back().second.c_str(), "idle");
  e.clock.advance_seconds(70);
  e.effects.ttys["pts/1"] = e.clock.realtime_usec();
  auto none_left = e.registry->expire();
  assert_true(none_left.ok());
  assert_int_equal(*none_left, 0);
  assert_true(e.list().empty());
  assert_int_equal(e.audit_count("session.terminate", "expired"), 2);
  assert_int_equal(e.effects.ended.size(), 3);
  (void)busy;
  (void)notty;
}

void test_authorization(void**) {
  Env e;
  auto a = e.open("alice", 100);
  auto b = e.open("bob", 101);
  assert_int_equal(e.registry->list(e.alice, "alice")->size(), 1);
  assert_int_equal(e.registry->list(e.alice, "bob").error().code, Errc::kNotAllowed);
  assert_int_equal(e.registry->list(e.alice, "").error().code, Errc::kNotAllowed);
  assert_int_equal(e.registry->list(e.carol, "")->size(), 2);
  assert_int_equal(e.registry->list(e.root, "bob")->size(), 1);
  assert_int_equal(e.registry->terminate(e.alice, *b).error().code, Errc::kNoSuchSession);
  assert_true(e.registry->terminate(e.alice, *a).ok());
  assert_true(e.registry->terminate(e.carol, *b).ok());
  assert_int_equal(e.audit_count("session.terminate", "user"), 1);
  assert_int_equal(e.audit_count("session.terminate", "admin"), 1);
  assert_int_equal(e.registry->terminate(e.carol, *b).error().code, Errc::kNoSuchSession);
}

void test_bad_input(void**) {
  Env e;
  StringMap ok{{"service", "sshd"}};
  assert_int_equal(e.registry->open(e.root, "nobody-here", ok).error().code, Errc::kNoSuchUser);
  assert_int_equal(e.registry->open(e.root, "alice", {{"colour", "red"}}).error().code,
                   Errc::kInvalidArgument);
  assert_int_equal(e.registry->open(e.root, "alice", {{"leader_pid", "-1"}}).error().code,
                   Errc::kInvalidArgument);
  assert_int_equal(e.registry->open(e.root, "alice", {{"leader_pid", "77"}}).error().code,
                   Errc::kInvalidArgument);  // no such process
  assert_int_equal(e.registry->open(e.root, "alice", {{"rhost", "a\nb"}}).error().code,
                   Errc::kInvalidArgument);
  assert_int_equal(e.registry->open(e.root, "alice", {{"logind_session", "c1;"}}).error().code,
                   Errc::kInvalidArgument);
  assert_int_equal(e.registry->open(e.root, "alice", {{"factor", "magic"}}).error().code,
                   Errc::kInvalidArgument);
  assert_int_equal(
      e.registry->open(e.root, "alice", {{"rhost", std::string(300, 'h')}}).error().code,
      Errc::kInvalidArgument);
  assert_true(e.list().empty());
}

void test_factor_linking(void**) {
  Env e;
  AuditEvent success{AuditKind::kAuthSuccess, "alice", AuditOutcome::kSuccess,
                     AuditReason::kNone,      "uid=0", {}};
  success.details = {{"service", "sshd"}, {"rhost", "h1"}, {"method", "backup"}};
  assert_true(e.audit->record(success).ok());
  assert_true(e.open("alice", 100, "h2").ok());  // other rhost: not linked
  assert_true(e.open("alice", 101, "h1").ok());  // linked, once
  assert_true(e.open("alice", 102, "h1").ok());
  assert_true(e.open("alice", 103, "h1", "pts/1", "totp").ok());  // the module knew
  auto rows = e.list("alice");
  assert_string_equal(rows[0].factor.c_str(), "none");
  assert_string_equal(rows[1].factor.c_str(), "backup");
  assert_string_equal(rows[2].factor.c_str(), "none");
  assert_string_equal(rows[3].factor.c_str(), "totp");
  // Older than a minute: not linked.
  assert_true(e.audit->record(success).ok());
  e.clock.advance_seconds(61);
  assert_true(e.open("alice", 104, "h1").ok());
  assert_string_equal(e.list("alice").back().factor.c_str(), "none");
}

void test_new_device_events(void**) {
  Env e;
  assert_true(e.open("alice", 100, "h1", "pts/1").ok());
  assert_true(e.open("alice", 101, "h1", "pts/7").ok());  // same kind of tty: same device
  assert_true(e.open("alice", 102, "h2", "pts/1").ok());
  assert_true(e.open("bob", 103, "h1", "pts/1").ok());
  size_t new_devices = 0;
  for (auto& ev : e.sink.events)
    new_devices += ev.kind == "new-device";
  assert_int_equal(new_devices, 3);
  assert_int_equal(e.audit_count("security.new-device"), 3);
  assert_string_equal(SessionRegistry::fingerprint("alice", "h1", "sshd", "pts/1").c_str(),
                      SessionRegistry::fingerprint("alice", "h1", "sshd", "/dev/pts/9").c_str());
  assert_string_not_equal(SessionRegistry::fingerprint("alice", "h1", "sshd", "pts/1").c_str(),
                          SessionRegistry::fingerprint("alice", "h1", "sshd", "tty1").c_str());
}

void test_failure_burst(void**) {
  Env e;
  AuditEvent failure{AuditKind::kAuthFailure, "alice", AuditOutcome::kFailure,
                     AuditReason::kBadCode,   "uid=0", {}};
  failure.details = {{"service", "sshd"}, {"rhost", "203.0.113.9"}};
  for (int i = 0; i < 9; ++i) {
    assert_true(e.audit->record(failure).ok());
    e.clock.advance_seconds(1);
  }
  assert_int_equal(e.audit_count("security.failure-burst"), 0);
  failure.user = "bob";  // a burst counts per rhost, across users
  assert_true(e.audit->record(failure).ok());
  assert_int_equal(e.audit_count("security.failure-burst"), 1);
  assert_true(e.audit->record(failure).ok());  // once per window
  assert_int_equal(e.audit_count("security.failure-burst"), 1);
  assert_string_equal(e.sink.events.back().kind.c_str(), "failure-burst");
  // Slow failures never make a burst.
  failure.details["rhost"] = "198.51.100.1";
  for (int i = 0; i < 20; ++i) {
    assert_true(e.audit->record(failure).ok());
    e.clock.advance_seconds(7);
  }
  assert_int_equal(e.audit_count("security.failure-burst"), 1);
}

void test_sessions_persist(void**) {
  Env e;
  auto id = e.open("alice", 100);
  assert_true(id.ok());
  auto path = e.dir + "/mfad.db";
  e.registry.reset();
  e.auth.reset();
  e.audit.reset();
  e.store.reset();
  auto reopened = SqliteStore::open(path, e.clock);
  assert_true(reopened.ok());
  auto rows = (*reopened)->list_sessions("alice");
  assert_true(rows.ok());
  assert_int_equal(rows->size(), 1);
  assert_string_equal((*rows)[0].id.c_str(), id->c_str());
  assert_true(SqliteStore::schema_version() >= 2);  // sessions came with migration 2
}

// A database of a build that knew only migration 1 (or one from a branch with other numbers):
// every known migration not recorded yet is applied, in order (9 added columns to the sessions
// table that 2 creates: a database without that table has neither recorded).
void test_migration_runner_applies_unrecorded(void**) {
  Env e;
  const std::string path = e.dir + "/mfad.db";
  e.registry.reset();
  e.auth.reset();
  e.audit.reset();
  e.store.reset();
  sqlite3* db = nullptr;
  assert_int_equal(sqlite3_open(path.c_str(), &db), SQLITE_OK);
  assert_int_equal(sqlite3_exec(db,
                                "DROP TABLE sessions; DROP TABLE devices; "
                                "DELETE FROM schema_version WHERE version IN (2, 9);",
                                nullptr, nullptr, nullptr),
                   SQLITE_OK);
  sqlite3_close(db);
  auto reopened = SqliteStore::open(path, e.clock);
  assert_true(reopened.ok());
  assert_true((*reopened)->list_sessions("").ok());
  reopened->reset();
  // Reopening once more applies nothing twice.
  auto again = SqliteStore::open(path, e.clock);
  assert_true(again.ok());
}

}  // namespace

int main() {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_open_and_close),
      cmocka_unit_test(test_limit_deny),
      cmocka_unit_test(test_limit_evict_oldest),
      cmocka_unit_test(test_steps_for_fleet_mode),
      cmocka_unit_test(test_lifetime_and_idle_expiry),
      cmocka_unit_test(test_authorization),
      cmocka_unit_test(test_bad_input),
      cmocka_unit_test(test_factor_linking),
      cmocka_unit_test(test_new_device_events),
      cmocka_unit_test(test_failure_burst),
      cmocka_unit_test(test_sessions_persist),
      cmocka_unit_test(test_migration_runner_applies_unrecorded),
  };
  return cmocka_run_group_tests(tests, nullptr, nullptr);
}

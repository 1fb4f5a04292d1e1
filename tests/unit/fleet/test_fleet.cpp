// Fleet mode below the bus: the Redis keys and record encoding, the Lua scripts against a real
// redis-server started here (Unix socket, ACL user), the async client on sd-event (AUTH, timeouts,
// wrong password), the session primitives, the recorder and the SQLite reconciliation queue.
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <memory>
#include <optional>
#include <string>
#include <vector>

extern "C" {
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>
}

#include "core/clock.hpp"
#include "fleet/keys.hpp"
#include "fleet/user_state.hpp"
#include "fleet/read_cache.hpp"
#include "fleet/recorder.hpp"
#include "fleet/refusal.hpp"
#include "fleet/session_keys.hpp"
#include "core/rate_limiter.hpp"
#include "fleet/redis_client.hpp"
#include "storage/sqlite_store.hpp"
#include "fleet_test_support.hpp"

using namespace mfa;
using namespace mfa::test;

namespace {

class FixedClock final : public Clock {
 public:
  int64_t realtime_usec() const override { return 1764000000000000; }
  uint64_t monotonic_usec() const override { return 1000; }
};

using Loop = RedisLoop;

// --- Pure functions. ---

void test_keys_and_records(void** /*state*/) {
  const auto k = fleet::user_keys("mfad:", "alice");
  assert_string_equal(k.factors.c_str(), "mfad:user:{alice}:factors");
  assert_string_equal(k.watermark.c_str(), "mfad:user:{alice}:watermark");
  assert_string_equal(k.backup.c_str(), "mfad:user:{alice}:backup");
  assert_string_equal(k.limits.c_str(), "mfad:user:{alice}:limits");
  assert_string_equal(fleet::host_terminate_key("x:", "web1").c_str(), "x:host:{web1}:terminate");

  FactorRecord r;
  r.method = Method::kTotp;
  r.pending = true;
  r.sealed = {0, 1, 0xfe, 0xff};
  r.params = "SHA256:8:30";
  r.created_usec = 1700000000123456;
  const std::string field = fleet::factor_field(r.method, r.pending);
  assert_string_equal(field.c_str(), "totp:pending");
  const auto back = fleet::decode_factor(field, fleet::encode_factor(r));
  assert_true(back.has_value());
  assert_true(back->method == Method::kTotp && back->pending);
  assert_true(back->sealed == r.sealed);
  assert_string_equal(back->params.c_str(), "SHA256:8:30");
  assert_int_equal(back->created_usec, r.created_usec);

  // A named TOTP device's field (issue 19); the default device keeps the field "totp".
  r.device = "laptop";
  assert_string_equal(fleet::factor_field(r.method, true, "laptop").c_str(), "totp/laptop:pending");
  assert_string_equal(fleet::factor_field(r.method, false, "default").c_str(), "totp");
  const auto named = fleet::decode_factor("totp/laptop:pending", fleet::encode_factor(r));
  assert_true(named.has_value() && named->device == "laptop" && named->pending);
  assert_true(fleet::decode_factor("totp", fleet::encode_factor(r))->device == "default");
  for (const char* bad : {"totp/", "totp/default", "totp/a b", "sms/laptop", "totp/x/y"})
    assert_false(fleet::decode_factor(bad, fleet::encode_factor(r)).has_value());

  assert_false(fleet::decode_factor("totp", "2|1|00|00").has_value());  // unknown version
  assert_false(fleet::decode_factor("nope", "1|1|00|00").has_value());  // unknown method
  assert_false(fleet::decode_factor("totp", "1|1|0|00").has_value());   // odd hex
  assert_false(fleet::decode_factor("totp", "1|x|00|00").has_value());  // bad number
  assert_false(fleet::decode_factor("totp", "1|1|00|").has_value());    // no sealed record
  assert_false(fleet::decode_factor("sms", "1|1|00").has_value());      // missing field

  const CodeHash h = code_hash(7);
  assert_true(fleet::parse_hash_hex(fleet::hash_hex(h)) == h);
  assert_false(fleet::parse_hash_hex("00").has_value());
}

void test_address_parsing(void** /*state*/) {
  auto u = parse_redis_address("unix:/run/redis/redis.sock");
  assert_true(u.ok());
  assert_string_equal(u->unix_path.c_str(), "/run/redis/redis.sock");
  auto t = parse_redis_address("redis://127.0.0.1:6380");
  assert_true(t.ok());
  assert_string_equal(t->host.c_str(), "127.0.0.1");
  assert_int_equal(t->port, 6380);
  auto v6 = parse_redis_address("redis://[::1]:6379/");
  assert_true(v6.ok());
  assert_string_equal(v6->host.c_str(), "::1");
  assert_int_equal(v6->port, 6379);
  assert_string_equal(v6->describe().c_str(), "redis://[::1]:6379");
  assert_true(t->plaintext() && v6->plaintext() && !u->plaintext());
  auto tls = parse_redis_address("rediss://10.0.0.5:6380");
  assert_true(tls.ok());
  assert_true(tls->tls);
  assert_false(tls->plaintext());
  assert_string_equal(tls->host.c_str(), "10.0.0.5");
  assert_string_equal(tls->describe().c_str(), "rediss://10.0.0.5:6380");
  auto tls6 = parse_redis_address("rediss://[fd00::5]:6379");
  assert_true(tls6.ok() && tls6->tls);
  assert_string_equal(tls6->describe().c_str(), "rediss://[fd00::5]:6379");
  assert_false(parse_redis_address("redisss://10.0.0.5:6379").ok());
  assert_false(parse_redis_address("rediss://10.0.0.5").ok());
  assert_false(parse_redis_address("unix:relative").ok());
  assert_false(parse_redis_address("redis://10.0.0.5:99999").ok());
  assert_false(parse_redis_address("redis://10.0.0.5").ok());  // the port is required
  assert_false(parse_redis_address("http://10.0.0.5:6379").ok());
  assert_false(parse_redis_address("redis://::1:6379").ok());         // IPv6 needs brackets
  assert_false(parse_redis_address("redis://[10.0.0.5]:6379").ok());  // brackets: IPv6 only
  assert_false(parse_redis_address("redis://127.1:6379").ok());       // dotted quads only
  // Names are refused, never looked up (a lookup would block the loop), with a clear message.
  for (const char* name : {"redis://localhost:6379", "redis://redis.example.net:6380"}) {
    auto r = parse_redis_address(name);
    assert_false(r.ok());
    assert_non_null(strstr(r.error().message.c_str(), "is a host name"));
    assert_non_null(strstr(r.error().message.c_str(), "IP addresses only"));
  }
  // Credentials in the address are refused and never echoed.
  auto cred = parse_redis_address("redis://mfad:hunter2@10.0.0.5:6379");
  assert_false(cred.ok());
  assert_null(strstr(cred.error().message.c_str(), "hunter2"));
}

void test_password_file(void** /*state*/) {
  const std::string dir = make_temp_dir();
  const std::string path = dir + "/pw";
  {
    std::ofstream f(path);
    f << "s3cret\nignored\n";
  }
  chmod(path.c_str(), 0640);
  auto loose = read_redis_password_file(path);
  assert_false(loose.ok());
  assert_non_null(strstr(loose.error().message.c_str(), "readable by group or others"));
  assert_null(strstr(loose.error().message.c_str(), "s3cret"));
  chmod(path.c_str(), 0600);
  auto ok = read_redis_password_file(path);
  assert_true(ok.ok());
  assert_true(ok->view() == "s3cret");
  assert_false(read_redis_password_file(dir + "/missing").ok());
  std::filesystem::remove_all(dir);
}

void test_recorder_notes_what_was_consumed(void** /*state*/) {
  const std::string dir = make_temp_dir();
  FixedClock clock;
  auto store = SqliteStore::open(dir + "/mfad.db", clock);
  assert_true(store.ok());
  FleetRecorder rec(**store);
  // Not recording: nothing noted.
  assert_true(*rec.advance_totp_watermark("alice", "default", 5));
  rec.start();
  assert_false(
      *rec.advance_totp_watermark("alice", "default", 5));  // refused locally: not a change
  assert_true(*rec.advance_totp_watermark("alice", "default", 6));
  assert_true(rec.replace_backup_codes("alice", {code_hash(1), code_hash(2)}).ok());
  assert_true(*rec.consume_backup_code("alice", code_hash(1)));
  assert_true(rec.put_limits("alice", LimitState{}).ok());
  FleetChanges c = rec.stop();
  assert_true(c.watermark_advanced == 6u);
  assert_true(c.backup_consumed == code_hash(1));
  assert_true(c.backup_replaced && c.limits_written && c.enrollment_changed());
  assert_false(c.factors_changed || c.user_deleted);
  // A named device's step is noted with its device (issue 19).
  rec.start();
  assert_true(*rec.advance_totp_watermark("alice", "laptop", 7));
  assert_true(rec.set_totp_watermark("alice", "spare", 8).ok());
  c = rec.stop();
  assert_true(c.watermark_advanced == 7u && c.watermark_device == "laptop");
  assert_true(c.watermark_set == 8u && c.watermark_set_device == "spare");
  assert_true(rec.flush().ok());
  store->reset();
  std::filesystem::remove_all(dir);
}

// The fleet's own writes to the cache pass through the recorder unnoted: they are not decisions
// Redis must confirm.
void test_recorder_passes_the_fleet_cache_through(void** /*state*/) {
  const std::string dir = make_temp_dir();
  FixedClock clock;
  auto store = SqliteStore::open(dir + "/mfad.db", clock);
  assert_true(store.ok());
  FleetRecorder rec(**store);
  rec.start();
  assert_true(rec.queue_reconcile({0, "alice", "watermark", 9, std::nullopt, 0}).ok());
  assert_true(rec.replace_sms_sends("alice", 0, {{std::string(64, 'a'), 5}}).ok());
  FleetChanges c = rec.stop();
  assert_false(c.enrollment_changed() || c.limits_written || c.watermark_advanced);
  auto items = (*store)->list_reconcile(10);
  assert_true(items.ok() && items->size() == 1 && (*items)[0].step == 9u);
  assert_true(rec.delete_reconcile((*items)[0].id).ok());
  assert_true(rec.list_reconcile(10)->empty());
  assert_int_equal((*store)->count_sms_sends("alice", std::string(64, 'a'), 0)->user, 1);
  assert_true(rec.flush().ok());
  store->reset();
  std::filesystem::remove_all(dir);
}

// The rollback high-water marks (fleet_highwater) only move forward, survive a reopen, and go
// with the person; a queued consumption names its write's counter.
void test_highwater_marks_and_unreplicated_items(void** /*state*/) {
  const std::string dir = make_temp_dir();
  const std::string db = dir + "/mfad.db";
  FixedClock clock;
  {
    auto store = SqliteStore::open(db, clock);
    assert_true(store.ok());
    Store& s = **store;
    assert_int_equal(*s.get_fleet_highwater("alice"), 0);
    assert_true(s.raise_fleet_highwater("alice", 500).ok());
    assert_true(s.raise_fleet_highwater("alice", 400).ok());  // never back
    assert_true(s.raise_fleet_highwater("bob", 7).ok());
    assert_false(s.raise_fleet_highwater("alice", UINT64_MAX).ok());
    assert_true(s.queue_reconcile({0, "alice", "backup", 0, code_hash(3), 0, 450}).ok());
    assert_true(s.queue_reconcile({0, "alice", "watermark", 9, std::nullopt, 0, 0}).ok());
    assert_true(s.queue_reconcile({0, "bob", "backup", 0, code_hash(4), 0, 470}).ok());
    assert_true(s.flush().ok());
  }
  auto store = SqliteStore::open(db, clock);
  assert_true(store.ok());
  Store& s = **store;
  assert_int_equal(*s.get_fleet_highwater("alice"), 500);
  auto lost = s.list_unreplicated("alice", 440, 10);
  assert_true(lost.ok() && lost->size() == 1);
  assert_int_equal((*lost)[0].counter, 450);
  assert_true((*lost)[0].hash == code_hash(3));
  assert_true(s.list_unreplicated("alice", 450, 10)->empty());  // that state has the write
  assert_true(s.delete_fleet_highwater("alice").ok());
  assert_int_equal(*s.get_fleet_highwater("alice"), 0);
  assert_int_equal(*s.get_fleet_highwater("bob"), 7);
  assert_true(s.flush().ok());
  store->reset();
  std::filesystem::remove_all(dir);
}

void test_reconcile_queue_and_migration_gaps(void** /*state*/) {
  const std::string dir = make_temp_dir();
  const std::string db = dir + "/mfad.db";
  FixedClock clock;
  {
    auto store = SqliteStore::open(db, clock);
    assert_true(store.ok());
    Store& s = **store;  // as fleet mode uses it: through core's interface
    assert_true(s.queue_reconcile({0, "alice", "backup", 0, code_hash(3), 0}).ok());
    assert_true(s.queue_reconcile({0, "alice", "watermark", 77, std::nullopt, 0}).ok());
    assert_true(s.queue_reconcile({0, "bob", "failures", 0, std::nullopt, 2}).ok());
    assert_true(s.replace_backup_codes("alice", {code_hash(1), code_hash(2)}).ok());
    assert_true(*s.consume_backup_code("alice", code_hash(2)));
    assert_true(s.flush().ok());
    auto unused = s.unused_backup_codes("alice");
    assert_true(unused.ok() && unused->size() == 1 && (*unused)[0] == code_hash(1));
    auto items = s.list_reconcile(10);
    assert_true(items.ok());
    assert_int_equal(items->size(), 3);
    assert_string_equal((*items)[0].kind.c_str(), "backup");
    assert_true((*items)[0].hash == code_hash(3));
    assert_int_equal((*items)[1].step, 77);
    assert_int_equal((*items)[2].count, 2);
    assert_true(s.delete_reconcile((*items)[0].id).ok());
    assert_true(s.flush().ok());
    assert_int_equal(s.list_reconcile(10)->size(), 2);
  }
  // A database from a build without migration 4 (version 1 recorded): 4 is applied, whatever
  // the numbers in between.
  {
    sqlite3* raw = nullptr;
    assert_int_equal(sqlite3_open(db.c_str(), &raw), SQLITE_OK);
    assert_int_equal(sqlite3_exec(raw,
                                  "DROP TABLE fleet_reconcile; DROP TABLE IF EXISTS sessions; "
                                  "DROP TABLE IF EXISTS devices; DROP TABLE IF EXISTS sms_codes; "
                                  "DROP TABLE IF EXISTS sms_sends; "
                                  "DELETE FROM schema_version WHERE version > 1",
                                  nullptr, nullptr, nullptr),
                     SQLITE_OK);
    sqlite3_close(raw);
  }
  auto store = SqliteStore::open(db, clock);
  assert_true(store.ok());
  assert_true((*store)->list_reconcile(10).ok());
  assert_true(SqliteStore::schema_version() >= 4);
  store->reset();
  std::filesystem::remove_all(dir);
}

// --- Against redis-server. ---

void test_client_auth_and_commands(void** /*state*/) {
  Loop l;
  l.wait_ready();
  assert_true(l.states.size() == 1 && l.states[0].first);
  auto r = l.command({"SET", "mfad:probe", "1"});
  assert_true(r.ok() && r->type == RedisReply::Type::kStatus);
  // The ACL user may not touch keys outside the prefix.
  r = l.command({"SET", "other:probe", "1"});
  assert_true(r.ok() && r->is_error());
}

void test_wrong_password_is_refused_not_ready(void** /*state*/) {
  Loop l("wrong-password");
  assert_false(l.run_until([&] { return l.client->ready(); }, 500));
  assert_non_null(strstr(l.client->last_error().c_str(), "refused authentication as mfad"));
  assert_null(strstr(l.client->last_error().c_str(), "wrong-password"));
  auto r = l.command({"PING"});
  assert_false(r.ok());
}

fleet::RemoteSession remote_session(const std::string& id, const std::string& user,
                                    const std::string& host, int64_t started, int64_t expires) {
  fleet::RemoteSession s;
  s.record.id = id;
  s.record.user = user;
  s.record.service = "sshd";
  s.record.rhost = "192.0.2.1";
  s.record.tty = "pts/3";
  s.record.factor = "totp";
  s.record.device = "00ff";
  s.record.leader_pid = 4242;
  s.record.started_usec = started;
  s.record.last_seen_usec = started;
  s.host = host;
  s.expires_usec = expires;
  return s;
}

void test_session_records_and_requests(void** /*state*/) {
  assert_string_equal(fleet::session_records_key("mfad:").c_str(), "mfad:sessions");
  assert_string_equal(fleet::host_sessions_key("x:", "web1").c_str(), "x:host:{web1}:sessions");
  const std::vector<std::string> keys = fleet::session_keys("x:", "alice", "web1");
  assert_int_equal(keys.size(), 3);
  assert_string_equal(keys[0].c_str(), "x:user:{alice}:sessions");
  assert_string_equal(keys[1].c_str(), "x:sessions");
  assert_string_equal(keys[2].c_str(), "x:host:{web1}:sessions");

  auto s = remote_session("0123abcd", "alice", "web-1.example", 1000, 2000);
  s.record.rhost = "caf\xc3\xa9";  // UTF-8 passes through
  s.record.ruser = "\xff";         // bytes that are not UTF-8 are replaced, never thrown on
  s.record.leader_start = 99;      // stays on its host
  auto back = fleet::decode_session(fleet::encode_session(s));
  assert_true(back.has_value());
  assert_string_equal(back->record.id.c_str(), "0123abcd");
  assert_string_equal(back->record.user.c_str(), "alice");
  assert_string_equal(back->host.c_str(), "web-1.example");
  assert_string_equal(back->record.rhost.c_str(), "caf\xc3\xa9");
  assert_string_equal(back->record.ruser.c_str(), "\xef\xbf\xbd");
  assert_int_equal(back->record.leader_pid, 4242);
  assert_int_equal(back->record.leader_start, 0);
  assert_int_equal(back->record.started_usec, 1000);
  assert_int_equal(back->expires_usec, 2000);

  // Outside input: anything malformed is refused whole.
  auto mangled = [&](auto change) {
    auto copy = s;
    change(copy);
    return fleet::decode_session(fleet::encode_session(copy)).has_value();
  };
  assert_false(mangled([](auto& c) { c.record.id = "XYZ"; }));
  assert_false(mangled([](auto& c) { c.record.id = std::string(65, 'a'); }));
  assert_false(mangled([](auto& c) { c.record.user = ""; }));
  assert_false(mangled([](auto& c) { c.host = "a|b"; }));
  assert_false(mangled([](auto& c) { c.host = "{web}"; }));
  assert_false(mangled([](auto& c) { c.record.tty = "pts/1\nforged"; }));
  assert_false(mangled([](auto& c) { c.record.service = std::string(300, 's'); }));
  assert_false(fleet::decode_session("").has_value());
  assert_false(fleet::decode_session("[1]").has_value());
  assert_false(fleet::decode_session("{\"v\":2}").has_value());
  assert_false(
      fleet::decode_session(std::string(fleet::kMaxSessionRecordSize + 1, ' ')).has_value());
  std::string negative = fleet::encode_session(s);
  negative.replace(negative.find("4242"), 4, "-1");
  assert_false(fleet::decode_session(negative).has_value());

  const fleet::TerminationRequest req{"00aa", "admin", "host-b", "uid=0 pid=7 :1.5"};
  auto r = fleet::decode_termination(fleet::encode_termination(req));
  assert_true(r.has_value());
  assert_string_equal(r->session_id.c_str(), "00aa");
  assert_string_equal(r->reason.c_str(), "admin");
  assert_string_equal(r->from_host.c_str(), "host-b");
  assert_string_equal(r->caller.c_str(), "uid=0 pid=7 :1.5");
  for (const char* reason : {"user", "limit"}) {
    auto other = req;
    other.reason = reason;
    assert_true(fleet::decode_termination(fleet::encode_termination(other)).has_value());
  }
  auto bad = req;
  bad.reason = "expired";  // only the owner expires its sessions
  assert_false(fleet::decode_termination(fleet::encode_termination(bad)).has_value());
  bad = req;
  bad.from_host = "";
  assert_false(fleet::decode_termination(fleet::encode_termination(bad)).has_value());
  bad = req;
  bad.caller = std::string(2000, 'c');
  assert_false(fleet::decode_termination(fleet::encode_termination(bad)).has_value());

  // The register script's reply.
  RedisReply reply;
  reply.type = RedisReply::Type::kArray;
  auto integer = [](long long v) {
    RedisReply e;
    e.type = RedisReply::Type::kInteger;
    e.integer = v;
    return e;
  };
  auto string = [](std::string v) {
    RedisReply e;
    e.type = RedisReply::Type::kString;
    e.str = std::move(v);
    return e;
  };
  reply.elements = {integer(1), integer(2),       string("00aa"),  string("host-a"),
                    string(""), string("bad id"), string("host-a")};
  assert_false(fleet::parse_register_reply(reply).ok());  // not (id, host, record) triples
  reply.elements.push_back(string(""));
  auto outcome = fleet::parse_register_reply(reply);
  assert_true(outcome.ok() && outcome->added);
  assert_int_equal(outcome->count, 2);
  assert_int_equal(outcome->evicted.size(), 1);  // the malformed one names nothing to end
  assert_string_equal(outcome->evicted[0].record.id.c_str(), "00aa");
  assert_string_equal(outcome->evicted[0].host.c_str(), "host-a");
  reply.elements = {integer(2), integer(0)};
  assert_false(fleet::parse_register_reply(reply).ok());
}

void test_session_scripts(void** /*state*/) {
  Loop l;
  l.wait_ready();
  const std::string prefix = "mfad:";
  const std::string user_key = fleet::user_keys(prefix, "session-user").sessions;
  const std::string records = fleet::session_records_key(prefix);
  const int64_t now = 1764000000000000;
  auto reg = [&](const fleet::RemoteSession& s, int max, fleet::SessionAdmission mode) {
    auto r =
        l.eval(fleet::session_register_script(), fleet::session_keys(prefix, s.record.user, s.host),
               fleet::session_register_args(s, now, max, mode));
    assert_true(r.ok());
    auto out = fleet::parse_register_reply(*r);
    assert_true(out.ok());
    return *out;
  };
  using fleet::SessionAdmission;
  const int64_t later = now + 3600LL * 1000000;
  // MaxPerUser counts every host's sessions.
  assert_true(reg(remote_session("a1", "session-user", "host-a", now - 300, later), 2,
                  SessionAdmission::kDeny)
                  .added);
  assert_true(reg(remote_session("b1", "session-user", "host-b", now - 200, later), 2,
                  SessionAdmission::kDeny)
                  .added);
  auto denied = reg(remote_session("a2", "session-user", "host-a", now - 100, later), 2,
                    SessionAdmission::kDeny);
  assert_false(denied.added);
  assert_int_equal(denied.count, 2);
  assert_true(l.command({"HEXISTS", records, "a2"})->integer == 0);
  // Registering one's own session again is no new session.
  assert_true(reg(remote_session("b1", "session-user", "host-b", now - 200, later), 2,
                  SessionAdmission::kDeny)
                  .added);
  // evict-oldest: the oldest goes, whatever host owns it, and its record comes back.
  auto evicted = reg(remote_session("b2", "session-user", "host-b", now - 50, later), 2,
                     SessionAdmission::kEvictOldest);
  assert_true(evicted.added);
  assert_int_equal(evicted.evicted.size(), 1);
  assert_string_equal(evicted.evicted[0].record.id.c_str(), "a1");
  assert_string_equal(evicted.evicted[0].host.c_str(), "host-a");
  assert_string_equal(evicted.evicted[0].record.service.c_str(), "sshd");
  assert_int_equal(l.command({"HLEN", user_key})->integer, 2);
  assert_true(l.command({"HEXISTS", records, "a1"})->integer == 0);
  // Reconciliation adds a session that exists whatever the count.
  assert_true(reg(remote_session("b3", "session-user", "host-b", now - 10, later), 2,
                  SessionAdmission::kForce)
                  .added);
  assert_int_equal(l.command({"HLEN", user_key})->integer, 3);
  // An entry past its expiry (its host died with it) stops counting and is removed.
  assert_true(reg(remote_session("dead1", "session-user", "host-dead", now - 100, now - 1), 0,
                  SessionAdmission::kForce)
                  .added);
  auto counted = reg(remote_session("b3", "session-user", "host-b", now - 10, later), 10,
                     SessionAdmission::kDeny);
  assert_int_equal(counted.count, 2);  // b1, b2: not dead1, not b3 itself
  assert_true(l.command({"HEXISTS", records, "dead1"})->integer == 0);

  // Listing: the user's records, every host.
  auto listed = l.eval(fleet::session_list_script(), {user_key, records}, {});
  assert_true(listed.ok() && listed->elements.size() == 3);
  for (const auto& e : listed->elements)
    assert_true(fleet::decode_session(e.str).has_value());
  // The host's own list, for its reconciliation.
  auto own = l.command({"HGETALL", fleet::host_sessions_key(prefix, "host-b")});
  assert_true(own.ok() && own->elements.size() >= 6);

  // Unregistering removes it from every key.
  assert_true(l.eval(fleet::session_unregister_script(),
                     fleet::session_keys(prefix, "session-user", "host-b"), {"b3"})
                  .ok());
  assert_true(l.command({"HEXISTS", user_key, "b3"})->integer == 0);
  assert_true(l.command({"HEXISTS", records, "b3"})->integer == 0);
  assert_true(l.command({"HEXISTS", fleet::host_sessions_key(prefix, "host-b"), "b3"})->integer ==
              0);

  // Termination asked on host A for a session of host B: out of the count at once, queued for B
  // (bounded, with a lifetime), published, taken in order and once.
  const std::string queue = fleet::host_terminate_key(prefix, "host-b");
  for (const char* id : {"b1", "b2", "b9"}) {
    auto r = l.eval(fleet::request_termination_script(), {user_key, records, queue},
                    {id, fleet::encode_termination({id, "admin", "host-a", "uid=0"}), "2", "60"});
    assert_true(r.ok() && !r->is_error());
  }
  assert_int_equal(l.command({"HLEN", user_key})->integer, 0);
  assert_int_equal(l.command({"LLEN", queue})->integer, 2);  // the oldest went
  auto ttl = l.command({"TTL", queue});
  assert_true(ttl->integer > 0 && ttl->integer <= 60);
  auto taken = l.eval(fleet::take_session_terminations_script(), {queue}, {"1"});
  assert_true(taken.ok() && taken->elements.size() == 1);
  assert_string_equal(fleet::decode_termination(taken->elements[0].str)->session_id.c_str(), "b2");
  taken = l.eval(fleet::take_session_terminations_script(), {queue}, {"100"});
  assert_true(taken.ok() && taken->elements.size() == 1);
  taken = l.eval(fleet::take_session_terminations_script(), {queue}, {"100"});
  assert_true(taken.ok() && taken->elements.empty());
}

void test_subscription(void** /*state*/) {
  Loop subscriber;
  Loop publisher;
  int subscribed = 0;
  std::vector<std::string> messages;
  subscriber.client->subscribe(
      "mfad:host:{a}:terminate", [&] { ++subscribed; },
      [&](const std::string& m) { messages.push_back(m); });
  assert_true(subscriber.run_until([&] { return subscribed == 1; }));
  publisher.wait_ready();
  assert_int_equal(publisher.command({"PUBLISH", "mfad:host:{a}:terminate", "one"})->integer, 1);
  assert_int_equal(publisher.command({"PUBLISH", "mfad:host:{b}:terminate", "other"})->integer, 0);
  assert_int_equal(publisher.command({"PUBLISH", "mfad:host:{a}:terminate", "two"})->integer, 1);
  assert_true(subscriber.run_until([&] { return messages.size() == 2; }));
  assert_string_equal(messages[0].c_str(), "one");
  assert_string_equal(messages[1].c_str(), "two");
  // No timeout fires while nothing is published: the subscription is not a pending request.
  assert_false(subscriber.run_until([&] { return !subscriber.client->ready(); }, 400));
  // Outside the ACL's channels: refused (hiredis 0.14 drops the connection on the error), and the
  // client starts over rather than believing it is subscribed.
  Loop refused;
  int refused_subscribed = 0;
  refused.client->subscribe(
      "other:channel", [&] { ++refused_subscribed; }, [](const std::string&) {});
  assert_true(refused.run_until(
      [&] { return strstr(refused.client->last_error().c_str(), "NOPERM") != nullptr; }, 2000));
  assert_int_equal(refused_subscribed, 0);
}

// Degraded mode trusts the cache's "no factor" only for users Redis confirmed since the last sync
// (DegradedNullok=no).
void test_read_cache_confirmed(void** /*state*/) {
  FleetReadCache c;
  const uint64_t t0 = 50000000;
  c.read_done("alice", c.read_started(), t0);
  assert_false(c.confirmed("alice"));  // read without the subscription
  c.watching(true, t0);
  c.read_done("alice", c.read_started(), t0);
  c.read_done("bob", c.read_started(), t0);
  c.invalidate("bob");  // changed on another host since the read
  c.invalidate_all();   // entering degraded mode forgets what is current, not what is confirmed
  c.outage(t0 + 1);
  assert_true(c.confirmed("alice"));
  assert_false(c.confirmed("bob"));
  assert_false(c.confirmed("carol"));
  c.watching(false, t0 + 2);  // the subscription drops with Redis: the outage's view stays
  assert_true(c.confirmed("alice"));
  c.back_online();
  assert_false(c.confirmed("alice"));
  // A subscription lost long before the outage may have missed messages: nobody is confirmed.
  c.watching(true, t0);
  c.read_done("alice", c.read_started(), t0);
  c.watching(false, t0);
  c.outage(t0 + FleetReadCache::kOutageSlackUsec + 1);
  assert_false(c.confirmed("alice"));
}

// Which users' cached state the read cache vouches for (fleet_read_cache.hpp).
void test_read_cache(void** /*state*/) {
  FleetReadCache c;
  const uint64_t t0 = 5000000;
  uint64_t token = c.read_started();
  c.read_done("alice", token, t0);
  assert_false(c.current("alice", t0));  // no subscription yet: nothing is current
  c.watching(true, 0);
  token = c.read_started();
  c.read_done("alice", token, t0);
  assert_true(c.current("alice", t0));
  assert_true(c.current("alice", t0 + FleetReadCache::kMaxAgeUsec));
  assert_false(c.current("alice", t0 + FleetReadCache::kMaxAgeUsec + 1));  // aged out
  assert_false(c.current("bob", t0));
  // An invalidation forgets the user, and a read in flight meanwhile (of anyone) is not trusted.
  token = c.read_started();
  c.invalidate("alice");
  assert_false(c.current("alice", t0));
  c.read_done("bob", token, t0);
  assert_false(c.current("bob", t0));
  c.read_done("bob", c.read_started(), t0);
  assert_true(c.current("bob", t0));
  // The subscription lost: nothing is current, and a read in flight across it is not either.
  token = c.read_started();
  c.watching(false, 0);
  assert_false(c.current("bob", t0));
  c.read_done("bob", token, t0);
  c.read_done("carol", c.read_started(), t0);
  c.watching(true, 0);
  assert_false(c.current("bob", t0) || c.current("carol", t0));
  // Bounded: past kMaxUsers, aged-out entries go first, then everything.
  for (size_t i = 0; i < FleetReadCache::kMaxUsers; ++i)
    c.read_done("u" + std::to_string(i), c.read_started(), t0);
  assert_int_equal(c.size(), FleetReadCache::kMaxUsers);
  const uint64_t later = t0 + FleetReadCache::kMaxAgeUsec + 1;
  c.read_done("dave", c.read_started(), later);
  assert_int_equal(c.size(), 1);
  assert_true(c.current("dave", later));
  c.invalidate_all();
  assert_false(c.current("dave", later));
}

// A PING sent to the frozen group server: it must time out; returns how long that took (ms).
long ping_frozen_server(Loop& l) {
  kill(g_redis_server->pid, SIGSTOP);
  const auto start = std::chrono::steady_clock::now();
  auto r = l.command({"PING"});
  const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                      std::chrono::steady_clock::now() - start)
                      .count();
  kill(g_redis_server->pid, SIGCONT);
  assert_false(r.ok());
  assert_non_null(strstr(r.error().message.c_str(), "timed out"));
  return static_cast<long>(ms);
}

void test_frozen_server_times_out(void** /*state*/) {
  Loop l(kRedisPassword, 100 * 1000);
  l.wait_ready();
  const auto ms = ping_frozen_server(l);
  assert_true(ms >= 90 && ms < 1000);
  assert_false(l.client->ready());
  assert_true(l.states.size() >= 2 && !l.states.back().first);
  // Back with backoff.
  assert_true(l.run_until([&] { return l.client->ready(); }, 5000));
}

// One timer serves every command: a command sent after an earlier one was answered still gets
// its whole timeout, counted from its own sending.
void test_timeout_counts_from_each_command(void** /*state*/) {
  Loop l(kRedisPassword, 150 * 1000);
  l.wait_ready();
  assert_true(l.command({"PING"}).ok());  // arms the timer for its own deadline
  // The loop runs on until the first command's deadline is near.
  const auto later = std::chrono::steady_clock::now() + std::chrono::milliseconds(100);
  assert_true(l.run_until([&] { return std::chrono::steady_clock::now() > later; }, 1000));
  const auto ms = ping_frozen_server(l);
  assert_true(ms >= 140 && ms < 1000);
  assert_true(l.run_until([&] { return l.client->ready(); }, 5000));
}

// Shutdown: a command waiting on a frozen server completes at once with the given reason,
// later ones too, and the client does not reconnect.
void test_close_completes_what_waits(void** /*state*/) {
  Loop l(kRedisPassword, 10 * 1000 * 1000);
  l.wait_ready();
  kill(g_redis_server->pid, SIGSTOP);
  std::optional<Result<RedisReply>> waiting;
  l.client->command({"PING"}, [&](Result<RedisReply> r) { waiting.emplace(std::move(r)); });
  assert_false(l.run_until([&] { return waiting.has_value(); }, 100));
  l.client->close("mfad is shutting down");
  kill(g_redis_server->pid, SIGCONT);
  assert_true(waiting.has_value());
  assert_false(waiting->ok());
  assert_non_null(strstr(waiting->error().message.c_str(), "shutting down"));
  std::optional<Result<RedisReply>> later;
  l.client->command({"PING"}, [&](Result<RedisReply> r) { later.emplace(std::move(r)); });
  assert_true(later.has_value() && !later->ok());
  assert_false(l.run_until([&] { return l.client->ready(); }, 300));
}

// The state record's script (keys.cpp, write_state_script): it writes only over the counter the
// host computed from, else answers the current record; it checks the factor record a success
// rests on; it deletes what dies with the write; the scripts' PUBLISH is best effort.
void test_state_script(void** /*state*/) {
  Loop l(kRedisPassword);
  l.wait_ready();
  const auto k = fleet::user_keys("mfad:", "st1");
  auto write = [&](std::string expected, std::string value, std::string field = "",
                   std::string sha = "", std::vector<std::string> factor_pairs = {},
                   std::string data_key = "") {
    std::vector<std::string> args{
        expected, value, field, sha, "", "st1", "", factor_pairs.empty() ? "" : "1", data_key};
    args.insert(args.end(), factor_pairs.begin(), factor_pairs.end());
    auto r = l.eval(fleet::write_state_script(), {k.state, k.factors, k.data_key}, args);
    assert_true(r.ok() && r->type == RedisReply::Type::kArray && r->elements.size() == 2);
    return std::make_pair(r->elements[0].str, r->elements[1].str);
  };
  const std::string mac(64, 'a');
  const std::string one = "m1|host-a|1|||0|0|0|0|0||" + mac;
  const std::string two = "m1|host-b|2|||0|0|0|0|0||" + mac;
  assert_true(write("0", one).first == "ok");
  // Another host wrote meanwhile: this one computed from counter 0, and gets the record back.
  auto stale = write("0", two);
  assert_string_equal(stale.first.c_str(), "stale");
  assert_string_equal(stale.second.c_str(), one.c_str());
  assert_true(write("1", two, "", "", {"totp", "record-1"}).first == "ok");
  assert_string_equal(l.command({"HGET", k.factors, "totp"})->str.c_str(), "record-1");
  // The success rests on a factor record that is no longer the one in Redis.
  const std::string sha1 = fleet::sha1_hex("record-1");
  auto changed = write("2", "m1|h|3|" + mac, "totp", std::string(40, '0'));
  assert_string_equal(changed.first.c_str(), "factor-changed");
  assert_true(write("2", "", "totp", sha1).first == "ok");  // a check only: nothing written
  assert_string_equal(l.command({"GET", k.state})->str.c_str(), two.c_str());
  // Garbage in Redis is answered as such (the host refuses it), never overwritten.
  (void)l.command({"SET", k.state, "0"});
  auto bad = write("0", one);
  assert_string_equal(bad.first.c_str(), "malformed");
  assert_string_equal(l.command({"GET", k.state})->str.c_str(), "0");
  // The wrapped data key goes in only where Redis holds none: the first host's key stays.
  (void)l.command({"DEL", k.state});
  assert_true(write("0", one, "", "", {"totp", "r"}, "key-a").first == "ok");
  assert_true(write("1", two, "", "", {"totp", "r"}, "key-b").first == "ok");
  assert_string_equal(l.command({"GET", k.data_key})->str.c_str(), "key-a");
}

}  // namespace

int main() {
  const struct CMUnitTest pure[] = {
      cmocka_unit_test(test_keys_and_records),
      cmocka_unit_test(test_read_cache),
      cmocka_unit_test(test_read_cache_confirmed),
      cmocka_unit_test(test_address_parsing),
      cmocka_unit_test(test_password_file),
      cmocka_unit_test(test_recorder_notes_what_was_consumed),
      cmocka_unit_test(test_recorder_passes_the_fleet_cache_through),
      cmocka_unit_test(test_highwater_marks_and_unreplicated_items),
      cmocka_unit_test(test_reconcile_queue_and_migration_gaps),
      cmocka_unit_test(test_session_records_and_requests),
  };
  const struct CMUnitTest with_redis[] = {
      cmocka_unit_test(test_client_auth_and_commands),
      cmocka_unit_test(test_wrong_password_is_refused_not_ready),
      cmocka_unit_test(test_session_scripts),
      cmocka_unit_test(test_state_script),
      cmocka_unit_test(test_subscription),
      cmocka_unit_test(test_frozen_server_times_out),
      cmocka_unit_test(test_timeout_counts_from_each_command),
      cmocka_unit_test(test_close_completes_what_waits),
  };
  int failed = cmocka_run_group_tests_name("fleet", pure, nullptr, nullptr);
  failed += cmocka_run_group_tests_name("fleet-redis", with_redis, redis_group_setup,
                                        redis_group_teardown);
  return failed;
}

// Fleet mode's SMS state below the bus (fleet_sms_keys.hpp): key names, script arguments and
// replies, the reconciliation items, the recorder's SMS notes and the cache of the user's sends;
// then the Lua scripts against a real redis-server started here (send limits that add up across
// hosts, codes used exactly once, tries that add up, the replay of degraded mode's queue).
#include <unistd.h>

#include <chrono>
#include <climits>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

extern "C" {
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>
}

#include "core/clock.hpp"
#include "core/config.hpp"
#include "fleet/keys.hpp"
#include "fleet/recorder.hpp"
#include "fleet/refusal.hpp"
#include "fleet/sms_keys.hpp"
#include "fleet/user_state.hpp"
#include "fleet/redis_client.hpp"
#include "storage/sqlite_store.hpp"
#include "fleet_test_support.hpp"

using namespace mfa;
using namespace mfa::test;

namespace {

constexpr int64_t kUsec = 1000000;
const std::string kPhoneA(64, 'a');
const std::string kPhoneB(64, 'b');

int64_t wall_usec() {
  return std::chrono::duration_cast<std::chrono::microseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

RedisReply str(std::string s) {
  RedisReply r;
  r.type = RedisReply::Type::kString;
  r.str = std::move(s);
  return r;
}

RedisReply array(std::vector<RedisReply> e) {
  RedisReply r;
  r.type = RedisReply::Type::kArray;
  r.elements = std::move(e);
  return r;
}

Config sms_config() {
  Config c;
  c.sms_max_sends_per_window = 2;
  c.sms_max_sends_per_phone = 3;
  c.sms_max_sends_global = 4;
  c.sms_send_window_seconds = 600;
  c.sms_max_attempts_per_code = 3;
  return c;
}

// --- Pure functions. ---

void test_keys_and_arguments(void** /*state*/) {
  const auto k = fleet::sms_send_keys("mfad:", "alice", kPhoneA);
  assert_string_equal(k.user.c_str(), "mfad:{sms}:sends:user:alice");
  assert_string_equal(k.phone.c_str(), ("mfad:{sms}:sends:phone:" + kPhoneA).c_str());
  assert_string_equal(k.all.c_str(), "mfad:{sms}:sends:all");
  assert_string_equal(k.limits.c_str(), "mfad:user:{alice}:state");
  assert_string_equal(fleet::sms_code_key("x:", "bob", "enroll").c_str(),
                      "x:user:{bob}:sms:enroll");
  assert_true(fleet::valid_sms_purpose("login") && fleet::valid_sms_purpose("enroll") &&
              fleet::valid_sms_purpose("step-up"));
  assert_false(fleet::valid_sms_purpose("logout"));
  const auto codes = fleet::sms_code_keys("mfad:", "bob");
  assert_int_equal(codes.size(), 3);
  assert_string_equal(codes[0].c_str(), "mfad:user:{bob}:sms:login");
  assert_string_equal(codes[1].c_str(), "mfad:user:{bob}:sms:enroll");
  assert_string_equal(codes[2].c_str(), "mfad:user:{bob}:sms:step-up");

  Config c = sms_config();
  c.sms_send_window_seconds = 30;  // the local code counts at least a minute
  const auto limits = fleet::sms_limits(c);
  assert_int_equal(limits.window_usec, 60 * kUsec);
  assert_int_equal(limits.max_user, 2);
  assert_int_equal(limits.max_phone, 3);
  assert_int_equal(limits.max_global, 4);

  fleet::SmsSend send{kPhoneA, 1000 * kUsec, 0xdeadbeef};
  auto args = fleet::sms_send_args(send, limits, 1001 * kUsec, true);
  assert_int_equal(args.size(), 10);
  assert_string_equal(args[0].c_str(), std::to_string(941 * kUsec).c_str());  // since
  assert_string_equal(args[1].c_str(), "1000000000");
  assert_string_equal(args[2].c_str(), ("1000000000:deadbeef:" + kPhoneA).c_str());
  assert_string_equal(args[3].c_str(), "1000000000:deadbeef");
  assert_string_equal(args[7].c_str(), "60000");  // TTL: one window
  assert_string_equal(args[8].c_str(), "1");
  assert_string_equal(args[9].c_str(), "0");  // no lock check unless asked
  assert_string_equal(fleet::sms_send_args(send, limits, 0, false)[8].c_str(), "0");
  assert_string_equal(fleet::sms_send_args(send, limits, 0, true, true)[9].c_str(), "1");

  SmsCode code;
  code.hash = code_hash(1);
  code.expires_usec = 1700000000000001;
  auto put = fleet::sms_code_put_args(code, false);
  assert_string_equal(put[0].c_str(), fleet::hash_hex(code.hash).c_str());
  assert_string_equal(put[2].c_str(), "1700000000000");  // PEXPIREAT: never later than x
  assert_string_equal(put[4].c_str(), "replace");
  assert_string_equal(fleet::sms_code_put_args(code, true)[4].c_str(), "merge");
  assert_string_equal(fleet::sms_code_use_args(code.hash, 0)[1].c_str(), "1");
  assert_string_equal(fleet::sms_code_kill_args(code.hash)[1].c_str(),
                      std::to_string(INT_MAX).c_str());
  auto tries = fleet::sms_code_try_args(code.hash, 2, 3);
  assert_string_equal(tries[1].c_str(), "2");
  assert_string_equal(tries[2].c_str(), "3");
}

bool script_says(const LuaScript& script, std::string_view name) {
  return script.body.find("'" + std::string(name) + "'") != std::string::npos;
}

// The refusals' names are what the scripts answer and what the audit rows carry: one table each,
// the scripts spell exactly those, and anything else is a malformed reply.
void test_refusal_names(void** /*state*/) {
  const std::pair<FleetRefusal, const char*> refusals[] = {
      {FleetRefusal::kNone, ""},
      {FleetRefusal::kReplay, "replay-fleet"},
      {FleetRefusal::kConsumedElsewhere, "consumed-elsewhere"},
      {FleetRefusal::kFactorChanged, "factor-changed"},
      {FleetRefusal::kLocked, "locked"},
      {FleetRefusal::kUnrecognised, "unrecognised-refusal"},
  };
  for (const auto& [refusal, name] : refusals) {
    assert_string_equal(fleet_refusal_name(refusal), name);
    assert_true(parse_fleet_refusal(name) == refusal);
  }
  assert_false(parse_fleet_refusal("Locked").has_value());
  // kReplay, kConsumedElsewhere, kFactorChanged, kLocked: the hosts' own (user_state.cpp); the
  // state script answers "factor-changed" for the last.
  assert_true(
      script_says(fleet::write_state_script(), fleet_refusal_name(FleetRefusal::kFactorChanged)));
  assert_true(script_says(fleet::sms_code_use_script(),
                          fleet_refusal_name(FleetRefusal::kConsumedElsewhere)));
  assert_true(script_says(fleet::sms_send_script(), fleet_refusal_name(FleetRefusal::kLocked)));
  const std::pair<SmsSendLimit, const char*> limits[] = {
      {SmsSendLimit::kNone, ""},
      {SmsSendLimit::kUser, "user"},
      {SmsSendLimit::kPhone, "phone"},
      {SmsSendLimit::kGlobal, "global"},
  };
  for (const auto& [limit, name] : limits) {
    assert_string_equal(sms_send_limit_name(limit), name);
    assert_true(parse_sms_send_limit(name) == limit);
    if (limit != SmsSendLimit::kNone)
      assert_true(script_says(fleet::sms_send_script(), name));
  }
  assert_false(fleet::parse_sms_code_reply(array({str("locked"), array({})})).ok());
}

void test_reply_parsing(void** /*state*/) {
  // The send script: the limit, and the user's texts (malformed members skipped).
  auto sent = fleet::parse_sms_send_reply(
      array({str(""), array({str("5:0000000a:" + kPhoneA), str("6:0000000b:" + kPhoneB),
                             str("7:short"), str("x:0:" + kPhoneA), str("8:0:" + kPhoneA + "0"),
                             str("9:0:" + std::string(64, 'G'))})}));
  assert_true(sent.ok());
  assert_true(sent->limit == SmsSendLimit::kNone && sent->refused == FleetRefusal::kNone);
  assert_int_equal(sent->user_sends.size(), 2);
  assert_string_equal(sent->user_sends[1].first.c_str(), kPhoneB.c_str());
  assert_int_equal(sent->user_sends[1].second, 6);
  assert_true(fleet::parse_sms_send_reply(array({str("phone"), array({})}))->limit ==
              SmsSendLimit::kPhone);
  assert_false(fleet::parse_sms_send_reply(array({str("nope"), array({})})).ok());
  // Locked out fleet-wide: the counters come along, for the cache.
  auto locked = fleet::parse_sms_send_reply(
      array({str("locked"), array({}),
             array({str("0"), str("1"), str("1764000000000000"), str("20416"), str("3")})}));
  assert_true(locked.ok() && locked->refused == FleetRefusal::kLocked && locked->limits);
  assert_int_equal(locked->limits->lockout_count, 1);
  assert_int_equal(locked->limits->locked_until_usec, 1764000000000000);
  assert_int_equal(locked->limits->day, 20416);
  assert_int_equal(locked->limits->day_failures, 3);
  assert_false(fleet::parse_sms_send_reply(array({str("locked"), array({})})).ok());
  assert_false(fleet::parse_sms_send_reply(
                   array({str("locked"), array({}), array({str("0"), str("x"), str("1")})}))
                   .ok());
  // Limits ride only with a lock.
  assert_false(fleet::parse_sms_send_reply(array({str(""), array({})}))->limits.has_value());
  assert_false(fleet::parse_sms_send_reply(array({str("")})).ok());
  assert_false(fleet::parse_sms_send_reply(str("OK")).ok());
  // At most 256 texts are taken from a reply.
  std::vector<RedisReply> many;
  for (int i = 0; i < 1000; ++i)
    many.push_back(str(std::to_string(i) + ":0:" + kPhoneA));
  assert_int_equal(fleet::parse_sms_send_reply(array({str(""), array(many)}))->user_sends.size(),
                   256);

  // The code scripts: a refusal and the live code afterwards.
  const std::string h = fleet::hash_hex(code_hash(3));
  auto used = fleet::parse_sms_code_reply(array({str(""), array({})}));
  assert_true(used.ok() && used->refused == FleetRefusal::kNone && !used->code);
  auto refused = fleet::parse_sms_code_reply(
      array({str("consumed-elsewhere"), array({str(h), str("123"), str("2")})}));
  assert_true(refused.ok() && refused->refused == FleetRefusal::kConsumedElsewhere &&
              refused->code);
  assert_true(refused->code->hash == code_hash(3));
  assert_int_equal(refused->code->expires_usec, 123);
  assert_int_equal(refused->code->attempts, 2);
  // A malformed live code is no code (unusable), not an error.
  auto damaged =
      fleet::parse_sms_code_reply(array({str(""), array({str("zz"), str("123"), str("2")})}));
  assert_true(damaged.ok() && !damaged->code);
  assert_false(fleet::parse_sms_code_reply(array({str("what"), array({})})).ok());
  assert_false(fleet::parse_sms_code_reply(array({str(""), array({str(h)})})).ok());

  // HGETALL.
  auto none = fleet::parse_sms_code_hash(array({}));
  assert_true(none.ok() && !*none);
  auto one = fleet::parse_sms_code_hash(
      array({str("a"), str("1"), str("h"), str(h), str("x"), str("99")}));
  assert_true(one.ok() && *one && (*one)->attempts == 1 && (*one)->expires_usec == 99);
  auto bad = fleet::parse_sms_code_hash(
      array({str("h"), str(h), str("x"), str("-1"), str("a"), str("0")}));
  assert_true(bad.ok() && !*bad);
  assert_false(fleet::parse_sms_code_hash(str("ERR")).ok());
}

void test_reconcile_items(void** /*state*/) {
  const Config config = sms_config();
  // A text: the nonce survives the queue's int column, even above INT_MAX.
  fleet::SmsSend send{kPhoneA, 1234 * kUsec, 0xfffffff0};
  auto item = fleet::sms_send_item("alice", send);
  assert_true(item.has_value());
  assert_true(fleet::is_sms_item(*item));
  assert_false(fleet::sms_send_item("alice", {"not-hex", 1, 1}).has_value());

  const std::string dir = make_temp_dir();
  FakeClock clock;
  {
    auto store = SqliteStore::open(dir + "/mfad.db", clock);
    assert_true(store.ok());
    SmsCode code;
    code.hash = code_hash(5);
    code.expires_usec = 5000 * kUsec;
    FleetChanges changes;
    changes.sms_failed = SmsCodeChange{"login", code_hash(5)};
    changes.sms_used = SmsCodeChange{"enroll", code_hash(6)};
    assert_true((*store)->queue_reconcile(*item).ok());
    assert_true((*store)->queue_reconcile(fleet::sms_code_item("alice", "login", code)).ok());
    for (const auto& i : fleet::sms_change_items("alice", changes))
      assert_true((*store)->queue_reconcile(i).ok());
    assert_true(
        (*store)->queue_reconcile(fleet::sms_drop_item("alice", 7000 * kUsec, config)).ok());
    assert_true((*store)->flush().ok());
    auto items = (*store)->list_reconcile(10);
    assert_true(items.ok());
    assert_int_equal(items->size(), 5);
    const char* kinds[] = {"sms-send", "sms-code:login", "sms-try:login", "sms-dead:enroll",
                           "sms-drop"};
    for (size_t i = 0; i < 5; ++i)
      assert_string_equal((*items)[i].kind.c_str(), kinds[i]);
    assert_true(fleet::is_sms_item((*items)[4]));

    auto call = fleet::sms_reconcile_call("mfad:", (*items)[0], config, 2000 * kUsec);
    assert_true(call && call->script == &fleet::sms_send_script());
    assert_string_equal(call->keys[1].c_str(), ("mfad:{sms}:sends:phone:" + kPhoneA).c_str());
    assert_string_equal(call->args[3].c_str(), "1234000000:fffffff0");
    assert_string_equal(call->args[8].c_str(), "0");  // added, not checked
    assert_string_equal(call->args[9].c_str(), "0");  // it went out: a lockout changes nothing
    // Replayed as EVAL: in the order queued, whether Redis has the script cached or not.
    const auto argv = call->eval_argv();
    assert_int_equal(argv.size(), 3 + 4 + 10);
    assert_string_equal(argv[0].c_str(), "EVAL");
    assert_true(argv[1] == fleet::sms_send_script().body);
    assert_string_equal(argv[2].c_str(), "4");
    assert_true(argv[3] == call->keys[0] && argv.back() == call->args.back());
    call = fleet::sms_reconcile_call("mfad:", (*items)[1], config, 0);
    assert_true(call && call->script == &fleet::sms_code_put_script());
    assert_string_equal(call->keys[0].c_str(), "mfad:user:{alice}:sms:login");
    assert_string_equal(call->args[4].c_str(), "merge");
    call = fleet::sms_reconcile_call("mfad:", (*items)[2], config, 0);
    assert_true(call && call->script == &fleet::sms_code_try_script());
    assert_string_equal(call->args[2].c_str(), "3");
    call = fleet::sms_reconcile_call("mfad:", (*items)[3], config, 0);
    assert_true(call && call->script == &fleet::sms_code_use_script());
    assert_string_equal(call->keys[0].c_str(), "mfad:user:{alice}:sms:enroll");
    // Every code of the user, up to those expiring one code lifetime after the change.
    call = fleet::sms_reconcile_call("mfad:", (*items)[4], config, 0);
    assert_true(call && call->script == &fleet::sms_code_drop_script());
    assert_int_equal(call->keys.size(), 3);
    assert_string_equal(call->keys[1].c_str(), "mfad:user:{alice}:sms:enroll");
    assert_string_equal(call->keys[2].c_str(), "mfad:user:{alice}:sms:step-up");
    assert_string_equal(call->args[0].c_str(), std::to_string((7000 + 600) * kUsec).c_str());
  }
  // Malformed rows replay as nothing.
  ReconcileItem odd;
  odd.user = "alice";
  odd.kind = "sms-dead:logout";
  odd.hash = code_hash(1);
  assert_false(fleet::sms_reconcile_call("mfad:", odd, config, 0).has_value());
  odd.kind = "sms-dead:login";
  odd.hash.reset();
  assert_false(fleet::sms_reconcile_call("mfad:", odd, config, 0).has_value());
  odd.kind = "sms-drop";  // no time
  assert_false(fleet::sms_reconcile_call("mfad:", odd, config, 0).has_value());
  odd.kind = "watermark";
  assert_false(fleet::is_sms_item(odd));
  std::filesystem::remove_all(dir);
}

void test_recorder_notes_sms_codes(void** /*state*/) {
  const std::string dir = make_temp_dir();
  FakeClock clock;
  auto store = SqliteStore::open(dir + "/mfad.db", clock);
  assert_true(store.ok());
  FleetRecorder rec(**store);
  SmsCode code;
  code.hash = code_hash(8);
  code.expires_usec = 99 * kUsec;
  rec.start();
  // A fresh code reaches Redis through the gate, not the recorder; sends are forwarded.
  assert_true(rec.put_sms_code("alice", "login", code).ok());
  assert_true(rec.record_sms_send("alice", kPhoneA, 10, 0).ok());
  assert_int_equal(rec.count_sms_sends("alice", kPhoneA, 0)->user, 1);
  FleetChanges c = rec.stop();
  assert_false(c.sms_used || c.sms_failed);
  // A wrong try.
  rec.start();
  code.attempts = 1;
  assert_true(rec.put_sms_code("alice", "login", code).ok());
  c = rec.stop();
  assert_true(c.sms_failed && c.sms_failed->purpose == "login" && c.sms_failed->hash == code.hash);
  assert_false(c.sms_used.has_value());
  // A use: the hash of the code that was live.
  rec.start();
  assert_true(rec.use_sms_code("alice", "login").ok());
  c = rec.stop();
  assert_true(c.sms_used && c.sms_used->hash == code_hash(8));
  assert_false((*rec.get_sms_code("alice", "login")).has_value());
  assert_false(c.enrollment_changed());
  assert_false(c.sms_codes_dropped);
  // A spent or expired code dies alone; a phone removed takes every code along.
  assert_true(rec.put_sms_code("alice", "login", code).ok());
  assert_true(rec.put_sms_code("alice", "enroll", code).ok());
  rec.start();
  assert_true(rec.delete_sms_code("alice", "login").ok());
  assert_false(rec.stop().sms_codes_dropped);
  rec.start();
  assert_true(rec.drop_sms_codes("alice").ok());
  c = rec.stop();
  assert_true(c.sms_codes_dropped && c.enrollment_changed());
  assert_false((*rec.get_sms_code("alice", "enroll")).has_value());
  // Not recording: nothing noted.
  assert_true(rec.put_sms_code("alice", "enroll", code).ok());
  assert_true(rec.use_sms_code("alice", "enroll").ok());
  rec.start();
  assert_false(rec.stop().sms_used.has_value());
  assert_true(rec.flush().ok());
  store->reset();
  std::filesystem::remove_all(dir);
}

void test_cached_sends_follow_the_fleet(void** /*state*/) {
  const std::string dir = make_temp_dir();
  FakeClock clock;
  auto opened = SqliteStore::open(dir + "/mfad.db", clock);
  assert_true(opened.ok());
  SqliteStore& s = **opened;
  assert_true(s.record_sms_send("alice", kPhoneA, 100, 0).ok());
  assert_true(s.record_sms_send("alice", kPhoneA, 200, 0).ok());  // refused by the fleet
  assert_true(s.record_sms_send("bob", kPhoneA, 150, 0).ok());
  // The fleet counts alice's texts at 50, 100 (this host) and 120 (another host, another phone).
  assert_true(
      s.replace_sms_sends("alice", 90, {{kPhoneA, 50}, {kPhoneA, 100}, {kPhoneB, 120}}).ok());
  auto counts = s.count_sms_sends("alice", kPhoneA, 0);
  assert_true(counts.ok());
  assert_int_equal(counts->user, 2);   // 100, 120 (50 is before the window: not cached)
  assert_int_equal(counts->phone, 2);  // alice 100, bob 150
  assert_int_equal(counts->all, 3);
  assert_int_equal(s.count_sms_sends("alice", kPhoneB, 0)->phone, 1);
  assert_true(s.flush().ok());
  opened->reset();
  std::filesystem::remove_all(dir);
}

// The client on a private loop, ready; a call that fails fails the test.
struct Loop : RedisLoop {
  Loop() { wait_ready(); }
  RedisReply eval(const LuaScript& script, std::vector<std::string> keys,
                  std::vector<std::string> args) {
    auto out = RedisLoop::eval(script, std::move(keys), std::move(args));
    assert_true(out.ok());
    assert_false(out->is_error());
    return std::move(*out);
  }
  RedisReply command(std::vector<std::string> args) {
    auto out = RedisLoop::command(std::move(args));
    assert_true(out.ok());
    return std::move(*out);
  }
  // One text of user to phone at now, through the send script ("" = sent).
  std::string send(const std::string& user, const std::string& phone, int64_t now, uint32_t nonce,
                   const fleet::SmsLimits& limits, bool check = true) {
    const auto k = fleet::sms_send_keys("mfad:", user, phone);
    auto r = eval(fleet::sms_send_script(), {k.user, k.phone, k.all, k.limits},
                  fleet::sms_send_args({phone, now, nonce}, limits, now, check, check));
    auto o = fleet::parse_sms_send_reply(r);
    assert_true(o.ok());
    return o->refused == FleetRefusal::kLocked ? fleet_refusal_name(o->refused)
                                               : sms_send_limit_name(o->limit);
  }
  fleet::SmsCodeOutcome code_call(const LuaScript& script, const std::string& key,
                                  std::vector<std::string> args) {
    auto o = fleet::parse_sms_code_reply(eval(script, {key}, std::move(args)));
    assert_true(o.ok());
    return *o;
  }
};

// --- Against redis-server. ---

void test_send_limits_add_up_across_hosts(void** /*state*/) {
  Loop l;
  const fleet::SmsLimits limits = fleet::sms_limits(sms_config());  // user 2, phone 3, global 4
  int64_t t = 1764000000000000;
  // "Host A" and "host B" (two nonces): per user, whatever the host.
  assert_string_equal(l.send("u1", kPhoneA, t, 1, limits).c_str(), "");
  assert_string_equal(l.send("u1", kPhoneA, t + 1, 2, limits).c_str(), "");
  assert_string_equal(l.send("u1", kPhoneA, t + 2, 3, limits).c_str(), "user");
  // Per phone, whatever the account.
  assert_string_equal(l.send("u2", kPhoneA, t + 3, 4, limits).c_str(), "");
  assert_string_equal(l.send("u3", kPhoneA, t + 4, 5, limits).c_str(), "phone");
  // Global: four texts in the window, whoever and wherever.
  assert_string_equal(l.send("u4", kPhoneB, t + 5, 6, limits).c_str(), "");
  assert_string_equal(l.send("u5", kPhoneB, t + 6, 7, limits).c_str(), "global");
  const auto k = fleet::sms_send_keys("mfad:", "u1", kPhoneA);
  assert_int_equal(l.command({"ZCARD", k.user}).integer, 2);
  assert_int_equal(l.command({"ZCARD", k.all}).integer, 4);  // refusals count nothing
  // Every counter expires one window after its last text.
  for (const auto& key : {k.user, k.phone, k.all}) {
    const long long ttl = l.command({"PTTL", key}).integer;
    assert_true(ttl > 590 * 1000 && ttl <= 600 * 1000);
  }
  // The window slides: a window later, the old texts are forgotten.
  t += limits.window_usec + 10;
  assert_string_equal(l.send("u1", kPhoneA, t, 8, limits).c_str(), "");
  assert_int_equal(l.command({"ZCARD", k.user}).integer, 1);
  assert_int_equal(l.command({"ZCARD", k.all}).integer, 1);
  // The reply gives the user's texts for the cache.
  auto r = l.eval(fleet::sms_send_script(), {k.user, k.phone, k.all},
                  fleet::sms_send_args({kPhoneA, t + 1, 9}, limits, t + 1, true));
  auto o = fleet::parse_sms_send_reply(r);
  assert_true(o.ok() && o->user_sends.size() == 2);
  assert_true(o->user_sends[0] == std::make_pair(kPhoneA, t));
}

void test_reconciled_sends_are_added_once(void** /*state*/) {
  Loop l;
  const fleet::SmsLimits limits = fleet::sms_limits(sms_config());
  const int64_t t = 1765000000000000;
  const auto k = fleet::sms_send_keys("mfad:", "r1", kPhoneB);
  assert_string_equal(l.send("r1", kPhoneB, t, 1, limits).c_str(), "");
  assert_string_equal(l.send("r1", kPhoneB, t + 1, 2, limits).c_str(), "");
  // Texts sent while degraded are added whatever the limits (they went out)...
  assert_string_equal(l.send("r1", kPhoneB, t + 2, 3, limits, false).c_str(), "");
  assert_int_equal(l.command({"ZCARD", k.user}).integer, 3);
  // ... once: a replayed item changes nothing.
  assert_string_equal(l.send("r1", kPhoneB, t + 2, 3, limits, false).c_str(), "");
  assert_int_equal(l.command({"ZCARD", k.user}).integer, 3);
  // A text the window has left counts for nothing.
  const auto old = fleet::sms_send_args({kPhoneB, t - limits.window_usec - 1, 4}, limits, t, false);
  (void)l.eval(fleet::sms_send_script(), {k.user, k.phone, k.all}, old);
  assert_int_equal(l.command({"ZCARD", k.user}).integer, 3);
}

void test_a_locked_user_sends_no_login_text(void** /*state*/) {
  Loop l;
  const fleet::SmsLimits limits = fleet::sms_limits(sms_config());
  const int64_t t = 1766000000000000;
  const auto k = fleet::sms_send_keys("mfad:", "l1", kPhoneA);
  assert_string_equal(l.send("l1", kPhoneA, t, 1, limits).c_str(), "");
  // Failures on other hosts locked the user: the state record (user_state.hpp) says so (the
  // script reads it unverified, to refuse only).
  auto state = [&](int64_t lu) {
    fleet::UserState s;
    s.limits = LimitState{0, 1, lu, 20432, 5};
    return "m1|host-x|3|" + fleet::encode_state(s) + "|" + std::string(64, 'a');
  };
  (void)l.command({"SET", k.limits, state(t + 60 * kUsec)});
  auto r = l.eval(fleet::sms_send_script(), {k.user, k.phone, k.all, k.limits},
                  fleet::sms_send_args({kPhoneA, t + 1, 2}, limits, t + 1, true, true));
  auto o = fleet::parse_sms_send_reply(r);
  assert_true(o.ok());
  assert_true(o->refused == FleetRefusal::kLocked && o->limit == SmsSendLimit::kNone);
  assert_true(o->limits && o->limits->locked_until_usec == t + 60 * kUsec);
  assert_int_equal(o->limits->lockout_count, 1);
  assert_int_equal(o->limits->day_failures, 5);
  assert_int_equal(o->user_sends.size(), 1);  // for the cache: the fleet's texts, not this one
  // Nothing counted: a refused text costs no budget.
  assert_int_equal(l.command({"ZCARD", k.user}).integer, 1);
  assert_int_equal(l.command({"ZCARD", k.phone}).integer, 1);
  assert_int_equal(l.command({"ZCARD", k.all}).integer, 1);
  // An enrollment text (no lock check) and a replayed one (went out already) are counted.
  assert_string_equal(l.send("l1", kPhoneA, t + 2, 3, limits, false).c_str(), "");
  assert_int_equal(l.command({"ZCARD", k.user}).integer, 2);
  // Once the lockout is over, the login text goes.
  (void)l.command({"SET", k.limits, state(t + 3)});
  assert_string_equal(l.send("l2", kPhoneB, t + 3, 4, limits).c_str(), "");
  r = l.eval(fleet::sms_send_script(), {k.user, k.phone, k.all, k.limits},
             fleet::sms_send_args({kPhoneA, t + 4, 5}, limits, t + 4, true, true));
  o = fleet::parse_sms_send_reply(r);
  assert_true(o.ok() && o->limit == SmsSendLimit::kUser && o->refused == FleetRefusal::kNone &&
              !o->limits);  // the send limit, not the lock
  // A user who never failed has no limits hash: not locked.
  const auto fresh = fleet::sms_send_keys("mfad:", "l3", kPhoneB);
  r = l.eval(fleet::sms_send_script(), {fresh.user, fresh.phone, fresh.all, fresh.limits},
             fleet::sms_send_args({kPhoneB, t + 5, 6}, limits, t + 5, true, true));
  o = fleet::parse_sms_send_reply(r);
  assert_true(o.ok() && o->limit == SmsSendLimit::kNone);
}

void test_dropped_codes_die(void** /*state*/) {
  Loop l;
  const Config config = sms_config();
  const int64_t now = wall_usec();
  const auto keys = fleet::sms_code_keys("mfad:", "d1");
  SmsCode before;  // texted before the change
  before.hash = code_hash(60);
  before.expires_usec = now + 600 * kUsec;
  SmsCode after = before;  // texted by another host after it
  after.hash = code_hash(61);
  after.expires_usec = now + 601 * kUsec;
  (void)l.eval(fleet::sms_code_put_script(), {keys[0]}, fleet::sms_code_put_args(before, false));
  (void)l.eval(fleet::sms_code_put_script(), {keys[1]}, fleet::sms_code_put_args(after, false));
  // Replayed after an outage: the codes texted before the change die, a later one lives.
  auto call = fleet::sms_reconcile_call("mfad:", fleet::sms_drop_item("d1", now, config), config,
                                        now + 5 * kUsec);
  assert_true(call.has_value());
  assert_int_equal(l.command(call->eval_argv()).integer, 1);
  assert_int_equal(l.command({"EXISTS", keys[0]}).integer, 0);
  assert_int_equal(l.command({"EXISTS", keys[1]}).integer, 1);
  // Replayed again (a failed commit): nothing more.
  assert_int_equal(l.command(call->eval_argv()).integer, 0);
  // Online, the enrollment write takes every code along, atomically (write_state_script).
  const auto u = fleet::user_keys("mfad:", "d1");
  auto write = [&](std::vector<std::string> extra) {
    std::vector<std::string> ks{u.state, u.factors, u.data_key};
    ks.insert(ks.end(), extra.begin(), extra.end());
    (void)l.eval(fleet::write_state_script(), ks, {"0", "", "", "", "", "", "", ""});
  };
  write({});
  assert_int_equal(l.command({"EXISTS", keys[1]}).integer, 1);  // not asked to
  (void)l.eval(fleet::sms_code_put_script(), {keys[0]}, fleet::sms_code_put_args(before, false));
  write(keys);
  assert_int_equal(l.command({"EXISTS", keys[0]}).integer, 0);
  assert_int_equal(l.command({"EXISTS", keys[1]}).integer, 0);
}

void test_a_code_is_used_exactly_once(void** /*state*/) {
  Loop l;
  const std::string key = fleet::sms_code_key("mfad:", "c1", "enroll");
  SmsCode code;
  code.hash = code_hash(20);
  code.expires_usec = wall_usec() + 600 * kUsec;
  assert_int_equal(
      l.eval(fleet::sms_code_put_script(), {key}, fleet::sms_code_put_args(code, false)).integer,
      1);
  const long long ttl = l.command({"PTTL", key}).integer;
  assert_true(ttl > 590 * 1000 && ttl <= 600 * 1000);  // expiry as TTL
  // Host A uses it; host B, which had it in its cache too, is refused.
  auto a = l.code_call(fleet::sms_code_use_script(), key, fleet::sms_code_use_args(code.hash, 3));
  assert_true(a.refused == FleetRefusal::kNone && !a.code);
  auto b = l.code_call(fleet::sms_code_use_script(), key, fleet::sms_code_use_args(code.hash, 3));
  assert_true(b.refused == FleetRefusal::kConsumedElsewhere);
  assert_false(b.code.has_value());
  // A code replaced by a newer text is refused too; the reply names the live one for the cache.
  SmsCode newer = code;
  newer.hash = code_hash(21);
  (void)l.eval(fleet::sms_code_put_script(), {key}, fleet::sms_code_put_args(newer, false));
  auto stale =
      l.code_call(fleet::sms_code_use_script(), key, fleet::sms_code_use_args(code.hash, 3));
  assert_true(stale.refused == FleetRefusal::kConsumedElsewhere);
  assert_true(stale.code && stale.code->hash == newer.hash && stale.code->attempts == 0);
  // Tries spent: refused even with the right code.
  (void)l.command({"HSET", key, "a", "3"});
  auto spent =
      l.code_call(fleet::sms_code_use_script(), key, fleet::sms_code_use_args(newer.hash, 3));
  assert_true(spent.refused == FleetRefusal::kConsumedElsewhere);
  // A dead code (failed text, used while degraded) goes whatever its tries.
  auto killed =
      l.code_call(fleet::sms_code_use_script(), key, fleet::sms_code_kill_args(newer.hash));
  assert_true(killed.refused == FleetRefusal::kNone);
  assert_int_equal(l.command({"EXISTS", key}).integer, 0);
}

void test_wrong_tries_add_up_across_hosts(void** /*state*/) {
  Loop l;
  const std::string key = fleet::sms_code_key("mfad:", "t1", "login");
  SmsCode code;
  code.hash = code_hash(30);
  code.expires_usec = wall_usec() + 600 * kUsec;
  (void)l.eval(fleet::sms_code_put_script(), {key}, fleet::sms_code_put_args(code, false));
  auto a =
      l.code_call(fleet::sms_code_try_script(), key, fleet::sms_code_try_args(code.hash, 1, 3));
  assert_true(a.code && a.code->attempts == 1);
  auto b =
      l.code_call(fleet::sms_code_try_script(), key, fleet::sms_code_try_args(code.hash, 1, 3));
  assert_true(b.code && b.code->attempts == 2 && b.code->expires_usec == code.expires_usec);
  // A try at another code (an older text) changes nothing.
  auto other =
      l.code_call(fleet::sms_code_try_script(), key, fleet::sms_code_try_args(code_hash(31), 1, 3));
  assert_true(other.code && other.code->attempts == 2);
  // The third, on either host, kills it.
  auto last =
      l.code_call(fleet::sms_code_try_script(), key, fleet::sms_code_try_args(code.hash, 1, 3));
  assert_false(last.code.has_value());
  assert_int_equal(l.command({"EXISTS", key}).integer, 0);
  auto none =
      l.code_call(fleet::sms_code_try_script(), key, fleet::sms_code_try_args(code.hash, 1, 3));
  assert_false(none.code.has_value());
}

void test_merge_keeps_the_newer_code(void** /*state*/) {
  Loop l;
  const std::string key = fleet::sms_code_key("mfad:", "m1", "login");
  const int64_t now = wall_usec();
  SmsCode online;
  online.hash = code_hash(40);
  online.expires_usec = now + 600 * kUsec;
  (void)l.eval(fleet::sms_code_put_script(), {key}, fleet::sms_code_put_args(online, false));
  // A code texted offline earlier than the live one does not replace it...
  SmsCode older = online;
  older.hash = code_hash(41);
  older.expires_usec = now + 300 * kUsec;
  assert_int_equal(
      l.eval(fleet::sms_code_put_script(), {key}, fleet::sms_code_put_args(older, true)).integer,
      0);
  auto live = fleet::parse_sms_code_hash(l.command({"HGETALL", key}));
  assert_true(live.ok() && *live && (*live)->hash == online.hash);
  // ... a later one does.
  SmsCode later = online;
  later.hash = code_hash(42);
  later.expires_usec = now + 900 * kUsec;
  assert_int_equal(
      l.eval(fleet::sms_code_put_script(), {key}, fleet::sms_code_put_args(later, true)).integer,
      1);
  live = fleet::parse_sms_code_hash(l.command({"HGETALL", key}));
  assert_true((*live)->hash == later.hash);
  // An expired one is gone at once.
  SmsCode expired = later;
  expired.expires_usec = now - kUsec;
  (void)l.eval(fleet::sms_code_put_script(), {key}, fleet::sms_code_put_args(expired, false));
  assert_int_equal(l.command({"EXISTS", key}).integer, 0);
}

// Degraded mode's queue, replayed as FleetCoordinator::reconcile does (EVAL, in order).
void test_replayed_queue(void** /*state*/) {
  Loop l;
  const Config config = sms_config();
  const int64_t now = wall_usec();
  SmsCode offline;
  offline.hash = code_hash(50);
  offline.expires_usec = now + 600 * kUsec;
  FleetChanges tried;
  tried.sms_failed = SmsCodeChange{"login", offline.hash};
  FleetChanges used;
  used.sms_used = SmsCodeChange{"login", offline.hash};
  std::vector<ReconcileItem> items;
  items.push_back(*fleet::sms_send_item("q1", {kPhoneA, now, 77}));
  items.push_back(fleet::sms_code_item("q1", "login", offline));
  for (const auto& i : fleet::sms_change_items("q1", tried))
    items.push_back(i);
  const std::string key = fleet::sms_code_key("mfad:", "q1", "login");
  for (const auto& item : items) {
    auto call = fleet::sms_reconcile_call("mfad:", item, config, now);
    assert_true(call.has_value());
    assert_false(l.command(call->eval_argv()).is_error());
  }
  assert_int_equal(l.command({"ZCARD", fleet::sms_send_keys("mfad:", "q1", kPhoneA).user}).integer,
                   1);
  auto live = fleet::parse_sms_code_hash(l.command({"HGETALL", key}));
  assert_true(live.ok() && *live && (*live)->hash == offline.hash && (*live)->attempts == 1);
  // Used offline: it stays used.
  for (const auto& item : fleet::sms_change_items("q1", used)) {
    auto call = fleet::sms_reconcile_call("mfad:", item, config, now);
    assert_false(l.command(call->eval_argv()).is_error());
  }
  assert_int_equal(l.command({"EXISTS", key}).integer, 0);
  // Replaying the whole queue again (a failed commit) does not bring it back to life... as long
  // as the item that killed it is replayed too, which the queue's order guarantees.
  for (const auto& item : items) {
    auto call = fleet::sms_reconcile_call("mfad:", item, config, now);
    assert_false(l.command(call->eval_argv()).is_error());
  }
  for (const auto& item : fleet::sms_change_items("q1", used)) {
    auto call = fleet::sms_reconcile_call("mfad:", item, config, now);
    assert_false(l.command(call->eval_argv()).is_error());
  }
  assert_int_equal(l.command({"EXISTS", key}).integer, 0);
  assert_int_equal(l.command({"ZCARD", fleet::sms_send_keys("mfad:", "q1", kPhoneA).user}).integer,
                   1);
}

}  // namespace

int main() {
  const struct CMUnitTest pure[] = {
      cmocka_unit_test(test_keys_and_arguments),
      cmocka_unit_test(test_refusal_names),
      cmocka_unit_test(test_reply_parsing),
      cmocka_unit_test(test_reconcile_items),
      cmocka_unit_test(test_recorder_notes_sms_codes),
      cmocka_unit_test(test_cached_sends_follow_the_fleet),
  };
  const struct CMUnitTest with_redis[] = {
      cmocka_unit_test(test_send_limits_add_up_across_hosts),
      cmocka_unit_test(test_reconciled_sends_are_added_once),
      cmocka_unit_test(test_a_locked_user_sends_no_login_text),
      cmocka_unit_test(test_dropped_codes_die),
      cmocka_unit_test(test_a_code_is_used_exactly_once),
      cmocka_unit_test(test_wrong_tries_add_up_across_hosts),
      cmocka_unit_test(test_merge_keeps_the_newer_code),
      cmocka_unit_test(test_replayed_queue),
  };
  int failed = cmocka_run_group_tests_name("fleet-sms", pure, nullptr, nullptr);
  failed += cmocka_run_group_tests_name("fleet-sms-redis", with_redis, redis_group_setup,
                                        redis_group_teardown);
  return failed;
}

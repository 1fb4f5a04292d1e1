// Fleet mode's SMS state in Redis (docs/fleet.md, "SMS"): the send counters that every mfad of a
// fleet checks before a text leaves, and the pending codes, as keyed hashes only. Key names, the
// Lua scripts that make each operation atomic, their arguments and replies, and the
// reconciliation items of degraded mode. Pure functions, unit-tested without mfad.
//
// Keys (KeyPrefix "mfad:" by default):
//   mfad:{sms}:sends:user:alice   zset  alice's texts in the window: "usec:nonce:phonekey"
//   mfad:{sms}:sends:phone:HEX    zset  the texts to one number ("usec:nonce"); HEX is the keyed
//                                       hash of the number, never the number
//   mfad:{sms}:sends:all          zset  every text of the fleet (MaxSendsGlobal)
//                                       Scores are the send times (usec); one script trims, checks
//                                       and adds to all three (one {sms} hash slot), and each key
//                                       expires one window after its last text. Before a login
//                                       text, the same script reads the user's lockout from
//                                       mfad:user:{alice}:state (user_state.hpp): mfad speaks to
//                                       one Redis, not a Cluster, so the two slots may meet.
//   mfad:user:{alice}:sms:login   hash  h: hex keyed hash of the code, x: expiry (usec),
//   mfad:user:{alice}:sms:enroll        a: wrong tries; the key expires with the code.
//   mfad:user:{alice}:sms:step-up
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/result.hpp"
#include "core/config.hpp"
#include "fleet/recorder.hpp"
#include "fleet/redis_client.hpp"
#include "fleet/refusal.hpp"
#include "core/store.hpp"

namespace mfa::fleet {

struct SmsSendKeys {
  std::string user, phone, all;
  std::string limits;  // the user's state record (user_state.hpp): its lockout, read only
};
SmsSendKeys sms_send_keys(std::string_view prefix, std::string_view user,
                          std::string_view phone_key);
std::string sms_code_key(std::string_view prefix, std::string_view user, std::string_view purpose);
// The keys of every pending code of user (login, enroll): they die with the user's phone.
std::vector<std::string> sms_code_keys(std::string_view prefix, std::string_view user);
bool valid_sms_purpose(std::string_view purpose);  // "login", "enroll" or "step-up"

// The send limits of [SMS], with the local code's window (at least 60 s).
struct SmsLimits {
  int64_t window_usec = 0;
  int max_user = 0;
  int max_phone = 0;
  int max_global = 0;
};
SmsLimits sms_limits(const Config& config);

// One text as the counters see it. The nonce tells apart two texts of the same microsecond and
// makes a replayed reconciliation count the text once.
struct SmsSend {
  std::string phone_key;  // hex keyed hash of the number (64 hex digits)
  int64_t time_usec = 0;
  uint32_t nonce = 0;
};

// check: the limits decide (a live send); false: the text went out while Redis was away and is
// only added (reconciliation). check_lock (a login text): refused, and not counted, while the
// user is locked out fleet-wide, as the local limiter refuses it on one host.
std::vector<std::string> sms_send_args(const SmsSend& send, const SmsLimits& limits,
                                       int64_t now_usec, bool check, bool check_lock = false);

struct SmsSendOutcome {
  // What refuses the text, if anything: a shared send limit, or (a login text) kLocked.
  SmsSendLimit limit = SmsSendLimit::kNone;
  FleetRefusal refused = FleetRefusal::kNone;  // kNone or kLocked
  // The user's texts in the window afterwards (phone key, time), for the cache.
  std::vector<std::pair<std::string, int64_t>> user_sends;
  // kLocked: the user's shared counters, lockout included, for the cache.
  std::optional<LimitState> limits;
};
Result<SmsSendOutcome> parse_sms_send_reply(const RedisReply& reply);

// A pending code: a fresh one replaces the live one; merge (reconciliation of a code texted while
// Redis was away) keeps whichever expires later.
std::vector<std::string> sms_code_put_args(const SmsCode& code, bool merge);
// The code whose hash is `hash` was typed right here: used up unless it is not the live code any
// more, or its tries are spent (refused).
std::vector<std::string> sms_code_use_args(const CodeHash& hash, int max_attempts);
// The code whose hash is `hash` is dead (its text failed; used while degraded): gone, if still
// live (the use script, whatever the tries).
std::vector<std::string> sms_code_kill_args(const CodeHash& hash);
// count wrong tries at the code whose hash is `hash`; at max_attempts it dies.
std::vector<std::string> sms_code_try_args(const CodeHash& hash, int count, int max_attempts);

struct SmsCodeOutcome {
  FleetRefusal refused = FleetRefusal::kNone;  // or kConsumedElsewhere (use only)
  std::optional<SmsCode> code;                 // the live code of (user, purpose) afterwards
};
Result<SmsCodeOutcome> parse_sms_code_reply(const RedisReply& reply);
// HGETALL of a code key: nullopt when there is none, or it is malformed (it is then unusable).
Result<std::optional<SmsCode>> parse_sms_code_hash(const RedisReply& reply);

const LuaScript& sms_send_script();
const LuaScript& sms_code_put_script();
const LuaScript& sms_code_use_script();
const LuaScript& sms_code_try_script();
// KEYS: code keys. ARGV: cut. Deletes each code expiring at or before cut.
const LuaScript& sms_code_drop_script();

// --- Degraded mode: what Redis must learn (fleet_reconcile rows). ---
// "sms-send"          a text: hash = phone key, step = time, count = nonce
// "sms-code:PURPOSE"  a code texted: hash, step = expiry
// "sms-try:PURPOSE"   wrong tries at a code: hash, count
// "sms-dead:PURPOSE"  a code used or whose text failed: hash
// "sms-drop"          every code of the user, as of a time: step = the latest expiry that dies
std::optional<ReconcileItem> sms_send_item(std::string_view user, const SmsSend& send);
ReconcileItem sms_code_item(std::string_view user, std::string_view purpose, const SmsCode& code);
// What a login decided about SMS codes (FleetChanges) that Redis must learn.
std::vector<ReconcileItem> sms_change_items(std::string_view user, const FleetChanges& changes);
ReconcileItem sms_dead_item(std::string_view user, std::string_view purpose, const CodeHash& hash);
// Every pending code of user texted before dropped_usec dies (ResetUser, DisableMethod sms whose
// write to Redis failed). Codes carry their expiry, not their send time: the cut is
// dropped_usec + CodeLifetimeSeconds, so a code another host texted after the change lives on
// as long as the fleet's hosts share CodeLifetimeSeconds.
ReconcileItem sms_drop_item(std::string_view user, int64_t dropped_usec, const Config& config);

struct ScriptCall {
  const LuaScript* script = nullptr;
  std::vector<std::string> keys;
  std::vector<std::string> args;
  // EVAL body numkeys keys... args...: runs in the order it was sent, cached script or not.
  std::vector<std::string> eval_argv() const;
};
bool is_sms_item(const ReconcileItem& item);
// The script that replays an SMS item; nullopt for a malformed one (dropped).
std::optional<ScriptCall> sms_reconcile_call(std::string_view prefix, const ReconcileItem& item,
                                             const Config& config, int64_t now_usec);

}  // namespace mfa::fleet

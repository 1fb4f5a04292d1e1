#include "fleet/sms_keys.hpp"

#include <algorithm>
#include <charconv>
#include <climits>
#include <cstdio>

#include "fleet/keys.hpp"

namespace mfa::fleet {

namespace {

constexpr int64_t kUsecPerSecond = 1000000;
constexpr size_t kPhoneKeyHex = 64;
// Bounds what a reply may make mfad parse and cache (the script returns the newest ones).
constexpr size_t kMaxUserSends = 256;
// sms-dead: delete the code whatever its tries.
constexpr int kAnyAttempts = INT_MAX;

constexpr std::string_view kSendKind = "sms-send";
constexpr std::string_view kCodeKind = "sms-code:";
constexpr std::string_view kTryKind = "sms-try:";
constexpr std::string_view kDeadKind = "sms-dead:";
constexpr std::string_view kDropKind = "sms-drop";

template <typename T>
std::optional<T> to_number(std::string_view s) {
  T v{};
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (s.empty() || ec != std::errc() || p != s.data() + s.size())
    return std::nullopt;
  return v;
}

Error bad_reply(const char* what) {
  return make_error(Errc::kIo, std::string("unexpected Redis reply to ") + what);
}

bool is_hex(std::string_view s) {
  return std::all_of(s.begin(), s.end(),
                     [](char c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'); });
}

std::string nonce_hex(uint32_t nonce) {
  char buf[9];
  std::snprintf(buf, sizeof buf, "%08x", nonce);
  return buf;
}

// h, x, a as the scripts and HGETALL give them; nullopt when any is missing or malformed.
std::optional<SmsCode> code_from_fields(std::string_view h, std::string_view x,
                                        std::string_view a) {
  if (h.size() != 2 * CodeHash{}.size())
    return std::nullopt;
  auto hash = parse_hash_hex(h);
  auto expires = to_number<int64_t>(x);
  auto attempts = to_number<int>(a);
  if (!hash || !expires || !attempts || *expires <= 0 || *attempts < 0)
    return std::nullopt;
  SmsCode c;
  c.hash = *hash;
  c.expires_usec = *expires;
  c.attempts = *attempts;
  return c;
}

Result<std::optional<SmsCode>> parse_state(const RedisReply& state) {
  if (state.type != RedisReply::Type::kArray)
    return bad_reply("an SMS code script (state)");
  if (state.elements.empty())
    return std::optional<SmsCode>();
  if (state.elements.size() != 3)
    return bad_reply("an SMS code script (state)");
  return code_from_fields(state.elements[0].str, state.elements[1].str, state.elements[2].str);
}

std::optional<std::string> item_purpose(std::string_view kind, std::string_view prefix) {
  if (!kind.starts_with(prefix))
    return std::nullopt;
  std::string_view purpose = kind.substr(prefix.size());
  if (!valid_sms_purpose(purpose))
    return std::nullopt;
  return std::string(purpose);
}

}  // namespace

SmsSendKeys sms_send_keys(std::string_view prefix, std::string_view user,
                          std::string_view phone_key) {
  const std::string base = std::string(prefix) + "{sms}:sends:";
  return SmsSendKeys{base + "user:" + redis_user(user), base + "phone:" + std::string(phone_key),
                     base + "all", user_keys(prefix, user).state};
}

std::string sms_code_key(std::string_view prefix, std::string_view user, std::string_view purpose) {
  return std::string(prefix) + "user:{" + redis_user(user) + "}:sms:" + std::string(purpose);
}

std::vector<std::string> sms_code_keys(std::string_view prefix, std::string_view user) {
  std::vector<std::string> keys;
  for (std::string_view purpose : kSmsPurposes)
    keys.push_back(sms_code_key(prefix, user, purpose));
  return keys;
}

bool valid_sms_purpose(std::string_view purpose) {
  return std::ranges::find(kSmsPurposes, purpose) != kSmsPurposes.end();
}

SmsLimits sms_limits(const Config& config) {
  SmsLimits l;
  l.window_usec =
      static_cast<int64_t>(std::max(60, config.sms_send_window_seconds)) * kUsecPerSecond;
  l.max_user = config.sms_max_sends_per_window;
  l.max_phone = config.sms_max_sends_per_phone;
  l.max_global = config.sms_max_sends_global;
  return l;
}

// ARGV: since time member_user member_other max_user max_phone max_global ttl_ms check
// check_lock.
std::vector<std::string> sms_send_args(const SmsSend& send, const SmsLimits& limits,
                                       int64_t now_usec, bool check, bool check_lock) {
  const std::string member = std::to_string(send.time_usec) + ":" + nonce_hex(send.nonce);
  return {std::to_string(now_usec - limits.window_usec),
          std::to_string(send.time_usec),
          member + ":" + send.phone_key,
          member,
          std::to_string(limits.max_user),
          std::to_string(limits.max_phone),
          std::to_string(limits.max_global),
          std::to_string(limits.window_usec / 1000),
          check ? "1" : "0",
          check_lock ? "1" : "0"};
}

Result<SmsSendOutcome> parse_sms_send_reply(const RedisReply& reply) {
  if (reply.type != RedisReply::Type::kArray ||
      (reply.elements.size() != 2 && reply.elements.size() != 3) ||
      reply.elements[1].type != RedisReply::Type::kArray)
    return bad_reply("the SMS send script");
  SmsSendOutcome o;
  const std::string& refusal = reply.elements[0].str;
  if (parse_fleet_refusal(refusal) == FleetRefusal::kLocked) {
    o.refused = FleetRefusal::kLocked;
    if (reply.elements.size() != 3 || reply.elements[2].type != RedisReply::Type::kArray ||
        !(o.limits = parse_limit_values(reply.elements[2].elements)))
      return bad_reply("the SMS send script (limits)");
  } else if (auto limit = parse_sms_send_limit(refusal)) {
    o.limit = *limit;
  } else {
    return bad_reply("the SMS send script (limit)");
  }
  for (const auto& e : reply.elements[1].elements) {
    if (o.user_sends.size() >= kMaxUserSends)
      break;
    // "usec:nonce:phonekey"; anything else is skipped (it cannot be cached, and must not block).
    std::string_view m = e.str;
    const size_t a = m.find(':');
    const size_t b = a == std::string_view::npos ? a : m.find(':', a + 1);
    if (b == std::string_view::npos)
      continue;
    auto time = to_number<int64_t>(m.substr(0, a));
    std::string_view phone = m.substr(b + 1);
    if (!time || phone.size() != kPhoneKeyHex || !is_hex(phone))
      continue;
    o.user_sends.emplace_back(std::string(phone), *time);
  }
  return o;
}

// ARGV: hash expires_usec expires_ms attempts mode. Redis never keeps a code past its expiry.
std::vector<std::string> sms_code_put_args(const SmsCode& code, bool merge) {
  return {hash_hex(code.hash), std::to_string(code.expires_usec),
          std::to_string(code.expires_usec / 1000), std::to_string(code.attempts),
          merge ? "merge" : "replace"};
}

std::vector<std::string> sms_code_use_args(const CodeHash& hash, int max_attempts) {
  return {hash_hex(hash), std::to_string(std::max(1, max_attempts))};
}

std::vector<std::string> sms_code_kill_args(const CodeHash& hash) {
  return sms_code_use_args(hash, kAnyAttempts);
}

std::vector<std::string> sms_code_try_args(const CodeHash& hash, int count, int max_attempts) {
  return {hash_hex(hash), std::to_string(std::max(1, count)),
          std::to_string(std::max(1, max_attempts))};
}

Result<SmsCodeOutcome> parse_sms_code_reply(const RedisReply& reply) {
  if (reply.type != RedisReply::Type::kArray || reply.elements.size() != 2)
    return bad_reply("an SMS code script");
  SmsCodeOutcome o;
  const auto refused = parse_fleet_refusal(reply.elements[0].str);
  if (refused != FleetRefusal::kNone && refused != FleetRefusal::kConsumedElsewhere)
    return bad_reply("an SMS code script (refusal)");
  o.refused = *refused;
  MFA_TRY(code, parse_state(reply.elements[1]));
  o.code = code;
  return o;
}

Result<std::optional<SmsCode>> parse_sms_code_hash(const RedisReply& reply) {
  if (reply.type != RedisReply::Type::kArray)
    return bad_reply("HGETALL of an SMS code");
  std::string_view h, x, a;
  for (size_t i = 0; i + 1 < reply.elements.size(); i += 2) {
    const std::string& k = reply.elements[i].str;
    if (k == "h")
      h = reply.elements[i + 1].str;
    else if (k == "x")
      x = reply.elements[i + 1].str;
    else if (k == "a")
      a = reply.elements[i + 1].str;
  }
  if (reply.elements.empty())
    return std::optional<SmsCode>();
  return code_from_fields(h, x, a);
}

// KEYS: user phone all limits. ARGV as sms_send_args. Times are integers below 2^53 (exact as
// scores and in Lua's doubles). Texts older than the window are trimmed first; a text the window
// has already left (a late reconciliation) counts for nothing. A login text of a user locked
// out fleet-wide is refused before anything is counted: the lockout may have been reached on
// other hosts since this one last read the user's counters, and a locked user must not make
// the fleet pay for texts. The reply then carries the counters (as the confirm script's).
const LuaScript& sms_send_script() {
  static const LuaScript s(R"lua(
local since = ARGV[1]
for i = 1, 3 do redis.call('ZREMRANGEBYSCORE', KEYS[i], '-inf', '(' .. since) end
if ARGV[10] == '1' then
  -- The user's state record (user_state.hpp): m1|HOST|COUNTER|W|B|cf|lc|lu|day|df|F|MAC. Its MAC
  -- is the hosts' to check: here a lockout only refuses a text (fail closed).
  local st = redis.call('GET', KEYS[4]) or ''
  local l = {string.match(st, '^m1|[^|]*|%d+|[^|]*|[^|]*|(%d+)|(%d+)|(%d+)|(%d+)|(%d+)|')}
  if #l ~= 5 then l = {'0', '0', '0', '0', '0'} end
  if tonumber(l[3]) > tonumber(ARGV[2]) then
    return {'locked', redis.call('ZRANGE', KEYS[1], -256, -1), l}
  end
end
local limit = ''
if ARGV[9] == '1' then
  if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[5]) then limit = 'user'
  elseif redis.call('ZCARD', KEYS[2]) >= tonumber(ARGV[6]) then limit = 'phone'
  elseif redis.call('ZCARD', KEYS[3]) >= tonumber(ARGV[7]) then limit = 'global' end
end
if limit == '' and tonumber(ARGV[2]) >= tonumber(since) then
  redis.call('ZADD', KEYS[1], ARGV[2], ARGV[3])
  redis.call('ZADD', KEYS[2], ARGV[2], ARGV[4])
  redis.call('ZADD', KEYS[3], ARGV[2], ARGV[4])
  for i = 1, 3 do redis.call('PEXPIRE', KEYS[i], ARGV[8]) end
end
return {limit, redis.call('ZRANGE', KEYS[1], -256, -1)}
)lua");
  return s;
}

// KEYS: code. ARGV as sms_code_put_args. 1 = stored, 0 = a code expiring as late or later kept.
const LuaScript& sms_code_put_script() {
  static const LuaScript s(R"lua(
if ARGV[5] == 'merge' then
  local x = redis.call('HGET', KEYS[1], 'x')
  if x and tonumber(x) >= tonumber(ARGV[2]) then return 0 end
end
redis.call('DEL', KEYS[1])
redis.call('HSET', KEYS[1], 'h', ARGV[1], 'x', ARGV[2], 'a', ARGV[4])
redis.call('PEXPIREAT', KEYS[1], ARGV[3])
return 1
)lua");
  return s;
}

// KEYS: code. ARGV: hash max_attempts. Exactly once fleet-wide: the code goes only if it is still
// the live one with tries left. (The hashes were compared in constant time by mfad already; here
// equal strings are one interned Lua string.) Returns {refusal, live code afterwards}.
const LuaScript& sms_code_use_script() {
  static const LuaScript s(R"lua(
local c = redis.call('HMGET', KEYS[1], 'h', 'x', 'a')
if not c[1] then return {'consumed-elsewhere', {}} end
if c[1] == ARGV[1] and tonumber(c[3] or '0') < tonumber(ARGV[2]) then
  redis.call('DEL', KEYS[1])
  return {'', {}}
end
return {'consumed-elsewhere', {c[1], c[2] or '', c[3] or ''}}
)lua");
  return s;
}

// KEYS: code. ARGV: hash count max_attempts. Wrong tries on every host add up; the
// max_attempts-th kills the code. A try at a code that is not the live one changes nothing.
const LuaScript& sms_code_try_script() {
  static const LuaScript s(R"lua(
local c = redis.call('HMGET', KEYS[1], 'h', 'x', 'a')
if not c[1] then return {'', {}} end
if c[1] == ARGV[1] then
  local a = redis.call('HINCRBY', KEYS[1], 'a', ARGV[2])
  if a >= tonumber(ARGV[3]) then
    redis.call('DEL', KEYS[1])
    return {'', {}}
  end
  return {'', {c[1], c[2] or '', tostring(a)}}
end
return {'', {c[1], c[2] or '', c[3] or ''}}
)lua");
  return s;
}

// KEYS: code keys. ARGV: cut. A key with no expiry field is garbage and goes too.
const LuaScript& sms_code_drop_script() {
  static const LuaScript s(R"lua(
local n = 0
for i = 1, #KEYS do
  local x = redis.call('HGET', KEYS[i], 'x')
  if (not x) or (tonumber(x) or 0) <= tonumber(ARGV[1]) then
    n = n + redis.call('DEL', KEYS[i])
  end
end
return n
)lua");
  return s;
}

// --- Reconciliation ---

std::optional<ReconcileItem> sms_send_item(std::string_view user, const SmsSend& send) {
  auto phone = parse_hash_hex(send.phone_key);
  if (!phone)
    return std::nullopt;
  ReconcileItem item;
  item.user = std::string(user);
  item.kind = std::string(kSendKind);
  item.step = static_cast<uint64_t>(send.time_usec);
  item.hash = *phone;
  item.count = static_cast<int>(send.nonce);  // modular (C++20); read back as uint32_t
  return item;
}

ReconcileItem sms_code_item(std::string_view user, std::string_view purpose, const SmsCode& code) {
  ReconcileItem item;
  item.user = std::string(user);
  item.kind = std::string(kCodeKind) + std::string(purpose);
  item.step = static_cast<uint64_t>(code.expires_usec);
  item.hash = code.hash;
  item.count = code.attempts;
  return item;
}

ReconcileItem sms_dead_item(std::string_view user, std::string_view purpose, const CodeHash& hash) {
  ReconcileItem item;
  item.user = std::string(user);
  item.kind = std::string(kDeadKind) + std::string(purpose);
  item.hash = hash;
  return item;
}

ReconcileItem sms_drop_item(std::string_view user, int64_t dropped_usec, const Config& config) {
  ReconcileItem item;
  item.user = std::string(user);
  item.kind = std::string(kDropKind);
  item.step = static_cast<uint64_t>(
      dropped_usec +
      static_cast<int64_t>(std::max(1, config.sms_code_lifetime_seconds)) * kUsecPerSecond);
  return item;
}

std::vector<ReconcileItem> sms_change_items(std::string_view user, const FleetChanges& changes) {
  std::vector<ReconcileItem> items;
  if (changes.sms_failed) {
    ReconcileItem item;
    item.user = std::string(user);
    item.kind = std::string(kTryKind) + changes.sms_failed->purpose;
    item.hash = changes.sms_failed->hash;
    item.count = 1;
    items.push_back(std::move(item));
  }
  if (changes.sms_used)
    items.push_back(sms_dead_item(user, changes.sms_used->purpose, changes.sms_used->hash));
  return items;
}

std::vector<std::string> ScriptCall::eval_argv() const {
  std::vector<std::string> argv{"EVAL", script->body, std::to_string(keys.size())};
  argv.insert(argv.end(), keys.begin(), keys.end());
  argv.insert(argv.end(), args.begin(), args.end());
  return argv;
}

bool is_sms_item(const ReconcileItem& item) {
  return item.kind.starts_with("sms-");
}

std::optional<ScriptCall> sms_reconcile_call(std::string_view prefix, const ReconcileItem& item,
                                             const Config& config, int64_t now_usec) {
  ScriptCall call;
  if (item.kind == kDropKind) {
    if (item.step == 0)
      return std::nullopt;
    call.script = &sms_code_drop_script();
    call.keys = sms_code_keys(prefix, item.user);
    call.args = {std::to_string(item.step)};
    return call;
  }
  if (!item.hash)
    return std::nullopt;
  if (item.kind == kSendKind) {
    SmsSend send;
    send.phone_key = hash_hex(*item.hash);
    send.time_usec = static_cast<int64_t>(item.step);
    send.nonce = static_cast<uint32_t>(item.count);
    const auto keys = sms_send_keys(prefix, item.user, send.phone_key);
    call.script = &sms_send_script();
    call.keys = {keys.user, keys.phone, keys.all, keys.limits};
    call.args = sms_send_args(send, sms_limits(config), now_usec, /*check=*/false);
    return call;
  }
  if (auto purpose = item_purpose(item.kind, kCodeKind)) {
    SmsCode code;
    code.hash = *item.hash;
    code.expires_usec = static_cast<int64_t>(item.step);
    code.attempts = std::max(0, item.count);
    call.script = &sms_code_put_script();
    call.keys = {sms_code_key(prefix, item.user, *purpose)};
    call.args = sms_code_put_args(code, /*merge=*/true);
    return call;
  }
  if (auto purpose = item_purpose(item.kind, kTryKind)) {
    call.script = &sms_code_try_script();
    call.keys = {sms_code_key(prefix, item.user, *purpose)};
    call.args = sms_code_try_args(*item.hash, item.count, config.sms_max_attempts_per_code);
    return call;
  }
  if (auto purpose = item_purpose(item.kind, kDeadKind)) {
    call.script = &sms_code_use_script();
    call.keys = {sms_code_key(prefix, item.user, *purpose)};
    call.args = sms_code_kill_args(*item.hash);
    return call;
  }
  return std::nullopt;
}

}  // namespace mfa::fleet

#include "fleet/keys.hpp"

#include <openssl/sha.h>

#include <charconv>
#include <span>

#include "common/crypto.hpp"
#include "core/user_directory.hpp"

namespace mfa::fleet {

namespace {

constexpr size_t kMaxFactorValue = 64 * 1024;
constexpr size_t kMaxRemoteBackupCodes = 100;

std::optional<std::vector<uint8_t>> from_hex(std::string_view hex) {
  if (hex.size() % 2 != 0)
    return std::nullopt;
  std::vector<uint8_t> out(hex.size() / 2);
  for (size_t i = 0; i < out.size(); ++i) {
    unsigned v = 0;
    auto [p, ec] = std::from_chars(hex.data() + 2 * i, hex.data() + 2 * i + 2, v, 16);
    if (ec != std::errc() || p != hex.data() + 2 * i + 2)
      return std::nullopt;
    out[i] = static_cast<uint8_t>(v);
  }
  return out;
}

template <typename T>
std::optional<T> to_number(std::string_view s) {
  T v{};
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc() || p != s.data() + s.size())
    return std::nullopt;
  return v;
}

// Integers come back as integers, or as strings when they were read from a hash.
std::optional<int64_t> reply_int(const RedisReply& r) {
  if (r.type == RedisReply::Type::kInteger)
    return r.integer;
  if (r.type == RedisReply::Type::kString)
    return to_number<int64_t>(r.str);
  return std::nullopt;
}

Error bad_reply(const char* what) {
  return make_error(Errc::kIo, std::string("unexpected Redis reply to ") + what);
}

LimitState limits_from_fields(const std::vector<RedisReply>& flat) {
  LimitState s;
  for (size_t i = 0; i + 1 < flat.size(); i += 2) {
    const std::string& k = flat[i].str;
    const int64_t v = reply_int(flat[i + 1]).value_or(0);
    if (k == "cf")
      s.consecutive_failures = static_cast<int>(v);
    else if (k == "lc")
      s.lockout_count = static_cast<int>(v);
    else if (k == "lu")
      s.locked_until_usec = v;
    else if (k == "day")
      s.day = v;
    else if (k == "df")
      s.day_failures = static_cast<int>(v);
  }
  return s;
}

}  // namespace

std::string redis_user(std::string_view user) {
  static const SystemUserDirectory system_users;
  if (auto name = legacy_owner(system_users, user))
    return std::move(*name);
  return std::string(user);
}

UserKeys user_keys(std::string_view prefix, std::string_view user) {
  const std::string base = std::string(prefix) + "user:{" + redis_user(user) + "}:";
  return UserKeys{base + "factors", base + "watermark", base + "backup",
                  base + "limits",  base + "sessions",  base + "state"};
}

std::string invalidation_channel(std::string_view prefix) {
  return std::string(prefix) + "invalidate";
}

std::string host_terminate_key(std::string_view prefix, std::string_view host) {
  return std::string(prefix) + "host:{" + std::string(host) + "}:terminate";
}

std::string factor_field(Method method, bool pending) {
  return std::string(method_name(method)) + (pending ? ":pending" : "");
}

// "1|created_usec|hex(params)|hex(sealed)"; the field says method and pending.
std::string encode_factor(const FactorRecord& record) {
  return "1|" + std::to_string(record.created_usec) + "|" +
         to_hex(std::span(reinterpret_cast<const uint8_t*>(record.params.data()),
                          record.params.size())) +
         "|" + to_hex(record.sealed);
}

std::optional<FactorRecord> decode_factor(std::string_view field, std::string_view value) {
  if (value.size() > kMaxFactorValue || !value.starts_with("1|"))
    return std::nullopt;
  FactorRecord r;
  std::string_view name = field;
  if (name.ends_with(":pending")) {
    r.pending = true;
    name.remove_suffix(8);
  }
  auto method = parse_method(name);
  if (!method)
    return std::nullopt;
  r.method = *method;
  // Redis holds one TOTP device per user, "default" (docs/fleet.md).
  if (r.method == Method::kTotp)
    r.device = kDefaultTotpDevice;
  std::string_view rest = value.substr(2);
  const size_t a = rest.find('|');
  if (a == std::string_view::npos)
    return std::nullopt;
  const size_t b = rest.find('|', a + 1);
  if (b == std::string_view::npos)
    return std::nullopt;
  auto created = to_number<int64_t>(rest.substr(0, a));
  auto params = from_hex(rest.substr(a + 1, b - a - 1));
  auto sealed = from_hex(rest.substr(b + 1));
  if (!created || !params || !sealed || sealed->empty())
    return std::nullopt;
  r.created_usec = *created;
  r.params.assign(params->begin(), params->end());
  r.sealed = std::move(*sealed);
  return r;
}

std::string hash_hex(const CodeHash& hash) {
  return to_hex(hash);
}

std::optional<CodeHash> parse_hash_hex(std::string_view hex) {
  auto bytes = from_hex(hex);
  if (!bytes || bytes->size() != CodeHash{}.size())
    return std::nullopt;
  CodeHash h;
  std::copy(bytes->begin(), bytes->end(), h.begin());
  return h;
}

Result<RemoteUser> parse_load_reply(const RedisReply& reply) {
  if (reply.type != RedisReply::Type::kArray || reply.elements.size() != 4)
    return bad_reply("the load script");
  const auto& factors = reply.elements[0];
  const auto& watermark = reply.elements[1];
  const auto& backup = reply.elements[2];
  const auto& limits = reply.elements[3];
  RemoteUser u;
  for (size_t i = 0; i + 1 < factors.elements.size(); i += 2) {
    // A record that does not decode is skipped: it cannot be used, and must not block the others.
    if (auto r = decode_factor(factors.elements[i].str, factors.elements[i + 1].str))
      u.factors.push_back(std::move(*r));
  }
  if (!watermark.str.empty()) {
    auto w = to_number<uint64_t>(watermark.str);
    if (!w)
      return bad_reply("the load script (watermark)");
    u.watermark = *w;
  }
  for (const auto& e : backup.elements) {
    if (u.backup.size() >= kMaxRemoteBackupCodes)
      break;
    if (auto h = parse_hash_hex(e.str))
      u.backup.push_back(*h);
  }
  u.has_limits = !limits.elements.empty();
  u.limits = limits_from_fields(limits.elements);
  return u;
}

std::optional<LimitState> parse_limit_values(std::span<const RedisReply> values) {
  if (values.size() != 5)
    return std::nullopt;
  const auto cf = reply_int(values[0]);
  const auto lc = reply_int(values[1]);
  const auto lu = reply_int(values[2]);
  const auto day = reply_int(values[3]);
  const auto df = reply_int(values[4]);
  if (!cf || !lc || !lu || !day || !df)
    return std::nullopt;
  LimitState s;
  s.consecutive_failures = static_cast<int>(*cf);
  s.lockout_count = static_cast<int>(*lc);
  s.locked_until_usec = *lu;
  s.day = *day;
  s.day_failures = static_cast<int>(*df);
  return s;
}

Result<ConfirmOutcome> parse_confirm_reply(const RedisReply& reply) {
  if (reply.type != RedisReply::Type::kArray || reply.elements.size() != 6)
    return bad_reply("the confirm script");
  ConfirmOutcome o;
  // A refusal is a refusal, whatever its name: an unknown one fails closed.
  o.refused = parse_fleet_refusal(reply.elements[0].str).value_or(FleetRefusal::kUnrecognised);
  auto limits = parse_limit_values(std::span<const RedisReply>(reply.elements).subspan(1));
  if (!limits)
    return bad_reply("the confirm script (limits)");
  o.limits = *limits;
  return o;
}

std::vector<std::string> confirm_args(const ConfirmRequest& request, const RatePolicy& policy,
                                      int64_t now_usec) {
  return {request.step ? std::to_string(*request.step) : std::string(),
          request.backup ? hash_hex(*request.backup) : std::string(),
          request.action,
          std::to_string(now_usec),
          std::to_string(policy.max_failures),
          std::to_string(policy.lockout_seconds),
          std::to_string(policy.max_lockout_seconds),
          std::to_string(policy.max_failures_per_day),
          std::to_string(std::max(1, request.fail_count)),
          request.check_lock ? "1" : "",
          request.factor_field,
          request.factor_sha1,
          request.notify_channel,
          request.notify_user};
}

std::vector<std::string> confirm_keys(const UserKeys& keys) {
  return {keys.watermark, keys.backup, keys.limits, keys.factors};
}

std::string factor_fingerprint(const FactorRecord& record) {
  const std::string encoded = encode_factor(record);
  unsigned char digest[SHA_DIGEST_LENGTH];
  SHA1(reinterpret_cast<const unsigned char*>(encoded.data()), encoded.size(), digest);
  return to_hex(digest);
}

// KEYS: factors watermark backup limits.
const LuaScript& load_script() {
  static const LuaScript s(R"lua(
return {redis.call('HGETALL', KEYS[1]), redis.call('GET', KEYS[2]) or '',
        redis.call('SMEMBERS', KEYS[3]), redis.call('HGETALL', KEYS[4])}
)lua");
  return s;
}

// KEYS: watermark backup limits factors. ARGV: step hash action now_usec max_failures
// lockout_seconds max_lockout_seconds max_failures_per_day fail_count check_lock factor_field
// factor_sha1 notify_channel notify_user. The arithmetic is rate_limiter.cpp's (count_attempt +
// apply_failure; record_success), so that a guesser gains nothing by switching hosts. Numbers stay
// below 2^53 (microseconds until the year 2255), exact in Lua's doubles. The user's name is
// published on notify_channel when the lockout changes or the last backup code goes.
//
// A login decided from the state BeginAuthentication read (bus/fleet_calls.cpp) is checked here
// against what another host may have done since, in the same atomic step as its consumption: a
// lockout refuses it before anything is counted or consumed (as a locked user's attempt is,
// locally), and a success whose factor record was removed or replaced is refused and counted.
const LuaScript& confirm_script() {
  static const LuaScript s(R"lua(
local h = redis.call('HMGET', KEYS[3], 'cf', 'lc', 'lu', 'day', 'df')
local cf, lc = tonumber(h[1] or '0'), tonumber(h[2] or '0')
local lu, day, df = tonumber(h[3] or '0'), tonumber(h[4] or '0'), tonumber(h[5] or '0')
local now = tonumber(ARGV[4])
local function outcome(refused)
  return {refused, string.format('%d', cf), string.format('%d', lc), string.format('%d', lu),
          string.format('%d', day), string.format('%d', df)}
end
if ARGV[10] == '1' and lu > now then return outcome('locked') end
local refused = ''
if (ARGV[11] or '') ~= '' then
  local record = redis.call('HGET', KEYS[4], ARGV[11])
  if (not record) or redis.sha1hex(record) ~= ARGV[12] then refused = 'factor-changed' end
end
if refused == '' and ARGV[1] ~= '' then
  local cur = redis.call('GET', KEYS[1])
  if cur and tonumber(cur) >= tonumber(ARGV[1]) then
    refused = 'replay-fleet'
  else
    redis.call('SET', KEYS[1], ARGV[1])
  end
end
local notify = false
if refused == '' and ARGV[2] ~= '' then
  if redis.call('SREM', KEYS[2], ARGV[2]) == 0 then refused = 'consumed-elsewhere'
  elseif redis.call('SCARD', KEYS[2]) == 0 then notify = true end
end
local lu_before = lu
local action = ARGV[3]
if refused ~= '' then action = 'fail' end
local usec_per_day = 86400000000
local today = math.floor(now / usec_per_day)
local maxf, lockout, cap, maxday = tonumber(ARGV[5]), tonumber(ARGV[6]), tonumber(ARGV[7]), tonumber(ARGV[8])
if action == 'fail' then
  for i = 1, tonumber(ARGV[9]) do
    if day ~= today then day = today; df = 0 end
    cf = cf + 1; df = df + 1
    if maxday > 0 and df >= maxday then
      lu = math.max(lu, (today + 1) * usec_per_day); cf = 0
    elseif cf >= maxf then
      local d = lockout
      for j = 1, lc do if d >= cap then break end; d = d * 2 end
      d = math.min(d, cap)
      lu = math.max(lu, now + d * 1000000); lc = lc + 1; cf = 0
    end
  end
elseif action == 'success' then
  if day ~= today then day = today; df = 0 end
  cf = 0; lc = 0
elseif action == 'clear' then
  cf = 0; lc = 0; lu = 0; day = 0; df = 0
end
if action ~= '' then
  redis.call('HSET', KEYS[3], 'cf', string.format('%d', cf), 'lc', string.format('%d', lc),
             'lu', string.format('%d', lu), 'day', string.format('%d', day),
             'df', string.format('%d', df))
end
-- pcall: a refused PUBLISH (an ACL without the channel) must not undo the decision.
if (notify or lu ~= lu_before) and (ARGV[13] or '') ~= '' then
  redis.pcall('PUBLISH', ARGV[13], ARGV[14])
end
return outcome(refused)
)lua");
  return s;
}

// KEYS: factors watermark backup limits sessions, then the SMS codes that die with this change
// (ResetUser, DisableMethod sms: in the same atomic step, so that no code texted before the
// change is left for another host to accept). ARGV: mode ("delete" | "update") watermark
// replace_factors replace_backup nfactors notify_channel notify_user, then nfactors (field, value)
// pairs, then backup hashes. The user's name is published on notify_channel (the read caches).
const LuaScript& put_user_script() {
  static const LuaScript s(R"lua(
for k = 6, #KEYS do redis.call('DEL', KEYS[k]) end
if ARGV[6] ~= '' then redis.pcall('PUBLISH', ARGV[6], ARGV[7]) end
if ARGV[1] == 'delete' then
  redis.call('DEL', KEYS[1], KEYS[2], KEYS[3], KEYS[4])
  return 1
end
local n = tonumber(ARGV[5])
local i = 8
if ARGV[3] == '1' then
  redis.call('DEL', KEYS[1])
  for j = 1, n do redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1]); i = i + 2 end
else
  i = i + 2 * n
end
if ARGV[4] == '1' then
  redis.call('DEL', KEYS[3])
  while i <= #ARGV do redis.call('SADD', KEYS[3], ARGV[i]); i = i + 1 end
end
if ARGV[2] ~= '' then
  local cur = redis.call('GET', KEYS[2])
  if (not cur) or tonumber(cur) < tonumber(ARGV[2]) then redis.call('SET', KEYS[2], ARGV[2]) end
end
return 1
)lua");
  return s;
}

Result<RawUser> parse_raw_load_reply(const RedisReply& reply) {
  if (reply.type != RedisReply::Type::kArray || reply.elements.size() != 3 ||
      reply.elements[0].type != RedisReply::Type::kArray)
    return bad_reply("the load script");
  RawUser u;
  const auto& factors = reply.elements[0].elements;
  if (factors.size() > 2 * kMaxRawFactors)
    return bad_reply("the load script (factors)");
  for (size_t i = 0; i + 1 < factors.size(); i += 2)
    u.factors.emplace_back(factors[i].str, factors[i + 1].str);
  u.state = reply.elements[1].str;
  u.legacy = reply_int(reply.elements[2]).value_or(0) != 0;
  return u;
}

// KEYS: factors state, then the keys of the release before authenticated records (watermark
// backup limits): their presence without a state record is a fleet not yet upgraded.
const LuaScript& load_state_script() {
  static const LuaScript s(R"lua(
return {redis.call('HGETALL', KEYS[1]), redis.call('GET', KEYS[2]) or '',
        redis.call('EXISTS', KEYS[3], KEYS[4], KEYS[5])}
)lua");
  return s;
}

// KEYS: state factors, then keys to delete with this write (the SMS codes that die with it).
// ARGV: expected_counter new_state factor_field factor_sha1 notify_channel notify_user notify
// replace_factors, then (field, value) pairs of the new factors hash. The state is written only
// if the record in Redis has the counter the host computed from (user_state.hpp); otherwise, or
// when the factor record a success rests on is no longer the one the host verified, nothing is
// written and the current state comes back for the host to verify and try again.
const LuaScript& write_state_script() {
  static const LuaScript s(R"lua(
local cur = redis.call('GET', KEYS[1])
local counter = 0
if cur then
  local c = string.match(cur, '^m1|[^|]*|(%d+)|')
  if not c then return {'malformed', cur} end
  counter = tonumber(c)
end
if counter ~= tonumber(ARGV[1]) then return {'stale', cur or ''} end
if ARGV[3] ~= '' then
  local record = redis.call('HGET', KEYS[2], ARGV[3])
  if (not record) or redis.sha1hex(record) ~= ARGV[4] then return {'factor-changed', cur or ''} end
end
for k = 3, #KEYS do redis.call('DEL', KEYS[k]) end
if ARGV[8] == '1' then
  redis.call('DEL', KEYS[2])
  local i = 9
  while i < #ARGV do redis.call('HSET', KEYS[2], ARGV[i], ARGV[i + 1]); i = i + 2 end
end
if ARGV[2] ~= '' then redis.call('SET', KEYS[1], ARGV[2]) end
-- pcall: a refused PUBLISH (an ACL without the channel) must not undo the write.
if ARGV[7] == '1' and ARGV[5] ~= '' then redis.pcall('PUBLISH', ARGV[5], ARGV[6]) end
return {'ok', ''}
)lua");
  return s;
}

}  // namespace mfa::fleet

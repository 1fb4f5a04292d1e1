#include "fleet/keys.hpp"

#include <charconv>
#include <span>

#include "common/crypto.hpp"
#include "core/user_directory.hpp"
#include "core/validation.hpp"

namespace mfa::fleet {

namespace {

constexpr size_t kMaxFactorValue = 64 * 1024;

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

}  // namespace

std::string redis_user(std::string_view user) {
  static const SystemUserDirectory system_users;
  if (auto name = legacy_owner(system_users, user))
    return std::move(*name);
  return std::string(user);
}

UserKeys user_keys(std::string_view prefix, std::string_view user) {
  const std::string base = std::string(prefix) + "user:{" + redis_user(user) + "}:";
  return UserKeys{base + "factors",  base + "watermark", base + "backup", base + "limits",
                  base + "sessions", base + "state",     base + "datakey"};
}

std::string invalidation_channel(std::string_view prefix) {
  return std::string(prefix) + "invalidate";
}

std::string host_terminate_key(std::string_view prefix, std::string_view host) {
  return std::string(prefix) + "host:{" + std::string(host) + "}:terminate";
}

std::string factor_field(Method method, bool pending, std::string_view device) {
  std::string field(method_name(method));
  if (method == Method::kTotp && !device.empty() && device != kDefaultTotpDevice)
    field += "/" + std::string(device);
  return field + (pending ? ":pending" : "");
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
  std::string_view device = kDefaultTotpDevice;
  if (const size_t slash = name.find('/'); slash != std::string_view::npos) {
    device = name.substr(slash + 1);
    name = name.substr(0, slash);
    if (device == kDefaultTotpDevice || !validate_device_name(device).ok())
      return std::nullopt;
  }
  auto method = parse_method(name);
  if (!method || (*method != Method::kTotp && device != kDefaultTotpDevice))
    return std::nullopt;
  r.method = *method;
  if (r.method == Method::kTotp)
    r.device = std::string(device);
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

Result<RawUser> parse_raw_load_reply(const RedisReply& reply) {
  if (reply.type != RedisReply::Type::kArray ||
      (reply.elements.size() != 3 && reply.elements.size() != 4) ||
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
  if (reply.elements.size() == 4)
    u.data_key = reply.elements[3].str;
  return u;
}

// KEYS: factors state, then the keys of the release before authenticated records (watermark
// backup limits): their presence without a state record is a fleet not yet upgraded; then the
// wrapped data key.
const LuaScript& load_state_script() {
  static const LuaScript s(R"lua(
return {redis.call('HGETALL', KEYS[1]), redis.call('GET', KEYS[2]) or '',
        redis.call('EXISTS', KEYS[3], KEYS[4], KEYS[5]), redis.call('GET', KEYS[6]) or ''}
)lua");
  return s;
}

// KEYS: state factors data_key, then keys to delete with this write (the SMS codes that die with
// it). ARGV: expected_counter ("*": an admin's reset, whatever Redis holds) new_state factor_field
// factor_sha1 notify_channel notify_user notify replace_factors data_key (the wrapped key the new
// factors are sealed under, "": none; set only where Redis has none), then (field, value) pairs
// of the new factors hash. The state is written only if the record in Redis has the counter the
// host computed from (user_state.hpp); otherwise, or when the factor record a success rests on is
// no longer the one the host verified, nothing is written and the current state comes back for the
// host to verify and try again.
const LuaScript& write_state_script() {
  static const LuaScript s(R"lua(
local cur = redis.call('GET', KEYS[1])
if ARGV[1] ~= '*' then
  local counter = 0
  if cur then
    local c = string.match(cur, '^m1|[^|]*|(%d+)|')
    if not c then return {'malformed', cur} end
    counter = tonumber(c)
  end
  if counter ~= tonumber(ARGV[1]) then return {'stale', cur or ''} end
end
if ARGV[3] ~= '' then
  local record = redis.call('HGET', KEYS[2], ARGV[3])
  if (not record) or redis.sha1hex(record) ~= ARGV[4] then return {'factor-changed', cur or ''} end
end
for k = 4, #KEYS do redis.call('DEL', KEYS[k]) end
if ARGV[9] and ARGV[9] ~= '' then redis.call('SET', KEYS[3], ARGV[9], 'NX') end
if ARGV[8] == '1' then
  redis.call('DEL', KEYS[2])
  local i = 10
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

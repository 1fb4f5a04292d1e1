#include "fleet/session_keys.hpp"

#include <cstdint>

#include <algorithm>
#include <nlohmann/json.hpp>

#include "common/dbus_names.hpp"
#include "core/config.hpp"
#include "fleet/keys.hpp"

namespace mfa::fleet {

namespace {

using nlohmann::json;

constexpr size_t kMaxField = 256;

bool printable(std::string_view s) {
  for (char c : s) {
    const auto u = static_cast<unsigned char>(c);
    if (u < 0x20 || u == 0x7f)
      return false;
  }
  return true;
}

// A bounded printable string field of j; nullopt when absent, not a string, too long or not
// printable.
std::optional<std::string> text(const json& j, const char* key, size_t max = kMaxField) {
  auto it = j.find(key);
  if (it == j.end() || !it->is_string())
    return std::nullopt;
  const auto& s = it->get_ref<const std::string&>();
  if (s.size() > max || !printable(s))
    return std::nullopt;
  return s;
}

std::optional<int64_t> number(const json& j, const char* key, int64_t max) {
  auto it = j.find(key);
  if (it == j.end() || !it->is_number_integer())
    return std::nullopt;
  const auto v = it->get<int64_t>();
  if (v < 0 || v > max)
    return std::nullopt;
  return v;
}

std::string dump(const json& j) {
  // Fields are printable but need not be UTF-8 (a PAM item is bytes): replace, never throw.
  return j.dump(-1, ' ', false, json::error_handler_t::replace);
}

std::optional<json> parse_object(std::string_view encoded, size_t max) {
  if (encoded.size() > max)
    return std::nullopt;
  json j = json::parse(encoded, nullptr, /*allow_exceptions=*/false);
  if (!j.is_object())
    return std::nullopt;
  return j;
}

int64_t reply_number(const RedisReply& r) {
  return r.type == RedisReply::Type::kInteger ? r.integer : -1;
}

}  // namespace

bool is_session_id(std::string_view id) {
  if (id.empty() || id.size() > kMaxSessionIdSize)
    return false;
  for (char c : id) {
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f')))
      return false;
  }
  return true;
}

std::string session_records_key(std::string_view prefix) {
  return std::string(prefix) + "sessions";
}

std::string host_sessions_key(std::string_view prefix, std::string_view host) {
  return std::string(prefix) + "host:{" + std::string(host) + "}:sessions";
}

std::vector<std::string> session_keys(std::string_view prefix, std::string_view user,
                                      std::string_view host) {
  return {user_keys(prefix, user).sessions, session_records_key(prefix),
          host_sessions_key(prefix, host)};
}

std::string encode_session(const RemoteSession& s) {
  const SessionRecord& r = s.record;
  return dump(json{{"v", 1},
                   {"id", r.id},
                   {"user", r.user},
                   {"host", s.host},
                   {"service", r.service},
                   {"rhost", r.rhost},
                   {"tty", r.tty},
                   {"ruser", r.ruser},
                   {"logind_session", r.logind_session},
                   {"leader_pid", r.leader_pid},
                   {"factor", r.factor},
                   {"device", r.device},
                   {"started", r.started_usec},
                   {"last_seen", r.last_seen_usec},
                   {"expires", s.expires_usec}});
}

std::optional<RemoteSession> decode_session(std::string_view encoded) {
  auto j = parse_object(encoded, kMaxSessionRecordSize);
  if (!j || number(*j, "v", 1) != 1)
    return std::nullopt;
  RemoteSession s;
  SessionRecord& r = s.record;
  auto id = text(*j, "id", kMaxSessionIdSize);
  auto user = text(*j, "user", dbus::kMaxUserNameLength);
  auto host = text(*j, "host", 64);
  if (!id || !is_session_id(*id) || !user || user->empty() || !host || !is_valid_host_id(*host))
    return std::nullopt;
  r.id = std::move(*id);
  r.user = std::move(*user);
  s.host = std::move(*host);
  const std::pair<const char*, std::string*> fields[] = {
      {"service", &r.service}, {"rhost", &r.rhost},   {"tty", &r.tty},
      {"ruser", &r.ruser},     {"factor", &r.factor}, {"logind_session", &r.logind_session},
      {"device", &r.device}};
  for (const auto& [key, out] : fields) {
    auto v = text(*j, key);
    if (!v)
      return std::nullopt;
    *out = std::move(*v);
  }
  constexpr int64_t kMaxTime = int64_t{1} << 53;  // exact in Lua's doubles
  auto pid = number(*j, "leader_pid", 0x7fffffff);
  auto started = number(*j, "started", kMaxTime);
  auto last_seen = number(*j, "last_seen", kMaxTime);
  auto expires = number(*j, "expires", kMaxTime);
  if (!pid || !started || !last_seen || !expires)
    return std::nullopt;
  r.leader_pid = static_cast<uint32_t>(*pid);
  r.started_usec = *started;
  r.last_seen_usec = *last_seen;
  s.expires_usec = *expires;
  return s;
}

std::string encode_termination(const TerminationRequest& request) {
  return dump(json{{"v", 1},
                   {"id", request.session_id},
                   {"reason", request.reason},
                   {"from", request.from_host},
                   {"caller", request.caller},
                   {"user", request.user},
                   {"uid", request.uid}});
}

std::optional<TerminationRequest> decode_termination(std::string_view json_text) {
  auto j = parse_object(json_text, kMaxTerminationRequestSize);
  if (!j || number(*j, "v", 1) != 1)
    return std::nullopt;
  auto id = text(*j, "id", kMaxSessionIdSize);
  auto reason = text(*j, "reason");
  auto from = text(*j, "from", 64);
  auto caller = text(*j, "caller");
  if (!id || !is_session_id(*id) || !reason || !from || !is_valid_host_id(*from) || !caller)
    return std::nullopt;
  if (*reason != "admin" && *reason != "user" && *reason != "limit")
    return std::nullopt;
  auto user = text(*j, "user", 256);
  const int64_t uid = number(*j, "uid", INT32_MAX).value_or(-1);
  if (!user)
    return std::nullopt;
  return TerminationRequest{std::move(*id),     std::move(*reason), std::move(*from),
                            std::move(*caller), std::move(*user),   uid};
}

std::vector<std::string> session_register_args(const RemoteSession& session, int64_t now_usec,
                                               int max, SessionAdmission mode) {
  const char* how = mode == SessionAdmission::kDeny          ? "deny"
                    : mode == SessionAdmission::kEvictOldest ? "evict"
                                                             : "force";
  return {session.record.id,
          session.host,
          std::to_string(session.record.started_usec),
          std::to_string(session.expires_usec),
          std::to_string(now_usec),
          std::to_string(std::max(0, max)),
          how,
          encode_session(session),
          session.record.user};
}

Result<RegisterOutcome> parse_register_reply(const RedisReply& reply) {
  auto bad = [] {
    return make_error(Errc::kIo, "unexpected Redis reply to a session registration");
  };
  if (reply.type != RedisReply::Type::kArray || reply.elements.size() < 2 ||
      (reply.elements.size() - 2) % 3 != 0)
    return bad();
  const int64_t added = reply_number(reply.elements[0]);
  const int64_t count = reply_number(reply.elements[1]);
  if ((added != 0 && added != 1) || count < 0)
    return bad();
  RegisterOutcome out;
  out.added = added == 1;
  out.count = static_cast<size_t>(count);
  for (size_t i = 2; i + 2 < reply.elements.size(); i += 3) {
    const std::string& id = reply.elements[i].str;
    const std::string& host = reply.elements[i + 1].str;
    // An entry another writer left malformed is dropped from the count all the same; it names no
    // session to end.
    if (!is_session_id(id) || !is_valid_host_id(host))
      continue;
    auto victim = decode_session(reply.elements[i + 2].str);
    if (!victim || victim->record.id != id || victim->host != host) {
      victim = RemoteSession{};
      victim->record.id = id;
      victim->host = host;
    }
    out.evicted.push_back(std::move(*victim));
  }
  return out;
}

// KEYS: user sessions, records, host sessions. ARGV: id host opened expires now max mode record
// user. Expired entries of the user go first; the count is of the others. Returns {added, count,
// then id, host, record of each evicted session}.
const LuaScript& session_register_script() {
  static const LuaScript s(R"lua(
local id, host, opened, expires = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
local now, max, mode = tonumber(ARGV[5]), tonumber(ARGV[6]), ARGV[7]
local live = {}
local flat = redis.call('HGETALL', KEYS[1])
for i = 1, #flat, 2 do
  local sid, v = flat[i], flat[i + 1]
  local h, o, e = string.match(v, '^([^|]+)|(%d+)|?(%d*)$')
  if h == nil or (e ~= '' and tonumber(e) > 0 and tonumber(e) <= now) then
    redis.call('HDEL', KEYS[1], sid)
    redis.call('HDEL', KEYS[2], sid)
  elseif sid ~= id then
    live[#live + 1] = {sid, h, tonumber(o)}
  end
end
local out = {0, #live}
if mode ~= 'force' and max > 0 and #live >= max then
  if mode ~= 'evict' then return out end
  table.sort(live, function(a, b)
    if a[3] ~= b[3] then return a[3] < b[3] end
    return a[1] < b[1]
  end)
  for i = 1, #live - max + 1 do
    out[#out + 1] = live[i][1]
    out[#out + 1] = live[i][2]
    out[#out + 1] = redis.call('HGET', KEYS[2], live[i][1]) or ''
    redis.call('HDEL', KEYS[1], live[i][1])
    redis.call('HDEL', KEYS[2], live[i][1])
  end
end
redis.call('HSET', KEYS[1], id, host .. '|' .. opened .. '|' .. expires)
redis.call('HSET', KEYS[2], id, ARGV[8])
redis.call('HSET', KEYS[3], id, ARGV[9])
out[1] = 1
return out
)lua");
  return s;
}

const LuaScript& session_unregister_script() {
  static const LuaScript s(R"lua(
redis.call('HDEL', KEYS[1], ARGV[1])
redis.call('HDEL', KEYS[2], ARGV[1])
redis.call('HDEL', KEYS[3], ARGV[1])
return 1
)lua");
  return s;
}

const LuaScript& session_list_script() {
  static const LuaScript s(R"lua(
local out = {}
for _, sid in ipairs(redis.call('HKEYS', KEYS[1])) do
  local record = redis.call('HGET', KEYS[2], sid)
  if record then out[#out + 1] = record end
end
return out
)lua");
  return s;
}

const LuaScript& request_termination_script() {
  static const LuaScript s(R"lua(
redis.call('HDEL', KEYS[1], ARGV[1])
redis.call('HDEL', KEYS[2], ARGV[1])
redis.call('RPUSH', KEYS[3], ARGV[2])
redis.call('LTRIM', KEYS[3], -tonumber(ARGV[3]), -1)
redis.call('EXPIRE', KEYS[3], tonumber(ARGV[4]))
redis.call('PUBLISH', KEYS[3], 'terminate')
return 1
)lua");
  return s;
}

const LuaScript& take_session_terminations_script() {
  static const LuaScript s(R"lua(
local n = tonumber(ARGV[1])
local items = redis.call('LRANGE', KEYS[1], 0, n - 1)
redis.call('LTRIM', KEYS[1], n, -1)
return items
)lua");
  return s;
}

}  // namespace mfa::fleet

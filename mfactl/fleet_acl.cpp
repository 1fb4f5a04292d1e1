#include "mfactl/fleet_acl.hpp"

namespace mfa::ctl {

namespace {

bool alnum(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}

bool valid_host_id(std::string_view id) {
  if (id.empty() || id.size() > 64 || !alnum(id.front()))
    return false;
  for (char c : id) {
    if (!alnum(c) && c != '.' && c != '_' && c != '-')
      return false;
  }
  return true;
}

bool valid_prefix(std::string_view prefix) {
  if (prefix.size() > 64)
    return false;
  for (char c : prefix) {
    if (!alnum(c) && c != ':' && c != '.' && c != '_' && c != '-')
      return false;
  }
  return true;
}

// Every command mfad sends (AUTH is always allowed), and every command its Lua scripts call:
// Redis 7 checks those against the caller's ACL too (daemon/fleet/*_keys.cpp, keys.cpp).
constexpr const char* kCommands[] = {
    "eval",
    "evalsha",
    "subscribe",
    "publish",
    "role",  // Sentinel mode: a named primary is used only if it says it is one
    "get",
    "set",
    "del",
    "exists",
    "expire",
    "pexpire",
    "pexpireat",
    "hget",
    "hgetall",
    "hmget",
    "hset",
    "hdel",
    "hincrby",
    "hkeys",
    "lrange",
    "ltrim",
    "rpush",
    "sadd",
    "scard",
    "smembers",
    "srem",
    "zadd",
    "zcard",
    "zrange",
    "zremrangebyscore",
    "zremrangebyrank",
};

}  // namespace

std::optional<std::string> fleet_acl_line(std::string_view host_id, std::string_view prefix) {
  if (!valid_host_id(host_id) || !valid_prefix(prefix))
    return std::nullopt;
  const std::string p(prefix);
  const std::string h(host_id);
  std::string line = "ACL SETUSER mfad-" + h + " reset on resetchannels";
  // Every host serves every user, keeps the fleet's session list, SMS counters and forget
  // tombstones (daemon/fleet/data_key_records.hpp); it owns its
  // own session registry and queue, and may only add to (or trim) the other hosts' queues.
  line += " ~" + p + "user:*";
  line += " ~" + p + "sessions";
  line += " ~" + p + "{sms}:*";
  line += " ~" + p + "forgotten";
  line += " ~" + p + "host:{" + h + "}:*";
  line += " %W~" + p + "host:*:terminate";
  line += " &" + p + "invalidate";
  line += " &" + p + "host:*:terminate";
  line += " -@all";
  for (const char* c : kCommands)
    line += std::string(" +") + c;
  return line;
}

}  // namespace mfa::ctl

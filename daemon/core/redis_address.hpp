// [Redis] Address (docs/fleet.md): where mfad's Redis is. Parsed once, by this, for both
// --check-config and the client, so that what the check accepts is what mfad connects to.
#pragma once

#include <string>
#include <string_view>

#include "common/result.hpp"

namespace mfa {

struct RedisAddress {
  std::string unix_path;  // "unix:/path"
  std::string host;       // "redis(s)://host:port": an IPv4 or IPv6 address, never a name
  int port = 6379;
  bool tls = false;  // rediss://: TLS, the server's certificate verified for host
  std::string describe() const;
  // redis://: TCP without TLS, which anyone able to bind the port (or on the path) can answer.
  bool plaintext() const { return unix_path.empty() && !tls; }
};

// Parses "unix:/absolute/path", "rediss://IPv4:PORT", "rediss://[IPv6]:PORT" or the same with
// redis:// (plaintext; whether it is allowed is [Redis] AllowPlaintext's business, not the
// parser's). A host name is refused: connecting to it would need a lookup that blocks the loop.
Result<RedisAddress> parse_redis_address(std::string_view address);

// [Redis] Sentinels= (docs/fleet.md, "High availability"): at most this many, each "IPv4:PORT" or
// "[IPv6]:PORT". TLS unless AllowPlaintext=yes, like the primary they name.
inline constexpr size_t kMaxRedisSentinels = 16;
Result<RedisAddress> parse_sentinel_address(std::string_view host_port, bool tls);
// [Redis] MasterName=: what Sentinel calls the primary (1 to 64 letters, digits, '.', '_', '-').
bool is_valid_master_name(std::string_view name);

}  // namespace mfa

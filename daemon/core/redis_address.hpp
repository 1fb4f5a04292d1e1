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

}  // namespace mfa

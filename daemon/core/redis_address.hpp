// [Redis] Address (docs/fleet.md): where mfad's Redis is. Parsed once, by this, for both
// --check-config and the client, so that what the check accepts is what mfad connects to.
#pragma once

#include <string>
#include <string_view>

#include "common/result.hpp"

namespace mfa {

struct RedisAddress {
  std::string unix_path;  // "unix:/path"
  std::string host;       // "redis://host:port": an IPv4 or IPv6 address, never a name
  int port = 6379;
  std::string describe() const;
};

// Parses "unix:/absolute/path", "redis://IPv4:PORT" or "redis://[IPv6]:PORT". A host name is
// refused: connecting to it would need a lookup that blocks the loop.
Result<RedisAddress> parse_redis_address(std::string_view address);

}  // namespace mfa

#include "core/redis_address.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>

#include <charconv>

namespace mfa {

std::string RedisAddress::describe() const {
  if (!unix_path.empty())
    return "unix:" + unix_path;
  const bool v6 = host.find(':') != std::string::npos;
  return std::string(tls ? "rediss://" : "redis://") + (v6 ? "[" + host + "]" : host) + ":" +
         std::to_string(port);
}

Result<RedisAddress> parse_redis_address(std::string_view address) {
  const auto bad = [](std::string why) {
    return make_error(Errc::kInvalidArgument, "Redis address: " + std::move(why));
  };
  RedisAddress a;
  if (address.starts_with("unix:")) {
    a.unix_path = std::string(address.substr(5));
    if (a.unix_path.empty() || a.unix_path[0] != '/' || a.unix_path.size() > 107)
      return bad("unix: needs an absolute path (at most 107 bytes)");
    return a;
  }
  std::string_view rest;
  if (address.starts_with("rediss://")) {
    a.tls = true;
    rest = address.substr(9);
  } else if (address.starts_with("redis://")) {
    rest = address.substr(8);
  } else {
    return bad("write rediss://ADDRESS:PORT (TLS) or unix:/PATH");
  }
  if (!rest.empty() && rest.back() == '/')
    rest.remove_suffix(1);
  // Never echoed: it may hold a password.
  if (rest.find('@') != std::string_view::npos)
    return bad("no credentials in the address; use User= and PasswordFile=");
  std::string_view host;
  std::string_view port;
  bool bracketed = false;
  if (rest.starts_with("[")) {  // [::1]:6379
    const size_t close = rest.find(']');
    if (close == std::string_view::npos || close + 1 >= rest.size() || rest[close + 1] != ':')
      return bad("write an IPv6 address as rediss://[ADDRESS]:PORT");
    host = rest.substr(1, close - 1);
    port = rest.substr(close + 2);
    bracketed = true;
  } else {
    const size_t colon = rest.find(':');
    if (colon == std::string_view::npos)
      return bad("no port (rediss://ADDRESS:PORT)");
    host = rest.substr(0, colon);
    port = rest.substr(colon + 1);
  }
  int value = 0;
  auto [p, ec] = std::from_chars(port.data(), port.data() + port.size(), value);
  if (ec != std::errc() || p != port.data() + port.size() || value <= 0 || value > 65535)
    return bad("bad port");
  if (host.empty())
    return bad("no address");
  // An IP address, never a name: hiredis would resolve a name with getaddrinfo(), which blocks
  // the event loop for as long as DNS takes (STYLE rule 7), and DNS would decide which server
  // mfad trusts. A numeric address is parsed without any lookup.
  const std::string literal(host);
  unsigned char buf[sizeof(struct in6_addr)];
  if (inet_pton(bracketed ? AF_INET6 : AF_INET, literal.c_str(), buf) != 1) {
    if (bracketed || host.size() > 253 ||
        host.find_first_not_of(
            "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-") !=
            std::string_view::npos)
      return bad("not an IP address");
    return bad("'" + literal +
               "' is a host name; mfad connects to IP addresses only (it never resolves names: a "
               "lookup would block its event loop), e.g. rediss://192.0.2.10:6379 or "
               "rediss://[::1]:6379");
  }
  a.host = literal;
  a.port = value;
  return a;
}

Result<RedisAddress> parse_sentinel_address(std::string_view host_port, bool tls) {
  if (host_port.empty() || host_port.size() > 64 || host_port.find('/') != std::string_view::npos)
    return make_error(Errc::kInvalidArgument, "Sentinel address: write ADDRESS:PORT");
  return parse_redis_address(std::string(tls ? "rediss://" : "redis://") + std::string(host_port));
}

bool is_valid_master_name(std::string_view name) {
  if (name.empty() || name.size() > 64)
    return false;
  for (char c : name) {
    const bool alnum = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
    if (!alnum && c != '.' && c != '_' && c != '-')
      return false;
  }
  return true;
}

}  // namespace mfa

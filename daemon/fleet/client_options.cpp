// How main.cpp reaches Redis in fleet mode, from [Redis]: the host's id, the TLS settings, the
// clients' options and, with Sentinels=, the discovery of the primary (docs/fleet.md).
#include "fleet/client_options.hpp"

#include <sys/stat.h>

#include "common/host_name.hpp"
#include "core/redis_address.hpp"
#include "fleet/tls_stream.hpp"
#include "fleet/unix_socket_check.hpp"

namespace mfa {

// This host's name in the fleet: [Redis] HostId=, else the host name. It names the host's Redis
// keys, so two mfads sharing one Redis must never share it.
Result<std::string> fleet_host_id(const Config& config) {
  if (!config.redis_host_id.empty())
    return config.redis_host_id;
  MFA_TRY(name, host_name());
  if (!is_valid_host_id(name)) {
    return make_error(Errc::kInvalidArgument,
                      "the host name cannot name this host in the fleet (at most 64 letters, "
                      "digits, '.', '_' or '-'): set [Redis] HostId=");
  }
  return name;
}

// The TLS settings of a rediss:// address (files read now, at start).
Result<std::shared_ptr<SSL_CTX>> fleet_tls(const Config& config) {
  return make_redis_tls_context(
      RedisTlsFiles{config.redis_ca_file, config.redis_cert_file, config.redis_key_file});
}

// What --check-config can tell of the way to Redis without connecting: the TLS files are usable,
// a unix: socket that exists is Redis's own (one that does not exist yet is checked at connect).
Status check_fleet_transport(const Config& config) {
  if (!config.redis_sentinels.empty()) {
    if (!config.redis_allow_plaintext) {
      MFA_TRY(tls, fleet_tls(config));
      (void)tls;
    }
    return {};
  }
  MFA_TRY(address, parse_redis_address(config.redis_address));
  if (address.tls) {
    MFA_TRY(tls, fleet_tls(config));
    (void)tls;
  }
  struct stat st;
  if (!address.unix_path.empty() && lstat(address.unix_path.c_str(), &st) == 0)
    MFA_CHECK(check_redis_socket_path(address.unix_path, redis_socket_owners()));
  return {};
}

// The Redis client's options from [Redis]; the password file must be private to mfad.
Result<RedisClientOptions> fleet_options(const Config& config) {
  RedisClientOptions o;
  if (config.redis_sentinels.empty()) {
    MFA_TRY(address, parse_redis_address(config.redis_address));
    o.address = std::move(address);
  } else {
    o.address.tls = !config.redis_allow_plaintext;  // sentinels and primary alike
  }
  if (o.address.tls) {
    MFA_TRY(tls, fleet_tls(config));
    o.tls = std::move(tls);
  }
  o.socket_owners = redis_socket_owners();
  o.user = config.redis_user;
  o.timeout_usec = static_cast<uint64_t>(config.redis_timeout_ms) * 1000;
  if (!config.redis_password_file.empty()) {
    MFA_TRY(password, read_redis_password_file(config.redis_password_file));
    o.password = std::move(password);
  }
  return o;
}

// [Redis] Sentinels=: the sentinels are reached as the primary is (TLS unless AllowPlaintext=yes,
// the same client certificate, user and password).
Result<std::unique_ptr<SentinelDiscovery>> make_sentinel_discovery(sd_event* event,
                                                                   const Config& config) {
  SentinelDiscovery::Options o;
  MFA_TRY(connection, fleet_options(config));
  o.connection = std::move(connection);
  for (const auto& s : config.redis_sentinels) {
    MFA_TRY(address, parse_sentinel_address(s, o.connection.address.tls));
    o.sentinels.push_back(std::move(address));
  }
  o.master_name = config.redis_master_name;
  return SentinelDiscovery::create(event, std::move(o));
}

}  // namespace mfa

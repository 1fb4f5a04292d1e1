// The fleet's connections to Redis from [Redis] (docs/fleet.md), for main.cpp and --check-config.
#pragma once

#include <systemd/sd-event.h>

#include <memory>
#include <string>

#include "common/result.hpp"
#include "core/config.hpp"
#include "fleet/redis_client.hpp"
#include "fleet/sentinel.hpp"

struct ssl_ctx_st;

namespace mfa {

// This host's name in the fleet: [Redis] HostId=, else the host name.
Result<std::string> fleet_host_id(const Config& config);
// The TLS settings of rediss:// (or of Sentinel mode without AllowPlaintext), files read now.
Result<std::shared_ptr<ssl_ctx_st>> fleet_tls(const Config& config);
// What --check-config can tell of the way to Redis without connecting.
Status check_fleet_transport(const Config& config);
// A Redis client's options from [Redis]; the password file must be private to mfad.
Result<RedisClientOptions> fleet_options(const Config& config);
// [Redis] Sentinels=: the sentinels, reached as the primary is.
Result<std::unique_ptr<SentinelDiscovery>> make_sentinel_discovery(sd_event* event,
                                                                   const Config& config);

}  // namespace mfa

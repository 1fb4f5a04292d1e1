// Fleet mode's data in Redis (docs/fleet.md): key names, the Lua scripts that make each shared
// operation atomic, and the encoding of records. Pure functions, unit-tested without a server.
//
// Keys (KeyPrefix "mfad:" by default; the {user} hash tag keeps one user's keys in one slot):
//   mfad:user:{alice}:factors    hash  "totp" / "totp:pending" / "sms" / ... -> encoded
//   FactorRecord
//                                      (sealed: its AAD binds owner and kind, so a record copied
//                                      under another user's key does not open)
//   mfad:user:{alice}:watermark  string  last accepted TOTP step
//   mfad:user:{alice}:backup     set   hex keyed hashes of the unused backup codes
//   mfad:user:{alice}:limits     hash  cf lc lu day df (LimitState)
//   mfad:user:{alice}:sessions   hash  }
//   mfad:host:{HOST}:terminate   list  } sessions across hosts: session_keys.hpp
//   mfad:invalidate              channel  a user's name, published by the scripts that change
//                                what BeginAuthentication answers from (enrollment, lockout, the
//                                last backup code): the hosts' read caches (read_cache.hpp)
#pragma once

#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "common/result.hpp"
#include "core/rate_limiter.hpp"
#include "fleet/redis_client.hpp"
#include "fleet/refusal.hpp"
#include "core/store.hpp"

namespace mfa::fleet {

struct UserKeys {
  // watermark, backup, limits: the release before authenticated records; read only to tell a
  // fleet not yet upgraded (docs/fleet.md, "Upgrading").
  std::string factors, watermark, backup, limits, sessions, state;
};
// Redis keeps an account's shared state under the account's name (getpwuid of the uid of an
// account key, user_directory.hpp), as mfad did before it keyed records by account (issue 17):
// every name of the account reaches the same keys, and a fleet upgraded host by host keeps its
// enrollments. The hosts of a fleet must agree on uids and names (as for NFS). Anything else (a
// session's user, a name no account has) as it is.
std::string redis_user(std::string_view user);
UserKeys user_keys(std::string_view prefix, std::string_view user);
std::string host_terminate_key(std::string_view prefix, std::string_view host);
std::string invalidation_channel(std::string_view prefix);

// Hash field of a factor record: "totp", "totp:pending", "sms", "sms:pending".
std::string factor_field(Method method, bool pending);
std::string encode_factor(const FactorRecord& record);
// nullopt for a malformed value (a record another version wrote, or garbage).
std::optional<FactorRecord> decode_factor(std::string_view field, std::string_view value);

std::string hash_hex(const CodeHash& hash);
std::optional<CodeHash> parse_hash_hex(std::string_view hex);

// The user's shared state as the load script returns it.
struct RemoteUser {
  std::vector<FactorRecord> factors;
  std::optional<uint64_t> watermark;
  std::vector<CodeHash> backup;  // unused codes
  LimitState limits;
  bool has_limits = false;
};
Result<RemoteUser> parse_load_reply(const RedisReply& reply);

// What the confirm script answers: the refusal (kNone: none; a name this build does not know is
// kUnrecognised) and the user's limits afterwards.
struct ConfirmOutcome {
  FleetRefusal refused = FleetRefusal::kNone;
  LimitState limits;
};
Result<ConfirmOutcome> parse_confirm_reply(const RedisReply& reply);
// A user's counters as the scripts return them: cf lc lu day df (integers, or strings read from
// the limits hash); nullopt when malformed.
std::optional<LimitState> parse_limit_values(std::span<const RedisReply> values);

// Arguments of the confirm script.
struct ConfirmRequest {
  std::optional<uint64_t> step;    // TOTP step accepted locally: compare-and-set
  std::optional<CodeHash> backup;  // backup code consumed locally: SREM must answer 1
  std::string action;              // "", "fail", "success", "clear"
  int fail_count = 1;
  // A decision taken from a cache that may be older than Redis: refused (kLocked), neither
  // counted nor consuming, while the user is locked fleet-wide.
  bool check_lock = false;
  // The factor record a success rests on (field and fingerprint): refused (kFactorChanged)
  // unless Redis still holds exactly that record.
  std::string factor_field;
  std::string factor_sha1;
  // Where the script publishes user when the lockout or the last backup code changes ("": not).
  std::string notify_channel;
  std::string notify_user;
};
std::vector<std::string> confirm_args(const ConfirmRequest& request, const RatePolicy& policy,
                                      int64_t now_usec);
// The confirm script's keys, in its order.
std::vector<std::string> confirm_keys(const UserKeys& keys);
// SHA-1 (hex) of the record as encode_factor writes it: what the confirm script compares.
std::string factor_fingerprint(const FactorRecord& record);

// What the load script answers, before any check: the factors hash, the state record ("": none),
// and whether keys of the release before authenticated records exist.
inline constexpr size_t kMaxRawFactors = 16;
struct RawUser {
  std::vector<std::pair<std::string, std::string>> factors;
  std::string state;
  bool legacy = false;
};
Result<RawUser> parse_raw_load_reply(const RedisReply& reply);
const LuaScript& load_state_script();
const LuaScript& write_state_script();

const LuaScript& load_script();
const LuaScript& confirm_script();
const LuaScript& put_user_script();

}  // namespace mfa::fleet

// Fleet mode's data in Redis (docs/fleet.md): key names, the Lua scripts that make each shared
// operation atomic, and the encoding of records. Pure functions, unit-tested without a server.
//
// Keys (KeyPrefix "mfad:" by default; the {user} hash tag keeps one user's keys in one slot):
//   mfad:user:{alice}:factors    hash  "totp" / "totp/laptop" / "totp:pending" / "sms" / ... -> an
//                                      authenticated
//                                      record (record_mac.hpp) of the encoded FactorRecord
//                                      (sealed: its AAD binds owner and kind)
//   mfad:user:{alice}:state      string  the user's state, one authenticated record
//                                      (user_state.hpp): watermark, backup codes, limits, the
//                                      digests of the factor records
//   mfad:user:{alice}:watermark, :backup, :limits  the release before's; only read to tell a fleet
//                                      not yet upgraded (docs/fleet.md, "Authenticated records")
//   mfad:user:{alice}:datakey    string  the person's data key, wrapped: data_key_records.hpp
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
  std::string data_key;  // the person's data key, wrapped (data_key_records.hpp)
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

// Hash field of a factor record: "totp", "totp:pending", "sms", "sms:pending"; a TOTP device
// other than "default" (issue 19) is "totp/NAME" and "totp/NAME:pending" (the default device keeps
// the field it had when fleet mode held one device, so existing records read as before).
std::string factor_field(Method method, bool pending, std::string_view device = {});
std::string encode_factor(const FactorRecord& record);
// nullopt for a malformed value (a record another version wrote, or garbage).
std::optional<FactorRecord> decode_factor(std::string_view field, std::string_view value);

std::string hash_hex(const CodeHash& hash);
std::optional<CodeHash> parse_hash_hex(std::string_view hex);

// A user's counters as the scripts return them: cf lc lu day df (integers, or strings read from
// the limits hash); nullopt when malformed.
std::optional<LimitState> parse_limit_values(std::span<const RedisReply> values);

// What the load script answers, before any check: the factors hash, the state record ("": none),
// and whether keys of the release before authenticated records exist.
inline constexpr size_t kMaxRawFactors = 16;
struct RawUser {
  std::vector<std::pair<std::string, std::string>> factors;
  std::string state;
  bool legacy = false;
  std::string data_key;  // the wrapped data key ("": none)
};
Result<RawUser> parse_raw_load_reply(const RedisReply& reply);
const LuaScript& load_state_script();
const LuaScript& write_state_script();

}  // namespace mfa::fleet

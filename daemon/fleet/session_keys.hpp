// Sessions across hosts in Redis (docs/fleet.md "Sessions across hosts"): key names, the encoding
// of session records and termination requests, the Lua scripts and their replies. Pure functions,
// unit-tested without a server; SharedSessions runs the scripts, FleetSessions decides.
//
// Keys (KeyPrefix "mfad:" by default):
//   mfad:user:{alice}:sessions  hash  session id -> "HOST|opened_usec|expires_usec": the count
//                                     MaxPerUser applies to, the order evict-oldest follows
//   mfad:sessions               hash  session id -> the session record (JSON): the rows of
//                                     ListSessions for other hosts' sessions, TerminateSession by
//                                     id
//   mfad:host:{HOST}:sessions   hash  session id -> user: what HOST registered (its reconciliation)
//   mfad:host:{HOST}:terminate  list  termination requests for HOST (JSON), bounded, with a
//                                     lifetime; each push is PUBLISHed on the channel of that name
// Entries carry their expiry (the session's start + MaxLifetimeSeconds of its host): an entry
// whose host died with it stops counting then, and the next registration of the user removes it.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/result.hpp"
#include "fleet/redis_client.hpp"
#include "core/store.hpp"

namespace mfa::fleet {

// Bounds on what Redis hands back (another host, or whoever else writes there, is outside input).
inline constexpr size_t kMaxSessionRecordSize = 8192;
inline constexpr size_t kMaxTerminationRequestSize = 1024;
inline constexpr size_t kMaxSessionIdSize = 64;
// Termination requests queued for one host at most (the oldest go), and taken per round trip.
inline constexpr size_t kMaxQueuedTerminations = 10000;
inline constexpr size_t kTerminationBatch = 100;

std::string session_records_key(std::string_view prefix);
std::string host_sessions_key(std::string_view prefix, std::string_view host);
// The KEYS of the register and unregister scripts: user's sessions, the records, host's sessions.
std::vector<std::string> session_keys(std::string_view prefix, std::string_view user,
                                      std::string_view host);

// A session as every host sees it. leader_start stays on its host.
struct RemoteSession {
  SessionRecord record;
  std::string host;
  int64_t expires_usec = 0;  // unix usec; 0 = never
};
std::string encode_session(const RemoteSession& session);
// nullopt for anything malformed, oversized or with unprintable fields.
std::optional<RemoteSession> decode_session(std::string_view json);

// "Please end session_id": from_host asks its owner. reason: "admin", "user" or "limit".
struct TerminationRequest {
  std::string session_id;
  std::string reason;
  std::string from_host;
  std::string caller;  // who asked on from_host ("uid=0 pid=7 :1.5"), for the owner's audit row
  // Whose session the asker ended (the owner checks that the session is theirs) and who asked
  // (reason "user": the owner checks that the asker is that user).
  std::string user;
  int64_t uid = -1;
};
std::string encode_termination(const TerminationRequest& request);
std::optional<TerminationRequest> decode_termination(std::string_view json);

// What a registration does when the user already has MaxPerUser sessions across the fleet.
enum class SessionAdmission {
  kDeny,         // OnLimit=deny: not added
  kEvictOldest,  // OnLimit=evict-oldest: the oldest entries go (returned), the new one is added
  kForce,        // reconciliation of a session that exists already: added whatever the count
};

// 1 to kMaxSessionIdSize lower-case hex digits (mfad's own ids are 32).
bool is_session_id(std::string_view id);

// ARGV of the register script. max 0 = no limit.
std::vector<std::string> session_register_args(const RemoteSession& session, int64_t now_usec,
                                               int max, SessionAdmission mode);

struct RegisterOutcome {
  bool added = false;
  size_t count = 0;  // the user's other live sessions before this registration
  // Evicted sessions, oldest first: id and host always; the rest of the record when Redis had it.
  std::vector<RemoteSession> evicted;
};
Result<RegisterOutcome> parse_register_reply(const RedisReply& reply);

// KEYS: session_keys(prefix, user, the registering host).
const LuaScript& session_register_script();
// KEYS: session_keys(prefix, user, the owner). ARGV: session id.
const LuaScript& session_unregister_script();
// KEYS: user sessions, records. Returns the user's records.
const LuaScript& session_list_script();
// KEYS: user sessions, records, the owner's terminate list. ARGV: session id, request (encoded),
// max queued, queue lifetime in seconds. The entry leaves the count at once; the owner ends it.
const LuaScript& request_termination_script();
// KEYS: the host's terminate list. ARGV: batch size. Returns and removes the oldest requests.
const LuaScript& take_session_terminations_script();

}  // namespace mfa::fleet

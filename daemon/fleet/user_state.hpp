// A user's shared state in Redis as one authenticated record (docs/fleet.md, "Authenticated
// records"): mfad:user:{alice}:state = record_mac.hpp's m1|HOST|COUNTER|PAYLOAD|MAC with
//
//   PAYLOAD = WATERMARK|BACKUP|cf|lc|lu|day|df|FACTORS[|DEVICES]
//
// WATERMARK the last accepted TOTP step of the device "default" ("" for none), DEVICES
// "name=step,..." the watermarks of the other named TOTP devices (issue 19), written only when
// there is one: a state of one device reads as in the release before (and a host of that release
// still reads it), BACKUP the unused backup codes' keyed
// hashes (hex, comma-separated), cf..df the limits (LimitState), FACTORS "field=sha1hex,..." of
// every record in the user's factors hash: a factor record removed, replaced or put back from an
// old copy no longer matches the state that vouches for it.
//
// Every change is computed by the host (apply_change: rate_limiter.cpp's arithmetic, the
// compare-and-set of the watermark, the consumption of a code) from a state it verified, and
// written by a script only if the record in Redis still has the counter the host read (else the
// script answers the current record and the host tries again on it). Only the fleet's hosts hold
// the key, so only they can write a state that verifies.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/rate_limiter.hpp"
#include "core/store.hpp"
#include "fleet/refusal.hpp"

namespace mfa::fleet {

inline constexpr size_t kMaxStateBackupCodes = 100;
inline constexpr size_t kMaxStateFactors = 16;
inline constexpr size_t kMaxStateDevices = 16;

struct UserState {
  std::optional<uint64_t> watermark;  // the device "default"'s
  // The named devices' (every device but "default"): each its own replay watermark.
  std::map<std::string, uint64_t> device_watermarks;
  std::vector<CodeHash> backup;  // unused codes
  LimitState limits;
  std::map<std::string, std::string> factors;  // hash field -> SHA-1 (hex) of its value
};

std::string encode_state(const UserState& state);
// nullopt when malformed.
std::optional<UserState> decode_state(std::string_view payload);

// What one decision does to the state (the confirm of a login, or a reconciliation item).
struct StateChange {
  std::optional<uint64_t> step;    // TOTP step accepted: must be above the device's watermark
  std::string device;              // the device of step ("" or "default": WATERMARK)
  std::optional<CodeHash> backup;  // backup code consumed: must be in the set
  std::string action;              // "", "fail", "success", "clear"
  int fail_count = 1;
  bool check_lock = false;  // refused (kLocked), nothing counted, while the user is locked
  // The factor record the success rests on was removed or replaced: refused, counted.
  bool factor_changed = false;
};

struct StateOutcome {
  FleetRefusal refused = FleetRefusal::kNone;
  UserState next;
  bool lock_changed = false;  // the lockout started or ended: the read caches must hear it
  bool backup_emptied = false;
};
StateOutcome apply_change(const UserState& state, const StateChange& change,
                          const RatePolicy& policy, int64_t now_usec);

bool same_state(const UserState& a, const UserState& b);

// The watermark of device ("" or "default": state.watermark), or nullopt.
std::optional<uint64_t> device_watermark(const UserState& state, std::string_view device);
void set_device_watermark(UserState& state, std::string_view device, uint64_t step);

}  // namespace mfa::fleet

#include "fleet/keys.hpp"
#include "fleet/record_mac.hpp"

namespace mfa::fleet {

// A user's records as read from Redis, each checked (record_mac.hpp) and matched against the
// state record that vouches for the factors.
struct VerifiedUser {
  std::vector<FactorRecord> factors;
  UserState state;
  uint64_t counter = 0;  // the state record's; 0: none (a user Redis has never held)
  std::string writer;    // the host that wrote the state record
  std::map<std::string, std::string> factor_writers;  // hash field -> the host that wrote it
};
// kNone with ret filled, or why the user's records are refused (ret_key: the key at fault).
RecordProblem verify_user(const RecordMac& mac, const UserKeys& keys, const RawUser& raw,
                          VerifiedUser* ret, std::string* ret_key);
// The state record alone (a script's "stale" answer): kNone with ret filled, or why not.
RecordProblem verify_state(const RecordMac& mac, const UserKeys& keys, std::string_view value,
                           VerifiedUser* ret);
std::string sha1_hex(std::string_view data);

}  // namespace mfa::fleet

// Per-person data keys in fleet mode (docs/fleet.md, "Forgetting a person"; GDPR Art. 17): a
// person's records in Redis are sealed under their own data key (core/data_keys.hpp), and the key
// itself is shared through Redis so that every host opens them:
//
//   mfad:user:{alice}:datakey   string  hex(AES-256-GCM(W, data key)), W = HKDF-SHA-256(master
//                               key, kDataKeyWrapLabel) (as a Sealer), the associated data the
//                               account key ("uid/1001") and this record's name: a copy moved to
//                               another person or key does not open
//   mfad:forgotten              sorted set  one tombstone per forget: an authenticated record
//                               (record_mac.hpp) whose payload is the keyed id of the account
//                               (RecordMac::keyed_id), never a name; scored by time
//
// Each host keeps the copy it read in its own key directory. `mfactl forget` deletes the key and
// every record of the person from Redis, adds a tombstone and announces it on the invalidation
// channel ("/forget", a name no user has): every host then destroys its copy of the key and its
// own records of the person (Authenticator::apply_fleet_forget); a host that was away does it
// when it reads the tombstones again (when it leaves degraded mode, at start among others).
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "common/result.hpp"
#include "common/seal.hpp"
#include "common/secure_buffer.hpp"
#include "fleet/record_mac.hpp"
#include "fleet/redis_client.hpp"

namespace mfa::fleet {

inline constexpr char kDataKeyWrapLabel[] = "mfad fleet data-key wrap v1";
// What the invalidation channel carries for a forget (a user name never holds '/').
inline constexpr char kForgetMessage[] = "/forget";
// Tombstones kept (the newest): a host away for longer than this many forgets misses the oldest.
inline constexpr size_t kMaxTombstones = 10000;
// The id's label for RecordMac::keyed_id.
inline constexpr char kTombstoneIdLabel[] = "mfad forget tombstone id v1";

std::string forgotten_key(std::string_view prefix);

class DataKeyWrap {
 public:
  // master_key: the fleet's master key (32 bytes).
  static Result<DataKeyWrap> derive(std::span<const uint8_t> master_key);

  // hex, bound to account (an account key) and record (the Redis key name).
  Result<std::string> wrap(std::string_view account, std::string_view record,
                           std::span<const uint8_t> key) const;
  // kCrypto when it was not wrapped by this fleet for this account and record, or is malformed.
  Result<SecureBytes> unwrap(std::string_view account, std::string_view record,
                             std::string_view hex) const;

 private:
  explicit DataKeyWrap(Sealer sealer) : sealer_(std::move(sealer)) {}
  Sealer sealer_;
};

struct Tombstone {
  std::string id;         // RecordMac::keyed_id(kTombstoneIdLabel, account)
  int64_t time_usec = 0;  // when the person was forgotten (the record's counter)
  std::string host;       // the host that forgot them
};
std::string tombstone_id(const RecordMac& mac, std::string_view account);
// The sealed member of mfad:forgotten for account, forgotten at now_usec by mac's host.
std::string seal_tombstone(const RecordMac& mac, std::string_view prefix, std::string_view account,
                           int64_t now_usec);
// Members of mfad:forgotten that verify, by id (a forged or altered one is left out, counted in
// ret_rejected).
std::map<std::string, Tombstone> open_tombstones(const RecordMac& mac, std::string_view prefix,
                                                 const std::vector<std::string>& members,
                                                 size_t* ret_rejected);

// KEYS: mfad:forgotten, the person's sessions hash, the session records (session_keys.hpp), the
// person's SMS send times (sms_keys.hpp). ARGV: tombstone, score, max kept, channel, message, key
// prefix. The person's sessions go from every host's list, then the tombstone is added (the
// oldest beyond max kept go) and announced.
const LuaScript& forget_script();

}  // namespace mfa::fleet

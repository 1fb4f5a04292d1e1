#include "fleet/data_key_records.hpp"

#include "common/crypto.hpp"

namespace mfa::fleet {

namespace {

constexpr size_t kMaxWrappedHex = 512;

}  // namespace

std::string forgotten_key(std::string_view prefix) {
  return std::string(prefix) + "forgotten";
}

Result<DataKeyWrap> DataKeyWrap::derive(std::span<const uint8_t> master_key) {
  MFA_TRY(key, hkdf_sha256(master_key, kDataKeyWrapLabel, 32));
  MFA_TRY(sealer, Sealer::create(key.span()));
  return DataKeyWrap(std::move(sealer));
}

Result<std::string> DataKeyWrap::wrap(std::string_view account, std::string_view record,
                                      std::span<const uint8_t> key) const {
  MFA_TRY(sealed, sealer_.seal(key, account, record));
  return to_hex(sealed);
}

Result<SecureBytes> DataKeyWrap::unwrap(std::string_view account, std::string_view record,
                                        std::string_view hex) const {
  auto sealed = hex.size() <= kMaxWrappedHex ? from_hex(hex) : std::nullopt;
  if (!sealed)
    return make_error(Errc::kCrypto, "a data key record in Redis is malformed");
  MFA_TRY(key, sealer_.open(*sealed, account, record));
  if (key.size() != 32)
    return make_error(Errc::kCrypto, "a data key record in Redis is malformed");
  return key;
}

std::string tombstone_id(const RecordMac& mac, std::string_view account) {
  return mac.keyed_id(kTombstoneIdLabel, account);
}

std::string seal_tombstone(const RecordMac& mac, std::string_view prefix, std::string_view account,
                           int64_t now_usec) {
  return mac.seal(forgotten_key(prefix), static_cast<uint64_t>(now_usec),
                  tombstone_id(mac, account));
}

std::map<std::string, Tombstone> open_tombstones(const RecordMac& mac, std::string_view prefix,
                                                 const std::vector<std::string>& members,
                                                 size_t* ret_rejected) {
  std::map<std::string, Tombstone> out;
  size_t rejected = 0;
  const std::string key = forgotten_key(prefix);
  for (const std::string& member : members) {
    SignedRecord rec;
    if (mac.open(key, member, &rec) != RecordProblem::kNone || rec.payload.size() != 64 ||
        rec.counter > static_cast<uint64_t>(INT64_MAX)) {
      ++rejected;
      continue;
    }
    Tombstone t{rec.payload, static_cast<int64_t>(rec.counter), rec.host};
    auto [it, added] = out.emplace(t.id, t);
    if (!added && it->second.time_usec < t.time_usec)
      it->second = t;  // forgotten again later: the latest counts
  }
  *ret_rejected = rejected;
  return out;
}

const LuaScript& forget_script() {
  static const LuaScript s(R"lua(
for _, id in ipairs(redis.call('HKEYS', KEYS[2])) do
  local v = redis.call('HGET', KEYS[2], id) or ''
  redis.call('HDEL', KEYS[3], id)
  local host = string.match(v, '^([^|]+)|')
  -- pcall: a per-host ACL (mfactl fleet acl) keeps another host's list to that host.
  if host then redis.pcall('HDEL', ARGV[6] .. 'host:{' .. host .. '}:sessions', id) end
end
redis.call('DEL', KEYS[2], KEYS[4])
redis.call('ZADD', KEYS[1], ARGV[2], ARGV[1])
redis.call('ZREMRANGEBYRANK', KEYS[1], 0, -(tonumber(ARGV[3]) + 1))
redis.pcall('PUBLISH', ARGV[4], ARGV[5])
return 'ok'
)lua");
  return s;
}

}  // namespace mfa::fleet

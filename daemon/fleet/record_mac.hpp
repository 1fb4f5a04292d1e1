// Authenticated records in Redis (docs/fleet.md, "Authenticated records"; issue 16): every value
// mfad writes to Redis carries the id of the host that wrote it, a counter and a MAC, so that
// whoever can write to Redis without the fleet's master key (a Redis administrator, a leaked
// password, a restored backup) cannot forge, alter or move one.
//
//   m1|HOST|COUNTER|PAYLOAD|MAC
//
// MAC = hex(HMAC-SHA-256(K, "mfad fleet record" || lp("m1") || lp(KEY) || lp(HOST) ||
// be64(COUNTER) || lp(PAYLOAD))), K = HKDF-SHA-256(master key, "mfad fleet record mac v1"), lp()
// a 4-byte big-endian length then the bytes, KEY the Redis key name (with "#FIELD" for a hash
// field). PAYLOAD may hold '|'; HOST (a HostId) never does. COUNTER goes up by one at every write
// of the record: what a host has seen of it is its high-water mark (rollback, fleet/state.hpp).
// The Lua scripts read COUNTER (and parts of PAYLOAD) without checking the MAC, to compare and
// set; every host checks the MAC of what it reads before using it.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "common/result.hpp"
#include "common/secure_buffer.hpp"

namespace mfa::fleet {

inline constexpr char kRecordVersion[] = "m1";
inline constexpr char kRecordMacLabel[] = "mfad fleet record mac v1";
inline constexpr size_t kMaxRecordValue = 64 * 1024;

// Why a value is refused: the reasons of fleet.record-rejected (docs/audit-events.md).
enum class RecordProblem {
  kNone,
  kMalformed,  // not a record of this format (garbage, truncated, too long)
  kLegacy,     // no MAC: written by a release before authenticated records (or forged as one)
  kBadMac,     // forged, altered, or copied from another key
};
const char* record_problem_name(RecordProblem problem);  // "malformed-record", ...

struct SignedRecord {
  std::string host;
  uint64_t counter = 0;
  std::string payload;
};

class RecordMac {
 public:
  // key: HKDF(master key, kRecordMacLabel), 32 bytes; host: this host's HostId.
  RecordMac(SecureBytes key, std::string host);
  static Result<RecordMac> derive(std::span<const uint8_t> master_key, std::string host);

  std::string seal(std::string_view key_name, uint64_t counter, std::string_view payload) const;
  // The record, or why it is refused (ret untouched then).
  RecordProblem open(std::string_view key_name, std::string_view value, SignedRecord* ret) const;

  const std::string& host() const { return host_; }
  // A keyed id of data (hex, 64 digits) under label: a tombstone's, which must not name anyone.
  std::string keyed_id(std::string_view label, std::string_view data) const {
    return mac_hex(label, std::string_view(), 0, data);
  }

 private:
  std::string mac_hex(std::string_view key_name, std::string_view host, uint64_t counter,
                      std::string_view payload) const;
  SecureBytes key_;
  std::string host_;
};

// The Redis key name a hash field's record is bound to.
std::string field_key_name(std::string_view key, std::string_view field);

}  // namespace mfa::fleet

// Per-person data keys (docs/security-model.md, "Data rights"): every sealed record of a person
// (TOTP seed, phone) is sealed under a random 256-bit key of their own. The keys live outside the
// database, one file per person in [Daemon] DataKeyDirectory= (default StateDirectory/data-keys),
// each sealed (wrapped) by the master key. Forgetting the person deletes their key file: a copy of
// the database, taken before or after, never held that key, and no longer opens their records,
// even with the master key.
//
// Records sealed directly under the master key (by an mfad before data keys, or by a fleet before
// data keys went to Redis) still open; seal_all() moves them under data keys at start (standalone
// mode). In fleet mode the keys are shared through Redis (fleet/data_key_records.hpp): each host
// keeps the copy it read in its own directory (export_key, install_key).
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "common/result.hpp"
#include "common/seal.hpp"
#include "common/secure_buffer.hpp"
#include "core/store.hpp"
#include "core/user_directory.hpp"

namespace mfa {

struct Config;
// [Daemon] DataKeyDirectory=, or StateDirectory/data-keys.
std::string data_key_directory(const Config& config);

// The associated data kind of a wrapped data key (owner: the account key).
inline constexpr char kSealDataKey[] = "data-key";

class DataKeys {
 public:
  // per_person false (fleet mode): seal() uses the master key, as before data keys.
  DataKeys(std::string directory, const Sealer& master, bool per_person)
      : directory_(std::move(directory)), master_(master), per_person_(per_person) {}

  // Creates the directory (mode 0700) when missing.
  Status prepare() const;

  // Seals plaintext for owner/kind (Sealer::seal) under the data key of key_owner (the account
  // key), creating that key (written and synced before the record can be) when it has none.
  Result<std::vector<uint8_t>> seal(std::string_view key_owner, std::span<const uint8_t> plaintext,
                                    std::string_view owner, std::string_view kind) const;
  // Opens a record of key_owner's: under the master key when it was sealed under it, otherwise
  // under key_owner's data key. kCrypto when that key is gone (forgotten).
  Result<SecureBytes> open(std::string_view key_owner, std::span<const uint8_t> sealed,
                           std::string_view owner, std::string_view kind) const;
  // Whether sealed was sealed directly under the master key.
  bool under_master(std::span<const uint8_t> sealed) const;
  // key_owner's data key (32 bytes), nullopt when it has none.
  Result<std::optional<SecureBytes>> export_key(std::string_view key_owner) const;
  // Puts key (32 bytes) in place as key_owner's data key, written and synced (a key another host
  // made: fleet mode).
  Status install_key(std::string_view key_owner, std::span<const uint8_t> key) const;
  // Deletes key_owner's data key (its file overwritten first); true when there was one.
  Result<bool> destroy(std::string_view key_owner) const;

  // Moves every record in store sealed under the master key to its person's data key (the
  // migration at start, standalone mode). A record that does not open is left as it is (it did
  // not open before either) and logged. Returns how many moved. Writes join the batch.
  Result<int> seal_all(Store& store, const UserDirectory& users) const;

 private:
  std::string path_of(std::string_view key_owner) const;
  std::string cache_key(std::string_view key_owner) const;  // of its opened sealer (data_keys.cpp)
  Result<std::optional<SecureBytes>> read_key(std::string_view key_owner) const;
  // kNow: the key file and its directory are synced before write_key returns; kLater: written
  // only, for sync_all() to sync with the others (seal_all).
  enum class KeySync { kNow, kLater };
  Status write_key(std::string_view key_owner, std::span<const uint8_t> key, KeySync sync) const;
  Status sync_directory() const;
  Status sync_all() const;  // every key file written so far, with one syncfs
  // key_owner's sealer (cached a while: data_keys.cpp); null when key_owner has no data key and
  // create is false.
  Result<std::shared_ptr<const Sealer>> sealer_of(std::string_view key_owner, bool create,
                                                  KeySync sync = KeySync::kNow) const;

  std::string directory_;
  const Sealer& master_;
  bool per_person_;
};

}  // namespace mfa

// Sealing of records at rest: AES-256-GCM under a key derived from the master key, a 96-bit
// random nonce per record, and the record's owner and kind as associated data, so that a record
// copied to another user or kind does not open.
//
// Sealed layout: "MFS1" | key_id (8 bytes) | nonce (12) | ciphertext | tag (16).
#pragma once

#include <array>
#include <cstdint>
#include <span>
#include <string_view>
#include <vector>

#include "common/result.hpp"
#include "common/secure_buffer.hpp"

namespace mfa {

class Sealer {
 public:
  // master_key: 32 bytes. Derives the sealing key with HKDF-SHA-256 ("mfad seal v1").
  static Result<Sealer> create(std::span<const uint8_t> master_key);

  // The associated data is owner + '\0' + kind ("alice", "totp").
  Result<std::vector<uint8_t>> seal(std::span<const uint8_t> plaintext, std::string_view owner,
                                    std::string_view kind) const;
  // kCrypto on any flipped bit, wrong owner/kind, wrong key or malformed input.
  Result<SecureBytes> open(std::span<const uint8_t> sealed, std::string_view owner,
                           std::string_view kind) const;
  // Identifies the master key (first 8 bytes of HMAC(master, "mfad key id")); not secret.
  const std::array<uint8_t, 8>& key_id() const { return key_id_; }

 private:
  SecureBytes key_;
  std::array<uint8_t, 8> key_id_{};
};

}  // namespace mfa

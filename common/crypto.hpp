// Randomness, constant-time comparison and keyed hashing (OpenSSL 3).
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "common/result.hpp"
#include "common/secure_buffer.hpp"

namespace mfa {

// Fills ret_buf from the kernel CSPRNG (getrandom, blocking until seeded).
Status random_bytes(std::span<uint8_t> ret_buf);
// A uniformly distributed value in [0, bound), bound > 0, without modulo bias. Aborts if the
// kernel CSPRNG fails (it cannot, short of a broken kernel): callers need not handle it.
uint32_t random_uniform(uint32_t bound);

// Constant-time equality (CRYPTO_memcmp); unequal lengths compare unequal, in time independent of
// the contents.
bool ct_equal(std::span<const uint8_t> a, std::span<const uint8_t> b);
bool ct_equal(std::string_view a, std::string_view b);

// HKDF-SHA-256 (RFC 5869) of ikm with the given info string; no salt.
Result<SecureBytes> hkdf_sha256(std::span<const uint8_t> ikm, std::string_view info, size_t length);
// HMAC-SHA-256; 32 bytes.
Result<SecureBytes> hmac_sha256(std::span<const uint8_t> key, std::span<const uint8_t> data);
namespace internal {
class KeyedHmac;
}
// An HMAC-SHA-256 key made ready once for many messages (its pads computed once): the audit
// chain's keys, three HMACs per row. Not for two threads at once.
class HmacSha256Key {
 public:
  HmacSha256Key();  // no key yet: mac() fails
  explicit HmacSha256Key(std::span<const uint8_t> key);
  ~HmacSha256Key();
  HmacSha256Key(HmacSha256Key&&) noexcept;
  HmacSha256Key& operator=(HmacSha256Key&&) noexcept;
  // HMAC-SHA-256 of data; 32 bytes.
  Result<SecureBytes> mac(std::span<const uint8_t> data) const;

 private:
  std::unique_ptr<internal::KeyedHmac> keyed_;
};
// SHA-256; 32 bytes (not secret: audit hash chain).
std::array<uint8_t, 32> sha256(std::span<const uint8_t> data);
// Lower-case hex.
std::string to_hex(std::span<const uint8_t> data);
// Hex (either case) to bytes; nullopt for an odd length or a character that is no hex digit.
std::optional<std::vector<uint8_t>> from_hex(std::string_view hex);

}  // namespace mfa

// Pieces of crypto.cpp shared with otp.cpp and seal.cpp; not part of the public interface.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>

#include <openssl/evp.h>
#include <openssl/kdf.h>

namespace mfa::internal {

struct EvpMacFree {
  void operator()(EVP_MAC* p) const { EVP_MAC_free(p); }
};
struct EvpMacCtxFree {
  void operator()(EVP_MAC_CTX* p) const { EVP_MAC_CTX_free(p); }
};
struct EvpKdfFree {
  void operator()(EVP_KDF* p) const { EVP_KDF_free(p); }
};
struct EvpKdfCtxFree {
  void operator()(EVP_KDF_CTX* p) const { EVP_KDF_CTX_free(p); }
};

// An HMAC key made ready once (its pads computed) for many messages: a TOTP check computes up to
// 2 * window + 1 of them with one key. Not shared between threads.
class KeyedHmac {
 public:
  // digest_name: "SHA1", "SHA256", "SHA512"; compute() fails when the key could not be set up.
  KeyedHmac(const char* digest_name, std::span<const uint8_t> key);
  // HMAC of data into ret_mac; false on failure.
  bool compute(std::span<const uint8_t> data, uint8_t* ret_mac, size_t mac_capacity,
               size_t* ret_len);

 private:
  std::unique_ptr<EVP_MAC_CTX, EvpMacCtxFree> ctx_;
  bool fresh_ = true;  // keyed and not used yet
};

}  // namespace mfa::internal

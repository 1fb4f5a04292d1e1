#include "common/crypto.hpp"

#include <sys/random.h>

#include <cerrno>
#include <charconv>
#include <cstdlib>
#include <cstring>

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/kdf.h>

#include "common/crypto_internal.hpp"

namespace mfa {

Status random_bytes(std::span<uint8_t> ret_buf) {
  size_t done = 0;
  while (done < ret_buf.size()) {
    // Flags 0: blocks until the pool is initialised, then never blocks; reads > 256 bytes may be
    // short, hence the loop.
    ssize_t n = getrandom(ret_buf.data() + done, ret_buf.size() - done, 0);
    if (n < 0) {
      if (errno == EINTR)
        continue;
      return make_error(Errc::kCrypto, std::string("getrandom failed: ") + std::strerror(errno));
    }
    done += static_cast<size_t>(n);
  }
  return {};
}

uint32_t random_uniform(uint32_t bound) {
  if (bound <= 1)
    return 0;
  // Values below 2^32 mod bound would make the low residues more likely: reject them.
  const uint32_t threshold = static_cast<uint32_t>(-bound) % bound;
  for (;;) {
    uint32_t r = 0;
    if (!random_bytes({reinterpret_cast<uint8_t*>(&r), sizeof r}).ok())
      std::abort();
    if (r >= threshold)
      return r % bound;
  }
}

bool ct_equal(std::span<const uint8_t> a, std::span<const uint8_t> b) {
  // Lengths are not secret (a code's length is visible in the prompt); contents are.
  if (a.size() != b.size())
    return false;
  if (a.empty())
    return true;
  return CRYPTO_memcmp(a.data(), b.data(), a.size()) == 0;
}

bool ct_equal(std::string_view a, std::string_view b) {
  return ct_equal(std::span(reinterpret_cast<const uint8_t*>(a.data()), a.size()),
                  std::span(reinterpret_cast<const uint8_t*>(b.data()), b.size()));
}

Result<SecureBytes> hkdf_sha256(std::span<const uint8_t> ikm, std::string_view info,
                                size_t length) {
  if (length == 0 || length > size_t{255} * 32)
    return make_error(Errc::kInvalidArgument, "HKDF output length out of range");
  if (ikm.empty())
    return make_error(Errc::kInvalidArgument, "HKDF key material is empty");
  std::unique_ptr<EVP_KDF, internal::EvpKdfFree> kdf(EVP_KDF_fetch(nullptr, "HKDF", nullptr));
  if (!kdf)
    return make_error(Errc::kCrypto, "HKDF is not available");
  std::unique_ptr<EVP_KDF_CTX, internal::EvpKdfCtxFree> ctx(EVP_KDF_CTX_new(kdf.get()));
  if (!ctx)
    return make_error(Errc::kCrypto, "HKDF context allocation failed");
  char digest[] = "SHA256";
  OSSL_PARAM params[] = {
      OSSL_PARAM_construct_utf8_string(OSSL_KDF_PARAM_DIGEST, digest, 0),
      OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_KEY, const_cast<uint8_t*>(ikm.data()),
                                        ikm.size()),
      OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_INFO, const_cast<char*>(info.data()),
                                        info.size()),
      OSSL_PARAM_construct_end(),
  };
  SecureBytes out(length);
  if (EVP_KDF_derive(ctx.get(), out.data(), out.size(), params) != 1)
    return make_error(Errc::kCrypto, "HKDF derivation failed");
  return out;
}

namespace internal {
namespace {

// An HMAC context whose implementation and digest are already fetched, keyed with an empty key,
// made once per digest: in OpenSSL 3 fetching them (a provider lookup under a lock) is most of
// what an HMAC of a few bytes costs (9 us of 10 here). Each HMAC duplicates the template and sets
// its own key on the copy, which is cleansed and freed after use; the template is never changed,
// so threads may share it.
EVP_MAC_CTX* make_hmac_template(const char* digest_name) {
  std::unique_ptr<EVP_MAC, EvpMacFree> mac(EVP_MAC_fetch(nullptr, "HMAC", nullptr));
  if (!mac)
    return nullptr;
  std::unique_ptr<EVP_MAC_CTX, EvpMacCtxFree> ctx(EVP_MAC_CTX_new(mac.get()));
  if (!ctx)
    return nullptr;
  OSSL_PARAM params[] = {
      OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, const_cast<char*>(digest_name), 0),
      OSSL_PARAM_construct_end(),
  };
  static const uint8_t kEmpty = 0;
  if (EVP_MAC_init(ctx.get(), &kEmpty, 0, params) != 1)
    return nullptr;
  return ctx.release();
}

// The template for digest_name, or null (another digest, or it could not be made).
const EVP_MAC_CTX* hmac_template(const char* digest_name) {
  if (strcmp(digest_name, "SHA1") == 0) {
    static const EVP_MAC_CTX* const sha1 = make_hmac_template("SHA1");
    return sha1;
  }
  if (strcmp(digest_name, "SHA256") == 0) {
    static const EVP_MAC_CTX* const sha256 = make_hmac_template("SHA256");
    return sha256;
  }
  if (strcmp(digest_name, "SHA512") == 0) {
    static const EVP_MAC_CTX* const sha512 = make_hmac_template("SHA512");
    return sha512;
  }
  return nullptr;
}

}  // namespace

KeyedHmac::KeyedHmac(const char* digest_name, std::span<const uint8_t> key) {
  // OpenSSL refuses a NULL key; an empty key is legal HMAC (RFC 2104 pads it with zeros).
  static const uint8_t kEmpty = 0;
  const uint8_t* key_ptr = key.empty() ? &kEmpty : key.data();
  if (const EVP_MAC_CTX* tmpl = hmac_template(digest_name)) {
    ctx_.reset(EVP_MAC_CTX_dup(tmpl));
    if (ctx_ && EVP_MAC_init(ctx_.get(), key_ptr, key.size(), nullptr) != 1)
      ctx_.reset();
    return;
  }
  std::unique_ptr<EVP_MAC, EvpMacFree> mac(EVP_MAC_fetch(nullptr, "HMAC", nullptr));
  if (!mac)
    return;
  ctx_.reset(EVP_MAC_CTX_new(mac.get()));
  if (!ctx_)
    return;
  OSSL_PARAM params[] = {
      OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, const_cast<char*>(digest_name), 0),
      OSSL_PARAM_construct_end(),
  };
  if (EVP_MAC_init(ctx_.get(), key_ptr, key.size(), params) != 1)
    ctx_.reset();
}

bool KeyedHmac::compute(std::span<const uint8_t> data, uint8_t* ret_mac, size_t mac_capacity,
                        size_t* ret_len) {
  if (!ctx_)
    return false;
  // Without a key, init returns the context to its keyed start: the key's pads, computed once in
  // the constructor, are reused.
  if (!fresh_ && EVP_MAC_init(ctx_.get(), nullptr, 0, nullptr) != 1)
    return false;
  fresh_ = false;
  if (!data.empty() && EVP_MAC_update(ctx_.get(), data.data(), data.size()) != 1)
    return false;
  size_t len = 0;
  if (EVP_MAC_final(ctx_.get(), ret_mac, &len, mac_capacity) != 1)
    return false;
  *ret_len = len;
  return true;
}

}  // namespace internal

Result<SecureBytes> hmac_sha256(std::span<const uint8_t> key, std::span<const uint8_t> data) {
  return HmacSha256Key(key).mac(data);
}

HmacSha256Key::HmacSha256Key() = default;
HmacSha256Key::HmacSha256Key(std::span<const uint8_t> key)
    : keyed_(std::make_unique<internal::KeyedHmac>("SHA256", key)) {}
HmacSha256Key::~HmacSha256Key() = default;
HmacSha256Key::HmacSha256Key(HmacSha256Key&&) noexcept = default;
HmacSha256Key& HmacSha256Key::operator=(HmacSha256Key&&) noexcept = default;

Result<SecureBytes> HmacSha256Key::mac(std::span<const uint8_t> data) const {
  SecureBytes out(32);
  size_t len = 0;
  if (!keyed_ || !keyed_->compute(data, out.data(), out.size(), &len) || len != 32)
    return make_error(Errc::kCrypto, "HMAC-SHA-256 failed");
  return out;
}

std::array<uint8_t, 32> sha256(std::span<const uint8_t> data) {
  std::array<uint8_t, 32> out{};
  unsigned int len = 0;
  static const uint8_t kEmpty = 0;
  // EVP_sha256() is a static implementation: this cannot fail short of memory exhaustion.
  if (EVP_Digest(data.empty() ? &kEmpty : data.data(), data.size(), out.data(), &len, EVP_sha256(),
                 nullptr) != 1 ||
      len != out.size())
    std::abort();
  return out;
}

std::string to_hex(std::span<const uint8_t> data) {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string out;
  out.reserve(data.size() * 2);
  for (uint8_t b : data) {
    out.push_back(kDigits[b >> 4]);
    out.push_back(kDigits[b & 0xf]);
  }
  return out;
}

std::optional<std::vector<uint8_t>> from_hex(std::string_view hex) {
  if (hex.size() % 2 != 0)
    return std::nullopt;
  std::vector<uint8_t> out(hex.size() / 2);
  for (size_t i = 0; i < out.size(); ++i) {
    unsigned v = 0;
    auto [p, ec] = std::from_chars(hex.data() + 2 * i, hex.data() + 2 * i + 2, v, 16);
    if (ec != std::errc() || p != hex.data() + 2 * i + 2)
      return std::nullopt;
    out[i] = static_cast<uint8_t>(v);
  }
  return out;
}

}  // namespace mfa

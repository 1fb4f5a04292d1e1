#include "common/seal.hpp"

#include <climits>
#include <cstring>

#include <openssl/evp.h>

#include "common/crypto.hpp"
#include "common/handles.hpp"

namespace mfa {

namespace {

using CipherCtxPtr = std::unique_ptr<EVP_CIPHER_CTX, Deleter<EVP_CIPHER_CTX_free>>;

constexpr uint8_t kMagic[4] = {'M', 'F', 'S', '1'};
constexpr size_t kKeyIdSize = 8;
constexpr size_t kNonceSize = 12;
constexpr size_t kTagSize = 16;
constexpr size_t kHeaderSize = sizeof kMagic + kKeyIdSize + kNonceSize;
// Records are seeds and phone numbers: a few hundred bytes at most.
constexpr size_t kMaxPlaintext = size_t{64} * 1024;

std::vector<uint8_t> associated_data(std::string_view owner, std::string_view kind) {
  std::vector<uint8_t> aad(owner.begin(), owner.end());
  aad.push_back(0);
  aad.insert(aad.end(), kind.begin(), kind.end());
  return aad;
}

Error crypto_error(const char* what) {
  return make_error(Errc::kCrypto, what);
}

}  // namespace

Result<Sealer> Sealer::create(std::span<const uint8_t> master_key) {
  if (master_key.size() != 32)
    return make_error(Errc::kInvalidArgument, "master key must be 32 bytes");
  Sealer sealer;
  MFA_TRY(key, hkdf_sha256(master_key, "mfad seal v1", 32));
  sealer.key_ = std::move(key);
  static constexpr std::string_view kKeyIdLabel = "mfad key id";
  MFA_TRY(id,
          hmac_sha256(master_key, std::span(reinterpret_cast<const uint8_t*>(kKeyIdLabel.data()),
                                            kKeyIdLabel.size())));
  std::memcpy(sealer.key_id_.data(), id.data(), kKeyIdSize);
  return sealer;
}

Result<std::vector<uint8_t>> Sealer::seal(std::span<const uint8_t> plaintext,
                                          std::string_view owner, std::string_view kind) const {
  if (key_.size() != 32)
    return make_error(Errc::kInternal, "sealer has no key");
  if (plaintext.size() > kMaxPlaintext)
    return make_error(Errc::kInvalidArgument, "record too large to seal");
  const std::vector<uint8_t> aad = associated_data(owner, kind);
  std::vector<uint8_t> out(kHeaderSize + plaintext.size() + kTagSize);
  std::memcpy(out.data(), kMagic, sizeof kMagic);
  std::memcpy(out.data() + sizeof kMagic, key_id_.data(), kKeyIdSize);
  uint8_t* nonce = out.data() + sizeof kMagic + kKeyIdSize;
  MFA_CHECK(random_bytes({nonce, kNonceSize}));

  CipherCtxPtr ctx(EVP_CIPHER_CTX_new());
  if (!ctx)
    return crypto_error("cipher context allocation failed");
  int len = 0;
  if (EVP_EncryptInit_ex(ctx.get(), EVP_aes_256_gcm(), nullptr, nullptr, nullptr) != 1 ||
      EVP_CIPHER_CTX_ctrl(ctx.get(), EVP_CTRL_GCM_SET_IVLEN, kNonceSize, nullptr) != 1 ||
      EVP_EncryptInit_ex(ctx.get(), nullptr, nullptr, key_.data(), nonce) != 1 ||
      EVP_EncryptUpdate(ctx.get(), nullptr, &len, aad.data(), static_cast<int>(aad.size())) != 1)
    return crypto_error("sealing failed");
  uint8_t* ct = out.data() + kHeaderSize;
  if (!plaintext.empty() && EVP_EncryptUpdate(ctx.get(), ct, &len, plaintext.data(),
                                              static_cast<int>(plaintext.size())) != 1)
    return crypto_error("sealing failed");
  int final_len = 0;
  if (EVP_EncryptFinal_ex(ctx.get(), ct + plaintext.size(), &final_len) != 1 ||
      EVP_CIPHER_CTX_ctrl(ctx.get(), EVP_CTRL_GCM_GET_TAG, kTagSize, ct + plaintext.size()) != 1)
    return crypto_error("sealing failed");
  return out;
}

Result<SecureBytes> Sealer::open(std::span<const uint8_t> sealed, std::string_view owner,
                                 std::string_view kind) const {
  if (sealed.size() < kHeaderSize + kTagSize)
    return crypto_error("sealed record is too short");
  if (sealed.size() > kHeaderSize + kMaxPlaintext + kTagSize)
    return crypto_error("sealed record is too large");
  if (std::memcmp(sealed.data(), kMagic, sizeof kMagic) != 0)
    return crypto_error("sealed record has an unknown format");
  if (std::memcmp(sealed.data() + sizeof kMagic, key_id_.data(), kKeyIdSize) != 0)
    return crypto_error("sealed record was sealed under a different master key");
  const uint8_t* nonce = sealed.data() + sizeof kMagic + kKeyIdSize;
  const uint8_t* ct = sealed.data() + kHeaderSize;
  const size_t ct_len = sealed.size() - kHeaderSize - kTagSize;
  const uint8_t* tag = ct + ct_len;
  const std::vector<uint8_t> aad = associated_data(owner, kind);

  CipherCtxPtr ctx(EVP_CIPHER_CTX_new());
  if (!ctx)
    return crypto_error("cipher context allocation failed");
  SecureBytes plain(ct_len);
  int len = 0;
  if (EVP_DecryptInit_ex(ctx.get(), EVP_aes_256_gcm(), nullptr, nullptr, nullptr) != 1 ||
      EVP_CIPHER_CTX_ctrl(ctx.get(), EVP_CTRL_GCM_SET_IVLEN, kNonceSize, nullptr) != 1 ||
      EVP_DecryptInit_ex(ctx.get(), nullptr, nullptr, key_.data(), nonce) != 1 ||
      EVP_DecryptUpdate(ctx.get(), nullptr, &len, aad.data(), static_cast<int>(aad.size())) != 1)
    return crypto_error("opening sealed record failed");
  if (ct_len > 0 &&
      EVP_DecryptUpdate(ctx.get(), plain.data(), &len, ct, static_cast<int>(ct_len)) != 1)
    return crypto_error("opening sealed record failed");
  if (EVP_CIPHER_CTX_ctrl(ctx.get(), EVP_CTRL_GCM_SET_TAG, kTagSize, const_cast<uint8_t*>(tag)) !=
      1)
    return crypto_error("opening sealed record failed");
  int final_len = 0;
  if (EVP_DecryptFinal_ex(ctx.get(), plain.data() + ct_len, &final_len) != 1)
    return crypto_error("sealed record failed authentication (tampered, or wrong owner or kind)");
  return plain;
}

}  // namespace mfa

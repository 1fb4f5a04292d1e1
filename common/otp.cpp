#include "common/otp.hpp"

#include <algorithm>
#include <limits>

#include "common/crypto.hpp"
#include "common/crypto_internal.hpp"

namespace mfa {

namespace {

// Wider windows would let a guesser try many steps per attempt; the daemon's config is bounded
// far below this, this only keeps the work per call bounded whatever the caller passes.
constexpr int kMaxWindow = 100;

const char* digest_name(OtpAlgorithm alg) {
  switch (alg) {
    case OtpAlgorithm::kSha256:
      return "SHA256";
    case OtpAlgorithm::kSha512:
      return "SHA512";
    case OtpAlgorithm::kSha1:
      break;
  }
  return "SHA1";
}

bool valid_digits(int digits) {
  return digits >= 6 && digits <= 8;
}

char ascii_upper(char c) {
  return (c >= 'a' && c <= 'z') ? static_cast<char>(c - 'a' + 'A') : c;
}

}  // namespace

const char* otp_algorithm_name(OtpAlgorithm alg) {
  return digest_name(alg);
}

std::optional<OtpAlgorithm> parse_otp_algorithm(std::string_view name) {
  std::string upper;
  if (name.size() > 8)
    return std::nullopt;
  for (char c : name)
    upper.push_back(ascii_upper(c));
  if (upper == "SHA1")
    return OtpAlgorithm::kSha1;
  if (upper == "SHA256")
    return OtpAlgorithm::kSha256;
  if (upper == "SHA512")
    return OtpAlgorithm::kSha512;
  return std::nullopt;
}

namespace {

// HOTP (RFC 4226) of counter under a key made ready once.
SecureString hotp_keyed(internal::KeyedHmac& key, uint64_t counter, int digits) {
  uint8_t message[8];
  for (int i = 7; i >= 0; --i) {
    message[i] = static_cast<uint8_t>(counter & 0xff);
    counter >>= 8;
  }
  SecureBytes mac(64);
  size_t mac_len = 0;
  if (!key.compute(message, mac.data(), mac.size(), &mac_len) || mac_len < 20)
    return SecureString();
  // Dynamic truncation (RFC 4226 §5.3).
  const size_t offset = mac.data()[mac_len - 1] & 0x0f;
  const uint8_t* p = mac.data() + offset;
  uint32_t binary = (static_cast<uint32_t>(p[0] & 0x7f) << 24) |
                    (static_cast<uint32_t>(p[1]) << 16) | (static_cast<uint32_t>(p[2]) << 8) |
                    static_cast<uint32_t>(p[3]);
  char text[9] = {};
  for (int i = digits - 1; i >= 0; --i) {
    text[i] = static_cast<char>('0' + binary % 10);
    binary /= 10;
  }
  SecureString out{std::string_view(text, static_cast<size_t>(digits))};
  secure_erase(text, sizeof text);
  secure_erase(&binary, sizeof binary);
  return out;
}

}  // namespace

SecureString hotp(std::span<const uint8_t> key, uint64_t counter, OtpAlgorithm alg, int digits) {
  if (!valid_digits(digits))
    return SecureString();
  internal::KeyedHmac keyed(digest_name(alg), key);
  return hotp_keyed(keyed, counter, digits);
}

uint64_t totp_step(int64_t unix_time, int period) {
  // Before 1970 there are no steps worth accepting: everything maps to step 0.
  if (period <= 0 || unix_time < 0)
    return 0;
  return static_cast<uint64_t>(unix_time) / static_cast<uint64_t>(period);
}

SecureString totp(std::span<const uint8_t> key, int64_t unix_time, const TotpParams& params) {
  if (params.period <= 0)
    return SecureString();
  return hotp(key, totp_step(unix_time, params.period), params.algorithm, params.digits);
}

std::optional<uint64_t> totp_verify(std::span<const uint8_t> key, std::string_view code,
                                    const TotpParams& params, int64_t unix_time, int window,
                                    std::optional<uint64_t> not_after_step) {
  // The shape of the answer is not secret (the prompt shows its length): reject it early.
  if (!valid_digits(params.digits) || params.period <= 0)
    return std::nullopt;
  if (code.size() != static_cast<size_t>(params.digits))
    return std::nullopt;
  if (!std::all_of(code.begin(), code.end(), [](char c) { return c >= '0' && c <= '9'; }))
    return std::nullopt;
  window = std::clamp(window, 0, kMaxWindow);

  const uint64_t now = totp_step(unix_time, params.period);
  const uint64_t first =
      now >= static_cast<uint64_t>(window) ? now - static_cast<uint64_t>(window) : 0;
  const uint64_t last = now + static_cast<uint64_t>(window);  // now <= INT64_MAX: no overflow

  // Every candidate is computed and compared; the result is chosen without branching on which
  // step matched, so the time taken does not reveal it. The latest matching step wins, which
  // moves the replay watermark furthest.
  uint64_t matched = 0;
  uint64_t found = 0;
  internal::KeyedHmac keyed(digest_name(params.algorithm), key);
  for (uint64_t step = first; step <= last; ++step) {
    SecureString candidate = hotp_keyed(keyed, step, params.digits);
    const uint64_t equal = ct_equal(candidate.view(), code) ? 1 : 0;
    const uint64_t allowed = (!not_after_step || step > *not_after_step) ? 1 : 0;
    const uint64_t hit = equal & allowed;
    const uint64_t mask = 0 - hit;
    matched = (matched & ~mask) | (step & mask);
    found |= hit;
  }
  if (!found)
    return std::nullopt;
  return matched;
}

}  // namespace mfa

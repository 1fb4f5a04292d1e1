// HOTP (RFC 4226) and TOTP (RFC 6238).
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>

#include "common/result.hpp"
#include "common/secure_buffer.hpp"

namespace mfa {

enum class OtpAlgorithm { kSha1, kSha256, kSha512 };

// "SHA1", "SHA256", "SHA512" (case-insensitive on parse).
const char* otp_algorithm_name(OtpAlgorithm alg);
std::optional<OtpAlgorithm> parse_otp_algorithm(std::string_view name);

struct TotpParams {
  OtpAlgorithm algorithm = OtpAlgorithm::kSha1;
  int digits = 6;   // 6..8
  int period = 30;  // seconds, > 0
};

// The HOTP value for counter, zero-padded to digits (6..8).
SecureString hotp(std::span<const uint8_t> key, uint64_t counter, OtpAlgorithm alg, int digits);
// The time step containing unix_time.
uint64_t totp_step(int64_t unix_time, int period);
SecureString totp(std::span<const uint8_t> key, int64_t unix_time, const TotpParams& params);

// Checks code against the steps [step(now) - window, step(now) + window], skipping steps
// <= not_after_step (the replay watermark; pass nullopt when there is none). Every candidate step
// is computed and compared in constant time. Returns the matched step, or nullopt.
// A code of the wrong length or with non-digits never matches.
std::optional<uint64_t> totp_verify(std::span<const uint8_t> key, std::string_view code,
                                    const TotpParams& params, int64_t unix_time, int window,
                                    std::optional<uint64_t> not_after_step);

}  // namespace mfa

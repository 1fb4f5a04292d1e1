// A TOTP enrollment for people, as lines of text that fit 80 columns: the QR code (UTF-8 half
// blocks, qr.hpp), the secret in groups of 4 beside it for those who cannot scan, and the otpauth
// URI below. pam_mfa.so shows these lines during a login enrollment (docs/rollout.md); mfad
// builds them, so the module renders nothing and holds the secret only while showing it.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "common/result.hpp"
#include "common/secure_buffer.hpp"

namespace mfa {

inline constexpr size_t kEnrollmentCardColumns = 80;

// "ABCD EFGH IJKL ...": the secret in groups of 4 (erased by the caller, like the secret).
SecureString group_secret(std::string_view secret_base32);

// The lines (no newlines in them), none wider than kEnrollmentCardColumns columns except the URI,
// which is kept whole so that it can be copied; max_line_bytes bounds each line's bytes (a longer
// URI is left out: the QR code and the secret carry the same). An error when no QR code can be
// made of the URI.
Result<std::vector<SecureString>> enrollment_card(std::string_view otpauth_uri,
                                                  std::string_view secret_base32,
                                                  size_t max_line_bytes);

// The columns a UTF-8 line takes (one per code point: the card uses no wide characters).
size_t text_columns(std::string_view line);

}  // namespace mfa

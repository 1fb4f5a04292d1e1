// otpauth:// key URIs (Google Authenticator's Key Uri Format), as read by authenticator apps.
#pragma once

#include <string>
#include <string_view>

#include "common/otp.hpp"
#include "common/result.hpp"
#include "common/secure_buffer.hpp"

namespace mfa {

struct OtpauthUri {
  std::string issuer;   // may be empty
  std::string account;  // the user name
  SecureBytes secret;
  TotpParams params;
};

// otpauth://totp/ISSUER:ACCOUNT?secret=BASE32&issuer=ISSUER&algorithm=SHA1&digits=6&period=30
// (label and issuer percent-encoded; no issuer → label is ACCOUNT and no issuer parameter).
SecureString build_otpauth_uri(const OtpauthUri& uri);
// Strict: scheme otpauth, type totp, secret present and valid base32, digits 6-8, period > 0,
// known algorithm, issuer parameter agrees with the label prefix when both are present.
Result<OtpauthUri> parse_otpauth_uri(std::string_view text);

// RFC 3986 percent-encoding of everything but unreserved characters.
std::string percent_encode(std::string_view s);
Result<std::string> percent_decode(std::string_view s);

}  // namespace mfa

// The one rule for a TOTP issuer, wherever it comes from (BeginTotpEnrollment's option, [TOTP]
// Issuer=, the host name). The issuer is the label prefix ("ISSUER:ACCOUNT") and the issuer=
// parameter of the otpauth URI (otpauth.hpp) that authenticator apps import and display beside
// every code: a ':' would move the split between issuer and account, and a control character
// (a newline, an ESC, a C1 control) would let one enrollment's label pass for another's on screen.
#pragma once

#include <string_view>

namespace mfa {

// Checked in this order; the first one found.
enum class IssuerProblem {
  kNone,
  kTooLong,       // over dbus::kMaxIssuerLength (128) bytes
  kColon,         // holds ':'
  kNotPrintable,  // not valid UTF-8, or a control character (utf8.hpp is_printable_utf8)
};

// "" (no issuer) is fine: the label is then the account alone.
IssuerProblem check_totp_issuer(std::string_view issuer);

}  // namespace mfa

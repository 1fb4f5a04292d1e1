// Checks of outside input at the edge (STYLE rule 8): user names, PAM context maps, enrollment
// options. Each returns kInvalidArgument with a message a person understands and that never
// echoes the offending value (it may be a mistyped password or code).
#pragma once

#include <optional>
#include <set>
#include <string>
#include <string_view>

#include "common/otp.hpp"
#include "common/result.hpp"
#include "core/authenticator.hpp"
#include "core/store.hpp"

namespace mfa {

// Errc::kInvalidArgument with message.
Error invalid_argument(std::string message);

// A code or current_code of at most dbus::kMaxCodeLength bytes (longer ones are refused unread).
Status validate_code_length(std::string_view code);

// Not empty, <= kMaxUserNameLength bytes, printable UTF-8, no '/', no leading '-'.
Status validate_user_name(std::string_view user);

// BeginAuthentication's context: <= kMaxContextEntries entries, known keys (service, rhost, tty,
// ruser, methods), values <= kMaxContextValueLength bytes of printable UTF-8.
Status validate_context(const StringMap& context);

// The "methods" context entry: a comma-separated list of totp, sms, backup (spaces tolerated,
// empty items ignored). nullopt when absent or empty: every method.
Result<std::optional<std::set<Method>>> parse_methods_filter(std::string_view list);

// BeginTotpEnrollment's issuer option: check_totp_issuer (common/totp_issuer.hpp) as a message.
Status validate_issuer(std::string_view issuer);
// A TOTP device name (`enroll totp --name`): 1 to 32 of [A-Za-z0-9._-], so that it reads the same
// in a table, a log line and the `totp:NAME` method string.
Status validate_device_name(std::string_view name);

// TOTP parameters as stored beside the sealed seed: "SHA1:6:30".
std::string format_totp_params(const TotpParams& params);
std::optional<TotpParams> parse_totp_params(std::string_view text);

}  // namespace mfa

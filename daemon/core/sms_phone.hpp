// Phone numbers and the text of an SMS code (docs/sms.md): E.164 only, and masked everywhere a
// person or a log could see them.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/result.hpp"
#include "common/secure_buffer.hpp"

namespace mfa {

// "+" and 8 to 15 digits, the first not 0 (ITU-T E.164: at most 15 digits, country codes never
// start with 0). InvalidArgument with a message that does not repeat the number otherwise.
Status validate_e164(std::string_view phone);

// The country code and the last four digits: "+15557654321" → "+1•••••4321". The country code is
// taken as the first digit for +1 and +7 and the first two otherwise (the display needs no exact
// ITU table; what matters is that at most six digits show).
std::string mask_phone(std::string_view phone);

// [SMS] AllowedPrefixes=: space-separated E.164 prefixes ("+" and 1 to 15 digits, the first not
// 0), at most kMaxPhonePrefixes. An error message naming the bad token, or nullopt.
inline constexpr size_t kMaxPhonePrefixes = 256;
std::optional<std::string> parse_phone_prefixes(std::string_view value,
                                                std::vector<std::string>* ret_prefixes);

// Whether phone starts with one of prefixes; an empty list allows every number.
bool phone_allowed(std::string_view phone, const std::vector<std::string>& prefixes);

// "mfad code for HOST: 123456 (valid 10 minutes)".
SecureString sms_code_text(std::string_view host, std::string_view code, int lifetime_seconds);

}  // namespace mfa

// UTF-8 as RFC 3629 defines it: no overlong forms, no surrogates, nothing above U+10FFFF. Outside
// input (user names, PAM items, mfad.conf, issuers) is checked with these before anything else.
#pragma once

#include <cstddef>
#include <optional>
#include <string_view>

namespace mfa {

// Decodes the sequence at s[i]: its code point, with i moved past it; nullopt (i untouched) when
// no valid sequence starts there. i must be < s.size().
std::optional<char32_t> decode_utf8(std::string_view s, size_t& i);

// The offset of the first byte that starts no valid sequence; npos when all of s is valid.
size_t first_invalid_utf8(std::string_view s);

bool is_valid_utf8(std::string_view s);

// A C0 control, DEL or a C1 control (U+0080..U+009F).
bool is_control_code_point(char32_t cp);

// Valid UTF-8 without control characters (is_control_code_point).
bool is_printable_utf8(std::string_view s);

}  // namespace mfa

// Base32 (RFC 4648 §6).
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>

#include "common/result.hpp"
#include "common/secure_buffer.hpp"

namespace mfa {

// Upper-case, unpadded.
std::string base32_encode(std::span<const uint8_t> data);
// Tolerates lower case, spaces and trailing '=' padding; rejects any other character, and
// impossible lengths, with kInvalidArgument. At most 1 KiB of input.
Result<SecureBytes> base32_decode(std::string_view text);

}  // namespace mfa

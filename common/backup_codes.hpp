// One-time backup codes: 10 codes of 8 characters from an alphabet without look-alikes
// (no 0/O, 1/I/L, 5/S, 2/Z, 8/B).
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/secure_buffer.hpp"

namespace mfa {

inline constexpr int kBackupCodeCount = 10;
inline constexpr int kBackupCodeLength = 8;
extern const std::string_view kBackupCodeAlphabet;

std::vector<SecureString> generate_backup_codes(int count = kBackupCodeCount);
// What a person typed → canonical form: upper case, spaces and dashes removed. nullopt when the
// result is not 8 characters of the alphabet.
std::optional<SecureString> normalize_backup_code(std::string_view typed);
// normalize_backup_code, or else 8 digits as they are: the scratch codes of google-authenticator
// that `mfactl import` keeps as backup codes. nullopt for anything else.
std::optional<SecureString> canonical_backup_code(std::string_view typed);
// True for something that looks like a backup code once normalised (and not like a TOTP code).
bool looks_like_backup_code(std::string_view typed);
// "ABCD-EFGH" for display.
std::string format_backup_code(std::string_view canonical);

}  // namespace mfa

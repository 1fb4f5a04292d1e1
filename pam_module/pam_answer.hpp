// Reading what the user typed: which answers are codes, and how a combined "password + code"
// answer (forward_pass, use_first_pass, try_first_pass) splits. Pure functions, unit-tested
// without PAM; docs/pam_mfa.md states the same rules for admins.
#pragma once

#include <cstddef>
#include <string_view>

namespace mfa::pam {

// The code at the end of a combined answer: TOTP and SMS codes of the default length.
inline constexpr size_t kCombinedCodeDigits = 6;

// Leading blanks and trailing blanks and line ends removed.
std::string_view trim_answer(std::string_view s);

// A 6-8 digit TOTP/SMS code, or the shape of a backup code (8 letters and digits, optionally
// grouped with '-' or spaces). Only such text from PAM_AUTHTOK is ever sent to the daemon.
bool looks_like_code(std::string_view s);

// The word "sms" in any case: send a text.
bool is_sms_request(std::string_view s);

struct CombinedAnswer {
  std::string_view password;  // empty when there is none
  std::string_view code;      // empty when there is no code in the answer
};

// The whole (trimmed) answer when it looks like a code; else the trailing 6 digits of an answer
// longer than that, the rest being the password; else no code and the whole answer as password.
// The views point into s.
CombinedAnswer split_combined(std::string_view s);

}  // namespace mfa::pam

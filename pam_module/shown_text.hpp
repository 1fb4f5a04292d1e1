// Text the module shows to the person logging in, built in a fixed buffer (nothing to allocate):
// the daemon's messages made safe to show, and the messages with a number or a name in them.
#pragma once

#include <cstddef>
#include <string_view>

namespace mfa::pam {

// Daemon messages shown to the user are cut to this length.
inline constexpr size_t kMaxShownMessage = 256;

class ShownText {
 public:
  static constexpr size_t kCapacity = kMaxShownMessage + 64;

  const char* c_str() const { return buf_; }
  bool empty() const { return buf_[0] == '\0'; }

 private:
  friend ShownText printable(std::string_view text);
  friend ShownText format_shown(const char* fmt, ...);

  char buf_[kCapacity + 1] = {};
};

// A daemon message fit to show: at most kMaxShownMessage bytes, control characters made spaces.
ShownText printable(std::string_view text);

// printf into a ShownText, cut to fit.
ShownText format_shown(const char* fmt, ...) __attribute__((format(printf, 1, 2)));

// "Invalid code, 2 tries left"; "Invalid code" when none is left.
ShownText bad_code_message(int tries_left);

// "A code was sent to +1******1234", or "A code was sent by SMS" without a masked number.
ShownText code_sent_message(const char* masked_phone);

}  // namespace mfa::pam

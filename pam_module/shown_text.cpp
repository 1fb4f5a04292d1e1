#include "pam_module/shown_text.hpp"

#include <stdarg.h>
#include <stdio.h>

namespace mfa::pam {

ShownText printable(std::string_view text) {
  ShownText out;
  text = text.substr(0, kMaxShownMessage);
  for (size_t i = 0; i < text.size(); ++i) {
    unsigned char u = static_cast<unsigned char>(text[i]);
    out.buf_[i] = (u < 0x20 || u == 0x7f) ? ' ' : text[i];
  }
  out.buf_[text.size()] = '\0';
  return out;
}

ShownText format_shown(const char* fmt, ...) {
  ShownText out;
  va_list ap;
  va_start(ap, fmt);
  (void)vsnprintf(out.buf_, sizeof(out.buf_), fmt, ap);
  va_end(ap);
  return out;
}

ShownText bad_code_message(int tries_left) {
  if (tries_left <= 0)
    return format_shown("Invalid code");
  return format_shown("Invalid code, %d %s", tries_left,
                      tries_left == 1 ? "try left" : "tries left");
}

ShownText code_sent_message(const char* masked_phone) {
  if (masked_phone == nullptr || masked_phone[0] == '\0')
    return format_shown("A code was sent by SMS");
  return format_shown("A code was sent to %s", printable(masked_phone).c_str());
}

}  // namespace mfa::pam

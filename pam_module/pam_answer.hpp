// Reading what the user typed: where an answer is kept, which answers are codes, and how a
// combined "password + code" answer (forward_pass, use_first_pass, try_first_pass) splits. Pure
// functions, unit-tested without PAM; docs/pam_mfa.md states the same rules for admins.
#pragma once

#include <string.h>

#include <cstddef>
#include <string_view>

namespace mfa::pam {

// The longest answer PAM passes on (PAM_MAX_RESP_SIZE, checked where PAM's headers are seen).
inline constexpr size_t kMaxAnswerLength = 512;

// What was typed at a prompt, or a code or password cut out of it: a fixed buffer (so no heap
// copy is left behind by a reallocation, and nothing to allocate), erased with explicit_bzero on
// clear and destruction. Not mfa::SecureString, which erases with OPENSSL_cleanse: that would
// load libcrypto into every login process for this alone (about 2.5 ms of CPU per process start,
// measured).
class Answer {
 public:
  static constexpr size_t kCapacity = kMaxAnswerLength;

  Answer() = default;
  Answer(const Answer&) = delete;
  Answer& operator=(const Answer&) = delete;
  ~Answer() { clear(); }

  // s may point into this buffer. False (and left empty) when s does not fit.
  bool assign(std::string_view s) {
    if (s.size() > kCapacity) {
      clear();
      return false;
    }
    memmove(buf_, s.data(), s.size());
    explicit_bzero(buf_ + s.size(), sizeof(buf_) - s.size());
    len_ = s.size();
    return true;
  }
  std::string_view view() const { return {buf_, len_}; }
  const char* c_str() const { return buf_; }
  size_t size() const { return len_; }
  bool empty() const { return len_ == 0; }
  void clear() {
    explicit_bzero(buf_, sizeof(buf_));
    len_ = 0;
  }

 private:
  char buf_[kCapacity + 1] = {};
  size_t len_ = 0;
};

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

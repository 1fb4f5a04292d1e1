#include "pam_module/pam_answer.hpp"

namespace mfa::pam {
namespace {

bool is_digits(std::string_view s) {
  if (s.empty())
    return false;
  for (char c : s)
    if (c < '0' || c > '9')
      return false;
  return true;
}

bool is_alnum(char c) {
  return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

}  // namespace

std::string_view trim_answer(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t'))
    s.remove_prefix(1);
  while (!s.empty() &&
         (s.back() == ' ' || s.back() == '\t' || s.back() == '\n' || s.back() == '\r'))
    s.remove_suffix(1);
  return s;
}

bool looks_like_code(std::string_view s) {
  if (s.size() >= 6 && s.size() <= 8 && is_digits(s))
    return true;
  // 8 characters, plus at most two separators ("ABCD-EFGH", "ABC DEF GH").
  if (s.size() > 10)
    return false;
  size_t alnum = 0;
  for (char c : s) {
    if (is_alnum(c)) {
      ++alnum;
    } else if (c != '-' && c != ' ') {
      return false;
    }
  }
  return alnum == 8;
}

bool is_sms_request(std::string_view s) {
  if (s.size() != 3)
    return false;
  for (size_t i = 0; i < 3; ++i) {
    char c = s[i] >= 'A' && s[i] <= 'Z' ? static_cast<char>(s[i] - 'A' + 'a') : s[i];
    if (c != "sms"[i])
      return false;
  }
  return true;
}

CombinedAnswer split_combined(std::string_view s) {
  s = trim_answer(s);
  if (looks_like_code(s))
    return {{}, s};
  if (s.size() > kCombinedCodeDigits && is_digits(s.substr(s.size() - kCombinedCodeDigits)))
    return {s.substr(0, s.size() - kCombinedCodeDigits), s.substr(s.size() - kCombinedCodeDigits)};
  return {s, {}};
}

}  // namespace mfa::pam

#include "core/sms_phone.hpp"

#include <algorithm>

namespace mfa {

namespace {
constexpr size_t kMinDigits = 8;
constexpr size_t kMaxDigits = 15;
constexpr char kMaskDot[] = "\u2022";  // •
}  // namespace

Status validate_e164(std::string_view phone) {
  const auto bad = []() {
    return make_error(Errc::kInvalidArgument,
                      "The phone number must be in E.164 form: + then 8 to 15 digits, "
                      "country code first (e.g. +15557654321)");
  };
  if (phone.size() < 1 + kMinDigits || phone.size() > 1 + kMaxDigits || phone[0] != '+')
    return bad();
  const std::string_view digits = phone.substr(1);
  if (!std::all_of(digits.begin(), digits.end(), [](char c) { return c >= '0' && c <= '9'; }))
    return bad();
  if (digits[0] == '0')
    return bad();
  return {};
}

std::optional<std::string> parse_phone_prefixes(std::string_view value,
                                                std::vector<std::string>* ret_prefixes) {
  std::vector<std::string> prefixes;
  size_t pos = 0;
  while (pos < value.size()) {
    if (value[pos] == ' ' || value[pos] == '\t') {
      ++pos;
      continue;
    }
    const size_t end = std::min(value.find_first_of(" \t", pos), value.size());
    const std::string_view token = value.substr(pos, end - pos);
    pos = end;
    const std::string_view digits = token.substr(1);
    if (token[0] != '+' || digits.empty() || digits.size() > kMaxDigits || digits[0] == '0' ||
        !std::all_of(digits.begin(), digits.end(), [](char c) { return c >= '0' && c <= '9'; })) {
      return "each prefix must be + and 1 to 15 digits, country code first (e.g. +1 +44 +49)";
    }
    if (prefixes.size() >= kMaxPhonePrefixes)
      return "at most " + std::to_string(kMaxPhonePrefixes) + " prefixes";
    prefixes.emplace_back(token);
  }
  *ret_prefixes = std::move(prefixes);
  return std::nullopt;
}

bool phone_allowed(std::string_view phone, const std::vector<std::string>& prefixes) {
  if (prefixes.empty())
    return true;
  return std::any_of(prefixes.begin(), prefixes.end(),
                     [&](const std::string& p) { return phone.starts_with(p); });
}

std::string mask_phone(std::string_view phone) {
  if (!validate_e164(phone).ok())
    return "(invalid number)";
  const std::string_view digits = phone.substr(1);
  const size_t cc = (digits[0] == '1' || digits[0] == '7') ? 1 : 2;
  const size_t hidden = digits.size() - cc - 4;
  std::string out = "+" + std::string(digits.substr(0, cc));
  for (size_t i = 0; i < hidden; ++i)
    out += kMaskDot;
  out += digits.substr(digits.size() - 4);
  return out;
}

SecureString sms_code_text(std::string_view host, std::string_view code, int lifetime_seconds) {
  std::string validity;
  if (lifetime_seconds % 60 == 0) {
    const int minutes = lifetime_seconds / 60;
    validity = std::to_string(minutes) + (minutes == 1 ? " minute" : " minutes");
  } else {
    validity = std::to_string(lifetime_seconds) + " seconds";
  }
  SecureString text;
  text.append("mfad code for ");
  text.append(host);
  text.append(": ");
  text.append(code);
  text.append(" (valid " + validity + ")");
  return text;
}

}  // namespace mfa

#include <algorithm>
#include "core/validation.hpp"

#include <charconv>

#include "common/dbus_names.hpp"
#include "common/totp_issuer.hpp"
#include "common/utf8.hpp"

namespace mfa {

namespace {

std::string_view trim(std::string_view s) {
  while (!s.empty() && s.front() == ' ')
    s.remove_prefix(1);
  while (!s.empty() && s.back() == ' ')
    s.remove_suffix(1);
  return s;
}

}  // namespace

Error invalid_argument(std::string message) {
  return make_error(Errc::kInvalidArgument, std::move(message));
}

Status validate_code_length(std::string_view code) {
  if (code.size() > dbus::kMaxCodeLength)
    return invalid_argument("The code is too long");
  return {};
}

Status validate_user_name(std::string_view user) {
  if (user.empty())
    return invalid_argument("The user name is empty");
  if (user.size() > dbus::kMaxUserNameLength)
    return invalid_argument("The user name is too long");
  if (!is_printable_utf8(user))
    return invalid_argument("The user name is not valid UTF-8 or contains control characters");
  if (user.find('/') != std::string_view::npos)
    return invalid_argument("The user name contains '/'");
  if (user.front() == '-')
    return invalid_argument("The user name starts with '-'");
  return {};
}

Status validate_context(const StringMap& context) {
  // rollout, nullok: what pam_mfa.so can offer a user with no factor (docs/rollout.md).
  static constexpr std::string_view kKnownKeys[] = {"service", "rhost",   "tty",   "ruser",
                                                    "methods", "rollout", "nullok"};
  if (context.size() > dbus::kMaxContextEntries)
    return invalid_argument("Too many context entries");
  for (const auto& [key, value] : context) {
    bool known = false;
    for (auto k : kKnownKeys)
      known = known || key == k;
    // The key is echoed only when it is short printable text.
    if (!known) {
      if (key.size() <= 32 && is_printable_utf8(key))
        return invalid_argument("Unknown context key '" + key + "'");
      return invalid_argument("Unknown context key");
    }
    if (value.size() > dbus::kMaxContextValueLength)
      return invalid_argument("The context value of '" + key + "' is too long");
    if (!is_printable_utf8(value))
      return invalid_argument("The context value of '" + key +
                              "' is not valid UTF-8 or contains control characters");
  }
  return {};
}

Result<std::optional<std::set<Method>>> parse_methods_filter(std::string_view list) {
  std::set<Method> methods;
  bool any = false;
  while (true) {
    const size_t comma = list.find(',');
    const std::string_view item = trim(list.substr(0, comma));
    if (!item.empty()) {
      const auto m = parse_method(item);
      if (!m) {
        if (item.size() <= 16 && is_printable_utf8(item))
          return invalid_argument("Unknown method '" + std::string(item) +
                                  "' in the methods list (expected totp, sms or backup)");
        return invalid_argument(
            "Unknown method in the methods list (expected totp, sms or backup)");
      }
      methods.insert(*m);
      any = true;
    }
    if (comma == std::string_view::npos)
      break;
    list.remove_prefix(comma + 1);
  }
  if (!any)
    return std::optional<std::set<Method>>{};
  return std::optional<std::set<Method>>{std::move(methods)};
}

Status validate_device_name(std::string_view name) {
  const bool ok = !name.empty() && name.size() <= dbus::kMaxDeviceNameLength &&
                  std::all_of(name.begin(), name.end(), [](char c) {
                    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
                           (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '-';
                  });
  if (!ok)
    return invalid_argument("A device name is 1 to " + std::to_string(dbus::kMaxDeviceNameLength) +
                            " letters, digits, '.', '_' or '-'");
  return {};
}

Status validate_issuer(std::string_view issuer) {
  switch (check_totp_issuer(issuer)) {
    case IssuerProblem::kNone:
      return {};
    case IssuerProblem::kTooLong:
      return invalid_argument("The issuer is too long");
    case IssuerProblem::kColon:
      return invalid_argument("The issuer must not contain ':'");
    case IssuerProblem::kNotPrintable:
      return invalid_argument("The issuer is not valid UTF-8 or contains control characters");
  }
  return invalid_argument("The issuer is not valid");
}

std::string format_totp_params(const TotpParams& params) {
  return std::string(otp_algorithm_name(params.algorithm)) + ":" + std::to_string(params.digits) +
         ":" + std::to_string(params.period);
}

std::optional<TotpParams> parse_totp_params(std::string_view text) {
  const size_t a = text.find(':');
  if (a == std::string_view::npos)
    return std::nullopt;
  const size_t b = text.find(':', a + 1);
  if (b == std::string_view::npos)
    return std::nullopt;
  TotpParams params;
  const auto alg = parse_otp_algorithm(text.substr(0, a));
  if (!alg)
    return std::nullopt;
  params.algorithm = *alg;
  const auto parse_int = [](std::string_view s, int& ret) {
    const auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), ret);
    return ec == std::errc() && p == s.data() + s.size();
  };
  if (!parse_int(text.substr(a + 1, b - a - 1), params.digits))
    return std::nullopt;
  if (!parse_int(text.substr(b + 1), params.period))
    return std::nullopt;
  if (params.digits < 6 || params.digits > 8 || params.period <= 0 || params.period > 3600)
    return std::nullopt;
  return params;
}

}  // namespace mfa

#include "daemon/store.hpp"

namespace mfa {

const char* method_name(Method m) {
  switch (m) {
    case Method::kTotp:
      return "totp";
    case Method::kSms:
      return "sms";
    case Method::kBackup:
      return "backup";
  }
  return "unknown";
}

std::optional<Method> parse_method(std::string_view name) {
  if (name == "totp")
    return Method::kTotp;
  if (name == "sms")
    return Method::kSms;
  if (name == "backup")
    return Method::kBackup;
  return std::nullopt;
}

}  // namespace mfa

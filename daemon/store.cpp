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

// Stores without sessions (test doubles) refuse them.
namespace {
Error no_sessions() {
  return make_error(Errc::kStorage, "this store keeps no sessions");
}
}  // namespace

Status Store::put_session(const SessionRecord&) {
  return no_sessions();
}
Result<std::optional<SessionRecord>> Store::get_session(std::string_view) {
  return no_sessions();
}
Result<std::vector<SessionRecord>> Store::list_sessions(std::string_view) {
  return no_sessions();
}
Result<bool> Store::delete_session(std::string_view) {
  return no_sessions();
}
Result<bool> Store::note_device(std::string_view, std::string_view, int64_t) {
  return no_sessions();
}

}  // namespace mfa

#include "mfactl/client.hpp"

#include <cerrno>
#include <cstring>
#include <initializer_list>
#include <string>
#include <utility>

#include "common/dbus_names.hpp"

namespace mfa::ctl {
namespace {

using nlohmann::json;

struct ErrorLabel {
  const char* name;
  Errc code;
  const char* label;
};

constexpr ErrorLabel kErrorLabels[] = {
    {dbus::kErrorBadCode, Errc::kBadCode, "wrong code"},
    {dbus::kErrorCodeExpired, Errc::kCodeExpired, "code expired"},
    {dbus::kErrorRateLimited, Errc::kRateLimited, "rate limited"},
    {dbus::kErrorNotEnrolled, Errc::kNotEnrolled, "not enrolled"},
    {dbus::kErrorNoSuchUser, Errc::kNoSuchUser, "no such user"},
    {dbus::kErrorNoSuchChallenge, Errc::kNoSuchChallenge, "no such challenge"},
    {dbus::kErrorChallengeExpired, Errc::kChallengeExpired, "challenge expired"},
    {dbus::kErrorAlreadyEnrolled, Errc::kAlreadyEnrolled, "already enrolled"},
    {dbus::kErrorNoPendingEnrollment, Errc::kNoPendingEnrollment, "no pending enrollment"},
    {dbus::kErrorNoSuchSession, Errc::kNoSuchSession, "no such session"},
    {dbus::kErrorSessionLimit, Errc::kSessionLimit, "session limit"},
    {dbus::kErrorSmsUnavailable, Errc::kSmsUnavailable, "SMS unavailable"},
    {dbus::kErrorSmsRateLimited, Errc::kSmsRateLimited, "SMS rate limited"},
    {dbus::kErrorNotAllowed, Errc::kNotAllowed, "not allowed"},
    {dbus::kErrorStepUpRequired, Errc::kStepUpRequired, "step-up required"},
    {dbus::kErrorInvalidArgument, Errc::kInvalidArgument, "invalid argument"},
    {dbus::kErrorStorageFailure, Errc::kStorage, "storage failure"},
    {dbus::kErrorLimitExceeded, Errc::kLimitExceeded, "limit exceeded"},
    {dbus::kErrorEnrollmentTokenRequired, Errc::kEnrollmentTokenRequired,
     "enrollment token required"},
    {dbus::kErrorNoticeNotAccepted, Errc::kNoticeNotAccepted, "enrollment notice not accepted"},
    {dbus::kErrorInternal, Errc::kInternal, "internal error"},
    {SD_BUS_ERROR_ACCESS_DENIED, Errc::kNotAllowed, "not allowed"},
    {SD_BUS_ERROR_INTERACTIVE_AUTHORIZATION_REQUIRED, Errc::kNotAllowed, "not allowed"},
    {SD_BUS_ERROR_NOT_SUPPORTED, Errc::kInternal, "not supported"},
    {SD_BUS_ERROR_INVALID_ARGS, Errc::kInvalidArgument, "invalid argument"},
    {SD_BUS_ERROR_UNKNOWN_METHOD, Errc::kInternal,
     "mfad does not know this call (is mfactl newer than mfad?)"},
    {SD_BUS_ERROR_NO_REPLY, Errc::kIo, "mfad did not answer in time"},
    {SD_BUS_ERROR_TIMEOUT, Errc::kIo, "mfad did not answer in time"},
};

// One basic numeric D-Bus value into JSON.
template <typename T>
int read_number(sd_bus_message* m, char type, json& out) {
  T v{};
  int r = sd_bus_message_read_basic(m, type, &v);
  if (r >= 0)
    out = v;
  return r;
}

int read_dict_array(sd_bus_message* m, json& ret_out);

// Reads one basic, string-array or aa{sv} value of type `type` at the read position into out;
// other types are skipped (ret_have = false), so a newer daemon's extra keys do no harm.
int read_value(sd_bus_message* m, const char* type, json& out, bool& ret_have) {
  ret_have = true;
  int r = 0;
  if (std::strcmp(type, "as") == 0) {
    char** strv = nullptr;
    r = sd_bus_message_read_strv(m, &strv);
    if (r < 0)
      return r;
    out = json::array();
    for (char** s = strv; s && *s; ++s) {
      out.push_back(std::string(*s));
      free(*s);
    }
    free(strv);
    return 0;
  }
  if (std::strcmp(type, "aa{sv}") == 0)
    return read_dict_array(m, out);
  if (std::strlen(type) != 1) {
    ret_have = false;
    return sd_bus_message_skip(m, type);
  }
  switch (type[0]) {
    case 's':
    case 'o':
    case 'g': {
      const char* s = nullptr;
      r = sd_bus_message_read_basic(m, type[0], &s);
      if (r >= 0)
        out = std::string(s ? s : "");
      return r;
    }
    case 'b': {
      int b = 0;
      r = sd_bus_message_read_basic(m, 'b', &b);
      if (r >= 0)
        out = b != 0;
      return r;
    }
    case 'y':
      return read_number<uint8_t>(m, 'y', out);
    case 'n':
      return read_number<int16_t>(m, 'n', out);
    case 'q':
      return read_number<uint16_t>(m, 'q', out);
    case 'i':
      return read_number<int32_t>(m, 'i', out);
    case 'u':
      return read_number<uint32_t>(m, 'u', out);
    case 'x':
      return read_number<int64_t>(m, 'x', out);
    case 't':
      return read_number<uint64_t>(m, 't', out);
    case 'd':
      return read_number<double>(m, 'd', out);
    default:
      ret_have = false;
      return sd_bus_message_skip(m, type);
  }
}

// Reads an a{sv} at the read position into a JSON object. Returns 0 at the end of an enclosing
// array, 1 after a dictionary, negative errno on failure.
int read_dict(sd_bus_message* m, json& ret_out) {
  int r = sd_bus_message_enter_container(m, 'a', "{sv}");
  if (r <= 0)
    return r;
  json out = json::object();
  while ((r = sd_bus_message_enter_container(m, 'e', "sv")) > 0) {
    const char* key = nullptr;
    r = sd_bus_message_read_basic(m, 's', &key);
    if (r < 0)
      return r;
    const char* contents = nullptr;
    r = sd_bus_message_peek_type(m, nullptr, &contents);
    if (r < 0)
      return r;
    r = sd_bus_message_enter_container(m, 'v', contents);
    if (r < 0)
      return r;
    json value;
    bool have = false;
    r = read_value(m, contents, value, have);
    if (r < 0)
      return r;
    r = sd_bus_message_exit_container(m);
    if (r < 0)
      return r;
    r = sd_bus_message_exit_container(m);
    if (r < 0)
      return r;
    if (have)
      out[std::string(key)] = std::move(value);
  }
  if (r < 0)
    return r;
  r = sd_bus_message_exit_container(m);
  if (r < 0)
    return r;
  ret_out = std::move(out);
  return 1;
}

// Reads an aa{sv} into a JSON array of objects.
int read_dict_array(sd_bus_message* m, json& ret_out) {
  int r = sd_bus_message_enter_container(m, 'a', "a{sv}");
  if (r < 0)
    return r;
  json out = json::array();
  for (;;) {
    json row;
    r = read_dict(m, row);
    if (r < 0)
      return r;
    if (r == 0)
      break;
    out.push_back(std::move(row));
  }
  r = sd_bus_message_exit_container(m);
  if (r < 0)
    return r;
  ret_out = std::move(out);
  return 0;
}

Error bad_reply(int r) {
  return make_error(Errc::kInternal,
                    std::string("cannot read mfad's answer: ") + std::strerror(r < 0 ? -r : r));
}

Error cannot_send(int r) {
  return make_error(Errc::kInternal,
                    std::string("cannot build the request: ") + std::strerror(r < 0 ? -r : r));
}

// Appends an {sv} entry with a string value.
int append_string_entry(sd_bus_message* m, const char* key, std::string_view value) {
  std::string v(value);
  int r = sd_bus_message_append(m, "{sv}", key, "s", v.c_str());
  secure_erase(v.data(), v.size());
  return r;
}

}  // namespace

Error error_from_bus(std::string_view name, std::string_view message) {
  if (name == SD_BUS_ERROR_SERVICE_UNKNOWN || name == SD_BUS_ERROR_NAME_HAS_NO_OWNER) {
    return make_error(Errc::kIo, "mfad is not running (nobody owns org.mfad1 on this bus)");
  }
  for (const auto& e : kErrorLabels) {
    if (name == e.name) {
      std::string text = e.label;
      if (!message.empty())
        text += ": " + std::string(message);
      return make_error(e.code, std::move(text));
    }
  }
  std::string text(name);
  if (!message.empty())
    text += ": " + std::string(message);
  return make_error(Errc::kInternal, std::move(text));
}

Result<ManagerClient> ManagerClient::connect(const std::string& address, bool interactive) {
  sd_bus* raw = nullptr;
  int r = 0;
  BusPtr bus;
  if (address.empty()) {
    r = sd_bus_open_system(&raw);
    bus.reset(raw);
    if (r < 0) {
      return make_error(Errc::kIo,
                        std::string("cannot connect to the system bus: ") + std::strerror(-r));
    }
  } else {
    r = sd_bus_new(&raw);
    if (r < 0)
      return make_error(Errc::kIo, std::string("sd_bus_new: ") + std::strerror(-r));
    bus.reset(raw);
    r = sd_bus_set_address(bus.get(), address.c_str());
    if (r < 0) {
      return make_error(Errc::kInvalidArgument,
                        std::string("bad bus address: ") + std::strerror(-r));
    }
    r = sd_bus_set_bus_client(bus.get(), 1);
    if (r >= 0)
      r = sd_bus_start(bus.get());
    if (r < 0) {
      return make_error(Errc::kIo,
                        "cannot connect to the bus at " + address + ": " + std::strerror(-r));
    }
  }
  r = sd_bus_set_allow_interactive_authorization(bus.get(), interactive ? 1 : 0);
  if (r < 0)
    return make_error(Errc::kIo, std::string("sd-bus: ") + std::strerror(-r));
  return ManagerClient(std::move(bus));
}

Result<BusMessagePtr> ManagerClient::new_call(const char* member) {
  sd_bus_message* raw = nullptr;
  int r = sd_bus_message_new_method_call(bus_.get(), &raw, dbus::kBusName, dbus::kObjectPath,
                                         dbus::kInterface, member);
  BusMessagePtr m(raw);
  if (r < 0)
    return cannot_send(r);
  return m;
}

Result<BusMessagePtr> ManagerClient::new_call(const char* member,
                                              std::initializer_list<std::string_view> strings,
                                              Sensitivity sensitivity) {
  MFA_TRY(m, new_call(member));
  if (sensitivity == Sensitivity::kCarriesSecret)
    (void)sd_bus_message_sensitive(m.get());
  for (std::string_view s : strings) {
    // NUL-terminated copies, erased when dropped: some of the strings are codes or phones.
    SecureString copy(s);
    int r = sd_bus_message_append(m.get(), "s", copy.c_str());
    if (r < 0)
      return cannot_send(r);
  }
  return m;
}

Result<BusMessagePtr> ManagerClient::call(sd_bus_message* m) {
  sd_bus_error error = SD_BUS_ERROR_NULL;
  sd_bus_message* raw = nullptr;
  int r = sd_bus_call(bus_.get(), m, kCallTimeoutUsec, &error, &raw);
  BusMessagePtr reply(raw);
  if (r < 0) {
    Error e = sd_bus_error_is_set(&error)
                  ? error_from_bus(error.name, error.message ? error.message : "")
                  : make_error(Errc::kIo, std::string("cannot talk to mfad: ") + std::strerror(-r));
    sd_bus_error_free(&error);
    return e;
  }
  // Replies may carry secrets (a TOTP seed, backup codes): erase them when freed.
  (void)sd_bus_message_sensitive(reply.get());
  return reply;
}

Status ManagerClient::call_void(const char* member, std::initializer_list<std::string_view> strings,
                                Sensitivity sensitivity) {
  MFA_TRY(m, new_call(member, strings, sensitivity));
  MFA_TRY(reply, call(m.get()));
  return {};
}

Result<std::string> ManagerClient::call_string(const char* member,
                                               std::initializer_list<std::string_view> strings,
                                               Sensitivity sensitivity) {
  MFA_TRY(m, new_call(member, strings, sensitivity));
  MFA_TRY(reply, call(m.get()));
  const char* text = nullptr;
  int r = sd_bus_message_read(reply.get(), "s", &text);
  if (r < 0)
    return bad_reply(r);
  return std::string(text);
}

Result<nlohmann::json> ManagerClient::call_rows(sd_bus_message* m) {
  MFA_TRY(reply, call(m));
  json out;
  int r = read_dict_array(reply.get(), out);
  if (r < 0)
    return bad_reply(r);
  return out;
}

Result<nlohmann::json> ManagerClient::get_user(std::string_view user) {
  MFA_TRY(m, new_call("GetUser", {user}));
  MFA_TRY(reply, call(m.get()));
  json out;
  int r = read_dict(reply.get(), out);
  if (r <= 0)
    return bad_reply(r == 0 ? EBADMSG : r);
  return out;
}

Result<TotpEnrollmentReply> ManagerClient::begin_totp_enrollment(
    std::string_view user, std::string_view device, std::string_view issuer,
    std::string_view algorithm, uint32_t digits, std::string_view current_code) {
  MFA_TRY(m, new_call("BeginTotpEnrollment", {user}, Sensitivity::kCarriesSecret));
  int r = sd_bus_message_open_container(m.get(), 'a', "{sv}");
  if (r >= 0 && !device.empty())
    r = append_string_entry(m.get(), "name", device);
  if (r >= 0 && !issuer.empty())
    r = append_string_entry(m.get(), "issuer", issuer);
  if (r >= 0 && !algorithm.empty())
    r = append_string_entry(m.get(), "algorithm", algorithm);
  if (r >= 0 && digits != 0)
    r = sd_bus_message_append(m.get(), "{sv}", "digits", "u", digits);
  if (r >= 0)
    r = append_string_entry(m.get(), "current_code", current_code);
  if (r >= 0)
    r = sd_bus_message_close_container(m.get());
  if (r < 0)
    return cannot_send(r);
  MFA_TRY(reply, call(m.get()));
  const char* secret = nullptr;
  const char* uri = nullptr;
  r = sd_bus_message_read(reply.get(), "ss", &secret, &uri);
  if (r < 0)
    return bad_reply(r);
  return TotpEnrollmentReply{SecureString(secret), SecureString(uri)};
}

Result<std::pair<SecureString, uint64_t>> ManagerClient::create_enrollment_token(
    std::string_view user, uint32_t valid_hours) {
  MFA_TRY(m, new_call("CreateEnrollmentToken", {user}));
  int r = sd_bus_message_append(m.get(), "u", valid_hours);
  if (r < 0)
    return cannot_send(r);
  MFA_TRY(reply, call(m.get()));
  const char* token = nullptr;
  uint64_t expires = 0;
  r = sd_bus_message_read(reply.get(), "st", &token, &expires);
  if (r < 0)
    return bad_reply(r);
  return std::make_pair(SecureString(token), expires);
}

Status ManagerClient::confirm_totp_enrollment(std::string_view user, std::string_view code) {
  return call_void("ConfirmTotpEnrollment", {user, code}, Sensitivity::kCarriesSecret);
}

Result<std::string> ManagerClient::begin_sms_enrollment(std::string_view user,
                                                        std::string_view phone_e164,
                                                        std::string_view current_code) {
  return call_string("BeginSmsEnrollment", {user, phone_e164, current_code},
                     Sensitivity::kCarriesSecret);
}

Result<std::string> ManagerClient::send_step_up_code(std::string_view user) {
  return call_string("SendStepUpCode", {user});
}

Status ManagerClient::confirm_sms_enrollment(std::string_view user, std::string_view code) {
  return call_void("ConfirmSmsEnrollment", {user, code}, Sensitivity::kCarriesSecret);
}

Result<std::vector<SecureString>> ManagerClient::generate_backup_codes(
    std::string_view user, std::string_view current_code) {
  MFA_TRY(m, new_call("GenerateBackupCodes", {user, current_code}, Sensitivity::kCarriesSecret));
  MFA_TRY(reply, call(m.get()));
  std::vector<SecureString> codes;
  int r = sd_bus_message_enter_container(reply.get(), 'a', "s");
  if (r < 0)
    return bad_reply(r);
  const char* code = nullptr;
  while ((r = sd_bus_message_read_basic(reply.get(), 's', &code)) > 0) {
    codes.emplace_back(code);
  }
  if (r < 0)
    return bad_reply(r);
  r = sd_bus_message_exit_container(reply.get());
  if (r < 0)
    return bad_reply(r);
  return codes;
}

Status ManagerClient::disable_method(std::string_view user, std::string_view method,
                                     std::string_view current_code) {
  return call_void("DisableMethod", {user, method, current_code}, Sensitivity::kCarriesSecret);
}

Result<nlohmann::json> ManagerClient::list_sessions(std::string_view user) {
  MFA_TRY(m, new_call("ListSessions", {user}));
  return call_rows(m.get());
}

Status ManagerClient::terminate_session(std::string_view session_id) {
  return call_void("TerminateSession", {session_id});
}

Result<nlohmann::json> ManagerClient::list_users() {
  MFA_TRY(m, new_call("ListUsers"));
  return call_rows(m.get());
}

Status ManagerClient::reset_user(std::string_view user) {
  return call_void("ResetUser", {user});
}

Status ManagerClient::unlock(std::string_view user) {
  return call_void("Unlock", {user});
}

Result<nlohmann::json> ManagerClient::list_audit_events(const AuditQuery& query) {
  MFA_TRY(m, new_call("ListAuditEvents"));
  int r = sd_bus_message_open_container(m.get(), 'a', "{sv}");
  if (r >= 0 && !query.user.empty())
    r = append_string_entry(m.get(), "user", query.user);
  if (r >= 0 && query.since != 0) {
    r = sd_bus_message_append(m.get(), "{sv}", "since", "t", query.since);
  }
  if (r >= 0 && query.limit != 0) {
    r = sd_bus_message_append(m.get(), "{sv}", "limit", "u", query.limit);
  }
  if (r >= 0)
    r = sd_bus_message_close_container(m.get());
  if (r < 0)
    return cannot_send(r);
  return call_rows(m.get());
}

Result<AuditTrailState> ManagerClient::verify_audit_trail() {
  MFA_TRY(m, new_call("VerifyAuditTrail"));
  MFA_TRY(reply, call(m.get()));
  int intact = 0;
  uint64_t rows = 0;
  const char* message = nullptr;
  int r = sd_bus_message_read(reply.get(), "bts", &intact, &rows, &message);
  if (r < 0)
    return bad_reply(r);
  return AuditTrailState{intact != 0, rows, message ? message : ""};
}

Result<nlohmann::json> ManagerClient::call_dict(sd_bus_message* m) {
  MFA_TRY(reply, call(m));
  json out;
  int r = read_dict(reply.get(), out);
  if (r <= 0)
    return bad_reply(r == 0 ? EBADMSG : r);
  return out;
}

Result<nlohmann::json> ManagerClient::check_health() {
  MFA_TRY(m, new_call("CheckHealth"));
  return call_dict(m.get());
}

Result<nlohmann::json> ManagerClient::get_report(uint64_t since) {
  MFA_TRY(m, new_call("GetReport"));
  int r = sd_bus_message_open_container(m.get(), 'a', "{sv}");
  if (r >= 0 && since != 0)
    r = sd_bus_message_append(m.get(), "{sv}", "since", "t", since);
  if (r >= 0)
    r = sd_bus_message_close_container(m.get());
  if (r < 0)
    return cannot_send(r);
  return call_dict(m.get());
}

Result<nlohmann::json> ManagerClient::import_totp(std::string_view user,
                                                  const TotpImportRequest& req) {
  MFA_TRY(m, new_call("ImportTotp", {user}, Sensitivity::kCarriesSecret));
  int r = sd_bus_message_open_container(m.get(), 'a', "{sv}");
  if (r >= 0)
    r = append_string_entry(m.get(), "secret", req.secret_base32.view());
  if (r >= 0 && !req.algorithm.empty())
    r = append_string_entry(m.get(), "algorithm", req.algorithm);
  if (r >= 0 && req.digits != 0)
    r = sd_bus_message_append(m.get(), "{sv}", "digits", "u", req.digits);
  if (r >= 0 && req.period != 0)
    r = sd_bus_message_append(m.get(), "{sv}", "period", "u", req.period);
  if (r >= 0 && !req.name.empty())
    r = append_string_entry(m.get(), "name", req.name);
  if (r >= 0 && !req.source.empty())
    r = append_string_entry(m.get(), "source", req.source);
  if (r >= 0 && req.force)
    r = sd_bus_message_append(m.get(), "{sv}", "force", "b", 1);
  if (r >= 0 && !req.backup_codes.empty()) {
    r = sd_bus_message_open_container(m.get(), 'e', "sv");
    if (r >= 0)
      r = sd_bus_message_append(m.get(), "s", "backup_codes");
    if (r >= 0)
      r = sd_bus_message_open_container(m.get(), 'v', "as");
    if (r >= 0)
      r = sd_bus_message_open_container(m.get(), 'a', "s");
    for (size_t i = 0; r >= 0 && i < req.backup_codes.size(); ++i)
      r = sd_bus_message_append(m.get(), "s", req.backup_codes[i].c_str());
    for (int i = 0; i < 3 && r >= 0; ++i)
      r = sd_bus_message_close_container(m.get());
  }
  if (r >= 0)
    r = sd_bus_message_close_container(m.get());
  if (r < 0)
    return cannot_send(r);
  return call_dict(m.get());
}

Result<nlohmann::json> ManagerClient::export_user(std::string_view user) {
  MFA_TRY(m, new_call("ExportUser", {user}));
  MFA_TRY(reply, call(m.get()));
  // It holds the person's phone number: erased when freed.
  (void)sd_bus_message_sensitive(reply.get());
  const char* text = nullptr;
  int r = sd_bus_message_read(reply.get(), "s", &text);
  if (r < 0)
    return bad_reply(r);
  auto doc = nlohmann::json::parse(text ? text : "", nullptr, /*allow_exceptions=*/false);
  if (!doc.is_object())
    return make_error(Errc::kInternal, "mfad sent an export that is not a JSON object");
  return doc;
}

Result<nlohmann::json> ManagerClient::forget_user(std::string_view user) {
  MFA_TRY(m, new_call("ForgetUser", {user}));
  MFA_TRY(reply, call(m.get()));
  nlohmann::json report = nlohmann::json::object();
  int r = sd_bus_message_enter_container(reply.get(), 'a', "{ss}");
  while (r > 0) {
    const char* key = nullptr;
    const char* value = nullptr;
    r = sd_bus_message_read(reply.get(), "{ss}", &key, &value);
    if (r > 0)
      report[key ? key : ""] = value ? value : "";
  }
  if (r < 0)
    return bad_reply(r);
  return report;
}

Result<nlohmann::json> ManagerClient::list_devices(std::string_view user) {
  MFA_TRY(m, new_call("ListDevices", {user}));
  return call_rows(m.get());
}

Status ManagerClient::forget_device(std::string_view user, std::string_view device) {
  return call_void("ForgetDevice", {user, device});
}

Result<std::pair<std::string, std::string>> ManagerClient::enrollment_notice() {
  MFA_TRY(m, new_call("GetEnrollmentNotice"));
  MFA_TRY(reply, call(m.get()));
  const char* text = nullptr;
  const char* hash = nullptr;
  int r = sd_bus_message_read(reply.get(), "ss", &text, &hash);
  if (r < 0)
    return bad_reply(r);
  return std::make_pair(std::string(text ? text : ""), std::string(hash ? hash : ""));
}

Status ManagerClient::accept_enrollment_notice(std::string_view user, std::string_view sha256) {
  return call_void("AcceptEnrollmentNotice", {user, sha256, "mfactl"});
}

}  // namespace mfa::ctl

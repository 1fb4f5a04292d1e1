// mfactl's side of the bus: one sd-bus connection to org.mfad1 and one function per method of
// org.mfad1.Manager. Failed calls come back as an Error whose message already names the failure
// for a person ("not allowed: ..."), so that mfactl prints "mfactl: " + message.
#pragma once

#include <systemd/sd-bus.h>

#include <cstdint>
#include <initializer_list>
#include <string>
#include <utility>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "common/handles.hpp"
#include "common/result.hpp"
#include "common/secure_buffer.hpp"

namespace mfa::ctl {

// Every call waits at most this long for mfad (sd-bus's default is 25 s, implicit).
inline constexpr uint64_t kCallTimeoutUsec = 30ULL * 1000 * 1000;

struct TotpEnrollmentReply {
  SecureString secret_base32;
  SecureString otpauth_uri;
};

struct AuditQuery {
  std::string user;    // "" = every user
  uint64_t since = 0;  // unix seconds, 0 = from the start
  uint32_t limit = 0;  // 0 = the daemon's default
};

struct AuditTrailState {
  bool intact = false;
  uint64_t rows = 0;
  std::string message;
};

// ImportTotp's request (docs/mfactl.md, "import"): the seed as base32, what the old system used.
struct TotpImportRequest {
  SecureString secret_base32;
  std::string algorithm;  // "" = SHA1
  uint32_t digits = 0;    // 0 = 6
  uint32_t period = 0;    // 0 = 30
  std::string name;       // the authenticator's name
  std::string source;     // "google-authenticator", "oath"
  std::vector<SecureString> backup_codes;
  bool force = false;
};

// A person-readable description of a D-Bus error, with the kind mfactl acts on (kBadCode,
// kStepUpRequired, ...). Never includes anything the caller sent.
Error error_from_bus(std::string_view name, std::string_view message);

class ManagerClient {
 public:
  // address "" = the system bus; otherwise a private bus (sd_bus_set_address + bus client).
  // interactive: polkit may ask the user for a password.
  static Result<ManagerClient> connect(const std::string& address, bool interactive);

  // GetUser: the a{sv} as a JSON object (keys of daemon/authenticator.hpp).
  Result<nlohmann::json> get_user(std::string_view user);
  // device "": the daemon's default ("default").
  Result<TotpEnrollmentReply> begin_totp_enrollment(std::string_view user, std::string_view device,
                                                    std::string_view issuer,
                                                    std::string_view algorithm, uint32_t digits,
                                                    std::string_view current_code);
  Status confirm_totp_enrollment(std::string_view user, std::string_view code);
  // Returns the masked phone number.
  Result<std::string> begin_sms_enrollment(std::string_view user, std::string_view phone_e164,
                                           std::string_view current_code);
  Status confirm_sms_enrollment(std::string_view user, std::string_view code);
  // SendStepUpCode: a code texted to the caller's own phone for the next change's step-up; the
  // masked phone number.
  Result<std::string> send_step_up_code(std::string_view user);
  Result<std::vector<SecureString>> generate_backup_codes(std::string_view user,
                                                          std::string_view current_code);
  // method: "totp", "totp:NAME", "sms" or "backup".
  Status disable_method(std::string_view user, std::string_view method,
                        std::string_view current_code);
  // A JSON array of session objects. user "" = every user (admin).
  Result<nlohmann::json> list_sessions(std::string_view user);
  Status terminate_session(std::string_view session_id);
  // A JSON array of user objects (GetUser's keys).
  Result<nlohmann::json> list_users();
  Status reset_user(std::string_view user);
  Status unlock(std::string_view user);
  // A JSON array of audit rows (ListAuditEvents's row keys).
  Result<nlohmann::json> list_audit_events(const AuditQuery& query);
  Result<AuditTrailState> verify_audit_trail();
  // CheckHealth, GetReport (since: unix seconds, 0 = all) and ImportTotp: their a{sv} as JSON.
  Result<nlohmann::json> check_health();
  Result<nlohmann::json> get_report(uint64_t since);
  Result<nlohmann::json> import_totp(std::string_view user, const TotpImportRequest& request);
  // CreateEnrollmentToken (admin): the token, shown once, and when it expires (unix seconds).
  Result<std::pair<SecureString, uint64_t>> create_enrollment_token(std::string_view user,
                                                                    uint32_t valid_hours);
  // Data rights (docs/mfactl.md): ExportUser's JSON document, parsed; ForgetUser's report;
  // ListDevices's rows ("" = everyone's); the enrollment notice (text "" = none) and its hash.
  Result<nlohmann::json> export_user(std::string_view user);
  Result<nlohmann::json> forget_user(std::string_view user);
  Result<nlohmann::json> list_devices(std::string_view user);
  Status forget_device(std::string_view user, std::string_view device);
  Result<std::pair<std::string, std::string>> enrollment_notice();
  Status accept_enrollment_notice(std::string_view user, std::string_view sha256);

 private:
  // Whether a call's arguments hold a code or a phone number: the message is then erased when
  // freed.
  enum class Sensitivity { kPlain, kCarriesSecret };

  explicit ManagerClient(BusPtr bus) : bus_(std::move(bus)) {}
  Result<BusMessagePtr> new_call(const char* member);
  // A call with these string arguments.
  Result<BusMessagePtr> new_call(const char* member,
                                 std::initializer_list<std::string_view> strings,
                                 Sensitivity sensitivity = Sensitivity::kPlain);
  // Sends m and waits for the reply.
  Result<BusMessagePtr> call(sd_bus_message* m);
  // A call with string arguments and no reply to read.
  Status call_void(const char* member, std::initializer_list<std::string_view> strings,
                   Sensitivity sensitivity = Sensitivity::kPlain);
  // A call with string arguments and one string in its reply.
  Result<std::string> call_string(const char* member,
                                  std::initializer_list<std::string_view> strings,
                                  Sensitivity sensitivity = Sensitivity::kPlain);
  // Sends m and reads its a{sv} reply as a JSON object.
  Result<nlohmann::json> call_dict(sd_bus_message* m);
  // Sends m and reads its aa{sv} reply as a JSON array of objects.
  Result<nlohmann::json> call_rows(sd_bus_message* m);

  BusPtr bus_;
};

}  // namespace mfa::ctl

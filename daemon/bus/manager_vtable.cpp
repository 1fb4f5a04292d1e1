// org.mfad1.Manager's vtable: each method's access, flags and handler (manager_calls.cpp).
#include <cerrno>
#include <exception>
#include <new>

#include "bus/manager.hpp"
#include "common/dbus_names.hpp"
#include "core/log.hpp"

namespace mfa {

namespace {

// sd-bus callbacks are C: nothing may be thrown through them.
// Access is decided here, per method, and not by sd-bus's own check (the bus is trusted, see
// main.cpp): kRoot methods are refused to every sender but root before their handler runs; the
// others authorize in the Authenticator.
enum class Access { kRoot, kOpen };

// The open ones from callers other than root wait their turn (ManagerBus::admit_open_call).
template <int (ManagerBus::*Handler)(sd_bus_message*), Access kAccess>
int dispatch(sd_bus_message* m, void* userdata, sd_bus_error* ret_error) {
  auto* mb = static_cast<ManagerBus*>(userdata);
  try {
    // A sender not known yet: the call goes on once the bus said who it is (caller_lookup.cpp).
    if (mb->identify_first(m, Handler, kAccess == Access::kRoot) != 0)
      return 1;
    const int r =
        kAccess == Access::kRoot ? mb->refuse_unless_root(m) : mb->admit_open_call(m, Handler);
    if (r != 0)
      return r;
  } catch (const std::bad_alloc&) {
    return -ENOMEM;
  } catch (...) {
    MFA_LOG_ERROR("%s failed", sd_bus_message_get_member(m));
    return sd_bus_error_set(ret_error, dbus::kErrorInternal, "Internal error in mfad.");
  }
  return mb->handle(m, Handler, ret_error);
}

int get_degraded(sd_bus* /*bus*/, const char* /*path*/, const char* /*interface*/,
                 const char* /*property*/, sd_bus_message* reply, void* userdata,
                 sd_bus_error* /*ret_error*/) {
  return sd_bus_message_append(reply, "b",
                               static_cast<int>(static_cast<ManagerBus*>(userdata)->degraded()));
}

int get_version(sd_bus* /*bus*/, const char* /*path*/, const char* /*interface*/,
                const char* /*property*/, sd_bus_message* reply, void* /*userdata*/,
                sd_bus_error* /*ret_error*/) {
  return sd_bus_message_append(reply, "s", MFA_VERSION);
}

// PAM side: root only (no SD_BUS_VTABLE_UNPRIVILEGED, so the introspection says so; the bus policy
// and dispatch<..., Access::kRoot> enforce it). Everything else is open to unprivileged callers
// and authorized by the Authenticator. Calls carrying codes or returning secrets are SENSITIVE:
// sd-bus erases them when freed.
constexpr uint64_t kRootOnly = 0;
constexpr uint64_t kRootOnlySensitive = SD_BUS_VTABLE_SENSITIVE;
constexpr uint64_t kOpen = SD_BUS_VTABLE_UNPRIVILEGED;
constexpr uint64_t kOpenSensitive = SD_BUS_VTABLE_UNPRIVILEGED | SD_BUS_VTABLE_SENSITIVE;

const sd_bus_vtable kManagerVtable[] = {
    SD_BUS_VTABLE_START(0),
    SD_BUS_PROPERTY("Version", "s", get_version, 0, SD_BUS_VTABLE_PROPERTY_CONST),
    SD_BUS_PROPERTY("Degraded", "b", get_degraded, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
    SD_BUS_METHOD_WITH_ARGS("BeginAuthentication", SD_BUS_ARGS("s", user, "a{ss}", context),
                            SD_BUS_RESULT("s", challenge, "as", methods),
                            (dispatch<&ManagerBus::begin_authentication, Access::kRoot>),
                            kRootOnly),
    SD_BUS_METHOD_WITH_ARGS("SendSmsCode", SD_BUS_ARGS("s", challenge),
                            SD_BUS_RESULT("s", masked_phone),
                            (dispatch<&ManagerBus::send_sms_code, Access::kRoot>), kRootOnly),
    SD_BUS_METHOD_WITH_ARGS("Verify", SD_BUS_ARGS("s", challenge, "s", code),
                            SD_BUS_RESULT("s", method),
                            (dispatch<&ManagerBus::verify, Access::kRoot>), kRootOnlySensitive),
    SD_BUS_METHOD_WITH_ARGS("EndAuthentication", SD_BUS_ARGS("s", challenge), SD_BUS_NO_RESULT,
                            (dispatch<&ManagerBus::end_authentication, Access::kRoot>), kRootOnly),
    SD_BUS_METHOD_WITH_ARGS(
        "GetLoginEnrollment", SD_BUS_ARGS("s", challenge), SD_BUS_RESULT("a{sv}", offer),
        (dispatch<&ManagerBus::get_login_enrollment, Access::kRoot>), kRootOnly),
    SD_BUS_METHOD_WITH_ARGS(
        "BeginLoginEnrollment", SD_BUS_ARGS("s", challenge, "s", token), SD_BUS_RESULT("as", lines),
        (dispatch<&ManagerBus::begin_login_enrollment, Access::kRoot>), kRootOnlySensitive),
    SD_BUS_METHOD_WITH_ARGS("ConfirmLoginEnrollment", SD_BUS_ARGS("s", challenge, "s", code),
                            SD_BUS_RESULT("as", backup_codes),
                            (dispatch<&ManagerBus::confirm_login_enrollment, Access::kRoot>),
                            kRootOnlySensitive),
    SD_BUS_METHOD_WITH_ARGS("SkipEnrollment", SD_BUS_ARGS("s", challenge), SD_BUS_NO_RESULT,
                            (dispatch<&ManagerBus::skip_enrollment, Access::kRoot>), kRootOnly),
    SD_BUS_METHOD_WITH_ARGS("OpenSession", SD_BUS_ARGS("s", user, "a{ss}", context),
                            SD_BUS_RESULT("s", session_id),
                            (dispatch<&ManagerBus::open_session, Access::kRoot>), kRootOnly),
    SD_BUS_METHOD_WITH_ARGS("CheckFreshSession", SD_BUS_ARGS("s", user, "a{ss}", context),
                            SD_BUS_RESULT("b", fresh, "s", session_id),
                            (dispatch<&ManagerBus::check_fresh_session, Access::kRoot>), kRootOnly),
    SD_BUS_METHOD_WITH_ARGS("CloseSession", SD_BUS_ARGS("s", session_id), SD_BUS_NO_RESULT,
                            (dispatch<&ManagerBus::close_session, Access::kRoot>), kRootOnly),
    SD_BUS_METHOD_WITH_ARGS("GetUser", SD_BUS_ARGS("s", user), SD_BUS_RESULT("a{sv}", info),
                            (dispatch<&ManagerBus::get_user, Access::kOpen>), kOpen),
    SD_BUS_METHOD_WITH_ARGS("BeginTotpEnrollment", SD_BUS_ARGS("s", user, "a{sv}", options),
                            SD_BUS_RESULT("s", secret_base32, "s", otpauth_uri),
                            (dispatch<&ManagerBus::begin_totp_enrollment, Access::kOpen>),
                            kOpenSensitive),
    SD_BUS_METHOD_WITH_ARGS(
        "ConfirmTotpEnrollment", SD_BUS_ARGS("s", user, "s", code), SD_BUS_NO_RESULT,
        (dispatch<&ManagerBus::confirm_totp_enrollment, Access::kOpen>), kOpenSensitive),
    SD_BUS_METHOD_WITH_ARGS(
        "BeginSmsEnrollment", SD_BUS_ARGS("s", user, "s", phone_e164, "s", current_code),
        SD_BUS_RESULT("s", masked_phone),
        (dispatch<&ManagerBus::begin_sms_enrollment, Access::kOpen>), kOpenSensitive),
    SD_BUS_METHOD_WITH_ARGS(
        "ConfirmSmsEnrollment", SD_BUS_ARGS("s", user, "s", code), SD_BUS_NO_RESULT,
        (dispatch<&ManagerBus::confirm_sms_enrollment, Access::kOpen>), kOpenSensitive),
    SD_BUS_METHOD_WITH_ARGS("GenerateBackupCodes", SD_BUS_ARGS("s", user, "s", current_code),
                            SD_BUS_RESULT("as", codes),
                            (dispatch<&ManagerBus::generate_backup_codes, Access::kOpen>),
                            kOpenSensitive),
    SD_BUS_METHOD_WITH_ARGS("DisableMethod", SD_BUS_ARGS("s", user, "s", method, "s", current_code),
                            SD_BUS_NO_RESULT,
                            (dispatch<&ManagerBus::disable_method, Access::kOpen>), kOpenSensitive),
    SD_BUS_METHOD_WITH_ARGS("SendStepUpCode", SD_BUS_ARGS("s", user),
                            SD_BUS_RESULT("s", masked_phone),
                            (dispatch<&ManagerBus::send_step_up_code, Access::kOpen>), kOpen),
    SD_BUS_METHOD_WITH_ARGS("ListSessions", SD_BUS_ARGS("s", user),
                            SD_BUS_RESULT("aa{sv}", sessions),
                            (dispatch<&ManagerBus::list_sessions, Access::kOpen>), kOpen),
    SD_BUS_METHOD_WITH_ARGS("TerminateSession", SD_BUS_ARGS("s", session_id), SD_BUS_NO_RESULT,
                            (dispatch<&ManagerBus::terminate_session, Access::kOpen>), kOpen),
    SD_BUS_METHOD_WITH_ARGS("ListUsers", SD_BUS_NO_ARGS, SD_BUS_RESULT("aa{sv}", users),
                            (dispatch<&ManagerBus::list_users, Access::kOpen>), kOpen),
    SD_BUS_METHOD_WITH_ARGS("ResetUser", SD_BUS_ARGS("s", user), SD_BUS_NO_RESULT,
                            (dispatch<&ManagerBus::reset_user, Access::kOpen>), kOpen),
    SD_BUS_METHOD_WITH_ARGS("Unlock", SD_BUS_ARGS("s", user), SD_BUS_NO_RESULT,
                            (dispatch<&ManagerBus::unlock, Access::kOpen>), kOpen),
    SD_BUS_METHOD_WITH_ARGS("ListAuditEvents", SD_BUS_ARGS("a{sv}", filter),
                            SD_BUS_RESULT("aa{sv}", events),
                            (dispatch<&ManagerBus::list_audit_events, Access::kOpen>), kOpen),
    SD_BUS_METHOD_WITH_ARGS("CreateEnrollmentToken", SD_BUS_ARGS("s", user, "u", valid_hours),
                            SD_BUS_RESULT("s", token, "t", expires),
                            (dispatch<&ManagerBus::create_enrollment_token, Access::kOpen>),
                            kOpenSensitive),
    SD_BUS_METHOD_WITH_ARGS("VerifyAuditTrail", SD_BUS_NO_ARGS,
                            SD_BUS_RESULT("b", intact, "t", rows, "s", message),
                            (dispatch<&ManagerBus::verify_audit_trail, Access::kOpen>), kOpen),
    SD_BUS_METHOD_WITH_ARGS("ImportTotp", SD_BUS_ARGS("s", user, "a{sv}", options),
                            SD_BUS_RESULT("a{sv}", result),
                            (dispatch<&ManagerBus::import_totp, Access::kOpen>), kOpenSensitive),
    SD_BUS_METHOD_WITH_ARGS("GetReport", SD_BUS_ARGS("a{sv}", filter),
                            SD_BUS_RESULT("a{sv}", report),
                            (dispatch<&ManagerBus::get_report, Access::kOpen>), kOpen),
    SD_BUS_METHOD_WITH_ARGS("CheckHealth", SD_BUS_NO_ARGS, SD_BUS_RESULT("a{sv}", health),
                            (dispatch<&ManagerBus::check_health, Access::kOpen>), kOpen),
    SD_BUS_METHOD_WITH_ARGS("ExportUser", SD_BUS_ARGS("s", user), SD_BUS_RESULT("s", json),
                            (dispatch<&ManagerBus::export_user, Access::kOpen>), kOpenSensitive),
    SD_BUS_METHOD_WITH_ARGS("ForgetUser", SD_BUS_ARGS("s", user), SD_BUS_RESULT("a{ss}", report),
                            (dispatch<&ManagerBus::forget_user, Access::kOpen>), kOpen),
    SD_BUS_METHOD_WITH_ARGS("ListDevices", SD_BUS_ARGS("s", user), SD_BUS_RESULT("aa{sv}", devices),
                            (dispatch<&ManagerBus::list_devices, Access::kOpen>), kOpen),
    SD_BUS_METHOD_WITH_ARGS("ForgetDevice", SD_BUS_ARGS("s", user, "s", device), SD_BUS_NO_RESULT,
                            (dispatch<&ManagerBus::forget_device, Access::kOpen>), kOpen),
    SD_BUS_METHOD_WITH_ARGS("GetEnrollmentNotice", SD_BUS_NO_ARGS,
                            SD_BUS_RESULT("s", text, "s", sha256),
                            (dispatch<&ManagerBus::get_enrollment_notice, Access::kOpen>), kOpen),
    SD_BUS_METHOD_WITH_ARGS(
        "AcceptEnrollmentNotice", SD_BUS_ARGS("s", user, "s", sha256, "s", via), SD_BUS_NO_RESULT,
        (dispatch<&ManagerBus::accept_enrollment_notice, Access::kOpen>), kOpen),
    SD_BUS_SIGNAL_WITH_ARGS("SessionOpened", SD_BUS_ARGS("s", session_id, "s", user), 0),
    SD_BUS_SIGNAL_WITH_ARGS("SessionClosed", SD_BUS_ARGS("s", session_id, "s", user, "s", reason),
                            0),
    SD_BUS_SIGNAL_WITH_ARGS("SecurityEvent", SD_BUS_ARGS("s", user, "s", kind, "a{ss}", details),
                            0),
    SD_BUS_VTABLE_END,
};

}  // namespace

int ManagerBus::handle(sd_bus_message* m, Handler handler, sd_bus_error* ret_error) {
  try {
    return (this->*handler)(m);
  } catch (const std::bad_alloc&) {
    return -ENOMEM;
  } catch (const std::exception& e) {
    MFA_LOG_ERROR("%s failed: %s", sd_bus_message_get_member(m), e.what());
  } catch (...) {
    MFA_LOG_ERROR("%s failed", sd_bus_message_get_member(m));
  }
  return sd_bus_error_set(ret_error, dbus::kErrorInternal, "Internal error in mfad.");
}

const sd_bus_vtable* ManagerBus::vtable() {
  return kManagerVtable;
}

}  // namespace mfa

// org.mfad1.Manager's data-rights handlers (docs/dbus-api.md): ExportUser, ForgetUser,
// ListDevices, ForgetDevice, GetEnrollmentNotice, AcceptEnrollmentNotice. Read and bound the
// arguments, open the call, ask the Authenticator (core/authenticator_data_rights.cpp).
#include <optional>
#include <string>

#include "bus/call_macros.hpp"
#include "bus/args.hpp"
#include "bus/manager.hpp"
#include "common/dbus_names.hpp"
#include "fleet/coordinator.hpp"

namespace mfa {

using bus::read_string;

namespace {

// A device id (a SHA-256 in hex) and a notice's SHA-256; "mfactl" or "login".
constexpr size_t kMaxDeviceIdLength = 128;
constexpr size_t kMaxNoticeHashLength = 64;
constexpr size_t kMaxViaLength = 16;

int append_device(sd_bus_message* m, const DeviceRecord& d) {
  int r = sd_bus_message_open_container(m, 'a', "{sv}");
  if (r >= 0)
    r = sd_bus_message_append(m, "{sv}", "user", "s", d.user.c_str());
  if (r >= 0)
    r = sd_bus_message_append(m, "{sv}", "device", "s", d.fingerprint.c_str());
  if (r >= 0)
    r = sd_bus_message_append(m, "{sv}", "rhost", "s", d.rhost.c_str());
  if (r >= 0)
    r = sd_bus_message_append(m, "{sv}", "client", "s", d.client.c_str());
  if (r >= 0)
    r = sd_bus_message_append(m, "{sv}", "first_seen", "t",
                              static_cast<uint64_t>(d.first_seen_usec / 1000000));
  if (r >= 0)
    r = sd_bus_message_append(m, "{sv}", "last_seen", "t",
                              static_cast<uint64_t>(d.last_seen_usec / 1000000));
  if (r >= 0)
    r = sd_bus_message_close_container(m);
  return r;
}

}  // namespace

int ManagerBus::export_user(sd_bus_message* m) {
  std::optional<Error> bad;
  std::string user;
  MFA_READ(read_string(m, "user name", dbus::kMaxUserNameLength, &user, &bad));
  MFA_CALL(call, m, bad);
  return run(call, std::nullopt, [this, user](PendingCall& c) {
    // The person's full phone number is in it: sensitive.
    return reply_to(
        c.message(), auth_.export_user(c.caller(), user),
        [](sd_bus_message* reply, const std::string& json) {
          return sd_bus_message_append(reply, "s", json.c_str());
        },
        Secrecy::kSensitive);
  });
}

int ManagerBus::forget_user(sd_bus_message* m) {
  // As ResetUser: in fleet mode the shared records go from Redis before the reply.
  return user_call(m, FleetCallKind::kAdmin, [this](PendingCall& c, const std::string& user) {
    return reply_to(c.message(), auth_.forget_user(c.caller(), user),
                    [](sd_bus_message* reply, const ForgetReport& report) {
                      return sd_bus_message_append(
                          reply, "a{ss}", 6, "pseudonym", report.pseudonym.c_str(), "audit_rows",
                          std::to_string(report.audit_rows).c_str(), "audit_rows_kept",
                          std::to_string(report.audit_rows_kept).c_str(), "sessions",
                          std::to_string(report.sessions).c_str(), "devices",
                          std::to_string(report.devices).c_str(), "data_key",
                          report.data_key ? "destroyed" : "none");
                    });
  });
}

int ManagerBus::list_devices(sd_bus_message* m) {
  std::optional<Error> bad;
  std::string user;
  MFA_READ(read_string(m, "user name", dbus::kMaxUserNameLength, &user, &bad));
  MFA_CALL(call, m, bad);
  return run(call, std::nullopt, [this, user](PendingCall& c) {
    return reply_to(c.message(), auth_.list_devices(c.caller(), user),
                    [](sd_bus_message* reply, const std::vector<DeviceRecord>& devices) {
                      return append_array(reply, "a{sv}", devices, append_device);
                    });
  });
}

int ManagerBus::forget_device(sd_bus_message* m) {
  std::optional<Error> bad;
  std::string user;
  std::string device;
  MFA_READ(read_string(m, "user name", dbus::kMaxUserNameLength, &user, &bad));
  MFA_READ(read_string(m, "device", kMaxDeviceIdLength, &device, &bad));
  MFA_CALL(call, m, bad);
  return run(call, std::nullopt, [this, user, device](PendingCall& c) {
    return reply_to(c.message(), auth_.forget_device(c.caller(), user, device));
  });
}

int ManagerBus::get_enrollment_notice(sd_bus_message* m) {
  MFA_CALL(call, m, std::nullopt);
  return run(call, std::nullopt, [this](PendingCall& c) {
    return reply_to(c.message(), auth_.enrollment_notice(),
                    [](sd_bus_message* reply, const EnrollmentNotice& notice) {
                      return sd_bus_message_append(reply, "ss", notice.text.c_str(),
                                                   notice.sha256_hex.c_str());
                    });
  });
}

int ManagerBus::accept_enrollment_notice(sd_bus_message* m) {
  std::optional<Error> bad;
  std::string user;
  std::string sha256;
  std::string via;
  MFA_READ(read_string(m, "user name", dbus::kMaxUserNameLength, &user, &bad));
  MFA_READ(read_string(m, "notice hash", kMaxNoticeHashLength, &sha256, &bad));
  MFA_READ(read_string(m, "via", kMaxViaLength, &via, &bad));
  MFA_CALL(call, m, bad);
  return run(call, std::nullopt, [this, user, sha256, via](PendingCall& c) {
    return reply_to(c.message(), auth_.accept_enrollment_notice(c.caller(), user, sha256, via));
  });
}

}  // namespace mfa

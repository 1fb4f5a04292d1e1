// org.mfad1.Manager's rollout calls (docs/rollout.md): the root-only calls of an enrollment during
// login, bound to a challenge of BeginAuthentication, and the admin's CreateEnrollmentToken.
#include <memory>
#include <optional>
#include <string>
#include <utility>

#include "bus/call_macros.hpp"
#include "bus/args.hpp"
#include "bus/manager.hpp"
#include "common/dbus_names.hpp"
#include "fleet/coordinator.hpp"

namespace mfa {

using bus::kMaxChallengeLength;
using bus::read_secret;
using bus::read_string;

namespace {

int append_lines(sd_bus_message* reply, const std::vector<SecureString>& lines) {
  return append_array(reply, "s", lines, [](sd_bus_message* r, const SecureString& s) {
    return sd_bus_message_append(r, "s", s.c_str());
  });
}

int append_info(sd_bus_message* m, const LoginEnrollmentInfo& info) {
  int r = sd_bus_message_open_container(m, 'a', "{sv}");
  if (r >= 0)
    r = sd_bus_message_append(m, "{sv}", "enroll", "b", static_cast<int>(info.enroll));
  if (r >= 0)
    r = sd_bus_message_append(m, "{sv}", "skip", "b", static_cast<int>(info.skip));
  if (r >= 0)
    r = sd_bus_message_append(m, "{sv}", "token_required", "b",
                              static_cast<int>(info.token_required));
  if (r >= 0)
    r = sd_bus_message_append(m, "{sv}", "deadline", "t", info.deadline);
  if (r >= 0)
    r = sd_bus_message_append(m, "{sv}", "days_left", "u", info.days_left);
  if (r >= 0)
    r = sd_bus_message_append(m, "{sv}", "message", "s", info.message.c_str());
  if (r >= 0)
    r = sd_bus_message_close_container(m);
  return r;
}

}  // namespace

// The challenge's user in fleet mode: its state is read from Redis first, and what the call
// changes (a new factor, backup codes) is confirmed there before the reply.
int ManagerBus::rollout_call(sd_bus_message* m, const char* second, size_t second_limit,
                             FleetCallKind kind, RolloutDecide decide) {
  std::optional<Error> bad;
  std::string challenge;
  SecureString arg;
  MFA_READ(read_string(m, "challenge", kMaxChallengeLength, &challenge, &bad));
  if (second != nullptr)
    MFA_READ(read_secret(m, second, second_limit, &arg, &bad));
  MFA_CALL(call, m, bad);
  const std::string user = fleet_ ? auth_.challenge_user(call->caller(), challenge) : "";
  std::optional<FleetScope> scope;
  if (!user.empty())
    scope = fleet_scope(user, kind);
  return run(
      call, std::move(scope),
      [challenge, arg = std::make_shared<const SecureString>(std::move(arg)),
       decide = std::move(decide)](PendingCall& c) { return decide(c, challenge, arg->view()); });
}

int ManagerBus::get_login_enrollment(sd_bus_message* m) {
  return rollout_call(m, nullptr, 0, FleetCallKind::kRead,
                      [this](PendingCall& c, const std::string& challenge, std::string_view) {
                        return reply_to(c.message(),
                                        auth_.get_login_enrollment(c.caller(), challenge),
                                        append_info);
                      });
}

int ManagerBus::begin_login_enrollment(sd_bus_message* m) {
  return rollout_call(m, "token", dbus::kMaxTokenLength, FleetCallKind::kChange,
                      [this](PendingCall& c, const std::string& challenge, std::string_view token) {
                        // The reply carries the secret: sensitive.
                        return reply_to(c.message(),
                                        auth_.begin_login_enrollment(c.caller(), challenge, token),
                                        append_lines, Secrecy::kSensitive);
                      });
}

int ManagerBus::confirm_login_enrollment(sd_bus_message* m) {
  return rollout_call(m, "code", dbus::kMaxCodeLength, FleetCallKind::kChange,
                      [this](PendingCall& c, const std::string& challenge, std::string_view code) {
                        Outcome o =
                            reply_to(c.message(),
                                     auth_.confirm_login_enrollment(c.caller(), challenge, code),
                                     append_lines, Secrecy::kSensitive);
                        return o;
                      });
}

int ManagerBus::skip_enrollment(sd_bus_message* m) {
  return rollout_call(m, nullptr, 0, FleetCallKind::kRead,
                      [this](PendingCall& c, const std::string& challenge, std::string_view) {
                        return reply_to(c.message(), auth_.skip_enrollment(c.caller(), challenge));
                      });
}

int ManagerBus::create_enrollment_token(sd_bus_message* m) {
  std::optional<Error> bad;
  std::string user;
  uint32_t hours = 0;
  MFA_READ(read_string(m, "user name", dbus::kMaxUserNameLength, &user, &bad));
  MFA_READ(sd_bus_message_read(m, "u", &hours));
  MFA_CALL(call, m, bad);
  return run(call, std::nullopt, [this, user, hours](PendingCall& c) {
    const int valid = hours > 100000 ? 100000 : static_cast<int>(hours);
    return reply_to(
        c.message(), auth_.create_enrollment_token(c.caller(), user, valid),
        [](sd_bus_message* reply, const EnrollmentToken& t) {
          return sd_bus_message_append(reply, "st", t.token.c_str(), t.expires);
        },
        Secrecy::kSensitive);
  });
}

}  // namespace mfa

// CheckFreshSession (docs/sudo.md, `fresh=SECONDS`): root only, like the rest of the PAM side.
// The audit ids it matches come from the kernel through the bus (read_audit_ids), never from the
// arguments: a caller names a user and a number of seconds (context "fresh"), nothing that binds
// a session.
#include <optional>
#include <string>

#include "bus/args.hpp"
#include "bus/manager.hpp"
#include "common/dbus_names.hpp"
#include "core/sessions.hpp"

namespace mfa {

using bus::read_string;
using bus::read_string_map;

int ManagerBus::check_fresh_session(sd_bus_message* m) {
  std::optional<Error> bad;
  std::string user;
  StringMap context;
  int r = read_string(m, "user name", dbus::kMaxUserNameLength, &user, &bad);
  if (r >= 0)
    r = read_string_map(m, &context, &bad);
  if (r < 0)
    return r;
  CallPtr call = open_call(m, bad);
  if (!call)
    return 1;
  if (!sessions_supported(call))
    return 1;
  uint32_t audit_session = Caller::kUnsetAuditId;
  uint32_t audit_login_uid = Caller::kUnsetAuditId;
  read_audit_ids(call->caller().pid, &audit_session, &audit_login_uid);
  call->set_audit_ids(audit_session, audit_login_uid);
  return run(call, std::nullopt, [this, user, context](PendingCall& c) {
    return reply_to(c.message(), sessions_->fresh_session(c.caller(), user, context),
                    [](sd_bus_message* reply, const std::optional<std::string>& id) {
                      return sd_bus_message_append(reply, "bs", id.has_value(),
                                                   id ? id->c_str() : "");
                    });
  });
}

}  // namespace mfa

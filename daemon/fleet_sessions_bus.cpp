// Fleet mode's session calls on the bus (docs/fleet.md "Sessions across hosts"): OpenSession,
// ListSessions and TerminateSession are deferred replies, answered on the event loop once Redis
// answered (within its timeout) or at once when degraded; FleetSessions decides.
#include <cstring>
#include <memory>

#include "common/dbus_names.hpp"
#include "daemon/daemon_log.hpp"
#include "daemon/fleet_sessions.hpp"
#include "daemon/manager_bus.hpp"
#include "daemon/sessions_bus.hpp"

namespace mfa {

namespace {

using HeldCall = std::shared_ptr<sd_bus_message>;

HeldCall hold(sd_bus_message* m) {
  return HeldCall(sd_bus_message_ref(m), [](sd_bus_message* p) { sd_bus_message_unref(p); });
}

BusMessagePtr method_return(sd_bus_message* call, int* ret_r) {
  sd_bus_message* reply = nullptr;
  *ret_r = sd_bus_message_new_method_return(call, &reply);
  return BusMessagePtr(reply);
}

}  // namespace

int ManagerBus::fleet_open_session(sd_bus_message* m, const Caller& caller, const std::string& user,
                                   const StringMap& context) {
  HeldCall call = hold(m);
  fleet_sessions_->open(caller, user, context, [this, call](Result<std::string> id) {
    try {
      int r = 0;
      if (!id.ok()) {
        r = reply_error(call.get(), id.error());
      } else {
        BusMessagePtr reply = method_return(call.get(), &r);
        if (r >= 0)
          r = sd_bus_message_append(reply.get(), "s", id->c_str());
        if (r >= 0)
          r = finish(call.get(), std::move(reply), true);
      }
      if (r < 0)
        (void)sd_bus_reply_method_errno(call.get(), r, nullptr);
      after_write();
    } catch (...) {
      MFA_LOG_ERROR("OpenSession reply failed");
      (void)sd_bus_reply_method_errorf(call.get(), dbus::kErrorInternal, "Internal error in mfad.");
    }
  });
  return 1;
}

int ManagerBus::fleet_list_sessions(sd_bus_message* m, const Caller& caller,
                                    const std::string& user) {
  HeldCall call = hold(m);
  fleet_sessions_->list(caller, user, [this, call](Result<std::vector<FleetSessionRow>> rows) {
    try {
      int r = 0;
      if (!rows.ok()) {
        r = reply_error(call.get(), rows.error());
      } else {
        BusMessagePtr reply = method_return(call.get(), &r);
        if (r >= 0)
          r = sd_bus_message_open_container(reply.get(), 'a', "a{sv}");
        for (size_t i = 0; r >= 0 && i < rows->size(); ++i)
          r = append_session_record(reply.get(), (*rows)[i].record, (*rows)[i].host);
        if (r >= 0)
          r = sd_bus_message_close_container(reply.get());
        if (r >= 0)
          r = finish(call.get(), std::move(reply), true);
      }
      if (r < 0)
        (void)sd_bus_reply_method_errno(call.get(), r, nullptr);
      after_write();
    } catch (...) {
      MFA_LOG_ERROR("ListSessions reply failed");
      (void)sd_bus_reply_method_errorf(call.get(), dbus::kErrorInternal, "Internal error in mfad.");
    }
  });
  return 1;
}

int ManagerBus::fleet_terminate_session(sd_bus_message* m, const Caller& caller,
                                        const std::string& session_id) {
  HeldCall call = hold(m);
  fleet_sessions_->terminate(caller, session_id, [this, call](Status st) {
    try {
      int r = reply_status(call.get(), st);
      if (r < 0)
        (void)sd_bus_reply_method_errno(call.get(), r, nullptr);
      after_write();
    } catch (...) {
      MFA_LOG_ERROR("TerminateSession reply failed");
      (void)sd_bus_reply_method_errorf(call.get(), dbus::kErrorInternal, "Internal error in mfad.");
    }
  });
  return 1;
}

}  // namespace mfa

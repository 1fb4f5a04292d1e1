// Fleet mode's session calls on the bus (docs/fleet.md "Sessions across hosts"): OpenSession,
// ListSessions and TerminateSession are deferred replies, answered on the event loop once Redis
// answered (within its timeout) or at once when degraded; FleetSessions decides.
#include <cstring>
#include <memory>

#include "common/dbus_names.hpp"
#include "core/log.hpp"
#include "fleet/sessions.hpp"
#include "bus/manager.hpp"
#include "bus/sessions.hpp"

namespace mfa {

namespace {

BusMessagePtr method_return(sd_bus_message* call, int* ret_r) {
  sd_bus_message* reply = nullptr;
  *ret_r = sd_bus_message_new_method_return(call, &reply);
  return BusMessagePtr(reply);
}

// Answers a held call from the event loop: reply() sends the answer or returns a negative errno,
// which becomes the answer; then after(). Nothing thrown escapes into sd-event.
template <typename Reply, typename After>
void answer_held(sd_bus_message* call, const char* method, Reply reply, After after) {
  try {
    int r = reply();
    if (r < 0)
      (void)sd_bus_reply_method_errno(call, r, nullptr);
    after();
  } catch (...) {
    MFA_LOG_ERROR("%s reply failed", method);
    (void)sd_bus_reply_method_errorf(call, dbus::kErrorInternal, "Internal error in mfad.");
  }
}

}  // namespace

int ManagerBus::fleet_open_session(sd_bus_message* m, const Caller& caller, const std::string& user,
                                   const StringMap& context) {
  SharedMessage call = share_message(m);
  fleet_sessions_->open(caller, user, context, [this, call](Result<std::string> id) {
    answer_held(
        call.get(), "OpenSession",
        [&] {
          if (!id.ok())
            return reply_error(call.get(), id.error());
          int r = 0;
          BusMessagePtr reply = method_return(call.get(), &r);
          if (r >= 0)
            r = sd_bus_message_append(reply.get(), "s", id->c_str());
          if (r >= 0)
            r = finish(call.get(), std::move(reply), true);
          return r;
        },
        [this] { after_write(); });
  });
  return 1;
}

int ManagerBus::fleet_list_sessions(sd_bus_message* m, const Caller& caller,
                                    const std::string& user) {
  SharedMessage call = share_message(m);
  fleet_sessions_->list(caller, user, [this, call](Result<std::vector<FleetSessionRow>> rows) {
    answer_held(
        call.get(), "ListSessions",
        [&] {
          if (!rows.ok())
            return reply_error(call.get(), rows.error());
          int r = 0;
          BusMessagePtr reply = method_return(call.get(), &r);
          if (r >= 0)
            r = sd_bus_message_open_container(reply.get(), 'a', "a{sv}");
          for (size_t i = 0; r >= 0 && i < rows->size(); ++i)
            r = append_session_record(reply.get(), (*rows)[i].record, (*rows)[i].host);
          if (r >= 0)
            r = sd_bus_message_close_container(reply.get());
          if (r >= 0)
            r = finish(call.get(), std::move(reply), true);
          return r;
        },
        [this] { after_write(); });
  });
  return 1;
}

int ManagerBus::fleet_terminate_session(sd_bus_message* m, const Caller& caller,
                                        const std::string& session_id) {
  SharedMessage call = share_message(m);
  fleet_sessions_->terminate(caller, session_id, [this, call](Status st) {
    answer_held(
        call.get(), "TerminateSession", [&] { return reply_status(call.get(), st); },
        [this] { after_write(); });
  });
  return 1;
}

}  // namespace mfa

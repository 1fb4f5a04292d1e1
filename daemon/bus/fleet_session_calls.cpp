// Fleet mode's session calls on the bus (docs/fleet.md "Sessions across hosts"): FleetSessions
// decides OpenSession, ListSessions and TerminateSession, once Redis answered (within its
// timeout) or at once when degraded; the call resumes with its decision (PendingCall::then()).
#include <string>
#include <vector>

#include "bus/manager.hpp"
#include "bus/sessions.hpp"
#include "fleet/sessions.hpp"

namespace mfa {

void ManagerBus::fleet_open_session(const CallPtr& call, const std::string& user,
                                    const StringMap& context) {
  fleet_sessions_->open(
      call->caller(), user, context,
      call->then<Result<std::string>>(
          CallWait::kRedis, [this](const CallPtr& opened, Result<std::string> id) {
            answer(opened, reply_to(opened->message(), id, append_string));
          }));
}

void ManagerBus::fleet_list_sessions(const CallPtr& call, const std::string& user) {
  fleet_sessions_->list(
      call->caller(), user,
      call->then<Result<std::vector<FleetSessionRow>>>(
          CallWait::kRedis,
          [this, user](const CallPtr& listed, Result<std::vector<FleetSessionRow>> rows) {
            decided(listed,
                    reply_to(listed->message(), rows,
                             [](sd_bus_message* reply, const std::vector<FleetSessionRow>& list) {
                               return append_array(reply, "a{sv}", list,
                                                   [](sd_bus_message* r, const FleetSessionRow& s) {
                                                     return append_session_record(r, s.record,
                                                                                  s.host);
                                                   });
                             }),
                    [this, user](const CallPtr& again) { fleet_list_sessions(again, user); });
          }));
}

void ManagerBus::fleet_terminate_session(const CallPtr& call, const std::string& session_id) {
  fleet_sessions_->terminate(
      call->caller(), session_id,
      call->then<Status>(CallWait::kRedis, [this, session_id](const CallPtr& ended, Status status) {
        decided(ended, reply_to(ended->message(), status),
                [this, session_id](const CallPtr& again) {
                  fleet_terminate_session(again, session_id);
                });
      }));
}

}  // namespace mfa

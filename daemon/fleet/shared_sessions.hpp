// Sessions across hosts, Redis's side (docs/fleet.md "Sessions across hosts"): the commands that
// run session_keys.hpp's scripts on the fleet's connection. FleetSessions decides; this class only
// asks Redis and decodes the answers. Each call fails at once while fleet mode is degraded, and a
// call that fails on the way (transport, timeout) makes it degraded; done never runs later than
// the Redis timeout.
#pragma once

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "common/result.hpp"
#include "core/clock.hpp"
#include "core/config.hpp"
#include "fleet/coordinator.hpp"
#include "fleet/redis_client.hpp"
#include "fleet/session_keys.hpp"

namespace mfa {

class SharedSessions {
 public:
  SharedSessions(FleetCoordinator& fleet, const Config& config, const Clock& clock);
  ~SharedSessions();
  SharedSessions(const SharedSessions&) = delete;
  SharedSessions& operator=(const SharedSessions&) = delete;

  // Adds session to its user's count unless mode refuses it (RegisterOutcome::added).
  void register_session(const fleet::RemoteSession& session, int max, fleet::SessionAdmission mode,
                        std::function<void(Result<fleet::RegisterOutcome>)> done);
  // Removes session_id of user, owned by host, from every key.
  void unregister_session(const std::string& user, const std::string& session_id,
                          const std::string& host, std::function<void(Status)> done);
  // The records of user's sessions across the fleet ("" = everyone's), malformed ones skipped.
  void list_sessions(const std::string& user,
                     std::function<void(Result<std::vector<fleet::RemoteSession>>)> done);
  void find_session(const std::string& session_id,
                    std::function<void(Result<std::optional<fleet::RemoteSession>>)> done);
  // (session id, user) of every session host registered.
  void host_sessions(
      const std::string& host,
      std::function<void(Result<std::vector<std::pair<std::string, std::string>>>)> done);
  // Asks session's owner to end it: it leaves the count at once, the request is queued on the
  // owner's list and published. queue_seconds: how long an unanswered request is kept.
  void request_termination(const fleet::RemoteSession& session,
                           const fleet::TerminationRequest& request, int64_t queue_seconds,
                           std::function<void(Status)> done);
  // The oldest requests (at most kTerminationBatch) other hosts queued for host, removed from the
  // queue; malformed ones skipped.
  void take_terminations(const std::string& host,
                         std::function<void(Result<std::vector<std::string>>)> done);

 private:
  // The reply handler of a command: ignored once this object is gone; a failed command (now
  // degraded) or one Redis refused is done's error; otherwise done(parse(reply)).
  template <typename T, typename Parse>
  RedisClient::Callback reply_to(const char* what, std::function<void(Result<T>)> done,
                                 Parse parse);
  // A transport failure means Redis is gone: fleet mode is degraded at once.
  Error failure(const Error& error);

  FleetCoordinator& fleet_;
  const Config& config_;
  const Clock& clock_;
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
};

}  // namespace mfa

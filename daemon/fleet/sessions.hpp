// Sessions across hosts (fleet mode; docs/fleet.md "Sessions across hosts"): MaxPerUser counts a
// user's sessions on every host, evict-oldest may end one on another host, ListSessions shows every
// host's sessions and TerminateSession reaches a session wherever it runs. Redis holds the count
// and the records (session_keys.hpp, asked through SharedSessions); each host keeps its own
// sessions in its store (SessionRegistry) and is the only one to end them: another host asks it,
// through its termination queue.
//
// The owner learns of a request at once through a subscription to its queue's channel, on a
// Redis connection of its own (a subscribed connection takes no other command), and drains the
// queue: when the subscription is (re)made, when fleet mode is back from degraded, and every
// kPollUsec should a message have been missed. When Redis is unreachable, sessions count per host
// (each decision audited "degraded"); when it is back, the host reconciles: it ends what others
// asked meanwhile, then registers the sessions it opened and removes those it ended.
#pragma once

#include <systemd/sd-event.h>

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "common/handles.hpp"
#include "common/result.hpp"
#include "core/config.hpp"
#include "fleet/coordinator.hpp"
#include "fleet/redis_client.hpp"
#include "fleet/shared_sessions.hpp"
#include "core/sessions.hpp"
#include "core/store.hpp"

namespace mfa {

// One ListSessions row: the record and the host that owns it.
struct FleetSessionRow {
  SessionRecord record;
  std::string host;
};

class FleetSessions final : public SessionListener {
 public:
  struct Deps {
    sd_event* event;
    const Config& config;
    Store& store;
    const Clock& clock;
    SessionRegistry& registry;
    FleetCoordinator& fleet;
    std::string host;  // this host's id ([Redis] HostId, or the host name)
  };
  // Something was written to the store outside a D-Bus call: a commit must be scheduled.
  using WriteCallback = std::function<void()>;

  // The backstop drain of the termination queue, should a published message have been missed.
  static constexpr uint64_t kPollUsec = 10ULL * 1000000;

  // subscriber: the options of the subscription's own connection (the fleet's Redis).
  static Result<std::unique_ptr<FleetSessions>> create(Deps deps, RedisClientOptions subscriber,
                                                       WriteCallback on_write);
  ~FleetSessions() override;
  FleetSessions(const FleetSessions&) = delete;
  FleetSessions& operator=(const FleetSessions&) = delete;

  const std::string& host() const { return d_.host; }

  // OpenSession: MaxPerUser and OnLimit across the fleet; degraded: this host's limit, audited.
  // done runs once, within the Redis timeout.
  void open(const Caller& caller, const std::string& user, const StringMap& context,
            std::function<void(Result<std::string>)> done);
  // ListSessions: this host's sessions and, unless degraded, every other host's.
  void list(const Caller& caller, const std::string& user,
            std::function<void(Result<std::vector<FleetSessionRow>>)> done);
  // TerminateSession: here, or a request to the session's owner.
  void terminate(const Caller& caller, const std::string& session_id,
                 std::function<void(Status)> done);

  // Fleet mode is back (or up for the first time): reconcile.
  void online();

  // SessionListener: a session of this host ended, whatever ended it.
  void session_removed(const SessionRecord& session) override;

 private:
  // A request taken from this host's queue, checked (record_mac.hpp: sealed by a host of the
  // fleet, fresh, for a session of the user it names, by that user when reason is "user");
  // nullopt, audited as fleet.record-rejected, when not.
  std::optional<fleet::TerminationRequest> accept_termination(const std::string& sealed);
  explicit FleetSessions(Deps deps, WriteCallback on_write);
  fleet::RemoteSession remote(const SessionRecord& session) const;
  void admitted(const Caller& caller, SessionRecord session, const fleet::RegisterOutcome& outcome,
                std::function<void(Result<std::string>)> done);
  Result<std::string> open_degraded(const Caller& caller, const std::string& user,
                                    Result<std::string> decided);
  void drain(std::function<void()> then = nullptr);
  void reconcile();
  void prune(const fleet::RemoteSession& session);
  void subscriber_state(bool ready, const std::string& why);
  static int on_poll(sd_event_source* s, uint64_t usec, void* userdata);

  Deps d_;
  WriteCallback on_write_;
  SharedSessions shared_;  // the fleet's count and records in Redis
  std::unique_ptr<RedisClient> subscriber_;
  std::string subscriber_error_;  // last cause logged
  EventSourcePtr poll_timer_;
  bool draining_ = false;
  bool drain_again_ = false;
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
};

}  // namespace mfa

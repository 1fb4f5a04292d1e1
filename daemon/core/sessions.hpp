// Login sessions (docs/sessions.md): registration from pam_sm_open_session, limits, expiry,
// termination and the security events around them (new device, failure bursts). The logic, testable
// without a bus: what a termination does to processes and the bus is behind SessionEffects
// (sessions_bus.cpp is the real one).
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/result.hpp"
#include "core/audit.hpp"
#include "core/authenticator.hpp"
#include "core/clock.hpp"
#include "core/config.hpp"
#include "core/store.hpp"
#include "core/user_directory.hpp"

namespace mfa {

// Why a session ended: SessionClosed's reason and the audit row's.
enum class SessionEnd { kClosed, kAdmin, kUser, kLimit, kExpired, kIdle };
AuditReason session_end_reason(SessionEnd reason);
const char* session_end_name(SessionEnd reason);  // its name: "closed", "admin", "user", ...

// What the registry asks of the world.
class SessionEffects {
 public:
  virtual ~SessionEffects() = default;
  virtual void session_opened(const SessionRecord& session) = 0;
  virtual void session_closed(const SessionRecord& session, SessionEnd reason) = 0;
  // Ends the session's processes (logind's TerminateSession, or signals to the leader's group).
  virtual void end_processes(const SessionRecord& session) = 0;
  // The start time of a live pid (/proc/PID/stat field 22); nullopt when the pid is gone
  // (kill(pid, 0) == ESRCH). 0 when alive but unreadable.
  virtual std::optional<uint64_t> process_start(pid_t pid) = 0;
  // The last use of the terminal (its atime, unix usec); nullopt when tty is not a device.
  virtual std::optional<int64_t> tty_last_use(std::string_view tty) = 0;
};

// Told of every session that left the registry, whatever ended it (fleet mode unregisters it).
class SessionListener {
 public:
  virtual ~SessionListener() = default;
  virtual void session_removed(const SessionRecord& session) = 0;
};

// Failures from one rhost in a window that make a "failure-burst" security event.
struct BurstPolicy {
  size_t failures = 10;
  int64_t window_usec = 60LL * 1000000;
};

struct SessionDeps {
  const Config& config;
  Store& store;
  AuditLog& audit;
  const Clock& clock;
  const UserDirectory& users;
  const Authenticator& authenticator;  // is_admin
  SessionEffects& effects;
  EventSink* events = nullptr;
};

class SessionRegistry {
 public:
  explicit SessionRegistry(SessionDeps deps);

  // Root only. context: service, rhost, tty, ruser, logind_session, leader_pid, factor (the
  // module's own knowledge; else the latest success for user/service/rhost within a minute, else
  // "none"). Errors: NotAllowed, InvalidArgument, NoSuchUser, SessionLimit (OnLimit=deny).
  // open = prepare, then admit with this host's limit.
  Result<std::string> open(const Caller& caller, std::string_view user, const StringMap& context);
  // The steps of open, for fleet mode (the limit is the fleet's, decided in Redis between them):
  // prepare checks the call and makes the record (new id; the user's dead sessions reaped first)
  // without storing it; admit stores it, applying this host's limit when local_limit is set;
  // refuse records the refusal and returns SessionLimit.
  Result<SessionRecord> prepare(const Caller& caller, std::string_view user,
                                const StringMap& context);
  Result<std::string> admit(const Caller& caller, SessionRecord session, bool local_limit);
  Error refuse(const Caller& caller, const SessionRecord& session, size_t count);
  // Root only. The session's own end (pam_sm_close_session): reason "closed".
  Status close(const Caller& caller, std::string_view id);
  // A user's own sessions (or any user's, admin); "" = everyone's (admin).
  Result<std::vector<SessionRecord>> list(const Caller& caller, std::string_view user);
  // Ends a session now: own (reason "user") or any (admin, reason "admin").
  Status terminate(const Caller& caller, std::string_view id);

  // Ends a session of this host for someone who is not a bus caller here (another host's request,
  // an eviction decided in Redis): processes ended, SessionClosed, audit (caller as given, details
  // added). NoSuchSession when it is not here (any more).
  Status end_by_id(std::string_view id, SessionEnd reason, const std::string& caller,
                   const StringMap& details);
  // A session of another host ended at this caller's request (fleet mode): audited here too, with
  // the owner's host. The reason: "user" for one's own session, else "admin".
  SessionEnd remote_end_reason(const Caller& caller, std::string_view user) const;
  Status note_remote_end(const Caller& caller, const SessionRecord& session, SessionEnd reason,
                         std::string_view owner_host);
  // `fresh=SECONDS` (docs/sudo.md, sessions_fresh.cpp). Root only. context: "fresh" (SECONDS,
  // 1..86400), and service, rhost, tty, ruser for the audit row. The id of a live session of user
  // that this host registered from the caller's own kernel audit session (caller's audit_session
  // and audit_login_uid, read from the kernel by the bus layer), whose login passed a second
  // factor less than SECONDS ago; audited as fresh-session. nullopt: none, and the caller asks
  // for a code as usual.
  Result<std::optional<std::string>> fresh_session(const Caller& caller, std::string_view user,
                                                   const StringMap& context);

  // The caller may see (list, end) user's sessions: their own, or anyone's for an admin.
  bool may_see(const Caller& caller, std::string_view user) const;

  void set_listener(SessionListener* listener) { listener_ = listener; }

  // Housekeeping. reap: removes sessions whose leader is gone (all users when user is "").
  Status reap(std::string_view user);
  // Ends sessions past MaxLifetimeSeconds or idle past IdleTimeoutSeconds; returns the unix usec
  // of the next deadline (0: none).
  Result<int64_t> expire();

  // Every audit event passes here: successes link a later session to their factor; failures
  // count towards a burst from their rhost.
  void observe(const AuditEvent& event);

  // The device fingerprint of (user, rhost, service, tty kind), hex.
  static std::string fingerprint(std::string_view user, std::string_view rhost,
                                 std::string_view service, std::string_view tty);
  // "pts", "tty", "console", "none", "other".
  static std::string tty_kind(std::string_view tty);

  void set_burst_policy(BurstPolicy policy) { burst_ = policy; }

 private:
  struct Success {
    std::string method;
    int64_t time_usec = 0;
  };
  struct Burst {
    std::deque<int64_t> failures;
    int64_t reported_usec = 0;
  };

  Status end(const SessionRecord& session, SessionEnd reason, const std::string& caller,
             bool kill_processes, const StringMap& details = {});
  Status audit(AuditKind kind, const SessionRecord& s, AuditOutcome outcome, AuditReason reason,
               const std::string& caller, const StringMap& details = {});
  std::string linked_factor(std::string_view user, std::string_view service,
                            std::string_view rhost);
  bool leader_alive(const SessionRecord& s);

  SessionDeps d_;
  SessionListener* listener_ = nullptr;
  BurstPolicy burst_;
  std::map<std::string, Success> recent_;  // key: user \0 service \0 rhost
  int64_t recent_swept_usec_ = 0;
  int64_t bursts_swept_usec_ = 0;
  std::map<std::string, Burst> bursts_;  // key: rhost
};

}  // namespace mfa

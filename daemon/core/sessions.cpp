#include "core/sessions.hpp"

#include <array>
#include <charconv>
#include <set>

#include "common/crypto.hpp"
#include "common/dbus_names.hpp"
#include "core/validation.hpp"

namespace mfa {
namespace {

constexpr int64_t kUsecPerSecond = 1000000;
// A success links a session opened this long after it (the module could not tell the factor).
constexpr int64_t kLinkWindowUsec = 60 * kUsecPerSecond;
// Memory bounds of the observers: remembered successes and rhosts with recent failures.
constexpr size_t kMaxRecentSuccesses = 4096;
constexpr size_t kMaxBurstSources = 4096;
constexpr size_t kMaxFieldLength = 256;
constexpr size_t kMaxSessionsListed = 100000;

const std::set<std::string, std::less<>> kContextKeys = {
    "service", "rhost", "tty", "ruser", "logind_session", "leader_pid", "factor"};

bool printable(std::string_view s) {
  for (char c : s) {
    auto u = static_cast<unsigned char>(c);
    if (u < 0x20 || u == 0x7f)
      return false;
  }
  return true;
}

std::string get(const StringMap& m, const char* key) {
  auto it = m.find(key);
  return it == m.end() ? std::string() : it->second;
}

std::string success_key(std::string_view user, std::string_view service, std::string_view rhost) {
  std::string key(user);
  key.push_back('\0');
  key.append(service);
  key.push_back('\0');
  key.append(rhost);
  return key;
}

}  // namespace

AuditReason session_end_reason(SessionEnd reason) {
  switch (reason) {
    case SessionEnd::kClosed:
      return AuditReason::kClosed;
    case SessionEnd::kAdmin:
      return AuditReason::kAdmin;
    case SessionEnd::kUser:
      return AuditReason::kUser;
    case SessionEnd::kLimit:
      return AuditReason::kLimit;
    case SessionEnd::kExpired:
      return AuditReason::kExpired;
    case SessionEnd::kIdle:
      return AuditReason::kIdle;
  }
  return AuditReason::kClosed;
}

const char* session_end_name(SessionEnd reason) {
  return audit_reason_name(session_end_reason(reason));
}

SessionRegistry::SessionRegistry(SessionDeps deps) : d_(deps) {}

std::string SessionRegistry::tty_kind(std::string_view tty) {
  if (tty.starts_with("/dev/"))
    tty.remove_prefix(5);
  if (tty.empty())
    return "none";
  if (tty.starts_with("pts/"))
    return "pts";
  if (tty == "console")
    return "console";
  if (tty.starts_with("tty"))
    return "tty";
  return "other";  // "ssh", ":0", ...
}

std::string SessionRegistry::fingerprint(std::string_view user, std::string_view rhost,
                                         std::string_view service, std::string_view tty) {
  // Length-prefixed fields, so that no two tuples encode alike.
  std::string buf = "mfad-device-v1";
  const std::string kind = tty_kind(tty);
  for (std::string_view field : {user, rhost, service, std::string_view(kind)}) {
    buf += std::to_string(field.size());
    buf.push_back(':');
    buf.append(field);
  }
  auto digest =
      sha256(std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(buf.data()), buf.size()));
  return to_hex(std::span<const uint8_t>(digest.data(), 16));
}

bool SessionRegistry::may_see(const Caller& caller, std::string_view user) const {
  if (d_.authenticator.is_admin(caller))
    return true;
  auto uid = d_.users.uid_of(user);
  return uid && *uid == caller.uid;
}

Status SessionRegistry::audit(AuditKind kind, const SessionRecord& s, AuditOutcome outcome,
                              AuditReason reason, const std::string& caller,
                              const StringMap& details) {
  AuditEvent event;
  event.kind = kind;
  event.user = s.user;
  event.outcome = outcome;
  event.reason = reason;
  event.caller = caller;
  event.details["session"] = s.id;
  event.details["service"] = s.service;
  event.details["rhost"] = s.rhost;
  event.details["tty"] = s.tty;
  if (!s.ruser.empty())
    event.details["ruser"] = s.ruser;
  if (!s.logind_session.empty())
    event.details["logind_session"] = s.logind_session;
  event.details["leader_pid"] = std::to_string(s.leader_pid);
  event.details["factor"] = s.factor;
  event.details["device"] = s.device;
  for (const auto& [key, value] : details)
    event.details[key] = value;
  return d_.audit.record(event);
}

std::string SessionRegistry::linked_factor(std::string_view user, std::string_view service,
                                           std::string_view rhost) {
  auto it = recent_.find(success_key(user, service, rhost));
  if (it == recent_.end())
    return "none";
  const int64_t now = d_.clock.realtime_usec();
  if (now - it->second.time_usec > kLinkWindowUsec || now < it->second.time_usec) {
    recent_.erase(it);
    return "none";
  }
  std::string method = it->second.method;
  recent_.erase(it);  // one success authenticates one session
  return method;
}

bool SessionRegistry::leader_alive(const SessionRecord& s) {
  if (s.leader_pid <= 1)
    return true;  // unknown leader: only expiry or an explicit end removes it
  auto start = d_.effects.process_start(static_cast<pid_t>(s.leader_pid));
  if (!start)
    return false;
  // Another process that got the same pid is not our leader.
  return s.leader_start == 0 || *start == 0 || *start == s.leader_start;
}

Result<std::string> SessionRegistry::open(const Caller& caller, std::string_view user,
                                          const StringMap& context) {
  MFA_TRY(session, prepare(caller, user, context));
  return admit(caller, std::move(session), /*local_limit=*/true);
}

Result<SessionRecord> SessionRegistry::prepare(const Caller& caller, std::string_view user,
                                               const StringMap& context) {
  if (caller.uid != 0)
    return make_error(Errc::kNotAllowed, "Only root may open sessions.");
  if (user.empty() || user.size() > dbus::kMaxUserNameLength || !printable(user))
    return invalid_argument("The user name is invalid.");
  if (context.size() > dbus::kMaxContextEntries)
    return invalid_argument("Too many context entries.");
  for (const auto& [key, value] : context) {
    if (!kContextKeys.count(key))
      return invalid_argument("Unknown context key \"" + (printable(key) ? key : "?") + "\".");
    if (value.size() > kMaxFieldLength || !printable(value))
      return invalid_argument("The context value of \"" + key + "\" is too long or not printable.");
  }
  const auto uid = d_.users.uid_of(user);
  if (!uid)
    return make_error(Errc::kNoSuchUser, "No such user: " + std::string(user));

  // Sessions belong to the account (docs/sessions.md): an alias of it (a second passwd entry
  // with the same uid) shares its sessions and its MaxPerUser, under the account's own name.
  SessionRecord s;
  s.user = d_.users.name_of(*uid).value_or(std::string(user));
  s.service = get(context, "service");
  s.rhost = get(context, "rhost");
  s.tty = get(context, "tty");
  s.ruser = get(context, "ruser");
  s.logind_session = get(context, "logind_session");
  for (char c : s.logind_session) {
    if (!isalnum(static_cast<unsigned char>(c)) && c != '_' && c != '-')
      return invalid_argument("The logind session id is invalid.");
  }
  const std::string pid_text = get(context, "leader_pid");
  if (!pid_text.empty()) {
    uint32_t pid = 0;
    auto [end, ec] = std::from_chars(pid_text.data(), pid_text.data() + pid_text.size(), pid);
    if (ec != std::errc() || end != pid_text.data() + pid_text.size() || pid > 0x7fffffffu)
      return invalid_argument("The leader pid is not a number.");
    s.leader_pid = pid;
  }
  if (s.leader_pid > 1) {
    auto start = d_.effects.process_start(static_cast<pid_t>(s.leader_pid));
    if (!start)
      return invalid_argument("The session leader " + pid_text + " does not exist.");
    s.leader_start = *start;
  }
  s.factor = get(context, "factor");
  if (!s.factor.empty() && s.factor != "none" && !parse_method(s.factor))
    return invalid_argument("Unknown factor \"" + s.factor + "\".");
  // By account: the login may have used another of its names (observe()).
  std::string linked = linked_factor(account_key(*uid), s.service, s.rhost);
  if (s.factor.empty())
    s.factor = linked;
  s.device = fingerprint(user, s.rhost, s.service, s.tty);
  // From the kernel, through the bus layer: never from the context the caller sent.
  s.audit_session = caller.audit_session;
  s.audit_login_uid = caller.audit_login_uid;
  s.started_usec = d_.clock.realtime_usec();
  s.last_seen_usec = s.started_usec;

  // Limits count live sessions only.
  MFA_CHECK(reap(user));
  do {
    std::array<uint8_t, 16> raw{};
    if (!random_bytes(raw).ok())
      return make_error(Errc::kInternal, "Could not create a session id (no randomness)");
    s.id = to_hex(raw);
    MFA_TRY(clash, d_.store.get_session(s.id));
    if (!clash)
      break;
  } while (true);
  return s;
}

Error SessionRegistry::refuse(const Caller& caller, const SessionRecord& s, size_t count) {
  const size_t max = static_cast<size_t>(d_.config.sessions_max_per_user);
  if (Status st = audit(AuditKind::kSessionOpen, s, AuditOutcome::kDenied, AuditReason::kLimit,
                        caller.describe());
      !st.ok())
    return st.error();
  return make_error(Errc::kSessionLimit, "Too many sessions: " + s.user + " already has " +
                                             std::to_string(count) + " (at most " +
                                             std::to_string(max) + ")");
}

Result<std::string> SessionRegistry::admit(const Caller& caller, SessionRecord s,
                                           bool local_limit) {
  const std::string& user = s.user;
  if (local_limit) {
    MFA_TRY(existing, d_.store.list_sessions(user));
    const size_t max = static_cast<size_t>(d_.config.sessions_max_per_user);
    if (existing.size() >= max) {
      if (d_.config.sessions_on_limit == SessionLimitAction::kDeny)
        return refuse(caller, s, existing.size());
      // evict-oldest: the list is oldest first.
      for (size_t i = 0; i + max <= existing.size(); ++i)
        MFA_CHECK(end(existing[i], SessionEnd::kLimit, caller.describe(), true));
    }
  }

  MFA_TRY(new_device, d_.store.note_device(user, s.device, s.started_usec, s.rhost,
                                           s.service + " " + tty_kind(s.tty)));
  MFA_CHECK(d_.store.put_session(s));
  MFA_CHECK(audit(AuditKind::kSessionOpen, s, AuditOutcome::kSuccess, AuditReason::kNone,
                  caller.describe()));
  if (new_device) {
    MFA_CHECK(audit(AuditKind::kSecurityNewDevice, s, AuditOutcome::kInfo, AuditReason::kNewDevice,
                    caller.describe()));
    if (d_.events) {
      d_.events->security_event(s.user, "new-device",
                                {{"service", s.service},
                                 {"rhost", s.rhost},
                                 {"tty_kind", tty_kind(s.tty)},
                                 {"device", s.device},
                                 {"session", s.id}});
    }
  }
  d_.effects.session_opened(s);
  return s.id;
}

Status SessionRegistry::end(const SessionRecord& s, SessionEnd reason, const std::string& caller,
                            bool kill_processes, const StringMap& details) {
  MFA_TRY(deleted, d_.store.delete_session(s.id));
  if (!deleted)
    return make_error(Errc::kNoSuchSession, "No such session.");
  const AuditKind kind =
      reason == SessionEnd::kClosed ? AuditKind::kSessionClose : AuditKind::kSessionTerminate;
  MFA_CHECK(audit(kind, s, AuditOutcome::kInfo, session_end_reason(reason), caller, details));
  if (kill_processes)
    d_.effects.end_processes(s);
  d_.effects.session_closed(s, reason);
  if (listener_)
    listener_->session_removed(s);
  return {};
}

Status SessionRegistry::end_by_id(std::string_view id, SessionEnd reason, const std::string& caller,
                                  const StringMap& details) {
  if (id.empty() || id.size() > 128)
    return make_error(Errc::kNoSuchSession, "No such session.");
  MFA_TRY(found, d_.store.get_session(id));
  if (!found)
    return make_error(Errc::kNoSuchSession, "No such session.");
  return end(*found, reason, caller, true, details);
}

SessionEnd SessionRegistry::remote_end_reason(const Caller& caller, std::string_view user) const {
  return d_.users.uid_of(user) == std::optional<uid_t>(caller.uid) ? SessionEnd::kUser
                                                                   : SessionEnd::kAdmin;
}

Status SessionRegistry::note_remote_end(const Caller& caller, const SessionRecord& s,
                                        SessionEnd reason, std::string_view owner_host) {
  return audit(AuditKind::kSessionTerminate, s, AuditOutcome::kInfo, session_end_reason(reason),
               caller.describe(), {{"host", std::string(owner_host)}});
}

Status SessionRegistry::close(const Caller& caller, std::string_view id) {
  if (caller.uid != 0)
    return make_error(Errc::kNotAllowed, "Only root may close sessions.");
  if (id.empty() || id.size() > 128)
    return make_error(Errc::kNoSuchSession, "No such session.");
  MFA_TRY(found, d_.store.get_session(id));
  if (!found)
    return make_error(Errc::kNoSuchSession, "No such session.");
  return end(*found, SessionEnd::kClosed, caller.describe(), false);
}

Result<std::vector<SessionRecord>> SessionRegistry::list(const Caller& caller,
                                                         std::string_view user) {
  if (user.empty()) {
    if (!d_.authenticator.is_admin(caller)) {
      return admin_refusal(
          caller,
          make_error(Errc::kNotAllowed, "Only an administrator may list everyone's sessions."));
    }
  } else {
    if (user.size() > dbus::kMaxUserNameLength || !printable(user))
      return invalid_argument("The user name is invalid.");
    if (!may_see(caller, user)) {
      return admin_refusal(caller,
                           make_error(Errc::kNotAllowed, "You may list only your own sessions."));
    }
  }
  // An alias lists its account's sessions, kept under the account's own name (prepare()).
  std::string account(user);
  if (auto uid = user.empty() ? std::nullopt : d_.users.uid_of(user))
    account = d_.users.name_of(*uid).value_or(account);
  MFA_CHECK(reap(account));
  MFA_TRY(sessions, d_.store.list_sessions(account));
  if (sessions.size() > kMaxSessionsListed)
    sessions.resize(kMaxSessionsListed);
  return sessions;
}

Status SessionRegistry::terminate(const Caller& caller, std::string_view id) {
  if (id.empty() || id.size() > 128)
    return make_error(Errc::kNoSuchSession, "No such session.");
  MFA_TRY(found, d_.store.get_session(id));
  const bool admin = d_.authenticator.is_admin(caller);
  if (!found)
    return make_error(Errc::kNoSuchSession, "No such session.");
  // A stranger learns nothing: someone else's session looks like none.
  if (!admin && !may_see(caller, found->user))
    return admin_refusal(caller, make_error(Errc::kNoSuchSession, "No such session."));
  return end(*found, remote_end_reason(caller, found->user), caller.describe(), true);
}

Status SessionRegistry::reap(std::string_view user) {
  MFA_TRY(sessions, d_.store.list_sessions(user));
  for (const auto& s : sessions) {
    if (!leader_alive(s))
      MFA_CHECK(end(s, SessionEnd::kClosed, "mfad", false));
  }
  return {};
}

Result<int64_t> SessionRegistry::expire() {
  MFA_TRY(sessions, d_.store.list_sessions(""));
  const int64_t now = d_.clock.realtime_usec();
  const int64_t lifetime = int64_t{d_.config.sessions_max_lifetime_seconds} * kUsecPerSecond;
  const int64_t idle = int64_t{d_.config.sessions_idle_timeout_seconds} * kUsecPerSecond;
  int64_t next = 0;
  auto consider = [&](int64_t at) {
    if (next == 0 || at < next)
      next = at;
  };
  for (auto& s : sessions) {
    if (!leader_alive(s)) {
      MFA_CHECK(end(s, SessionEnd::kClosed, "mfad", false));
      continue;
    }
    if (lifetime > 0 && now >= s.started_usec + lifetime) {
      MFA_CHECK(end(s, SessionEnd::kExpired, "mfad", true));
      continue;
    }
    if (lifetime > 0)
      consider(s.started_usec + lifetime);
    if (idle > 0) {
      auto used = d_.effects.tty_last_use(s.tty);
      if (used) {
        if (*used > s.last_seen_usec) {
          s.last_seen_usec = *used;
          MFA_CHECK(d_.store.put_session(s));
        }
        if (now >= s.last_seen_usec + idle) {
          MFA_CHECK(end(s, SessionEnd::kIdle, "mfad", true));
          continue;
        }
        consider(s.last_seen_usec + idle);
      }
    }
  }
  return next;
}

void SessionRegistry::observe(const AuditEvent& event) {
  const int64_t now = d_.clock.realtime_usec();
  if (event.kind == AuditKind::kAuthSuccess) {
    // Sweeping out stale entries walks the whole map: at most once a second, or a busy server
    // would walk it on every login; in between, a full map drops one entry.
    if (recent_.size() >= kMaxRecentSuccesses && now - recent_swept_usec_ >= kUsecPerSecond) {
      recent_swept_usec_ = now;
      for (auto it = recent_.begin(); it != recent_.end();) {
        it = now - it->second.time_usec > kLinkWindowUsec ? recent_.erase(it) : std::next(it);
      }
    }
    if (recent_.size() >= kMaxRecentSuccesses) {
      if (recent_.size() >= kMaxRecentSuccesses)
        recent_.erase(recent_.begin());
    }
    // The audit trail shows the account's name and its uid (AuditLog::record): keyed by account.
    const std::string uid = event.detail("uid");
    std::string account = uid.empty() ? event.user : "uid/" + uid;
    if (!account_key_uid(account)) {
      if (auto resolved = d_.users.uid_of(account))
        account = account_key(*resolved);
    }
    recent_[success_key(account, event.detail("service"), event.detail("rhost"))] =
        Success{event.detail("method"), now};
    return;
  }
  if (event.kind != AuditKind::kAuthFailure || event.outcome != AuditOutcome::kFailure)
    return;
  const std::string rhost = event.detail("rhost");
  if (rhost.empty())
    return;
  if (!bursts_.count(rhost) && bursts_.size() >= kMaxBurstSources) {
    if (now - bursts_swept_usec_ >= kUsecPerSecond) {  // as recent_ above
      bursts_swept_usec_ = now;
      for (auto it = bursts_.begin(); it != bursts_.end();) {
        bool stale =
            it->second.failures.empty() || now - it->second.failures.back() > burst_.window_usec;
        it = stale ? bursts_.erase(it) : std::next(it);
      }
    }
    if (bursts_.size() >= kMaxBurstSources)
      return;
  }
  Burst& b = bursts_[rhost];
  b.failures.push_back(now);
  while (!b.failures.empty() && now - b.failures.front() > burst_.window_usec)
    b.failures.pop_front();
  while (b.failures.size() > burst_.failures)
    b.failures.pop_front();
  // Once per window and rhost: a burst is one event, not one per further failure.
  if (b.failures.size() < burst_.failures ||
      (b.reported_usec != 0 && now - b.reported_usec <= burst_.window_usec))
    return;
  b.reported_usec = now;
  AuditEvent burst;
  burst.kind = AuditKind::kSecurityFailureBurst;
  burst.user = event.user;
  burst.outcome = AuditOutcome::kInfo;
  burst.reason = AuditReason::kFailureBurst;
  burst.caller = "mfad";
  burst.details["rhost"] = rhost;
  burst.details["service"] = event.detail("service");
  burst.details["failures"] = std::to_string(b.failures.size());
  burst.details["window_seconds"] = std::to_string(burst_.window_usec / kUsecPerSecond);
  // The failure itself is already recorded; a burst row that cannot be stored is logged by the
  // audit log and does not change the caller's answer.
  (void)d_.audit.record(burst);
  if (d_.events) {
    d_.events->security_event(event.user, "failure-burst",
                              {{"rhost", rhost},
                               {"service", event.detail("service")},
                               {"failures", burst.details["failures"]}});
  }
}

}  // namespace mfa

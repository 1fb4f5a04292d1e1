#include "fleet/sessions.hpp"

#include <pwd.h>

#include <algorithm>
#include <cstring>
#include <set>

#include "core/log.hpp"
#include "fleet/keys.hpp"

namespace mfa {

namespace {

constexpr size_t kMaxRowsListed = 100000;

Error no_such_session() {
  return make_error(Errc::kNoSuchSession, "No such session.");
}

Error fleet_unreachable() {
  return make_error(Errc::kStorage,
                    "No such session on this host, and the fleet's shared store (Redis) is "
                    "unreachable: sessions of other hosts cannot be ended now.");
}

SessionEnd requested_reason(const std::string& reason) {
  if (reason == "limit")
    return SessionEnd::kLimit;
  if (reason == "user")
    return SessionEnd::kUser;
  return SessionEnd::kAdmin;
}

// Whether uid is the account of user (a name, or an account key "uid/N").
bool uid_is_user(int64_t uid, const std::string& user) {
  if (uid < 0)
    return false;
  if (user == "uid/" + std::to_string(uid))
    return true;
  struct passwd pw_buf;
  struct passwd* pw = nullptr;
  std::vector<char> buf(16384);
  if (getpwuid_r(static_cast<uid_t>(uid), &pw_buf, buf.data(), buf.size(), &pw) != 0 || !pw)
    return false;
  return user == pw->pw_name;
}

}  // namespace

FleetSessions::FleetSessions(Deps deps, WriteCallback on_write)
    : d_(std::move(deps)), on_write_(std::move(on_write)), shared_(d_.fleet, d_.config, d_.clock) {}

FleetSessions::~FleetSessions() {
  *alive_ = false;
}

Result<std::unique_ptr<FleetSessions>> FleetSessions::create(Deps deps,
                                                             RedisClientOptions subscriber,
                                                             WriteCallback on_write) {
  std::unique_ptr<FleetSessions> fs(new FleetSessions(std::move(deps), std::move(on_write)));
  FleetSessions* self = fs.get();
  sd_event_source* timer = nullptr;
  int r = sd_event_add_time_relative(fs->d_.event, &timer, CLOCK_MONOTONIC, kPollUsec, 1000 * 1000,
                                     &FleetSessions::on_poll, self);
  if (r < 0) {
    return make_error(Errc::kInternal,
                      std::string("cannot add the fleet session timer: ") + strerror(-r));
  }
  fs->poll_timer_.reset(timer);
  (void)sd_event_source_set_description(timer, "fleet-session-poll");
  MFA_TRY(client, RedisClient::create(fs->d_.event, std::move(subscriber),
                                      [self](bool ready, const std::string& why) {
                                        self->subscriber_state(ready, why);
                                      }));
  fs->subscriber_ = std::move(client);
  fs->subscriber_->subscribe(
      fleet::host_terminate_key(fs->d_.config.redis_key_prefix, fs->d_.host),
      [self] {
        self->subscriber_error_.clear();
        self->drain();
      },
      [self](const std::string&) { self->drain(); });
  return fs;
}

void FleetSessions::subscriber_state(bool ready, const std::string& why) {
  if (ready || why == subscriber_error_)
    return;  // once per cause, not at every retry
  subscriber_error_ = why;
  MFA_LOG_WARNING(
      "fleet: subscription to termination requests lost (%s); polling every %llu s "
      "until it is back",
      why.c_str(), static_cast<unsigned long long>(kPollUsec / 1000000));
}

fleet::RemoteSession FleetSessions::remote(const SessionRecord& session) const {
  fleet::RemoteSession r;
  r.record = session;
  r.record.leader_start = 0;  // means nothing on another host
  r.host = d_.host;
  const int64_t lifetime = int64_t{d_.config.sessions_max_lifetime_seconds} * 1000000;
  r.expires_usec = lifetime > 0 ? session.started_usec + lifetime : 0;
  return r;
}

// --- OpenSession ---

void FleetSessions::open(const Caller& caller, const std::string& user, const StringMap& context,
                         std::function<void(Result<std::string>)> done) {
  if (d_.fleet.degraded())
    return done(open_degraded(caller, user, d_.registry.open(caller, user, context)));
  auto prepared = d_.registry.prepare(caller, user, context);
  if (!prepared.ok())
    return done(std::move(prepared).error());
  SessionRecord session = std::move(prepared).value();
  const auto mode = d_.config.sessions_on_limit == SessionLimitAction::kDeny
                        ? fleet::SessionAdmission::kDeny
                        : fleet::SessionAdmission::kEvictOldest;
  auto alive = alive_;
  shared_.register_session(
      remote(session), d_.config.sessions_max_per_user, mode,
      [this, alive, caller, session,
       done = std::move(done)](Result<fleet::RegisterOutcome> outcome) mutable {
        if (!*alive)
          return;
        if (!outcome.ok()) {
          // Redis failed on the way (now degraded): this host decides alone, as everywhere.
          MFA_LOG_WARNING("fleet: session of %s counted on this host only: %s",
                          session.user.c_str(), outcome.error().message.c_str());
          const std::string who = session.user;
          return done(
              open_degraded(caller, who, d_.registry.admit(caller, std::move(session), true)));
        }
        if (!outcome->added)
          return done(d_.registry.refuse(caller, session, outcome->count));
        admitted(caller, std::move(session), *outcome, std::move(done));
      });
}

void FleetSessions::admitted(const Caller& caller, SessionRecord session,
                             const fleet::RegisterOutcome& outcome,
                             std::function<void(Result<std::string>)> done) {
  const int64_t queue_seconds = d_.config.sessions_max_lifetime_seconds;
  for (fleet::RemoteSession victim : outcome.evicted) {
    if (victim.record.user.empty())
      victim.record.user = session.user;
    if (victim.host == d_.host) {
      Status st =
          d_.registry.end_by_id(victim.record.id, SessionEnd::kLimit, caller.describe(), {});
      if (!st.ok() && st.error().code != Errc::kNoSuchSession)
        MFA_LOG_ERROR("cannot end an evicted session: %s", st.error().message.c_str());
      continue;
    }
    // Another host's: Redis no longer counts it; its owner ends it.
    MFA_LOG_INFO("fleet: asking host %s to end session %s of %s (OnLimit=evict-oldest)",
                 victim.host.c_str(), victim.record.id.c_str(), victim.record.user.c_str());
    if (Status st =
            d_.registry.note_remote_end(caller, victim.record, SessionEnd::kLimit, victim.host);
        !st.ok())
      MFA_LOG_ERROR("cannot audit an eviction: %s", st.error().message.c_str());
    shared_.request_termination(victim,
                                {victim.record.id, "limit", d_.host, caller.describe(),
                                 victim.record.user, static_cast<int64_t>(caller.uid)},
                                queue_seconds, [host = victim.host](Status st) {
                                  if (!st.ok())
                                    MFA_LOG_WARNING(
                                        "fleet: the eviction request to host %s was not sent: %s",
                                        host.c_str(), st.error().message.c_str());
                                });
  }
  const std::string id = session.id;
  const std::string user = session.user;
  auto admitted = d_.registry.admit(caller, std::move(session), /*local_limit=*/false);
  if (!admitted.ok()) {
    // Counted in Redis, not opened here: give the place back.
    shared_.unregister_session(user, id, d_.host, [](Status) {});
  }
  done(std::move(admitted));
}

Result<std::string> FleetSessions::open_degraded(const Caller& caller, const std::string& user,
                                                 Result<std::string> decided) {
  // A decision taken without the fleet (a session opened, or refused by this host's limit) is
  // audited as such; reconciliation registers the session when Redis is back.
  const bool denied = !decided.ok() && decided.error().code == Errc::kSessionLimit;
  if (decided.ok() || denied)
    d_.fleet.note_degraded(user, "OpenSession", FleetChanges{}, decided.ok(), false,
                           caller.describe());
  return decided;
}

// --- ListSessions ---

void FleetSessions::list(const Caller& caller, const std::string& user,
                         std::function<void(Result<std::vector<FleetSessionRow>>)> done) {
  auto local = d_.registry.list(caller, user);  // authorizes; this host's, its dead ones reaped
  if (!local.ok())
    return done(std::move(local).error());
  std::vector<FleetSessionRow> rows;
  rows.reserve(local->size());
  for (auto& s : *local)
    rows.push_back({std::move(s), d_.host});
  if (d_.fleet.degraded())
    return done(std::move(rows));
  auto alive = alive_;
  shared_.list_sessions(user, [this, alive, user, rows = std::move(rows), done = std::move(done)](
                                  Result<std::vector<fleet::RemoteSession>> remote) mutable {
    if (!*alive)
      return;
    if (!remote.ok()) {
      MFA_LOG_WARNING("fleet: listing this host's sessions only: %s",
                      remote.error().message.c_str());
      return done(std::move(rows));
    }
    const int64_t now = d_.clock.realtime_usec();
    for (auto& r : *remote) {
      if (r.host == d_.host || (!user.empty() && r.record.user != user))
        continue;  // this host's own come from its database
      if (r.expires_usec > 0 && r.expires_usec <= now) {
        prune(r);  // its host went away with it
        continue;
      }
      if (rows.size() >= kMaxRowsListed)
        break;
      rows.push_back({std::move(r.record), std::move(r.host)});
    }
    std::stable_sort(rows.begin(), rows.end(), [](const auto& a, const auto& b) {
      return a.record.started_usec < b.record.started_usec;
    });
    done(std::move(rows));
  });
}

void FleetSessions::prune(const fleet::RemoteSession& session) {
  shared_.unregister_session(session.record.user, session.record.id, session.host, [](Status st) {
    if (!st.ok())
      MFA_LOG_WARNING("fleet: cannot remove a stale session entry: %s", st.error().message.c_str());
  });
}

// --- TerminateSession ---

void FleetSessions::terminate(const Caller& caller, const std::string& session_id,
                              std::function<void(Status)> done) {
  Status here = d_.registry.terminate(caller, session_id);
  if (here.ok() || here.error().code != Errc::kNoSuchSession || !fleet::is_session_id(session_id))
    return done(std::move(here));
  // Not here: perhaps another host's.
  if (d_.fleet.degraded())
    return done(fleet_unreachable());
  auto alive = alive_;
  shared_.find_session(session_id, [this, alive, caller, done = std::move(done)](
                                       Result<std::optional<fleet::RemoteSession>> found) mutable {
    if (!*alive)
      return;
    if (!found.ok())
      return done(fleet_unreachable());
    if (!*found)
      return done(no_such_session());
    fleet::RemoteSession session = std::move(**found);
    if (session.host == d_.host) {
      // This host's, yet not in its database: a leftover, not a session.
      auto local = d_.store.get_session(session.record.id);
      if (local.ok() && !*local)
        prune(session);
      return done(no_such_session());
    }
    // A stranger learns nothing: someone else's session looks like none.
    if (!d_.registry.may_see(caller, session.record.user))
      return done(admin_refusal(caller, no_such_session()));
    if (session.expires_usec > 0 && session.expires_usec <= d_.clock.realtime_usec()) {
      prune(session);
      return done(no_such_session());
    }
    const SessionEnd reason = d_.registry.remote_end_reason(caller, session.record.user);
    fleet::TerminationRequest request{
        session.record.id, session_end_name(reason), d_.host,
        caller.describe(), session.record.user,      static_cast<int64_t>(caller.uid)};
    shared_.request_termination(
        session, request, d_.config.sessions_max_lifetime_seconds,
        [this, alive, caller, session, reason, done = std::move(done)](Status st) mutable {
          if (!*alive)
            return;
          if (!st.ok()) {
            return done(make_error(Errc::kStorage,
                                   "The request to end the session could not reach its host "
                                   "through the fleet's shared store (Redis)."));
          }
          MFA_LOG_INFO("fleet: asked host %s to end session %s of %s", session.host.c_str(),
                       session.record.id.c_str(), session.record.user.c_str());
          done(d_.registry.note_remote_end(caller, session.record, reason, session.host));
        });
  });
}

// --- What other hosts ask of this one ---

std::optional<fleet::TerminationRequest> FleetSessions::accept_termination(
    const std::string& sealed) {
  const std::string key = fleet::host_terminate_key(d_.config.redis_key_prefix, d_.host);
  fleet::SignedRecord record;
  const fleet::RecordProblem problem = d_.fleet.mac().open(key, sealed, &record);
  std::optional<fleet::TerminationRequest> request;
  if (problem == fleet::RecordProblem::kNone)
    request = fleet::decode_termination(record.payload);
  if (!request) {
    // Not written by a host of the fleet (or not one this release understands): nothing ends.
    d_.fleet.note_record_rejected(
        "", problem == fleet::RecordProblem::kNone ? fleet::RecordProblem::kMalformed : problem,
        key, "terminate");
    return std::nullopt;
  }
  // The record's counter is when it was asked; a request older than a session may live is a
  // replay (its session ended long ago, or its id is reused).
  const int64_t max_age = int64_t{d_.config.sessions_max_lifetime_seconds} * 1000000;
  const auto asked = static_cast<int64_t>(record.counter);
  if (asked + max_age < d_.clock.realtime_usec() || record.host != request->from_host) {
    d_.fleet.note_record_rejected(request->user, fleet::RecordProblem::kMalformed, key,
                                  "terminate");
    return std::nullopt;
  }
  // The asker may end that session: it is the user's the request names, and a user ends only
  // their own (an admin's or an eviction's right is the asking host's to check: it holds the key).
  auto local = d_.store.get_session(request->session_id);
  if (local.ok() && *local) {
    bool allowed = (*local)->user == request->user;
    if (allowed && request->reason == "user")
      allowed = uid_is_user(request->uid, request->user);
    if (!allowed) {
      d_.fleet.note_foreign_request(request->user, key, request->from_host);
      return std::nullopt;
    }
  }
  return request;
}

void FleetSessions::drain(std::function<void()> then) {
  if (d_.fleet.degraded())
    return;  // drained when fleet mode is back
  if (draining_ && !then) {
    drain_again_ = true;
    return;
  }
  draining_ = true;
  auto alive = alive_;
  shared_.take_terminations(d_.host, [this, alive, then = std::move(then)](
                                         Result<std::vector<std::string>> taken) {
    if (!*alive)
      return;
    draining_ = false;
    if (!taken.ok())
      return;  // degraded now
    for (const auto& sealed : *taken) {
      auto request = accept_termination(sealed);
      if (!request)
        continue;
      Status st = d_.registry.end_by_id(request->session_id, requested_reason(request->reason),
                                        request->caller + " on " + request->from_host,
                                        {{"requested_by", request->from_host}});
      if (st.ok()) {
        MFA_LOG_INFO("ended session %s at the request of host %s (%s)", request->session_id.c_str(),
                     request->from_host.c_str(), request->reason.c_str());
      } else if (st.error().code == Errc::kNoSuchSession) {
        MFA_LOG_INFO("host %s asked to end session %s, which is not here (any more)",
                     request->from_host.c_str(), request->session_id.c_str());
      } else {
        MFA_LOG_ERROR("cannot end session %s at the request of host %s: %s",
                      request->session_id.c_str(), request->from_host.c_str(),
                      st.error().message.c_str());
      }
    }
    if (!taken->empty() && on_write_)
      on_write_();
    if (!taken->empty() || drain_again_) {
      drain_again_ = false;
      drain(then);
      return;
    }
    if (then)
      then();
  });
}

void FleetSessions::online() {
  // What others asked while this host was away comes first: reconciliation must not register
  // again a session another host ended.
  drain([this] { reconcile(); });
}

void FleetSessions::reconcile() {
  if (d_.fleet.degraded())
    return;
  auto alive = alive_;
  shared_.host_sessions(
      d_.host, [this, alive](Result<std::vector<std::pair<std::string, std::string>>> registered) {
        if (!*alive || !registered.ok())
          return;
        auto local = d_.store.list_sessions("");
        if (!local.ok()) {
          MFA_LOG_ERROR("fleet: cannot reconcile sessions: %s", local.error().message.c_str());
          return;
        }
        std::set<std::string> here;
        for (const auto& s : *local)
          here.insert(s.id);
        std::set<std::string> there;
        size_t removed = 0;
        size_t added = 0;
        for (const auto& [id, user] : *registered) {
          there.insert(id);
          if (here.count(id) == 0) {
            ++removed;
            shared_.unregister_session(user, id, d_.host, [](Status) {});
          }
        }
        for (const auto& s : *local) {
          if (there.count(s.id) != 0)
            continue;
          ++added;
          // It exists: counted whatever the limit.
          shared_.register_session(remote(s), 0, fleet::SessionAdmission::kForce,
                                   [](Result<fleet::RegisterOutcome> r) {
                                     if (!r.ok())
                                       MFA_LOG_WARNING("fleet: cannot register a session: %s",
                                                       r.error().message.c_str());
                                   });
        }
        if (added != 0 || removed != 0) {
          MFA_LOG_INFO("fleet: sessions reconciled: %zu registered, %zu removed", added, removed);
        }
      });
}

void FleetSessions::session_removed(const SessionRecord& session) {
  if (d_.fleet.degraded())
    return;  // reconciled when Redis is back
  shared_.unregister_session(session.user, session.id, d_.host, [id = session.id](Status st) {
    if (!st.ok())
      MFA_LOG_WARNING("fleet: session %s stays registered until reconciliation: %s", id.c_str(),
                      st.error().message.c_str());
  });
}

int FleetSessions::on_poll(sd_event_source* s, uint64_t /*usec*/, void* userdata) {
  auto* self = static_cast<FleetSessions*>(userdata);
  try {
    self->drain();
    uint64_t now = 0;
    (void)sd_event_now(self->d_.event, CLOCK_MONOTONIC, &now);
    (void)sd_event_source_set_time(s, now + kPollUsec);
    (void)sd_event_source_set_enabled(s, SD_EVENT_ONESHOT);
  } catch (...) {
    MFA_LOG_ERROR("fleet session poll failed");
  }
  return 0;
}

}  // namespace mfa

#include "fleet/coordinator.hpp"

#include <algorithm>
#include <cstring>

#include "core/log.hpp"
#include "fleet/sms_keys.hpp"

namespace mfa {

namespace {

constexpr size_t kReconcileBatch = 500;

bool same_factor(const FactorRecord& a, const FactorRecord& b) {
  return a.method == b.method && a.device == b.device && a.pending == b.pending &&
         a.sealed == b.sealed && a.params == b.params && a.created_usec == b.created_usec;
}

bool same_limits(const LimitState& a, const LimitState& b) {
  return a.consecutive_failures == b.consecutive_failures && a.lockout_count == b.lockout_count &&
         a.locked_until_usec == b.locked_until_usec && a.day == b.day &&
         a.day_failures == b.day_failures;
}

}  // namespace

FleetCoordinator::FleetCoordinator(Deps deps, DegradedCallback on_degraded, WriteCallback on_write)
    : d_(deps),
      on_degraded_(std::move(on_degraded)),
      on_write_(std::move(on_write)),
      invalidations_(fleet::invalidation_channel(deps.config.redis_key_prefix)) {}

FleetCoordinator::~FleetCoordinator() {
  *alive_ = false;
}

Result<std::unique_ptr<FleetCoordinator>> FleetCoordinator::create(Deps deps,
                                                                   RedisClientOptions options,
                                                                   RedisClientOptions watcher,
                                                                   DegradedCallback on_degraded,
                                                                   WriteCallback on_write) {
  std::unique_ptr<FleetCoordinator> f(
      new FleetCoordinator(deps, std::move(on_degraded), std::move(on_write)));
  FleetCoordinator* self = f.get();
  MFA_TRY(client, RedisClient::create(deps.event, std::move(options),
                                      [self](bool ready, const std::string& why) {
                                        self->on_client_state(ready, why);
                                      }));
  f->client_ = std::move(client);
  // An invalidation that arrives with a BeginAuthentication is seen before it.
  watcher.priority = SD_EVENT_PRIORITY_IMPORTANT;
  MFA_TRY(watcher_client, RedisClient::create(deps.event, std::move(watcher),
                                              [self](bool ready, const std::string&) {
                                                if (!ready)
                                                  self->read_cache_.watching(false);
                                              }));
  f->watcher_ = std::move(watcher_client);
  f->watcher_->subscribe(
      f->invalidations_, [self] { self->read_cache_.watching(true); },
      [self](const std::string& user) { self->read_cache_.invalidate(user); });
  sd_event_source* source = nullptr;
  int r = sd_event_add_time(deps.event, &source, CLOCK_MONOTONIC, UINT64_MAX, 10 * 1000,
                            &FleetCoordinator::on_reconcile_retry, self);
  if (r < 0) {
    return make_error(Errc::kInternal,
                      std::string("cannot add the reconciliation timer: ") + strerror(-r));
  }
  f->reconcile_retry_.reset(source);
  (void)sd_event_source_set_enabled(source, SD_EVENT_OFF);
  (void)sd_event_source_set_description(source, "fleet-reconcile-retry");
  return f;
}

void FleetCoordinator::retry_reconcile_later() {
  constexpr uint64_t kFirstUsec = 100 * 1000, kMaxUsec = 5 * 1000 * 1000;
  // The backoff outlives a short spell out of degraded mode: a Redis that keeps refusing (out of
  // memory, an ACL) must not make mfad enter and leave degraded mode at every login.
  constexpr uint64_t kCalmUsec = 60 * 1000 * 1000;
  uint64_t now = 0;
  if (sd_event_now(d_.event, CLOCK_MONOTONIC, &now) < 0)
    return;
  if (left_degraded_usec_ != 0 && now - left_degraded_usec_ > kCalmUsec)
    reconcile_retry_usec_ = 0;
  reconcile_retry_usec_ =
      reconcile_retry_usec_ == 0 ? kFirstUsec : std::min(kMaxUsec, 2 * reconcile_retry_usec_);
  (void)sd_event_source_set_time(reconcile_retry_.get(), now + reconcile_retry_usec_);
  (void)sd_event_source_set_enabled(reconcile_retry_.get(), SD_EVENT_ONESHOT);
}

int FleetCoordinator::on_reconcile_retry(sd_event_source* /*source*/, uint64_t /*usec*/,
                                         void* userdata) {
  auto* self = static_cast<FleetCoordinator*>(userdata);
  try {
    // Only while connected: a reconnection reconciles anyway.
    if (self->degraded_ && self->client_->ready())
      self->reconcile();
  } catch (...) {
    MFA_LOG_ERROR("fleet: reconciliation failed");
  }
  return 0;
}

RatePolicy FleetCoordinator::policy() const {
  return RatePolicy::from_config(d_.config);
}

void FleetCoordinator::on_client_state(bool ready, const std::string& why) {
  if (shutting_down_)
    return;
  if (!ready) {
    enter_degraded(why);
    return;
  }
  MFA_LOG_INFO("Redis connected; reconciling before leaving degraded mode");
  reconcile();
}

void FleetCoordinator::enter_degraded(const std::string& why) {
  if (degraded_ || shutting_down_)
    return;
  degraded_ = true;
  MFA_LOG_WARNING("fleet mode degraded: Redis unavailable (%s); serving from the local cache",
                  why.c_str());
  degraded_changed(true, why);
  // Redis answered with an error and the connection is still up (out of memory, an ACL that
  // refuses, a script error): no reconnection will come to bring mfad back, so the retry timer
  // does, with its backoff.
  if (client_ && client_->ready())
    retry_reconcile_later();
}

void FleetCoordinator::degraded_changed(bool degraded, const std::string& why) {
  // Decisions of degraded mode changed the cache behind Redis's back, and messages were missed.
  read_cache_.invalidate_all();
  AuditEvent event;
  event.kind = AuditKind::kDegraded;
  event.outcome = AuditOutcome::kInfo;
  event.reason = degraded ? AuditReason::kRedisUnavailable : AuditReason::kRedisAvailable;
  event.caller = "mfad";
  event.details["state"] = degraded ? "entered" : "left";
  if (degraded)
    event.details["why"] = why;
  if (Status st = d_.audit.record(event); !st.ok()) {
    MFA_LOG_ERROR(
        degraded ? "cannot audit degraded mode: %s" : "cannot audit leaving degraded mode: %s",
        st.error().message.c_str());
  }
  if (on_write_)
    on_write_();
  if (on_degraded_)
    on_degraded_(degraded);
}

void FleetCoordinator::queue(const ReconcileItem& item) {
  if (Status st = d_.cache.queue_reconcile(item); !st.ok()) {
    MFA_LOG_ERROR("cannot queue a %s for reconciliation: %s", item.kind.c_str(),
                  st.error().message.c_str());
  }
}

void FleetCoordinator::queue_consumed(const std::string& user, const FleetChanges& changes,
                                      bool failure) {
  if (changes.watermark_advanced)
    queue({0, user, "watermark", *changes.watermark_advanced, std::nullopt, 0});
  if (changes.backup_consumed)
    queue({0, user, "backup", 0, changes.backup_consumed, 0});
  if (failure && changes.limits_written)
    queue({0, user, "failures", 0, std::nullopt, 1});
}

// --- Prefetch ---

Status FleetCoordinator::write_through(const std::string& user, const fleet::RemoteUser& remote) {
  MFA_TRY(local, d_.cache.get_factors(user));
  for (const auto& r : remote.factors) {
    const bool have = std::any_of(local.begin(), local.end(),
                                  [&](const FactorRecord& l) { return same_factor(l, r); });
    if (!have)
      MFA_CHECK(d_.cache.put_factor(user, r));
  }
  for (const auto& l : local) {
    const bool keep =
        std::any_of(remote.factors.begin(), remote.factors.end(), [&](const FactorRecord& r) {
          return r.method == l.method && r.device == l.device && r.pending == l.pending;
        });
    if (!keep && l.method == Method::kTotp)
      MFA_CHECK(d_.cache.delete_totp_device(user, l.device, l.pending));
    else if (!keep)
      MFA_CHECK(d_.cache.delete_factor(user, l.method, l.pending));
  }
  // Watermarks only move forward: the cache keeps the larger one.
  if (remote.watermark) {
    MFA_TRY(advanced, d_.cache.advance_totp_watermark(user, kDefaultTotpDevice, *remote.watermark));
    (void)advanced;
  }
  std::vector<CodeHash> wanted = remote.backup;
  std::sort(wanted.begin(), wanted.end());
  MFA_TRY(unused, d_.cache.unused_backup_codes(user));
  std::sort(unused.begin(), unused.end());
  if (wanted != unused) {
    if (wanted.empty())
      MFA_CHECK(d_.cache.delete_backup_codes(user));
    else
      MFA_CHECK(d_.cache.replace_backup_codes(user, wanted));
  }
  const LimitState shared = remote.has_limits ? remote.limits : LimitState{};
  MFA_TRY(limits, d_.cache.get_limits(user));
  if (!same_limits(limits, shared))
    MFA_CHECK(d_.cache.put_limits(user, shared));
  return {};
}

void FleetCoordinator::follow_limits(const std::string& user, const LimitState& shared) {
  auto cached = d_.cache.get_limits(user);
  if (cached.ok() && same_limits(*cached, shared))
    return;  // usually: no write then
  if (Status st = d_.cache.put_limits(user, shared); !st.ok()) {
    MFA_LOG_ERROR("fleet: cannot cache %s's limits: %s", user.c_str(), st.error().message.c_str());
  }
}

bool FleetCoordinator::cache_current(const std::string& user) const {
  return !degraded_ && read_cache_.current(user, d_.clock.monotonic_usec());
}

void FleetCoordinator::prefetch(const std::string& user, std::function<void(bool online)> done) {
  if (degraded_) {
    done(false);
    return;
  }
  const auto keys = fleet::user_keys(d_.config.redis_key_prefix, user);
  auto alive = alive_;
  const uint64_t token = read_cache_.read_started();
  client_->eval(fleet::load_script(), {keys.factors, keys.watermark, keys.backup, keys.limits}, {},
                [this, alive, user, token, done = std::move(done)](Result<RedisReply> reply) {
                  if (!*alive)
                    return;
                  if (!reply.ok()) {
                    enter_degraded(reply.error().message);
                    done(false);
                    return;
                  }
                  auto remote = fleet::parse_load_reply(*reply);
                  if (!remote.ok()) {
                    MFA_LOG_ERROR("fleet: %s%s%s", remote.error().message.c_str(),
                                  reply->is_error() ? ": " : "",
                                  reply->is_error() ? reply->str.c_str() : "");
                    enter_degraded(remote.error().message);
                    done(false);
                    return;
                  }
                  if (Status st = write_through(user, *remote); !st.ok()) {
                    MFA_LOG_ERROR("fleet: cannot write %s's shared state to the cache: %s",
                                  user.c_str(), st.error().message.c_str());
                  } else if (!degraded_) {
                    read_cache_.read_done(user, token, d_.clock.monotonic_usec());
                  }
                  done(true);
                });
}

// --- Confirm ---

void FleetCoordinator::push_user(const std::string& user, const FleetChanges& changes,
                                 std::function<void(bool ok)> done) {
  const auto keys = fleet::user_keys(d_.config.redis_key_prefix, user);
  std::vector<std::string> args{
      changes.user_deleted ? "delete" : "update",
      changes.watermark_set ? std::to_string(*changes.watermark_set) : std::string(),
      changes.factors_changed ? "1" : "0", changes.backup_replaced ? "1" : "0"};
  std::vector<std::string> factor_args;
  std::vector<std::string> backup_args;
  if (!changes.user_deleted) {
    auto factors = d_.cache.get_factors(user);
    auto unused = d_.cache.unused_backup_codes(user);
    if (!factors.ok() || !unused.ok()) {
      done(false);
      return;
    }
    for (const auto& f : *factors) {
      factor_args.push_back(fleet::factor_field(f.method, f.pending));
      factor_args.push_back(fleet::encode_factor(f));
    }
    for (const auto& h : *unused)
      backup_args.push_back(fleet::hash_hex(h));
  }
  args.push_back(std::to_string(factor_args.size() / 2));
  args.push_back(invalidations_);
  args.push_back(user);
  args.insert(args.end(), factor_args.begin(), factor_args.end());
  args.insert(args.end(), backup_args.begin(), backup_args.end());
  std::vector<std::string> script_keys{keys.factors, keys.watermark, keys.backup, keys.limits,
                                       keys.sessions};
  if (changes.user_deleted || changes.sms_codes_dropped) {
    for (auto& k : fleet::sms_code_keys(d_.config.redis_key_prefix, user))
      script_keys.push_back(std::move(k));
  }
  auto alive = alive_;
  client_->eval(fleet::put_user_script(), std::move(script_keys), std::move(args),
                [alive, done = std::move(done)](Result<RedisReply> reply) {
                  if (!*alive)
                    return;
                  if (reply.ok() && reply->is_error())
                    MFA_LOG_ERROR("fleet: enrollment write failed: %s", reply->str.c_str());
                  done(reply.ok() && !reply->is_error());
                });
}

void FleetCoordinator::confirm(const std::string& user, FleetCallKind kind,
                               const FleetChanges& changes, bool success, bool failure,
                               std::optional<Method> verified,
                               std::function<void(FleetConfirmResult)> answer) {
  // The cache holds a change Redis may not take; and what Redis refused, the cache did not know.
  if (changes.enrollment_changed())
    read_cache_.invalidate(user);
  auto done = [this, alive = alive_, user, answer = std::move(answer)](FleetConfirmResult r) {
    if (*alive && (r.refused != FleetRefusal::kNone || r.unavailable))
      read_cache_.invalidate(user);
    answer(std::move(r));
  };
  fleet::ConfirmRequest req;
  req.notify_channel = invalidations_;
  req.notify_user = user;
  req.step = changes.watermark_advanced;
  req.backup = changes.backup_consumed;
  if (changes.limits_written) {
    if (failure)
      req.action = "fail";
    else if (success)
      req.action = kind == FleetCallKind::kAdmin ? "clear" : "success";
  }
  // The cache may be older than Redis (a login reuses BeginAuthentication's read): what another
  // host did since is checked in the script, atomically with the consumption.
  req.check_lock = kind == FleetCallKind::kLogin || kind == FleetCallKind::kChange;
  if (kind == FleetCallKind::kLogin && success &&
      (verified == Method::kTotp || verified == Method::kSms)) {
    req.factor_field = fleet::factor_field(*verified, false);
    // No record in the cache (cannot happen after its success): a fingerprint nothing matches.
    req.factor_sha1 = "-";
    auto factors = d_.cache.get_factors(user);
    if (factors.ok()) {
      for (const auto& f : *factors) {
        if (f.method == *verified && !f.pending)
          req.factor_sha1 = fleet::factor_fingerprint(f);
      }
    }
  }
  const bool push =
      changes.enrollment_changed() && kind != FleetCallKind::kLogin && kind != FleetCallKind::kRead;
  if (!req.step && !req.backup && req.action.empty() && !push) {
    done({});
    return;
  }
  auto alive = alive_;
  auto unavailable = [this, user, changes, failure](const std::string& why) {
    enter_degraded(why);
    // What this host already consumed stays consumed: Redis learns it on reconciliation.
    queue_consumed(user, changes, failure);
    // The codes died here (the cache): whether or not Redis took the change, none texted before
    // it may live on in Redis for another host (fail closed: at worst a code to text again).
    if (changes.user_deleted || changes.sms_codes_dropped)
      queue(fleet::sms_drop_item(user, d_.clock.realtime_usec(), d_.config));
  };
  auto after_limits = [this, alive, user, changes, push, unavailable,
                       done](FleetConfirmResult result) mutable {
    if (!push || result.refused != FleetRefusal::kNone) {
      done(std::move(result));
      return;
    }
    push_user(user, changes, [alive, unavailable, done](bool ok) mutable {
      if (!*alive)
        return;
      FleetConfirmResult r;
      if (!ok) {
        unavailable("the enrollment record could not be written");
        r.unavailable = true;
      }
      done(std::move(r));
    });
  };
  if (!req.step && !req.backup && req.action.empty()) {
    after_limits({});
    return;
  }
  const auto keys = fleet::user_keys(d_.config.redis_key_prefix, user);
  const int64_t now = d_.clock.realtime_usec();
  client_->eval(fleet::confirm_script(), fleet::confirm_keys(keys),
                fleet::confirm_args(req, policy(), now),
                [this, alive, user, now, unavailable, after_limits = std::move(after_limits),
                 done](Result<RedisReply> reply) mutable {
                  if (!*alive)
                    return;
                  Result<fleet::ConfirmOutcome> outcome =
                      reply.ok() ? fleet::parse_confirm_reply(*reply)
                                 : Result<fleet::ConfirmOutcome>(reply.error());
                  if (!outcome.ok()) {
                    if (reply.ok() && reply->is_error())
                      MFA_LOG_ERROR("fleet: confirm script failed: %s", reply->str.c_str());
                    unavailable(outcome.error().message);
                    FleetConfirmResult r;
                    r.unavailable = true;
                    done(std::move(r));
                    return;
                  }
                  follow_limits(user, outcome->limits);
                  FleetConfirmResult r;
                  r.refused = outcome->refused;
                  r.locked_usec = lock_remaining_usec(outcome->limits, now);
                  after_limits(std::move(r));
                });
}

void FleetCoordinator::note_degraded(const std::string& user, const std::string& call,
                                     const FleetChanges& changes, bool success, bool failure,
                                     const std::string& caller) {
  audit_degraded(user, call, changes, success, failure, caller);
  queue_consumed(user, changes, failure);
  for (const auto& item : fleet::sms_change_items(user, changes))
    queue(item);
}

void FleetCoordinator::audit_degraded(const std::string& user, const std::string& call,
                                      const FleetChanges& changes, bool success, bool failure,
                                      const std::string& caller) {
  AuditEvent event;
  event.kind = AuditKind::kDegraded;
  event.user = user;
  event.outcome = success   ? AuditOutcome::kSuccess
                  : failure ? AuditOutcome::kFailure
                            : AuditOutcome::kDenied;
  event.reason = AuditReason::kRedisUnavailable;
  event.caller = caller;
  event.details["call"] = call;
  if (changes.watermark_advanced)
    event.details["method"] = "totp";
  else if (changes.backup_consumed)
    event.details["method"] = "backup";
  else if (changes.sms_used)
    event.details["method"] = "sms";
  if (Status st = d_.audit.record(event); !st.ok())
    MFA_LOG_ERROR("cannot audit a degraded decision: %s", st.error().message.c_str());
}

void FleetCoordinator::note_refused(const std::string& user, FleetRefusal reason,
                                    const std::string& caller) {
  AuditEvent event;
  event.kind = AuditKind::kAuthFailure;
  event.user = user;
  // As a locked user's attempt on one host: refused, not counted.
  event.outcome = reason == FleetRefusal::kLocked ? AuditOutcome::kDenied : AuditOutcome::kFailure;
  event.reason = audit_reason_from_name(fleet_refusal_name(reason))
                     .value_or(AuditReason::kUnrecognisedRefusal);
  event.caller = caller;
  event.details["fleet"] = "refused";
  if (Status st = d_.audit.record(event); !st.ok())
    MFA_LOG_ERROR("cannot audit a fleet refusal: %s", st.error().message.c_str());
}

int64_t FleetCoordinator::note_lockout(const std::string& user, int64_t locked_usec,
                                       const std::string& caller) {
  const int64_t until = (d_.clock.realtime_usec() + locked_usec) / kUsecPerSecond;
  AuditEvent event;
  event.kind = AuditKind::kAuthLockout;
  event.user = user;
  event.outcome = AuditOutcome::kDenied;
  event.reason = AuditReason::kFleetFailures;
  event.caller = caller;
  event.details["fleet"] = "counted";
  event.details["locked_until"] = std::to_string(until);
  if (Status st = d_.audit.record(event); !st.ok())
    MFA_LOG_ERROR("cannot audit a fleet lockout: %s", st.error().message.c_str());
  return until;
}

void FleetCoordinator::close_client(const std::string& why) {
  shutting_down_ = true;
  client_->close(why);
  watcher_->close(why);
}

// --- Reconciliation ---

void FleetCoordinator::reconcile() {
  if (reconciling_ || shutting_down_)
    return;
  auto items = d_.cache.list_reconcile(kReconcileBatch);
  if (!items.ok()) {
    MFA_LOG_ERROR("fleet: cannot read the reconciliation queue: %s", items.error().message.c_str());
    retry_reconcile_later();
    return;
  }
  if (items->empty()) {
    if (degraded_) {
      degraded_ = false;
      (void)sd_event_now(d_.event, CLOCK_MONOTONIC, &left_degraded_usec_);
      MFA_LOG_INFO("fleet mode: Redis is the shared truth again (left degraded mode)");
      degraded_changed(false, std::string());
    }
    return;
  }
  reconciling_ = true;
  struct Batch {
    size_t outstanding = 0;
    bool failed = false;
    std::vector<int64_t> done_ids;
  };
  auto batch = std::make_shared<Batch>();
  batch->outstanding = items->size();
  auto alive = alive_;
  const RatePolicy pol = policy();
  const int64_t now = d_.clock.realtime_usec();
  for (const auto& item : *items) {
    fleet::ConfirmRequest req;
    req.notify_channel = invalidations_;
    req.notify_user = item.user;
    if (item.kind == "watermark") {
      req.step = item.step;
    } else if (item.kind == "backup" && item.hash) {
      req.backup = item.hash;
    } else if (item.kind == "failures") {
      req.action = "fail";
      req.fail_count = std::max(1, item.count);
    }
    const auto keys = fleet::user_keys(d_.config.redis_key_prefix, item.user);
    const int64_t id = item.id;
    auto replayed = [this, alive, batch, id](Result<RedisReply> reply) {
      if (!*alive)
        return;
      // A refused compare-and-set or SREM is fine here: Redis already knows better.
      if (reply.ok() && !reply->is_error())
        batch->done_ids.push_back(id);
      else
        batch->failed = true;
      if (--batch->outstanding != 0)
        return;
      reconciling_ = false;
      for (int64_t done_id : batch->done_ids) {
        if (Status st = d_.cache.delete_reconcile(done_id); !st.ok())
          batch->failed = true;
      }
      if (on_write_)
        on_write_();
      if (batch->failed) {
        MFA_LOG_WARNING("fleet: reconciliation incomplete; staying degraded, trying again");
        retry_reconcile_later();
        return;
      }
      // This connection reads its own uncommitted deletions: the next batch, or leaving degraded
      // mode once the queue is empty. (A failed commit brings items back; replaying them is
      // harmless.)
      reconcile();
    };
    // SMS texts and codes have scripts of their own (sms_keys.hpp), sent as EVAL: an
    // EVALSHA refused with NOSCRIPT is sent again later, and the order of a code's items (texted,
    // tried, used) must hold. A malformed row, like an unknown kind, replays as a confirm that
    // changes nothing, and goes.
    if (auto sms = fleet::is_sms_item(item)
                       ? fleet::sms_reconcile_call(d_.config.redis_key_prefix, item, d_.config, now)
                       : std::nullopt) {
      client_->command(sms->eval_argv(), std::move(replayed));
      continue;
    }
    client_->eval(fleet::confirm_script(), fleet::confirm_keys(keys),
                  fleet::confirm_args(req, pol, now), std::move(replayed));
  }
}

}  // namespace mfa

#include "fleet/coordinator.hpp"

#include <algorithm>
#include <cstring>

#include "core/log.hpp"
#include "core/validation.hpp"
#include "fleet/sms_keys.hpp"

namespace mfa {

namespace {

constexpr size_t kReconcileBatch = 500;
// A write that finds another state in Redis reads it and computes again; after this many, Redis
// is too busy with this user (or an attacker keeps changing it): degraded for this decision.
constexpr int kStateWriteTries = 4;

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
  MFA_TRY(
      watcher_client,
      RedisClient::create(deps.event, std::move(watcher), [self](bool ready, const std::string&) {
        if (!ready) {
          self->read_cache_.watching(false, self->d_.clock.monotonic_usec());
        }
      }));
  f->watcher_ = std::move(watcher_client);
  f->watcher_->subscribe(
      f->invalidations_,
      [self] { self->read_cache_.watching(true, self->d_.clock.monotonic_usec()); },
      [self](const std::string& user) {
        if (user == fleet::kForgetMessage) {
          self->sweep_forgotten();
          return;
        }
        self->read_cache_.invalidate(user);
        self->changed_elsewhere(user);
      });
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
  read_cache_.outage(d_.clock.monotonic_usec());
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
  if (degraded) {
    event.details["why"] = why;
  } else {
    // The reconciliation report: what the period now ending decided without Redis (its audit
    // rows, since the last time degraded mode was left), and what its queue became.
    auto tally = d_.cache.tally_degraded(0, /*current_period=*/true);
    if (tally.ok()) {
      event.details["decisions"] = std::to_string(tally->decisions);
      event.details["logins_allowed"] = std::to_string(tally->logins_allowed);
      event.details["logins_denied"] = std::to_string(tally->logins_denied);
      event.details["consumed"] = std::to_string(tally->consumed);
      event.details["unreplicated"] = std::to_string(tally->unreplicated);
    } else {
      MFA_LOG_ERROR("cannot count the degraded decisions: %s", tally.error().message.c_str());
    }
    event.details["reconciled"] = std::to_string(reconciled_);
    event.details["refused"] = std::to_string(reconcile_refused_);
    reconciled_ = reconcile_refused_ = 0;
  }
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
                                      bool failure, uint64_t counter) {
  if (changes.watermark_advanced) {
    // A named device's step: "watermark/NAME" (the default device's kind as before).
    const std::string& device = changes.watermark_device;
    const bool named = !device.empty() && device != kDefaultTotpDevice;
    queue({0, user, named ? "watermark/" + device : "watermark", *changes.watermark_advanced,
           std::nullopt, 0, counter});
  }
  if (changes.backup_consumed)
    queue({0, user, "backup", 0, changes.backup_consumed, 0, counter});
  if (failure && changes.limits_written)
    queue({0, user, "failures", 0, std::nullopt, 1, counter});
}

// --- Prefetch ---

Status FleetCoordinator::write_through(const std::string& user, const fleet::VerifiedUser& remote) {
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
  return cache_state(user, remote.state);
}

Status FleetCoordinator::cache_state(const std::string& user, const fleet::UserState& state) {
  // Watermarks only move forward: the cache keeps the larger one. Read first: a login's confirm
  // usually finds the cache there already, and a write would open a batch for nothing.
  std::vector<std::pair<std::string, uint64_t>> watermarks(state.device_watermarks.begin(),
                                                           state.device_watermarks.end());
  if (state.watermark)
    watermarks.emplace_back(kDefaultTotpDevice, *state.watermark);
  for (const auto& [device, step] : watermarks) {
    MFA_TRY(cached, d_.cache.get_totp_watermark(user, device));
    if (!cached || *cached < step) {
      MFA_TRY(advanced, d_.cache.advance_totp_watermark(user, device, step));
      (void)advanced;
    }
  }
  std::vector<CodeHash> wanted = state.backup;
  std::sort(wanted.begin(), wanted.end());
  MFA_TRY(unused, d_.cache.unused_backup_codes(user));
  std::sort(unused.begin(), unused.end());
  if (wanted != unused) {
    if (wanted.empty())
      MFA_CHECK(d_.cache.delete_backup_codes(user));
    else
      MFA_CHECK(d_.cache.replace_backup_codes(user, wanted));
  }
  MFA_TRY(limits, d_.cache.get_limits(user));
  if (!same_limits(limits, state.limits))
    MFA_CHECK(d_.cache.put_limits(user, state.limits));
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
  load_user(user, std::move(done));
}

// --- Confirm ---

void FleetCoordinator::confirm(const std::string& user, FleetCallKind kind,
                               const FleetChanges& changes, bool success, bool failure,
                               std::optional<Method> verified,
                               std::function<void(FleetConfirmResult)> answer) {
  // The cache holds a change Redis may not take; and what Redis refused, the cache did not know.
  if (changes.enrollment_changed())
    read_cache_.invalidate(user);
  auto done = [this, alive = alive_, user, answer = std::move(answer)](FleetConfirmResult r) {
    if (*alive && (r.refused != FleetRefusal::kNone || r.unavailable || r.rejected))
      read_cache_.invalidate(user);
    answer(std::move(r));
  };
  if (rejected(user) && kind != FleetCallKind::kAdmin) {
    FleetConfirmResult r;
    r.rejected = true;
    done(r);
    return;
  }
  StateWrite w;
  w.change.step = changes.watermark_advanced;
  w.change.device = changes.watermark_device;
  w.change.backup = changes.backup_consumed;
  if (changes.limits_written) {
    if (failure)
      w.change.action = "fail";
    else if (success)
      w.change.action = kind == FleetCallKind::kAdmin ? "clear" : "success";
  }
  // The cache may be older than Redis (a login reuses BeginAuthentication's read): what another
  // host did since is checked against Redis's state, atomically with the write.
  w.change.check_lock = kind == FleetCallKind::kLogin || kind == FleetCallKind::kChange;
  if (kind == FleetCallKind::kLogin && success &&
      (verified == Method::kTotp || verified == Method::kSms)) {
    w.factor_field = fleet::factor_field(
        *verified, false, *verified == Method::kTotp ? changes.watermark_device : std::string());
    // The record the cache's decision rests on is the one this host verified last.
    w.factor_sha1 = "-";
    auto view = views_.find(user);
    if (view != views_.end()) {
      auto it = view->second.state.factors.find(w.factor_field);
      if (it != view->second.state.factors.end())
        w.factor_sha1 = it->second;
    }
  }
  w.push =
      changes.enrollment_changed() && kind != FleetCallKind::kLogin && kind != FleetCallKind::kRead;
  w.enrollment = changes;
  w.force = kind == FleetCallKind::kAdmin && changes.user_deleted;
  if (w.push && (changes.user_deleted || changes.sms_codes_dropped))
    w.extra_keys = fleet::sms_code_keys(d_.config.redis_key_prefix, user);
  if (w.push && changes.user_forgotten) {
    // Crypto-shredding (data_key_records.hpp): the data key goes, and no key of the person is
    // left in Redis (each one's name holds theirs).
    const auto keys = fleet::user_keys(d_.config.redis_key_prefix, user);
    w.forget = true;
    for (const std::string* key :
         {&keys.state, &keys.data_key, &keys.watermark, &keys.backup, &keys.limits})
      w.extra_keys.push_back(*key);
  }
  if (!w.change.step && !w.change.backup && w.change.action.empty() && !w.push) {
    done({});
    return;
  }
  auto unavailable = [this, user, changes, failure](const std::string& why) {
    enter_degraded(why);
    // What this host already consumed stays consumed: Redis learns it on reconciliation.
    queue_consumed(user, changes, failure);
    // The codes died here (the cache): whether or not Redis took the change, none texted before
    // it may live on in Redis for another host (fail closed: at worst a code to text again).
    if (changes.user_deleted || changes.sms_codes_dropped)
      queue(fleet::sms_drop_item(user, d_.clock.realtime_usec(), d_.config));
  };
  const int64_t now = d_.clock.realtime_usec();
  const bool push = w.push;
  const bool forget = w.forget;
  write_state(user, std::move(w), kStateWriteTries,
              [this, alive = alive_, user, now, push, forget, unavailable, done,
               changes](StateWriteResult res) {
                if (!*alive)
                  return;
                FleetConfirmResult r;
                if (res.rejected) {
                  r.rejected = true;
                  done(r);
                  return;
                }
                if (res.unavailable) {
                  unavailable(push ? "the enrollment record could not be written"
                                   : "the state record could not be written");
                  r.unavailable = true;
                  done(r);
                  return;
                }
                r.refused = res.refused;
                if (!forget) {
                  follow_limits(user, res.limits);
                  r.locked_usec = lock_remaining_usec(res.limits, now);
                  const bool consumed = r.refused == FleetRefusal::kNone &&
                                        (changes.watermark_advanced || changes.backup_consumed);
                  if (!consumed || !client_->follows_primary()) {
                    done(r);
                    return;
                  }
                  await_replica(user, changes, res.counter, [done, r] { done(r); });
                  return;
                }
                // Every host erases its copy of the key and its records of the person.
                announce_forget(user, [alive, unavailable, done, r](bool ok) mutable {
                  if (!*alive)
                    return;
                  if (!ok) {
                    unavailable("the forget could not be announced");
                    r.unavailable = true;
                  }
                  done(r);
                });
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

void FleetCoordinator::note_unconfirmed(const std::string& user, const std::string& call,
                                        const std::string& caller) {
  AuditEvent event;
  event.kind = AuditKind::kDegraded;
  event.user = user;
  event.outcome = AuditOutcome::kDenied;
  event.reason = AuditReason::kUnconfirmedNotEnrolled;
  event.caller = caller;
  event.details["call"] = call;
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
      read_cache_.back_online();
      (void)sd_event_now(d_.event, CLOCK_MONOTONIC, &left_degraded_usec_);
      MFA_LOG_INFO("fleet mode: Redis is the shared truth again (left degraded mode)");
      degraded_changed(false, std::string());
      // A forget announced while this host was away is applied now.
      sweep_forgotten();
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
  const int64_t now = d_.clock.realtime_usec();
  for (const auto& item : *items) {
    StateWrite w;
    if (item.kind == "watermark") {
      w.change.step = item.step;
    } else if (item.kind.starts_with("watermark/") &&
               validate_device_name(std::string_view(item.kind).substr(10)).ok()) {
      w.change.step = item.step;
      w.change.device = item.kind.substr(10);
    } else if (item.kind == "backup" && item.hash) {
      w.change.backup = item.hash;
    } else if (item.kind == "failures") {
      w.change.action = "fail";
      w.change.fail_count = std::max(1, item.count);
    }
    const int64_t id = item.id;
    // sent: the item went to Redis (counted in the report); refused: Redis knew better.
    auto finished = [this, alive, batch, id](bool ok, bool sent = false, bool refused = false) {
      if (!*alive)
        return;
      if (ok) {
        batch->done_ids.push_back(id);
        reconciled_ += sent && !refused ? 1 : 0;
        reconcile_refused_ += sent && refused ? 1 : 0;
      } else {
        batch->failed = true;
      }
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
    // tried, used) must hold. A malformed row, like an unknown kind, changes nothing, and goes.
    if (auto sms = fleet::is_sms_item(item)
                       ? fleet::sms_reconcile_call(d_.config.redis_key_prefix, item, d_.config, now)
                       : std::nullopt) {
      client_->command(sms->eval_argv(), [finished](Result<RedisReply> reply) {
        finished(reply.ok() && !reply->is_error(), true);
      });
      continue;
    }
    if (!w.change.step && !w.change.backup && w.change.action.empty()) {
      finished(true);
      continue;
    }
    // A refusal is fine here (Redis already knows better); records that fail verification are
    // audited, and the item goes: replaying it onto a forged state would vouch for that state.
    write_state(item.user, std::move(w), kStateWriteTries, [finished](StateWriteResult r) {
      finished(!r.unavailable, true, r.rejected || r.refused != FleetRefusal::kNone);
    });
  }
}

}  // namespace mfa

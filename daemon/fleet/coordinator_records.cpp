// The coordinator's authenticated records (docs/fleet.md, "Authenticated records"; issue 16):
// reading and verifying a user's records, writing the state record by compare-and-set, and what
// a record that fails verification sets off (refusal, audit, SecurityEvent).
#include <algorithm>

#include "common/crypto.hpp"
#include "core/log.hpp"
#include "core/user_directory.hpp"
#include "fleet/coordinator.hpp"
#include "fleet/session_keys.hpp"
#include "fleet/sms_keys.hpp"

namespace mfa {

namespace {

bool same_factor(const FactorRecord& a, const FactorRecord& b) {
  return a.method == b.method && a.pending == b.pending && a.sealed == b.sealed &&
         a.params == b.params && a.created_usec == b.created_usec;
}

// A named device removed takes its watermark with it (a device enrolled again under its name
// starts from its confirming step; a queued step of a removed device adds nothing); the default
// device's stays, as before named devices.
void keep_enrolled_watermarks(fleet::UserState& state) {
  std::erase_if(state.device_watermarks, [&](const auto& entry) {
    return !state.factors.count(fleet::factor_field(Method::kTotp, false, entry.first));
  });
}

}  // namespace

void FleetCoordinator::load_user(const std::string& user, std::function<void(bool online)> done) {
  const auto keys = fleet::user_keys(d_.config.redis_key_prefix, user);
  auto alive = alive_;
  const uint64_t token = read_cache_.read_started();
  client_->eval(
      fleet::load_state_script(),
      {keys.factors, keys.state, keys.watermark, keys.backup, keys.limits, keys.data_key}, {},
      [this, alive, user, keys, token, done = std::move(done)](Result<RedisReply> reply) {
        if (!*alive)
          return;
        if (!reply.ok()) {
          enter_degraded(reply.error().message);
          done(false);
          return;
        }
        auto raw = fleet::parse_raw_load_reply(*reply);
        if (!raw.ok()) {
          MFA_LOG_ERROR("fleet: %s%s%s", raw.error().message.c_str(), reply->is_error() ? ": " : "",
                        reply->is_error() ? reply->str.c_str() : "");
          enter_degraded(raw.error().message);
          done(false);
          return;
        }
        if (raw->state.empty() && seen_state(user)) {
          // Deleted: this host saw the record, so it existed (rollback to "never
          // enrolled").
          reject(user, fleet::RecordProblem::kMalformed, keys.state, "rolled-back");
          done(true);
          return;
        }
        fleet::VerifiedUser verified;
        std::string key;
        const fleet::RecordProblem problem =
            fleet::verify_user(d_.mac, keys, *raw, &verified, &key);
        if (problem != fleet::RecordProblem::kNone) {
          reject(user, problem, key, "read");
          done(true);
          return;
        }
        auto finish = [this, user, keys, token, wrapped = raw->data_key,
                       done](const fleet::VerifiedUser& taken) {
          if (!take_data_key(user, keys, wrapped)) {
            done(true);
            return;
          }
          note_writers(user, taken);
          if (Status st = write_through(user, taken); !st.ok()) {
            MFA_LOG_ERROR("fleet: cannot write %s's shared state to the cache: %s", user.c_str(),
                          st.error().message.c_str());
          } else if (!degraded_) {
            read_cache_.read_done(user, token, d_.clock.monotonic_usec());
          }
          done(true);
        };
        switch (take_view(user, verified, keys.state)) {
          case ViewOutcome::kTaken:
            finish(verified);
            return;
          case ViewOutcome::kMerge:
            merge_lost_writes(
                user, verified,
                [alive, finish, done](ViewOutcome merged, const fleet::VerifiedUser& written) {
                  if (!*alive)
                    return;
                  if (merged == ViewOutcome::kTaken)
                    finish(written);
                  else
                    done(merged != ViewOutcome::kUnavailable);
                });
            return;
          case ViewOutcome::kRefused:
          case ViewOutcome::kUnavailable:
            done(true);
            return;
        }
      });
}

void FleetCoordinator::reject(const std::string& user, fleet::RecordProblem problem,
                              const std::string& key, const std::string& why) {
  read_cache_.invalidate(user);
  views_.erase(user);
  if (rejected_.size() < 10000)
    rejected_[user] = why;
  const bool rolled_back = why == "rolled-back";
  audit_rejected(user,
                 rolled_back ? AuditReason::kRolledBack
                             : audit_reason_from_name(fleet::record_problem_name(problem))
                                   .value_or(AuditReason::kMalformedRecord),
                 key, rolled_back ? "read" : why, {});
}

void FleetCoordinator::note_record_rejected(const std::string& user, fleet::RecordProblem problem,
                                            const std::string& key, const std::string& when) {
  audit_rejected(user,
                 audit_reason_from_name(fleet::record_problem_name(problem))
                     .value_or(AuditReason::kMalformedRecord),
                 key, when, {});
}

void FleetCoordinator::note_foreign_request(const std::string& user, const std::string& key,
                                            const std::string& from_host) {
  audit_rejected(user, AuditReason::kForeignRequest, key, "terminate", {{"host", from_host}});
}

void FleetCoordinator::audit_rejected(const std::string& user, AuditReason reason,
                                      const std::string& key, const std::string& when,
                                      const StringMap& extra) {
  MFA_LOG_ERROR("fleet: a record in Redis (%s) failed verification (%s): refused", key.c_str(),
                audit_reason_name(reason));
  AuditEvent event;
  event.kind = AuditKind::kFleetRecordRejected;
  event.user = user;
  event.outcome = AuditOutcome::kDenied;
  event.reason = reason;
  event.caller = "mfad";
  event.details["key"] = key;
  event.details["when"] = when;
  for (const auto& [k, v] : extra)
    event.details[k] = v;
  if (Status st = d_.audit.record(event); !st.ok())
    MFA_LOG_ERROR("cannot audit a rejected fleet record: %s", st.error().message.c_str());
  if (on_write_)
    on_write_();
  if (d_.events) {
    d_.events->security_event(fleet::redis_user(user), "fleet-record-rejected",
                              {{"reason", audit_reason_name(reason)}, {"key", key}});
  }
}

void FleetCoordinator::changed_elsewhere(const std::string& user) {
  // A user with sessions here is read at once: an enrollment or reset another host wrote is
  // signalled while those sessions run, not at the user's next login.
  if (degraded_ || user.size() > 256)
    return;
  if (sessions_here(user))
    load_user(user, [this](bool) {
      if (on_write_)
        on_write_();
    });
}

bool FleetCoordinator::sessions_here(const std::string& user) {
  // Sessions are registered under the name the login used (the account's name), state under the
  // account key (uid/N): both are looked at.
  const std::string name = fleet::redis_user(user);
  auto sessions = d_.cache.list_sessions(name);
  if (sessions.ok() && !sessions->empty())
    return true;
  if (name == user)
    return false;
  sessions = d_.cache.list_sessions(user);
  return sessions.ok() && !sessions->empty();
}

void FleetCoordinator::note_writers(const std::string& user, const fleet::VerifiedUser& verified) {
  auto cached = d_.cache.get_factors(user);
  if (!cached.ok())
    return;
  // Computed once, when a change of another host's is found.
  std::optional<bool> has_sessions;
  auto has_sessions_here = [&] {
    if (!has_sessions)
      has_sessions = sessions_here(user);
    return *has_sessions;
  };
  if (verified.factors.empty() && !cached->empty() && verified.writer != d_.mac.host() &&
      !verified.writer.empty()) {
    note_foreign_change(user, verified.writer, "reset", "", has_sessions_here());
  }
  for (const auto& f : verified.factors) {
    // A pending enrollment opens nothing: its confirmation is the change.
    if (f.pending)
      continue;
    const std::string field = fleet::factor_field(f.method, f.pending, f.device);
    auto writer = verified.factor_writers.find(field);
    if (writer == verified.factor_writers.end() || writer->second == d_.mac.host() ||
        writer->second.empty())
      continue;
    const bool known = std::any_of(cached->begin(), cached->end(),
                                   [&](const FactorRecord& l) { return same_factor(l, f); });
    if (known)
      continue;
    // Only against what this host knew of the user (factors, or sessions): a host that never saw
    // the user has nothing to compare with, and every factor would look new.
    const bool knew_user = std::any_of(cached->begin(), cached->end(),
                                       [](const FactorRecord& l) { return !l.pending; });
    if (knew_user || has_sessions_here())
      note_foreign_change(user, writer->second, "enrollment", field, has_sessions_here());
  }
}

void FleetCoordinator::note_foreign_change(const std::string& user, const std::string& host,
                                           const std::string& change, const std::string& factor,
                                           bool signal) {
  MFA_LOG_WARNING("fleet: host %s wrote %s of %s's factors", host.c_str(),
                  change == "reset" ? "a reset" : "an enrollment", user.c_str());
  AuditEvent event;
  event.kind = AuditKind::kFleetForeignChange;
  event.user = user;
  event.outcome = AuditOutcome::kInfo;
  event.caller = "mfad";
  event.details["host"] = host;
  event.details["change"] = change;
  if (!factor.empty())
    event.details["factor"] = factor;
  if (Status st = d_.audit.record(event); !st.ok())
    MFA_LOG_ERROR("cannot audit a change made elsewhere: %s", st.error().message.c_str());
  if (on_write_)
    on_write_();
  if (!signal || d_.events == nullptr)
    return;
  StringMap details{{"host", host}};
  if (!factor.empty())
    details["factor"] = factor;
  d_.events->security_event(fleet::redis_user(user),
                            change == "reset" ? "fleet-foreign-reset" : "fleet-foreign-enrollment",
                            details);
}

void FleetCoordinator::write_state(const std::string& user, StateWrite w, int tries,
                                   std::function<void(StateWriteResult)> done) {
  auto alive = alive_;
  auto view = views_.find(user);
  const bool forced = view == views_.end() && w.force && rejected(user);
  if (forced) {
    // An admin's reset over records that failed verification: written whatever Redis holds
    // (the script's counter check is skipped), from an empty state. Its counter, the time, is
    // above every counter the fleet's hosts have seen (theirs are times too).
    auto mark = highwater(user);
    view = views_.emplace(user, View{fleet::UserState{}, mark.ok() ? *mark : 0}).first;
  }
  if (view == views_.end()) {
    if (tries <= 0 || rejected(user)) {
      StateWriteResult r;
      r.rejected = rejected(user);
      r.unavailable = !r.rejected;
      done(r);
      return;
    }
    load_user(user, [this, alive, user, w = std::move(w), tries,
                     done = std::move(done)](bool online) mutable {
      if (!*alive)
        return;
      if (!online) {
        StateWriteResult r;
        r.unavailable = true;
        done(r);
        return;
      }
      write_state(user, std::move(w), tries - 1, std::move(done));
    });
    return;
  }
  const auto keys = fleet::user_keys(d_.config.redis_key_prefix, user);
  const View current = view->second;
  const int64_t now = d_.clock.realtime_usec();
  fleet::StateOutcome out = fleet::apply_change(current.state, w.change, policy(), now);
  fleet::UserState next = out.next;
  // Monotonic, and the time where the clock allows: a reset written over a state this host could
  // not verify still counts above what every other host has seen.
  const uint64_t counter = std::max<uint64_t>(current.counter + 1, static_cast<uint64_t>(now));
  const bool write_factors = w.push && out.refused == FleetRefusal::kNone &&
                             (w.enrollment.factors_changed || w.enrollment.user_deleted);
  std::vector<std::string> factor_args;
  std::string wrapped_key;  // the data key the factors are sealed under, for Redis to keep
  if (w.push && out.refused == FleetRefusal::kNone) {
    if (w.enrollment.user_deleted) {
      next = fleet::UserState{};
    } else {
      if (w.enrollment.factors_changed) {
        auto factors = d_.cache.get_factors(user);
        if (!factors.ok()) {
          StateWriteResult r;
          r.unavailable = true;
          done(r);
          return;
        }
        next.factors.clear();
        for (const auto& f : *factors) {
          const std::string field = fleet::factor_field(f.method, f.pending, f.device);
          std::string value = d_.mac.seal(fleet::field_key_name(keys.factors, field), counter,
                                          fleet::encode_factor(f));
          next.factors[field] = fleet::sha1_hex(value);
          factor_args.push_back(field);
          factor_args.push_back(std::move(value));
        }
        if (d_.data_key_wrap != nullptr && d_.master != nullptr && !factors->empty()) {
          auto key = data_keys().export_key(user);
          auto wrapped = key.ok() && *key
                             ? d_.data_key_wrap->wrap(user, keys.data_key, (*key)->span())
                             : Result<std::string>(std::string());
          if (!key.ok() || !wrapped.ok()) {
            // The factors would not open on another host: not written (fail closed).
            MFA_LOG_ERROR("fleet: cannot read %s's data key: %s", user.c_str(),
                          (key.ok() ? wrapped.error() : key.error()).message.c_str());
            StateWriteResult r;
            r.unavailable = true;
            done(r);
            return;
          }
          wrapped_key = std::move(wrapped).value();
        }
      }
      if (w.enrollment.backup_replaced) {
        auto unused = d_.cache.unused_backup_codes(user);
        if (!unused.ok()) {
          StateWriteResult r;
          r.unavailable = true;
          done(r);
          return;
        }
        next.backup = *unused;
      }
      if (w.enrollment.watermark_set) {
        const auto device_step = fleet::device_watermark(next, w.enrollment.watermark_set_device);
        if (!device_step || *device_step < *w.enrollment.watermark_set)
          fleet::set_device_watermark(next, w.enrollment.watermark_set_device,
                                      *w.enrollment.watermark_set);
      }
    }
  }
  keep_enrolled_watermarks(next);
  const bool changed = w.push || !fleet::same_state(next, current.state);
  // A forget leaves no state record (its key names the person): the script deletes it.
  const std::string value = changed && !w.forget
                                ? d_.mac.seal(keys.state, counter, fleet::encode_state(next))
                                : std::string();
  const bool notify = out.lock_changed || out.backup_emptied || w.push ||
                      (w.change.backup && out.refused == FleetRefusal::kNone);
  std::vector<std::string> args{forced ? std::string("*") : std::to_string(current.counter),
                                value,
                                w.factor_field,
                                w.factor_sha1,
                                invalidations_,
                                user,
                                notify ? "1" : "",
                                write_factors ? "1" : "",
                                wrapped_key};
  args.insert(args.end(), factor_args.begin(), factor_args.end());
  std::vector<std::string> script_keys{keys.state, keys.factors, keys.data_key};
  script_keys.insert(script_keys.end(), w.extra_keys.begin(), w.extra_keys.end());
  client_->eval(fleet::write_state_script(), std::move(script_keys), std::move(args),
                [this, alive, user, keys, w = std::move(w), tries, out, next, counter, changed,
                 done = std::move(done)](Result<RedisReply> reply) mutable {
                  if (!*alive)
                    return;
                  if (!reply.ok() || reply->is_error() || reply->type != RedisReply::Type::kArray ||
                      reply->elements.size() != 2) {
                    if (reply.ok() && reply->is_error())
                      MFA_LOG_ERROR("fleet: state write failed: %s", reply->str.c_str());
                    StateWriteResult r;
                    r.unavailable = true;
                    done(r);
                    return;
                  }
                  const std::string& answer = reply->elements[0].str;
                  if (answer == "ok") {
                    if (w.force)
                      rejected_.erase(user);
                    if (w.forget) {
                      // Nothing of the person is left to roll back to.
                      views_.erase(user);
                      forget_highwater(user);
                    } else if (changed) {
                      remember_view(user, next, counter);
                    }
                    if (Status st = cache_state(user, next); !st.ok()) {
                      MFA_LOG_ERROR("fleet: cannot cache %s's state: %s", user.c_str(),
                                    st.error().message.c_str());
                    }
                    StateWriteResult r;
                    r.refused = out.refused;
                    r.limits = next.limits;
                    r.counter = changed && !w.forget ? counter : 0;
                    done(r);
                    return;
                  }
                  // Redis holds another state than the one this host computed from: verify it, take
                  // it, and compute again (another host's write, or an attacker's).
                  fleet::VerifiedUser verified;
                  fleet::RecordProblem problem =
                      fleet::verify_state(d_.mac, keys, reply->elements[1].str, &verified);
                  const bool vanished = reply->elements[1].str.empty() && seen_state(user);
                  if (problem != fleet::RecordProblem::kNone || vanished) {
                    reject(user, problem, keys.state, vanished ? "rolled-back" : "write");
                    StateWriteResult r;
                    r.rejected = true;
                    done(r);
                    return;
                  }
                  if (answer == "factor-changed") {
                    w.change.factor_changed = true;
                    w.factor_field.clear();
                    w.factor_sha1.clear();
                  }
                  auto again = [this, user, w = std::move(w), tries, done = std::move(done)](
                                   ViewOutcome taken, const fleet::UserState& state) mutable {
                    if (taken != ViewOutcome::kTaken) {
                      StateWriteResult r;
                      r.rejected = taken != ViewOutcome::kUnavailable;
                      r.unavailable = !r.rejected;
                      done(r);
                      return;
                    }
                    if (Status st = cache_state(user, state); !st.ok()) {
                      MFA_LOG_ERROR("fleet: cannot cache %s's state: %s", user.c_str(),
                                    st.error().message.c_str());
                    }
                    if (tries <= 0) {
                      StateWriteResult r;
                      r.unavailable = true;
                      done(r);
                      return;
                    }
                    write_state(user, std::move(w), tries - 1, std::move(done));
                  };
                  const ViewOutcome taken = take_view(user, verified, keys.state);
                  if (taken != ViewOutcome::kMerge) {
                    again(taken, verified.state);
                    return;
                  }
                  merge_lost_writes(
                      user, verified,
                      [alive, again = std::move(again)](
                          ViewOutcome merged, const fleet::VerifiedUser& written) mutable {
                        if (*alive)
                          again(merged, written.state);
                      });
                });
}

DataKeys FleetCoordinator::data_keys() const {
  return DataKeys(data_key_directory(d_.config), *d_.master, true);
}

bool FleetCoordinator::take_data_key(const std::string& user, const fleet::UserKeys& keys,
                                     const std::string& wrapped) {
  if (wrapped.empty() || d_.data_key_wrap == nullptr || d_.master == nullptr)
    return true;
  auto key = d_.data_key_wrap->unwrap(user, keys.data_key, wrapped);
  if (!key.ok()) {
    // Forged, or moved from another person: refused like any record that fails verification.
    reject(user, fleet::RecordProblem::kBadMac, keys.data_key, "read");
    return false;
  }
  const DataKeys local = data_keys();
  auto mine = local.export_key(user);
  if (mine.ok() && *mine && ct_equal((*mine)->span(), key->span()))
    return true;
  // Redis's copy is the fleet's: records sealed under another key of this host's (two hosts
  // enrolled the person's first factor at once) no longer open, and fail closed.
  if (Status st = local.install_key(user, key->span()); !st.ok()) {
    MFA_LOG_ERROR("fleet: cannot keep %s's data key: %s", user.c_str(), st.error().message.c_str());
  }
  return true;
}

void FleetCoordinator::announce_forget(const std::string& user, std::function<void(bool)> done) {
  const std::string& prefix = d_.config.redis_key_prefix;
  const int64_t now = d_.clock.realtime_usec();
  auto alive = alive_;
  client_->eval(
      fleet::forget_script(),
      {fleet::forgotten_key(prefix), fleet::user_keys(prefix, user).sessions,
       fleet::session_records_key(prefix), fleet::sms_send_keys(prefix, user, "").user},
      {fleet::seal_tombstone(d_.mac, prefix, user, now), std::to_string(now / kUsecPerSecond),
       std::to_string(fleet::kMaxTombstones), invalidations_, fleet::kForgetMessage, prefix},
      [alive, done = std::move(done)](Result<RedisReply> reply) {
        if (!*alive)
          return;
        done(reply.ok() && !reply->is_error());
      });
}

void FleetCoordinator::sweep_forgotten() {
  if (!on_forget_ || shutting_down_ || degraded_)
    return;
  const std::string prefix = d_.config.redis_key_prefix;
  auto alive = alive_;
  client_->command(
      {"ZRANGE", fleet::forgotten_key(prefix), "0", std::to_string(fleet::kMaxTombstones - 1)},
      [this, alive, prefix](Result<RedisReply> reply) {
        if (!*alive || !reply.ok() || reply->type != RedisReply::Type::kArray)
          return;  // the next announcement or reconnection sweeps again
        std::vector<std::string> members;
        for (const auto& e : reply->elements) {
          if (e.type == RedisReply::Type::kString)
            members.push_back(e.str);
        }
        size_t rejected = 0;
        const auto stones = fleet::open_tombstones(d_.mac, prefix, members, &rejected);
        if (rejected != 0) {
          MFA_LOG_ERROR("fleet: %zu forget tombstone(s) in Redis failed verification: ignored",
                        rejected);
        }
        if (stones.empty())
          return;
        auto users = d_.cache.list_users();
        if (!users.ok())
          return;
        bool forgot = false;
        for (const std::string& account : *users) {
          if (!account_key_uid(account))
            continue;
          auto stone = stones.find(fleet::tombstone_id(d_.mac, account));
          if (stone == stones.end())
            continue;
          // Enrolled again after that forget (the uid's person came back): not that forget's.
          auto factors = d_.cache.get_factors(account);
          if (!factors.ok() ||
              std::any_of(factors->begin(), factors->end(), [&](const FactorRecord& f) {
                return f.created_usec > stone->second.time_usec;
              }))
            continue;
          read_cache_.invalidate(account);
          views_.erase(account);
          forget_highwater(account);
          rejected_.erase(account);
          on_forget_(account, stone->second.host);
          forgot = true;
        }
        if (forgot && on_write_)
          on_write_();
      });
}

}  // namespace mfa

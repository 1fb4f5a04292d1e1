// Rollback (docs/fleet.md, "Authenticated records" and "High availability"; issue 16): a user's
// state only moves forward against this host's high-water mark, the highest state counter it has
// seen, kept in SQLite (fleet_highwater) so that a restart does not forget it. A state older than
// the mark is refused as rolled back, unless this host's reconciliation queue explains the gap: a
// consumption of this host's that no replica acknowledged, which a Sentinel failover lost. That
// state is merged with everything this host knows (fleet/lost_writes.hpp), written above the mark
// and audited (degraded, fleet-reconciled), so that the user is not locked out on this host.
#include <algorithm>
#include <set>

#include "core/log.hpp"
#include "fleet/coordinator.hpp"
#include "fleet/lost_writes.hpp"

namespace mfa {

namespace {

constexpr size_t kMaxUsers = 10000;

bool same_factor(const FactorRecord& a, const FactorRecord& b) {
  return a.method == b.method && a.device == b.device && a.pending == b.pending &&
         a.sealed == b.sealed && a.params == b.params && a.created_usec == b.created_usec;
}

// A lost write consumed a code or advanced a watermark: it changed no factor record. Factors
// that differ from the cache's are not explained by one (a device removed and put back, say).
bool same_factors(const std::vector<FactorRecord>& remote, const std::vector<FactorRecord>& local) {
  return remote.size() == local.size() &&
         std::all_of(remote.begin(), remote.end(), [&](const FactorRecord& r) {
           return std::any_of(local.begin(), local.end(),
                              [&](const FactorRecord& l) { return same_factor(r, l); });
         });
}

}  // namespace

Result<uint64_t> FleetCoordinator::highwater(const std::string& user) {
  auto it = highwater_.find(user);
  if (it != highwater_.end())
    return it->second;
  MFA_TRY(stored, d_.cache.get_fleet_highwater(user));
  if (highwater_.size() >= kMaxUsers)
    highwater_.clear();  // SQLite keeps every mark: each is read again when needed
  highwater_[user] = stored;
  return stored;
}

bool FleetCoordinator::seen_state(const std::string& user) {
  auto mark = highwater(user);
  if (!mark.ok()) {
    MFA_LOG_ERROR("fleet: cannot read %s's high-water mark: %s", user.c_str(),
                  mark.error().message.c_str());
    return true;
  }
  return *mark > 0;
}

void FleetCoordinator::raise_highwater(const std::string& user, uint64_t counter) {
  auto mark = highwater(user);
  if (mark.ok() && *mark >= counter)
    return;  // usually after a read: no write
  highwater_[user] = counter;
  // With the cache's copy of the state, in the batch of the call that read or wrote it: no
  // commit of its own.
  if (Status st = d_.cache.raise_fleet_highwater(user, counter); !st.ok()) {
    MFA_LOG_ERROR("fleet: cannot keep %s's high-water mark: %s", user.c_str(),
                  st.error().message.c_str());
  }
}

void FleetCoordinator::forget_highwater(const std::string& user) {
  highwater_.erase(user);
  if (Status st = d_.cache.delete_fleet_highwater(user); !st.ok()) {
    MFA_LOG_ERROR("fleet: cannot erase %s's high-water mark: %s", user.c_str(),
                  st.error().message.c_str());
  }
}

void FleetCoordinator::remember_view(const std::string& user, const fleet::UserState& state,
                                     uint64_t counter) {
  if (views_.size() >= kMaxUsers && !views_.count(user))
    views_.clear();
  views_[user] = View{state, counter};
  raise_highwater(user, counter);
  rejected_.erase(user);
}

bool FleetCoordinator::factors_unchanged(const std::string& user,
                                         const fleet::VerifiedUser& verified) {
  // The view: the factor records' hashes this host last verified.
  auto view = views_.find(user);
  if (view != views_.end())
    return view->second.state.factors == verified.state.factors;
  // A state alone (a script's answer) carries no records to compare: not explained.
  if (verified.factors.size() != verified.state.factors.size())
    return false;
  auto cached = d_.cache.get_factors(user);
  return cached.ok() && same_factors(verified.factors, *cached);
}

FleetCoordinator::ViewOutcome FleetCoordinator::take_view(const std::string& user,
                                                          const fleet::VerifiedUser& verified,
                                                          const std::string& key) {
  auto mark = highwater(user);
  if (!mark.ok()) {
    // Without the mark, a rollback would pass: refused, and read again at the next call.
    MFA_LOG_ERROR("fleet: cannot read %s's high-water mark: %s", user.c_str(),
                  mark.error().message.c_str());
    read_cache_.invalidate(user);
    views_.erase(user);
    return ViewOutcome::kRefused;
  }
  if (verified.counter < *mark) {
    // A state older than one this host has seen: a write a failover lost, if this host queued
    // one above that state's counter and nothing but consumptions differ; else a copy put back.
    auto lost = d_.cache.list_unreplicated(user, verified.counter, 1);
    if (lost.ok() && !lost->empty() && factors_unchanged(user, verified))
      return ViewOutcome::kMerge;
    reject(user, fleet::RecordProblem::kMalformed, key, "rolled-back");
    return ViewOutcome::kRefused;
  }
  remember_view(user, verified.state, verified.counter);
  return ViewOutcome::kTaken;
}

void FleetCoordinator::merge_lost_writes(
    const std::string& user, const fleet::VerifiedUser& verified,
    std::function<void(ViewOutcome, const fleet::VerifiedUser&)> done) {
  const auto keys = fleet::user_keys(d_.config.redis_key_prefix, user);
  auto read_mark = highwater(user);
  const uint64_t mark = read_mark.ok() ? *read_mark : 0;
  fleet::LocalKnowledge local;
  auto lost = d_.cache.list_unreplicated(user, verified.counter, fleet::kMaxLostWrites);
  auto unused = d_.cache.unused_backup_codes(user);
  auto limits = d_.cache.get_limits(user);
  auto factors = d_.cache.get_factors(user);
  bool readable = lost.ok() && unused.ok() && limits.ok() && factors.ok();
  if (readable) {
    local.unreplicated = std::move(lost).value();
    local.unused_backup = std::move(unused).value();
    local.limits = *limits;
    std::set<std::string> devices{kDefaultTotpDevice};
    for (const auto& [device, step] : verified.state.device_watermarks)
      devices.insert(device);
    for (const FactorRecord& f : *factors) {
      if (f.method == Method::kTotp && !f.pending)
        devices.insert(f.device.empty() ? std::string(kDefaultTotpDevice) : f.device);
    }
    for (const std::string& device : devices) {
      auto step = d_.cache.get_totp_watermark(user, device);
      if (!step.ok()) {
        readable = false;
        break;
      }
      if (*step)
        local.watermarks[device] = **step;
    }
  }
  if (!readable) {
    // What this host knows cannot be read: no merge could vouch for the state.
    MFA_LOG_ERROR("fleet: cannot read %s's cached state to merge a lost write", user.c_str());
    reject(user, fleet::RecordProblem::kMalformed, keys.state, "rolled-back");
    done(ViewOutcome::kRefused, verified);
    return;
  }
  const size_t writes = local.unreplicated.size();
  const fleet::UserState merged = fleet::merge_lost_writes(verified.state, local);
  // Above the state read, the mark, and (as every write) the time.
  const uint64_t counter =
      std::max({verified.counter + 1, mark + 1, static_cast<uint64_t>(d_.clock.realtime_usec())});
  const std::string value = d_.mac.seal(keys.state, counter, fleet::encode_state(merged));
  auto alive = alive_;
  client_->eval(
      fleet::write_state_script(), {keys.state, keys.factors, keys.data_key},
      {std::to_string(verified.counter), value, "", "", invalidations_, user, "1", "", ""},
      [this, alive, user, keys, verified, merged, counter, mark, writes,
       done = std::move(done)](Result<RedisReply> reply) {
        if (!*alive)
          return;
        if (!reply.ok() || reply->is_error()) {
          enter_degraded(reply.ok() ? reply->str : reply.error().message);
          done(ViewOutcome::kUnavailable, verified);
          return;
        }
        if (reply->type != RedisReply::Type::kArray || reply->elements.empty() ||
            reply->elements[0].str != "ok") {
          // Changed again meanwhile: still not a state this host can vouch for; the next read
          // decides again.
          reject(user, fleet::RecordProblem::kMalformed, keys.state, "rolled-back");
          done(ViewOutcome::kRefused, verified);
          return;
        }
        remember_view(user, merged, counter);
        MFA_LOG_WARNING(
            "fleet: %s's state in Redis (counter %llu) lacked %zu write(s) of this host no "
            "replica acknowledged (high-water mark %llu): merged and written again",
            user.c_str(), static_cast<unsigned long long>(verified.counter), writes,
            static_cast<unsigned long long>(mark));
        AuditEvent event;
        event.kind = AuditKind::kDegraded;
        event.user = user;
        event.outcome = AuditOutcome::kInfo;
        event.reason = AuditReason::kFleetReconciled;
        event.caller = "mfad";
        event.details["key"] = keys.state;
        event.details["counter"] = std::to_string(verified.counter);
        event.details["highwater"] = std::to_string(mark);
        event.details["gap"] = std::to_string(mark - verified.counter);
        event.details["written"] = std::to_string(counter);
        event.details["writes"] = std::to_string(writes);
        if (Status st = d_.audit.record(event); !st.ok())
          MFA_LOG_ERROR("cannot audit a merged state: %s", st.error().message.c_str());
        if (on_write_)
          on_write_();
        fleet::VerifiedUser written = verified;
        written.state = merged;
        written.counter = counter;
        written.writer = d_.mac.host();
        done(ViewOutcome::kTaken, written);
      });
}

}  // namespace mfa

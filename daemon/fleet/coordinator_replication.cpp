// Sentinel mode's durability of consumption writes (docs/fleet.md, "High availability"): Redis
// replicates asynchronously, so a failover can lose what the primary acknowledged last. A write
// that consumed a backup code or advanced a TOTP watermark is answered only once one replica has
// it (WAIT 1), or, when none acknowledges in time, is kept in the reconciliation queue (SQLite:
// it survives a restart) to be written again, and audited as not replicated.
#include <algorithm>
#include <optional>

#include "core/log.hpp"
#include "fleet/coordinator.hpp"

namespace mfa {

namespace {

// The primary's replicas, from ROLE: ["master", offset, [[ip, port, offset], ...]].
std::optional<size_t> replica_count(const RedisReply& role) {
  if (role.type != RedisReply::Type::kArray || role.elements.size() < 3 ||
      role.elements[0].str != "master" || role.elements[2].type != RedisReply::Type::kArray)
    return std::nullopt;
  return role.elements[2].elements.size();
}

}  // namespace

void FleetCoordinator::await_replica(const std::string& user, const FleetChanges& changes,
                                     uint64_t counter, std::function<void()> done) {
  // Within the command timeout (a WAIT that outlived it would drop the connection): half of it.
  const int wait_ms = std::max(1, d_.config.redis_timeout_ms / 2);
  auto alive = alive_;
  client_->command({"ROLE"}, [this, alive, user, changes, counter, wait_ms,
                              done = std::move(done)](Result<RedisReply> role) mutable {
    if (!*alive)
      return;
    const auto replicas = role.ok() ? replica_count(*role) : std::nullopt;
    if (!replicas) {
      note_unreplicated(user, changes, counter, "the primary's ROLE could not be read");
      done();
      return;
    }
    if (*replicas == 0) {  // no replica to fail over to: nothing a failover could lose
      done();
      return;
    }
    client_->command({"WAIT", "1", std::to_string(wait_ms)}, [this, alive, user, changes, counter,
                                                              wait_ms, done = std::move(done)](
                                                                 Result<RedisReply> acked) {
      if (!*alive)
        return;
      if (!acked.ok() || acked->type != RedisReply::Type::kInteger || acked->integer < 1) {
        note_unreplicated(user, changes, counter,
                          "no replica acknowledged it within " + std::to_string(wait_ms) + " ms");
      }
      done();
    });
  });
}

// The login stands on this host (the primary took the write, and this host's cache and
// high-water mark refuse the code again), but not fleet-wide: said, audited, and queued so that
// the write is made again after a failover that lost it. The queued item names the write's
// counter: a state older than it, read later, is that loss (merged again,
// coordinator_rollback.cpp), not a copy put back.
void FleetCoordinator::note_unreplicated(const std::string& user, const FleetChanges& changes,
                                         uint64_t counter, const std::string& why) {
  MFA_LOG_WARNING(
      "fleet: %s's consumption write is on the primary only (%s); kept for "
      "reconciliation",
      user.c_str(), why.c_str());
  // The consumption only: a failure count queued here would count twice if the write survives.
  queue_consumed(user, changes, /*failure=*/false, counter);
  AuditEvent event;
  event.kind = AuditKind::kDegraded;
  event.user = user;
  event.outcome = AuditOutcome::kInfo;
  event.reason = AuditReason::kUnreplicated;
  event.caller = "mfad";
  event.details["call"] = "Verify";
  event.details["method"] = changes.watermark_advanced ? "totp" : "backup";
  if (Status st = d_.audit.record(event); !st.ok())
    MFA_LOG_ERROR("cannot audit an unreplicated write: %s", st.error().message.c_str());
  if (on_write_)
    on_write_();
}

}  // namespace mfa

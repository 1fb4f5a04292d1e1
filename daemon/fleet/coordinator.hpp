// Fleet mode (docs/fleet.md): Redis is the shared truth, the local SQLite store the
// cache mfad falls back to. The coordinator stands in front of the synchronous Authenticator:
//  1. PREFETCH: before a call about user U, U's shared state is read from Redis (one script, async)
//     and written through to SQLite;
//  2. the Authenticator decides against SQLite, as without fleet mode;
//  3. CONFIRM: what the decision consumed is done atomically in Redis (watermark compare-and-set,
//     backup code SREM, shared failure counter and lockout, enrollment records) before the reply
//     leaves. A refused compare-and-set or SREM turns a success into BadCode.
// When Redis does not answer within its timeout, the coordinator is degraded at once: calls are
// decided from SQLite alone (both factors still required, local limits), each decision is audited
// ("degraded") and what Redis must learn is queued in SQLite; when Redis is back the queue is
// replayed (watermarks take the maximum, consumed codes are removed, failures pushed), and only
// then does mfad leave degraded mode.
#pragma once

#include <systemd/sd-event.h>

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "common/handles.hpp"
#include "common/result.hpp"
#include "core/audit.hpp"
#include "core/clock.hpp"
#include "core/config.hpp"
#include "fleet/keys.hpp"
#include "fleet/read_cache.hpp"
#include "fleet/recorder.hpp"
#include "fleet/redis_client.hpp"
#include "fleet/refusal.hpp"
#include "core/store.hpp"

namespace mfa {

// What a D-Bus call does to a user's shared state.
enum class FleetCallKind {
  kRead,    // GetUser: prefetch only
  kLogin,   // BeginAuthentication, Verify: served from the cache when degraded
  kChange,  // enrollment changes (self-service): refused while degraded
  kAdmin,   // ResetUser, Unlock: refused while degraded
};

// BeginAuthentication's read of the shared state serves the first Verify of its challenge when it
// comes within this time (docs/fleet.md): one Redis round trip less per login. The confirm script
// checks what another host may have changed meanwhile, so this bounds how stale the cache's view
// (factors offered, backup codes known) can be, not what is enforced.
inline constexpr uint64_t kFleetStateReuseUsec = 60 * 1000 * 1000;

struct FleetConfirmResult {
  // kReplay, kConsumedElsewhere, kFactorChanged, kUnrecognised: the success becomes BadCode;
  // kLocked: the user is locked fleet-wide, the attempt becomes RateLimited.
  FleetRefusal refused = FleetRefusal::kNone;
  bool unavailable = false;  // Redis failed meanwhile: now degraded
  int64_t locked_usec = 0;   // after the confirm, the user stays locked this long fleet-wide
};

class FleetCoordinator {
 public:
  struct Deps {
    sd_event* event;
    const Config& config;
    Store& cache;  // the local store: Redis's cache
    AuditLog& audit;
    const Clock& clock;
  };
  using DegradedCallback = std::function<void(bool degraded)>;
  // The cache was written outside a D-Bus call: a commit must be scheduled.
  using WriteCallback = std::function<void()>;

  // options: the connection for commands; watcher: the same server, for the subscription to the
  // invalidation channel (a subscribed connection takes no other command).
  static Result<std::unique_ptr<FleetCoordinator>> create(Deps deps, RedisClientOptions options,
                                                          RedisClientOptions watcher,
                                                          DegradedCallback on_degraded,
                                                          WriteCallback on_write);
  ~FleetCoordinator();

  bool degraded() const { return degraded_; }
  RedisClient& client() { return *client_; }

  // The shared counters are the truth: the cache takes user's as Redis answered them (an error is
  // logged; the next read of Redis writes them again).
  void follow_limits(const std::string& user, const LimitState& shared);

  // Whether the cache's copy of user's shared state is known to match Redis (FleetReadCache):
  // BeginAuthentication may then be answered from the cache without a prefetch.
  bool cache_current(const std::string& user) const;

  // done(true): the cache now holds U's shared state; done(false): degraded, serve from the cache.
  // done never runs later than the Redis timeout.
  void prefetch(const std::string& user, std::function<void(bool online)> done);
  // success/failure: the call's reply was a success / a counted failure (BadCode, RateLimited).
  // verified: the factor a login's success rests on; Redis must still hold the record the cache
  // has for it (a TOTP or phone record removed or replaced meanwhile refuses the success).
  void confirm(const std::string& user, FleetCallKind kind, const FleetChanges& changes,
               bool success, bool failure, std::optional<Method> verified,
               std::function<void(FleetConfirmResult)> done);
  // A decision taken without Redis (its confirm did not get through; what it consumed is queued
  // already): audited as degraded.
  void audit_degraded(const std::string& user, const std::string& call, const FleetChanges& changes,
                      bool success, bool failure, const std::string& caller);
  // A decision taken in degraded mode: audited, and queued for reconciliation.
  void note_degraded(const std::string& user, const std::string& call, const FleetChanges& changes,
                     bool success, bool failure, const std::string& caller);

  // Redis failed a call made outside the coordinator (FleetSms): degraded at once.
  void report_unavailable(const std::string& why) { enter_degraded(why); }

  // A local decision that Redis refused (the code was used on another host, the user is locked
  // fleet-wide): audited.
  void note_refused(const std::string& user, FleetRefusal reason, const std::string& caller);
  // A failure that locked the user through the shared counters: audited. Returns the end of the
  // lockout (seconds since the epoch).
  int64_t note_lockout(const std::string& user, int64_t locked_usec, const std::string& caller);

  // Shutdown: Redis failing from now on no longer enters degraded mode (nor reconciles when it
  // comes back); close_client() then completes every command in flight with an error at once.
  void begin_shutdown() { shutting_down_ = true; }
  void close_client(const std::string& why);

 private:
  FleetCoordinator(Deps deps, DegradedCallback on_degraded, WriteCallback on_write);
  void on_client_state(bool ready, const std::string& why);
  void enter_degraded(const std::string& why);
  // Audits entering (why: what failed) or leaving degraded mode, and tells the owner.
  void degraded_changed(bool degraded, const std::string& why);
  void reconcile();
  // A replay that failed while the connection stayed up (a slow reply, an error reply): tried
  // again after a pause that doubles up to 5 s, so that mfad never stays degraded for nothing.
  void retry_reconcile_later();
  static int on_reconcile_retry(sd_event_source* source, uint64_t usec, void* userdata);
  Status write_through(const std::string& user, const fleet::RemoteUser& remote);
  void push_user(const std::string& user, const FleetChanges& changes,
                 std::function<void(bool ok)> done);
  void queue(const ReconcileItem& item);
  // What a decision consumed or counted on this host (a TOTP step, a backup code, a failure), for
  // Redis to learn on reconciliation.
  void queue_consumed(const std::string& user, const FleetChanges& changes, bool failure);
  RatePolicy policy() const;

  Deps d_;
  DegradedCallback on_degraded_;
  WriteCallback on_write_;
  std::unique_ptr<RedisClient> client_;
  std::unique_ptr<RedisClient> watcher_;  // subscribed to invalidations_
  const std::string invalidations_;       // fleet::invalidation_channel() of KeyPrefix
  FleetReadCache read_cache_;
  bool degraded_ = true;  // until connected and reconciled
  bool reconciling_ = false;
  EventSourcePtr reconcile_retry_;
  uint64_t reconcile_retry_usec_ = 0;
  uint64_t left_degraded_usec_ = 0;  // CLOCK_MONOTONIC; 0 until degraded mode was left once
  bool shutting_down_ = false;
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
};

}  // namespace mfa

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
#include <unordered_map>
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
#include "core/data_keys.hpp"
#include "fleet/data_key_records.hpp"
#include "fleet/keys.hpp"
#include "fleet/read_cache.hpp"
#include "fleet/recorder.hpp"
#include "fleet/redis_client.hpp"
#include "fleet/record_mac.hpp"
#include "fleet/refusal.hpp"
#include "fleet/user_state.hpp"
#include "core/authenticator.hpp"
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
  // The user's records in Redis failed verification (audited fleet.record-rejected): the call is
  // refused, never decided as if they were absent.
  bool rejected = false;
  int64_t locked_usec = 0;  // after the confirm, the user stays locked this long fleet-wide
};

class FleetCoordinator {
 public:
  struct Deps {
    sd_event* event;
    const Config& config;
    Store& cache;  // the local store: Redis's cache
    AuditLog& audit;
    const Clock& clock;
    const fleet::RecordMac& mac;  // this host's id and the fleet's record key
    EventSink* events = nullptr;  // SecurityEvent
    // The per-person data keys (core/data_keys.hpp, wrapped by the master key in this host's
    // directory) and their wrapping in Redis (data_key_records.hpp); none: records stay sealed
    // as the Authenticator sealed them, no key goes to Redis.
    const Sealer* master = nullptr;
    const fleet::DataKeyWrap* data_key_wrap = nullptr;
  };
  using DegradedCallback = std::function<void(bool degraded)>;
  // The cache was written outside a D-Bus call: a commit must be scheduled.
  using WriteCallback = std::function<void()>;
  // Another host forgot the account (its tombstone, data_key_records.hpp): erase it here.
  using ForgetCallback = std::function<void(const std::string& account, const std::string& host)>;

  // options: the connection for commands; watcher: the same server, for the subscription to the
  // invalidation channel (a subscribed connection takes no other command).
  static Result<std::unique_ptr<FleetCoordinator>> create(Deps deps, RedisClientOptions options,
                                                          RedisClientOptions watcher,
                                                          DegradedCallback on_degraded,
                                                          WriteCallback on_write);
  ~FleetCoordinator();

  bool degraded() const { return degraded_; }
  void set_forget_handler(ForgetCallback on_forget) { on_forget_ = std::move(on_forget); }
  // Reads the tombstones in Redis and erases here every account one names (ForgetCallback);
  // run when a host announces a forget and when this host leaves degraded mode.
  void sweep_forgotten();
  RedisClient& client() { return *client_; }

  // The shared counters are the truth: the cache takes user's as Redis answered them (an error is
  // logged; the next read of Redis writes them again).
  void follow_limits(const std::string& user, const LimitState& shared);

  // Whether the cache's copy of user's shared state is known to match Redis (FleetReadCache):
  // BeginAuthentication may then be answered from the cache without a prefetch.
  bool cache_current(const std::string& user) const;
  // Degraded mode: whether Redis confirmed the cache's copy of user's state since the last sync
  // (FleetReadCache::confirmed): only then is the cache's "no factor" trusted (DegradedNullok).
  bool confirmed_since_sync(const std::string& user) const { return read_cache_.confirmed(user); }

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

  // Degraded mode refused a login whose "no factor" the cache has not confirmed since the last
  // sync (DegradedNullok=no): audited as degraded, denied, unconfirmed-not-enrolled.
  void note_unconfirmed(const std::string& user, const std::string& call,
                        const std::string& caller);

  const fleet::RecordMac& mac() const { return d_.mac; }
  // A record outside a user's state failed verification (a termination request): audited as
  // fleet.record-rejected (when: "terminate"), SecurityEvent.
  void note_record_rejected(const std::string& user, fleet::RecordProblem problem,
                            const std::string& key, const std::string& when);
  // A termination request, sealed by a host of the fleet, for a session that is not of the user
  // it names, or by someone else than that user: refused (fleet.record-rejected, foreign-request).
  void note_foreign_request(const std::string& user, const std::string& key,
                            const std::string& from_host);

  // Whether user's records in Redis failed verification at the last read (fleet.record-rejected):
  // logins and self-service changes are refused until a read verifies or an admin resets.
  bool rejected(const std::string& user) const { return rejected_.count(user) != 0; }

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
  Status write_through(const std::string& user, const fleet::VerifiedUser& remote);
  // The state a write produced, into the cache (watermark: the larger; backup set; limits).
  Status cache_state(const std::string& user, const fleet::UserState& state);

  // One change of user's state record (fleet/user_state.hpp): computed here from the state last
  // verified, written by the script if Redis still holds that state, else tried again on the
  // state Redis answers (verified first).
  struct StateWrite {
    fleet::StateChange change;
    FleetChanges enrollment;  // push: the cache's factors, backup set, watermark go to Redis
    bool push = false;
    bool force = false;  // an admin's reset: written even over records that failed verification
    std::string factor_field, factor_sha1;  // the record a success rests on ("": no check)
    std::vector<std::string> extra_keys;    // deleted with the write (SMS codes)
    bool forget = false;  // the person is forgotten: no state record is left (extra_keys has it)
  };
  struct StateWriteResult {
    FleetRefusal refused = FleetRefusal::kNone;
    LimitState limits;
    bool unavailable = false;
    bool rejected = false;
    uint64_t counter = 0;  // the state record written ("ok" and changed); 0: none
  };
  void write_state(const std::string& user, StateWrite write, int tries,
                   std::function<void(StateWriteResult)> done);
  // Reads and verifies user's records; done(false): Redis failed (degraded now).
  void load_user(const std::string& user, std::function<void(bool online)> done);
  // The user's records failed verification: audited (fleet.record-rejected), SecurityEvent,
  // and refused until a read verifies.
  void reject(const std::string& user, fleet::RecordProblem problem, const std::string& key,
              const std::string& why);
  void audit_rejected(const std::string& user, AuditReason reason, const std::string& key,
                      const std::string& when, const StringMap& extra);
  enum class ViewOutcome {
    kTaken,        // this host's view now
    kRefused,      // rolled back (audited as a rejected record), or the mark unreadable
    kMerge,        // older than the mark, explained by this host's unreplicated writes
    kUnavailable,  // Redis failed (degraded now)
  };
  // A verified state: kept as this host's view, checked against the high-water mark (rollback).
  ViewOutcome take_view(const std::string& user, const fleet::VerifiedUser& verified,
                        const std::string& key);
  // take_view's kMerge (fleet/coordinator_rollback.cpp): the state with this host's queued and
  // cached consumptions (fleet/lost_writes.hpp), written above the mark, audited
  // (fleet-reconciled), and taken: done(kTaken, the state written), or kRefused, kUnavailable.
  void merge_lost_writes(const std::string& user, const fleet::VerifiedUser& verified,
                         std::function<void(ViewOutcome, const fleet::VerifiedUser&)> done);
  // Whether a state older than the mark has the factor records this host knows (a lost write
  // changed none): the view's hashes, else the cache's records.
  bool factors_unchanged(const std::string& user, const fleet::VerifiedUser& verified);
  // The view taken; the maps stay bounded.
  void remember_view(const std::string& user, const fleet::UserState& state, uint64_t counter);
  // The rollback high-water mark: the map, else SQLite (after a restart, or the map's overflow).
  // 0: this host never saw a state of user.
  Result<uint64_t> highwater(const std::string& user);
  // Whether this host saw a state of user (a state gone since was deleted); an unreadable mark
  // counts as seen (fail closed).
  bool seen_state(const std::string& user);
  // Raised in the map and in SQLite (the batch of the call that read or wrote the state).
  void raise_highwater(const std::string& user, uint64_t counter);
  // A person forgotten: nothing of theirs is left to roll back to.
  void forget_highwater(const std::string& user);
  // What another host wrote since this one last saw user: a factor record of another host that is
  // new here (or a reset of factors this host had) is audited fleet.foreign-change, and raises
  // SecurityEvent "fleet-foreign-enrollment" ("fleet-foreign-reset") when the user has sessions
  // here.
  void note_writers(const std::string& user, const fleet::VerifiedUser& verified);
  // One such change (change: "enrollment" or "reset"): audited fleet.foreign-change (what
  // `mfactl status` shows), and signalled when the user has sessions here.
  void note_foreign_change(const std::string& user, const std::string& host,
                           const std::string& change, const std::string& factor, bool signal);
  void changed_elsewhere(const std::string& user);
  // Whether user (an account key or a name) has sessions registered on this host.
  bool sessions_here(const std::string& user);
  // The person's data key as Redis holds it (wrapped: "" none) becomes this host's copy; false
  // when it does not open (refused as a record that failed verification).
  bool take_data_key(const std::string& user, const fleet::UserKeys& keys,
                     const std::string& wrapped);
  // A forget written: its tombstone, and the announcement to every host; done(false): not done.
  void announce_forget(const std::string& user, std::function<void(bool ok)> done);
  DataKeys data_keys() const;
  void queue(const ReconcileItem& item);
  // What a decision consumed or counted on this host (a TOTP step, a backup code, a failure), for
  // Redis to learn on reconciliation.
  // counter: the state record of an unreplicated write (ReconcileItem::counter).
  void queue_consumed(const std::string& user, const FleetChanges& changes, bool failure,
                      uint64_t counter = 0);
  // Sentinel mode, after a write that consumed a code or advanced a watermark: WAIT for one
  // replica (when the primary has any), so that a failover cannot lose what the login is
  // answered on (fleet/coordinator_replication.cpp).
  void await_replica(const std::string& user, const FleetChanges& changes, uint64_t counter,
                     std::function<void()> done);
  void note_unreplicated(const std::string& user, const FleetChanges& changes, uint64_t counter,
                         const std::string& why);
  RatePolicy policy() const;

  Deps d_;
  DegradedCallback on_degraded_;
  WriteCallback on_write_;
  ForgetCallback on_forget_;
  std::unique_ptr<RedisClient> client_;
  std::unique_ptr<RedisClient> watcher_;  // subscribed to invalidations_
  const std::string invalidations_;       // fleet::invalidation_channel() of KeyPrefix
  FleetReadCache read_cache_;
  bool degraded_ = true;  // until connected and reconciled
  bool reconciling_ = false;
  EventSourcePtr reconcile_retry_;
  uint64_t reconcile_retry_usec_ = 0;
  // Queued items Redis took, and refused, since degraded mode was last left (the left row's
  // "reconciled" and "refused").
  uint64_t reconciled_ = 0;
  uint64_t reconcile_refused_ = 0;
  uint64_t left_degraded_usec_ = 0;  // CLOCK_MONOTONIC; 0 until degraded mode was left once
  bool shutting_down_ = false;
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
  struct View {
    fleet::UserState state;
    uint64_t counter = 0;
  };
  // Bounded maps (kMaxUsers): forgotten views are read again; high-water marks forgotten here are
  // read again from SQLite (fleet_highwater), which keeps them across restarts.
  std::unordered_map<std::string, View> views_;
  std::unordered_map<std::string, uint64_t> highwater_;
  std::unordered_map<std::string, std::string> rejected_;
};

}  // namespace mfa

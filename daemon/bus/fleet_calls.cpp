// Fleet mode's way to an answer (docs/fleet.md): a call about a user waits for that user's shared
// state (prefetch), is decided against the local cache, and its reply (or the text it decided)
// leaves only once Redis confirmed what the decision consumed. Each wait resumes the call through
// PendingCall::then().
#include <cstring>
#include <memory>
#include <utility>

#include "bus/manager.hpp"
#include "common/dbus_names.hpp"
#include "core/log.hpp"
#include "core/rate_limiter.hpp"
#include "core/user_directory.hpp"
#include "core/validation.hpp"
#include "fleet/coordinator.hpp"
#include "fleet/sms.hpp"

namespace mfa {

namespace {

constexpr char kRecordsRejectedMessage[] =
    "This user's records in the fleet's shared store (Redis) failed verification (see the audit "
    "trail: fleet.record-rejected); refused until an administrator resets the user";

bool changes_enrollment(FleetCallKind kind) {
  return kind == FleetCallKind::kChange || kind == FleetCallKind::kAdmin;
}

}  // namespace

void ManagerBus::set_fleet(FleetCoordinator* fleet, FleetRecorder* recorder) {
  fleet_ = fleet;
  recorder_ = recorder;
  if (fleet_ == nullptr)
    return;
  // A person forgotten on another host is erased here too (fleet/data_key_records.hpp).
  fleet_->set_forget_handler([this](const std::string& account, const std::string& from_host) {
    auto report = auth_.apply_fleet_forget(account, from_host);
    if (!report.ok()) {
      MFA_LOG_ERROR("fleet: cannot apply a forget of host %s: %s", from_host.c_str(),
                    report.error().message.c_str());
    } else {
      MFA_LOG_INFO("fleet: a person forgotten on host %s is erased here (%s)", from_host.c_str(),
                   report->pseudonym.c_str());
    }
  });
}

bool ManagerBus::degraded() const {
  return fleet_ != nullptr && fleet_->degraded();
}

void ManagerBus::emit_degraded_changed() {
  int r = sd_bus_emit_properties_changed(bus_, dbus::kObjectPath, dbus::kInterface, "Degraded",
                                         nullptr);
  if (r < 0)
    MFA_LOG_WARNING("cannot emit PropertiesChanged(Degraded): %s", strerror(-r));
}

void ManagerBus::fleet_proceed(const CallPtr& call, FleetScope scope, Decide decide) {
  // Nothing to fetch for a call the Authenticator refuses anyway (unknown challenge, bad name):
  // decided and answered as without fleet mode.
  if (scope.user.empty() ||
      (!account_key_uid(scope.user) && !validate_user_name(scope.user).ok())) {
    proceed(call, std::nullopt, std::move(decide));
    return;
  }
  if (scope.fresh && !fleet_->degraded()) {
    fleet_decide(call, scope, decide, true);
    return;
  }
  const std::string user = scope.user;
  fleet_->prefetch(
      user, call->then<bool>(CallWait::kRedis, [this, scope, decide](const CallPtr& fetched,
                                                                     bool online) {
        if (online && scope.sms_purpose != nullptr && fleet_sms_ != nullptr) {
          fleet_sms_->load_code(
              scope.user, scope.sms_purpose,
              fetched->then<bool>(CallWait::kRedis,
                                  [this, scope, decide](const CallPtr& loaded, bool code_online) {
                                    fleet_decide(loaded, scope, decide, code_online);
                                  }));
          return;
        }
        fleet_decide(fetched, scope, decide, online);
      }));
}

// online: the cache holds what Redis just said; else degraded, decided from the cache alone.
void ManagerBus::fleet_decide(const CallPtr& call, const FleetScope& scope, const Decide& decide,
                              bool online) {
  if (stopping_) {
    call->send_error(SD_BUS_ERROR_NO_SERVER, "mfad is shutting down.");
    return;
  }
  if (!online && changes_enrollment(scope.kind)) {
    // Fail closed: an enrollment change that Redis cannot learn would be undone, or worse,
    // resurrect what another host removed.
    answer_error(call, make_error(Errc::kStorage,
                                  "The fleet's shared store (Redis) is unreachable; enrollment "
                                  "changes wait until it is back."));
    return;
  }
  if (online && fleet_->rejected(scope.user) &&
      (scope.kind == FleetCallKind::kLogin || scope.kind == FleetCallKind::kChange)) {
    // The user's records in Redis failed verification (audited fleet.record-rejected): an
    // attack, never "no factor" nor "no lockout" (issue 16).
    answer_error(call, make_error(Errc::kNotAllowed, kRecordsRejectedMessage));
    return;
  }
  call->set_read_shared_state(online);
  recorder_->start();
  Outcome outcome;
  try {
    outcome = decide(*call);
  } catch (...) {
    (void)recorder_->stop();
    throw;
  }
  const FleetChanges changes = recorder_->stop();
  if (ask_polkit(call, outcome, [this, scope, decide](const CallPtr& again) {
        fleet_proceed(again, scope, decide);
      }))
    return;
  if (outcome.failed < 0 || outcome.unsynced) {
    // Failed before replying, or a reply that reports no decision (a new challenge): nothing for
    // Redis to confirm.
    answer(call, std::move(outcome));
    return;
  }
  if (!online && scope.kind == FleetCallKind::kLogin && outcome.refused == Errc::kNotEnrolled &&
      !config_.redis_degraded_nullok && !fleet_->confirmed_since_sync(scope.user)) {
    // The cache's "no factor" may be stale (an enrollment on another host it never heard of):
    // nullok would make it a login without a second factor (issue 16, DegradedNullok).
    fleet_->note_unconfirmed(scope.user, call->member(), call->caller().describe());
    answer(call, error_reply(call->message(),
                             make_error(Errc::kNotAllowed,
                                        "The fleet's shared store (Redis) is unreachable and this "
                                        "host cannot confirm that this user has no second factor; "
                                        "the login is refused until Redis is back")));
    return;
  }
  if (!online) {
    fleet_->note_degraded(scope.user, call->member(), changes, outcome.success(),
                          outcome.counted_failure(), call->caller().describe());
    // A text is not reached: enrollment changes are refused while degraded.
    answer(call, std::move(outcome));
    return;
  }
  // The decision's writes go to disk while Redis confirms it, not after.
  if (store_.in_transaction())
    commit_->prepare();
  fleet_confirm(call, scope, changes, std::make_shared<Outcome>(std::move(outcome)));
}

void ManagerBus::fleet_confirm(const CallPtr& call, const FleetScope& scope,
                               const FleetChanges& changes, std::shared_ptr<Outcome> outcome) {
  const bool success = outcome->success();
  const bool failure = outcome->counted_failure();
  // An SMS code used or tried goes first; refused (no longer live fleet-wide), the decision is a
  // counted failure that changes no enrollment.
  auto rest = [this, scope, changes, outcome, success, failure](const CallPtr& sms_done,
                                                                FleetSms::ConfirmResult sms) {
    FleetChanges shared = changes;
    if (sms.refused != FleetRefusal::kNone) {
      shared.factors_changed = false;
      shared.backup_replaced = false;
      shared.watermark_set.reset();
      shared.user_deleted = false;
      shared.sms_codes_dropped = false;
    }
    const bool confirmed = success && sms.refused == FleetRefusal::kNone;
    const bool failed = failure || (success && sms.refused != FleetRefusal::kNone);
    fleet_->confirm(
        scope.user, scope.kind, shared, confirmed, failed, outcome->verified,
        sms_done->then<FleetConfirmResult>(
            CallWait::kRedis, [this, scope, changes, outcome, sms, success, failure](
                                  const CallPtr& confirmed_call, FleetConfirmResult res) {
              if (res.refused == FleetRefusal::kNone)
                res.refused = sms.refused;
              res.unavailable = res.unavailable || sms.unavailable;
              if (res.unavailable && res.refused == FleetRefusal::kNone &&
                  !changes_enrollment(scope.kind) && !stopping_) {
                // Redis went away during the confirm: the decision stands, taken from the cache,
                // like every decision of degraded mode.
                fleet_->audit_degraded(scope.user, confirmed_call->member(), changes, success,
                                       failure, confirmed_call->caller().describe());
              }
              answer_confirmed(confirmed_call, scope, std::move(*outcome), res);
              // The cache took an enrollment change that Redis did not: it follows Redis again.
              if (res.refused != FleetRefusal::kNone && changes.enrollment_changed())
                fleet_->prefetch(scope.user, [this](bool) { after_write(); });
            }));
  };
  if (fleet_sms_ && (changes.sms_used || changes.sms_failed)) {
    fleet_sms_->confirm(scope.user, changes,
                        call->then<FleetSms::ConfirmResult>(CallWait::kRedis, std::move(rest)));
    return;
  }
  rest(call, {});
}

// The reply of a call whose decision Redis has confirmed, or refused; a text the call decided
// leaves only once Redis confirmed it.
void ManagerBus::answer_confirmed(const CallPtr& call, const FleetScope& scope, Outcome outcome,
                                  const FleetConfirmResult& res) {
  const std::string& user = scope.user;
  const std::string who = call->caller().describe();
  const bool change = changes_enrollment(scope.kind);
  const bool sends_text = outcome.text && res.refused == FleetRefusal::kNone && !res.rejected &&
                          !(res.unavailable && (change || stopping_));
  if (outcome.text && !sends_text && fleet_sms_)
    fleet_sms_->discard(*outcome.text);
  if (res.rejected) {
    answer_error(call, make_error(Errc::kNotAllowed, kRecordsRejectedMessage));
    return;
  }
  if (res.refused == FleetRefusal::kLocked) {
    // Locked fleet-wide since this host last read the user's state: nothing was counted or
    // consumed in Redis, as for a locked user's attempt on one host.
    MFA_LOG_WARNING("%s: attempt refused, locked out fleet-wide", user.c_str());
    fleet_->note_refused(user, res.refused, who);
    answer_error(call, make_error(Errc::kRateLimited, lockout_message(res.locked_usec)));
    return;
  }
  if (res.refused != FleetRefusal::kNone) {
    MFA_LOG_WARNING("%s: code refused by the fleet (%s)", user.c_str(),
                    fleet_refusal_name(res.refused));
    fleet_->note_refused(user, res.refused, who);
  }
  // A refusal counts as a failure in Redis, as a local BadCode does; added to the other hosts'
  // failures, either may have locked the user.
  const bool counted = res.refused != FleetRefusal::kNone || outcome.refused == Errc::kBadCode;
  if (counted && res.locked_usec > 0) {
    MFA_LOG_WARNING("%s: locked out by failures across the fleet", user.c_str());
    const int64_t until = fleet_->note_lockout(user, res.locked_usec, who);
    SecurityEventEmitter(bus_).security_event(
        auth_.shown_name(user), "lockout",
        {{"reason", "fleet-failures"}, {"locked_until", std::to_string(until)}});
    answer_error(call, make_error(Errc::kRateLimited, lockout_message(res.locked_usec)));
  } else if (res.refused != FleetRefusal::kNone) {
    answer_error(call, make_error(Errc::kBadCode,
                                  res.refused == FleetRefusal::kFactorChanged
                                      ? "Invalid code (this factor was changed on another host)"
                                      : "Invalid code (already used on another host)"));
  } else if (res.unavailable && stopping_) {
    // Redis did not answer before the shutdown: no decision leaves unconfirmed now.
    call->send_error(SD_BUS_ERROR_NO_SERVER, "mfad is shutting down.");
  } else if (res.unavailable && change) {
    answer_error(call, make_error(Errc::kStorage,
                                  "The change could not be written to the fleet's shared store "
                                  "(Redis); try again when it is back."));
  } else if (sends_text) {
    send_text(call, std::move(*outcome.text));
  } else if (outcome.reply) {
    // The decision's writes were committed while Redis answered, perhaps not yet synced: the
    // reply waits for the disk either way (answer() would send it at once with no write open).
    answer_durable(call, std::move(outcome.reply), outcome.durability());
  }
}

}  // namespace mfa

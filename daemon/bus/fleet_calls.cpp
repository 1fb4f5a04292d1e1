// Fleet mode's D-Bus glue (docs/fleet.md): a call about a user waits, as a deferred reply on the
// event loop, for that user's shared state (prefetch), runs its handler against the local cache,
// and sends the reply (or the text it decided) only after Redis confirmed what the decision
// consumed.
#include <cstring>
#include <memory>
#include <utility>

#include "common/dbus_names.hpp"
#include "bus/caller.hpp"
#include "core/log.hpp"
#include "fleet/coordinator.hpp"
#include "fleet/sms.hpp"
#include "bus/manager.hpp"
#include "core/rate_limiter.hpp"
#include "core/validation.hpp"

namespace mfa {

namespace {

bool is_counted_failure(sd_bus_message* reply) {
  return sd_bus_message_is_method_error(reply, errc_dbus_name(Errc::kBadCode)) > 0 ||
         sd_bus_message_is_method_error(reply, errc_dbus_name(Errc::kRateLimited)) > 0;
}

}  // namespace

void ManagerBus::set_fleet(FleetCoordinator* fleet, FleetRecorder* recorder) {
  fleet_ = fleet;
  recorder_ = recorder;
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

int ManagerBus::fleet_defer(sd_bus_message* m, const std::string& user, FleetCallKind kind,
                            int (ManagerBus::*handler)(sd_bus_message*), const char* sms_purpose,
                            bool fresh) {
  // Nothing to fetch for a call the Authenticator refuses anyway (unknown challenge, bad name).
  if (user.empty() || !validate_user_name(user).ok()) {
    fleet_pass_ = true;
    int r = (this->*handler)(m);
    fleet_pass_ = false;
    fleet_verified_.reset();  // nothing to confirm
    return r;
  }
  SharedMessage call = share_message(m);
  const uint64_t id = next_fleet_call_++;
  fleet_calls_.emplace(id, call);
  // A call that runs again with polkit's answer keeps it through the prefetch.
  const PolkitGrant grant = polkit_grant_;
  auto run = [this, call, id, user, kind, handler, grant](bool online) {
    if (fleet_calls_.count(id) == 0)
      return;  // the shutdown answered it already
    try {
      if (stopping_) {
        (void)sd_bus_reply_method_errorf(call.get(), SD_BUS_ERROR_NO_SERVER,
                                         "mfad is shutting down.");
        fleet_call_done(id);
        return;
      }
      if (!online && (kind == FleetCallKind::kChange || kind == FleetCallKind::kAdmin)) {
        // Fail closed: an enrollment change that Redis cannot learn would be undone, or worse,
        // resurrect what another host removed.
        (void)reply_error(call.get(),
                          make_error(Errc::kStorage,
                                     "The fleet's shared store (Redis) is unreachable; enrollment "
                                     "changes wait until it is back."));
        fleet_call_done(id);
        return;
      }
      int r = sd_bus_message_rewind(call.get(), 1);
      if (r < 0) {
        (void)sd_bus_reply_method_errno(call.get(), r, nullptr);
        fleet_call_done(id);
        return;
      }
      fleet_pass_ = true;
      fleet_online_ = online;
      capturing_ = true;
      polkit_grant_ = grant;
      recorder_->start();
      r = (this->*handler)(call.get());
      FleetChanges changes = recorder_->stop();
      polkit_grant_ = PolkitGrant::kAskable;
      capturing_ = false;
      fleet_online_ = false;
      fleet_pass_ = false;
      const std::optional<Method> verified = std::exchange(fleet_verified_, std::nullopt);
      BusMessagePtr reply = std::move(captured_);
      // BeginSmsEnrollment decided a text: it leaves once Redis confirmed the decision.
      std::shared_ptr<SmsMessage> text;
      if (captured_text_) {
        text = std::make_shared<SmsMessage>(std::move(*captured_text_));
        captured_text_.reset();
      }
      const bool success = text ? true : captured_success_;
      if (!reply && !text) {
        // Answered directly (refusal) or failed before replying.
        if (r < 0)
          (void)sd_bus_reply_method_errno(call.get(), r, nullptr);
        after_write();
        fleet_call_done(id);
        return;
      }
      const bool failure = reply && !success && is_counted_failure(reply.get());
      Caller caller;
      (void)callers_.identify(call.get(), &caller);
      caller.polkit = grant;
      if (!online) {
        fleet_->note_degraded(user, sd_bus_message_get_member(call.get()), changes, success,
                              failure, caller.describe());
        if (text)  // not reached: enrollment changes are refused while degraded
          (void)send_text(call.get(), std::move(*text));
        else
          (void)finish(call.get(), std::move(reply), success);
        after_write();
        fleet_call_done(id);
        return;
      }
      // The decision's writes go to disk while Redis confirms it, not after.
      if (store_.in_transaction())
        commit_->prepare();
      fleet_confirm(call, id, user, kind, changes, success, failure, verified,
                    share_message(std::move(reply)), text, caller.describe());
      after_write();
    } catch (...) {
      capturing_ = false;
      fleet_online_ = false;
      fleet_pass_ = false;
      polkit_grant_ = PolkitGrant::kAskable;
      captured_text_.reset();
      MFA_LOG_ERROR("fleet call failed");
      (void)sd_bus_reply_method_errorf(call.get(), dbus::kErrorInternal, "Internal error in mfad.");
      fleet_call_done(id);
    }
  };
  if (fresh && !fleet_->degraded()) {
    run(true);
    return 1;
  }
  fleet_->prefetch(user, [this, user, sms_purpose, run](bool online) {
    if (online && sms_purpose != nullptr && fleet_sms_ != nullptr) {
      fleet_sms_->load_code(user, sms_purpose, run);
      return;
    }
    run(online);
  });
  return 1;
}

void ManagerBus::fleet_confirm(SharedMessage call, uint64_t id, const std::string& user,
                               FleetCallKind kind, const FleetChanges& changes, bool success,
                               bool failure, std::optional<Method> verified, SharedMessage held,
                               std::shared_ptr<SmsMessage> text, const std::string& who) {
  // An SMS code used or tried goes first; refused (no longer live fleet-wide), the decision is a
  // counted failure that changes no enrollment.
  auto rest = [this, call, id, user, kind, changes, success, failure, verified, held, text,
               who](FleetSms::ConfirmResult sms) {
    FleetChanges shared = changes;
    if (!sms.refused.empty()) {
      shared.factors_changed = false;
      shared.backup_replaced = false;
      shared.watermark_set.reset();
      shared.user_deleted = false;
      shared.sms_codes_dropped = false;
    }
    const bool confirmed = success && sms.refused.empty();
    const bool failed = failure || (success && !sms.refused.empty());
    fleet_->confirm(
        user, kind, shared, confirmed, failed, verified,
        [this, call, id, held, text, success, failure, user, kind, who, sms,
         changes](FleetConfirmResult res) {
          if (fleet_calls_.count(id) == 0)
            return;  // the shutdown answered it already
          try {
            if (res.refused.empty())
              res.refused = sms.refused;
            res.unavailable = res.unavailable || sms.unavailable;
            const bool change = kind == FleetCallKind::kChange || kind == FleetCallKind::kAdmin;
            if (res.unavailable && res.refused.empty() && !change && !stopping_) {
              // Redis went away during the confirm: the decision stands, taken from
              // the cache, like every decision of degraded mode.
              fleet_->audit_degraded(user, sd_bus_message_get_member(call.get()), changes, success,
                                     failure, who);
            }
            answer_confirmed(call.get(), held.get(), success, failure, user, kind, who, res, text);
            // The cache took an enrollment change that Redis did not: it follows
            // Redis again.
            if (!res.refused.empty() && changes.enrollment_changed())
              fleet_->prefetch(user, [this](bool) { after_write(); });
            after_write();
          } catch (...) {
            MFA_LOG_ERROR("fleet confirm reply failed");
          }
          fleet_call_done(id);
        });
  };
  if (fleet_sms_ && (changes.sms_used || changes.sms_failed)) {
    fleet_sms_->confirm(user, changes, std::move(rest));
    return;
  }
  rest({});
}

// The reply of a call whose decision Redis has confirmed, or refused; a text the call decided
// leaves only once Redis confirmed it.
void ManagerBus::answer_confirmed(sd_bus_message* call, sd_bus_message* reply, bool success,
                                  bool failure, const std::string& user, FleetCallKind kind,
                                  const std::string& who, const FleetConfirmResult& res,
                                  std::shared_ptr<SmsMessage> text) {
  const bool change = kind == FleetCallKind::kChange || kind == FleetCallKind::kAdmin;
  const bool sends_text =
      text && res.refused.empty() && !(res.unavailable && (change || stopping_));
  if (text && !sends_text && fleet_sms_)
    fleet_sms_->discard(*text);
  if (res.refused == "locked") {
    // Locked fleet-wide since this host last read the user's state: nothing was counted or
    // consumed in Redis, as for a locked user's attempt on one host.
    MFA_LOG_WARNING("%s: attempt refused, locked out fleet-wide", user.c_str());
    fleet_->note_refused(user, res.refused, who);
    (void)reply_error(call, make_error(Errc::kRateLimited, lockout_message(res.locked_usec)));
    return;
  }
  if (!res.refused.empty()) {
    MFA_LOG_WARNING("%s: code refused by the fleet (%s)", user.c_str(), res.refused.c_str());
    fleet_->note_refused(user, res.refused, who);
  }
  // A refusal counts as a failure in Redis, as a local BadCode does; added to the other hosts'
  // failures, either may have locked the user.
  const bool counted = !res.refused.empty() ||
                       (failure && reply != nullptr &&
                        sd_bus_message_is_method_error(reply, errc_dbus_name(Errc::kBadCode)) > 0);
  if (counted && res.locked_usec > 0) {
    MFA_LOG_WARNING("%s: locked out by failures across the fleet", user.c_str());
    const int64_t until = fleet_->note_lockout(user, res.locked_usec, who);
    SecurityEventEmitter(bus_).security_event(
        user, "lockout", {{"reason", "fleet-failures"}, {"locked_until", std::to_string(until)}});
    (void)reply_error(call, make_error(Errc::kRateLimited, lockout_message(res.locked_usec)));
  } else if (!res.refused.empty()) {
    (void)reply_error(
        call,
        make_error(Errc::kBadCode, res.refused == "factor-changed"
                                       ? "Invalid code (this factor was changed on another host)"
                                       : "Invalid code (already used on another host)"));
  } else if (res.unavailable && stopping_) {
    // Redis did not answer before the shutdown: no decision leaves unconfirmed now.
    (void)sd_bus_reply_method_errorf(call, SD_BUS_ERROR_NO_SERVER, "mfad is shutting down.");
  } else if (res.unavailable && change) {
    (void)reply_error(call, make_error(Errc::kStorage,
                                       "The change could not be written to the fleet's shared "
                                       "store (Redis); try again when it is back."));
  } else if (sends_text) {
    (void)send_text(call, std::move(*text));
  } else if (reply != nullptr) {
    // The decision's writes were committed while Redis answered, perhaps not yet synced: the
    // reply waits for the disk either way (finish() would send it at once with no write open).
    commit_->queue(call, BusMessagePtr(sd_bus_message_ref(reply)), success);
  }
}

void ManagerBus::fleet_call_done(uint64_t id) {
  fleet_calls_.erase(id);
  // The last one during shutdown: the drain timer, due at once, finishes it.
  if (stopping_ && fleet_calls_.empty() && drain_timer_)
    (void)sd_event_source_set_time(drain_timer_.get(), 1);
}

int ManagerBus::on_drain_timer(sd_event_source* /*s*/, uint64_t /*usec*/, void* userdata) {
  auto* self = static_cast<ManagerBus*>(userdata);
  try {
    // What Redis has not answered by now completes with an error: those calls get NoServer.
    if (self->fleet_ != nullptr)
      self->fleet_->close_client("mfad is shutting down");
    auto left = std::exchange(self->fleet_calls_, {});
    for (auto& [id, call] : left)
      (void)sd_bus_reply_method_errorf(call.get(), SD_BUS_ERROR_NO_SERVER,
                                       "mfad is shutting down.");
  } catch (...) {
    MFA_LOG_ERROR("answering calls at shutdown failed");
  }
  self->finish_stop();
  return 0;
}

}  // namespace mfa

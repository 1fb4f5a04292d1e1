// Fleet mode's D-Bus glue (docs/fleet.md): a call about a user waits, as a deferred reply on the
// event loop, for that user's shared state (prefetch), runs its handler against the local cache,
// and sends the reply (or the text it decided) only after Redis confirmed what the decision
// consumed.
#include <cstring>
#include <memory>

#include "common/dbus_names.hpp"
#include "daemon/bus_caller.hpp"
#include "daemon/daemon_log.hpp"
#include "daemon/fleet_coordinator.hpp"
#include "daemon/fleet_sms.hpp"
#include "daemon/manager_bus.hpp"
#include "daemon/validation.hpp"

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
                            int (ManagerBus::*handler)(sd_bus_message*), const char* sms_purpose) {
  // Nothing to fetch for a call the Authenticator refuses anyway (unknown challenge, bad name).
  if (user.empty() || !validate_user_name(user).ok()) {
    fleet_pass_ = true;
    int r = (this->*handler)(m);
    fleet_pass_ = false;
    return r;
  }
  std::shared_ptr<sd_bus_message> call(sd_bus_message_ref(m),
                                       [](sd_bus_message* p) { sd_bus_message_unref(p); });
  auto run = [this, call, user, kind, handler](bool online) {
    try {
      if (stopping_) {
        (void)sd_bus_reply_method_errorf(call.get(), SD_BUS_ERROR_NO_SERVER,
                                         "mfad is shutting down.");
        return;
      }
      if (!online && (kind == FleetCallKind::kChange || kind == FleetCallKind::kAdmin)) {
        // Fail closed: an enrollment change that Redis cannot learn would be undone, or worse,
        // resurrect what another host removed.
        (void)reply_error(call.get(),
                          make_error(Errc::kStorage,
                                     "The fleet's shared store (Redis) is unreachable; enrollment "
                                     "changes wait until it is back."));
        return;
      }
      int r = sd_bus_message_rewind(call.get(), 1);
      if (r < 0) {
        (void)sd_bus_reply_method_errno(call.get(), r, nullptr);
        return;
      }
      fleet_pass_ = true;
      capturing_ = true;
      recorder_->start();
      r = (this->*handler)(call.get());
      FleetChanges changes = recorder_->stop();
      capturing_ = false;
      fleet_pass_ = false;
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
        return;
      }
      const bool failure = reply && !success && is_counted_failure(reply.get());
      Caller caller;
      (void)callers_.identify(call.get(), &caller);
      if (!online) {
        fleet_->note_degraded(user, sd_bus_message_get_member(call.get()), changes, success,
                              failure, caller.describe());
        if (text)  // not reached: enrollment changes are refused while degraded
          (void)send_text(call.get(), std::move(*text));
        else
          (void)finish(call.get(), std::move(reply), success);
        after_write();
        return;
      }
      std::shared_ptr<sd_bus_message> held(reply.release(),
                                           [](sd_bus_message* p) { sd_bus_message_unref(p); });
      fleet_confirm(call, user, kind, changes, success, failure, held, text, caller.describe());
      after_write();
    } catch (...) {
      capturing_ = false;
      fleet_pass_ = false;
      captured_text_.reset();
      MFA_LOG_ERROR("fleet call failed");
      (void)sd_bus_reply_method_errorf(call.get(), dbus::kErrorInternal, "Internal error in mfad.");
    }
  };
  fleet_->prefetch(user, [this, user, sms_purpose, run](bool online) {
    if (online && sms_purpose != nullptr && fleet_sms_ != nullptr) {
      fleet_sms_->load_code(user, sms_purpose, run);
      return;
    }
    run(online);
  });
  return 1;
}

void ManagerBus::fleet_confirm(std::shared_ptr<sd_bus_message> call, const std::string& user,
                               FleetCallKind kind, const FleetChanges& changes, bool success,
                               bool failure, std::shared_ptr<sd_bus_message> held,
                               std::shared_ptr<SmsMessage> text, const std::string& who) {
  // An SMS code used or tried goes first; refused (no longer live fleet-wide), the decision is a
  // counted failure that changes no enrollment.
  auto rest = [this, call, user, kind, changes, success, failure, held, text,
               who](FleetSms::ConfirmResult sms) {
    FleetChanges shared = changes;
    if (!sms.refused.empty()) {
      shared.factors_changed = false;
      shared.backup_replaced = false;
      shared.watermark_set.reset();
      shared.user_deleted = false;
    }
    const bool confirmed = success && sms.refused.empty();
    const bool failed = failure || (success && !sms.refused.empty());
    fleet_->confirm(
        user, kind, shared, confirmed, failed,
        [this, call, held, text, success, user, kind, who, sms,
         local_change = changes.enrollment_changed()](FleetConfirmResult res) {
          try {
            if (res.refused.empty())
              res.refused = sms.refused;
            res.unavailable = res.unavailable || sms.unavailable;
            const bool change = kind == FleetCallKind::kChange || kind == FleetCallKind::kAdmin;
            if (!res.refused.empty()) {
              MFA_LOG_WARNING("%s: code refused by the fleet (%s)", user.c_str(),
                              res.refused.c_str());
              fleet_->note_refused(user, res.refused, who);
              (void)reply_error(
                  call.get(),
                  make_error(Errc::kBadCode, "Invalid code (already used on another host)"));
              if (text && fleet_sms_)
                fleet_sms_->discard(*text);
              // The cache took an enrollment change that Redis did not: it follows Redis again.
              if (local_change)
                fleet_->prefetch(user, [this](bool) { after_write(); });
            } else if (res.unavailable && change) {
              (void)reply_error(call.get(),
                                make_error(Errc::kStorage,
                                           "The change could not be written to the fleet's "
                                           "shared store (Redis); try again when it is back."));
              if (text && fleet_sms_)
                fleet_sms_->discard(*text);
            } else if (text) {
              (void)send_text(call.get(), std::move(*text));
            } else {
              (void)finish(call.get(), BusMessagePtr(sd_bus_message_ref(held.get())), success);
            }
            after_write();
          } catch (...) {
            MFA_LOG_ERROR("fleet confirm reply failed");
          }
        });
  };
  if (fleet_sms_ && (changes.sms_used || changes.sms_failed)) {
    fleet_sms_->confirm(user, changes, std::move(rest));
    return;
  }
  rest({});
}

}  // namespace mfa

#include "bus/manager.hpp"

#include <cerrno>
#include <cstring>
#include <utility>

#include "common/dbus_names.hpp"
#include "core/log.hpp"
#include "fleet/coordinator.hpp"

namespace mfa {

void SecurityEventEmitter::security_event(const std::string& user, const std::string& kind,
                                          const StringMap& details) {
  sd_bus_message* raw = nullptr;
  int r =
      sd_bus_message_new_signal(bus_, &raw, dbus::kObjectPath, dbus::kInterface, "SecurityEvent");
  BusMessagePtr m(raw);
  if (r >= 0)
    r = sd_bus_message_append(m.get(), "ss", user.c_str(), kind.c_str());
  if (r >= 0)
    r = sd_bus_message_open_container(m.get(), 'a', "{ss}");
  for (auto it = details.begin(); r >= 0 && it != details.end(); ++it) {
    r = sd_bus_message_append(m.get(), "{ss}", it->first.c_str(), it->second.c_str());
  }
  if (r >= 0)
    r = sd_bus_message_close_container(m.get());
  if (r >= 0)
    r = sd_bus_send(bus_, m.get(), nullptr);
  if (r < 0)
    MFA_LOG_WARNING("cannot emit SecurityEvent %s: %s", kind.c_str(), strerror(-r));
}

// ---------------------------------------------------------------------------------------------
// The way from a handler to the answer.

int ManagerBus::refuse_unless_root(sd_bus_message* m) {
  Caller caller;
  int r = 0;
  if (auto denied = callers_.identify(m, &caller); denied) {
    r = sd_bus_reply_method_errorf(m, denied->name, "%s", denied->message.c_str());
  } else if (caller.uid != 0) {
    r = sd_bus_reply_method_errorf(m, SD_BUS_ERROR_ACCESS_DENIED,
                                   "Access denied: %s is for root (the PAM module) only.",
                                   sd_bus_message_get_member(m));
  } else {
    return 0;
  }
  return r < 0 ? r : 1;  // refused, whether or not the error reply could be sent
}

CallPtr ManagerBus::open_call(sd_bus_message* m, const std::optional<Error>& bad) {
  Caller caller;
  if (auto denied = callers_.identify(m, &caller); denied) {
    (void)sd_bus_reply_method_errorf(m, denied->name, "%s", denied->message.c_str());
    return nullptr;
  }
  if (stopping_) {
    (void)sd_bus_reply_method_errorf(m, SD_BUS_ERROR_NO_SERVER, "mfad is shutting down.");
    return nullptr;
  }
  auto call = std::make_shared<PendingCall>(calls_, m, std::move(caller));
  if (bad) {
    answer_error(call, *bad);
    return nullptr;
  }
  return call;
}

int ManagerBus::run(const CallPtr& call, std::optional<FleetScope> scope, Decide decide) {
  proceed(call, std::move(scope), std::move(decide));
  return 1;
}

void ManagerBus::proceed(const CallPtr& call, std::optional<FleetScope> scope, Decide decide) {
  if (scope) {
    fleet_proceed(call, std::move(*scope), std::move(decide));
    return;
  }
  if (stopping_) {
    call->send_error(SD_BUS_ERROR_NO_SERVER, "mfad is shutting down.");
    return;
  }
  Outcome outcome = decide(*call);
  decided(call, std::move(outcome),
          [this, decide](const CallPtr& again) { proceed(again, std::nullopt, decide); });
}

void ManagerBus::decided(const CallPtr& call, Outcome outcome, Restart restart) {
  if (ask_polkit(call, outcome, std::move(restart)))
    return;
  answer(call, std::move(outcome));
}

// A decision refused for want of the admin tier while polkit was not asked is not the answer:
// polkit is asked (once), and the call takes its way to a decision again with polkit's answer.
// The refusal that answer may bring is audited by the Authenticator as any other.
bool ManagerBus::ask_polkit(const CallPtr& call, const Outcome& outcome, Restart restart) {
  if (!call->admin_wanted() || outcome.success())
    return false;
  int r = polkit_->check(
      call->message(),
      call->then<bool>(CallWait::kPolkit, [this, restart](const CallPtr& again, bool granted) {
        again->admin_answered(granted);
        if (stopping_) {
          again->send_error(SD_BUS_ERROR_NO_SERVER, "mfad is shutting down.");
          return;
        }
        restart(again);
      }));
  if (r < 0)
    call->send_errno(r);
  return true;
}

void ManagerBus::answer(const CallPtr& call, Outcome outcome) {
  arm_denial_timer();
  if (outcome.failed < 0) {
    call->send_errno(outcome.failed);
    return;
  }
  if (outcome.text) {
    send_text(call, std::move(*outcome.text));
    return;
  }
  if (outcome.unsynced) {
    // No decision a crash could undo (a new challenge, its end): its only write, the audit row,
    // is in the journal already and commits with the next batch. Waiting for that fsync would
    // put a disk flush in front of every login's first round trip.
    after_write();
    if (outcome.late && outcome.reply && call->hand_over_answer()) {
      (void)held_refusals_.hold(std::move(outcome.reply), now_usec());
      return;
    }
    call->send(outcome.reply.get());
    return;
  }
  if (store_.in_transaction()) {
    answer_durable(call, std::move(outcome.reply), outcome.durability());
    return;
  }
  call->send(outcome.reply.get());
}

void ManagerBus::answer_error(const CallPtr& call, const Error& error) {
  answer(call, error_reply(call->message(), error));
}

void ManagerBus::answer_durable(const CallPtr& call, BusMessagePtr reply, Durability durability) {
  SharedMessage held = share_message(std::move(reply));
  commit_->queue(call->then<const Status&>(
      CallWait::kDisk, [held, durability](const CallPtr& done, const Status& status) {
        if (status.ok() || durability == Durability::kNone) {
          done->send(held.get());
          return;
        }
        // No success leaves before its writes are on disk. Nor does a wrong code's verdict: sent
        // while its failure was not counted, it would be an oracle for a guesser who fills the
        // disk, free of the lockout.
        if (durability == Durability::kAttempt) {
          done->send_error(dbus::kErrorStorageFailure,
                           "The attempt could not be recorded (database error); try again.");
          return;
        }
        done->send_error(
            dbus::kErrorStorageFailure,
            "The change could not be saved (database error); nothing was changed. Try again.");
      }));
}

void ManagerBus::after_write() {
  if (store_.in_transaction())
    commit_->schedule();
}

void ManagerBus::after_step() {
  after_write();
  // The last call waiting on Redis during shutdown: the drain timer, due at once, finishes it.
  if (stopping_ && drain_timer_ && calls_.waiting(CallWait::kRedis) == 0)
    (void)sd_event_source_set_time(drain_timer_.get(), 1);
}

uint64_t ManagerBus::now_usec() const {
  uint64_t now = 0;
  (void)sd_event_now(event_, CLOCK_MONOTONIC, &now);
  return now;
}

// ---------------------------------------------------------------------------------------------
// Set-up and shutdown.

ManagerBus::ManagerBus(sd_event* event, sd_bus* bus, Authenticator& authenticator, Store& store,
                       const Config& config)
    : calls_([this] { after_step(); }),
      event_(event),
      bus_(bus),
      auth_(authenticator),
      store_(store),
      config_(config),
      begin_reads_(kFleetStateReuseUsec) {}

Result<std::unique_ptr<ManagerBus>> ManagerBus::create(sd_event* event, sd_bus* bus,
                                                       Authenticator& authenticator, Store& store,
                                                       const Config& config) {
  std::unique_ptr<ManagerBus> mb(new ManagerBus(event, bus, authenticator, store, config));
  MFA_TRY(commit, GroupCommit::create(event, store));
  mb->commit_ = std::move(commit);
  MFA_TRY(sms, SmsSender::create(event, config));
  mb->sms_ = std::move(sms);
  mb->polkit_ = std::make_unique<PolkitAuthority>(event, bus);

  sd_bus_slot* slot = nullptr;
  int r =
      sd_bus_add_object_vtable(bus, &slot, dbus::kObjectPath, dbus::kInterface, vtable(), mb.get());
  if (r < 0) {
    return make_error(Errc::kInternal,
                      std::string("cannot register the D-Bus object: ") + strerror(-r));
  }
  mb->object_slot_.reset(slot);

  // A peer that leaves is forgotten by the caller cache (its challenges belong to its process
  // and outlive the connection: core/challenges.hpp). Departures only (new owner ''): a login
  // process connects and leaves once per call, and its arrival is of no interest.
  slot = nullptr;
  r = sd_bus_add_match_async(bus, &slot,
                             "type='signal',sender='org.freedesktop.DBus',"
                             "path='/org/freedesktop/DBus',interface='org.freedesktop.DBus',"
                             "member='NameOwnerChanged',arg2=''",
                             &ManagerBus::on_name_owner_changed, nullptr, mb.get());
  if (r < 0) {
    return make_error(Errc::kInternal, std::string("cannot watch bus peers: ") + strerror(-r));
  }
  mb->match_slot_.reset(slot);

  sd_event_source* timer = nullptr;
  r = sd_event_add_time(event, &timer, CLOCK_MONOTONIC, UINT64_MAX, 100 * 1000,
                        &ManagerBus::on_expiry_timer, mb.get());
  if (r < 0) {
    return make_error(Errc::kInternal, std::string("cannot add the expiry timer: ") + strerror(-r));
  }
  mb->expiry_timer_.reset(timer);
  (void)sd_event_source_set_enabled(timer, SD_EVENT_OFF);
  (void)sd_event_source_set_description(timer, "challenge-expiry");
  MFA_CHECK(mb->add_admission_sources());
  return mb;
}

ManagerBus::~ManagerBus() = default;

void ManagerBus::stop(std::function<void()> stopped) {
  if (stopping_)
    return;
  stopping_ = true;
  calls_.stop();
  on_stopped_ = std::move(stopped);
  // Sends in flight end now (failed): their calls are answered, after the commit below.
  sms_->cancel_all();
  answer_parked(SD_BUS_ERROR_NO_SERVER, "mfad is shutting down.");
  held_refusals_.release(now_usec(), true);
  answer_lookups(SD_BUS_ERROR_NO_SERVER, "mfad is shutting down.");
  calls_.answer_waiting(CallWait::kPolkit, SD_BUS_ERROR_NO_SERVER, "mfad is shutting down.");
  polkit_->abandon_all();
  const size_t on_redis = calls_.waiting(CallWait::kRedis);
  if (fleet_ == nullptr || on_redis == 0) {
    finish_stop();
    return;
  }
  // Calls waiting on Redis get its answer if it comes within the timeout, then NoServer.
  fleet_->begin_shutdown();
  sd_event_source* timer = nullptr;
  int r = sd_event_add_time(event_, &timer, CLOCK_MONOTONIC,
                            now_usec() + static_cast<uint64_t>(config_.redis_timeout_ms) * 1000,
                            1000, &ManagerBus::on_drain_timer, this);
  if (r < 0) {
    MFA_LOG_ERROR("cannot arm the shutdown timer: %s", strerror(-r));
    (void)on_drain_timer(nullptr, 0, this);
    return;
  }
  drain_timer_.reset(timer);
  (void)sd_event_source_set_description(timer, "shutdown-drain");
  MFA_LOG_INFO("waiting up to %d ms for %zu calls waiting on Redis", config_.redis_timeout_ms,
               on_redis);
}

int ManagerBus::on_drain_timer(sd_event_source* /*s*/, uint64_t /*usec*/, void* userdata) {
  auto* self = static_cast<ManagerBus*>(userdata);
  try {
    // What Redis has not answered by now completes with an error: those calls get NoServer.
    if (self->fleet_ != nullptr)
      self->fleet_->close_client("mfad is shutting down");
    self->calls_.answer_waiting(CallWait::kRedis, SD_BUS_ERROR_NO_SERVER, "mfad is shutting down.");
  } catch (...) {
    MFA_LOG_ERROR("answering calls at shutdown failed");
  }
  self->finish_stop();
  return 0;
}

void ManagerBus::finish_stop() {
  drain_timer_.reset();
  denial_timer_.reset();
  if (Status st = auth_.flush_denials(true); !st.ok())
    MFA_LOG_ERROR("cannot write the counts of repeated denials: %s", st.error().message.c_str());
  after_write();
  commit_->finish();
  MFA_LOG_INFO("group commit: %llu commits and %llu disk syncs for %llu replies",
               static_cast<unsigned long long>(commit_->commits()),
               static_cast<unsigned long long>(commit_->syncs()),
               static_cast<unsigned long long>(commit_->answered()));
  auto stopped = std::move(on_stopped_);
  on_stopped_ = nullptr;
  if (stopped)
    stopped();
}

// at_usec == 0: "a challenge was just created": fire no later than its expiry.
void ManagerBus::arm_expiry_timer(uint64_t at_usec) {
  sd_event_source* timer = expiry_timer_.get();
  if (at_usec == 0) {
    uint64_t now = 0;
    if (sd_event_now(event_, CLOCK_MONOTONIC, &now) < 0)
      return;
    at_usec = now + static_cast<uint64_t>(config_.challenge_timeout_seconds + 1) * 1000000;
    int enabled = SD_EVENT_OFF;
    uint64_t current = 0;
    if (sd_event_source_get_enabled(timer, &enabled) >= 0 && enabled != SD_EVENT_OFF &&
        sd_event_source_get_time(timer, &current) >= 0 && current <= at_usec) {
      return;  // already due earlier
    }
  }
  int r = sd_event_source_set_time(timer, at_usec);
  if (r >= 0)
    r = sd_event_source_set_enabled(timer, SD_EVENT_ONESHOT);
  if (r < 0)
    MFA_LOG_WARNING("cannot arm the challenge expiry timer: %s", strerror(-r));
}

int ManagerBus::on_expiry_timer(sd_event_source* /*s*/, uint64_t /*usec*/, void* userdata) {
  auto* self = static_cast<ManagerBus*>(userdata);
  try {
    uint64_t next = self->auth_.expire_challenges();
    if (next != 0)
      self->arm_expiry_timer(next);
    self->after_write();
  } catch (...) {
    MFA_LOG_ERROR("challenge expiry failed");
  }
  return 0;
}

int ManagerBus::on_name_owner_changed(sd_bus_message* m, void* userdata,
                                      sd_bus_error* /*ret_error*/) {
  auto* self = static_cast<ManagerBus*>(userdata);
  const char* name = nullptr;
  const char* old_owner = nullptr;
  const char* new_owner = nullptr;
  if (sd_bus_message_read(m, "sss", &name, &old_owner, &new_owner) < 0)
    return 0;
  if (name[0] != ':' || new_owner[0] != '\0')
    return 0;
  try {
    self->callers_.forget(name);
  } catch (...) {
    MFA_LOG_ERROR("forgetting a departed peer failed");
  }
  return 0;
}

}  // namespace mfa

// The open methods' gate (docs/security-model.md, "Floods"). A caller that is not root may flood
// the open methods (GetUser, the enrollment calls): each call costs NSS lookups, a read of the
// store, perhaps a question to polkit, and all of them run on the one event loop that also serves
// the PAM module. So: root's calls run at once; another caller's call is refused beyond its rate
// limit (bus/call_throttle.hpp), and otherwise parked and run from a defer source of a lower
// priority than the bus's I/O (and than the group commit), one per loop iteration: whatever the
// bus holds (root's calls among it) is read first, and a parked call never delays a commit that a
// root reply waits for. The queue is bounded; when it is full the call is refused at once.
#include <cerrno>
#include <cstring>
#include <string>
#include <utility>

#include "bus/manager.hpp"
#include "common/dbus_names.hpp"
#include "core/log.hpp"

namespace mfa {

namespace {

// Below the group commit (SD_EVENT_PRIORITY_IDLE), which is below the bus.
constexpr int64_t kParkedPriority = SD_EVENT_PRIORITY_IDLE + 1;
// While repeated denials are counted, how often the counts whose window ended are written.
constexpr uint64_t kDenialFlushUsec = 5 * 1000000ULL;

}  // namespace

Status ManagerBus::add_admission_sources() {
  sd_event_source* source = nullptr;
  int r = sd_event_add_defer(event_, &source, &ManagerBus::on_parked, this);
  if (r < 0)
    return make_error(Errc::kInternal, std::string("cannot add the call queue: ") + strerror(-r));
  parked_source_.reset(source);
  (void)sd_event_source_set_priority(source, kParkedPriority);
  (void)sd_event_source_set_enabled(source, SD_EVENT_OFF);
  (void)sd_event_source_set_description(source, "parked-calls");

  source = nullptr;
  r = sd_event_add_time(event_, &source, CLOCK_MONOTONIC, UINT64_MAX, 1000000,
                        &ManagerBus::on_denial_timer, this);
  if (r < 0)
    return make_error(Errc::kInternal, std::string("cannot add the denial timer: ") + strerror(-r));
  denial_timer_.reset(source);
  (void)sd_event_source_set_enabled(source, SD_EVENT_OFF);
  (void)sd_event_source_set_description(source, "denial-counts");
  return held_refusals_.attach(event_);
}

void ManagerBus::arm_denial_timer() {
  sd_event_source* timer = denial_timer_.get();
  int enabled = SD_EVENT_OFF;
  if (timer == nullptr || !auth_.counting_denials() ||
      sd_event_source_get_enabled(timer, &enabled) < 0 || enabled != SD_EVENT_OFF)
    return;
  int r = sd_event_source_set_time(timer, now_usec() + kDenialFlushUsec);
  if (r >= 0)
    r = sd_event_source_set_enabled(timer, SD_EVENT_ONESHOT);
  if (r < 0)
    MFA_LOG_WARNING("cannot arm the timer of repeated denials: %s", strerror(-r));
}

int ManagerBus::admit_open_call(sd_bus_message* m, Handler handler) {
  if (stopping_)
    return 0;  // the handler answers that mfad is shutting down
  Caller caller;
  if (auto denied = callers_.identify(m, &caller); denied) {
    int r = sd_bus_reply_method_errorf(m, denied->name, "%s", denied->message.c_str());
    return r < 0 ? r : 1;
  }
  if (caller.uid == 0)
    return 0;
  if (!throttle_.admit(caller.uid, now_usec())) {
    const std::string message = "Too many calls: mfad takes at most " +
                                std::to_string(CallThrottle::kPerSecond) + " calls a second (" +
                                std::to_string(CallThrottle::kBurst) +
                                " at once) from one user. Try again in a moment.";
    return refuse_limited(m, caller, message.c_str());
  }
  if (parked_.size() >= kMaxParkedCalls) {
    return refuse_limited(m, caller, "mfad is too busy to take this call now. Try again later.");
  }
  parked_.push_back(ParkedCall{BusMessagePtr(sd_bus_message_ref(m)), handler});
  (void)sd_event_source_set_enabled(parked_source_.get(), SD_EVENT_ON);
  return 1;
}

int ManagerBus::refuse_limited(sd_bus_message* m, const Caller& caller, const char* message) {
  Status audited = auth_.call_limited(caller, sd_bus_message_get_member(m));
  after_write();
  arm_denial_timer();
  if (!audited.ok()) {
    // Fail closed: the refusal stands, whatever became of its row.
    MFA_LOG_ERROR("cannot audit a refused call: %s", audited.error().message.c_str());
  }
  sd_bus_message* raw = nullptr;
  int r = sd_bus_message_new_method_errorf(m, &raw, dbus::kErrorLimitExceeded, "%s", message);
  if (r < 0)
    return r;
  // Sent late (bus/held_replies.hpp): a flooder waits for its refusals, not the bus for it.
  r = held_refusals_.hold(BusMessagePtr(raw), now_usec());
  return r < 0 ? r : 1;
}

int ManagerBus::on_parked(sd_event_source* /*s*/, void* userdata) {
  auto* self = static_cast<ManagerBus*>(userdata);
  if (self->parked_.empty()) {
    (void)sd_event_source_set_enabled(self->parked_source_.get(), SD_EVENT_OFF);
    return 0;
  }
  ParkedCall call = std::move(self->parked_.front());
  self->parked_.pop_front();
  if (self->parked_.empty())
    (void)sd_event_source_set_enabled(self->parked_source_.get(), SD_EVENT_OFF);

  sd_bus_message* m = call.message.get();
  sd_bus_error error = SD_BUS_ERROR_NULL;
  int r = self->handle(m, call.handler, &error);
  // What sd-bus does with a handler's error (bus_maybe_reply_error).
  if (sd_bus_error_is_set(&error))
    (void)sd_bus_reply_method_error(m, &error);
  else if (r < 0)
    (void)sd_bus_reply_method_errno(m, r, nullptr);
  sd_bus_error_free(&error);
  return 0;
}

void ManagerBus::answer_parked(const char* name, const char* message) {
  while (!parked_.empty()) {
    ParkedCall call = std::move(parked_.front());
    parked_.pop_front();
    (void)sd_bus_reply_method_errorf(call.message.get(), name, "%s", message);
  }
  if (parked_source_)
    (void)sd_event_source_set_enabled(parked_source_.get(), SD_EVENT_OFF);
}

int ManagerBus::on_denial_timer(sd_event_source* /*s*/, uint64_t /*usec*/, void* userdata) {
  auto* self = static_cast<ManagerBus*>(userdata);
  try {
    Status st = self->auth_.flush_denials(false);
    if (!st.ok())
      MFA_LOG_ERROR("cannot write the counts of repeated denials: %s", st.error().message.c_str());
    self->after_write();
    self->arm_denial_timer();  // windows still open: again later
  } catch (...) {
    MFA_LOG_ERROR("writing the counts of repeated denials failed");
  }
  return 0;
}

}  // namespace mfa

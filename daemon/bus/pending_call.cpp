#include "bus/pending_call.hpp"

#include <cerrno>
#include <cstring>
#include <exception>

#include "common/dbus_names.hpp"
#include "core/log.hpp"

namespace mfa {

size_t CallRegistry::waiting(CallWait what) const {
  size_t n = 0;
  for (const PendingCall* call : calls_)
    n += !call->answered_ && call->wait_ == what;
  return n;
}

void CallRegistry::answer_waiting(CallWait what, const char* name, const char* message) {
  for (PendingCall* call : calls_) {
    if (!call->answered_ && call->wait_ == what)
      call->send_error(name, message);
  }
}

PendingCall::PendingCall(CallRegistry& registry, sd_bus_message* message, Caller caller)
    : registry_(registry),
      message_(sd_bus_message_ref(message)),
      polkit_(std::make_shared<PolkitVerdict>()),
      caller_(std::move(caller)) {
  caller_.admin_authority = polkit_;
  registry_.calls_.insert(this);
}

PendingCall::~PendingCall() {
  registry_.calls_.erase(this);
  if (!answered_ && !registry_.stopping_)
    MFA_LOG_WARNING("%s: a call was dropped without an answer", member());
}

const char* PendingCall::member() const {
  const char* member = sd_bus_message_get_member(message_.get());
  return member != nullptr ? member : "a call";
}

void PendingCall::send(sd_bus_message* reply) {
  if (std::exchange(answered_, true))
    return;
  int r = sd_bus_send(nullptr, reply, nullptr);
  // The caller may have gone away meanwhile; nothing else to do.
  if (r < 0 && r != -ENOTCONN && r != -ECONNRESET)
    MFA_LOG_WARNING("cannot send the reply to %s: %s", member(), strerror(-r));
}

void PendingCall::send_error(const char* name, const char* message) {
  if (std::exchange(answered_, true))
    return;
  int r = sd_bus_reply_method_errorf(message_.get(), name, "%s", message);
  if (r < 0 && r != -ENOTCONN && r != -ECONNRESET)
    MFA_LOG_WARNING("cannot send the error reply to %s: %s", member(), strerror(-r));
}

void PendingCall::send_errno(int error) {
  if (std::exchange(answered_, true))
    return;
  (void)sd_bus_reply_method_errno(message_.get(), error, nullptr);
}

// Runs from an asynchronous answer, often inside a C callback (sd-event, sd-bus, hiredis, curl):
// nothing may be thrown through it.
void PendingCall::resume(const std::function<void()>& step) {
  wait_ = CallWait::kNothing;
  if (!answered_) {
    try {
      step();
    } catch (const std::exception& e) {
      MFA_LOG_ERROR("%s failed: %s", member(), e.what());
      send_error(dbus::kErrorInternal, "Internal error in mfad.");
    } catch (...) {
      MFA_LOG_ERROR("%s failed", member());
      send_error(dbus::kErrorInternal, "Internal error in mfad.");
    }
  }
  try {
    if (registry_.after_step_)
      registry_.after_step_();
  } catch (...) {
    MFA_LOG_ERROR("after %s: scheduling the commit failed", member());
  }
}

}  // namespace mfa

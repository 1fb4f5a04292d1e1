// One method call of org.mfad1.Manager from its handler to its reply, and mfad's one way of
// resuming a call after an asynchronous answer: polkit's, Redis's, the SMS provider's, the disk's.
//
// Every API that answers later is handed a callback made by then(). It keeps the call (and the
// message it owns) alive until the answer, then runs the next step of the call from the event
// loop: not at all when the call was answered meanwhile (the shutdown answers what waits too
// long), with any exception turned into org.mfad1.Error.Internal, and followed by the registry's
// after-step hook (the bus layer schedules the commit of what the step wrote). What the steps
// learn (polkit's answer, whether Redis was read) is recorded in the call itself, never in the
// bus object, so that a step does the same whatever call ran before it.
//
// systemd resumes its polkit checks by re-running the handler, with the answer recorded in a
// registry keyed by the message (src/shared/bus-polkit.c, sd_bus_enqueue_for_read). mfad continues
// explicitly instead: Redis, the provider and the disk answer after the decision, where re-running
// the handler cannot resume, and one pattern serves all four.
#pragma once

#include <systemd/sd-bus.h>

#include <functional>
#include <memory>
#include <set>
#include <utility>

#include "bus/polkit.hpp"
#include "common/handles.hpp"
#include "core/authenticator.hpp"

namespace mfa {

// What a call waits for, if anything: the shutdown answers each kind its own way.
enum class CallWait { kNothing, kPolkit, kRedis, kProvider, kDisk };

class PendingCall;
using CallPtr = std::shared_ptr<PendingCall>;

// The calls not answered yet.
class CallRegistry {
 public:
  // after_step runs after every step that resumed a call.
  explicit CallRegistry(std::function<void()> after_step) : after_step_(std::move(after_step)) {}
  CallRegistry(const CallRegistry&) = delete;
  CallRegistry& operator=(const CallRegistry&) = delete;

  // Calls not answered yet that wait for what.
  size_t waiting(CallWait what) const;
  // Answers each of them with the error name and message; their step never runs.
  void answer_waiting(CallWait what, const char* name, const char* message);
  // Shutdown: a call dropped unanswered from now on is no surprise.
  void stop() { stopping_ = true; }
  size_t size() const { return calls_.size(); }

 private:
  friend class PendingCall;
  std::function<void()> after_step_;
  std::set<PendingCall*> calls_;
  bool stopping_ = false;
};

class PendingCall : public std::enable_shared_from_this<PendingCall> {
 public:
  // Takes a reference of its own on message; caller's admin authority becomes this call's
  // (polkit, asked at most once).
  PendingCall(CallRegistry& registry, sd_bus_message* message, Caller caller);
  ~PendingCall();
  PendingCall(const PendingCall&) = delete;
  PendingCall& operator=(const PendingCall&) = delete;

  sd_bus_message* message() const { return message_.get(); }
  const char* member() const;
  const Caller& caller() const { return caller_; }
  // OpenSession and CheckFreshSession: the sender's kernel audit ids (read_audit_ids).
  void set_audit_ids(uint32_t session, uint32_t login_uid) {
    caller_.audit_session = session;
    caller_.audit_login_uid = login_uid;
  }
  bool answered() const { return answered_; }

  // The admin tier: the last decision was refused for want of it while polkit was not asked.
  bool admin_wanted() const { return polkit_->wanted_now(); }
  // polkit answered: decisions from now on go by its answer.
  void admin_answered(bool granted) { polkit_->answered(granted); }

  // Fleet mode: the decision that runs next reads the user's state just read from Redis.
  bool read_shared_state() const { return read_shared_state_; }
  void set_read_shared_state(bool read) { read_shared_state_ = read; }

  // The call's one answer: reply (a method return or an error built for this call), an error, or
  // an errno (sd-bus names it). Whatever comes after the first is dropped.
  void send(sd_bus_message* reply);
  void send_error(const char* name, const char* message);
  void send_errno(int error);
  // The call's one answer is sent by someone else (a refusal sent late, bus/held_replies.hpp):
  // false when it was answered already.
  bool hand_over_answer() { return !std::exchange(answered_, true); }

  // The callback an asynchronous API calls with its answer: step(call, answer) runs then (see
  // the top of this file). The call waits for what until then.
  template <typename Answer, typename Step>
  std::function<void(Answer)> then(CallWait what, Step step) {
    wait_ = what;
    return [self = shared_from_this(), step = std::move(step)](Answer answer) mutable {
      self->resume([&] { step(self, std::forward<Answer>(answer)); });
    };
  }

 private:
  void resume(const std::function<void()>& step);

  CallRegistry& registry_;
  BusMessagePtr message_;
  std::shared_ptr<PolkitVerdict> polkit_;
  Caller caller_;
  CallWait wait_ = CallWait::kNothing;
  bool answered_ = false;
  bool read_shared_state_ = false;

  friend class CallRegistry;
};

}  // namespace mfa

// polkit's org.mfad1.manage (systemd/org.mfad1.policy): the third way into the admin tier, after
// root and AdminGroup (docs/security-model.md). One asynchronous CheckAuthorization per call,
// subject the caller's unique bus name, as systemd's bus_verify_polkit_async does; the event loop
// serves everyone else meanwhile. Anything but polkit's yes within the timeout is a no (fail
// closed): polkit absent, frozen, erroring, or too many questions pending.
#pragma once

#include <systemd/sd-bus.h>
#include <systemd/sd-event.h>

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>

#include "common/handles.hpp"
#include "core/authenticator.hpp"

namespace mfa {

inline constexpr const char* kPolkitActionManage = "org.mfad1.manage";

// polkit's answer for one call: its Caller's admin authority (core/authenticator.hpp). Not asked
// until a decision of the call is refused for want of the admin tier (wanted_now()); the bus
// layer then asks, records the answer and decides the call again.
class PolkitVerdict final : public AdminAuthority {
 public:
  Answer answer() const override { return answer_; }
  const char* name() const override { return "polkit"; }
  void wanted() override { wanted_ = true; }
  bool wanted_now() const { return wanted_; }
  void answered(bool granted) {
    answer_ = granted ? Answer::kYes : Answer::kNo;
    wanted_ = false;
  }

 private:
  Answer answer_ = Answer::kNotAsked;
  bool wanted_ = false;
};

class PolkitAuthority {
 public:
  // polkit answers in milliseconds; a caller that allows interactive authorization may be asked
  // for a password by its polkit agent, which takes a person: still inside sd-bus's default
  // 25 s call timeout, so that the client hears mfad's answer rather than its own timeout.
  static constexpr uint64_t kTimeoutUsec = 5ULL * 1000 * 1000;
  static constexpr uint64_t kInteractiveTimeoutUsec = 20ULL * 1000 * 1000;
  // Questions waiting for polkit at once; beyond that the answer is no without asking.
  static constexpr size_t kMaxPending = 256;

  PolkitAuthority(sd_event* event, sd_bus* bus);
  ~PolkitAuthority();
  PolkitAuthority(const PolkitAuthority&) = delete;
  PolkitAuthority& operator=(const PolkitAuthority&) = delete;

  // Asks whether call's sender may do org.mfad1.manage, interactively when call allows it.
  // done(granted) runs later from the event loop, exactly once, unless abandon_all() came first.
  // A negative errno when not even a no could be scheduled (done never runs).
  int check(sd_bus_message* call, std::function<void(bool granted)> done);
  // Shutdown: every question is dropped; no done runs (the owner answers its calls).
  void abandon_all();
  size_t pending() const { return pending_.size(); }

 private:
  struct Pending;
  static int on_reply(sd_bus_message* reply, void* userdata, sd_bus_error* ret_error);
  static int on_refused_now(sd_event_source* s, void* userdata);
  int start(Pending& p);
  void complete(uint64_t id, bool granted);
  // One line when polkit stops answering (or answers with an error), not one per call.
  void note_failure(const char* error_name);

  sd_event* event_;
  sd_bus* bus_;
  std::map<uint64_t, std::unique_ptr<Pending>> pending_;
  uint64_t next_id_ = 1;
  std::string last_failure_;  // the error logged last; "" once polkit answered again
};

}  // namespace mfa

// Refusals of a flood answered late (docs/security-model.md, "Floods"): LimitExceeded for a
// caller over its rate limit, RateLimited for a login on a locked account. Both are decided (and
// audited) when the call comes and cost mfad little, but a flooder that keeps N calls in flight
// gets each refusal back in one round trip and sends the next: the cheaper the refusal, the
// faster the flood, and dbus-daemon, single-threaded, routes every call and refusal in front of
// the real logins (86 % of its CPU during an unprivileged GetUser flood in
// tests/bench/pam/bench_floods.py). Holding each refusal kDelayUsec caps such a caller at
// N / kDelayUsec calls a second whatever mfad's speed. The refusal itself is unchanged; only its
// sending waits. The table is bounded: beyond kMaxHeld a refusal goes at once, as before.
#pragma once

#include <systemd/sd-event.h>

#include <cstdint>
#include <deque>

#include "common/handles.hpp"
#include "common/result.hpp"

namespace mfa {

class HeldReplies {
 public:
  static constexpr uint64_t kDelayUsec = 250 * 1000;
  static constexpr size_t kMaxHeld = 1024;

  HeldReplies() = default;
  HeldReplies(const HeldReplies&) = delete;
  HeldReplies& operator=(const HeldReplies&) = delete;

  // The timer that sends them, on event.
  Status attach(sd_event* event);
  // Sends reply (an error reply built for its call) kDelayUsec after now_usec (CLOCK_MONOTONIC),
  // or at once when kMaxHeld are held already or no timer is attached: > 0 held, 0 sent now, a
  // negative errno when it could not be sent.
  int hold(BusMessagePtr reply, uint64_t now_usec);
  // Sends those due by now_usec (all: every one, at shutdown), oldest first.
  void release(uint64_t now_usec, bool all);
  size_t held() const { return held_.size(); }

 private:
  struct Held {
    BusMessagePtr reply;
    uint64_t due_usec;
  };
  static int on_timer(sd_event_source* s, uint64_t usec, void* userdata);
  void arm();

  std::deque<Held> held_;  // due in order: every refusal waits the same delay
  EventSourcePtr timer_;
};

}  // namespace mfa

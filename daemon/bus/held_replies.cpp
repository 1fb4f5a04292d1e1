#include "bus/held_replies.hpp"

#include <cerrno>
#include <cstring>
#include <string>
#include <utility>

#include "core/log.hpp"

namespace mfa {

namespace {

int send_reply(sd_bus_message* reply) {
  int r = sd_bus_send(nullptr, reply, nullptr);
  // The caller may have gone away meanwhile; nothing else to do.
  if (r < 0 && r != -ENOTCONN && r != -ECONNRESET)
    MFA_LOG_WARNING("cannot send a refusal: %s", strerror(-r));
  return r < 0 ? r : 0;
}

}  // namespace

Status HeldReplies::attach(sd_event* event) {
  sd_event_source* source = nullptr;
  int r = sd_event_add_time(event, &source, CLOCK_MONOTONIC, UINT64_MAX, 10 * 1000,
                            &HeldReplies::on_timer, this);
  if (r < 0)
    return make_error(Errc::kInternal,
                      std::string("cannot add the timer of held refusals: ") + strerror(-r));
  timer_.reset(source);
  (void)sd_event_source_set_enabled(source, SD_EVENT_OFF);
  (void)sd_event_source_set_description(source, "held-refusals");
  return {};
}

int HeldReplies::hold(BusMessagePtr reply, uint64_t now_usec) {
  if (!timer_ || held_.size() >= kMaxHeld)
    return send_reply(reply.get());
  held_.push_back(Held{std::move(reply), now_usec + kDelayUsec});
  arm();
  return 1;
}

void HeldReplies::release(uint64_t now_usec, bool all) {
  while (!held_.empty() && (all || held_.front().due_usec <= now_usec)) {
    Held h = std::move(held_.front());
    held_.pop_front();
    (void)send_reply(h.reply.get());
  }
  arm();
}

void HeldReplies::arm() {
  if (!timer_)
    return;
  if (held_.empty()) {
    (void)sd_event_source_set_enabled(timer_.get(), SD_EVENT_OFF);
    return;
  }
  int enabled = SD_EVENT_OFF;
  if (sd_event_source_get_enabled(timer_.get(), &enabled) >= 0 && enabled != SD_EVENT_OFF)
    return;  // armed for an earlier one, which is due first
  int r = sd_event_source_set_time(timer_.get(), held_.front().due_usec);
  if (r >= 0)
    r = sd_event_source_set_enabled(timer_.get(), SD_EVENT_ONESHOT);
  if (r < 0) {
    MFA_LOG_WARNING("cannot arm the timer of held refusals: %s", strerror(-r));
    release(0, true);  // never left unanswered
  }
}

int HeldReplies::on_timer(sd_event_source* s, uint64_t usec, void* userdata) {
  auto* self = static_cast<HeldReplies*>(userdata);
  try {
    // The timer may fire late (its accuracy): whatever is due by now goes.
    uint64_t now = usec;
    (void)sd_event_now(sd_event_source_get_event(s), CLOCK_MONOTONIC, &now);
    self->release(now, false);
  } catch (...) {
    MFA_LOG_ERROR("sending held refusals failed");
  }
  return 0;
}

}  // namespace mfa

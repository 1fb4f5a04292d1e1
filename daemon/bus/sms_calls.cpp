// SendSmsCode, SendStepUpCode and BeginSmsEnrollment decide a text; the call is answered once the
// provider took it (the masked phone) or failed (SmsUnavailable), while the loop goes on serving
// every other call. In fleet mode the fleet's send limits say yes, and the code is stored
// fleet-wide, first.
#include <memory>
#include <string>
#include <utility>

#include "bus/manager.hpp"
#include "core/rate_limiter.hpp"
#include "core/sms_delivery.hpp"
#include "fleet/sms.hpp"

namespace mfa {

// A change of the user's own account (fleet mode: refused while Redis is away, as a step-up code
// must be good on every host).
int ManagerBus::send_step_up_code(sd_bus_message* m) {
  return user_call(m, FleetCallKind::kChange, [this](PendingCall& c, const std::string& user) {
    auto text = auth_.send_step_up_code(c.caller(), user);
    if (!text.ok())
      return error_reply(c.message(), text.error());
    return Outcome::of_text(std::move(text).value());
  });
}

void ManagerBus::send_text(const CallPtr& call, SmsMessage message) {
  // The code's hash and the counted send are written now; they commit while the text travels.
  after_write();
  auto text = std::make_shared<SmsMessage>(std::move(message));
  if (!fleet_sms_) {
    deliver_text(call, std::move(text));
    return;
  }
  fleet_sms_->gate(
      *text, call->then<FleetSms::GateResult>(
                 CallWait::kRedis, [this, text](const CallPtr& gated, FleetSms::GateResult gate) {
                   switch (gate.gate) {
                     case FleetSms::Gate::kSend:
                     case FleetSms::Gate::kSendDegraded:
                       deliver_text(gated, text);
                       return;
                     case FleetSms::Gate::kRateLimited:
                       answer_error(gated, sms_rate_limited_error(config_));
                       return;
                     case FleetSms::Gate::kLocked:
                       answer_error(gated, make_error(Errc::kRateLimited,
                                                      lockout_message(gate.locked_usec)));
                       return;
                     case FleetSms::Gate::kUnavailable:
                       answer_error(gated, make_error(Errc::kStorage,
                                                      "The fleet's shared store (Redis) is "
                                                      "unreachable; enrollment changes wait until "
                                                      "it is back."));
                       return;
                   }
                 }));
}

void ManagerBus::deliver_text(const CallPtr& call, std::shared_ptr<SmsMessage> text) {
  SecureString to = text->to.clone();
  SecureString body = std::move(text->body);
  sms_->send(
      std::move(to), std::move(body),
      call->then<const SmsDelivery&>(
          CallWait::kProvider, [this, text](const CallPtr& sent, const SmsDelivery& delivery) {
            auto masked = auth_.sms_sent(*text, delivery);
            // Fleet mode: the code of a text that did not go out dies on every host.
            if (fleet_sms_ && delivery.status != SmsDeliveryStatus::kAccepted)
              fleet_sms_->discard(*text);
            answer(sent, reply_to(sent->message(), masked, append_string));
          }));
}

}  // namespace mfa

// What became of one text: the SMS sender (sms_sender.cpp) reports it, the logic
// (Authenticator::sms_sent) audits it and turns it into the caller's answer.
#pragma once

#include <string>

#include "core/audit.hpp"

namespace mfa {

enum class SmsDeliveryStatus {
  kAccepted,        // 2xx: the provider took the message
  kUnavailable,     // 401/403 or no usable configuration: an administrator must act
  kRecipientError,  // other 4xx: this number cannot get texts (Twilio 21211, 21608, 21610...)
  kFailed,          // 5xx, a timeout after sending, retries exhausted, shutdown
};

struct SmsDelivery {
  SmsDeliveryStatus status = SmsDeliveryStatus::kFailed;
  AuditReason reason = AuditReason::kNone;  // for the audit trail: kAccepted, kProviderAuth, ...
  std::string message;  // for a person; never the number, the code or the provider's own text
  long http_status = 0;
  long provider_code = 0;  // Twilio's "code" (20003, 21211, ...), 0 when none
  int tries = 0;
};

}  // namespace mfa

#include "sms/provider_response.hpp"

#include <nlohmann/json.hpp>
#include <string>

namespace mfa {

namespace {

SmsDelivery recipient_error(long http, long code) {
  SmsDelivery d;
  d.status = SmsDeliveryStatus::kRecipientError;
  d.http_status = http;
  d.provider_code = code;
  switch (code) {
    case 21211:
      d.reason = AuditReason::kInvalidNumber;
      d.message = "the provider says this is not a valid phone number (Twilio 21211)";
      break;
    case 21608:
      d.reason = AuditReason::kUnverifiedNumber;
      d.message = "the provider's trial account may only text verified numbers (Twilio 21608)";
      break;
    case 21610:
      d.reason = AuditReason::kOptedOut;
      d.message = "the recipient has opted out of texts by replying STOP (Twilio 21610)";
      break;
    case 21614:
      d.reason = AuditReason::kNotMobile;
      d.message = "the number cannot receive texts (Twilio 21614)";
      break;
    default:
      d.reason = AuditReason::kRecipientError;
      d.message = "the provider refused it (HTTP " + std::to_string(http) +
                  (code ? ", code " + std::to_string(code) : std::string()) + ")";
      break;
  }
  return d;
}

}  // namespace

SmsResponse classify_sms_response(long http, std::string_view body) {
  SmsResponse out;
  SmsDelivery& d = out.delivery;
  d.http_status = http;
  long code = 0;
  const auto json = nlohmann::json::parse(body, nullptr, false);
  if (json.is_object() && json.contains("code") && json["code"].is_number_integer())
    code = json["code"].get<long>();
  d.provider_code = code;
  if (http >= 200 && http < 300) {
    d.status = SmsDeliveryStatus::kAccepted;
    d.reason = AuditReason::kAccepted;
  } else if (http == 429) {
    out.retry = true;
    d.status = SmsDeliveryStatus::kFailed;
    d.reason = AuditReason::kProviderRateLimited;
    d.message = "The SMS provider is busy (HTTP 429); try again in a minute";
  } else if (http == 401 || http == 403) {
    d.status = SmsDeliveryStatus::kUnavailable;
    d.reason = AuditReason::kProviderAuth;
    d.message = "SMS is unavailable: the provider refused mfad's credentials";
  } else if (http >= 400 && http < 500) {
    d = recipient_error(http, code);
  } else {
    d.status = SmsDeliveryStatus::kFailed;
    d.reason = AuditReason::kProviderError;
    d.message = "The SMS provider failed (HTTP " + std::to_string(http) +
                "); the text may have been sent, so it was not sent again";
  }
  return out;
}

}  // namespace mfa

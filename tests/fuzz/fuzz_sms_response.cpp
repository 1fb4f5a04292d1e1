// The SMS provider's answer (daemon/sms/provider_response.hpp): a Twilio JSON body or whatever a
// webhook returns, with any HTTP status, as SmsSender classifies it when a transfer completes.
// Every answer gives a delivery: accepted exactly for a 2xx, retried exactly on a 429, a message
// for a person on every refusal that never carries the provider's own text, a provider code only
// from a JSON object's integer "code".
#include <cstdlib>
#include <string>

#include "sms/provider_response.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  // Two bytes of HTTP status (big-endian: curl reports 0 to 999, 0 for no response), the body.
  if (size < 2)
    return 0;
  const long http = (static_cast<long>(data[0]) << 8) | data[1];
  std::string body(reinterpret_cast<const char*>(data) + 2, size - 2);
  if (body.size() > mfa::kMaxSmsResponse)
    body.resize(mfa::kMaxSmsResponse);

  const mfa::SmsResponse r = mfa::classify_sms_response(http, body);
  const mfa::SmsDelivery& d = r.delivery;
  const bool accepted = d.status == mfa::SmsDeliveryStatus::kAccepted;
  if (accepted != (http >= 200 && http < 300))
    abort();
  if (r.retry != (http == 429))
    abort();
  if (d.http_status != http || d.tries != 0 || d.reason == mfa::AuditReason::kNone)
    abort();
  if (!accepted && d.message.empty())
    abort();
  if (d.provider_code != 0 && body.find('{') == std::string::npos)
    abort();  // a code comes only out of a JSON object
  if ((d.status == mfa::SmsDeliveryStatus::kRecipientError) !=
      (http >= 400 && http < 500 && http != 401 && http != 403 && http != 429))
    abort();
  // The message is mfad's own words: nothing of a JSON body shows in it.
  if (d.message.find_first_of("{}\"") != std::string::npos)
    abort();
  return 0;
}

// The provider's answer to a text that reached it: the HTTP status and the body (Twilio's JSON,
// {"code": 21211, "message": ...} on an error; whatever a webhook returns) make the delivery.
// Pure, so that the fuzz target (tests/fuzz/fuzz_sms_response.cpp) drives the code mfad runs.
#pragma once

#include <cstddef>
#include <string_view>

#include "core/sms_delivery.hpp"

namespace mfa {

// What mfad keeps of a response body (the rest is dropped as it arrives).
inline constexpr size_t kMaxSmsResponse = 64 * 1024;

struct SmsResponse {
  SmsDelivery delivery;  // tries is left 0
  bool retry = false;    // HTTP 429: never processed, safe to send again
};

// body is at most kMaxSmsResponse bytes (longer ones are cut by the caller).
SmsResponse classify_sms_response(long http_status, std::string_view body);

}  // namespace mfa

// SMS codes (docs/sms.md): the send limits (per user, per phone, per host), 6-digit codes from the
// CSPRNG kept only as keyed hashes bound to the user and purpose, their lifetime and attempts,
// and the sealing of phone numbers. The Authenticator authorizes; this decides and stores.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <string_view>

#include "common/result.hpp"
#include "common/secure_buffer.hpp"
#include "core/authenticator.hpp"
#include "core/verifier.hpp"

namespace mfa {

inline constexpr char kSealSms[] = "sms";
inline constexpr char kSealSmsPending[] = "sms-pending";

// A text the logic decided to send; the bus layer hands it to the sender, then reports back.
struct SmsMessage {
  std::string user;
  std::string purpose;  // kSmsPurposeLogin, kSmsPurposeEnroll or kSmsPurposeStepUp
  std::string masked;   // what people see
  SecureString to;      // E.164, for the sender only
  SecureString body;    // holds the code
  Caller caller;
  StringMap details;  // audit context (service, rhost, ...; masked phone)
  // What the send limits count and the code that went out, for fleet mode (fleet_sms.hpp).
  std::string phone_key;  // keyed hash of the number (hex), never the number
  int64_t sent_usec = 0;  // realtime
  SmsCode code;           // its keyed hash and expiry
};

// SmsRateLimited, as a person reads it.
Error sms_rate_limited_error(const Config& config);

class SmsCodes {
 public:
  explicit SmsCodes(Verifier& verifier) : v_(verifier) {}

  // Checks the limits, records the send, stores the hash of a fresh code for (user, purpose) and
  // returns the text. SmsRateLimited when a limit is reached (audited as sms.failed).
  Result<SmsMessage> issue(const Caller& caller, std::string_view user, const SecureString& phone,
                           std::string_view purpose, StringMap details);
  // [SMS] MaxPhoneChangesPerDay=: SmsRateLimited (audited) when phone would be one number more
  // than user may be texted at in a day. A number texted in the last 24 hours does not count.
  Status check_phone_change(const Caller& caller, std::string_view user, const SecureString& phone);
  // One try at the live code of (user, purpose): true on a match (the code is then used up). A
  // wrong try counts; the MaxAttemptsPerCode-th kills the code; an expired code never matches.
  // With ret_expired, it is set when code is the live code's but typed after it expired (the
  // person is told so, and the attempt audited as `expired`, not as a wrong code).
  Result<bool> check(std::string_view user, std::string_view purpose, std::string_view code,
                     bool* ret_expired = nullptr);

  Result<std::vector<uint8_t>> seal_phone(std::string_view phone, std::string_view user,
                                          std::string_view kind);
  Result<SecureString> open_phone(const FactorRecord& record, std::string_view user,
                                  std::string_view kind);

  // Challenges that had a text sent (Verify accepts an SMS code only for those).
  void note_sent(std::string_view challenge, uint64_t expires_usec);
  bool was_sent(std::string_view challenge, uint64_t now_usec) const;
  void forget(std::string_view challenge);

 private:
  Result<CodeHash> code_hash(std::string_view user, std::string_view purpose,
                             std::string_view code);
  Result<std::string> phone_key(std::string_view phone);

  Verifier& v_;
  std::map<std::string, uint64_t, std::less<>> sent_;  // challenge → monotonic expiry
};

}  // namespace mfa

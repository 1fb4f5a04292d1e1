#include "core/sms_codes.hpp"

#include <unistd.h>

#include <array>
#include <cstdio>
#include <cstring>

#include "common/crypto.hpp"
#include "common/host_name.hpp"
#include "core/log.hpp"
#include "core/sms_phone.hpp"

namespace mfa {

namespace {

constexpr uint32_t kCodeSpace = 1000000;  // 6 digits
constexpr size_t kCodeDigits = 6;
constexpr size_t kMaxSentChallenges = 4096;

// The host name as the text shows it: letters, digits, dots and dashes only.
std::string text_host_name() {
  auto name = host_name();
  if (!name.ok())
    return "mfad";
  std::string out;
  for (const char c : *name) {
    if (out.size() >= 64)
      break;
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
        c == '-')
      out += c;
  }
  return out.empty() ? "mfad" : out;
}

std::string minutes_text(int64_t usec) {
  const int64_t minutes =
      std::max<int64_t>(1, (usec + 59 * kUsecPerSecond) / (60 * kUsecPerSecond));
  return std::to_string(minutes) + (minutes == 1 ? " minute" : " minutes");
}

}  // namespace

Error sms_rate_limited_error(const Config& config) {
  const int64_t window =
      static_cast<int64_t>(std::max(60, config.sms_send_window_seconds)) * kUsecPerSecond;
  return make_error(Errc::kSmsRateLimited, "Too many SMS codes were sent; try again in " +
                                               minutes_text(window) + " or use another factor");
}

Result<CodeHash> SmsCodes::code_hash(std::string_view user, std::string_view purpose,
                                     std::string_view code) {
  // HMAC(code_hash_key, "sms" 0 purpose 0 user 0 code): bound to the user and the purpose.
  SecureString data;
  data.append("sms");
  data.append(std::string_view("\0", 1));
  data.append(purpose);
  data.append(std::string_view("\0", 1));
  data.append(user);
  data.append(std::string_view("\0", 1));
  data.append(code);
  auto mac = hmac_sha256(v_.d_.code_hash_key.span(),
                         {reinterpret_cast<const uint8_t*>(data.view().data()), data.size()});
  if (!mac.ok() || mac->size() != CodeHash{}.size())
    return make_error(Errc::kInternal, "Could not hash an SMS code");
  CodeHash h{};
  std::memcpy(h.data(), mac->data(), h.size());
  return h;
}

Result<std::string> SmsCodes::phone_key(std::string_view phone) {
  SecureString data;
  data.append("sms-phone");
  data.append(std::string_view("\0", 1));
  data.append(phone);
  auto mac = hmac_sha256(v_.d_.code_hash_key.span(),
                         {reinterpret_cast<const uint8_t*>(data.view().data()), data.size()});
  if (!mac.ok())
    return make_error(Errc::kInternal, "Could not hash a phone number");
  return to_hex(mac->span());
}

Status SmsCodes::check_phone_change(const Caller& caller, std::string_view user,
                                    const SecureString& phone) {
  const Config& config = v_.d_.config;
  const int64_t now = v_.d_.clock.realtime_usec();
  MFA_TRY(key, phone_key(phone.view()));
  MFA_STORE_TRY(others,
                v_.d_.store.count_other_sms_phones(user, key, now - 86400 * kUsecPerSecond));
  if (others < config.sms_max_phone_changes_per_day)
    return {};
  MFA_CHECK(v_.audit(AuditKind::kSmsFailed, user, AuditOutcome::kDenied, AuditReason::kRateLimited,
                     caller,
                     {{"purpose", kSmsPurposeEnroll},
                      {"limit", "phone-changes"},
                      {"phone", mask_phone(phone.view())}}));
  return make_error(Errc::kSmsRateLimited,
                    "This account was given " + std::to_string(others) +
                        " other phone numbers in the last 24 hours, the most [SMS] "
                        "MaxPhoneChangesPerDay= allows; try again tomorrow or ask an "
                        "administrator");
}

Result<SmsMessage> SmsCodes::issue(const Caller& caller, std::string_view user,
                                   const SecureString& phone, std::string_view purpose,
                                   StringMap details) {
  const Config& config = v_.d_.config;
  const int64_t now = v_.d_.clock.realtime_usec();
  const int64_t window =
      static_cast<int64_t>(std::max(60, config.sms_send_window_seconds)) * kUsecPerSecond;
  MFA_TRY(key, phone_key(phone.view()));
  MFA_STORE_TRY(counts, v_.d_.store.count_sms_sends(user, key, now - window));
  const char* limit = nullptr;
  if (counts.user >= config.sms_max_sends_per_window)
    limit = "user";
  else if (counts.phone >= config.sms_max_sends_per_phone)
    limit = "phone";
  else if (counts.all >= config.sms_max_sends_global)
    limit = "global";
  details["purpose"] = std::string(purpose);
  if (limit) {
    StringMap d = details;
    d["limit"] = limit;
    MFA_CHECK(v_.audit(AuditKind::kSmsFailed, user, AuditOutcome::kDenied,
                       AuditReason::kRateLimited, caller, d));
    return sms_rate_limited_error(config);
  }
  // SMS pumping shows as a host-wide flood long before the cap stops it: say so once, as this
  // send reaches 80 % of it.
  const int near_cap = std::max(1, (config.sms_max_sends_global * 4 + 4) / 5);
  if (counts.all < near_cap && counts.all + 1 >= near_cap && v_.d_.events) {
    MFA_LOG_WARNING("SMS sends of this host reached %d of [SMS] MaxSendsGlobal=%d in %d s",
                    counts.all + 1, config.sms_max_sends_global,
                    std::max(60, config.sms_send_window_seconds));
    v_.d_.events->security_event(
        account_display_name(v_.d_.users, user), "sms-global-cap-near",
        {{"sent", std::to_string(counts.all + 1)},
         {"cap", std::to_string(config.sms_max_sends_global)},
         {"window_seconds", std::to_string(std::max(60, config.sms_send_window_seconds))}});
  }

  std::array<char, 8> digits{};
  const uint32_t value = random_uniform(kCodeSpace);
  std::snprintf(digits.data(), digits.size(), "%06u", value);
  const std::string_view code(digits.data(), kCodeDigits);
  auto hash = code_hash(user, purpose, code);
  if (!hash.ok()) {
    secure_erase(digits.data(), digits.size());
    return std::move(hash).error();
  }
  SmsCode stored;
  stored.hash = *hash;
  stored.expires_usec =
      now + static_cast<int64_t>(std::max(1, config.sms_code_lifetime_seconds)) * kUsecPerSecond;
  SmsMessage msg;
  msg.body = sms_code_text(text_host_name(), code, config.sms_code_lifetime_seconds);
  secure_erase(digits.data(), digits.size());
  MFA_STORE_CHECK(v_.d_.store.put_sms_code(user, purpose, stored));
  // Sends older than a day (or the window, when longer) are of no use to any limit.
  const int64_t keep = std::max<int64_t>(window, 86400 * kUsecPerSecond);
  MFA_STORE_CHECK(v_.d_.store.record_sms_send(user, key, now, now - keep));

  msg.user = std::string(user);
  msg.purpose = std::string(purpose);
  msg.phone_key = std::move(key);
  msg.sent_usec = now;
  msg.code = stored;
  msg.masked = mask_phone(phone.view());
  msg.to = phone.clone();
  msg.caller = caller;
  details["phone"] = msg.masked;
  msg.details = std::move(details);
  return msg;
}

Result<bool> SmsCodes::check(std::string_view user, std::string_view purpose, std::string_view code,
                             bool* ret_expired) {
  if (ret_expired)
    *ret_expired = false;
  MFA_STORE_TRY(stored, v_.d_.store.get_sms_code(user, purpose));
  if (!stored)
    return false;
  const int64_t now = v_.d_.clock.realtime_usec();
  const int max_attempts = std::max(1, v_.d_.config.sms_max_attempts_per_code);
  if (now >= stored->expires_usec || stored->attempts >= max_attempts) {
    // Typed too late: said so, but the code never matches.
    if (ret_expired && now >= stored->expires_usec && stored->attempts < max_attempts &&
        code.size() == kCodeDigits && Verifier::all_digits(code)) {
      MFA_TRY(hash, code_hash(user, purpose, code));
      *ret_expired =
          ct_equal(std::span<const uint8_t>(hash), std::span<const uint8_t>(stored->hash));
    }
    MFA_STORE_CHECK(v_.d_.store.delete_sms_code(user, purpose));
    return false;
  }
  if (code.size() == kCodeDigits && Verifier::all_digits(code)) {
    MFA_TRY(hash, code_hash(user, purpose, code));
    if (ct_equal(std::span<const uint8_t>(hash), std::span<const uint8_t>(stored->hash))) {
      MFA_STORE_CHECK(v_.d_.store.use_sms_code(user, purpose));
      return true;
    }
  }
  // The try is stored before a spent code goes: fleet mode adds it to the code's shared count.
  SmsCode next = *stored;
  ++next.attempts;
  MFA_STORE_CHECK(v_.d_.store.put_sms_code(user, purpose, next));
  if (next.attempts >= max_attempts)
    MFA_STORE_CHECK(v_.d_.store.delete_sms_code(user, purpose));
  return false;
}

Result<std::vector<uint8_t>> SmsCodes::seal_phone(std::string_view phone, std::string_view user,
                                                  std::string_view kind) {
  auto sealed = v_.data_keys().seal(
      user, {reinterpret_cast<const uint8_t*>(phone.data()), phone.size()}, user, kind);
  if (!sealed.ok())
    return make_error(Errc::kInternal, "Could not seal the phone number");
  return std::move(sealed).value();
}

Result<SecureString> SmsCodes::open_phone(const FactorRecord& record, std::string_view user,
                                          std::string_view kind) {
  auto opened = v_.open_sealed(record.sealed, user, kind);
  if (!opened.ok())
    return make_error(Errc::kStorage,
                      "A stored phone number could not be opened (damaged record or wrong key)");
  SecureString phone(
      std::string_view(reinterpret_cast<const char*>(opened->data()), opened->size()));
  MFA_CHECK(validate_e164(phone.view()));
  return phone;
}

void SmsCodes::note_sent(std::string_view challenge, uint64_t expires_usec) {
  if (sent_.size() >= kMaxSentChallenges) {
    // Challenges live minutes at most: drop the ones whose time is up, then the oldest.
    uint64_t oldest = UINT64_MAX;
    for (auto it = sent_.begin(); it != sent_.end();) {
      if (it->second <= v_.d_.clock.monotonic_usec()) {
        it = sent_.erase(it);
      } else {
        oldest = std::min(oldest, it->second);
        ++it;
      }
    }
    if (sent_.size() >= kMaxSentChallenges)
      std::erase_if(sent_, [&](const auto& e) { return e.second == oldest; });
  }
  sent_[std::string(challenge)] = expires_usec;
}

bool SmsCodes::was_sent(std::string_view challenge, uint64_t now_usec) const {
  auto it = sent_.find(challenge);
  return it != sent_.end() && now_usec < it->second;
}

void SmsCodes::forget(std::string_view challenge) {
  auto it = sent_.find(challenge);
  if (it != sent_.end())
    sent_.erase(it);
}

}  // namespace mfa

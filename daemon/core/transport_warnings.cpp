#include "core/transport_warnings.hpp"

#include <unistd.h>

#include <cstdlib>

#include "core/redis_address.hpp"

namespace mfa {

namespace {

bool is_plain_http(const std::string& url) {
  return url.starts_with("http://");
}

// "http://user:password@host/": the URL carries a credential of its own.
bool has_userinfo(const std::string& url) {
  const std::string_view rest = std::string_view(url).substr(url.find("://") + 3);
  const size_t end = rest.find_first_of("/?#");
  return rest.substr(0, end).find('@') != std::string_view::npos;
}

bool has_credential(const char* name) {
  const char* dir = getenv("CREDENTIALS_DIRECTORY");
  return dir != nullptr && access((std::string(dir) + "/" + name).c_str(), F_OK) == 0;
}

}  // namespace

std::vector<std::string> transport_warnings(const Config& config) {
  std::vector<std::string> warnings;
  if (!config.redis_address.empty()) {
    auto address = parse_redis_address(config.redis_address);
    if (address.ok() && address->plaintext()) {
      warnings.push_back(
          "[Redis] Address is redis:// (AllowPlaintext=yes): the Redis password and every "
          "fleet record travel unencrypted, and whoever binds " +
          address->describe().substr(8) +
          " while Redis is down answers for it; use rediss:// or unix:/path");
    }
  }
  if (!config.redis_sentinels.empty() && config.redis_allow_plaintext) {
    warnings.push_back(
        "[Redis] Sentinels with AllowPlaintext=yes: the sentinels and the primary they name are "
        "reached without TLS; the Redis password and every fleet record travel unencrypted, and "
        "whoever answers on a sentinel's address chooses the server mfad tries as its primary");
  }
  if (config.sms_provider == SmsProvider::kTwilio && is_plain_http(config.twilio_base_url)) {
    warnings.push_back(
        "[Twilio] BaseURL is http://: the account's auth token is sent unencrypted with every "
        "SMS; use https://");
  }
  if (config.sms_provider == SmsProvider::kWebhook && is_plain_http(config.webhook_url) &&
      (!config.webhook_bearer_token_file.empty() || has_credential("webhook-token") ||
       has_userinfo(config.webhook_url))) {
    warnings.push_back(
        "[Webhook] URL is http://: its credential is sent unencrypted with every SMS; use "
        "https://");
  }
  return warnings;
}

}  // namespace mfa

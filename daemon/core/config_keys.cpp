// mfad.conf's keys, one table: for each key its section, its name, and how its value is checked
// and stored; then the rules between keys.
#include "core/config_keys.hpp"

#include <charconv>
#include <cstdlib>

#include "common/totp_issuer.hpp"
#include "core/enrollment_notice.hpp"
#include "core/redis_address.hpp"
#include "core/rollout.hpp"
#include "core/sms_phone.hpp"

namespace mfa {
namespace {

constexpr int kDay = 86400;

// Quoted for a message, bounded and printable.
std::string quoted(std::string_view value) {
  std::string out = "\"";
  for (size_t i = 0; i < value.size() && i < 64; ++i) {
    unsigned char c = static_cast<unsigned char>(value[i]);
    out.push_back(c < 0x20 || c == 0x7f ? '?' : static_cast<char>(c));
  }
  if (value.size() > 64)
    out += "...";
  out += "\"";
  return out;
}

bool is_absolute_path(std::string_view v) {
  if (v.empty() || v.front() != '/')
    return false;
  // No "." or ".." components: the path means what it says.
  size_t start = 1;
  while (start <= v.size()) {
    size_t end = v.find('/', start);
    if (end == std::string_view::npos)
      end = v.size();
    std::string_view part = v.substr(start, end - start);
    if (part == "." || part == "..")
      return false;
    start = end + 1;
  }
  return true;
}

bool is_http_url(std::string_view v) {
  std::string_view rest;
  if (v.starts_with("https://")) {
    rest = v.substr(8);
  } else if (v.starts_with("http://")) {
    rest = v.substr(7);
  } else {
    return false;
  }
  if (rest.empty() || rest.front() == '/')
    return false;
  for (char c : rest) {
    if (c == ' ' || c == '\t')
      return false;
  }
  return true;
}

std::optional<std::string> parse_int(std::string_view key, std::string_view v, int min, int max,
                                     int* ret) {
  int n = 0;
  auto [p, ec] = std::from_chars(v.data(), v.data() + v.size(), n);
  if (v.empty() || ec != std::errc() || p != v.data() + v.size() || n < min || n > max) {
    return std::string(key) + " must be a whole number from " + std::to_string(min) + " to " +
           std::to_string(max) + " (got " + quoted(v) + ")";
  }
  *ret = n;
  return std::nullopt;
}

ConfigKeyApply int_key(const char* key, int Config::*field, int min, int max) {
  return [=](Config& c, std::string_view v) { return parse_int(key, v, min, max, &(c.*field)); };
}

ConfigKeyApply bool_key(const char* key, bool Config::*field) {
  return [=](Config& c, std::string_view v) -> std::optional<std::string> {
    if (v == "yes" || v == "true" || v == "1") {
      c.*field = true;
    } else if (v == "no" || v == "false" || v == "0") {
      c.*field = false;
    } else {
      return std::string(key) + " must be yes or no (got " + quoted(v) + ")";
    }
    return std::nullopt;
  };
}

ConfigKeyApply string_key(std::string Config::*field) {
  return [=](Config& c, std::string_view v) -> std::optional<std::string> {
    c.*field = std::string(v);
    return std::nullopt;
  };
}

ConfigKeyApply path_key(const char* key, std::string Config::*field, bool may_be_empty) {
  return [=](Config& c, std::string_view v) -> std::optional<std::string> {
    if (v.empty() && may_be_empty) {
      (c.*field).clear();
      return std::nullopt;
    }
    if (!is_absolute_path(v)) {
      return std::string(key) + " must be an absolute path without . or .. (got " + quoted(v) + ")";
    }
    c.*field = std::string(v);
    return std::nullopt;
  };
}

ConfigKeyApply yes_no_key(const char* key, bool Config::*field) {
  return [=](Config& c, std::string_view v) -> std::optional<std::string> {
    if (v == "yes") {
      c.*field = true;
    } else if (v == "no") {
      c.*field = false;
    } else {
      return std::string(key) + " must be yes or no (got " + quoted(v) + ")";
    }
    return std::nullopt;
  };
}

ConfigKeyApply url_key(const char* key, std::string Config::*field) {
  return [=](Config& c, std::string_view v) -> std::optional<std::string> {
    if (!v.empty() && !is_http_url(v)) {
      return std::string(key) + " must be an https:// (or http://) URL (got " + quoted(v) + ")";
    }
    c.*field = std::string(v);
    return std::nullopt;
  };
}

// The issuer of new TOTP enrollments (common/totp_issuer.hpp). Earlier versions took a tab, DEL
// or a C1 control here: such a value is refused by --check-config but only tolerated at start,
// where it is ignored (the host name is used) rather than put into otpauth URIs.
std::optional<ConfigValueProblem> apply_issuer(Config& c, std::string_view v) {
  switch (check_totp_issuer(v)) {
    case IssuerProblem::kNone:
      c.issuer = std::string(v);
      return std::nullopt;
    case IssuerProblem::kTooLong:
    case IssuerProblem::kColon:
      return ConfigValueProblem("Issuer must not contain ':' and must be at most 128 bytes");
    case IssuerProblem::kNotPrintable:
      break;
  }
  c.issuer.clear();
  return ConfigValueProblem::tolerated(
      "Issuer contains control characters; ignored: new TOTP enrollments name the host instead");
}

std::optional<std::string> apply_key_prefix(Config& c, std::string_view v) {
  if (v.size() > 64 || v.find_first_of(" \t") != std::string_view::npos)
    return "KeyPrefix must be at most 64 bytes without spaces";
  c.redis_key_prefix = std::string(v);
  return std::nullopt;
}

std::optional<std::string> apply_host_id(Config& c, std::string_view v) {
  if (!v.empty() && !is_valid_host_id(v)) {
    return "HostId must be 1 to 64 letters, digits, '.', '_' or '-', starting with a letter or "
           "digit (got " +
           quoted(v) + ")";
  }
  c.redis_host_id = std::string(v);
  return std::nullopt;
}

}  // namespace

bool is_valid_host_id(std::string_view id) {
  // ASCII only, whatever the locale: the id is part of Redis key names.
  auto alnum = [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
  };
  if (id.empty() || id.size() > 64 || !alnum(id.front()))
    return false;
  for (char c : id) {
    if (!alnum(c) && c != '.' && c != '_' && c != '-')
      return false;
  }
  return true;
}

const std::vector<ConfigKey>& config_keys() {
  static const std::vector<ConfigKey> specs = {
      {"Daemon", "StateDirectory", path_key("StateDirectory", &Config::state_directory, false)},
      {"Daemon", "KeyFile", path_key("KeyFile", &Config::key_file, false)},
      {"Daemon", "DataKeyDirectory",
       path_key("DataKeyDirectory", &Config::data_key_directory, true)},
      {"Daemon", "AdminGroup",
       [](Config& c, std::string_view v) -> std::optional<std::string> {
         if (v.empty() || v.size() > 256 || v.find_first_of(":,") != std::string_view::npos) {
           return "AdminGroup must be a group name (got " + quoted(v) + ")";
         }
         c.admin_group = std::string(v);
         return std::nullopt;
       }},

      {"TOTP", "Issuer", apply_issuer},
      {"TOTP", "Algorithm",
       [](Config& c, std::string_view v) -> std::optional<std::string> {
         if (v == "SHA1") {
           c.totp.algorithm = OtpAlgorithm::kSha1;
         } else if (v == "SHA256") {
           c.totp.algorithm = OtpAlgorithm::kSha256;
         } else if (v == "SHA512") {
           c.totp.algorithm = OtpAlgorithm::kSha512;
         } else {
           return "Algorithm must be SHA1, SHA256 or SHA512 (got " + quoted(v) + ")";
         }
         return std::nullopt;
       }},
      {"TOTP", "Digits",
       [](Config& c, std::string_view v) -> std::optional<std::string> {
         int n = 0;
         if (parse_int("Digits", v, 6, 8, &n)) {
           return "Digits must be 6, 7 or 8 (got " + quoted(v) + ")";
         }
         c.totp.digits = n;
         return std::nullopt;
       }},
      {"TOTP", "Period",
       [](Config& c, std::string_view v) {
         return parse_int("Period", v, 10, 120, &c.totp.period);
       }},
      {"TOTP", "Window", int_key("Window", &Config::window, 0, 10)},

      {"Policy", "MaxFailures", int_key("MaxFailures", &Config::max_failures, 1, 100)},
      {"Policy", "LockoutSeconds",
       int_key("LockoutSeconds", &Config::lockout_seconds, 1, 7 * kDay)},
      {"Policy", "MaxLockoutSeconds",
       int_key("MaxLockoutSeconds", &Config::max_lockout_seconds, 1, 30 * kDay)},
      {"Policy", "MaxFailuresPerDay",
       int_key("MaxFailuresPerDay", &Config::max_failures_per_day, 0, 100000)},
      {"Policy", "ChallengeTimeoutSeconds",
       int_key("ChallengeTimeoutSeconds", &Config::challenge_timeout_seconds, 10, 3600)},
      {"Policy", "MaxChallengesPerUser",
       int_key("MaxChallengesPerUser", &Config::max_challenges_per_user, 1, 1000)},
      {"Policy", "MaxChallengesPerCaller",
       int_key("MaxChallengesPerCaller", &Config::max_challenges_per_caller, 1, 100000)},

      {"SMS", "Provider",
       [](Config& c, std::string_view v) -> std::optional<std::string> {
         if (v == "none") {
           c.sms_provider = SmsProvider::kNone;
         } else if (v == "twilio") {
           c.sms_provider = SmsProvider::kTwilio;
         } else if (v == "webhook") {
           c.sms_provider = SmsProvider::kWebhook;
         } else {
           return "Provider must be none, twilio or webhook (got " + quoted(v) + ")";
         }
         return std::nullopt;
       }},
      {"SMS", "CodeLifetimeSeconds",
       int_key("CodeLifetimeSeconds", &Config::sms_code_lifetime_seconds, 30, 3600)},
      {"SMS", "MaxAttemptsPerCode",
       int_key("MaxAttemptsPerCode", &Config::sms_max_attempts_per_code, 1, 10)},
      {"SMS", "MaxSendsPerWindow",
       int_key("MaxSendsPerWindow", &Config::sms_max_sends_per_window, 1, 100)},
      {"SMS", "SendWindowSeconds",
       int_key("SendWindowSeconds", &Config::sms_send_window_seconds, 60, kDay)},
      {"SMS", "MaxSendsPerPhone",
       int_key("MaxSendsPerPhone", &Config::sms_max_sends_per_phone, 1, 1000)},
      {"SMS", "MaxSendsGlobal",
       int_key("MaxSendsGlobal", &Config::sms_max_sends_global, 1, 1000000)},
      {"SMS", "AllowedPrefixes",
       [](Config& c, std::string_view v) -> std::optional<std::string> {
         if (auto problem = parse_phone_prefixes(v, &c.sms_allowed_prefixes))
           return "AllowedPrefixes: " + *problem;
         return std::nullopt;
       }},
      {"SMS", "MaxPhoneChangesPerDay",
       int_key("MaxPhoneChangesPerDay", &Config::sms_max_phone_changes_per_day, 1, 100)},

      {"Twilio", "BaseURL", url_key("BaseURL", &Config::twilio_base_url)},
      {"Twilio", "AccountSid", string_key(&Config::twilio_account_sid)},
      {"Twilio", "AuthToken", string_key(&Config::twilio_auth_token)},
      {"Twilio", "AuthTokenFile", path_key("AuthTokenFile", &Config::twilio_auth_token_file, true)},
      {"Twilio", "From", string_key(&Config::twilio_from)},
      {"Twilio", "MessagingServiceSid", string_key(&Config::twilio_messaging_service_sid)},

      {"Webhook", "URL", url_key("URL", &Config::webhook_url)},
      {"Webhook", "BearerTokenFile",
       path_key("BearerTokenFile", &Config::webhook_bearer_token_file, true)},

      {"Sessions", "MaxPerUser", int_key("MaxPerUser", &Config::sessions_max_per_user, 1, 1000)},
      {"Sessions", "OnLimit",
       [](Config& c, std::string_view v) -> std::optional<std::string> {
         if (v == "deny") {
           c.sessions_on_limit = SessionLimitAction::kDeny;
         } else if (v == "evict-oldest") {
           c.sessions_on_limit = SessionLimitAction::kEvictOldest;
         } else {
           return "OnLimit must be deny or evict-oldest (got " + quoted(v) + ")";
         }
         return std::nullopt;
       }},
      {"Sessions", "MaxLifetimeSeconds",
       int_key("MaxLifetimeSeconds", &Config::sessions_max_lifetime_seconds, 1, 30 * kDay)},
      {"Sessions", "IdleTimeoutSeconds",
       int_key("IdleTimeoutSeconds", &Config::sessions_idle_timeout_seconds, 0, 30 * kDay)},

      {"Redis", "Address",
       [](Config& c, std::string_view v) -> std::optional<std::string> {
         if (v.empty()) {
           c.redis_address.clear();
           return std::nullopt;
         }
         // The daemon's own parser: what passes here is what mfad connects to. The whole value is
         // not echoed (it might hold a password); the parser names what is wrong.
         auto parsed = parse_redis_address(v);
         if (!parsed.ok() || (v.starts_with("unix:") && !is_absolute_path(v.substr(5)))) {
           return "Address must be rediss://HOST:PORT, unix:/absolute/path or redis://HOST:PORT, "
                  "HOST an IP address (" +
                  (parsed.ok() ? std::string("unix: path with . or ..") : parsed.error().message) +
                  ")";
         }
         c.redis_address = std::string(v);
         return std::nullopt;
       }},
      {"Redis", "Sentinels",
       [](Config& c,
          std::string_view v) -> std::
                                  optional<std::string> {
                                    std::vector<std::string> sentinels;
                                    size_t start = 0;
                                    while (start < v.size()) {
                                      size_t end = v.find_first_of(" \t", start);
                                      if (end == std::string_view::npos)
                                        end = v.size();
                                      if (end > start) {
                                        const std::string_view one = v.substr(start, end - start);
                                        auto parsed = parse_sentinel_address(one, /*tls=*/true);
                                        if (!parsed.ok() || !parsed->unix_path.empty()) {
                                          return "Sentinels must be ADDRESS:PORT separated by "
                                                 "spaces, ADDRESS an IP address (" +
                                                 (parsed.ok() ? std::string("no unix: sockets")
                                                              : parsed.error().message) +
                                                 ")";
                                        }
                                        sentinels.emplace_back(one);
                                      }
                                      start = end + 1;
                                    }
                                    if (sentinels.size() > kMaxRedisSentinels)
                                      return "Sentinels names at most " +
                                             std::to_string(kMaxRedisSentinels) + " sentinels";
                                    c.redis_sentinels = std::move(sentinels);
                                    return std::nullopt;
                                  }},
      {"Redis", "MasterName",
       [](Config& c, std::string_view v)
           -> std::
               optional<std::string> {
                 if (!v.empty() && !is_valid_master_name(v)) {
                   return "MasterName must be 1 to 64 letters, digits, '.', '_' or '-' (got " +
                          quoted(v) + ")";
                 }
                 c.redis_master_name = std::string(v);
                 return std::nullopt;
               }},
      {"Redis", "AllowPlaintext", yes_no_key("AllowPlaintext", &Config::redis_allow_plaintext)},
      {"Redis", "CAFile", path_key("CAFile", &Config::redis_ca_file, true)},
      {"Redis", "CertFile", path_key("CertFile", &Config::redis_cert_file, true)},
      {"Redis", "KeyFile", path_key("KeyFile", &Config::redis_key_file, true)},
      {"Redis", "User", string_key(&Config::redis_user)},
      {"Redis", "Timeout", int_key("Timeout", &Config::redis_timeout_ms, 10, 10000)},
      {"Redis", "PasswordFile", path_key("PasswordFile", &Config::redis_password_file, true)},
      {"Redis", "KeyPrefix", apply_key_prefix},
      {"Redis", "HostId", apply_host_id},
      {"Redis", "DegradedNullok", bool_key("DegradedNullok", &Config::redis_degraded_nullok)},
      {"Redis", "DegradedBackupCodes",
       bool_key("DegradedBackupCodes", &Config::redis_degraded_backup_codes)},
      {"Redis", "DegradedFailuresPercent",
       int_key("DegradedFailuresPercent", &Config::redis_degraded_failures_percent, 1, 100)},

      {"Audit", "RetentionDays", int_key("RetentionDays", &Config::audit_retention_days, 1, 36500)},

      {"Metrics", "TextfilePath", path_key("TextfilePath", &Config::metrics_textfile_path, true)},
      {"Metrics", "IntervalSeconds",
       int_key("IntervalSeconds", &Config::metrics_interval_seconds, 1, 3600)},
      {"Rollout", "Deadline",
       [](Config& c, std::string_view v)
           -> std::
               optional<std::string> {
                 if (v.empty()) {
                   c.rollout_deadline.reset();
                   return std::nullopt;
                 }
                 const auto t = parse_iso8601(v);
                 if (!t) {
                   return "Deadline must be an ISO 8601 date or date-time, UTC unless a zone is "
                          "given "
                          "(2027-01-31, 2027-01-31T09:00Z, 2027-01-31T09:00+01:00; got " +
                          quoted(v) + ")";
                 }
                 c.rollout_deadline = *t;
                 return std::nullopt;
               }},
      {"Rollout", "Groups",
       [](Config& c, std::string_view v)
           -> std::
               optional<std::string> {
                 std::vector<std::string> groups;
                 size_t start = 0;
                 while (start < v.size()) {
                   size_t end = v.find_first_of(" \t", start);
                   if (end == std::string_view::npos)
                     end = v.size();
                   if (end > start) {
                     const std::string_view g = v.substr(start, end - start);
                     if (g.size() > 256 || g.find_first_of(":,") != std::string_view::npos)
                       return "Groups must be group names separated by spaces (got " + quoted(g) +
                              ")";
                     groups.emplace_back(g);
                   }
                   start = end + 1;
                 }
                 if (groups.size() > 64)
                   return std::string("Groups names at most 64 groups");
                 c.rollout_groups = std::move(groups);
                 return std::nullopt;
               }},
      {"Rollout", "RequireToken",
       [](Config& c, std::string_view v) -> std::
                                             optional<std::string> {
                                               if (v == "yes" || v == "true" || v == "1") {
                                                 c.rollout_require_token = true;
                                               } else if (v == "no" || v == "false" || v == "0") {
                                                 c.rollout_require_token = false;
                                               } else {
                                                 return "RequireToken must be yes or no (got " +
                                                        quoted(v) + ")";
                                               }
                                               return std::nullopt;
                                             }},
      {"Enrollment", "Notice",
       [](Config& c, std::string_view v) -> std::
                                             optional<std::string> {
                                               if (v.size() > kMaxEnrollmentNotice)
                                                 return "Notice must be at most " +
                                                        std::to_string(kMaxEnrollmentNotice) +
                                                        " bytes";
                                               if (auto problem = notice_text_problem(v))
                                                 return "Notice " + *problem;
                                               c.enrollment_notice = std::string(v);
                                               return std::nullopt;
                                             }},
      {"Enrollment", "NoticeFile", path_key("NoticeFile", &Config::enrollment_notice_file, true)},
  };
  return specs;
}

namespace {

// [Redis]: how mfad reaches Redis is part of what it trusts (docs/fleet.md, "Transport").
void check_redis_transport(const Config& config, std::vector<BrokenConfigRule>* broken) {
  const bool tls_keys = !config.redis_ca_file.empty() || !config.redis_cert_file.empty() ||
                        !config.redis_key_file.empty();
  if (!config.redis_sentinels.empty() || !config.redis_master_name.empty()) {
    if (!config.redis_address.empty()) {
      broken->push_back({"Redis", "Sentinels",
                         "set Address or Sentinels (with MasterName), not both: the primary is "
                         "either named or found through Sentinel"});
    } else if (config.redis_master_name.empty()) {
      broken->push_back(
          {"Redis", "Sentinels", "Sentinels needs MasterName (the name the sentinels monitor)"});
    } else if (config.redis_sentinels.empty()) {
      broken->push_back({"Redis", "MasterName", "MasterName needs Sentinels (a valid list)"});
    }
    // Sentinels and the primary they name speak TLS unless AllowPlaintext=yes.
    if (config.redis_address.empty() && tls_keys && config.redis_allow_plaintext) {
      broken->push_back({"Redis", "CAFile",
                         "CAFile, CertFile and KeyFile apply to TLS only, and AllowPlaintext=yes "
                         "makes Sentinels plaintext"});
    }
    if (config.redis_cert_file.empty() != config.redis_key_file.empty())
      broken->push_back({"Redis", "CertFile", "CertFile and KeyFile go together"});
    return;
  }
  if (config.redis_address.empty())
    return;
  auto address = parse_redis_address(config.redis_address);
  if (!address.ok())
    return;  // reported with the key
  if (address->plaintext() && !config.redis_allow_plaintext) {
    broken->push_back({"Redis", "Address",
                       "redis:// is TCP without TLS: whoever binds that port (any local user while "
                       "Redis is down) or sits on the path gets the Redis password and answers "
                       "for Redis. Use rediss:// or unix:/path, or set AllowPlaintext=yes"});
  }
  if (tls_keys && !address->tls) {
    broken->push_back(
        {"Redis", "CAFile", "CAFile, CertFile and KeyFile apply to a rediss:// Address only"});
  }
  if (config.redis_cert_file.empty() != config.redis_key_file.empty())
    broken->push_back({"Redis", "CertFile", "CertFile and KeyFile go together"});
}

}  // namespace

bool is_config_section(std::string_view section) {
  for (const auto& spec : config_keys()) {
    if (section == spec.section)
      return true;
  }
  return false;
}

std::vector<BrokenConfigRule> check_key_combinations(const Config& config) {
  std::vector<BrokenConfigRule> broken;
  if (config.max_lockout_seconds < config.lockout_seconds) {
    broken.push_back(
        {"Policy", "MaxLockoutSeconds", "MaxLockoutSeconds must not be less than LockoutSeconds"});
  }
  if (config.sms_provider == SmsProvider::kTwilio) {
    if (config.twilio_account_sid.empty())
      broken.push_back({"SMS", "Provider", "Provider=twilio needs [Twilio] AccountSid"});
    // The systemd credential twilio-token ($CREDENTIALS_DIRECTORY) is the third way.
    if (config.twilio_auth_token.empty() && config.twilio_auth_token_file.empty() &&
        !getenv("CREDENTIALS_DIRECTORY")) {
      broken.push_back(
          {"SMS", "Provider", "Provider=twilio needs [Twilio] AuthTokenFile (or AuthToken)"});
    }
    if (config.twilio_from.empty() && config.twilio_messaging_service_sid.empty()) {
      broken.push_back(
          {"SMS", "Provider", "Provider=twilio needs [Twilio] From or MessagingServiceSid"});
    }
  }
  if (!config.enrollment_notice.empty() && !config.enrollment_notice_file.empty()) {
    broken.push_back(
        {"Enrollment", "NoticeFile", "set Notice or NoticeFile, not both (one notice is shown)"});
  } else if (!config.enrollment_notice_file.empty()) {
    // Read again before each enrollment (an edit needs no restart); checked here so that a file
    // that cannot be shown is a configuration error, not a refused enrollment.
    auto text = read_notice_file(config.enrollment_notice_file);
    if (!text.ok())
      broken.push_back({"Enrollment", "NoticeFile", text.error().message});
  }
  if (config.sms_provider == SmsProvider::kWebhook && config.webhook_url.empty())
    broken.push_back({"SMS", "Provider", "Provider=webhook needs [Webhook] URL"});
  check_redis_transport(config, &broken);
  return broken;
}

}  // namespace mfa

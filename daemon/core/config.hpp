// mfad.conf (mfad.conf(5), packaging/man/mfad.conf.5): INI parsed with inih; keys case-sensitive.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/otp.hpp"
#include "common/result.hpp"

namespace mfa {

enum class SmsProvider { kNone, kTwilio, kWebhook };
enum class SessionLimitAction { kDeny, kEvictOldest };

struct Config {
  std::string path;  // the file this came from ("" for built-in defaults)

  // [Daemon]
  std::string state_directory = MFA_DEFAULT_STATEDIR;
  std::string key_file = MFA_DEFAULT_KEYFILE;
  // The per-person data keys (core/data_keys.hpp); "": StateDirectory/data-keys.
  std::string data_key_directory;
  std::string admin_group = "mfa-admin";

  // [TOTP]
  std::string issuer;  // empty: the host name
  TotpParams totp;     // Algorithm, Digits, Period
  int window = 1;      // Window: steps accepted either side of now (0..10)

  // [Policy]
  int max_failures = 5;                 // consecutive failures before a lockout
  int lockout_seconds = 900;            // first lockout; doubles on each repeat
  int max_lockout_seconds = 86400;      // MaxLockoutSeconds: cap of the doubling
  int max_failures_per_day = 50;        // MaxFailuresPerDay: bounds slow guessing; 0 = off
  int challenge_timeout_seconds = 300;  // ChallengeTimeoutSeconds
  int max_challenges_per_user = 8;      // MaxChallengesPerUser
  int max_challenges_per_caller = 256;  // MaxChallengesPerCaller

  // [SMS]
  SmsProvider sms_provider = SmsProvider::kNone;
  int sms_code_lifetime_seconds = 600;
  int sms_max_attempts_per_code = 3;
  int sms_max_sends_per_window = 3;
  int sms_send_window_seconds = 600;
  int sms_max_sends_per_phone = 5;  // MaxSendsPerPhone: per number per window, whoever asks
  int sms_max_sends_global = 200;   // MaxSendsGlobal: per window, host or fleet (SMS pumping)
  std::vector<std::string> sms_allowed_prefixes;  // AllowedPrefixes: empty allows every number
  int sms_max_phone_changes_per_day = 3;          // MaxPhoneChangesPerDay: per user, self-service

  // [Twilio]
  std::string twilio_base_url = "https://api.twilio.com";
  std::string twilio_account_sid;
  std::string twilio_auth_token;  // prefer AuthTokenFile
  std::string twilio_auth_token_file;
  std::string twilio_from;
  std::string twilio_messaging_service_sid;

  // [Webhook]
  std::string webhook_url;
  std::string webhook_bearer_token_file;

  // [Sessions]
  int sessions_max_per_user = 5;
  SessionLimitAction sessions_on_limit = SessionLimitAction::kDeny;
  int sessions_max_lifetime_seconds = 86400;
  int sessions_idle_timeout_seconds = 0;

  // [Redis]
  std::string redis_address;  // rediss://host:port, unix:/path or redis://; empty = no fleet mode
  // Sentinels (host:port each) and MasterName: the primary found through Redis Sentinel instead
  // of Address (one or the other); fleet_mode() says whether either is set.
  std::vector<std::string> redis_sentinels;
  std::string redis_master_name;
  bool redis_allow_plaintext = false;  // AllowPlaintext: redis:// (TCP without TLS) accepted
  std::string redis_ca_file;           // CAFile: rediss:// servers verified with; "" = system store
  std::string redis_cert_file;         // CertFile: client certificate (chain), PEM
  std::string redis_key_file;          // KeyFile: its private key, PEM, readable by root only
  std::string redis_user;
  std::string redis_password_file;
  std::string redis_key_prefix = "mfad:";
  int redis_timeout_ms = 200;  // Timeout: unanswered by then, Redis is down (degraded mode)
  std::string redis_host_id;   // HostId: this host's name in the fleet; empty = the host name
  // Degraded mode is stricter than normal (docs/fleet.md, "Degraded mode"): nullok for a user the
  // cache has not confirmed since the last sync, backup codes, and the failure limits.
  bool redis_degraded_nullok = false;
  bool redis_degraded_backup_codes = false;
  int redis_degraded_failures_percent = 50;  // of MaxFailures and MaxFailuresPerDay

  // [Audit]
  int audit_retention_days = 365;

  // [Metrics] (docs/operations.md, "Metrics")
  std::string metrics_textfile_path;  // TextfilePath: "" = no metrics file
  int metrics_interval_seconds = 30;  // IntervalSeconds: how often the file is rewritten
  // [Rollout] (docs/rollout.md)
  std::optional<int64_t> rollout_deadline;  // Deadline: unix seconds; none: no skipping
  std::vector<std::string> rollout_groups;  // Groups: empty = everyone must have a factor
  bool rollout_require_token = false;       // RequireToken: first enrollments need a token
  // [Enrollment] (docs/admin-guide.md, "Enrollment notice"): shown before every enrollment, its
  // acceptance audited with its SHA-256. At most one of the two; NoticeFile is read when asked.
  std::string enrollment_notice;
  std::string enrollment_notice_file;

  // Fleet mode: Redis named by Address or found through Sentinels.
  bool fleet_mode() const { return !redis_address.empty() || !redis_sentinels.empty(); }
};

struct ConfigProblem {
  std::string file;
  int line = 0;  // 0 when not tied to a line
  std::string section;
  std::string key;
  std::string message;            // "unknown key", "Digits must be 6, 7 or 8", ...
  bool fatal = true;              // unknown keys are not fatal at start, fatal at --check-config
  std::string to_string() const;  // "FILE:LINE: [Section] Key: message"
};

// A fleet host id (HostId=, or the host name): 1 to 64 bytes of letters, digits, '.', '_' and
// '-', starting with a letter or digit. It names Redis keys and travels in session records.
bool is_valid_host_id(std::string_view id);

// Loads path. A missing file at the default path gives the defaults; a missing file given with
// --config is an error. A file that is group- or world-writable, or not owned by root (or the
// running user, for tests run unprivileged) is refused. Every problem found is appended to
// ret_problems (all of them, not just the first); the result is an error when any is fatal.
// strict: unknown keys are fatal (--check-config).
Result<Config> load_config(const std::string& path, bool path_given, bool strict,
                           std::vector<ConfigProblem>* ret_problems);

// The parser behind load_config, on text already read (no file checks); file names the problems.
// For tests and the fuzz target.
Result<Config> parse_config(std::string_view text, const std::string& file, bool strict,
                            std::vector<ConfigProblem>* ret_problems);

}  // namespace mfa

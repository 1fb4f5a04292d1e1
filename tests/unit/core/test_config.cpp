// mfad.conf: defaults, every key, every bad value with its line, and the file checks.
#include <sys/stat.h>
#include <unistd.h>

#include <cstdarg>
#include <cstddef>
#include <csetjmp>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

extern "C" {
#include <cmocka.h>
}

#include "core/config.hpp"

using namespace mfa;

namespace {

struct Fixture {
  std::string dir;
};

int setup(void** state) {
  auto* f = new Fixture;
  char tmpl[] = "/tmp/mfad-test-config-XXXXXX";
  if (!mkdtemp(tmpl))
    return -1;
  f->dir = tmpl;
  *state = f;
  return 0;
}

int teardown(void** state) {
  auto* f = static_cast<Fixture*>(*state);
  std::filesystem::remove_all(f->dir);
  delete f;
  return 0;
}

std::string write_file(Fixture* f, const std::string& name, const std::string& text,
                       mode_t mode = 0644) {
  std::string path = f->dir + "/" + name;
  {
    std::ofstream out(path, std::ios::binary);
    out << text;
  }
  assert_int_equal(chmod(path.c_str(), mode), 0);
  return path;
}

bool contains(const std::string& haystack, const char* needle) {
  return haystack.find(needle) != std::string::npos;
}

void assert_contains(const std::string& haystack, const char* needle) {
  if (!contains(haystack, needle))
    fprintf(stderr, "\"%s\" lacks \"%s\"\n", haystack.c_str(), needle);
  assert_true(contains(haystack, needle));
}

void test_defaults_when_default_path_missing(void** state) {
  auto* f = static_cast<Fixture*>(*state);
  std::vector<ConfigProblem> problems;
  auto config = load_config(f->dir + "/absent.conf", /*path_given=*/false, false, &problems);
  assert_true(config.ok());
  assert_true(problems.empty());
  assert_string_equal(config->path.c_str(), "");
  assert_string_equal(config->state_directory.c_str(), "/var/lib/mfad");
  assert_string_equal(config->key_file.c_str(), "/etc/mfad/master.key");
  assert_string_equal(config->admin_group.c_str(), "mfa-admin");
  assert_int_equal(static_cast<int>(config->totp.algorithm), static_cast<int>(OtpAlgorithm::kSha1));
  assert_int_equal(config->totp.digits, 6);
  assert_int_equal(config->totp.period, 30);
  assert_int_equal(config->window, 1);
  assert_int_equal(config->max_failures, 5);
  assert_int_equal(config->lockout_seconds, 900);
  assert_int_equal(static_cast<int>(config->sms_provider), static_cast<int>(SmsProvider::kNone));
  assert_int_equal(config->sms_code_lifetime_seconds, 600);
  assert_int_equal(config->sms_max_attempts_per_code, 3);
  assert_int_equal(config->sms_max_sends_per_window, 3);
  assert_int_equal(config->sms_send_window_seconds, 600);
  assert_string_equal(config->twilio_base_url.c_str(), "https://api.twilio.com");
  assert_int_equal(config->sessions_max_per_user, 5);
  assert_int_equal(static_cast<int>(config->sessions_on_limit),
                   static_cast<int>(SessionLimitAction::kDeny));
  assert_int_equal(config->sessions_max_lifetime_seconds, 86400);
  assert_int_equal(config->sessions_idle_timeout_seconds, 0);
  assert_string_equal(config->redis_address.c_str(), "");
  assert_string_equal(config->redis_key_prefix.c_str(), "mfad:");
  assert_string_equal(config->redis_host_id.c_str(), "");  // mfad uses the host name
  assert_true(is_valid_host_id(std::string(64, 'h')));
  assert_true(is_valid_host_id("10.0.0.5"));
  assert_false(is_valid_host_id(""));
  assert_int_equal(config->audit_retention_days, 365);

  // An empty file is the defaults too.
  auto empty = load_config(write_file(f, "empty.conf", ""), true, true, &problems);
  assert_true(empty.ok());
  assert_true(problems.empty());
  assert_int_equal(empty->max_failures, 5);
}

void test_missing_given_file_is_error(void** state) {
  auto* f = static_cast<Fixture*>(*state);
  std::vector<ConfigProblem> problems;
  std::string path = f->dir + "/absent.conf";
  auto config = load_config(path, /*path_given=*/true, false, &problems);
  assert_false(config.ok());
  assert_contains(config.error().message, path.c_str());
  assert_contains(config.error().message, "No such file or directory");
  assert_int_equal(problems.size(), 1);
}

void test_every_key_parsed(void** state) {
  auto* f = static_cast<Fixture*>(*state);
  std::string text =
      "# mfad.conf\n"
      "[Daemon]\n"
      "StateDirectory=/srv/mfad\n"
      "KeyFile = /etc/mfad/other.key\n"
      "AdminGroup=wheel\n"
      "\n"
      "[TOTP]\n"
      "Issuer=Example Corp\n"
      "Algorithm=SHA512\n"
      "Digits=8\n"
      "Period=60\n"
      "Window=3\n"
      "[Policy]\n"
      "MaxFailures=7\n"
      "LockoutSeconds=120\n"
      "MaxLockoutSeconds=3600\n"
      "MaxFailuresPerDay=0\n"
      "ChallengeTimeoutSeconds=90\n"
      "MaxChallengesPerUser=4\n"
      "MaxChallengesPerCaller=64\n"
      "[SMS]\n"
      "Provider=twilio\n"
      "CodeLifetimeSeconds=300\n"
      "MaxAttemptsPerCode=5\n"
      "MaxSendsPerWindow=2\n"
      "SendWindowSeconds=900\n"
      "[Twilio]\n"
      "BaseURL=http://127.0.0.1:8080\n"
      "AccountSid=AC0123456789abcdef0123456789abcdef\n"
      "AuthToken=not-really-secret ; a comment\n"
      "AuthTokenFile=/etc/mfad/twilio.token\n"
      "From=+15005550006\n"
      "MessagingServiceSid=MG0123\n"
      "[Webhook]\n"
      "URL=https://sms.example.com/send\n"
      "BearerTokenFile=/etc/mfad/webhook.token\n"
      "[Sessions]\n"
      "MaxPerUser=2\n"
      "OnLimit=evict-oldest\n"
      "MaxLifetimeSeconds=3600\n"
      "IdleTimeoutSeconds=600\n"
      "[Redis]\n"
      "Address=rediss://10.1.2.3:6380\n"
      "CAFile=/etc/mfad/redis-ca.pem\n"
      "CertFile=/etc/mfad/redis-client.pem\n"
      "KeyFile=/etc/mfad/redis-client.key\n"
      "User=mfad\n"
      "PasswordFile=/etc/mfad/redis.pass\n"
      "KeyPrefix=site1:\n"
      "HostId=web-01.example_net\n"
      "[Audit]\n"
      "RetentionDays=30\n";
  std::string path = write_file(f, "full.conf", text, 0600);
  std::vector<ConfigProblem> problems;
  auto c = load_config(path, true, /*strict=*/true, &problems);
  for (const auto& p : problems)
    fprintf(stderr, "%s\n", p.to_string().c_str());
  assert_true(c.ok());
  assert_true(problems.empty());
  assert_string_equal(c->path.c_str(), path.c_str());
  assert_string_equal(c->state_directory.c_str(), "/srv/mfad");
  assert_string_equal(c->key_file.c_str(), "/etc/mfad/other.key");
  assert_string_equal(c->admin_group.c_str(), "wheel");
  assert_string_equal(c->issuer.c_str(), "Example Corp");
  assert_int_equal(static_cast<int>(c->totp.algorithm), static_cast<int>(OtpAlgorithm::kSha512));
  assert_int_equal(c->totp.digits, 8);
  assert_int_equal(c->totp.period, 60);
  assert_int_equal(c->window, 3);
  assert_int_equal(c->max_failures, 7);
  assert_int_equal(c->lockout_seconds, 120);
  assert_int_equal(c->max_lockout_seconds, 3600);
  assert_int_equal(c->max_failures_per_day, 0);
  assert_int_equal(c->challenge_timeout_seconds, 90);
  assert_int_equal(c->max_challenges_per_user, 4);
  assert_int_equal(c->max_challenges_per_caller, 64);
  assert_int_equal(static_cast<int>(c->sms_provider), static_cast<int>(SmsProvider::kTwilio));
  assert_int_equal(c->sms_code_lifetime_seconds, 300);
  assert_int_equal(c->sms_max_attempts_per_code, 5);
  assert_int_equal(c->sms_max_sends_per_window, 2);
  assert_int_equal(c->sms_send_window_seconds, 900);
  assert_string_equal(c->twilio_base_url.c_str(), "http://127.0.0.1:8080");
  assert_string_equal(c->twilio_account_sid.c_str(), "AC0123456789abcdef0123456789abcdef");
  assert_string_equal(c->twilio_auth_token.c_str(), "not-really-secret");
  assert_string_equal(c->twilio_auth_token_file.c_str(), "/etc/mfad/twilio.token");
  assert_string_equal(c->twilio_from.c_str(), "+15005550006");
  assert_string_equal(c->twilio_messaging_service_sid.c_str(), "MG0123");
  assert_string_equal(c->webhook_url.c_str(), "https://sms.example.com/send");
  assert_string_equal(c->webhook_bearer_token_file.c_str(), "/etc/mfad/webhook.token");
  assert_int_equal(c->sessions_max_per_user, 2);
  assert_int_equal(static_cast<int>(c->sessions_on_limit),
                   static_cast<int>(SessionLimitAction::kEvictOldest));
  assert_int_equal(c->sessions_max_lifetime_seconds, 3600);
  assert_int_equal(c->sessions_idle_timeout_seconds, 600);
  assert_string_equal(c->redis_address.c_str(), "rediss://10.1.2.3:6380");
  assert_false(c->redis_allow_plaintext);
  assert_string_equal(c->redis_ca_file.c_str(), "/etc/mfad/redis-ca.pem");
  assert_string_equal(c->redis_cert_file.c_str(), "/etc/mfad/redis-client.pem");
  assert_string_equal(c->redis_key_file.c_str(), "/etc/mfad/redis-client.key");
  assert_string_equal(c->redis_user.c_str(), "mfad");
  assert_string_equal(c->redis_password_file.c_str(), "/etc/mfad/redis.pass");
  assert_string_equal(c->redis_key_prefix.c_str(), "site1:");
  assert_string_equal(c->redis_host_id.c_str(), "web-01.example_net");
  assert_int_equal(c->audit_retention_days, 30);

  // Other accepted spellings.
  auto other = parse_config(
      "[SMS]\nProvider=webhook\n[Webhook]\nURL=https://h/x\n[Redis]\n"
      "Address=unix:/run/redis/redis.sock\n[TOTP]\nAlgorithm=SHA256\nDigits=7\nWindow=0\n",
      "t.conf", true, &problems);
  assert_true(other.ok());
  assert_int_equal(static_cast<int>(other->sms_provider), static_cast<int>(SmsProvider::kWebhook));
  assert_string_equal(other->redis_address.c_str(), "unix:/run/redis/redis.sock");
  assert_int_equal(static_cast<int>(other->totp.algorithm),
                   static_cast<int>(OtpAlgorithm::kSha256));
  assert_int_equal(other->totp.digits, 7);
  assert_int_equal(other->window, 0);
  auto v6 = parse_config("[Redis]\nAddress=rediss://[::1]:6379\n", "t.conf", true, &problems);
  assert_true(v6.ok());
  auto plain = parse_config("[Redis]\nAddress=redis://[::1]:6379\nAllowPlaintext=yes\n", "t.conf",
                            true, &problems);
  assert_true(plain.ok());
  assert_true(plain->redis_allow_plaintext);
}

struct BadValue {
  const char* section;
  const char* key;
  const char* value;
  const char* message;  // a part of the problem's message
};

void test_each_bad_value_with_line(void** state) {
  (void)state;
  const BadValue cases[] = {
      {"Daemon", "StateDirectory", "relative/dir", "absolute path"},
      {"Daemon", "StateDirectory", "/var/lib/../tmp", "absolute path"},
      {"Daemon", "StateDirectory", "", "absolute path"},
      {"Daemon", "KeyFile", "master.key", "absolute path"},
      {"Daemon", "AdminGroup", "", "group name"},
      {"TOTP", "Issuer", "Evil:Corp", "':'"},
      {"TOTP", "Algorithm", "MD5", "SHA1, SHA256 or SHA512"},
      {"TOTP", "Algorithm", "sha1x", "SHA1, SHA256 or SHA512"},
      {"TOTP", "Digits", "5", "6, 7 or 8"},
      {"TOTP", "Digits", "9", "6, 7 or 8"},
      {"TOTP", "Digits", "six", "6, 7 or 8"},
      {"TOTP", "Period", "9", "from 10 to 120"},
      {"TOTP", "Period", "121", "from 10 to 120"},
      {"TOTP", "Window", "11", "from 0 to 10"},
      {"TOTP", "Window", "-1", "from 0 to 10"},
      {"Policy", "MaxFailures", "0", "from 1 to 100"},
      {"Policy", "MaxFailures", "101", "from 1 to 100"},
      {"Policy", "MaxFailures", "5x", "from 1 to 100"},
      {"Policy", "MaxFailures", "", "from 1 to 100"},
      {"Policy", "LockoutSeconds", "0", "LockoutSeconds must be"},
      {"Policy", "LockoutSeconds", "99999999999", "LockoutSeconds must be"},
      {"Policy", "MaxLockoutSeconds", "0", "MaxLockoutSeconds must be"},
      {"Policy", "MaxFailuresPerDay", "-5", "MaxFailuresPerDay must be"},
      {"Policy", "ChallengeTimeoutSeconds", "0", "ChallengeTimeoutSeconds must be"},
      {"Policy", "MaxChallengesPerUser", "0", "MaxChallengesPerUser must be"},
      {"Policy", "MaxChallengesPerCaller", "0", "MaxChallengesPerCaller must be"},
      {"SMS", "Provider", "carrier-pigeon", "none, twilio or webhook"},
      {"SMS", "CodeLifetimeSeconds", "0", "CodeLifetimeSeconds must be"},
      {"SMS", "MaxAttemptsPerCode", "0", "MaxAttemptsPerCode must be"},
      {"SMS", "MaxSendsPerWindow", "1000", "MaxSendsPerWindow must be"},
      {"SMS", "SendWindowSeconds", "1", "SendWindowSeconds must be"},
      {"Twilio", "BaseURL", "ftp://api.twilio.com", "URL"},
      {"Twilio", "AuthTokenFile", "token", "absolute path"},
      {"Webhook", "URL", "sms.example.com", "URL"},
      {"Webhook", "BearerTokenFile", "./t", "absolute path"},
      {"Sessions", "MaxPerUser", "0", "MaxPerUser must be"},
      {"Sessions", "OnLimit", "kill-all", "deny or evict-oldest"},
      {"Sessions", "MaxLifetimeSeconds", "0", "MaxLifetimeSeconds must be"},
      {"Sessions", "IdleTimeoutSeconds", "-1", "IdleTimeoutSeconds must be"},
      {"Redis", "Address", "localhost:6379", "rediss://HOST:PORT, unix:"},
      {"Redis", "Address", "redis://host", "rediss://HOST:PORT, unix:"},
      {"Redis", "Address", "redis://host:99999", "rediss://HOST:PORT, unix:"},
      {"Redis", "Address", "unix:relative.sock", "rediss://HOST:PORT, unix:"},
      {"Redis", "Address", "unix:/run/../tmp/redis.sock", "rediss://HOST:PORT, unix:"},
      // Names are refused at config check: mfad would have to resolve them, blocking its loop.
      {"Redis", "Address", "redis://localhost:6379", "is a host name"},
      {"Redis", "Address", "redis://redis.example.net:6379", "IP addresses only"},
      {"Redis", "Address", "redis://10.0.0.5", "no port"},
      {"Redis", "Address", "redis://[10.0.0.5]:6379", "not an IP address"},
      {"Redis", "Address", "redis://u:secret@10.0.0.5:6379", "no credentials"},
      {"Redis", "Address", "http://10.0.0.5:6379", "rediss://HOST:PORT, unix:"},
      {"Redis", "Address", "rediss://redis.example.net:6379", "IP addresses only"},
      {"Redis", "AllowPlaintext", "true", "yes or no"},
      {"Redis", "CAFile", "ca.pem", "absolute path"},
      {"Redis", "CertFile", "./c.pem", "absolute path"},
      {"Redis", "KeyFile", "k.pem", "absolute path"},
      {"Redis", "PasswordFile", "pw", "absolute path"},
      {"Redis", "KeyPrefix", "has space", "KeyPrefix"},
      {"Redis", "HostId", "web 1", "HostId must be"},
      {"Redis", "HostId", "host|a", "HostId must be"},
      {"Redis", "HostId", "{web1}", "HostId must be"},
      {"Redis", "HostId", "-web1", "HostId must be"},
      {"Redis", "HostId", "h\xc3\xa9te", "HostId must be"},
      {"Redis", "HostId", "a1234567890123456789012345678901234567890123456789012345678901234",
       "HostId must be"},
      {"Audit", "RetentionDays", "0", "RetentionDays must be"},
  };
  for (const auto& c : cases) {
    // The bad key sits on line 4, after a comment and a good key.
    std::string text = std::string("; test\n[") + c.section + "]\n\n" + c.key + " = " + c.value +
                       "\n[Audit]\nRetentionDays=10\n";
    std::vector<ConfigProblem> problems;
    auto config = parse_config(text, "/etc/mfad/mfad.conf", false, &problems);
    if (config.ok() || problems.size() != 1) {
      fprintf(stderr, "case [%s] %s=%s: ok=%d problems=%zu\n", c.section, c.key, c.value,
              config.ok(), problems.size());
    }
    assert_false(config.ok());
    assert_int_equal(problems.size(), 1);
    const auto& p = problems[0];
    assert_int_equal(p.line, 4);
    assert_string_equal(p.section.c_str(), c.section);
    assert_string_equal(p.key.c_str(), c.key);
    assert_true(p.fatal);
    assert_contains(p.message, c.message);
    // What the admin reads: FILE:LINE: [Section] Key: message.
    std::string want = std::string("/etc/mfad/mfad.conf:4: [") + c.section + "] " + c.key + ": ";
    assert_int_equal(p.to_string().find(want), 0);
    assert_int_equal(config.error().message.find(want), 0);
    assert_int_equal(static_cast<int>(config.error().code),
                     static_cast<int>(Errc::kInvalidArgument));
  }
}

void test_all_problems_collected(void** state) {
  (void)state;
  std::vector<ConfigProblem> problems;
  auto config = parse_config(
      "[TOTP]\nDigits=4\nPeriod=30\n[Policy]\nMaxFailures=0\nFrobnicate=1\n[Sessions]\n"
      "OnLimit=maybe\n",
      "f.conf", false, &problems);
  assert_false(config.ok());
  assert_int_equal(problems.size(), 4);
  assert_int_equal(problems[0].line, 2);
  assert_int_equal(problems[1].line, 5);
  assert_int_equal(problems[2].line, 6);
  assert_false(problems[2].fatal);  // the unknown key
  assert_int_equal(problems[3].line, 8);
  assert_contains(config.error().message, "(and 2 more)");
}

void test_unknown_key_and_section(void** state) {
  (void)state;
  std::string text = "[TOTP]\nDigits=8\nDigitz=6\n[Extra]\nA=1\nB=2\n";
  std::vector<ConfigProblem> problems;
  auto lenient = parse_config(text, "f.conf", /*strict=*/false, &problems);
  assert_true(lenient.ok());  // warnings only
  assert_int_equal(lenient->totp.digits, 8);
  assert_int_equal(problems.size(), 2);
  assert_int_equal(problems[0].line, 3);
  assert_string_equal(problems[0].key.c_str(), "Digitz");
  assert_string_equal(problems[0].message.c_str(), "unknown key");
  assert_false(problems[0].fatal);
  assert_int_equal(problems[1].line, 4);  // once, at the section header
  assert_string_equal(problems[1].section.c_str(), "Extra");
  assert_string_equal(problems[1].message.c_str(), "unknown section");
  assert_false(problems[1].fatal);

  problems.clear();
  auto strict = parse_config(text, "f.conf", /*strict=*/true, &problems);
  assert_false(strict.ok());
  assert_int_equal(problems.size(), 2);
  assert_true(problems[0].fatal);
  assert_true(problems[1].fatal);
  assert_string_equal(strict.error().message.c_str(),
                      "f.conf:3: [TOTP] Digitz: unknown key (and 1 more)");

  // Keys are case-sensitive.
  problems.clear();
  auto lower = parse_config("[TOTP]\ndigits=8\n", "f.conf", true, &problems);
  assert_false(lower.ok());
  assert_string_equal(problems[0].message.c_str(), "unknown key");
}

void test_syntax(void** state) {
  (void)state;
  std::vector<ConfigProblem> problems;
  // Indented keys are keys (not inih continuation lines); inline comments are cut.
  auto c = parse_config("[TOTP]\n  Digits = 8   ; eight\n\tPeriod=60\n# Window=9\n", "f.conf", true,
                        &problems);
  assert_true(c.ok());
  assert_int_equal(c->totp.digits, 8);
  assert_int_equal(c->totp.period, 60);
  assert_int_equal(c->window, 1);

  problems.clear();
  auto bad = parse_config("[TOTP]\nDigits 8\n[Policy\nMaxFailures=3\nWindow=2\n", "f.conf", false,
                          &problems);
  assert_false(bad.ok());
  assert_true(problems.size() >= 2);
  assert_int_equal(problems[0].line, 2);
  assert_contains(problems[0].message, "expected Key=Value");
  assert_int_equal(problems[1].line, 3);
  assert_contains(problems[1].message, "without ']'");

  problems.clear();
  auto outside = parse_config("MaxFailures=3\n", "f.conf", false, &problems);
  assert_false(outside.ok());
  assert_int_equal(problems[0].line, 1);
  assert_contains(problems[0].message, "outside any [Section]");

  // CRLF line endings and a byte order mark are fine.
  problems.clear();
  auto crlf = parse_config("\xEF\xBB\xBF[TOTP]\r\nDigits=7\r\n", "f.conf", true, &problems);
  assert_true(crlf.ok());
  assert_int_equal(crlf->totp.digits, 7);
}

// How mfad reaches Redis (CONTRACT "Trust boundaries"): redis:// only with AllowPlaintext=yes,
// TLS keys only with rediss://, a certificate only with its key. Refused at start as at
// --check-config (the rule is fatal either way).
void test_redis_transport_rules(void** state) {
  (void)state;
  struct Case {
    const char* text;
    const char* message;  // nullptr: accepted
  };
  const Case cases[] = {
      {"Address=redis://127.0.0.1:6379\n",
       "Use rediss:// or unix:/path, or set AllowPlaintext=yes"},
      {"Address=redis://127.0.0.1:6379\nAllowPlaintext=no\n", "AllowPlaintext=yes"},
      {"Address=redis://127.0.0.1:6379\nAllowPlaintext=yes\n", nullptr},
      {"Address=rediss://127.0.0.1:6379\n", nullptr},
      {"Address=unix:/run/redis/redis-server.sock\n", nullptr},
      {"Address=unix:/run/redis/redis-server.sock\nCAFile=/etc/ca.pem\n",
       "apply to a rediss:// Address only"},
      {"Address=redis://127.0.0.1:6379\nAllowPlaintext=yes\nCertFile=/c\nKeyFile=/k\n",
       "apply to a rediss:// Address only"},
      {"Address=rediss://127.0.0.1:6379\nCertFile=/etc/c.pem\n",
       "CertFile and KeyFile go together"},
      {"Address=rediss://127.0.0.1:6379\nKeyFile=/etc/k.pem\n", "CertFile and KeyFile go together"},
      {"Address=rediss://127.0.0.1:6379\nCAFile=/etc/ca.pem\nCertFile=/etc/c.pem\n"
       "KeyFile=/etc/k.pem\n",
       nullptr},
      // Redis Sentinel (docs/fleet.md, "High availability").
      {"Sentinels=127.0.0.1:26379 127.0.0.1:26380 [::1]:26381\nMasterName=mymaster\n", nullptr},
      {"Sentinels=127.0.0.1:26379\nMasterName=mymaster\nAllowPlaintext=yes\n", nullptr},
      {"Sentinels=127.0.0.1:26379\nMasterName=mymaster\nCAFile=/etc/ca.pem\n", nullptr},
      {"Sentinels=127.0.0.1:26379\nMasterName=mymaster\nCertFile=/c\nKeyFile=/k\n", nullptr},
      {"Sentinels=127.0.0.1:26379\n", "Sentinels needs MasterName"},
      {"MasterName=mymaster\n", "MasterName needs Sentinels"},
      {"Address=rediss://127.0.0.1:6379\nSentinels=127.0.0.1:26379\nMasterName=m\n",
       "set Address or Sentinels"},
      {"Sentinels=127.0.0.1:26379\nMasterName=m\nAllowPlaintext=yes\nCAFile=/etc/ca.pem\n",
       "apply to TLS only"},
      {"Sentinels=127.0.0.1:26379\nMasterName=m\nCertFile=/c\n",
       "CertFile and KeyFile go together"},
      {"Sentinels=sentinel.example.com:26379\nMasterName=m\n", "is a host name"},
      {"Sentinels=127.0.0.1\nMasterName=m\n", "no port"},
      {"Sentinels=unix:/run/sentinel.sock\nMasterName=m\n", "Sentinels must be ADDRESS:PORT"},
      {"Sentinels=rediss://127.0.0.1:26379\nMasterName=m\n", "Sentinels must be ADDRESS:PORT"},
      {"Sentinels=127.0.0.1:1 127.0.0.1:2 127.0.0.1:3 127.0.0.1:4 127.0.0.1:5 127.0.0.1:6 "
       "127.0.0.1:7 127.0.0.1:8 127.0.0.1:9 127.0.0.1:10 127.0.0.1:11 127.0.0.1:12 127.0.0.1:13 "
       "127.0.0.1:14 127.0.0.1:15 127.0.0.1:16 127.0.0.1:17\nMasterName=m\n",
       "at most 16 sentinels"},
      {"Sentinels=127.0.0.1:26379\nMasterName=my master\n", "MasterName must be"},
  };
  for (const auto& c : cases) {
    for (bool strict : {false, true}) {
      std::vector<ConfigProblem> problems;
      auto config =
          parse_config(std::string("[Redis]\n") + c.text, "/etc/mfad/mfad.conf", strict, &problems);
      if (c.message == nullptr) {
        if (!config.ok())
          fprintf(stderr, "refused: %s: %s\n", c.text, config.error().message.c_str());
        assert_true(config.ok());
        continue;
      }
      assert_false(config.ok());
      // A refused Sentinels= (or MasterName=) also leaves the other alone (said second).
      const std::string_view m(c.message);
      bool bad_sentinels = false;
      for (std::string_view either :
           {"Sentinels must", "MasterName must", "host name", "no port", "at most 16"})
        bad_sentinels = bad_sentinels || m.find(either) != std::string_view::npos;
      assert_int_equal(problems.size(), bad_sentinels ? 2 : 1);
      assert_true(problems[0].fatal);
      assert_contains(problems[0].message, c.message);
    }
  }
}

void test_cross_checks(void** state) {
  (void)state;
  std::vector<ConfigProblem> problems;
  auto twilio = parse_config("[SMS]\nProvider=twilio\n", "f.conf", false, &problems);
  assert_false(twilio.ok());
  assert_int_equal(problems.size(), 3);
  for (const auto& p : problems)
    assert_int_equal(p.line, 2);
  assert_contains(problems[0].message, "AccountSid");

  problems.clear();
  auto webhook = parse_config("[SMS]\nProvider=webhook\n", "f.conf", false, &problems);
  assert_false(webhook.ok());
  assert_contains(problems[0].message, "[Webhook] URL");

  problems.clear();
  auto lockout = parse_config("[Policy]\nLockoutSeconds=600\nMaxLockoutSeconds=300\n", "f.conf",
                              false, &problems);
  assert_false(lockout.ok());
  assert_int_equal(problems[0].line, 3);
}

void test_long_lines_and_values(void** state) {
  (void)state;
  std::vector<ConfigProblem> problems;
  // Longer than inih's 200-byte line buffer, within the 4 KiB value bound: read whole.
  std::string sid(3000, 'A');
  auto c = parse_config("[Twilio]\nAccountSid = " + sid + "   ; note\nFrom=+15005550006\n",
                        "f.conf", true, &problems);
  assert_true(c.ok());
  assert_string_equal(c->twilio_account_sid.c_str(), sid.c_str());
  assert_string_equal(c->twilio_from.c_str(), "+15005550006");

  problems.clear();
  auto big = parse_config("[Twilio]\nAccountSid=" + std::string(4097, 'A') + "\nFrom=x\n", "f.conf",
                          true, &problems);
  assert_false(big.ok());
  assert_int_equal(problems.size(), 1);
  assert_int_equal(problems[0].line, 2);
  assert_contains(problems[0].message, "value longer than 4096 bytes");

  problems.clear();
  auto huge = parse_config(
      "[Twilio]\nFrom=x\nAccountSid=" + std::string(100000, 'A') + "\n[TOTP]\nDigits=9\n", "f.conf",
      true, &problems);
  assert_false(huge.ok());
  assert_int_equal(problems.size(), 2);
  assert_int_equal(problems[0].line, 3);
  assert_contains(problems[0].message, "line longer than");
  assert_int_equal(problems[1].line, 5);  // parsing goes on after it

  // Section headers around inih's 200-byte buffer: reported, never overflowing it.
  for (size_t n = 195; n <= 202; ++n) {
    problems.clear();
    auto sec = parse_config("[" + std::string(n, 'S') + "]\nA=1\n[TOTP]\nDigits=7\n", "f.conf",
                            false, &problems);
    assert_true(sec.ok());
    assert_int_equal(sec->totp.digits, 7);
    assert_int_equal(problems.size(), 1);
    assert_int_equal(problems[0].line, 1);
    assert_string_equal(problems[0].message.c_str(), "unknown section");
  }
}

void test_nul_and_utf8(void** state) {
  auto* f = static_cast<Fixture*>(*state);
  std::vector<ConfigProblem> problems;
  std::string text = "[TOTP]\nDigits=6\nIssuer=a";
  text.push_back('\0');
  text += "b\n";
  auto nul = load_config(write_file(f, "nul.conf", text), true, false, &problems);
  assert_false(nul.ok());
  assert_contains(nul.error().message, "nul.conf:3: contains a NUL byte");

  problems.clear();
  auto latin1 = parse_config("[TOTP]\n\nIssuer=Caf\xE9\n", "f.conf", false, &problems);
  assert_false(latin1.ok());
  assert_int_equal(problems[0].line, 3);
  assert_contains(latin1.error().message, "not valid UTF-8");

  problems.clear();
  auto utf8 = parse_config("[TOTP]\nIssuer=Caf\xC3\xA9 \xE2\x9C\x93\n", "f.conf", true, &problems);
  assert_true(utf8.ok());
  assert_string_equal(utf8->issuer.c_str(), "Caf\xC3\xA9 \xE2\x9C\x93");

  problems.clear();
  std::string large(1024 * 1024 + 1, '#');
  auto too_big = load_config(write_file(f, "big.conf", large), true, false, &problems);
  assert_false(too_big.ok());
  assert_contains(too_big.error().message, "larger than 1 MiB");
}

// An issuer an older mfad accepted (a tab, DEL or C1 control; common/totp_issuer.hpp) still
// loads at start, ignored with a warning; --check-config refuses it.
void test_issuer_with_control_characters(void** state) {
  (void)state;
  for (const char* issuer : {"Tab\tCorp", "Del\x7f", "C1\xC2\x85"}) {
    const std::string text = std::string("[TOTP]\nIssuer=") + issuer + "\nDigits=8\n";
    std::vector<ConfigProblem> problems;
    auto lenient = parse_config(text, "f.conf", false, &problems);
    assert_true(lenient.ok());
    assert_true(lenient->issuer.empty());
    assert_int_equal(lenient->totp.digits, 8);
    assert_int_equal(problems.size(), 1);
    assert_false(problems[0].fatal);
    assert_int_equal(problems[0].line, 2);
    assert_contains(problems[0].to_string(), "f.conf:2: [TOTP] Issuer: Issuer contains control");

    problems.clear();
    auto strict = parse_config(text, "f.conf", true, &problems);
    assert_false(strict.ok());
    assert_contains(strict.error().message, "Issuer contains control characters");
  }
}

void test_unsafe_files_refused(void** state) {
  auto* f = static_cast<Fixture*>(*state);
  std::vector<ConfigProblem> problems;
  std::string good = "[TOTP]\nDigits=6\n";

  auto world = load_config(write_file(f, "world.conf", good, 0666), true, false, &problems);
  assert_false(world.ok());
  assert_contains(world.error().message, "world.conf: is group- or world-writable (mode 0666)");

  auto group = load_config(write_file(f, "group.conf", good, 0620), true, false, &problems);
  assert_false(group.ok());
  assert_contains(group.error().message, "mode 0620");

  std::string target = write_file(f, "real.conf", good, 0600);
  std::string link = f->dir + "/link.conf";
  assert_int_equal(symlink(target.c_str(), link.c_str()), 0);
  auto linked = load_config(link, true, false, &problems);
  assert_false(linked.ok());
  assert_contains(linked.error().message, "symbolic link");
  // Also at the default path: a symlink there is no "missing file".
  linked = load_config(link, false, false, &problems);
  assert_false(linked.ok());

  auto dir = load_config(f->dir, true, false, &problems);
  assert_false(dir.ok());

  if (geteuid() == 0) {
    std::string theirs = write_file(f, "theirs.conf", good, 0644);
    assert_int_equal(chown(theirs.c_str(), 1234, 1234), 0);
    auto owned = load_config(theirs, true, false, &problems);
    assert_false(owned.ok());
    assert_contains(owned.error().message, "owned by uid 1234, not root");
  }

  // The safe file itself loads.
  problems.clear();
  auto ok = load_config(target, true, true, &problems);
  assert_true(ok.ok());
  assert_true(problems.empty());
}

void test_secret_in_readable_file_warns(void** state) {
  auto* f = static_cast<Fixture*>(*state);
  std::vector<ConfigProblem> problems;
  std::string text = "[Twilio]\nAuthToken=s3cr3t-value\n";
  auto c = load_config(write_file(f, "tok.conf", text, 0644), true, true, &problems);
  assert_true(c.ok());
  assert_int_equal(problems.size(), 1);
  assert_false(problems[0].fatal);
  assert_contains(problems[0].message, "world-readable");
  assert_false(contains(problems[0].to_string(), "s3cr3t"));  // never the secret itself
  problems.clear();
  c = load_config(write_file(f, "tok600.conf", text, 0600), true, true, &problems);
  assert_true(c.ok());
  assert_true(problems.empty());
}

}  // namespace

int main() {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_defaults_when_default_path_missing, setup, teardown),
      cmocka_unit_test_setup_teardown(test_missing_given_file_is_error, setup, teardown),
      cmocka_unit_test_setup_teardown(test_every_key_parsed, setup, teardown),
      cmocka_unit_test(test_each_bad_value_with_line),
      cmocka_unit_test(test_all_problems_collected),
      cmocka_unit_test(test_unknown_key_and_section),
      cmocka_unit_test(test_syntax),
      cmocka_unit_test(test_cross_checks),
      cmocka_unit_test(test_long_lines_and_values),
      cmocka_unit_test_setup_teardown(test_nul_and_utf8, setup, teardown),
      cmocka_unit_test(test_issuer_with_control_characters),
      cmocka_unit_test(test_redis_transport_rules),
      cmocka_unit_test_setup_teardown(test_unsafe_files_refused, setup, teardown),
      cmocka_unit_test_setup_teardown(test_secret_in_readable_file_warns, setup, teardown),
  };
  return cmocka_run_group_tests(tests, nullptr, nullptr);
}

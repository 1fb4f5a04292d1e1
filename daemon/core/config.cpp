#include "core/config.hpp"

#include <fcntl.h>
#include <ini.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <map>
#include <optional>

#include "common/handles.hpp"
#include "core/redis_address.hpp"

namespace mfa {
namespace {

constexpr size_t kMaxFileSize = 1 << 20;
constexpr size_t kMaxValue = 4096;
// A key, '=', a value of kMaxValue bytes and a comment fit.
constexpr size_t kMaxLine = kMaxValue + 512;
constexpr int kDay = 86400;

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t' || s.front() == '\r')) {
    s.remove_prefix(1);
  }
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\r')) {
    s.remove_suffix(1);
  }
  return s;
}

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

// Length of the valid UTF-8 sequence at s[i], or 0 (RFC 3629: no overlongs, no surrogates,
// nothing above U+10FFFF).
size_t utf8_sequence(std::string_view s, size_t i) {
  auto b = [&](size_t k) { return static_cast<unsigned char>(s[k]); };
  unsigned char c = b(i);
  if (c < 0x80)
    return 1;
  size_t n;
  uint32_t cp;
  if ((c & 0xe0) == 0xc0) {
    n = 2;
    cp = c & 0x1f;
  } else if ((c & 0xf0) == 0xe0) {
    n = 3;
    cp = c & 0x0f;
  } else if ((c & 0xf8) == 0xf0) {
    n = 4;
    cp = c & 0x07;
  } else {
    return 0;
  }
  if (i + n > s.size())
    return 0;
  for (size_t k = 1; k < n; ++k) {
    if ((b(i + k) & 0xc0) != 0x80)
      return 0;
    cp = (cp << 6) | (b(i + k) & 0x3f);
  }
  if ((n == 2 && cp < 0x80) || (n == 3 && cp < 0x800) || (n == 4 && cp < 0x10000))
    return 0;
  if (cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
    return 0;
  return n;
}

// The 1-based line of the first invalid UTF-8 sequence, or 0.
int first_invalid_utf8_line(std::string_view s) {
  int line = 1;
  for (size_t i = 0; i < s.size();) {
    size_t n = utf8_sequence(s, i);
    if (n == 0)
      return line;
    if (s[i] == '\n')
      ++line;
    i += n;
  }
  return 0;
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

namespace {

// Validates one value and stores it, or returns the problem.
using Apply = std::function<std::optional<std::string>(Config&, std::string_view)>;

struct KeySpec {
  const char* section;
  const char* key;
  Apply apply;
};

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

Apply int_key(const char* key, int Config::*field, int min, int max) {
  return [=](Config& c, std::string_view v) { return parse_int(key, v, min, max, &(c.*field)); };
}

Apply string_key(std::string Config::*field) {
  return [=](Config& c, std::string_view v) -> std::optional<std::string> {
    c.*field = std::string(v);
    return std::nullopt;
  };
}

Apply path_key(const char* key, std::string Config::*field, bool may_be_empty) {
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

Apply url_key(const char* key, std::string Config::*field) {
  return [=](Config& c, std::string_view v) -> std::optional<std::string> {
    if (!v.empty() && !is_http_url(v)) {
      return std::string(key) + " must be an https:// (or http://) URL (got " + quoted(v) + ")";
    }
    c.*field = std::string(v);
    return std::nullopt;
  };
}

const std::vector<KeySpec>& key_specs() {
  static const std::vector<KeySpec> specs = {
      {"Daemon", "StateDirectory", path_key("StateDirectory", &Config::state_directory, false)},
      {"Daemon", "KeyFile", path_key("KeyFile", &Config::key_file, false)},
      {"Daemon", "AdminGroup",
       [](Config& c, std::string_view v) -> std::optional<std::string> {
         if (v.empty() || v.size() > 256 || v.find_first_of(":,") != std::string_view::npos) {
           return "AdminGroup must be a group name (got " + quoted(v) + ")";
         }
         c.admin_group = std::string(v);
         return std::nullopt;
       }},

      {"TOTP", "Issuer",
       [](Config& c, std::string_view v) -> std::optional<std::string> {
         // The issuer is the label prefix of the otpauth URI ("ISSUER:ACCOUNT").
         if (v.find(':') != std::string_view::npos || v.size() > 128) {
           return "Issuer must not contain ':' and must be at most 128 bytes";
         }
         c.issuer = std::string(v);
         return std::nullopt;
       }},
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
           return "Address must be redis://HOST:PORT or unix:/absolute/path, HOST an IP "
                  "address (" +
                  (parsed.ok() ? std::string("unix: path with . or ..") : parsed.error().message) +
                  ")";
         }
         c.redis_address = std::string(v);
         return std::nullopt;
       }},
      {"Redis", "User", string_key(&Config::redis_user)},
      {"Redis", "Timeout", int_key("Timeout", &Config::redis_timeout_ms, 10, 10000)},
      {"Redis", "PasswordFile", path_key("PasswordFile", &Config::redis_password_file, true)},
      {"Redis", "KeyPrefix",
       [](Config& c,
          std::string_view v) -> std::
                                  optional<std::string> {
                                    if (v.size() > 64 ||
                                        v.find_first_of(" \t") != std::string_view::npos) {
                                      return "KeyPrefix must be at most 64 bytes without spaces";
                                    }
                                    c.redis_key_prefix = std::string(v);
                                    return std::nullopt;
                                  }},
      {"Redis", "HostId",
       [](Config& c, std::string_view v) -> std::
                                             optional<std::string> {
                                               if (!v.empty() && !is_valid_host_id(v)) {
                                                 return "HostId must be 1 to 64 letters, digits, "
                                                        "'.', '_' or '-', starting with a "
                                                        "letter or digit (got " +
                                                        quoted(v) + ")";
                                               }
                                               c.redis_host_id = std::string(v);
                                               return std::nullopt;
                                             }},

      {"Audit", "RetentionDays", int_key("RetentionDays", &Config::audit_retention_days, 1, 36500)},
  };
  return specs;
}

bool known_section(std::string_view section) {
  for (const auto& spec : key_specs()) {
    if (section == spec.section)
      return true;
  }
  return false;
}

class Parser {
 public:
  Parser(std::string_view text, std::string file, bool strict)
      : text_(text), file_(std::move(file)), strict_(strict) {}

  void run() {
    int rc = ini_parse_stream(&Parser::read_line, this, &Parser::handle, this);
    // The reader hands inih only lines it can parse; anything left is reported here.
    if (rc > 0 && !has_problem_at(rc))
      add(rc, "", "", "syntax error", true);
    if (rc < 0)
      add(0, "", "", "cannot parse the file", true);
    cross_check();
  }

  Config& config() { return config_; }
  std::vector<ConfigProblem>& problems() { return problems_; }

 private:
  // inih's reader: one line per call. Lines are left-trimmed (so an indented key is never taken
  // for a continuation line), checked, and long values go around inih's 200-byte line buffer.
  static char* read_line(char* str, int num, void* stream) {
    auto* self = static_cast<Parser*>(stream);
    if (self->pos_ >= self->text_.size())
      return nullptr;
    size_t end = self->text_.find('\n', self->pos_);
    if (end == std::string_view::npos)
      end = self->text_.size();
    std::string_view line = self->text_.substr(self->pos_, end - self->pos_);
    self->pos_ = end + 1;
    self->line_++;
    self->long_line_ = 0;
    std::string out = self->check_line(trim(line), static_cast<size_t>(num));
    out += '\n';
    // inih's buffer is not instrumented: never hand it more than it holds, whatever the above.
    if (out.size() + 1 > static_cast<size_t>(num))
      out = "\n";
    std::memcpy(str, out.data(), out.size());
    str[out.size()] = '\0';
    return str;
  }

  // What inih gets for a line (at most limit - 2 bytes).
  std::string check_line(std::string_view line, size_t limit) {
    if (line.empty() || line.front() == ';' || line.front() == '#')
      return "";
    if (line.size() > kMaxLine) {
      add(line_, section_, "", "line longer than " + std::to_string(kMaxLine) + " bytes", true);
      return "";
    }
    if (line.front() == '[') {
      size_t close = line.find(']');
      if (close == std::string_view::npos) {
        add(line_, "", "", "section header without ']'", true);
        section_ = "";
        broken_section_ = true;
        return "[]";  // keys up to the next valid section are reported as unknown
      }
      section_ = std::string(line.substr(1, close - 1));
      broken_section_ = false;
      if (!known_section(section_)) {
        add(line_, section_, "", "unknown section", strict_);
      }
      if (close + 3 > limit)
        return "[]";  // with its newline and NUL
      return std::string(line.substr(0, close + 1));
    }
    size_t sep = line.find_first_of("=:");
    if (sep == std::string_view::npos || sep == 0) {
      add(line_, section_, "", "expected Key=Value, a [Section] or a comment", true);
      return "";
    }
    if (line.size() + 2 <= limit)
      return std::string(line);
    std::string_view key = trim(line.substr(0, sep));
    if (key.size() + 16 > limit) {
      add(line_, section_, "", "key too long", true);
      return "";
    }
    long_value_ = std::string(line.substr(sep + 1));
    long_line_ = line_;
    return std::string(key) + "=#long";
  }

  static int handle(void* user, const char* section, const char* name, const char* value) {
    auto* self = static_cast<Parser*>(user);
    if (!section || !name || !value)
      return 1;
    std::string_view v = value;
    std::string long_value;
    if (self->long_line_ == self->line_) {
      // What inih does to a value: cut an inline comment (';' after whitespace) and trim.
      std::string_view raw = self->long_value_;
      for (size_t i = 1; i < raw.size(); ++i) {
        if (raw[i] == ';' && (raw[i - 1] == ' ' || raw[i - 1] == '\t')) {
          raw = raw.substr(0, i);
          break;
        }
      }
      long_value = std::string(trim(raw));
      v = long_value;
    }
    self->apply(self->section_, name, v);
    return 1;
  }

  void apply(const std::string& section, const std::string& key, std::string_view value) {
    if (section.empty() && !broken_section_) {
      add(line_, "", key, "key outside any [Section]", true);
      return;
    }
    if (!known_section(section))
      return;  // reported once, at the section header
    if (value.size() > kMaxValue) {
      add(line_, section, key, "value longer than " + std::to_string(kMaxValue) + " bytes", true);
      return;
    }
    for (char c : value) {
      if (static_cast<unsigned char>(c) < 0x20 && c != '\t') {
        add(line_, section, key, "value contains control characters", true);
        return;
      }
    }
    for (const auto& spec : key_specs()) {
      if (section == spec.section && key == spec.key) {
        if (auto problem = spec.apply(config_, value)) {
          add(line_, section, key, *problem, true);
        } else {
          key_lines_[section + "." + key] = line_;
        }
        return;
      }
    }
    add(line_, section, key, "unknown key", strict_);
  }

  // Rules between keys; problems point at the key that decides.
  void cross_check() {
    if (config_.max_lockout_seconds < config_.lockout_seconds) {
      add(line_of("Policy.MaxLockoutSeconds"), "Policy", "MaxLockoutSeconds",
          "MaxLockoutSeconds must not be less than LockoutSeconds", true);
    }
    if (config_.sms_provider == SmsProvider::kTwilio) {
      int line = line_of("SMS.Provider");
      if (config_.twilio_account_sid.empty()) {
        add(line, "SMS", "Provider", "Provider=twilio needs [Twilio] AccountSid", true);
      }
      // The systemd credential twilio-token ($CREDENTIALS_DIRECTORY) is the third way.
      if (config_.twilio_auth_token.empty() && config_.twilio_auth_token_file.empty() &&
          !getenv("CREDENTIALS_DIRECTORY")) {
        add(line, "SMS", "Provider", "Provider=twilio needs [Twilio] AuthTokenFile (or AuthToken)",
            true);
      }
      if (config_.twilio_from.empty() && config_.twilio_messaging_service_sid.empty()) {
        add(line, "SMS", "Provider", "Provider=twilio needs [Twilio] From or MessagingServiceSid",
            true);
      }
    }
    if (config_.sms_provider == SmsProvider::kWebhook && config_.webhook_url.empty()) {
      add(line_of("SMS.Provider"), "SMS", "Provider", "Provider=webhook needs [Webhook] URL", true);
    }
  }

  int line_of(const std::string& key) const {
    auto it = key_lines_.find(key);
    return it == key_lines_.end() ? 0 : it->second;
  }

  bool has_problem_at(int line) const {
    for (const auto& p : problems_) {
      if (p.line == line)
        return true;
    }
    return false;
  }

  void add(int line, std::string section, std::string key, std::string message, bool fatal) {
    ConfigProblem p;
    p.file = file_;
    p.line = line;
    p.section = std::move(section);
    p.key = std::move(key);
    p.message = std::move(message);
    p.fatal = fatal;
    problems_.push_back(std::move(p));
  }

  std::string_view text_;
  std::string file_;
  bool strict_;
  size_t pos_ = 0;
  int line_ = 0;
  std::string section_;
  bool broken_section_ = false;
  int long_line_ = 0;
  std::string long_value_;
  std::map<std::string, int> key_lines_;
  Config config_;
  std::vector<ConfigProblem> problems_;
};

Result<Config> finish(Config config, std::vector<ConfigProblem> problems,
                      std::vector<ConfigProblem>* ret_problems) {
  const ConfigProblem* first_fatal = nullptr;
  size_t fatal = 0;
  for (const auto& p : problems) {
    if (p.fatal) {
      if (!first_fatal)
        first_fatal = &p;
      ++fatal;
    }
  }
  Result<Config> result = std::move(config);
  if (first_fatal) {
    std::string message = first_fatal->to_string();
    if (fatal > 1)
      message += " (and " + std::to_string(fatal - 1) + " more)";
    result = make_error(Errc::kInvalidArgument, std::move(message));
  }
  if (ret_problems) {
    for (auto& p : problems)
      ret_problems->push_back(std::move(p));
  }
  return result;
}

Result<Config> refuse(const std::string& file, int line, std::string message,
                      std::vector<ConfigProblem>* ret_problems,
                      Errc code = Errc::kInvalidArgument) {
  ConfigProblem p;
  p.file = file;
  p.line = line;
  p.message = std::move(message);
  std::string text = p.to_string();
  if (ret_problems)
    ret_problems->push_back(std::move(p));
  return make_error(code, std::move(text));
}

}  // namespace

std::string ConfigProblem::to_string() const {
  std::string out = file.empty() ? std::string("mfad.conf") : file;
  if (line > 0)
    out += ":" + std::to_string(line);
  out += ": ";
  if (!section.empty())
    out += "[" + section + "] ";
  if (!key.empty())
    out += key + ": ";
  out += message;
  return out;
}

Result<Config> parse_config(std::string_view text, const std::string& file, bool strict,
                            std::vector<ConfigProblem>* ret_problems) {
  if (text.size() > kMaxFileSize) {
    return refuse(file, 0, "file is larger than 1 MiB", ret_problems);
  }
  size_t nul = text.find('\0');
  if (nul != std::string_view::npos) {
    int line = 1 + static_cast<int>(std::count(text.begin(), text.begin() + nul, '\n'));
    return refuse(file, line, "contains a NUL byte (not a text file?)", ret_problems);
  }
  if (int line = first_invalid_utf8_line(text)) {
    return refuse(file, line, "is not valid UTF-8", ret_problems);
  }
  if (text.starts_with("\xEF\xBB\xBF"))
    text.remove_prefix(3);  // a UTF-8 byte order mark
  Parser parser(text, file, strict);
  parser.run();
  parser.config().path = file;
  return finish(std::move(parser.config()), std::move(parser.problems()), ret_problems);
}

Result<Config> load_config(const std::string& path, bool path_given, bool strict,
                           std::vector<ConfigProblem>* ret_problems) {
  if (path.empty() || path.find('\0') != std::string::npos) {
    return refuse(path, 0, "no configuration file named", ret_problems);
  }
  // O_NOFOLLOW: a symlink in place of the file is refused, not followed; O_NONBLOCK: a FIFO
  // cannot hang the daemon before the S_ISREG check.
  Fd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY | O_NONBLOCK));
  if (!fd.valid()) {
    int err = errno;
    if (err == ENOENT && !path_given)
      return Config{};
    if (err == ELOOP) {
      return refuse(path, 0, "is a symbolic link; refusing it (name the real file)", ret_problems);
    }
    return refuse(path, 0, std::string("cannot open: ") + std::strerror(err), ret_problems,
                  Errc::kIo);
  }
  struct stat st {};
  if (fstat(fd.get(), &st) < 0) {
    return refuse(path, 0, std::string("cannot stat: ") + std::strerror(errno), ret_problems,
                  Errc::kIo);
  }
  if (!S_ISREG(st.st_mode))
    return refuse(path, 0, "is not a regular file", ret_problems);
  if (st.st_mode & (S_IWGRP | S_IWOTH)) {
    char mode[8];
    std::snprintf(mode, sizeof mode, "%04o", static_cast<unsigned>(st.st_mode & 07777));
    return refuse(
        path, 0,
        std::string("is group- or world-writable (mode ") + mode + "); refusing it (chmod go-w)",
        ret_problems);
  }
  if (st.st_uid != 0 && st.st_uid != geteuid()) {
    return refuse(
        path, 0,
        "is owned by uid " + std::to_string(st.st_uid) + ", not root; refusing it (chown root)",
        ret_problems);
  }
  if (st.st_size > static_cast<off_t>(kMaxFileSize)) {
    return refuse(path, 0, "is larger than 1 MiB", ret_problems);
  }

  std::string text;
  char buf[16384];
  for (;;) {
    ssize_t n = ::read(fd.get(), buf, sizeof buf);
    if (n < 0) {
      if (errno == EINTR)
        continue;
      return refuse(path, 0, std::string("cannot read: ") + std::strerror(errno), ret_problems,
                    Errc::kIo);
    }
    if (n == 0)
      break;
    text.append(buf, static_cast<size_t>(n));
    if (text.size() > kMaxFileSize)
      return refuse(path, 0, "is larger than 1 MiB", ret_problems);
  }

  std::vector<ConfigProblem> problems;
  auto config = parse_config(text, path, strict, &problems);
  // A secret in a file others can read is worth a warning (it stays readable until fixed).
  if (config.ok() && !config->twilio_auth_token.empty() && (st.st_mode & S_IROTH)) {
    ConfigProblem p;
    p.file = path;
    p.section = "Twilio";
    p.key = "AuthToken";
    p.message = "secret in a world-readable file; use AuthTokenFile or chmod 0600";
    p.fatal = false;
    problems.push_back(std::move(p));
  }
  if (ret_problems) {
    for (auto& p : problems)
      ret_problems->push_back(std::move(p));
  }
  return config;
}

}  // namespace mfa

// `mfactl doctor` (docs/mfactl.md, "doctor"): checks the installation the way a careful admin
// would, one line per check ("ok|warn|fail CHECK-ID message"), and says how to fix each problem.
// Exit 0 when no check fails, 1 otherwise. What mfactl cannot see itself (the database, fleet
// mode) comes from mfad's CheckHealth (admin only).
#include <dirent.h>
#include <fcntl.h>
#include <pwd.h>
#include <sys/stat.h>
#include <sys/timex.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <optional>
#include <cstring>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "mfactl/doctor_checks.hpp"
#include "mfactl/reply_json.hpp"
#include "mfactl/verbs.hpp"

namespace mfa::ctl {

using nlohmann::json;

namespace {

constexpr char kDefaultPamDir[] = "/etc/pam.d";
constexpr char kDefaultSshdConfig[] = "/etc/ssh/sshd_config";
constexpr char kSshd[] = "/usr/sbin/sshd";
constexpr char kDefaultKeyFile[] = "/etc/mfad/master.key";
constexpr size_t kMaxConfigFileSize = 1 << 20;
constexpr size_t kMaxPamFiles = 500;
// sudo's own default (sudoers(5)); longer is one code for a long while.
constexpr double kSudoTimeoutMinutes = 15;

// A configuration file's text (at most kMaxConfigFileSize); nullopt when it cannot be read.
std::optional<std::string> read_text(const std::string& path) {
  const int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
  if (fd < 0)
    return std::nullopt;
  struct stat st {};
  std::optional<std::string> out;
  if (fstat(fd, &st) == 0 && S_ISREG(st.st_mode) &&
      static_cast<size_t>(st.st_size) <= kMaxConfigFileSize) {
    std::string text;
    char buf[8192];
    ssize_t n = 0;
    while ((n = read(fd, buf, sizeof buf)) > 0 && text.size() <= kMaxConfigFileSize)
      text.append(buf, static_cast<size_t>(n));
    if (n == 0)
      out = std::move(text);
  }
  close(fd);
  return out;
}

std::string read_pam_include(const std::string& dir, const std::string& name) {
  return read_text(dir + "/" + name).value_or("");
}

std::vector<std::string> list_dir(const std::string& dir) {
  std::vector<std::string> names;
  DIR* d = opendir(dir.c_str());
  if (d == nullptr)
    return names;
  while (struct dirent* e = readdir(d)) {
    if (e->d_name[0] == '.' || names.size() >= kMaxPamFiles)
      continue;
    names.emplace_back(e->d_name);
  }
  closedir(d);
  std::sort(names.begin(), names.end());
  return names;
}

CheckResult result(const char* id, CheckStatus status, std::string message) {
  return CheckResult{id, status, std::move(message)};
}

void check_pam_dir(const std::string& dir, const PamStackContext& ctx,
                   std::vector<CheckResult>& out) {
  size_t found = 0;
  for (const auto& name : list_dir(dir)) {
    auto text = read_text(dir + "/" + name);
    if (!text || !uses_pam_mfa(*text))
      continue;
    ++found;
    out.push_back(check_pam_stack(name, *text, ctx));
  }
  if (found == 0) {
    out.push_back(result("pam-stack", CheckStatus::kWarn,
                         "no file in " + dir +
                             " uses pam_mfa.so: no login asks for a second factor; see "
                             "docs/admin-guide.md (sshd, sudo, login)"));
  }
}

std::optional<std::string> run_sshd_dash_t() {
  if (access(kSshd, X_OK) != 0)
    return std::nullopt;
  FILE* p = popen("/usr/sbin/sshd -T 2>/dev/null", "re");
  if (p == nullptr)
    return std::nullopt;
  std::string text;
  char buf[8192];
  size_t n = 0;
  while ((n = fread(buf, 1, sizeof buf, p)) > 0 && text.size() <= kMaxConfigFileSize)
    text.append(buf, n);
  const int status = pclose(p);
  if (status != 0 || text.empty())
    return std::nullopt;
  return text;
}

CheckResult check_sshd_config(const Options& opt) {
  if (!opt.sshd_config.empty()) {
    auto text = read_text(opt.sshd_config);
    if (!text)
      return result("sshd", CheckStatus::kFail, "cannot read " + opt.sshd_config);
    return check_sshd(parse_sshd_settings(*text, false), opt.sshd_config);
  }
  if (auto t = run_sshd_dash_t())
    return check_sshd(parse_sshd_settings(*t, true), "sshd -T");
  if (auto text = read_text(kDefaultSshdConfig)) {
    return check_sshd(parse_sshd_settings(*text, false),
                      std::string(kDefaultSshdConfig) + "; sshd -T did not answer");
  }
  return result("sshd", CheckStatus::kOk, "sshd is not installed: nothing to check");
}

// sudoers' Defaults timestamp_timeout= (minutes; negative: never expires), the last one read.
std::optional<double> sudo_timestamp_timeout() {
  std::vector<std::string> files{"/etc/sudoers"};
  for (const auto& name : list_dir("/etc/sudoers.d")) {
    // sudo skips names with a '.' or ending in '~'.
    if (name.find('.') == std::string::npos && name.back() != '~')
      files.push_back("/etc/sudoers.d/" + name);
  }
  std::optional<double> value;
  for (const auto& f : files) {
    auto text = read_text(f);
    if (!text)
      continue;
    size_t pos = 0;
    while ((pos = text->find("timestamp_timeout", pos)) != std::string::npos) {
      pos += std::strlen("timestamp_timeout");
      size_t i = pos;
      while (i < text->size() && ((*text)[i] == ' ' || (*text)[i] == '='))
        ++i;
      char* end = nullptr;
      const double v = std::strtod(text->c_str() + i, &end);
      if (end != text->c_str() + i)
        value = v;
    }
  }
  return value;
}

CheckResult check_sudo(const std::string& pam_dir, const PamStackContext& ctx) {
  auto text = read_text(pam_dir + "/sudo");
  if (!text)
    return result("sudo", CheckStatus::kOk, "no " + pam_dir + "/sudo: sudo is not installed");
  if (!auth_runs_pam_mfa("sudo", *text, ctx)) {
    return result("sudo", CheckStatus::kWarn,
                  pam_dir +
                      "/sudo does not run pam_mfa.so: sudo needs no second factor; add "
                      "'auth required pam_mfa.so' after its password line (docs/sudo.md)");
  }
  const auto timeout = sudo_timestamp_timeout();
  if (timeout && *timeout < 0) {
    return result("sudo", CheckStatus::kWarn,
                  "sudoers sets timestamp_timeout negative: one code opens sudo for the rest of "
                  "the session; set Defaults timestamp_timeout=5");
  }
  if (timeout && *timeout > kSudoTimeoutMinutes) {
    return result("sudo", CheckStatus::kWarn,
                  "sudoers sets timestamp_timeout=" + std::to_string(static_cast<int>(*timeout)) +
                      ": one code opens sudo for that many minutes; 15 or less is usual");
  }
  return result("sudo", CheckStatus::kOk,
                pam_dir + "/sudo runs pam_mfa.so; timestamp_timeout " +
                    (timeout ? std::to_string(static_cast<int>(*timeout)) + " min"
                             : std::string("sudo's default")));
}

CheckResult check_clock() {
  struct timex tx {};
  const int state = adjtimex(&tx);
  if (state < 0)
    return result("clock", CheckStatus::kWarn, "cannot ask the kernel about the clock (adjtimex)");
  if (state == TIME_ERROR || (tx.status & STA_UNSYNC) != 0) {
    return result("clock", CheckStatus::kWarn,
                  "the clock is not synchronised (adjtimex: STA_UNSYNC): TOTP codes depend on it; "
                  "enable systemd-timesyncd or chrony (timedatectl set-ntp true)");
  }
  return result("clock", CheckStatus::kOk,
                "synchronised (estimated error " + std::to_string(tx.esterror / 1000) + " ms)");
}

CheckResult check_key_file(const std::string& path) {
  struct stat st {};
  if (lstat(path.c_str(), &st) != 0) {
    return result("key-file", CheckStatus::kWarn,
                  path +
                      " is missing: mfad reads the systemd credential mfad.key, or creates the "
                      "file at its first start; keep a backup of it (docs/operations.md)");
  }
  if (!S_ISREG(st.st_mode)) {
    return result("key-file", CheckStatus::kFail,
                  path +
                      " is not a regular file (a symlink?): replace it with the key itself, "
                      "owned by root, mode 0600");
  }
  const struct passwd* mfad = getpwnam("mfad");
  if (st.st_uid != 0 && (mfad == nullptr || st.st_uid != mfad->pw_uid)) {
    return result("key-file", CheckStatus::kFail,
                  path + " is owned by uid " + std::to_string(st.st_uid) +
                      ": whoever owns it can read every secret; chown root:root " + path);
  }
  if ((st.st_mode & 077) != 0) {
    char mode[8];
    (void)snprintf(mode, sizeof mode, "%04o", static_cast<unsigned>(st.st_mode & 07777));
    return result(
        "key-file", CheckStatus::kFail,
        path + " has mode " + mode + ": others may read the master key; chmod 600 " + path);
  }
  return result("key-file", CheckStatus::kOk, path + ": owner root, mode 0600");
}

void check_daemon_side(const json& health, std::vector<CheckResult>& out) {
  const std::string db = str_field(health, "database");
  if (db.empty()) {
    out.push_back(result("database", CheckStatus::kOk, "PRAGMA quick_check: ok"));
  } else {
    out.push_back(result("database", CheckStatus::kFail,
                         "PRAGMA quick_check: " + db +
                             ": stop mfad and restore the database from a backup "
                             "(docs/operations.md)"));
  }
  if (!health.value("fleet", false)) {
    out.push_back(result("redis", CheckStatus::kOk, "not in fleet mode ([Redis] Address= unset)"));
    return;
  }
  const std::string scheme = str_field(health, "redis_scheme");
  if (health.value("degraded", false)) {
    out.push_back(result("redis", CheckStatus::kFail,
                         "Redis does not answer: mfad runs degraded (local limits, stricter "
                         "rules); check the Redis server and [Redis] Address= (docs/fleet.md)"));
  } else if (scheme == "redis") {
    out.push_back(result("redis", CheckStatus::kWarn,
                         "Redis answers over plain TCP: anyone on the path reads and changes "
                         "the fleet's state; use rediss:// (TLS) or a Unix socket"));
  } else {
    out.push_back(result(
        "redis", CheckStatus::kOk,
        "Redis answers (" + std::string(scheme == "unix" ? "Unix socket" : "TLS, verified") + ")"));
  }
}

}  // namespace

int cmd_doctor(Context& ctx, const std::vector<char*>& args) {
  if (int r = check_args(ctx, args, 0, 0, kVoPamDir | kVoSshdConfig, "doctor"))
    return r;
  std::vector<CheckResult> checks;

  // The daemon first: the other checks use what it says.
  std::optional<json> health;
  auto bus = ctx.bus();
  if (!bus.ok()) {
    checks.push_back(result("daemon", CheckStatus::kFail,
                            "mfad does not answer on the bus: " + bus.error().message +
                                "; start it (systemctl start mfad) and see journalctl -u mfad"));
  } else {
    auto h = (*bus)->check_health();
    if (!h.ok()) {
      checks.push_back(
          result("daemon", CheckStatus::kFail,
                 h.error().message + (h.error().code == Errc::kNotAllowed
                                          ? " (run doctor as root or a member of AdminGroup)"
                                          : "; start it (systemctl start mfad) and see "
                                            "journalctl -u mfad")));
    } else {
      health = std::move(h).value();
      const std::string version = str_field(*health, "version");
      if (version != MFA_VERSION) {
        checks.push_back(result("daemon", CheckStatus::kWarn,
                                "mfad " + version +
                                    " answers, but this mfactl is " MFA_VERSION
                                    ": restart mfad after an upgrade (systemctl restart mfad)"));
      } else {
        checks.push_back(result("daemon", CheckStatus::kOk, "mfad " + version + " answers"));
      }
    }
  }

  PamStackContext pam_ctx;
  pam_ctx.dir = ctx.opt.pam_dir.empty() ? kDefaultPamDir : ctx.opt.pam_dir;
  pam_ctx.read = read_pam_include;
  pam_ctx.rollout_deadline = health && !str_field(*health, "rollout_deadline").empty();
  check_pam_dir(pam_ctx.dir, pam_ctx, checks);
  checks.push_back(check_sshd_config(ctx.opt));
  checks.push_back(check_sudo(pam_ctx.dir, pam_ctx));
  checks.push_back(check_clock());
  const std::string key_file = health && !str_field(*health, "key_file").empty()
                                   ? str_field(*health, "key_file")
                                   : kDefaultKeyFile;
  checks.push_back(check_key_file(key_file));
  if (health) {
    check_daemon_side(*health, checks);
  } else {
    for (const char* id : {"database", "redis"}) {
      checks.push_back(result(id, CheckStatus::kWarn, "not checked: mfad did not answer"));
    }
  }

  const bool ok = std::none_of(checks.begin(), checks.end(),
                               [](const CheckResult& c) { return c.status == CheckStatus::kFail; });
  if (ctx.opt.json) {
    json list = json::array();
    for (const auto& c : checks) {
      list.push_back(
          json{{"id", c.id}, {"status", check_status_name(c.status)}, {"message", c.message}});
    }
    print_json(json{{"ok", ok}, {"checks", list}});
  } else {
    for (const auto& c : checks)
      printf("%s %s %s\n", check_status_name(c.status), c.id.c_str(), c.message.c_str());
  }
  return ok ? kExitOk : kExitFailed;
}

}  // namespace mfa::ctl

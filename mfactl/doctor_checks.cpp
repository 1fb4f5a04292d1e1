#include "mfactl/doctor_checks.hpp"

#include <algorithm>
#include <array>
#include <cctype>
#include <set>

#include "common/pam_args.hpp"

namespace mfa::ctl {

namespace {

constexpr size_t kMaxPamLines = 1000;
constexpr int kMaxIncludeDepth = 4;
constexpr size_t kMaxSshdLines = 5000;

// The modules that check a password (the first factor).
constexpr std::array<std::string_view, 8> kPasswordModules{
    "pam_unix.so",    "pam_sss.so",    "pam_ldap.so",         "pam_krb5.so",
    "pam_winbind.so", "pam_userdb.so", "pam_systemd_home.so", "pam_pwdb.so"};
// What a module returns when it refuses a code, and when mfad is away.
constexpr std::array<std::string_view, 6> kFailureReturns{
    "auth_err", "maxtries", "authinfo_unavail", "system_err", "service_err", "perm_denied"};

bool is_password_module(std::string_view name) {
  return std::find(kPasswordModules.begin(), kPasswordModules.end(), name) !=
         kPasswordModules.end();
}

std::string lower(std::string_view s) {
  std::string out(s);
  for (char& c : out)
    c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

std::vector<std::string> split_words(std::string_view s) {
  std::vector<std::string> out;
  size_t i = 0;
  while (i < s.size()) {
    while (i < s.size() && (s[i] == ' ' || s[i] == '\t'))
      ++i;
    if (i >= s.size())
      break;
    size_t start = i;
    if (s[i] == '[') {
      // A bracketed value ([success=1 default=ignore], or an argument with spaces).
      size_t end = s.find(']', i);
      i = end == std::string_view::npos ? s.size() : end + 1;
    } else {
      while (i < s.size() && s[i] != ' ' && s[i] != '\t')
        ++i;
    }
    out.emplace_back(s.substr(start, i - start));
  }
  return out;
}

// "[success=1 default=ignore]" → {success: 1, default: ignore}.
std::map<std::string, std::string> parse_control(std::string_view control) {
  std::map<std::string, std::string> out;
  if (control.size() < 2 || control.front() != '[')
    return out;
  for (const auto& item : split_words(control.substr(1, control.size() - 2))) {
    const size_t eq = item.find('=');
    if (eq != std::string::npos)
      out[lower(item.substr(0, eq))] = lower(item.substr(eq + 1));
  }
  return out;
}

bool is_jump(const std::string& action) {
  return !action.empty() &&
         std::all_of(action.begin(), action.end(), [](char c) { return c >= '0' && c <= '9'; });
}

// The auth lines of a stack, @include's and include/substack controls expanded.
void expand_auth(const std::vector<PamLine>& lines, const PamStackContext& ctx, int depth,
                 std::vector<PamLine>& out) {
  for (const auto& l : lines) {
    const bool include = l.type == "@include" ||
                         (l.type == "auth" && (l.control == "include" || l.control == "substack"));
    if (include) {
      if (depth >= kMaxIncludeDepth || ctx.read == nullptr ||
          l.module.find('/') != std::string::npos)
        continue;
      const std::string text = ctx.read(ctx.dir, l.module);
      expand_auth(parse_pam_file(text, l.module), ctx, depth + 1, out);
      continue;
    }
    if (l.type == "auth")
      out.push_back(l);
  }
}

std::string where(const PamLine& l) {
  return l.file + ":" + std::to_string(l.line);
}

struct Findings {
  CheckStatus worst = CheckStatus::kOk;
  std::vector<std::string> messages;
  void add(CheckStatus s, std::string message) {
    worst = std::max(worst, s);
    messages.push_back(std::move(message));
  }
};

// What the arguments of a pam_mfa.so line say.
void check_args(const PamLine& l, const PamStackContext& ctx, Findings& f) {
  std::vector<const char*> argv;
  for (const auto& a : l.args)
    argv.push_back(a.c_str());
  pam::PamArgs args;
  pam::PamArgsError error;
  if (!pam::parse_pam_args(static_cast<int>(argv.size()), argv.data(), &args, &error)) {
    f.add(CheckStatus::kFail, "argument " + std::string(error.argument) + " at " + where(l) + ": " +
                                  error.reason +
                                  " (the module refuses the line, so every login fails; see "
                                  "pam_mfa(8))");
    return;
  }
  for (size_t i = 0; i < args.unknown_count; ++i) {
    f.add(CheckStatus::kWarn, "unknown argument '" + std::string(args.unknown[i]) + "' at " +
                                  where(l) + " is ignored by the module (a typo? see pam_mfa(8))");
  }
  if (l.type != "auth")
    return;
  if (args.nullok && !ctx.rollout_deadline) {
    f.add(CheckStatus::kWarn,
          "nullok at " + where(l) +
              " lets every user with no factor in without one, for ever: set [Rollout] "
              "Deadline= in mfad.conf (and add enroll), or enroll everyone and drop nullok");
  }
  if (args.failmode == pam::FailMode::kIgnore) {
    f.add(CheckStatus::kWarn,
          "failmode=ignore at " + where(l) + ": while mfad is down, logins need no second factor");
  }
}

// Whether the line that a failure of auth[i] leads to (skip lines after it) denies.
bool lands_on_deny(const std::vector<PamLine>& auth, size_t i, size_t skip) {
  const size_t target = i + 1 + skip;
  return target < auth.size() && pam_module_name(auth[target].module) == "pam_deny.so";
}

void check_control(const std::vector<PamLine>& auth, size_t i, bool password_before, Findings& f) {
  const PamLine& l = auth[i];
  const std::string c = lower(l.control);
  if (c == "required" || c == "requisite")
    return;
  if (c == "optional") {
    f.add(CheckStatus::kFail, "pam_mfa.so is optional at " + where(l) +
                                  ": its failure is ignored; make it required (or requisite)");
    return;
  }
  if (c == "sufficient") {
    if (!password_before) {
      f.add(CheckStatus::kFail, "pam_mfa.so is sufficient at " + where(l) +
                                    " with no password module before it: a code alone logs in; "
                                    "make it required and put it after the password module");
    } else {
      f.add(CheckStatus::kWarn, "pam_mfa.so is sufficient at " + where(l) +
                                    ": its success skips every auth module after it; prefer "
                                    "required");
    }
    return;
  }
  const auto actions = parse_control(l.control);
  if (actions.empty()) {
    f.add(CheckStatus::kWarn, "unknown control '" + l.control + "' for pam_mfa.so at " + where(l));
    return;
  }
  for (std::string_view key : kFailureReturns) {
    auto it = actions.find(std::string(key));
    const std::string action =
        it != actions.end() ? it->second : (actions.count("default") ? actions.at("default") : "");
    if (action.empty() || action == "bad" || action == "die" || action == "reset")
      continue;
    if (action == "ok" || action == "done") {
      f.add(CheckStatus::kFail, "pam_mfa.so at " + where(l) + " turns " + std::string(key) +
                                    " into " + action +
                                    ": a wrong code counts as success; use "
                                    "[success=ok default=die] or required");
      return;
    }
    const size_t skip = action == "ignore" ? 0 : is_jump(action) ? std::stoul(action) : 0;
    if (!lands_on_deny(auth, i, skip)) {
      f.add(CheckStatus::kFail, "pam_mfa.so at " + where(l) + " lets " + std::string(key) +
                                    " go on (" + action +
                                    ") to a line that is not pam_deny.so: a wrong code "
                                    "does not stop the login; use required");
      return;
    }
  }
}

}  // namespace

const char* check_status_name(CheckStatus status) {
  switch (status) {
    case CheckStatus::kOk:
      return "ok";
    case CheckStatus::kWarn:
      return "warn";
    case CheckStatus::kFail:
      return "fail";
  }
  return "fail";
}

std::string pam_module_name(std::string_view module) {
  const size_t slash = module.rfind('/');
  return std::string(slash == std::string_view::npos ? module : module.substr(slash + 1));
}

std::vector<PamLine> parse_pam_file(std::string_view text, const std::string& file) {
  std::vector<PamLine> out;
  std::string pending;
  int line_no = 0;
  int start_line = 0;
  size_t pos = 0;
  while (pos <= text.size() && out.size() < kMaxPamLines &&
         line_no < static_cast<int>(kMaxPamLines) * 4) {
    size_t nl = text.find('\n', pos);
    std::string_view raw =
        text.substr(pos, nl == std::string_view::npos ? std::string_view::npos : nl - pos);
    pos = nl == std::string_view::npos ? text.size() + 1 : nl + 1;
    ++line_no;
    if (pending.empty())
      start_line = line_no;
    if (!raw.empty() && raw.back() == '\\') {
      pending += std::string(raw.substr(0, raw.size() - 1)) + " ";
      continue;
    }
    pending += std::string(raw);
    std::string logical = std::move(pending);
    pending.clear();
    const size_t hash = logical.find('#');
    if (hash != std::string::npos)
      logical.resize(hash);
    auto words = split_words(logical);
    if (words.empty())
      continue;
    PamLine l;
    l.file = file;
    l.line = start_line;
    if (words[0] == "@include") {
      l.type = "@include";
      l.module = words.size() > 1 ? words[1] : "";
      out.push_back(std::move(l));
      continue;
    }
    if (words.size() < 3)
      continue;
    l.type = lower(words[0][0] == '-' ? words[0].substr(1) : words[0]);
    l.control = words[1];
    l.module = words[2];
    for (size_t i = 3; i < words.size(); ++i) {
      std::string a = words[i];
      // [arg with spaces] is one argument, without its brackets.
      if (a.size() >= 2 && a.front() == '[' && a.back() == ']')
        a = a.substr(1, a.size() - 2);
      l.args.push_back(std::move(a));
    }
    out.push_back(std::move(l));
  }
  return out;
}

bool uses_pam_mfa(std::string_view text) {
  for (const auto& l : parse_pam_file(text, "")) {
    if (l.type != "@include" && pam_module_name(l.module) == "pam_mfa.so")
      return true;
  }
  return false;
}

bool auth_runs_pam_mfa(const std::string& name, std::string_view text, const PamStackContext& ctx) {
  std::vector<PamLine> auth;
  expand_auth(parse_pam_file(text, name), ctx, 0, auth);
  return std::any_of(auth.begin(), auth.end(),
                     [](const PamLine& l) { return pam_module_name(l.module) == "pam_mfa.so"; });
}

CheckResult check_pam_stack(const std::string& name, std::string_view text,
                            const PamStackContext& ctx) {
  const std::string path = ctx.dir + "/" + name;
  Findings f;
  const auto lines = parse_pam_file(text, name);
  for (const auto& l : lines) {
    if (l.type != "@include" && pam_module_name(l.module) == "pam_mfa.so")
      check_args(l, ctx, f);
  }
  std::vector<PamLine> auth;
  expand_auth(lines, ctx, 0, auth);
  const auto mfa = std::find_if(auth.begin(), auth.end(), [](const PamLine& l) {
    return pam_module_name(l.module) == "pam_mfa.so";
  });
  std::string summary;
  if (mfa == auth.end()) {
    summary = "pam_mfa.so is not in its auth stack (sessions only)";
  } else {
    const size_t i = static_cast<size_t>(mfa - auth.begin());
    bool password_before = false;
    for (size_t j = 0; j < i; ++j) {
      const PamLine& l = auth[j];
      const std::string module = pam_module_name(l.module);
      password_before = password_before || is_password_module(module);
      // pam_rootok lets root in without a password, by design (su).
      if (module == "pam_rootok.so" || module == "pam_deny.so")
        continue;
      const std::string c = lower(l.control);
      const auto actions = parse_control(l.control);
      const auto success = actions.find("success");
      if (c == "sufficient" || (success != actions.end() && success->second == "done")) {
        f.add(CheckStatus::kFail, module + " is sufficient at " + where(l) +
                                      ", before pam_mfa.so: when it succeeds the login ends "
                                      "without a second factor; make it required (or "
                                      "[success=ok default=die])");
      } else if (success != actions.end() && is_jump(success->second) &&
                 j + 1 + std::stoul(success->second) > i) {
        f.add(CheckStatus::kFail, module + " at " + where(l) +
                                      " jumps over pam_mfa.so on success (" + success->second +
                                      "): the second factor is skipped");
      }
    }
    for (size_t j = i + 1; j < auth.size(); ++j) {
      const std::string module = pam_module_name(auth[j].module);
      if (is_password_module(module) && !password_before) {
        f.add(CheckStatus::kFail,
              "pam_mfa.so (" + where(*mfa) + ") comes before the password module " + module + " (" +
                  where(auth[j]) + "): put it after, so that the password is checked first");
        break;
      }
    }
    if (!password_before && f.worst != CheckStatus::kFail) {
      bool any_password = false;
      for (const auto& l : auth)
        any_password = any_password || is_password_module(pam_module_name(l.module));
      if (!any_password) {
        f.add(CheckStatus::kWarn,
              "no password module runs before pam_mfa.so: the code is the "
              "only factor unless sshd's AuthenticationMethods asks for a key "
              "first (publickey,keyboard-interactive)");
      }
    }
    check_control(auth, i, password_before, f);
    summary = "pam_mfa.so " + lower(mfa->control) + " at " + where(*mfa) +
              (password_before ? ", after the password module" : "");
  }
  CheckResult r;
  r.id = "pam-stack";
  r.status = f.worst;
  if (f.messages.empty()) {
    r.message = path + ": " + summary;
  } else {
    r.message = path + ": ";
    for (size_t k = 0; k < f.messages.size(); ++k)
      r.message += (k ? "; " : "") + f.messages[k];
  }
  return r;
}

std::map<std::string, std::string> parse_sshd_settings(std::string_view text, bool from_dash_t) {
  std::map<std::string, std::string> out;
  size_t pos = 0;
  size_t lines = 0;
  while (pos < text.size() && lines++ < kMaxSshdLines) {
    size_t nl = text.find('\n', pos);
    std::string line(
        text.substr(pos, nl == std::string_view::npos ? std::string_view::npos : nl - pos));
    pos = nl == std::string_view::npos ? text.size() : nl + 1;
    if (!from_dash_t) {
      const size_t hash = line.find('#');
      if (hash != std::string::npos)
        line.resize(hash);
    }
    auto words = split_words(line);
    if (words.empty())
      continue;
    // sshd_config: key and value may also be separated by '='.
    std::string key = lower(words[0]);
    std::string value;
    const size_t eq = key.find('=');
    if (eq != std::string::npos) {
      value = words[0].substr(eq + 1);
      key.resize(eq);
    }
    for (size_t i = 1; i < words.size(); ++i)
      value += (value.empty() ? "" : " ") + words[i];
    if (!from_dash_t && key == "match")
      break;                  // what follows applies to some connections only
    out.emplace(key, value);  // the first value wins
  }
  return out;
}

CheckResult check_sshd(const std::map<std::string, std::string>& s, const std::string& source) {
  Findings f;
  auto get = [&](const char* key, const char* fallback) {
    auto it = s.find(key);
    return it == s.end() ? std::string(fallback) : lower(it->second);
  };
  if (get("usepam", "no") != "yes")
    f.add(CheckStatus::kFail, "UsePAM is not yes: sshd never runs pam_mfa.so; set UsePAM yes");
  const std::string kbd = s.count("kbdinteractiveauthentication")
                              ? get("kbdinteractiveauthentication", "yes")
                              : get("challengeresponseauthentication", "yes");
  if (kbd != "yes") {
    f.add(CheckStatus::kFail,
          "KbdInteractiveAuthentication is no: sshd cannot ask for the code; "
          "set KbdInteractiveAuthentication yes");
  }
  const std::string methods = get("authenticationmethods", "any");
  if (methods == "any") {
    if (get("pubkeyauthentication", "yes") != "no") {
      f.add(CheckStatus::kFail,
            "AuthenticationMethods is not set: a public-key login skips "
            "keyboard-interactive, and so the second factor; set "
            "AuthenticationMethods publickey,keyboard-interactive (or "
            "keyboard-interactive)");
    }
  } else {
    for (const auto& list : split_words(methods)) {
      if (list.find("keyboard-interactive") == std::string::npos) {
        f.add(CheckStatus::kFail, "AuthenticationMethods list '" + list +
                                      "' skips keyboard-interactive, and so the second factor; "
                                      "add ,keyboard-interactive to it");
      }
    }
  }
  CheckResult r;
  r.id = "sshd";
  r.status = f.worst;
  if (f.messages.empty()) {
    r.message = "UsePAM yes, keyboard-interactive on, AuthenticationMethods " + methods + " (" +
                source + ")";
  } else {
    r.message = "";
    for (size_t k = 0; k < f.messages.size(); ++k)
      r.message += (k ? "; " : "") + f.messages[k];
    r.message += " (" + source + ")";
  }
  return r;
}

}  // namespace mfa::ctl

#include "core/login_accounts.hpp"

#include <grp.h>
#include <pwd.h>

#include <algorithm>
#include <charconv>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <string_view>
#include <vector>

namespace mfa {

namespace {

constexpr uid_t kDefaultUidMin = 1000;
constexpr uid_t kDefaultUidMax = 60000;

// UID_MIN / UID_MAX of /etc/login.defs (shadow's useradd reads the same lines).
void read_uid_range(uid_t* ret_min, uid_t* ret_max) {
  std::ifstream in("/etc/login.defs");
  std::string line;
  size_t lines = 0;
  while (lines++ < 10000 && std::getline(in, line)) {
    std::string_view l(line);
    auto value_of = [&](std::string_view key, uid_t* ret) {
      if (!l.starts_with(key) || l.size() <= key.size() ||
          (l[key.size()] != ' ' && l[key.size()] != '\t'))
        return;
      std::string_view v = l.substr(key.size());
      while (!v.empty() && (v.front() == ' ' || v.front() == '\t'))
        v.remove_prefix(1);
      uid_t n = 0;
      auto [p, ec] = std::from_chars(v.data(), v.data() + v.size(), n);
      if (ec == std::errc() && p != v.data())
        *ret = n;
    };
    value_of("UID_MIN", ret_min);
    value_of("UID_MAX", ret_max);
  }
}

bool login_shell(const char* shell) {
  if (shell == nullptr || *shell == '\0')
    return true;  // the system's default shell
  std::string_view s(shell);
  return !s.ends_with("/nologin") && !s.ends_with("/false");
}

std::string group_name(gid_t gid) {
  struct group gr_buf;
  struct group* gr = nullptr;
  std::vector<char> buf(16384);
  if (getgrgid_r(gid, &gr_buf, buf.data(), buf.size(), &gr) == 0 && gr != nullptr)
    return gr->gr_name;
  return "#" + std::to_string(gid);
}

}  // namespace

Result<std::vector<LoginAccount>> list_login_accounts() {
  uid_t uid_min = kDefaultUidMin;
  uid_t uid_max = kDefaultUidMax;
  read_uid_range(&uid_min, &uid_max);
  std::vector<LoginAccount> out;
  std::vector<gid_t> gids;
  // getpwent is not reentrant: mfad is one thread, and nothing else in it enumerates.
  setpwent();
  while (struct passwd* pw = getpwent()) {
    if (out.size() >= kMaxLoginAccounts)
      break;
    if (pw->pw_uid < uid_min || pw->pw_uid > uid_max || !login_shell(pw->pw_shell))
      continue;
    out.push_back(LoginAccount{pw->pw_name, pw->pw_uid, {}});
    gids.push_back(pw->pw_gid);
  }
  endpwent();
  for (size_t i = 0; i < out.size(); ++i)
    out[i].group = group_name(gids[i]);
  std::sort(out.begin(), out.end(),
            [](const LoginAccount& a, const LoginAccount& b) { return a.uid < b.uid; });
  // Two names of one uid are one account (user_directory.hpp).
  out.erase(
      std::unique(out.begin(), out.end(),
                  [](const LoginAccount& a, const LoginAccount& b) { return a.uid == b.uid; }),
      out.end());
  return out;
}

std::string primary_group_of(uid_t uid) {
  struct passwd pw_buf;
  struct passwd* pw = nullptr;
  std::vector<char> buf(16384);
  if (getpwuid_r(uid, &pw_buf, buf.data(), buf.size(), &pw) != 0 || pw == nullptr)
    return "";
  return group_name(pw->pw_gid);
}

}  // namespace mfa

// The accounts people log in with, from the system's user database: the population that
// `mfactl report` measures adoption against. NSS is asked directly (getpwent): on a host whose
// accounts live in a directory server, enumeration may be off, and then only enrolled users count.
#pragma once

#include <sys/types.h>

#include <string>
#include <vector>

#include "common/result.hpp"

namespace mfa {

struct LoginAccount {
  std::string name;
  uid_t uid = 0;
  std::string group;  // the primary group's name ("#<gid>" when it has none)
};

// Accounts with a uid in [UID_MIN, UID_MAX] of /etc/login.defs (1000..60000 when unset) and a
// shell that allows a login (not nologin or false), at most kMaxLoginAccounts, sorted by uid.
inline constexpr size_t kMaxLoginAccounts = 100000;
Result<std::vector<LoginAccount>> list_login_accounts();
// The primary group's name of uid ("" when NSS does not know uid).
std::string primary_group_of(uid_t uid);

}  // namespace mfa

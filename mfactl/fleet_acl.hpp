// `mfactl fleet acl HOSTID [PREFIX]` (docs/fleet.md, "One Redis user per host"): the ACL SETUSER
// line that gives one host of the fleet the narrowest rights it needs in Redis. No secret is
// printed: the password is set by a second command, after this line (its "reset" clears them).
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace mfa::ctl {

// nullopt when host_id is not a HostId (1 to 64 letters, digits, '.', '_', '-') or prefix holds
// anything but letters, digits, ':', '.', '_', '-' (it goes into glob patterns).
std::optional<std::string> fleet_acl_line(std::string_view host_id, std::string_view prefix);

}  // namespace mfa::ctl

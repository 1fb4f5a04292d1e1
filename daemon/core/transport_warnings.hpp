// What mfad sends in the clear because the config says so (docs/fleet.md "Transport",
// docs/sms.md): logged as warnings at start and printed by --check-config. Plaintext Redis is
// refused unless [Redis] AllowPlaintext=yes; SMS providers over http:// stay accepted (tests
// point them at local fakes), but a credential sent that way is worth a warning.
#pragma once

#include <string>
#include <vector>

#include "core/config.hpp"

namespace mfa {

// One sentence each; never a URL's text (it may hold a password) nor a secret.
std::vector<std::string> transport_warnings(const Config& config);

}  // namespace mfa

// This machine's name, as gethostname(2) gives it (the UTS namespace's name, no DNS). Each user
// applies its own rule to it: the default TOTP issuer, the host in an SMS text, the fleet host id.
#pragma once

#include <string>

#include "common/result.hpp"

namespace mfa {

// kIo when the kernel does not answer. The name may be empty or hold any byte but NUL.
Result<std::string> host_name();

}  // namespace mfa

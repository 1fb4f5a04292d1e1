// A secret read from a file: a provider's API token, the Redis password. The file is opened so
// that nobody else can slip another file in its place, and refused unless only its owner (root or
// mfad itself) can read or change it. The master key has its own reader (master_key.hpp).
#pragma once

#include <cstddef>
#include <string>

#include "common/result.hpp"
#include "common/secure_buffer.hpp"

namespace mfa {

enum class SecretFormat {
  kToken,      // one word of printable ASCII (0x21..0x7e), not empty; trailing whitespace dropped
  kFirstLine,  // the first line as it is (a password may hold spaces, or be empty: no AUTH)
  kWhole,      // the whole file as it is (a PEM private key), not empty
};

struct SecretFileRules {
  std::string what;  // names the file in messages: "the Redis password file"
  SecretFormat format = SecretFormat::kToken;
  size_t max_bytes = 4096;
};

// Opened with O_CLOEXEC|O_NOFOLLOW|O_NOCTTY|O_NONBLOCK: a symbolic link is refused, a FIFO cannot
// hang the caller. Refused (kIo; the message names the file and the fix, never what it holds)
// unless it is a regular file owned by root or the effective uid, with no permission bit for
// group or others, at most rules.max_bytes long, and holds a secret of rules.format.
Result<SecureString> read_secret_file(const std::string& path, const SecretFileRules& rules);

}  // namespace mfa

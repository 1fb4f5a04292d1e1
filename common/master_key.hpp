// The master key: 32 random bytes that never sit in the database.
#pragma once

#include <sys/types.h>

#include <string>

#include "common/result.hpp"
#include "common/secure_buffer.hpp"

namespace mfa {

inline constexpr size_t kMasterKeySize = 32;

struct MasterKeyOptions {
  std::string path;  // /etc/mfad/master.key
  bool create_if_missing = true;
  uid_t allowed_owner = 0;                     // root; the file may also be owned by extra_owner
  uid_t extra_owner = static_cast<uid_t>(-1);  // the mfad user, if it exists
};

// If $CREDENTIALS_DIRECTORY/mfad.key exists it is used (systemd credential). Otherwise the file at
// options.path is opened with O_NOFOLLOW|O_CLOEXEC and refused (kIo, with a message naming the
// file and the problem) when it is a symlink, not a regular file, group/world readable or writable,
// owned by someone else, or not exactly 32 bytes. When missing and create_if_missing, it is
// created atomically (O_TMPFILE or a temp file + link/rename, mode 0600, fsync'd).
Result<SecureBytes> load_master_key(const MasterKeyOptions& options);

}  // namespace mfa

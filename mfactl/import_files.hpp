// The files `mfactl import` reads (docs/mfactl.md, "import"): google-authenticator's
// ~/.google_authenticator and pam_oath's usersfile. mfactl runs as root here and the home
// directory is the user's: every file is opened without following a symlink, relative to a
// directory already open (openat), checked to be a regular file of the expected owner with one
// link, and read up to a bound (CVE-2024-47191: pam_oath, as root, followed a user's symlink).
#pragma once

#include <sys/types.h>

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/handles.hpp"
#include "common/result.hpp"
#include "common/secure_buffer.hpp"

namespace mfa::ctl {

inline constexpr size_t kMaxImportFileSize = 64 * 1024;
inline constexpr char kGoogleAuthenticatorFile[] = ".google_authenticator";

// An open source file, its text, and what removing it needs.
struct SourceFile {
  std::string path;  // for messages
  SecureString text;
  Fd dir;            // the directory it was opened from
  std::string name;  // its name in dir
  dev_t dev = 0;
  ino_t ino = 0;
};

// home/.google_authenticator of the account with this uid (home: its passwd entry's directory,
// which must belong to uid or root). ENOENT-kind errors come back as Errc::kNotEnrolled.
Result<SourceFile> open_home_file(const std::string& home, uid_t uid, const char* name);
// A path an admin named: its last component is not followed; the file must belong to one of
// owners.
Result<SourceFile> open_named_file(const std::string& path, const std::vector<uid_t>& owners);
// Deletes the file, if its name still leads to the file that was read.
Status remove_source(const SourceFile& file);

// google-authenticator's file: the base32 secret, then `" OPTION` lines, then scratch codes.
struct GoogleAuthenticatorFile {
  SecureString secret_base32;
  int period = 30;  // " STEP_SIZE
  std::vector<SecureString> scratch_codes;
  std::vector<std::string> notes;  // what each option became
};
// InvalidArgument naming the problem (never echoing a secret): HOTP files, malformed lines.
Result<GoogleAuthenticatorFile> parse_google_authenticator(std::string_view text);

// One line of a pam_oath usersfile: "HOTP/T30/6 user - 3132333435363738393031323334353637383930".
struct OathEntry {
  int line = 0;
  std::string user;
  bool totp = false;
  int period = 30;
  int digits = 6;
  SecureString secret_base32;
  std::string problem;  // why it cannot be imported ("" when it can)
  std::vector<std::string> notes;
};
// Every entry; a line that cannot be read becomes an entry with a problem.
std::vector<OathEntry> parse_oath_usersfile(std::string_view text);

}  // namespace mfa::ctl

// The enrollment QR code as a file (`mfactl enroll totp --svg FILE`): it holds the TOTP secret, so
// it is created new (never over an existing file or through a symbolic link), readable by its
// owner only, and complete or absent.
#pragma once

#include <string>
#include <string_view>

#include "common/result.hpp"

namespace mfa::ctl {

// Writes the QR code of text as an SVG document to path. Refuses (kIo, the message names the file
// and why) an existing path; on a failed write the file is removed.
Status write_qr_svg_file(const std::string& path, std::string_view text);

}  // namespace mfa::ctl

// The notice shown before every enrollment ([Enrollment] Notice= or NoticeFile=,
// docs/admin-guide.md, "Enrollment notice"): bounded, UTF-8 text without control characters other
// than newlines and tabs, as it reaches a terminal through mfactl and through the PAM conversation.
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "common/result.hpp"

namespace mfa {

// What is wrong with a notice's text (nullopt: nothing): not UTF-8, a control character.
std::optional<std::string> notice_text_problem(std::string_view text);

// NoticeFile's content: a regular file (no symlink followed) of at most kMaxEnrollmentNotice
// bytes whose text notice_text_problem() accepts; kIo with what is wrong otherwise.
Result<std::string> read_notice_file(const std::string& path);

}  // namespace mfa

#include "core/enrollment_notice.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "common/handles.hpp"
#include "common/utf8.hpp"
#include "core/config_keys.hpp"

namespace mfa {

std::optional<std::string> notice_text_problem(std::string_view text) {
  if (!is_valid_utf8(text))
    return "is not UTF-8 text";
  size_t i = 0;
  while (i < text.size()) {
    const auto cp = decode_utf8(text, i);
    if (!cp)
      return "is not UTF-8 text";
    if (*cp != '\n' && *cp != '\t' && is_control_code_point(*cp))
      return "holds a control character (only newlines and tabs may be in the text)";
  }
  return std::nullopt;
}

Result<std::string> read_notice_file(const std::string& path) {
  Fd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY | O_NONBLOCK));
  if (!fd.valid())
    return make_error(
        Errc::kIo, "cannot open the enrollment notice file " + path + ": " + std::strerror(errno));
  struct stat st {};
  if (fstat(fd.get(), &st) != 0 || !S_ISREG(st.st_mode))
    return make_error(Errc::kIo, "the enrollment notice file " + path + " is not a regular file");
  const std::string too_long = "the enrollment notice file " + path + " is longer than " +
                               std::to_string(kMaxEnrollmentNotice) + " bytes";
  if (static_cast<uint64_t>(st.st_size) > kMaxEnrollmentNotice)
    return make_error(Errc::kIo, too_long);
  // One byte more than allowed is read: a file that grew since fstat is refused, not cut.
  std::string text(kMaxEnrollmentNotice + 1, '\0');
  size_t got = 0;
  while (got < text.size()) {
    ssize_t n = ::read(fd.get(), text.data() + got, text.size() - got);
    if (n < 0 && errno == EINTR)
      continue;
    if (n < 0)
      return make_error(Errc::kIo, "cannot read the enrollment notice file " + path + ": " +
                                       std::strerror(errno));
    if (n == 0)
      break;
    got += static_cast<size_t>(n);
  }
  if (got > kMaxEnrollmentNotice)
    return make_error(Errc::kIo, too_long);
  text.resize(got);
  if (auto problem = notice_text_problem(text))
    return make_error(Errc::kIo, "the enrollment notice file " + path + " " + *problem);
  return text;
}

}  // namespace mfa

#include "mfactl/qr_file.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "common/handles.hpp"
#include "common/qr.hpp"
#include "common/secure_buffer.hpp"

namespace mfa::ctl {

namespace {

Error file_error(const std::string& path, const char* what, int err) {
  return make_error(Errc::kIo,
                    "cannot " + std::string(what) + " " + path + ": " + std::strerror(err));
}

}  // namespace

Status write_qr_svg_file(const std::string& path, std::string_view text) {
  MFA_TRY(svg, qr_svg(text));
  // O_EXCL|O_NOFOLLOW: never through a link or over a file someone placed there; 0600 whatever
  // the umask: the picture is the secret.
  const int raw =
      open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY, 0600);
  if (raw < 0) {
    const int err = errno;
    secure_erase(svg.data(), svg.size());
    if (err == EEXIST)
      return make_error(Errc::kIo, path + " exists already: give a new file name");
    return file_error(path, "create", err);
  }
  Fd fd(raw);
  int err = 0;
  if (fchmod(fd.get(), 0600) < 0)
    err = errno;
  size_t done = 0;
  while (err == 0 && done < svg.size()) {
    const ssize_t n = write(fd.get(), svg.data() + done, svg.size() - done);
    if (n < 0 && errno == EINTR)
      continue;
    if (n <= 0) {
      err = n < 0 ? errno : EIO;
      break;
    }
    done += static_cast<size_t>(n);
  }
  if (err == 0 && fsync(fd.get()) < 0)
    err = errno;
  secure_erase(svg.data(), svg.size());
  if (err != 0) {
    (void)unlink(path.c_str());
    return file_error(path, "write", err);
  }
  return {};
}

}  // namespace mfa::ctl

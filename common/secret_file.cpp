#include "common/secret_file.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <optional>
#include <string_view>

#include "common/handles.hpp"

namespace mfa {

namespace {

// What the file holds, as rules.format says, or nullopt when it holds no such secret.
std::optional<std::string_view> secret_of(std::string_view text, SecretFormat format) {
  if (format == SecretFormat::kFirstLine)
    return text.substr(0, text.find_first_of("\r\n"));
  if (format == SecretFormat::kWhole)
    return text;
  while (!text.empty() &&
         (text.back() == '\n' || text.back() == '\r' || text.back() == ' ' || text.back() == '\t'))
    text.remove_suffix(1);
  for (char c : text) {
    if (c < 0x21 || c > 0x7e)
      return std::nullopt;
  }
  return text;
}

}  // namespace

Result<SecureString> read_secret_file(const std::string& path, const SecretFileRules& rules) {
  const std::string named = rules.what + " " + path;
  const auto refuse = [&](const std::string& problem) {
    return make_error(Errc::kIo, named + " " + problem);
  };
  Fd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY | O_NONBLOCK));
  if (!fd.valid()) {
    if (errno == ELOOP)
      return refuse("is a symbolic link; refusing it (name the real file)");
    return make_error(Errc::kIo, "cannot open " + named + ": " + std::strerror(errno));
  }
  struct stat st {};
  if (fstat(fd.get(), &st) < 0)
    return make_error(Errc::kIo, "cannot stat " + named + ": " + std::strerror(errno));
  if (!S_ISREG(st.st_mode))
    return refuse("is not a regular file");
  if (st.st_uid != 0 && st.st_uid != geteuid()) {
    return refuse("is owned by uid " + std::to_string(st.st_uid) +
                  ", not root; refusing it (chown root)");
  }
  if ((st.st_mode & (S_IRWXG | S_IRWXO)) != 0) {
    const char* access = (st.st_mode & (S_IRGRP | S_IROTH)) != 0 ? "readable by group or others"
                                                                 : "accessible to group or others";
    char mode[8];
    std::snprintf(mode, sizeof mode, "%04o", static_cast<unsigned>(st.st_mode & 07777));
    return refuse(std::string("is ") + access + " (mode " + mode + "); make it mode 0600 or 0400");
  }
  const std::string too_large = "is larger than " + std::to_string(rules.max_bytes) + " bytes";
  if (st.st_size > static_cast<off_t>(rules.max_bytes))
    return refuse(too_large);

  SecureBytes buf(rules.max_bytes + 1);
  size_t len = 0;
  while (len < buf.size()) {
    const ssize_t n = ::read(fd.get(), buf.data() + len, buf.size() - len);
    if (n < 0 && errno == EINTR)
      continue;
    if (n < 0)
      return make_error(Errc::kIo, "cannot read " + named + ": " + std::strerror(errno));
    if (n == 0)
      break;
    len += static_cast<size_t>(n);
  }
  if (len > rules.max_bytes)
    return refuse(too_large);
  const auto secret =
      secret_of(std::string_view(reinterpret_cast<const char*>(buf.data()), len), rules.format);
  if (!secret)
    return refuse("holds characters a token cannot have");
  if (secret->empty() && rules.format != SecretFormat::kFirstLine)
    return refuse("is empty");
  return SecureString(*secret);
}

}  // namespace mfa

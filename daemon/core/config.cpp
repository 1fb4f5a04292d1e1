// Loading mfad.conf: the file's own checks (owner, mode, size, encoding) and the verdict over the
// problems the walk (config_parser.cpp) found. The keys and their defaults: config_keys.cpp and
// config.hpp.
#include "core/config.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>

#include "common/handles.hpp"
#include "common/utf8.hpp"
#include "core/config_parser.hpp"

namespace mfa {
namespace {

constexpr size_t kMaxFileSize = 1 << 20;

// The 1-based line of the first invalid UTF-8 sequence, or 0.
int first_invalid_utf8_line(std::string_view s) {
  const size_t bad = first_invalid_utf8(s);
  if (bad == std::string_view::npos)
    return 0;
  return 1 + static_cast<int>(std::count(s.begin(), s.begin() + static_cast<ptrdiff_t>(bad), '\n'));
}

Result<Config> finish(Config config, std::vector<ConfigProblem> problems,
                      std::vector<ConfigProblem>* ret_problems) {
  const ConfigProblem* first_fatal = nullptr;
  size_t fatal = 0;
  for (const auto& p : problems) {
    if (p.fatal) {
      if (!first_fatal)
        first_fatal = &p;
      ++fatal;
    }
  }
  Result<Config> result = std::move(config);
  if (first_fatal) {
    std::string message = first_fatal->to_string();
    if (fatal > 1)
      message += " (and " + std::to_string(fatal - 1) + " more)";
    result = make_error(Errc::kInvalidArgument, std::move(message));
  }
  if (ret_problems) {
    for (auto& p : problems)
      ret_problems->push_back(std::move(p));
  }
  return result;
}

Result<Config> refuse(const std::string& file, int line, std::string message,
                      std::vector<ConfigProblem>* ret_problems,
                      Errc code = Errc::kInvalidArgument) {
  ConfigProblem p;
  p.file = file;
  p.line = line;
  p.message = std::move(message);
  std::string text = p.to_string();
  if (ret_problems)
    ret_problems->push_back(std::move(p));
  return make_error(code, std::move(text));
}

}  // namespace

std::string ConfigProblem::to_string() const {
  std::string out = file.empty() ? std::string("mfad.conf") : file;
  if (line > 0)
    out += ":" + std::to_string(line);
  out += ": ";
  if (!section.empty())
    out += "[" + section + "] ";
  if (!key.empty())
    out += key + ": ";
  out += message;
  return out;
}

Result<Config> parse_config(std::string_view text, const std::string& file, bool strict,
                            std::vector<ConfigProblem>* ret_problems) {
  if (text.size() > kMaxFileSize) {
    return refuse(file, 0, "file is larger than 1 MiB", ret_problems);
  }
  size_t nul = text.find('\0');
  if (nul != std::string_view::npos) {
    int line = 1 + static_cast<int>(std::count(text.begin(), text.begin() + nul, '\n'));
    return refuse(file, line, "contains a NUL byte (not a text file?)", ret_problems);
  }
  if (int line = first_invalid_utf8_line(text)) {
    return refuse(file, line, "is not valid UTF-8", ret_problems);
  }
  if (text.starts_with("\xEF\xBB\xBF"))
    text.remove_prefix(3);  // a UTF-8 byte order mark
  ParsedConfig parsed = walk_config_text(text, file, strict);
  parsed.config.path = file;
  return finish(std::move(parsed.config), std::move(parsed.problems), ret_problems);
}

Result<Config> load_config(const std::string& path, bool path_given, bool strict,
                           std::vector<ConfigProblem>* ret_problems) {
  if (path.empty() || path.find('\0') != std::string::npos) {
    return refuse(path, 0, "no configuration file named", ret_problems);
  }
  // O_NOFOLLOW: a symlink in place of the file is refused, not followed; O_NONBLOCK: a FIFO
  // cannot hang the daemon before the S_ISREG check.
  Fd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY | O_NONBLOCK));
  if (!fd.valid()) {
    int err = errno;
    if (err == ENOENT && !path_given)
      return Config{};
    if (err == ELOOP) {
      return refuse(path, 0, "is a symbolic link; refusing it (name the real file)", ret_problems);
    }
    return refuse(path, 0, std::string("cannot open: ") + std::strerror(err), ret_problems,
                  Errc::kIo);
  }
  struct stat st {};
  if (fstat(fd.get(), &st) < 0) {
    return refuse(path, 0, std::string("cannot stat: ") + std::strerror(errno), ret_problems,
                  Errc::kIo);
  }
  if (!S_ISREG(st.st_mode))
    return refuse(path, 0, "is not a regular file", ret_problems);
  if (st.st_mode & (S_IWGRP | S_IWOTH)) {
    char mode[8];
    std::snprintf(mode, sizeof mode, "%04o", static_cast<unsigned>(st.st_mode & 07777));
    return refuse(
        path, 0,
        std::string("is group- or world-writable (mode ") + mode + "); refusing it (chmod go-w)",
        ret_problems);
  }
  if (st.st_uid != 0 && st.st_uid != geteuid()) {
    return refuse(
        path, 0,
        "is owned by uid " + std::to_string(st.st_uid) + ", not root; refusing it (chown root)",
        ret_problems);
  }
  if (st.st_size > static_cast<off_t>(kMaxFileSize)) {
    return refuse(path, 0, "is larger than 1 MiB", ret_problems);
  }

  std::string text;
  char buf[16384];
  for (;;) {
    ssize_t n = ::read(fd.get(), buf, sizeof buf);
    if (n < 0) {
      if (errno == EINTR)
        continue;
      return refuse(path, 0, std::string("cannot read: ") + std::strerror(errno), ret_problems,
                    Errc::kIo);
    }
    if (n == 0)
      break;
    text.append(buf, static_cast<size_t>(n));
    if (text.size() > kMaxFileSize)
      return refuse(path, 0, "is larger than 1 MiB", ret_problems);
  }

  std::vector<ConfigProblem> problems;
  auto config = parse_config(text, path, strict, &problems);
  // A secret in a file others can read is worth a warning (it stays readable until fixed).
  if (config.ok() && !config->twilio_auth_token.empty() && (st.st_mode & S_IROTH)) {
    ConfigProblem p;
    p.file = path;
    p.section = "Twilio";
    p.key = "AuthToken";
    p.message = "secret in a world-readable file; use AuthTokenFile or chmod 0600";
    p.fatal = false;
    problems.push_back(std::move(p));
  }
  if (ret_problems) {
    for (auto& p : problems)
      ret_problems->push_back(std::move(p));
  }
  return config;
}

}  // namespace mfa

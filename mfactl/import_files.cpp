#include "mfactl/import_files.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cstring>

#include "common/base32.hpp"

namespace mfa::ctl {

namespace {

constexpr size_t kMaxLines = 1000;
constexpr size_t kMaxScratchCodes = 20;
constexpr size_t kMaxSecretBytes = 64;

Error refused(std::string message) {
  return make_error(Errc::kInvalidArgument, std::move(message));
}

Result<SourceFile> open_in(Fd dir, const std::string& dir_path, const std::string& name,
                           const std::vector<uid_t>& owners) {
  const std::string path = dir_path + (dir_path.ends_with("/") ? "" : "/") + name;
  // O_NONBLOCK: a FIFO planted under the name must not hang mfactl; O_NOFOLLOW: a symlink is
  // refused (ELOOP), whatever it points to.
  Fd fd(openat(dir.get(), name.c_str(), O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY | O_CLOEXEC));
  if (!fd.valid()) {
    const int err = errno;
    if (err == ENOENT)
      return make_error(Errc::kNotEnrolled, path + " does not exist");
    if (err == ELOOP)
      return refused(path + " is a symbolic link: refused (move the real file there)");
    return make_error(Errc::kIo, "cannot open " + path + ": " + std::strerror(err));
  }
  struct stat st {};
  if (fstat(fd.get(), &st) != 0)
    return make_error(Errc::kIo, "cannot stat " + path + ": " + std::strerror(errno));
  if (!S_ISREG(st.st_mode))
    return refused(path + " is not a regular file: refused");
  if (std::find(owners.begin(), owners.end(), st.st_uid) == owners.end()) {
    return refused(path + " belongs to uid " + std::to_string(st.st_uid) +
                   ", not to the account it is imported for: refused");
  }
  if (st.st_nlink != 1)
    return refused(path + " has " + std::to_string(st.st_nlink) + " hard links: refused");
  if (st.st_size < 0 || static_cast<size_t>(st.st_size) > kMaxImportFileSize)
    return refused(path + " is larger than 64 KiB: not a file of this kind");
  std::string buf(static_cast<size_t>(st.st_size) + 1, '\0');
  size_t got = 0;
  for (;;) {
    const ssize_t n = read(fd.get(), buf.data() + got, buf.size() - got);
    if (n < 0 && errno == EINTR)
      continue;
    if (n < 0) {
      const int err = errno;
      secure_erase(buf.data(), buf.size());
      return make_error(Errc::kIo, "cannot read " + path + ": " + std::strerror(err));
    }
    if (n == 0)
      break;
    got += static_cast<size_t>(n);
    if (got == buf.size()) {
      secure_erase(buf.data(), buf.size());
      return refused(path + " grew while it was read: try again");
    }
  }
  SourceFile out;
  out.text = SecureString(std::string_view(buf.data(), got));
  secure_erase(buf.data(), buf.size());
  out.path = path;
  out.dir = std::move(dir);
  out.name = name;
  out.dev = st.st_dev;
  out.ino = st.st_ino;
  return out;
}

std::vector<std::string_view> split_lines(std::string_view text) {
  std::vector<std::string_view> lines;
  size_t pos = 0;
  while (pos < text.size() && lines.size() < kMaxLines) {
    size_t nl = text.find('\n', pos);
    std::string_view l =
        text.substr(pos, nl == std::string_view::npos ? std::string_view::npos : nl - pos);
    if (!l.empty() && l.back() == '\r')
      l.remove_suffix(1);
    lines.push_back(l);
    pos = nl == std::string_view::npos ? text.size() : nl + 1;
  }
  return lines;
}

std::vector<std::string_view> words(std::string_view s) {
  std::vector<std::string_view> out;
  size_t i = 0;
  while (i < s.size()) {
    while (i < s.size() && (s[i] == ' ' || s[i] == '\t'))
      ++i;
    size_t start = i;
    while (i < s.size() && s[i] != ' ' && s[i] != '\t')
      ++i;
    if (i > start)
      out.push_back(s.substr(start, i - start));
  }
  return out;
}

std::optional<int> number(std::string_view s) {
  int v = 0;
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (s.empty() || ec != std::errc() || p != s.data() + s.size())
    return std::nullopt;
  return v;
}

bool all_digits(std::string_view s) {
  return !s.empty() && std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; });
}

// "3132..." → base32, for ImportTotp.
std::optional<SecureString> hex_to_base32(std::string_view hex) {
  if (hex.empty() || hex.size() % 2 != 0 || hex.size() / 2 > kMaxSecretBytes)
    return std::nullopt;
  SecureBytes bytes(hex.size() / 2);
  for (size_t i = 0; i < bytes.size(); ++i) {
    unsigned v = 0;
    auto [p, ec] = std::from_chars(hex.data() + 2 * i, hex.data() + 2 * i + 2, v, 16);
    if (ec != std::errc() || p != hex.data() + 2 * i + 2)
      return std::nullopt;
    bytes.data()[i] = static_cast<uint8_t>(v);
  }
  std::string b32 = base32_encode(bytes.span());
  SecureString out(b32);
  secure_erase(b32.data(), b32.size());
  return out;
}

}  // namespace

Result<SourceFile> open_home_file(const std::string& home, uid_t uid, const char* name) {
  if (home.empty() || home.front() != '/')
    return refused("the account has no absolute home directory");
  Fd dir(open(home.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC));
  if (!dir.valid()) {
    const int err = errno;
    if (err == ENOENT)
      return make_error(Errc::kNotEnrolled, home + " does not exist");
    return make_error(Errc::kIo, "cannot open " + home + ": " + std::strerror(err));
  }
  struct stat st {};
  if (fstat(dir.get(), &st) != 0 || (st.st_uid != uid && st.st_uid != 0))
    return refused(home + " belongs to another account: refused");
  return open_in(std::move(dir), home, name, {uid});
}

Result<SourceFile> open_named_file(const std::string& path, const std::vector<uid_t>& owners) {
  const size_t slash = path.rfind('/');
  const std::string dir_path = slash == std::string::npos ? "."
                               : slash == 0               ? "/"
                                                          : path.substr(0, slash);
  const std::string name = slash == std::string::npos ? path : path.substr(slash + 1);
  if (name.empty() || name == "." || name == "..")
    return refused(path + " does not name a file");
  Fd dir(open(dir_path.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC));
  if (!dir.valid())
    return make_error(Errc::kIo, "cannot open " + dir_path + ": " + std::strerror(errno));
  return open_in(std::move(dir), dir_path, name, owners);
}

Status remove_source(const SourceFile& file) {
  struct stat st {};
  if (fstatat(file.dir.get(), file.name.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0 ||
      st.st_dev != file.dev || st.st_ino != file.ino) {
    return refused(file.path + " was replaced after it was read: not removed");
  }
  if (unlinkat(file.dir.get(), file.name.c_str(), 0) != 0)
    return make_error(Errc::kIo, "cannot remove " + file.path + ": " + std::strerror(errno));
  return {};
}

Result<GoogleAuthenticatorFile> parse_google_authenticator(std::string_view text) {
  const auto lines = split_lines(text);
  if (lines.empty() || lines[0].empty())
    return refused("the file is empty");
  GoogleAuthenticatorFile out;
  {
    auto secret = base32_decode(lines[0]);
    if (!secret.ok() || secret->size() == 0 || secret->size() > kMaxSecretBytes)
      return refused("the first line is not a base32 secret");
  }
  out.secret_base32 = SecureString(lines[0]);
  bool totp = false;
  bool hotp = false;
  for (size_t i = 1; i < lines.size(); ++i) {
    const std::string_view l = lines[i];
    if (l.empty())
      continue;
    if (l.starts_with("\" ")) {
      const auto w = words(l.substr(2));
      if (w.empty())
        continue;
      const std::string_view option = w[0];
      if (option == "TOTP_AUTH") {
        totp = true;
      } else if (option == "HOTP_COUNTER") {
        hotp = true;
      } else if (option == "STEP_SIZE") {
        const auto n = w.size() > 1 ? number(w[1]) : std::nullopt;
        if (!n || *n < 1 || *n > 60)
          return refused("STEP_SIZE on line " + std::to_string(i + 1) + " is not 1 to 60");
        out.period = *n;
        out.notes.push_back("STEP_SIZE " + std::to_string(*n) + ": kept (time step of " +
                            std::to_string(*n) + " s)");
      } else if (option == "WINDOW_SIZE") {
        out.notes.push_back("WINDOW_SIZE " + std::string(w.size() > 1 ? w[1] : "") +
                            ": not kept; mfad accepts [TOTP] Window= steps either side for "
                            "everyone");
      } else if (option == "DISALLOW_REUSE") {
        out.notes.push_back("DISALLOW_REUSE: kept; mfad never accepts a code twice");
      } else if (option == "RATE_LIMIT") {
        out.notes.push_back("RATE_LIMIT: replaced by mfad's lockout ([Policy] MaxFailures=)");
      } else {
        out.notes.push_back(std::string(option.substr(0, 32)) + ": unknown option, ignored");
      }
      continue;
    }
    if (all_digits(l) && l.size() == 8) {
      if (out.scratch_codes.size() >= kMaxScratchCodes)
        return refused("more than 20 scratch codes");
      out.scratch_codes.emplace_back(l);
      continue;
    }
    return refused("line " + std::to_string(i + 1) +
                   " is neither an option nor an 8-digit scratch code");
  }
  if (hotp) {
    return refused(
        "the file is HOTP (counter-based, HOTP_COUNTER): mfad supports TOTP only; enroll a new "
        "authenticator (mfactl enroll totp)");
  }
  if (!totp)
    return refused("the file names neither TOTP_AUTH nor HOTP_COUNTER");
  return out;
}

std::vector<OathEntry> parse_oath_usersfile(std::string_view text) {
  std::vector<OathEntry> out;
  const auto lines = split_lines(text);
  for (size_t i = 0; i < lines.size(); ++i) {
    std::string_view l = lines[i];
    const size_t hash = l.find('#');
    if (hash != std::string_view::npos)
      l = l.substr(0, hash);
    const auto w = words(l);
    if (w.empty())
      continue;
    OathEntry e;
    e.line = static_cast<int>(i + 1);
    if (w.size() < 4) {
      e.problem = "not TYPE USER PIN SECRET";
      out.push_back(std::move(e));
      continue;
    }
    e.user = std::string(w[1].substr(0, 256));
    // TYPE: HOTP, HOTP/E, HOTP/E/8, HOTP/T30, HOTP/T30/6 (pam_oath's usersfile).
    std::string_view type = w[0];
    if (!type.starts_with("HOTP")) {
      e.problem = "unknown type '" + std::string(type.substr(0, 16)) + "'";
      out.push_back(std::move(e));
      continue;
    }
    type.remove_prefix(4);
    bool ok = true;
    if (type.starts_with("/T")) {
      const size_t end = type.find('/', 2);
      const auto period =
          number(type.substr(2, end == std::string_view::npos ? std::string_view::npos : end - 2));
      ok = period.has_value() && *period > 0;
      e.totp = true;
      e.period = period.value_or(0);
      type = end == std::string_view::npos ? std::string_view() : type.substr(end);
    } else if (type.starts_with("/E")) {
      type.remove_prefix(2);
    }
    if (ok && type.starts_with("/")) {
      const auto digits = number(type.substr(1));
      ok = digits.has_value();
      e.digits = digits.value_or(0);
    } else if (ok && !type.empty()) {
      ok = false;
    }
    if (!ok) {
      e.problem = "cannot read its type";
      out.push_back(std::move(e));
      continue;
    }
    if (!e.totp) {
      e.problem = "HOTP (counter-based) is not supported: enroll a new authenticator for " +
                  e.user + " (mfactl enroll totp " + e.user + ")";
      out.push_back(std::move(e));
      continue;
    }
    if (w[2] != "-")
      e.notes.push_back("its PIN is not kept: mfad asks for the code alone");
    auto secret = hex_to_base32(w[3]);
    if (!secret) {
      e.problem = "the secret is not hexadecimal";
      out.push_back(std::move(e));
      continue;
    }
    e.secret_base32 = std::move(*secret);
    out.push_back(std::move(e));
  }
  return out;
}

}  // namespace mfa::ctl

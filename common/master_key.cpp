#include "common/master_key.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>

#include "common/crypto.hpp"
#include "common/handles.hpp"

namespace mfa {

namespace {

constexpr char kCredentialName[] = "mfad.key";

Error io_error(const std::string& path, const std::string& problem) {
  return make_error(Errc::kIo, "master key " + path + ": " + problem);
}

std::string errno_text(int err) {
  return std::strerror(err);
}

std::string mode_text(mode_t mode) {
  std::string out = "0000";
  unsigned bits = mode & 07777;
  for (int i = 3; i >= 0; --i, bits >>= 3)
    out[i] = static_cast<char>('0' + (bits & 7));
  return out;
}

// Reads exactly kMasterKeySize bytes from an already-checked file.
Result<SecureBytes> read_key(int fd, const std::string& path) {
  SecureBytes key(kMasterKeySize);
  size_t done = 0;
  while (done < key.size()) {
    ssize_t n = pread(fd, key.data() + done, key.size() - done, static_cast<off_t>(done));
    if (n < 0) {
      if (errno == EINTR)
        continue;
      return io_error(path, "cannot read: " + errno_text(errno));
    }
    if (n == 0)
      return io_error(path, "file shrank while reading");
    done += static_cast<size_t>(n);
  }
  return key;
}

Result<SecureBytes> load_credential(const std::string& path, int fd) {
  struct stat st {};
  if (fstat(fd, &st) < 0)
    return io_error(path, "cannot stat: " + errno_text(errno));
  if (!S_ISREG(st.st_mode))
    return io_error(path, "not a regular file");
  if (st.st_size != static_cast<off_t>(kMasterKeySize))
    return io_error(path, "is " + std::to_string(st.st_size) + " bytes, expected 32");
  return read_key(fd, path);
}

Result<SecureBytes> load_checked(const MasterKeyOptions& options, int fd) {
  const std::string& path = options.path;
  struct stat st {};
  if (fstat(fd, &st) < 0)
    return io_error(path, "cannot stat: " + errno_text(errno));
  if (!S_ISREG(st.st_mode))
    return io_error(path, "not a regular file");
  if (st.st_uid != options.allowed_owner && st.st_uid != options.extra_owner)
    return io_error(path, "owned by uid " + std::to_string(st.st_uid) + ", expected uid " +
                              std::to_string(options.allowed_owner));
  if (st.st_mode & 077)
    return io_error(
        path, "mode " + mode_text(st.st_mode) + " lets group or others access it; expected 0600");
  if (st.st_size != static_cast<off_t>(kMasterKeySize))
    return io_error(path, "is " + std::to_string(st.st_size) + " bytes, expected 32");
  return read_key(fd, path);
}

Status write_all(int fd, std::span<const uint8_t> data, const std::string& path) {
  size_t done = 0;
  while (done < data.size()) {
    ssize_t n = write(fd, data.data() + done, data.size() - done);
    if (n < 0) {
      if (errno == EINTR)
        continue;
      return io_error(path, "cannot write: " + errno_text(errno));
    }
    done += static_cast<size_t>(n);
  }
  return {};
}

// Links the anonymous O_TMPFILE file fd into dirfd under name; fails with EEXIST when a file of
// that name appeared meanwhile (never replaces one).
int link_tmpfile(int fd, int dirfd, const char* name) {
  if (linkat(fd, "", dirfd, name, AT_EMPTY_PATH) == 0)
    return 0;
  if (errno == EEXIST)
    return -1;
  // AT_EMPTY_PATH needs CAP_DAC_READ_SEARCH; /proc/self/fd works for anyone.
  const std::string proc_path = "/proc/self/fd/" + std::to_string(fd);
  return linkat(AT_FDCWD, proc_path.c_str(), dirfd, name, AT_SYMLINK_FOLLOW);
}

// Creates the key file atomically: it appears complete (32 bytes, 0600, on disk) or not at all.
// Returns the new key, or kIo; EEXIST (someone else created it first) is reported via
// ret_raced so that the caller can load the winner's key.
Result<SecureBytes> create_key(const std::string& path, bool* ret_raced) {
  *ret_raced = false;
  const size_t slash = path.rfind('/');
  const std::string dir =
      slash == std::string::npos ? "." : (slash == 0 ? "/" : path.substr(0, slash));
  const std::string name = slash == std::string::npos ? path : path.substr(slash + 1);
  if (name.empty())
    return io_error(path, "path names a directory");

  Fd dirfd(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!dirfd.valid())
    return io_error(path, "cannot open directory " + dir + ": " + errno_text(errno));

  SecureBytes key(kMasterKeySize);
  MFA_CHECK(random_bytes(key.span()));

  Fd fd(::openat(dirfd.get(), ".", O_TMPFILE | O_WRONLY | O_CLOEXEC, 0600));
  std::string temp_name;
  if (!fd.valid()) {
    if (errno != EOPNOTSUPP && errno != EISDIR && errno != EINVAL)
      return io_error(path, "cannot create: " + errno_text(errno));
    // No O_TMPFILE on this file system: a uniquely named temporary file, linked below.
    uint8_t rnd[8];
    MFA_CHECK(random_bytes(rnd));
    temp_name = "." + name + "." + to_hex(rnd) + ".tmp";
    fd = Fd(::openat(dirfd.get(), temp_name.c_str(),
                     O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600));
    if (!fd.valid())
      return io_error(path, "cannot create: " + errno_text(errno));
  }
  auto cleanup_temp = [&] {
    if (!temp_name.empty())
      unlinkat(dirfd.get(), temp_name.c_str(), 0);
  };
  // The umask may have taken bits away, never added them; still, be explicit.
  if (fchmod(fd.get(), 0600) < 0) {
    cleanup_temp();
    return io_error(path, "cannot set mode 0600: " + errno_text(errno));
  }
  if (auto st = write_all(fd.get(), key.span(), path); !st.ok()) {
    cleanup_temp();
    return std::move(st).error();
  }
  if (fsync(fd.get()) < 0) {
    cleanup_temp();
    return io_error(path, "cannot fsync: " + errno_text(errno));
  }
  int rc;
  if (temp_name.empty()) {
    rc = link_tmpfile(fd.get(), dirfd.get(), name.c_str());
  } else {
    // link, not rename: rename would silently replace a key created meanwhile.
    rc = linkat(dirfd.get(), temp_name.c_str(), dirfd.get(), name.c_str(), 0);
  }
  const int link_errno = errno;
  cleanup_temp();
  if (rc < 0) {
    if (link_errno == EEXIST) {
      *ret_raced = true;
      return io_error(path, "created concurrently");
    }
    return io_error(path, "cannot create: " + errno_text(link_errno));
  }
  if (fsync(dirfd.get()) < 0)
    return io_error(path, "cannot fsync directory: " + errno_text(errno));
  return key;
}

}  // namespace

Result<SecureBytes> load_master_key(const MasterKeyOptions& options) {
  // systemd's LoadCredential=/SetCredential= (mfad.service): the service manager placed it on a
  // private read-only mount; only its size can be wrong.
  if (const char* cred_dir = secure_getenv("CREDENTIALS_DIRECTORY"); cred_dir && *cred_dir) {
    const std::string cred_path = std::string(cred_dir) + "/" + kCredentialName;
    Fd fd(::open(cred_path.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK));
    if (fd.valid())
      return load_credential(cred_path, fd.get());
    if (errno != ENOENT)
      return io_error(cred_path, "cannot open: " + errno_text(errno));
  }

  if (options.path.empty())
    return make_error(Errc::kIo, "master key: no key file configured");
  for (int attempt = 0; attempt < 2; ++attempt) {
    // O_NONBLOCK: a FIFO planted at the path must not hang the daemon before fstat refuses it.
    Fd fd(::open(options.path.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK | O_NOCTTY));
    if (fd.valid())
      return load_checked(options, fd.get());
    if (errno == ELOOP)
      return io_error(options.path, "is a symbolic link; refusing to follow it");
    if (errno != ENOENT)
      return io_error(options.path, "cannot open: " + errno_text(errno));
    if (!options.create_if_missing)
      return io_error(options.path, "does not exist");
    bool raced = false;
    auto created = create_key(options.path, &raced);
    if (created.ok() || !raced)
      return created;
    // Another process created it between our open and link: load theirs.
  }
  return io_error(options.path, "cannot be created or opened");
}

}  // namespace mfa

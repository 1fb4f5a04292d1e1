// The master key file: creation (0600, 32 bytes, atomic), reuse, and every refusal, with the
// message an admin sees; the systemd credential path. Runs as root (chown tests need it).
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "common/crypto.hpp"
#include "common/master_key.hpp"
#include "cmocka_cpp.hpp"
#include "temp_dir.hpp"

using mfa::test::TempDir;

namespace {

void write_file(const std::string& path, size_t size, mode_t mode) {
  int fd = open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
  assert_true(fd >= 0);
  std::vector<uint8_t> data(size, 0x5a);
  assert_int_equal(write(fd, data.data(), data.size()), static_cast<ssize_t>(size));
  assert_int_equal(fchmod(fd, mode), 0);
  close(fd);
}

mfa::MasterKeyOptions options_for(const std::string& path) {
  mfa::MasterKeyOptions o;
  o.path = path;
  return o;
}

void expect_refused(const mfa::MasterKeyOptions& o, const char* problem) {
  auto r = mfa::load_master_key(o);
  assert_false(r.ok());
  assert_int_equal(static_cast<int>(r.error().code), static_cast<int>(mfa::Errc::kIo));
  const std::string& m = r.error().message;
  if (m.find(o.path) == std::string::npos || m.find(problem) == std::string::npos) {
    print_error("message \"%s\" should name %s and \"%s\"\n", m.c_str(), o.path.c_str(), problem);
    fail();
  }
  // Never the contents (the test files are filled with 'Z' = 0x5a).
  assert_true(m.find("5a5a") == std::string::npos && m.find("ZZZZ") == std::string::npos);
}

int setup(void**) {
  unsetenv("CREDENTIALS_DIRECTORY");
  umask(022);
  return 0;
}

void test_creates_0600_32_bytes(void**) {
  TempDir dir;
  const auto path = dir.file("master.key");
  auto key = mfa::load_master_key(options_for(path));
  assert_true(key.ok());
  assert_int_equal(key->size(), 32);
  struct stat st {};
  assert_int_equal(lstat(path.c_str(), &st), 0);
  assert_true(S_ISREG(st.st_mode));
  assert_int_equal(st.st_mode & 07777, 0600);
  assert_int_equal(st.st_size, 32);
  assert_int_equal(st.st_uid, geteuid());
  // What was written is what was returned.
  std::vector<uint8_t> disk(32);
  int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  assert_int_equal(read(fd, disk.data(), 32), 32);
  close(fd);
  assert_memory_equal(disk.data(), key->data(), 32);
  // No temporary files left behind.
  assert_int_equal(std::system(("test $(ls -A '" + dir.path + "' | wc -l) -eq 1").c_str()), 0);
}

void test_reuses_existing(void**) {
  TempDir dir;
  const auto o = options_for(dir.file("master.key"));
  auto first = mfa::load_master_key(o);
  auto second = mfa::load_master_key(o);
  assert_true(first.ok() && second.ok());
  assert_memory_equal(first->data(), second->data(), 32);
  // Two keys created in two places differ.
  TempDir other;
  auto third = mfa::load_master_key(options_for(other.file("master.key")));
  assert_true(third.ok());
  assert_false(mfa::ct_equal(first->span(), third->span()));
}

void test_refuses_loose_modes(void**) {
  TempDir dir;
  const auto path = dir.file("master.key");
  for (mode_t mode : {0644, 0640, 0604, 0660, 0620, 0602}) {
    write_file(path, 32, mode);
    expect_refused(options_for(path), "group or others");
  }
  write_file(path, 32, 0400);  // read-only for the owner is fine
  assert_true(mfa::load_master_key(options_for(path)).ok());
}

void test_refuses_symlink(void**) {
  TempDir dir;
  const auto target = dir.file("real.key");
  const auto link = dir.file("master.key");
  write_file(target, 32, 0600);
  assert_int_equal(symlink(target.c_str(), link.c_str()), 0);
  expect_refused(options_for(link), "symbolic link");
  // A dangling symlink is not "missing": nothing is created through it.
  const auto dangling = dir.file("dangling.key");
  assert_int_equal(symlink(dir.file("nowhere").c_str(), dangling.c_str()), 0);
  expect_refused(options_for(dangling), "symbolic link");
  assert_int_equal(access(dir.file("nowhere").c_str(), F_OK), -1);
}

void test_refuses_wrong_size(void**) {
  TempDir dir;
  const auto path = dir.file("master.key");
  write_file(path, 31, 0600);
  expect_refused(options_for(path), "31 bytes, expected 32");
  write_file(path, 33, 0600);
  expect_refused(options_for(path), "33 bytes, expected 32");
  write_file(path, 0, 0600);
  expect_refused(options_for(path), "0 bytes, expected 32");
}

void test_refuses_not_regular(void**) {
  TempDir dir;
  const auto d = dir.file("master.key");
  assert_int_equal(mkdir(d.c_str(), 0700), 0);
  expect_refused(options_for(d), "not a regular file");
  const auto fifo = dir.file("fifo.key");
  assert_int_equal(mkfifo(fifo.c_str(), 0600), 0);
  expect_refused(options_for(fifo), "not a regular file");  // and does not hang
}

void test_owner(void**) {
  TempDir dir;
  const auto path = dir.file("master.key");
  write_file(path, 32, 0600);
  assert_int_equal(chown(path.c_str(), 4242, 4242), 0);
  expect_refused(options_for(path), "owned by uid 4242");
  auto o = options_for(path);
  o.extra_owner = 4242;  // the mfad user
  assert_true(mfa::load_master_key(o).ok());
}

void test_missing_without_create(void**) {
  TempDir dir;
  auto o = options_for(dir.file("master.key"));
  o.create_if_missing = false;
  expect_refused(o, "does not exist");
  assert_int_equal(access(o.path.c_str(), F_OK), -1);
  // A missing directory is named too.
  auto nodir = options_for(dir.file("nodir/master.key"));
  expect_refused(nodir, "cannot open directory");
}

void test_created_mode_ignores_umask(void**) {
  TempDir dir;
  umask(0);
  auto key = mfa::load_master_key(options_for(dir.file("master.key")));
  umask(022);
  assert_true(key.ok());
  struct stat st {};
  assert_int_equal(stat(dir.file("master.key").c_str(), &st), 0);
  assert_int_equal(st.st_mode & 07777, 0600);
}

void test_concurrent_creation(void**) {
  // Several daemons starting at once on a fresh host: exactly one key wins and every process
  // ends up with it (the losers of the link race load the winner's file).
  TempDir dir;
  const auto path = dir.file("master.key");
  constexpr int kProcs = 6;
  int fds[kProcs][2];
  pid_t pids[kProcs];
  for (int i = 0; i < kProcs; ++i) {
    assert_int_equal(pipe2(fds[i], O_CLOEXEC), 0);
    pids[i] = fork();
    assert_true(pids[i] >= 0);
    if (pids[i] == 0) {
      auto key = mfa::load_master_key(options_for(path));
      if (!key.ok() || write(fds[i][1], key->data(), 32) != 32)
        _exit(1);
      _exit(0);
    }
    close(fds[i][1]);
  }
  std::vector<uint8_t> disk(32);
  for (int i = 0; i < kProcs; ++i) {
    int status = 0;
    assert_int_equal(waitpid(pids[i], &status, 0), pids[i]);
    assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
  }
  int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  assert_int_equal(read(fd, disk.data(), 32), 32);
  close(fd);
  for (int i = 0; i < kProcs; ++i) {
    uint8_t got[32];
    assert_int_equal(read(fds[i][0], got, 32), 32);
    close(fds[i][0]);
    assert_memory_equal(got, disk.data(), 32);
  }
}

void test_credentials_directory(void**) {
  TempDir creds, etc;
  const auto cred = creds.file("mfad.key");
  std::vector<uint8_t> secret(32);
  assert_true(mfa::random_bytes(secret).ok());
  int fd = open(cred.c_str(), O_WRONLY | O_CREAT | O_CLOEXEC, 0400);
  assert_int_equal(write(fd, secret.data(), 32), 32);
  close(fd);
  setenv("CREDENTIALS_DIRECTORY", creds.path.c_str(), 1);
  const auto o = options_for(etc.file("master.key"));
  auto key = mfa::load_master_key(o);
  assert_true(key.ok());
  assert_memory_equal(key->data(), secret.data(), 32);
  // The credential wins: nothing was created at the configured path.
  assert_int_equal(access(o.path.c_str(), F_OK), -1);

  // A credential of the wrong size is refused, not silently replaced by the file.
  write_file(cred, 16, 0400);
  auto r = mfa::load_master_key(o);
  assert_false(r.ok());
  assert_true(r.error().message.find(cred) != std::string::npos);
  assert_true(r.error().message.find("16 bytes, expected 32") != std::string::npos);

  // A credentials directory without mfad.key: the key file is used.
  unlink(cred.c_str());
  auto fallback = mfa::load_master_key(o);
  assert_true(fallback.ok());
  assert_int_equal(access(o.path.c_str(), F_OK), 0);
  unsetenv("CREDENTIALS_DIRECTORY");
}

}  // namespace

int main() {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup(test_creates_0600_32_bytes, setup),
      cmocka_unit_test_setup(test_reuses_existing, setup),
      cmocka_unit_test_setup(test_refuses_loose_modes, setup),
      cmocka_unit_test_setup(test_refuses_symlink, setup),
      cmocka_unit_test_setup(test_refuses_wrong_size, setup),
      cmocka_unit_test_setup(test_refuses_not_regular, setup),
      cmocka_unit_test_setup(test_owner, setup),
      cmocka_unit_test_setup(test_missing_without_create, setup),
      cmocka_unit_test_setup(test_created_mode_ignores_umask, setup),
      cmocka_unit_test_setup(test_concurrent_creation, setup),
      cmocka_unit_test_setup(test_credentials_directory, setup),
  };
  return cmocka_run_group_tests(tests, nullptr, nullptr);
}

// Secret files (a provider token, the Redis password): the two formats, and every refusal with
// the message an admin sees, which never holds the secret. The owner test needs root.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <string>

#include "common/secret_file.hpp"
#include "cmocka_cpp.hpp"
#include "temp_dir.hpp"

using mfa::SecretFileRules;
using mfa::SecretFormat;

using mfa::test::TempDir;

namespace {

constexpr char kSecret[] = "s3cretValue";

std::string write_file(const TempDir& dir, const char* name, std::string_view content,
                       mode_t mode = 0600) {
  const std::string path = dir.file(name);
  int fd = open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  assert_true(fd >= 0);
  assert_int_equal(write(fd, content.data(), content.size()), static_cast<ssize_t>(content.size()));
  assert_int_equal(fchmod(fd, mode), 0);
  close(fd);
  return path;
}

const SecretFileRules kToken{"the token file", SecretFormat::kToken, 64};
const SecretFileRules kLine{"the Redis password file", SecretFormat::kFirstLine, 64};

void expect_refused(const std::string& path, const SecretFileRules& rules, const char* problem) {
  auto r = mfa::read_secret_file(path, rules);
  assert_false(r.ok());
  assert_int_equal(static_cast<int>(r.error().code), static_cast<int>(mfa::Errc::kIo));
  const std::string& m = r.error().message;
  if (m.find(rules.what + " " + path) == std::string::npos ||
      m.find(problem) == std::string::npos) {
    print_error("message \"%s\" should name %s and \"%s\"\n", m.c_str(), path.c_str(), problem);
    fail();
  }
  assert_true(m.find(kSecret) == std::string::npos);
}

void test_token(void**) {
  TempDir dir;
  auto r = mfa::read_secret_file(write_file(dir, "t", std::string(kSecret) + " \r\n"), kToken);
  assert_true(r.ok());
  assert_string_equal(r->c_str(), kSecret);
  auto ro = mfa::read_secret_file(write_file(dir, "ro", kSecret, 0400), kToken);
  assert_true(ro.ok());
  expect_refused(write_file(dir, "space", "two words"), kToken, "characters a token cannot have");
  expect_refused(write_file(dir, "lines", std::string(kSecret) + "\nmore"), kToken,
                 "characters a token cannot have");
  expect_refused(write_file(dir, "empty", "\n"), kToken, "is empty");
}

void test_first_line(void**) {
  TempDir dir;
  auto r = mfa::read_secret_file(write_file(dir, "p", "pass with spaces\nignored\n"), kLine);
  assert_true(r.ok());
  assert_string_equal(r->c_str(), "pass with spaces");
  auto crlf = mfa::read_secret_file(write_file(dir, "crlf", "pw\r\n"), kLine);
  assert_true(crlf.ok());
  assert_string_equal(crlf->c_str(), "pw");
  // An empty password file stays what it was: no AUTH.
  auto empty = mfa::read_secret_file(write_file(dir, "empty", ""), kLine);
  assert_true(empty.ok());
  assert_true(empty->empty());
}

void test_mode(void**) {
  TempDir dir;
  expect_refused(write_file(dir, "g", kSecret, 0640), kToken,
                 "is readable by group or others (mode 0640); make it mode 0600 or 0400");
  expect_refused(write_file(dir, "o", kSecret, 0604), kLine, "readable by group or others");
  expect_refused(write_file(dir, "w", kSecret, 0620), kToken, "accessible to group or others");
  expect_refused(write_file(dir, "x", kSecret, 0601), kToken, "accessible to group or others");
}

void test_not_a_plain_file(void**) {
  TempDir dir;
  const std::string target = write_file(dir, "target", kSecret);
  const std::string link = dir.file("link");
  assert_int_equal(symlink(target.c_str(), link.c_str()), 0);
  expect_refused(link, kToken, "is a symbolic link");
  // O_NONBLOCK: a FIFO is refused at once instead of waiting for a writer.
  const std::string fifo = dir.file("fifo");
  assert_int_equal(mkfifo(fifo.c_str(), 0600), 0);
  expect_refused(fifo, kToken, "is not a regular file");
  expect_refused(dir.path, kToken, "is not a regular file");
  auto missing = mfa::read_secret_file(dir.file("missing"), kToken);
  assert_false(missing.ok());
  assert_true(missing.error().message.find("cannot open the token file") != std::string::npos);
}

void test_size_bound(void**) {
  TempDir dir;
  auto fits = mfa::read_secret_file(write_file(dir, "fits", std::string(64, 'a')), kToken);
  assert_true(fits.ok());
  assert_int_equal(fits->size(), 64);
  expect_refused(write_file(dir, "big", std::string(65, 'a')), kToken, "larger than 64 bytes");
}

void test_owner(void**) {
  if (geteuid() != 0) {
    skip();
    return;
  }
  TempDir dir;
  const std::string path = write_file(dir, "other", kSecret);
  assert_int_equal(chown(path.c_str(), 4242, 4242), 0);
  expect_refused(path, kToken, "is owned by uid 4242, not root");
}

}  // namespace

int main() {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_token),      cmocka_unit_test(test_first_line),
      cmocka_unit_test(test_mode),       cmocka_unit_test(test_not_a_plain_file),
      cmocka_unit_test(test_size_bound), cmocka_unit_test(test_owner),
  };
  return cmocka_run_group_tests(tests, nullptr, nullptr);
}

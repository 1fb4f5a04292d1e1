// mfactl import's readers (mfactl/import_files.hpp): google-authenticator's file, pam_oath's
// usersfile, and the safe opening of a user's file.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <string>

#include "mfactl/import_files.hpp"
#include "cmocka_cpp.hpp"

namespace {

using mfa::Errc;

void test_google_authenticator(void**) {
  auto f = mfa::ctl::parse_google_authenticator(
      "77UL473OM64M3ZFSMUZQ2F3C3E\n\" RATE_LIMIT 3 30\n\" WINDOW_SIZE 3\n\" DISALLOW_REUSE\n"
      "\" TOTP_AUTH\n\" STEP_SIZE 60\n79108513\n49876630\n");
  assert_true(f.ok());
  assert_string_equal(f->secret_base32.c_str(), "77UL473OM64M3ZFSMUZQ2F3C3E");
  assert_int_equal(f->period, 60);
  assert_int_equal(f->scratch_codes.size(), 2);
  assert_string_equal(f->scratch_codes[1].c_str(), "49876630");
  assert_int_equal(f->notes.size(), 4);

  auto hotp = mfa::ctl::parse_google_authenticator("77UL473OM64M3ZFS\n\" HOTP_COUNTER 1\n");
  assert_false(hotp.ok());
  assert_non_null(strstr(hotp.error().message.c_str(), "HOTP"));
  assert_false(mfa::ctl::parse_google_authenticator("not base32!\n\" TOTP_AUTH\n").ok());
  assert_false(mfa::ctl::parse_google_authenticator("77UL473OM64M3ZFS\n1234\n\" TOTP_AUTH\n").ok());
  assert_false(mfa::ctl::parse_google_authenticator("77UL473OM64M3ZFS\n").ok());
  // A bad line is named by its number, never echoed (it may be a secret).
  auto bad = mfa::ctl::parse_google_authenticator("77UL473OM64M3ZFS\n\" TOTP_AUTH\nSECRETLINE\n");
  assert_false(bad.ok());
  assert_null(strstr(bad.error().message.c_str(), "SECRETLINE"));
}

void test_oath(void**) {
  auto e = mfa::ctl::parse_oath_usersfile(
      "# comment\nHOTP/T30/6 alice - 3132333435363738393031323334353637383930\n"
      "HOTP bob - 00112233\nHOTP/E/8 dave - 00112233\nHOTP/T60/8 carol 1234 0011aabb 0 1 x\n"
      "HOTP/T30 erin - xyz\nTOTP frank - 00\nshort\n");
  assert_int_equal(e.size(), 7);
  assert_string_equal(e[0].user.c_str(), "alice");
  assert_true(e[0].totp && e[0].problem.empty());
  assert_int_equal(e[0].period, 30);
  assert_int_equal(e[0].digits, 6);
  assert_string_equal(e[0].secret_base32.c_str(), "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ");
  assert_non_null(strstr(e[1].problem.c_str(), "HOTP (counter-based)"));
  assert_non_null(strstr(e[2].problem.c_str(), "HOTP (counter-based)"));
  assert_true(e[3].totp && e[3].problem.empty());
  assert_int_equal(e[3].period, 60);
  assert_int_equal(e[3].digits, 8);
  assert_int_equal(e[3].notes.size(), 1);  // the PIN
  assert_string_equal(e[4].problem.c_str(), "the secret is not hexadecimal");
  assert_false(e[5].problem.empty());
  assert_false(e[6].problem.empty());
}

void test_open_refuses_symlink_and_owner(void**) {
  char dir[] = "/tmp/mfa-import-unit-XXXXXX";
  assert_non_null(mkdtemp(dir));
  const std::string d(dir);
  const std::string real = d + "/real";
  int fd = open(real.c_str(), O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
  assert_true(fd >= 0);
  assert_int_equal(write(fd, "x\n", 2), 2);
  close(fd);
  assert_int_equal(symlink(real.c_str(), (d + "/link").c_str()), 0);
  const uid_t me = getuid();

  auto ok = mfa::ctl::open_named_file(real, {me});
  assert_true(ok.ok());
  assert_string_equal(ok->text.c_str(), "x\n");
  auto link = mfa::ctl::open_named_file(d + "/link", {me});
  assert_false(link.ok());
  assert_non_null(strstr(link.error().message.c_str(), "symbolic link"));
  auto owner = mfa::ctl::open_named_file(real, {me + 1});
  assert_false(owner.ok());
  assert_non_null(strstr(owner.error().message.c_str(), "belongs to uid"));
  auto home = mfa::ctl::open_home_file(d, me, "link");
  assert_false(home.ok());
  auto missing = mfa::ctl::open_home_file(d, me, "none");
  assert_false(missing.ok());
  assert_int_equal(static_cast<int>(missing.error().code), static_cast<int>(Errc::kNotEnrolled));

  // Removed only while the name still leads to what was read.
  auto again = mfa::ctl::open_named_file(real, {me});
  assert_true(again.ok());
  assert_int_equal(rename((d + "/link").c_str(), real.c_str()), 0);
  assert_false(mfa::ctl::remove_source(*again).ok());
  assert_int_equal(unlink(real.c_str()), 0);
  assert_int_equal(rmdir(dir), 0);
}

}  // namespace

int main() {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_google_authenticator),
      cmocka_unit_test(test_oath),
      cmocka_unit_test(test_open_refuses_symlink_and_owner),
  };
  return cmocka_run_group_tests(tests, nullptr, nullptr);
}

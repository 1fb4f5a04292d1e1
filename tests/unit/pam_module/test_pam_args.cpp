// pam_mfa.so's argument parser: every row of CONTRACT.md's table, and the bad values an admin
// could write in /etc/pam.d.
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cstring>
#include <initializer_list>
#include <string>
#include <vector>

extern "C" {
#include <cmocka.h>
}

#include "pam_module/pam_args.hpp"

using mfa::Errc;
using mfa::pam::FailMode;
using mfa::pam::PamArgs;
using mfa::pam::parse_pam_args;
using mfa::pam::PassMode;

namespace {

mfa::Result<PamArgs> parse(std::initializer_list<const char*> list) {
  std::vector<const char*> argv(list);
  return parse_pam_args(static_cast<int>(argv.size()), argv.data());
}

PamArgs parse_ok(std::initializer_list<const char*> list) {
  auto r = parse(list);
  if (!r.ok())
    fail_msg("unexpected error: %s", r.error().message.c_str());
  return std::move(r).value();
}

void expect_invalid(std::initializer_list<const char*> list, const char* name) {
  auto r = parse(list);
  assert_false(r.ok());
  assert_int_equal(static_cast<int>(r.error().code), static_cast<int>(Errc::kInvalidArgument));
  assert_non_null(strstr(r.error().message.c_str(), name));
}

void test_defaults(void**) {
  PamArgs a = parse_ok({});
  assert_false(a.debug);
  assert_false(a.nullok);
  assert_true(a.failmode == FailMode::kSecure);
  assert_int_equal(a.max_tries, 3);
  assert_int_equal(a.timeout_seconds, 10);
  assert_true(a.prompt.empty());
  assert_string_equal(mfa::pam::kDefaultPrompt, "Verification code: ");
  assert_true(a.methods.empty());
  assert_true(a.pass_mode == PassMode::kPrompt);
  assert_false(a.forward_pass);
  assert_true(a.bus_address.empty());
  assert_true(a.unknown.empty());
}

void test_flags(void**) {
  PamArgs a = parse_ok({"debug", "nullok", "forward_pass"});
  assert_true(a.debug);
  assert_true(a.nullok);
  assert_true(a.forward_pass);
  expect_invalid({"debug=1"}, "debug");
  expect_invalid({"nullok=yes"}, "nullok");
  expect_invalid({"forward_pass="}, "forward_pass");
  expect_invalid({"use_first_pass=1"}, "use_first_pass");
}

void test_failmode(void**) {
  assert_true(parse_ok({"failmode=ignore"}).failmode == FailMode::kIgnore);
  assert_true(parse_ok({"failmode=ignore", "failmode=secure"}).failmode == FailMode::kSecure);
  expect_invalid({"failmode"}, "failmode");
  expect_invalid({"failmode="}, "failmode");
  expect_invalid({"failmode=open"}, "failmode");
  expect_invalid({"failmode=IGNORE"}, "failmode");
}

void test_max_tries(void**) {
  assert_int_equal(parse_ok({"max_tries=1"}).max_tries, 1);
  assert_int_equal(parse_ok({"max_tries=10"}).max_tries, 10);
  assert_int_equal(parse_ok({"max_tries=05"}).max_tries, 5);
  for (const char* bad :
       {"max_tries=0", "max_tries=11", "max_tries=-1", "max_tries=+3", "max_tries=", "max_tries",
        "max_tries=3x", "max_tries= 3", "max_tries=99999999999999999999", "max_tries=0x3"})
    expect_invalid({bad}, "max_tries");
}

void test_timeout(void**) {
  assert_int_equal(parse_ok({"timeout=1"}).timeout_seconds, 1);
  assert_int_equal(parse_ok({"timeout=300"}).timeout_seconds, 300);
  for (const char* bad : {"timeout=0", "timeout=301", "timeout=-5", "timeout=1.5",
                          "timeout=", "timeout", "timeout=ten", "timeout=2147483648"})
    expect_invalid({bad}, "timeout");
}

void test_prompt(void**) {
  assert_string_equal(parse_ok({"prompt=OTP: "}).prompt.c_str(), "OTP: ");
  assert_string_equal(parse_ok({"prompt=a=b"}).prompt.c_str(), "a=b");
  expect_invalid({"prompt="}, "prompt");
  expect_invalid({"prompt"}, "prompt");
  expect_invalid({"prompt=a\nb"}, "prompt");
  expect_invalid({"prompt=\x1b[31m"}, "prompt");
  std::string long_prompt = "prompt=" + std::string(257, 'x');
  expect_invalid({long_prompt.c_str()}, "prompt");
  std::string max_prompt = "prompt=" + std::string(256, 'x');
  assert_int_equal(parse_ok({max_prompt.c_str()}).prompt.size(), 256);
}

void test_methods(void**) {
  assert_string_equal(parse_ok({"methods=totp"}).methods.c_str(), "totp");
  assert_string_equal(parse_ok({"methods=backup,totp"}).methods.c_str(), "totp,backup");
  assert_string_equal(parse_ok({"methods=sms,totp,sms"}).methods.c_str(), "totp,sms");
  assert_string_equal(parse_ok({"methods=totp,sms,backup"}).methods.c_str(), "totp,sms,backup");
  for (const char* bad : {"methods=", "methods", "methods=password", "methods=totp,",
                          "methods=,totp", "methods=TOTP", "methods=totp,,sms", "methods=totp sms"})
    expect_invalid({bad}, "methods");
}

void test_method_allowed(void**) {
  PamArgs all = parse_ok({});
  assert_true(mfa::pam::method_allowed(all, "totp"));
  assert_true(mfa::pam::method_allowed(all, "backup"));
  PamArgs some = parse_ok({"methods=totp,backup"});
  assert_true(mfa::pam::method_allowed(some, "totp"));
  assert_true(mfa::pam::method_allowed(some, "backup"));
  assert_false(mfa::pam::method_allowed(some, "sms"));
  assert_false(mfa::pam::method_allowed(some, "tot"));
  assert_false(mfa::pam::method_allowed(some, ""));
}

void test_pass_modes(void**) {
  assert_true(parse_ok({"use_first_pass"}).pass_mode == PassMode::kUseFirstPass);
  assert_true(parse_ok({"try_first_pass"}).pass_mode == PassMode::kTryFirstPass);
  // The last one wins, like every other argument.
  assert_true(parse_ok({"use_first_pass", "try_first_pass"}).pass_mode == PassMode::kTryFirstPass);
  PamArgs a = parse_ok({"try_first_pass", "forward_pass"});
  assert_true(a.pass_mode == PassMode::kTryFirstPass);
  assert_true(a.forward_pass);
}

void test_bus_address(void**) {
  assert_string_equal(
      parse_ok({"bus_address=unix:path=/tmp/x/system_bus_socket"}).bus_address.c_str(),
      "unix:path=/tmp/x/system_bus_socket");
  expect_invalid({"bus_address="}, "bus_address");
  expect_invalid({"bus_address"}, "bus_address");
  expect_invalid({"bus_address=unix:path=/a\nb"}, "bus_address");
  std::string too_long = "bus_address=unix:path=" + std::string(1100, 'a');
  expect_invalid({too_long.c_str()}, "bus_address");
}

void test_unknown_arguments_are_kept_by_name(void**) {
  PamArgs a = parse_ok({"secret=hunter2", "echo_verification_code", "debug"});
  assert_true(a.debug);
  assert_int_equal(a.unknown.size(), 2);
  // Only the name: an unknown argument's value is never repeated (it goes to syslog).
  assert_string_equal(a.unknown[0].c_str(), "secret");
  assert_string_equal(a.unknown[1].c_str(), "echo_verification_code");
  std::string long_name(200, 'n');
  PamArgs b = parse_ok({long_name.c_str()});
  assert_int_equal(b.unknown[0].size(), 64);
  PamArgs c = parse_ok({"bad\x01name=1"});
  assert_string_equal(c.unknown[0].c_str(), "?");
}

void test_error_message_does_not_echo_value(void**) {
  auto r = parse({"max_tries=123456"});
  assert_false(r.ok());
  assert_null(strstr(r.error().message.c_str(), "123456"));
  auto p = parse({"prompt=\x01secret"});
  assert_false(p.ok());
  assert_null(strstr(p.error().message.c_str(), "secret"));
}

void test_bounds_on_the_list(void**) {
  std::vector<const char*> many(65, "debug");
  auto r = parse_pam_args(static_cast<int>(many.size()), many.data());
  assert_false(r.ok());
  std::vector<const char*> ok(64, "debug");
  assert_true(parse_pam_args(static_cast<int>(ok.size()), ok.data()).ok());
  std::string huge(5000, 'x');
  expect_invalid({huge.c_str()}, "too long");
  const char* with_null[] = {"debug", nullptr};
  assert_false(parse_pam_args(2, with_null).ok());
  assert_false(parse_pam_args(1, nullptr).ok());
  assert_true(parse_pam_args(0, nullptr).ok());
}

void test_invalid_one_fails_the_whole_line(void**) {
  // A typo next to good arguments is not silently half-applied.
  expect_invalid({"nullok", "max_tries=0", "debug"}, "max_tries");
}

}  // namespace

int main() {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_defaults),
      cmocka_unit_test(test_flags),
      cmocka_unit_test(test_failmode),
      cmocka_unit_test(test_max_tries),
      cmocka_unit_test(test_timeout),
      cmocka_unit_test(test_prompt),
      cmocka_unit_test(test_methods),
      cmocka_unit_test(test_method_allowed),
      cmocka_unit_test(test_pass_modes),
      cmocka_unit_test(test_bus_address),
      cmocka_unit_test(test_unknown_arguments_are_kept_by_name),
      cmocka_unit_test(test_error_message_does_not_echo_value),
      cmocka_unit_test(test_bounds_on_the_list),
      cmocka_unit_test(test_invalid_one_fails_the_whole_line),
  };
  return cmocka_run_group_tests(tests, nullptr, nullptr);
}

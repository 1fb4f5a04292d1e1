// pam_mfa.so's argument parser: every row of docs/pam_mfa.md's table, and the bad values an admin
// could write in /etc/pam.d.
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cstring>
#include <initializer_list>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

extern "C" {
#include <cmocka.h>
}

#include "common/pam_args.hpp"

using mfa::pam::FailMode;
using mfa::pam::PamArgs;
using mfa::pam::PamArgsError;
using mfa::pam::PassMode;

namespace {

// The parse's error, as the module logs it; nullopt when the line is accepted.
std::optional<std::string> parse_error(std::initializer_list<const char*> list,
                                       PamArgs* ret = nullptr) {
  std::vector<const char*> argv(list);
  PamArgs args;
  PamArgsError error;
  if (mfa::pam::parse_pam_args(static_cast<int>(argv.size()), argv.data(), &args, &error)) {
    if (ret)
      *ret = args;
    return std::nullopt;
  }
  return "invalid module argument " + std::string(error.argument) + ": " + error.reason;
}

bool parses(int argc, const char** argv) {
  PamArgs args;
  PamArgsError error;
  return mfa::pam::parse_pam_args(argc, argv, &args, &error);
}

PamArgs parse_ok(std::initializer_list<const char*> list) {
  PamArgs args;
  if (auto error = parse_error(list, &args))
    fail_msg("unexpected error: %s", error->c_str());
  return args;
}

void expect_invalid(std::initializer_list<const char*> list, const char* name) {
  auto error = parse_error(list);
  assert_true(error.has_value());
  assert_non_null(strstr(error->c_str(), name));
}

void test_defaults(void**) {
  PamArgs a = parse_ok({});
  assert_false(a.debug);
  assert_false(a.nullok);
  assert_true(a.failmode == FailMode::kSecure);
  assert_int_equal(a.max_tries, 3);
  assert_int_equal(a.timeout_seconds, 10);
  assert_null(a.prompt);
  assert_string_equal(mfa::pam::kDefaultPrompt, "Verification code: ");
  assert_int_equal(a.methods, 0);
  assert_string_equal(mfa::pam::methods_text(a.methods), "");
  assert_true(a.pass_mode == PassMode::kPrompt);
  assert_false(a.forward_pass);
  assert_null(a.bus_address);
  assert_int_equal(a.unknown_count, 0);
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
  assert_string_equal(parse_ok({"prompt=OTP: "}).prompt, "OTP: ");
  assert_string_equal(parse_ok({"prompt=a=b"}).prompt, "a=b");
  expect_invalid({"prompt="}, "prompt");
  expect_invalid({"prompt"}, "prompt");
  expect_invalid({"prompt=a\nb"}, "prompt");
  expect_invalid({"prompt=\x1b[31m"}, "prompt");
  std::string long_prompt = "prompt=" + std::string(257, 'x');
  expect_invalid({long_prompt.c_str()}, "prompt");
  std::string max_prompt = "prompt=" + std::string(256, 'x');
  assert_int_equal(strlen(parse_ok({max_prompt.c_str()}).prompt), 256);
}

std::string methods_of(const char* arg) {
  return mfa::pam::methods_text(parse_ok({arg}).methods);
}

void test_methods(void**) {
  assert_string_equal(methods_of("methods=totp").c_str(), "totp");
  assert_string_equal(methods_of("methods=backup,totp").c_str(), "totp,backup");
  assert_string_equal(methods_of("methods=sms,totp,sms").c_str(), "totp,sms");
  assert_string_equal(methods_of("methods=backup,sms").c_str(), "sms,backup");
  assert_string_equal(methods_of("methods=totp,sms,backup").c_str(), "totp,sms,backup");
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
  assert_string_equal(parse_ok({"bus_address=unix:path=/tmp/x/system_bus_socket"}).bus_address,
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
  assert_int_equal(a.unknown_count, 2);
  // Only the name: an unknown argument's value is never repeated (it goes to syslog).
  assert_true(a.unknown[0] == "secret");
  assert_true(a.unknown[1] == "echo_verification_code");
  std::string long_name(200, 'n');
  PamArgs b = parse_ok({long_name.c_str()});
  assert_int_equal(b.unknown[0].size(), 64);
  PamArgs c = parse_ok({"bad\x01name=1"});
  assert_true(c.unknown[0] == "?");
  // As many as the list may hold.
  std::vector<std::string> names;
  for (size_t i = 0; i < mfa::pam::kMaxArguments; ++i)
    names.push_back("x" + std::to_string(i));
  std::vector<const char*> argv;
  for (const auto& n : names)
    argv.push_back(n.c_str());
  PamArgs d;
  PamArgsError error;
  assert_true(mfa::pam::parse_pam_args(static_cast<int>(argv.size()), argv.data(), &d, &error));
  assert_int_equal(d.unknown_count, mfa::pam::kMaxArguments);
  assert_true(d.unknown[mfa::pam::kMaxArguments - 1] == "x63");
}

void test_error_message_does_not_echo_value(void**) {
  auto r = parse_error({"max_tries=123456"});
  assert_true(r.has_value());
  assert_null(strstr(r->c_str(), "123456"));
  auto p = parse_error({"prompt=\x01secret"});
  assert_true(p.has_value());
  assert_null(strstr(p->c_str(), "secret"));
}

void test_refused_line_leaves_the_result_untouched(void**) {
  PamArgs args;
  args.max_tries = 7;
  PamArgsError error;
  const char* argv[] = {"nullok", "max_tries=0"};
  assert_false(mfa::pam::parse_pam_args(2, argv, &args, &error));
  assert_false(args.nullok);
  assert_int_equal(args.max_tries, 7);
  assert_true(error.argument == "max_tries");
}

void test_bounds_on_the_list(void**) {
  std::vector<const char*> many(65, "debug");
  assert_false(parses(static_cast<int>(many.size()), many.data()));
  std::vector<const char*> ok(64, "debug");
  assert_true(parses(static_cast<int>(ok.size()), ok.data()));
  std::string huge(5000, 'x');
  expect_invalid({huge.c_str()}, "too long");
  const char* with_null[] = {"debug", nullptr};
  assert_false(parses(2, with_null));
  assert_false(parses(1, nullptr));
  assert_true(parses(0, nullptr));
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
      cmocka_unit_test(test_refused_line_leaves_the_result_untouched),
      cmocka_unit_test(test_bounds_on_the_list),
      cmocka_unit_test(test_invalid_one_fails_the_whole_line),
  };
  return cmocka_run_group_tests(tests, nullptr, nullptr);
}

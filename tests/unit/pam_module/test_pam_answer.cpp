// How pam_mfa.so reads answers (docs/pam_mfa.md "Password and code together"): where an answer
// is kept, what counts as a code, and how "password + code" splits.
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <string>

extern "C" {
#include <cmocka.h>
}

#include "pam_module/pam_answer.hpp"

using mfa::pam::Answer;
using mfa::pam::is_sms_request;
using mfa::pam::looks_like_code;
using mfa::pam::split_combined;
using mfa::pam::trim_answer;

namespace {

void expect_split(const char* answer, const char* password, const char* code) {
  auto split = split_combined(answer);
  assert_string_equal(std::string(split.password).c_str(), password);
  assert_string_equal(std::string(split.code).c_str(), code);
}

void test_codes(void**) {
  assert_true(looks_like_code("123456"));
  assert_true(looks_like_code("1234567"));
  assert_true(looks_like_code("12345678"));
  assert_true(looks_like_code("ABCDEFGH"));
  assert_true(looks_like_code("abcd-efgh"));
  assert_true(looks_like_code("ABCD EFGH"));
  assert_true(looks_like_code("A7K9-M3QX"));
}

void test_not_codes(void**) {
  assert_false(looks_like_code(""));
  assert_false(looks_like_code("12345"));
  assert_false(looks_like_code("123456789"));
  assert_false(looks_like_code("hunter2"));
  assert_false(looks_like_code("ABCDEFG"));
  assert_false(looks_like_code("ABCDEFGHJ"));
  assert_false(looks_like_code("ABCD_EFGH"));
  assert_false(looks_like_code("AB-CD-EF-GH"));  // three separators: 11 characters
  assert_false(looks_like_code("correct horse battery"));
  assert_false(looks_like_code("sms"));
  assert_false(looks_like_code("12345\xc3\xa9"));
}

void test_trim(void**) {
  assert_string_equal(std::string(trim_answer("  123456 \r\n")).c_str(), "123456");
  assert_string_equal(std::string(trim_answer("\t12 34\t")).c_str(), "12 34");
  assert_string_equal(std::string(trim_answer("   ")).c_str(), "");
}

void test_sms(void**) {
  assert_true(is_sms_request("sms"));
  assert_true(is_sms_request("SMS"));
  assert_true(is_sms_request("Sms"));
  assert_false(is_sms_request("sms "));
  assert_false(is_sms_request("smss"));
  assert_false(is_sms_request("sm"));
  assert_false(is_sms_request(""));
}

void test_split_password_and_code(void**) {
  expect_split("hunter2123456", "hunter2", "123456");
  expect_split("correct horse 654321", "correct horse ", "654321");
  expect_split("p123456", "p", "123456");
  // A password that ends in digits: the last six are the code.
  expect_split("abc99123456", "abc99", "123456");
}

void test_split_code_alone(void**) {
  expect_split("123456", "", "123456");
  expect_split(" 12345678 ", "", "12345678");
  expect_split("ABCD-EFGH", "", "ABCD-EFGH");
  // Ambiguous by design: 6-8 digits alone are a code, never "password + code".
  expect_split("12123456", "", "12123456");
}

void test_split_no_code(void**) {
  expect_split("just-a-password", "just-a-password", "");
  expect_split("pw12345", "pw12345", "");
  expect_split("", "", "");
  // A backup code cannot follow a password: only six digits can.
  expect_split("hunter2ABCDEFGH", "hunter2ABCDEFGH", "");
}

void test_answer_holds_what_fits(void**) {
  Answer a;
  assert_true(a.empty());
  assert_true(a.assign("123456"));
  assert_string_equal(a.c_str(), "123456");
  assert_int_equal(a.size(), 6);
  // Shorter over longer: nothing of the old answer is left after the terminator.
  assert_true(a.assign("12"));
  assert_string_equal(a.c_str(), "12");
  assert_int_equal(a.c_str()[3], 0);
  // From its own buffer (a code cut out of a combined answer).
  assert_true(a.assign("pw123456"));
  assert_true(a.assign(a.view().substr(2)));
  assert_string_equal(a.c_str(), "123456");
  std::string full(Answer::kCapacity, 'x');
  assert_true(a.assign(full));
  assert_int_equal(a.size(), Answer::kCapacity);
  a.clear();
  assert_true(a.empty());
  assert_string_equal(a.c_str(), "");
}

void test_answer_refuses_what_does_not_fit(void**) {
  Answer a;
  assert_true(a.assign("123456"));
  std::string too_long(Answer::kCapacity + 1, 'x');
  assert_false(a.assign(too_long));
  assert_true(a.empty());
  assert_string_equal(a.c_str(), "");
}

}  // namespace

int main() {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_codes),
      cmocka_unit_test(test_not_codes),
      cmocka_unit_test(test_trim),
      cmocka_unit_test(test_sms),
      cmocka_unit_test(test_split_password_and_code),
      cmocka_unit_test(test_split_code_alone),
      cmocka_unit_test(test_split_no_code),
      cmocka_unit_test(test_answer_holds_what_fits),
      cmocka_unit_test(test_answer_refuses_what_does_not_fit),
  };
  return cmocka_run_group_tests(tests, nullptr, nullptr);
}

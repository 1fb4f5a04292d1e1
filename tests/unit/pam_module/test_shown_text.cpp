// What pam_mfa.so shows the person logging in (docs/pam_mfa.md "The dialogue"): the daemon's
// messages bounded and without control characters, and the messages it words itself.
#include <string>

#include "cmocka_cpp.hpp"
#include "pam_module/shown_text.hpp"

using mfa::pam::bad_code_message;
using mfa::pam::code_sent_message;
using mfa::pam::kMaxShownMessage;
using mfa::pam::printable;

namespace {

void test_printable_replaces_control_characters(void**) {
  assert_string_equal(printable("Too many failures;\x1b[2J try again").c_str(),
                      "Too many failures; [2J try again");
  assert_string_equal(printable("a\nb\tc\x7f").c_str(), "a b c ");
  assert_string_equal(printable("caf\xc3\xa9").c_str(), "caf\xc3\xa9");
  assert_true(printable("").empty());
}

void test_printable_is_bounded(void**) {
  std::string huge(4 * kMaxShownMessage, 'x');
  assert_int_equal(std::string(printable(huge).c_str()).size(), kMaxShownMessage);
}

void test_bad_code(void**) {
  assert_string_equal(bad_code_message(2).c_str(), "Invalid code, 2 tries left");
  assert_string_equal(bad_code_message(1).c_str(), "Invalid code, 1 try left");
  assert_string_equal(bad_code_message(0).c_str(), "Invalid code");
  assert_string_equal(bad_code_message(-1).c_str(), "Invalid code");
}

void test_code_sent(void**) {
  assert_string_equal(code_sent_message("+1******1234").c_str(), "A code was sent to +1******1234");
  assert_string_equal(code_sent_message("+1\n2").c_str(), "A code was sent to +1 2");
  assert_string_equal(code_sent_message("").c_str(), "A code was sent by SMS");
  assert_string_equal(code_sent_message(nullptr).c_str(), "A code was sent by SMS");
  std::string huge(4 * kMaxShownMessage, '*');
  assert_int_equal(std::string(code_sent_message(huge.c_str()).c_str()).size(),
                   std::string("A code was sent to ").size() + kMaxShownMessage);
}

}  // namespace

int main() {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_printable_replaces_control_characters),
      cmocka_unit_test(test_printable_is_bounded),
      cmocka_unit_test(test_bad_code),
      cmocka_unit_test(test_code_sent),
  };
  return cmocka_run_group_tests(tests, nullptr, nullptr);
}

// The TOTP issuer rule: what an otpauth URI may carry as its issuer, in the order problems are
// named.
#include <string>

#include "common/dbus_names.hpp"
#include "common/totp_issuer.hpp"
#include "cmocka_cpp.hpp"

using mfa::IssuerProblem;

namespace {

void expect(std::string_view issuer, IssuerProblem problem) {
  assert_int_equal(static_cast<int>(mfa::check_totp_issuer(issuer)), static_cast<int>(problem));
}

void test_accepted(void**) {
  expect("", IssuerProblem::kNone);
  expect("Example Corp", IssuerProblem::kNone);
  expect("Caf\xC3\xA9 \xE2\x9C\x93", IssuerProblem::kNone);
  expect("host-1.example.org", IssuerProblem::kNone);
  expect(std::string(mfa::dbus::kMaxIssuerLength, 'x'), IssuerProblem::kNone);
}

void test_refused(void**) {
  expect(std::string(mfa::dbus::kMaxIssuerLength + 1, 'x'), IssuerProblem::kTooLong);
  expect("Evil:Corp", IssuerProblem::kColon);
  expect("tab\tCorp", IssuerProblem::kNotPrintable);
  expect("two\nlines", IssuerProblem::kNotPrintable);
  expect("del\x7f", IssuerProblem::kNotPrintable);
  expect("c1\xC2\x9B", IssuerProblem::kNotPrintable);  // U+009B, a CSI
  expect("Caf\xE9", IssuerProblem::kNotPrintable);     // Latin-1
}

void test_first_problem_named(void**) {
  // Too long before anything else; a ':' before a control character.
  expect(std::string(200, ':'), IssuerProblem::kTooLong);
  expect("a:\x01", IssuerProblem::kColon);
}

}  // namespace

int main() {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_accepted),
      cmocka_unit_test(test_refused),
      cmocka_unit_test(test_first_problem_named),
  };
  return cmocka_run_group_tests(tests, nullptr, nullptr);
}

// The host name: what uname(2) reports for this UTS namespace, read through gethostname(2).
#include <sys/utsname.h>

#include <string>

#include "common/host_name.hpp"
#include "cmocka_cpp.hpp"

namespace {

void test_matches_uname(void**) {
  struct utsname u {};
  assert_int_equal(uname(&u), 0);
  auto name = mfa::host_name();
  assert_true(name.ok());
  assert_string_equal(name->c_str(), u.nodename);
  assert_true(name->find('\0') == std::string::npos);
}

}  // namespace

int main() {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_matches_uname),
  };
  return cmocka_run_group_tests(tests, nullptr, nullptr);
}

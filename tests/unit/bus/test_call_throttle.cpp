// The per-uid rate limit of unprivileged calls (daemon/bus/call_throttle.hpp): a burst, then the
// sustained rate, each uid on its own, the table bounded.
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include "bus/call_throttle.hpp"

extern "C" {
#include <cmocka.h>
}

using namespace mfa;

namespace {

constexpr uint64_t kSecond = 1000000;

void test_burst_then_rate(void**) {
  CallThrottle t;
  uint64_t now = 5 * kSecond;
  for (uint64_t i = 0; i < CallThrottle::kBurst; ++i)
    assert_true(t.admit(1000, now));
  assert_false(t.admit(1000, now));
  // Another caller has a bucket of its own.
  assert_true(t.admit(1001, now));
  // One token back every 1/kPerSecond seconds.
  now += kSecond / CallThrottle::kPerSecond;
  assert_true(t.admit(1000, now));
  assert_false(t.admit(1000, now));
  // A second's worth, and never more than the burst after a long pause.
  now += kSecond;
  for (uint64_t i = 0; i < CallThrottle::kPerSecond; ++i)
    assert_true(t.admit(1000, now));
  assert_false(t.admit(1000, now));
  now += 3600 * kSecond;
  for (uint64_t i = 0; i < CallThrottle::kBurst; ++i)
    assert_true(t.admit(1000, now));
  assert_false(t.admit(1000, now));
  // A clock that goes back gives nothing.
  assert_false(t.admit(1000, now - kSecond));
}

// A full table forgets the idle callers; while every one is busy a newcomer waits.
void test_table_is_bounded(void**) {
  CallThrottle t;
  const uint64_t now = kSecond;
  for (uid_t u = 0; u < CallThrottle::kMaxCallers; ++u)
    assert_true(t.admit(10000 + u, now));
  assert_false(t.admit(9, now));
  assert_int_equal(t.callers(), CallThrottle::kMaxCallers);
  assert_true(t.admit(9, now + kSecond));
  assert_int_equal(t.callers(), 1);
}

}  // namespace

int main() {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_burst_then_rate),
      cmocka_unit_test(test_table_is_bounded),
  };
  return cmocka_run_group_tests(tests, nullptr, nullptr);
}

// [Rollout] (docs/rollout.md): the deadline parser, days left, who must have a factor, and the
// config keys.
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <string>
#include <vector>

#include "core/config.hpp"
#include "core/rollout.hpp"
#include "core_fakes.hpp"

extern "C" {
#include <cmocka.h>
}

using namespace mfa;
using namespace mfa::test;

namespace {

void test_iso8601_dates_and_times(void**) {
  assert_int_equal(*parse_iso8601("1970-01-01"), 0);
  assert_int_equal(*parse_iso8601("2027-01-31"), 1801353600);
  assert_int_equal(*parse_iso8601("2027-01-31T09:00"), 1801353600 + 9 * 3600);
  assert_int_equal(*parse_iso8601("2027-01-31 09:00:30"), 1801353600 + 9 * 3600 + 30);
  assert_int_equal(*parse_iso8601("2027-01-31T09:00Z"), 1801353600 + 9 * 3600);
  // A zone east of UTC is earlier in UTC.
  assert_int_equal(*parse_iso8601("2027-01-31T09:00+01:00"), 1801353600 + 8 * 3600);
  assert_int_equal(*parse_iso8601("2027-01-31T09:00-0530"), 1801353600 + 14 * 3600 + 1800);
  assert_int_equal(*parse_iso8601("2028-02-29"), 1835395200);  // a leap day
}

void test_iso8601_refuses_what_is_not_a_date(void**) {
  for (const char* bad :
       {"", "2027", "2027-1-31", "2027-01-32", "2027-02-29", "2027-13-01", "1969-12-31",
        "2027-01-31T", "2027-01-31T24:00", "2027-01-31T09:60", "2027-01-31T09:00:61",
        "2027-01-31T09:00+25:00", "2027-01-31T09:00 UTC", "31/01/2027", "2027-01-31x", "tomorrow",
        "2027-01-31T09:00+01:00junk", "+2027-01-31"}) {
    if (parse_iso8601(bad))
      fail_msg("accepted %s", bad);
  }
}

void test_days_left_rounds_up(void**) {
  const int64_t deadline = 1801353600;
  assert_int_equal(days_left(deadline, deadline), 0);
  assert_int_equal(days_left(deadline, deadline + 5), 0);
  assert_int_equal(days_left(deadline, deadline - 1), 1);
  assert_int_equal(days_left(deadline, deadline - kSecondsPerDay), 1);
  assert_int_equal(days_left(deadline, deadline - kSecondsPerDay - 1), 2);
  assert_string_equal(format_utc(deadline).c_str(), "2027-01-31 00:00 UTC");
}

void test_offer(void**) {
  Config c;
  assert_false(rollout_offer(c, false, 100).has_value());  // no deadline, no enroll
  auto o = rollout_offer(c, true, 100);
  assert_true(o && o->enroll && !o->skip);
  c.rollout_deadline = 1000;
  o = rollout_offer(c, false, 999);
  assert_true(o && !o->enroll && o->skip && o->days_left == 1);
  assert_false(rollout_offer(c, false, 1000).has_value());  // from the deadline on
  o = rollout_offer(c, true, 1000);
  assert_true(o && o->enroll && !o->skip);
}

void test_groups(void**) {
  FakeUsers users;
  Config c;
  assert_true(rollout_requires(c, users, kBob));
  c.rollout_groups = {"nobody-group", "mfa-admin"};
  assert_false(rollout_requires(c, users, kBob));
  assert_true(rollout_requires(c, users, kCarol));
}

void test_config_keys(void**) {
  std::vector<ConfigProblem> problems;
  auto c = parse_config(
      "[Rollout]\nDeadline=2027-01-31T09:00+01:00\nGroups=staff  ops\tadmins\nRequireToken=yes\n",
      "t.conf", true, &problems);
  assert_true(c.ok());
  assert_int_equal(*c->rollout_deadline, 1801353600 + 8 * 3600);
  assert_int_equal(c->rollout_groups.size(), 3);
  assert_string_equal(c->rollout_groups[2].c_str(), "admins");
  assert_true(c->rollout_require_token);
  for (const char* bad : {"[Rollout]\nDeadline=2027-02-30\n", "[Rollout]\nRequireToken=maybe\n",
                          "[Rollout]\nGroups=a:b\n"}) {
    problems.clear();
    assert_false(parse_config(bad, "t.conf", true, &problems).ok());
    assert_false(problems.empty());
  }
  problems.clear();
  auto d = parse_config("", "t.conf", true, &problems);
  assert_true(d.ok());
  assert_false(d->rollout_deadline.has_value());
  assert_false(d->rollout_require_token);
}

}  // namespace

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_iso8601_dates_and_times),
      cmocka_unit_test(test_iso8601_refuses_what_is_not_a_date),
      cmocka_unit_test(test_days_left_rounds_up),
      cmocka_unit_test(test_offer),
      cmocka_unit_test(test_groups),
      cmocka_unit_test(test_config_keys),
  };
  return cmocka_run_group_tests(tests, nullptr, nullptr);
}

// The pure pieces behind the authenticator: lockout arithmetic (daemon/rate_limiter.cpp) and
// input validation (daemon/validation.cpp).
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <string>

#include "core/rate_limiter.hpp"
#include "core/validation.hpp"

extern "C" {
#include <cmocka.h>
}

using namespace mfa;

namespace {

constexpr int64_t kDay0 = 19675LL * kUsecPerDay;  // 2023-11-14 00:00:00 UTC

RatePolicy policy(int max_failures, int lockout, int max_lockout, int per_day) {
  RatePolicy p;
  p.max_failures = max_failures;
  p.lockout_seconds = lockout;
  p.max_lockout_seconds = max_lockout;
  p.max_failures_per_day = per_day;
  return p;
}

void test_lockout_duration_doubles_to_cap(void**) {
  const RatePolicy p = policy(5, 900, 86400, 0);
  assert_int_equal(lockout_duration_seconds(0, p), 900);
  assert_int_equal(lockout_duration_seconds(1, p), 1800);
  assert_int_equal(lockout_duration_seconds(2, p), 3600);
  assert_int_equal(lockout_duration_seconds(6, p), 57600);
  assert_int_equal(lockout_duration_seconds(7, p), 86400);
  assert_int_equal(lockout_duration_seconds(1000000, p), 86400);  // no overflow
}

void test_consecutive_lockout(void**) {
  const RatePolicy p = policy(3, 60, 3600, 0);
  LimitState s;
  const int64_t now = kDay0 + 10 * kUsecPerSecond;
  for (int i = 0; i < 2; ++i) {
    count_attempt(s, now);
    assert_int_equal(static_cast<int>(apply_failure(s, p, now)),
                     static_cast<int>(LockReason::kNone));
  }
  assert_int_equal(tries_left(s, p), 1);
  count_attempt(s, now);
  assert_int_equal(static_cast<int>(apply_failure(s, p, now)),
                   static_cast<int>(LockReason::kConsecutive));
  assert_int_equal(s.locked_until_usec, now + 60 * kUsecPerSecond);
  assert_int_equal(s.lockout_count, 1);
  assert_int_equal(s.consecutive_failures, 0);
  assert_int_equal(lock_remaining_usec(s, now), 60 * kUsecPerSecond);
  assert_int_equal(lock_remaining_usec(s, now + 60 * kUsecPerSecond), 0);
}

void test_success_takes_the_attempt_back(void**) {
  const RatePolicy p = policy(5, 60, 3600, 10);
  LimitState s;
  count_attempt(s, kDay0);
  (void)apply_failure(s, p, kDay0);
  count_attempt(s, kDay0);
  record_success(s);
  assert_int_equal(s.consecutive_failures, 0);
  assert_int_equal(s.day_failures, 1);  // the real failure stays counted for the day
}

void test_daily_cap_until_next_day(void**) {
  const RatePolicy p = policy(100, 60, 3600, 3);
  LimitState s;
  const int64_t now = kDay0 + 23 * 3600 * kUsecPerSecond;
  for (int i = 0; i < 2; ++i) {
    count_attempt(s, now);
    (void)apply_failure(s, p, now);
  }
  count_attempt(s, now);
  assert_int_equal(static_cast<int>(apply_failure(s, p, now)),
                   static_cast<int>(LockReason::kDailyCap));
  assert_int_equal(s.locked_until_usec, kDay0 + kUsecPerDay);
  // A new day starts a new count.
  count_attempt(s, kDay0 + kUsecPerDay + 1);
  assert_int_equal(s.day_failures, 1);
}

void test_lockout_message(void**) {
  assert_string_equal(lockout_message(1).c_str(),
                      "Too many failed attempts; try again in 1 minute");
  assert_string_equal(lockout_message(60 * kUsecPerSecond + 1).c_str(),
                      "Too many failed attempts; try again in 2 minutes");
  assert_string_equal(lockout_message(900 * kUsecPerSecond).c_str(),
                      "Too many failed attempts; try again in 15 minutes");
}

void test_utc_day(void**) {
  assert_int_equal(utc_day(kDay0), 19675);
  assert_int_equal(utc_day(kDay0 + kUsecPerDay - 1), 19675);
  assert_int_equal(utc_day(-1), -1);
}

void test_user_names(void**) {
  assert_true(validate_user_name("alice").ok());
  assert_true(validate_user_name("jöran.o'neil@example.com").ok());
  assert_true(validate_user_name(std::string(256, 'a')).ok());
  const std::string bad[] = {"",
                             std::string(257, 'a'),
                             "a/b",
                             "-rf",
                             "tab\tuser",
                             "del\x7fuser",
                             "c1\xc2\x80user",
                             "overlong\xc0\xafuser",
                             "surrogate\xed\xa0\x80user",
                             "truncated\xe2\x82",
                             std::string("nul\0user", 8)};
  for (const auto& n : bad) {
    auto st = validate_user_name(n);
    assert_false(st.ok());
    assert_int_equal(static_cast<int>(st.error().code), static_cast<int>(Errc::kInvalidArgument));
  }
}

void test_context_and_methods(void**) {
  assert_true(validate_context({{"service", "sshd"}, {"rhost", "::1"}, {"methods", "totp"}}).ok());
  assert_false(validate_context({{"Service", "sshd"}}).ok());
  assert_false(validate_context({{"tty", "a\nb"}}).ok());
  auto all = parse_methods_filter("");
  assert_true(all.ok());
  assert_false(all->has_value());
  auto some = parse_methods_filter("backup, totp,,");
  assert_true(some.ok());
  assert_int_equal((*some)->size(), 2);
  assert_true((*some)->count(Method::kBackup));
  auto bad = parse_methods_filter("totp,TOTP2");
  assert_false(bad.ok());
  assert_true(bad.error().message.find("TOTP2") != std::string::npos);
}

void test_issuer_and_params(void**) {
  assert_true(validate_issuer("Example Corp").ok());
  assert_false(validate_issuer("a:b").ok());
  assert_false(validate_issuer(std::string(129, 'x')).ok());
  assert_true(validate_issuer(std::string(128, 'x')).ok());
  TotpParams p{OtpAlgorithm::kSha512, 8, 60};
  assert_string_equal(format_totp_params(p).c_str(), "SHA512:8:60");
  auto back = parse_totp_params("SHA512:8:60");
  assert_true(back.has_value());
  assert_int_equal(back->digits, 8);
  assert_int_equal(back->period, 60);
  assert_false(parse_totp_params("SHA1:9:30").has_value());
  assert_false(parse_totp_params("SHA1:6").has_value());
  assert_false(parse_totp_params("MD5:6:30").has_value());
  assert_false(parse_totp_params("SHA1:6:30x").has_value());
}

}  // namespace

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_lockout_duration_doubles_to_cap),
      cmocka_unit_test(test_consecutive_lockout),
      cmocka_unit_test(test_success_takes_the_attempt_back),
      cmocka_unit_test(test_daily_cap_until_next_day),
      cmocka_unit_test(test_lockout_message),
      cmocka_unit_test(test_utc_day),
      cmocka_unit_test(test_user_names),
      cmocka_unit_test(test_context_and_methods),
      cmocka_unit_test(test_issuer_and_params),
  };
  return cmocka_run_group_tests(tests, nullptr, nullptr);
}

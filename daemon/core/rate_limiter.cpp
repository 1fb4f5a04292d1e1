#include "core/rate_limiter.hpp"

#include <algorithm>

namespace mfa {

RatePolicy RatePolicy::from_config(const Config& config) {
  RatePolicy p;
  p.max_failures = std::max(1, config.max_failures);
  p.lockout_seconds = std::max(1, config.lockout_seconds);
  p.max_lockout_seconds = std::max(p.lockout_seconds, config.max_lockout_seconds);
  p.max_failures_per_day = std::max(0, config.max_failures_per_day);
  return p;
}

RatePolicy RatePolicy::degraded_from_config(const Config& config) {
  RatePolicy p = from_config(config);
  const int percent = std::clamp(config.redis_degraded_failures_percent, 1, 100);
  auto part = [percent](int n) { return std::max(1, (n * percent + 99) / 100); };
  p.max_failures = part(p.max_failures);
  if (p.max_failures_per_day > 0)
    p.max_failures_per_day = part(p.max_failures_per_day);
  return p;
}

int64_t utc_day(int64_t realtime_usec) {
  int64_t day = realtime_usec / kUsecPerDay;
  if (realtime_usec < 0 && realtime_usec % kUsecPerDay != 0)
    --day;
  return day;
}

void roll_day(LimitState& state, int64_t now_usec) {
  const int64_t today = utc_day(now_usec);
  if (state.day != today) {
    state.day = today;
    state.day_failures = 0;
  }
}

int64_t lock_remaining_usec(const LimitState& state, int64_t now_usec) {
  return state.locked_until_usec > now_usec ? state.locked_until_usec - now_usec : 0;
}

std::string lockout_message(int64_t remaining_usec) {
  constexpr int64_t kUsecPerMinute = 60 * kUsecPerSecond;
  const int64_t minutes =
      std::max<int64_t>(1, (remaining_usec + kUsecPerMinute - 1) / kUsecPerMinute);
  return "Too many failed attempts; try again in " + std::to_string(minutes) +
         (minutes == 1 ? " minute" : " minutes");
}

int64_t lockout_duration_seconds(int lockout_count, const RatePolicy& policy) {
  const int64_t cap = policy.max_lockout_seconds;
  int64_t d = policy.lockout_seconds;
  for (int i = 0; i < lockout_count && d < cap; ++i)
    d *= 2;
  return std::min(d, cap);
}

void count_attempt(LimitState& state, int64_t now_usec) {
  roll_day(state, now_usec);
  ++state.consecutive_failures;
  ++state.day_failures;
}

void record_success(LimitState& state) {
  state.consecutive_failures = 0;
  // The attempt was counted as a failure in advance; a success is not a failure of the day.
  if (state.day_failures > 0)
    --state.day_failures;
  state.lockout_count = 0;
}

LockReason apply_failure(LimitState& state, const RatePolicy& policy, int64_t now_usec) {
  if (policy.max_failures_per_day > 0 && state.day_failures >= policy.max_failures_per_day) {
    const int64_t next_day = (utc_day(now_usec) + 1) * kUsecPerDay;
    state.locked_until_usec = std::max(state.locked_until_usec, next_day);
    state.consecutive_failures = 0;
    return LockReason::kDailyCap;
  }
  if (state.consecutive_failures >= policy.max_failures) {
    const int64_t duration = lockout_duration_seconds(state.lockout_count, policy);
    state.locked_until_usec =
        std::max(state.locked_until_usec, now_usec + duration * kUsecPerSecond);
    ++state.lockout_count;
    state.consecutive_failures = 0;
    return LockReason::kConsecutive;
  }
  return LockReason::kNone;
}

int tries_left(const LimitState& state, const RatePolicy& policy) {
  int left = std::max(0, policy.max_failures - state.consecutive_failures);
  if (policy.max_failures_per_day > 0)
    left = std::min(left, std::max(0, policy.max_failures_per_day - state.day_failures));
  return left;
}

}  // namespace mfa

// Rate limiting of code attempts (docs/security-model.md, "Attacks and answers"), as pure functions
// on a user's LimitState so that the arithmetic is testable without a store or a clock.
//
// An attempt is counted before its code is checked (count_attempt, then the store write); a
// success takes it back (record_success); a failure may lock the user (apply_failure):
//  - after max_failures consecutive failures, for lockout_seconds * 2^lockout_count, capped at
//    max_lockout_seconds;
//  - after max_failures_per_day failures in one UTC day, until the next UTC day.
#pragma once

#include <cstdint>
#include <string>

#include "core/config.hpp"
#include "core/store.hpp"

namespace mfa {

inline constexpr int64_t kUsecPerSecond = 1000000;
inline constexpr int64_t kUsecPerDay = 86400 * kUsecPerSecond;

struct RatePolicy {
  int max_failures = 5;
  int lockout_seconds = 900;
  int max_lockout_seconds = 86400;
  int max_failures_per_day = 50;  // 0: no daily cap
  static RatePolicy from_config(const Config& config);
  // Fleet mode while Redis is unreachable: each host counts alone, so it allows only
  // [Redis] DegradedFailuresPercent of the fleet's limits (rounded up, at least 1): a guesser
  // who cuts hosts off Redis gains that fraction per host, not the whole limit.
  static RatePolicy degraded_from_config(const Config& config);
};

enum class LockReason { kNone, kConsecutive, kDailyCap };

// Days since the epoch (UTC) of a realtime timestamp.
int64_t utc_day(int64_t realtime_usec);
// Resets the daily counter when state.day is not today.
void roll_day(LimitState& state, int64_t now_usec);
// Microseconds until the lock ends; 0 when not locked.
int64_t lock_remaining_usec(const LimitState& state, int64_t now_usec);
// "Too many failed attempts; try again in N minutes" (rounded up).
std::string lockout_message(int64_t remaining_usec);
// The length of the next lockout for a user locked lockout_count times before.
int64_t lockout_duration_seconds(int lockout_count, const RatePolicy& policy);

void count_attempt(LimitState& state, int64_t now_usec);
void record_success(LimitState& state);
// After a counted attempt failed: locks the user when a limit is reached.
LockReason apply_failure(LimitState& state, const RatePolicy& policy, int64_t now_usec);
// Failures left before the next lockout (consecutive or daily, whichever comes first).
int tries_left(const LimitState& state, const RatePolicy& policy);

}  // namespace mfa

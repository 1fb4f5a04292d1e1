// Time comes from one injectable type, so that tests never sleep to let time pass.
#pragma once

#include <cstdint>

namespace mfa {

class Clock {
 public:
  virtual ~Clock() = default;
  // CLOCK_REALTIME in microseconds (TOTP steps, audit timestamps, lockout deadlines).
  virtual int64_t realtime_usec() const = 0;
  // CLOCK_MONOTONIC in microseconds (challenge expiry, timers).
  virtual uint64_t monotonic_usec() const = 0;
  int64_t now_seconds() const { return realtime_usec() / 1000000; }
};

class SystemClock final : public Clock {
 public:
  int64_t realtime_usec() const override;
  uint64_t monotonic_usec() const override;
};

// For tests: time moves only when told.
class FakeClock final : public Clock {
 public:
  explicit FakeClock(int64_t realtime_usec = 1700000000LL * 1000000) : realtime_(realtime_usec) {}
  int64_t realtime_usec() const override { return realtime_; }
  uint64_t monotonic_usec() const override { return monotonic_; }
  void advance_usec(int64_t usec) {
    realtime_ += usec;
    monotonic_ += static_cast<uint64_t>(usec);
  }
  void advance_seconds(int64_t s) { advance_usec(s * 1000000); }
  void set_realtime_usec(int64_t usec) { realtime_ = usec; }

 private:
  int64_t realtime_;
  uint64_t monotonic_ = 1000000;
};

}  // namespace mfa

#include "core/clock.hpp"

#include <time.h>

namespace mfa {
namespace {

int64_t read_clock_usec(clockid_t id) {
  struct timespec ts {};
  // clock_gettime cannot fail for these clocks on Linux; a zeroed timespec is the fallback.
  (void)clock_gettime(id, &ts);
  return static_cast<int64_t>(ts.tv_sec) * 1000000 + ts.tv_nsec / 1000;
}

}  // namespace

int64_t SystemClock::realtime_usec() const {
  return read_clock_usec(CLOCK_REALTIME);
}

uint64_t SystemClock::monotonic_usec() const {
  return static_cast<uint64_t>(read_clock_usec(CLOCK_MONOTONIC));
}

}  // namespace mfa

#include "core/rollout.hpp"

#include <charconv>
#include <ctime>

namespace mfa {

namespace {

// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's days_from_civil).
int64_t days_from_civil(int64_t y, unsigned m, unsigned d) {
  y -= m <= 2;
  const int64_t era = (y >= 0 ? y : y - 399) / 400;
  const auto yoe = static_cast<unsigned>(y - era * 400);
  const unsigned doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
  const unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + static_cast<int64_t>(doe) - 719468;
}

bool leap(int64_t y) {
  return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

unsigned days_in_month(int64_t y, unsigned m) {
  static constexpr unsigned kDays[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  return m == 2 && leap(y) ? 29 : kDays[m - 1];
}

// Exactly n ASCII digits at the front of s, consumed.
bool take_digits(std::string_view& s, size_t n, int* ret) {
  if (s.size() < n)
    return false;
  int v = 0;
  for (size_t i = 0; i < n; ++i) {
    if (s[i] < '0' || s[i] > '9')
      return false;
    v = v * 10 + (s[i] - '0');
  }
  s.remove_prefix(n);
  *ret = v;
  return true;
}

bool take(std::string_view& s, char c) {
  if (s.empty() || s.front() != c)
    return false;
  s.remove_prefix(1);
  return true;
}

}  // namespace

std::optional<int64_t> parse_iso8601(std::string_view s) {
  int year = 0, month = 0, day = 0;
  if (!take_digits(s, 4, &year) || !take(s, '-') || !take_digits(s, 2, &month) || !take(s, '-') ||
      !take_digits(s, 2, &day))
    return std::nullopt;
  if (year < 1970 || month < 1 || month > 12 || day < 1 ||
      static_cast<unsigned>(day) > days_in_month(year, static_cast<unsigned>(month)))
    return std::nullopt;
  int64_t t = days_from_civil(year, static_cast<unsigned>(month), static_cast<unsigned>(day)) *
              kSecondsPerDay;
  if (s.empty())
    return t;
  if (!take(s, 'T') && !take(s, ' '))
    return std::nullopt;
  int hour = 0, minute = 0, second = 0;
  if (!take_digits(s, 2, &hour) || !take(s, ':') || !take_digits(s, 2, &minute))
    return std::nullopt;
  if (take(s, ':') && !take_digits(s, 2, &second))
    return std::nullopt;
  if (hour > 23 || minute > 59 || second > 59)
    return std::nullopt;
  t += hour * 3600 + minute * 60 + second;
  if (s.empty() || s == "Z")
    return t;
  const bool east = s.front() == '+';
  if (!take(s, '+') && !take(s, '-'))
    return std::nullopt;
  int oh = 0, om = 0;
  if (!take_digits(s, 2, &oh))
    return std::nullopt;
  (void)take(s, ':');
  if (!take_digits(s, 2, &om) || !s.empty() || oh > 23 || om > 59)
    return std::nullopt;
  const int64_t offset = oh * 3600 + om * 60;
  return east ? t - offset : t + offset;
}

int64_t days_left(int64_t deadline, int64_t now_seconds) {
  if (now_seconds >= deadline)
    return 0;
  return (deadline - now_seconds + kSecondsPerDay - 1) / kSecondsPerDay;
}

std::string format_utc(int64_t seconds) {
  const time_t t = static_cast<time_t>(seconds);
  struct tm tm {};
  if (gmtime_r(&t, &tm) == nullptr)
    return std::to_string(seconds);
  char buf[64];
  if (strftime(buf, sizeof(buf), "%Y-%m-%d %H:%M UTC", &tm) == 0)
    return std::to_string(seconds);
  return buf;
}

bool rollout_requires(const Config& config, const UserDirectory& users, uid_t uid) {
  if (config.rollout_groups.empty())
    return true;
  for (const auto& group : config.rollout_groups) {
    if (users.in_group(uid, group))
      return true;
  }
  return false;
}

std::optional<RolloutOffer> rollout_offer(const Config& config, bool module_enrolls,
                                          int64_t now_seconds) {
  RolloutOffer offer;
  offer.deadline = config.rollout_deadline;
  if (offer.deadline) {
    offer.days_left = days_left(*offer.deadline, now_seconds);
    offer.skip = now_seconds < *offer.deadline;
  }
  offer.enroll = module_enrolls;
  if (!offer.enroll && !offer.skip)
    return std::nullopt;
  return offer;
}

}  // namespace mfa

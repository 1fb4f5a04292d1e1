// The rollout (docs/rollout.md): who must have a second factor, by when, and what a login of a
// user with none may do about it ([Rollout] Deadline=, Groups=, RequireToken=).
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/config.hpp"
#include "core/user_directory.hpp"

namespace mfa {

inline constexpr int64_t kSecondsPerDay = 86400;

// An ISO 8601 date ("2027-01-31": its first second) or date-time ("2027-01-31T09:00",
// "2027-01-31T09:00:30", a space for the T, then "Z", "+01:00", "-0500" or nothing: UTC) as unix
// seconds; nullopt when it is none of these or not a real date (years 1970 to 9999).
std::optional<int64_t> parse_iso8601(std::string_view text);

// The whole days left until deadline, rounded up: 1 on its last day, 0 from it on.
int64_t days_left(int64_t deadline, int64_t now_seconds);

// "2027-01-31 00:00 UTC".
std::string format_utc(int64_t seconds);

// Whether uid must have a factor: every user when Groups= is empty, its members otherwise.
bool rollout_requires(const Config& config, const UserDirectory& users, uid_t uid);

// What a login of a user with no factor may do, given what the module can offer (enroll: the
// module has the argument `enroll`).
struct RolloutOffer {
  bool enroll = false;
  bool skip = false;
  std::optional<int64_t> deadline;  // [Rollout] Deadline=
  int64_t days_left = 0;            // with a deadline: days_left() now
};
// nullopt: nothing to offer (no deadline and no `enroll`: NotEnrolled as ever; or past the
// deadline without `enroll`: EnrollmentRequired).
std::optional<RolloutOffer> rollout_offer(const Config& config, bool module_enrolls,
                                          int64_t now_seconds);

}  // namespace mfa

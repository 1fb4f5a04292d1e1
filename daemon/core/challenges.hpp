// Open authentication challenges (BeginAuthentication … Verify … EndAuthentication). They live in
// memory only: a restarted mfad forgets them, and PAM begins again. Each one is tied to the unique
// bus name of the caller that began it and expires on the monotonic clock.
#pragma once

#include <cstdint>
#include <map>
#include <set>
#include <string>
#include <string_view>

#include "common/result.hpp"
#include "core/authenticator.hpp"
#include "core/store.hpp"

namespace mfa {

struct Challenge {
  std::string id;  // 128-bit random, lower-case hex
  std::string user;
  std::string bus_name;  // the caller's unique name
  std::set<Method> methods;
  StringMap context;          // service, rhost, tty, ruser (for the audit trail)
  uint64_t expires_usec = 0;  // monotonic
  bool done = false;          // verified: no further Verify
};

class ChallengeTable {
 public:
  // A new challenge with a fresh random id. kInternal if the CSPRNG fails.
  Result<Challenge*> create(std::string user, std::string bus_name, std::set<Method> methods,
                            StringMap context, uint64_t expires_usec);
  // nullptr when unknown or begun by another bus name.
  Challenge* find(std::string_view id, std::string_view bus_name);
  void erase(std::string_view id);
  void drop_caller(std::string_view bus_name);
  void drop_user(std::string_view user);
  // Drops challenges whose time is up; returns the earliest remaining expiry (0: none).
  uint64_t expire(uint64_t now_usec);
  // Challenges not yet verified, per user and per caller (the caps count these).
  size_t open_for_user(std::string_view user) const;
  size_t open_for_caller(std::string_view bus_name) const;
  size_t size() const { return table_.size(); }

 private:
  std::map<std::string, Challenge, std::less<>> table_;
};

}  // namespace mfa

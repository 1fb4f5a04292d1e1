// Fleet mode (docs/fleet.md, "Logins from the cache"): the challenges whose BeginAuthentication
// read the user's shared state from Redis. The first Verify of such a challenge, soon after,
// decides from what Begin read (its confirm checks against Redis what another host may have
// changed meanwhile): one Redis round trip less per login.
#pragma once

#include <cstddef>
#include <cstdint>
#include <deque>
#include <map>
#include <string>
#include <string_view>
#include <utility>

#include "core/authenticator.hpp"

namespace mfa {

class FleetBeginReads {
 public:
  // A read serves a Verify that comes within max_age_usec.
  explicit FleetBeginReads(uint64_t max_age_usec) : max_age_usec_(max_age_usec) {}

  // caller's challenge was begun from a read of Redis at now_usec (CLOCK_MONOTONIC).
  void note(const Caller& caller, std::string_view challenge, uint64_t now_usec);
  // True once, for the first Verify of caller's challenge within max_age_usec of that read. The
  // caller is its process (uid and pid), as for the challenge itself: pam_mfa.so makes each call
  // on a connection of its own.
  bool take(const Caller& caller, std::string_view challenge, uint64_t now_usec);
  size_t size() const { return reads_.size(); }

 private:
  struct Read {
    uid_t uid;
    pid_t pid;
    uint64_t at_usec;
  };
  // Reads too old to serve a Verify are forgotten, oldest first: what is kept is bounded by the
  // Begins of the last max_age_usec.
  void forget_before(uint64_t now_usec);

  uint64_t max_age_usec_;
  std::map<std::string, Read, std::less<>> reads_;        // by challenge id
  std::deque<std::pair<uint64_t, std::string>> by_time_;  // (at_usec, challenge), oldest first
};

}  // namespace mfa

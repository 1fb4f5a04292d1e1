// Open authentication challenges (BeginAuthentication … Verify … EndAuthentication). They live in
// memory only: a restarted mfad forgets them, and PAM begins again. Each one belongs to the process
// that began it, as the bus vouched for it (its uid and pid), not to that process's bus
// connection: pam_mfa.so closes its connection while the person types (a waiting login holds none
// of the bus's per-user connections) and comes back on a new one, which may use the challenge only
// when it is the same uid and pid and knows the 128-bit random id. A challenge ends with
// EndAuthentication, at its expiry (the monotonic clock), or, when a cap would refuse a new one,
// once its process has exited. Every operation costs O(log n) or less; memory is O(1) per
// challenge.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>

#include "common/otp.hpp"
#include "common/result.hpp"
#include "common/secure_buffer.hpp"
#include "core/authenticator.hpp"
#include "core/store.hpp"

namespace mfa {

// The process a challenge belongs to. pid 0: the bus did not give one; the uid alone then.
struct ChallengeOwner {
  uid_t uid = static_cast<uid_t>(-1);
  pid_t pid = 0;
  bool operator==(const ChallengeOwner&) const = default;
};

inline ChallengeOwner challenge_owner(const Caller& caller) {
  return {caller.uid, caller.pid};
}

// A login of a user with no factor that the rollout lets enroll or skip (docs/rollout.md): what
// BeginAuthentication offered, and the TOTP secret of the enrollment it began (memory only: it
// dies with the challenge unless ConfirmLoginEnrollment makes it the user's factor).
struct LoginEnrollment {
  bool enroll = false;
  bool skip = false;
  bool token_checked = false;  // RequireToken=yes: the token was checked (and spent)
  std::optional<SecureBytes> secret;
  TotpParams params;
  std::string issuer;
};

struct Challenge {
  std::string id;  // 128-bit random, lower-case hex
  std::string user;
  ChallengeOwner owner;
  std::set<Method> methods;
  StringMap context;                       // service, rhost, tty, ruser (for the audit trail)
  uint64_t expires_usec = 0;               // monotonic
  bool done = false;                       // verified: no further Verify
  std::optional<LoginEnrollment> rollout;  // set: a login enrollment, never a code's challenge
};

class ChallengeTable {
 public:
  // Whether a process still exists (kill(pid, 0) is not ESRCH); replaced by tests.
  using ProcessAlive = bool (*)(pid_t pid);

  ChallengeTable();

  // A new challenge with a fresh random id. kInternal if the CSPRNG fails.
  Result<Challenge*> create(std::string user, ChallengeOwner owner, std::set<Method> methods,
                            StringMap context, uint64_t expires_usec);
  // nullptr when unknown or begun by another process.
  Challenge* find(std::string_view id, const ChallengeOwner& owner);
  void erase(std::string_view id);
  // Verify succeeded: no longer counted as open.
  void mark_done(Challenge* c);
  void drop_user(std::string_view user);
  // Drops the challenges of user's whose process has exited (a login abandoned at its prompt).
  void drop_exited_for_user(std::string_view user);
  // Drops challenges whose time is up; returns the earliest remaining expiry (0: none).
  uint64_t expire(uint64_t now_usec);
  // Challenges not yet verified, per user and per process (the caps count these).
  size_t open_for_user(std::string_view user) const;
  size_t open_for_caller(const ChallengeOwner& owner) const;
  size_t size() const { return table_.size(); }

  void set_process_alive(ProcessAlive alive) { alive_ = alive; }

 private:
  struct OwnerHash {
    size_t operator()(const ChallengeOwner& o) const {
      return std::hash<uint64_t>()((static_cast<uint64_t>(o.uid) << 32) ^
                                   static_cast<uint32_t>(o.pid));
    }
  };
  struct StringHash {
    using is_transparent = void;
    size_t operator()(std::string_view s) const { return std::hash<std::string_view>()(s); }
  };
  using Table = std::unordered_map<std::string, Challenge, StringHash, std::equal_to<>>;

  void count_open(const Challenge& c, int delta);
  Table::iterator erase(Table::iterator it);

  Table table_;
  // (expiry, id): the expiry sweep visits only what expired.
  std::set<std::pair<uint64_t, std::string>> by_expiry_;
  std::unordered_map<std::string, size_t, StringHash, std::equal_to<>> open_per_user_;
  std::unordered_map<ChallengeOwner, size_t, OwnerHash> open_per_owner_;
  ProcessAlive alive_;
};

}  // namespace mfa

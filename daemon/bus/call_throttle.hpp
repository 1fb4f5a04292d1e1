// How fast each unprivileged caller may call (docs/security-model.md, "Floods"): a token bucket
// per uid. A caller that is not root gets kBurst calls at once and kPerSecond calls a second after
// that; beyond, its calls are refused with LimitExceeded before their handler runs. Root (the PAM
// module) is never limited here.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <unordered_map>

namespace mfa {

class CallThrottle {
 public:
  static constexpr uint64_t kPerSecond = 20;
  static constexpr uint64_t kBurst = 40;
  // Callers followed at once. A full table forgets the callers whose bucket is full again (they
  // lose nothing); when none is, a new caller is refused until one is: a flood from more uids
  // than this cannot push the others' limits back to a full bucket.
  static constexpr size_t kMaxCallers = 4096;

  // Whether uid may make one more call at now_usec (CLOCK_MONOTONIC); takes a token if so.
  bool admit(uid_t uid, uint64_t now_usec);
  size_t callers() const { return buckets_.size(); }

 private:
  struct Bucket {
    uint64_t tokens_micro;  // tokens * 1e6
    uint64_t at_usec;
  };
  static uint64_t refilled(const Bucket& b, uint64_t now_usec);
  std::unordered_map<uid_t, Bucket> buckets_;
};

}  // namespace mfa

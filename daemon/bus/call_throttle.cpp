#include "bus/call_throttle.hpp"

#include <algorithm>
#include <iterator>

namespace mfa {

namespace {
constexpr uint64_t kToken = 1000000;  // one token, in tokens_micro
}  // namespace

uint64_t CallThrottle::refilled(const Bucket& b, uint64_t now_usec) {
  const uint64_t elapsed = now_usec > b.at_usec ? now_usec - b.at_usec : 0;
  // elapsed * kPerSecond tokens_micro per second: bounded before it could overflow.
  const uint64_t gained = std::min<uint64_t>(elapsed, kBurst * kToken) * kPerSecond;
  return std::min(b.tokens_micro + gained, kBurst * kToken);
}

bool CallThrottle::admit(uid_t uid, uint64_t now_usec) {
  auto it = buckets_.find(uid);
  if (it == buckets_.end()) {
    if (buckets_.size() >= kMaxCallers) {
      for (auto i = buckets_.begin(); i != buckets_.end();)
        i = refilled(i->second, now_usec) == kBurst * kToken ? buckets_.erase(i) : std::next(i);
      if (buckets_.size() >= kMaxCallers)
        return false;
    }
    it = buckets_.emplace(uid, Bucket{kBurst * kToken, now_usec}).first;
  }
  Bucket& b = it->second;
  b.tokens_micro = refilled(b, now_usec);
  b.at_usec = std::max(b.at_usec, now_usec);
  if (b.tokens_micro < kToken)
    return false;
  b.tokens_micro -= kToken;
  return true;
}

}  // namespace mfa

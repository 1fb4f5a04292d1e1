#include "fleet/read_cache.hpp"

namespace mfa {

void FleetReadCache::read_done(const std::string& user, uint64_t token, uint64_t now_usec) {
  if (!live_ || token != generation_)
    return;
  if (read_at_.size() >= kMaxUsers && read_at_.find(user) == read_at_.end()) {
    std::erase_if(read_at_,
                  [now_usec](const auto& e) { return now_usec - e.second > kMaxAgeUsec; });
    if (read_at_.size() >= kMaxUsers)
      read_at_.clear();
  }
  read_at_[user] = now_usec;
  if (!frozen_ && (confirmed_.size() < kMaxUsers || confirmed_.count(user)))
    confirmed_[user] = true;
}

void FleetReadCache::outage(uint64_t now_usec) {
  if (frozen_)
    return;
  if (!live_ && now_usec - lost_at_usec_ > kOutageSlackUsec)
    confirmed_.clear();
  frozen_ = true;
}

void FleetReadCache::back_online() {
  frozen_ = false;
  confirmed_.clear();
}

bool FleetReadCache::current(const std::string& user, uint64_t now_usec) const {
  if (!live_)
    return false;
  auto it = read_at_.find(user);
  return it != read_at_.end() && now_usec - it->second <= kMaxAgeUsec;
}

void FleetReadCache::watching(bool live, uint64_t now_usec) {
  // Renewed: messages may have been missed meanwhile.
  if (live && !frozen_)
    confirmed_.clear();
  if (!live && live_)
    lost_at_usec_ = now_usec;
  live_ = live;
  invalidate_all();
}

void FleetReadCache::invalidate(const std::string& user) {
  read_at_.erase(user);
  if (!frozen_)
    confirmed_.erase(user);
  ++generation_;
}

void FleetReadCache::invalidate_all() {
  read_at_.clear();
  ++generation_;
}

}  // namespace mfa

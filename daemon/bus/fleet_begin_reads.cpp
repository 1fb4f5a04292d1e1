#include "bus/fleet_begin_reads.hpp"

namespace mfa {

void FleetBeginReads::forget_before(uint64_t now_usec) {
  while (!by_time_.empty() && now_usec - by_time_.front().first > max_age_usec_) {
    auto it = reads_.find(by_time_.front().second);
    if (it != reads_.end() && it->second.at_usec == by_time_.front().first)
      reads_.erase(it);
    by_time_.pop_front();
  }
}

void FleetBeginReads::note(const Caller& caller, std::string_view challenge, uint64_t now_usec) {
  forget_before(now_usec);
  reads_.insert_or_assign(std::string(challenge), Read{caller.uid, caller.pid, now_usec});
  by_time_.emplace_back(now_usec, std::string(challenge));
}

bool FleetBeginReads::take(const Caller& caller, std::string_view challenge, uint64_t now_usec) {
  forget_before(now_usec);
  auto it = reads_.find(challenge);
  if (it == reads_.end() || it->second.uid != caller.uid || it->second.pid != caller.pid)
    return false;
  reads_.erase(it);
  return true;
}

}  // namespace mfa

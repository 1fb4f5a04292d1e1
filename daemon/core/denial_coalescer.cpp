#include "core/denial_coalescer.hpp"

#include <algorithm>
#include <iterator>
#include <utility>

namespace mfa {

bool DenialCoalescer::first(const Denial& denial, std::string_view user, std::string_view caller,
                            uint64_t now_usec, const std::map<std::string, std::string>& details) {
  Key key{denial.uid, denial.action, denial.kind, denial.reason, denial.account};
  if (auto it = open_.find(key); it != open_.end()) {
    Repeats& r = it->second;
    if (now_usec - r.window_start_usec < kWindowUsec) {
      if (r.count++ == 0)
        ++counted_kinds_;
      if (r.user != user)
        r.user.clear();
      r.caller = std::string(caller);
      return false;
    }
    if (r.count > 0) {
      --counted_kinds_;
      handed_over_.push_back(std::move(r));
    }
    open_.erase(it);
  }
  if (open_.size() >= kMaxKinds) {
    for (auto& [k, r] : open_) {
      if (r.count > 0)
        handed_over_.push_back(std::move(r));
    }
    open_.clear();
    counted_kinds_ = 0;
  }
  if (open_.empty())
    oldest_start_usec_ = now_usec;
  Repeats r;
  r.denial = denial;
  r.user = std::string(user);
  r.caller = std::string(caller);
  r.details = details;
  r.window_start_usec = now_usec;
  open_.emplace(std::move(key), std::move(r));
  return true;
}

std::vector<DenialCoalescer::Repeats> DenialCoalescer::take(uint64_t now_usec, bool all) {
  std::vector<Repeats> out = std::move(handed_over_);
  handed_over_.clear();
  if (!all && now_usec - oldest_start_usec_ < kWindowUsec)
    return out;
  uint64_t oldest = now_usec;
  for (auto it = open_.begin(); it != open_.end();) {
    if (!all && now_usec - it->second.window_start_usec < kWindowUsec) {
      oldest = std::min(oldest, it->second.window_start_usec);
      ++it;
      continue;
    }
    if (it->second.count > 0) {
      --counted_kinds_;
      out.push_back(std::move(it->second));
    }
    it = open_.erase(it);
  }
  oldest_start_usec_ = oldest;
  std::stable_sort(out.begin(), out.end(), [](const Repeats& a, const Repeats& b) {
    return a.window_start_usec < b.window_start_usec;
  });
  return out;
}

}  // namespace mfa

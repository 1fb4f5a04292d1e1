#include "fleet/lost_writes.hpp"

#include <algorithm>
#include <set>

#include "fleet/keys.hpp"

namespace mfa::fleet {

LimitState larger_limits(const LimitState& a, const LimitState& b) {
  LimitState out;
  out.consecutive_failures = std::max(a.consecutive_failures, b.consecutive_failures);
  out.lockout_count = std::max(a.lockout_count, b.lockout_count);
  out.locked_until_usec = std::max(a.locked_until_usec, b.locked_until_usec);
  if (a.day == b.day) {
    out.day = a.day;
    out.day_failures = std::max(a.day_failures, b.day_failures);
  } else {
    const LimitState& later = a.day > b.day ? a : b;
    out.day = later.day;
    out.day_failures = later.day_failures;
  }
  return out;
}

UserState merge_lost_writes(const UserState& remote, const LocalKnowledge& local) {
  UserState out = remote;
  std::set<CodeHash> consumed;
  std::map<std::string, uint64_t> steps = local.watermarks;
  const auto raise = [&](const std::string& device, uint64_t step) {
    uint64_t& known = steps[device.empty() ? std::string(kDefaultTotpDevice) : device];
    known = std::max(known, step);
  };
  for (const ReconcileItem& item : local.unreplicated) {
    if (item.kind == "backup" && item.hash)
      consumed.insert(*item.hash);
    else if (item.kind == "watermark")
      raise(kDefaultTotpDevice, item.step);
    else if (item.kind.starts_with("watermark/"))
      raise(item.kind.substr(10), item.step);
  }
  const std::set<CodeHash> unused_here(local.unused_backup.begin(), local.unused_backup.end());
  std::erase_if(out.backup, [&](const CodeHash& h) {
    return consumed.count(h) != 0 || unused_here.count(h) == 0;
  });
  for (const auto& [device, step] : steps) {
    // A named device removed takes its watermark with it (as every write does); the default's
    // stays.
    if (device != kDefaultTotpDevice &&
        remote.factors.count(factor_field(Method::kTotp, false, device)) == 0)
      continue;
    const auto current = device_watermark(out, device);
    if (!current || *current < step)
      set_device_watermark(out, device, step);
  }
  out.limits = larger_limits(remote.limits, local.limits);
  return out;
}

}  // namespace mfa::fleet

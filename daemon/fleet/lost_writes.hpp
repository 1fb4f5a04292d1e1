// A user's state in Redis older than this host's high-water mark (docs/fleet.md, "High
// availability"; issue 16): a write a Sentinel failover lost is told apart from a copy put back by
// this host's reconciliation queue, and merged again with what this host knows.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "core/store.hpp"
#include "fleet/user_state.hpp"

namespace mfa::fleet {

// The queued consumptions one merge reads at most.
inline constexpr size_t kMaxLostWrites = 100;

// What this host knows of a user beyond a state Redis answered: its cache's copy (the state at its
// high-water mark, as this host last read or wrote it) and the consumptions it queued because no
// replica acknowledged their write (ReconcileItem::counter above the state's).
struct LocalKnowledge {
  std::vector<CodeHash> unused_backup;         // the cache's unused codes
  std::map<std::string, uint64_t> watermarks;  // TOTP device -> the cache's watermark
  LimitState limits;                           // the cache's
  std::vector<ReconcileItem> unreplicated;
};

// remote with every consumption this host knows of: a backup code stays unused only if it is
// unused in the cache too and not queued as consumed (no code this host saw used reopens), each
// TOTP watermark is the largest (of an enrolled device), failure counts and lockouts the larger.
// The factors stay remote's: the caller merges only when they are the cache's.
UserState merge_lost_writes(const UserState& remote, const LocalKnowledge& local);

// Field by field, the larger (a failure count of the later day).
LimitState larger_limits(const LimitState& a, const LimitState& b);

}  // namespace mfa::fleet

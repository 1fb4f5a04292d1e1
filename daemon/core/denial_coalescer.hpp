// Repeated refusals of one caller, counted instead of written one row each (docs/audit-events.md,
// "Coalesced denials"): an unprivileged caller refused in a loop would otherwise grow the audit
// trail by a row per call. The first refusal of a kind (caller uid, action, reason, and for a
// refusal about one account, that account) in a window is written at once; the identical ones after
// it in the window are only counted, and one row with their count is written when the window ends,
// at shutdown, or when the table is full.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <tuple>
#include <vector>

#include "core/audit.hpp"

namespace mfa {

class DenialCoalescer {
 public:
  static constexpr uint64_t kWindowUsec = 60 * 1000000ULL;
  // Kinds of refusal followed at once; a full table hands over every count it holds.
  static constexpr size_t kMaxKinds = 1024;

  struct Denial {
    uid_t uid = static_cast<uid_t>(-1);
    std::string action;
    AuditKind kind = AuditKind::kAccessDenied;
    AuditReason reason = AuditReason::kNotAllowed;
    // Refusals about one account counted apart from the others' (a locked account's logins): ""
    // when the kind does not depend on the account named.
    std::string account;
  };
  // The refusals of one kind after its first row, in one window.
  struct Repeats {
    Denial denial;
    std::string user;                            // the user they named; "" when they named several
    std::string caller;                          // the last one's Caller::describe()
    std::map<std::string, std::string> details;  // the first one's
    uint64_t count = 0;
    uint64_t window_start_usec = 0;  // CLOCK_MONOTONIC
  };

  // Whether this refusal is the first of its kind in its window: its row is written now. false:
  // it was counted.
  bool first(const Denial& denial, std::string_view user, std::string_view caller,
             uint64_t now_usec, const std::map<std::string, std::string>& details = {});
  // The counts to write now, forgotten here: those of windows ended by now_usec (every one with
  // all: shutdown) and those a full table handed over. Oldest window first.
  std::vector<Repeats> take(uint64_t now_usec, bool all);
  size_t kinds() const { return open_.size(); }
  // Whether some repeats wait for their row (a take() will have one to write).
  bool counting() const { return counted_kinds_ > 0 || !handed_over_.empty(); }

 private:
  using Key = std::tuple<uid_t, std::string, AuditKind, AuditReason, std::string>;
  std::map<Key, Repeats> open_;
  std::vector<Repeats> handed_over_;
  // No window in open_ started before this (a flood's refusals skip the scan of take()).
  uint64_t oldest_start_usec_ = 0;
  size_t counted_kinds_ = 0;  // kinds in open_ with a count
};

}  // namespace mfa

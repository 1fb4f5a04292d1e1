// The audit trail's upkeep in mfad (docs/operations.md, "The audit trail"): what the start found
// wrong with the trail's head goes to the trail, the journal and the bus; [Audit] RetentionDays is
// applied at start and every hour; the head goes to the journal every 15 minutes and at shutdown.
#pragma once

#include <systemd/sd-event.h>

#include <cstdint>

#include "bus/manager.hpp"
#include "common/handles.hpp"
#include "common/result.hpp"
#include "core/audit.hpp"
#include "core/clock.hpp"
#include "core/config.hpp"
#include "storage/sqlite_store.hpp"

namespace mfa {

class AuditUpkeep {
 public:
  static constexpr uint64_t kRetentionPeriodUsec = 3600ULL * 1000000;
  static constexpr uint64_t kHeadLogPeriodUsec = 900ULL * 1000000;

  struct Deps {
    sd_event* event;
    SqliteStore& store;
    AuditLog& audit;
    ManagerBus& manager;
    SecurityEventEmitter& emitter;
    const Config& config;
    const Clock& clock;
  };
  explicit AuditUpkeep(Deps deps) : d_(deps) {}

  // What SqliteStore::set_audit_chain() found: an audit.tampering row, a journal entry (the
  // row's) and SecurityEvent("", "audit-tampering", details).
  void report_head_problem();
  // Applies the retention once, then starts the timers.
  Status start();
  void log_head(const char* when);

 private:
  void apply_retention();
  static int on_retention(sd_event_source* source, uint64_t usec, void* userdata);
  static int on_head_log(sd_event_source* source, uint64_t usec, void* userdata);
  Result<EventSourcePtr> add_timer(const char* name, uint64_t period,
                                   sd_event_time_handler_t handler);

  Deps d_;
  EventSourcePtr retention_;
  EventSourcePtr head_log_;
};

}  // namespace mfa

#include "bus/audit_upkeep.hpp"

#include <cstring>
#include <string>

#include "core/log.hpp"
#include "storage/audit_head.hpp"

namespace mfa {

void AuditUpkeep::log_head(const char* when) {
  MFA_LOG_INFO("audit head (%s): %s", when, describe_audit_head(d_.store.audit_head()).c_str());
}

void AuditUpkeep::report_head_problem() {
  auto problem = d_.store.take_audit_head_problem();
  if (!problem)
    return;
  AuditEvent event;
  event.kind = AuditKind::kAuditTampering;
  event.outcome = AuditOutcome::kFailure;
  event.reason = audit_reason_from_name(problem->reason).value_or(AuditReason::kTruncated);
  event.caller = "mfad";
  event.details = {{"found", "at start"},
                   {"message", problem->message},
                   {"proven_to", std::to_string(problem->proven_to)},
                   {"missing_from", std::to_string(problem->missing_from)},
                   {"missing_to", std::to_string(problem->missing_to)}};
  if (Status st = d_.audit.record(event); !st.ok())
    MFA_LOG_ERROR("cannot record audit.tampering: %s", st.error().message.c_str());
  d_.emitter.security_event("", "audit-tampering", event.details);
}

// Audit rows older than the retention go (an audit.checkpoint row vouches for what went), with
// the devices not seen since. Sessions past their lifetime are the session registry's: it ends
// them, which a deleted row would not.
void AuditUpkeep::apply_retention() {
  const int64_t cutoff =
      d_.clock.realtime_usec() - int64_t{d_.config.audit_retention_days} * 86400 * 1000000;
  if (Status st = d_.store.prune_audit(cutoff); !st.ok())
    MFA_LOG_ERROR("cannot prune the audit trail: %s", st.error().message.c_str());
  auto devices = d_.store.prune_devices(cutoff);
  if (!devices.ok()) {
    MFA_LOG_ERROR("cannot prune devices: %s", devices.error().message.c_str());
  } else if (*devices > 0) {
    MFA_LOG_INFO("forgot %d devices not seen for %d days", *devices,
                 d_.config.audit_retention_days);
  }
}

int AuditUpkeep::on_retention(sd_event_source* source, uint64_t usec, void* userdata) {
  auto* self = static_cast<AuditUpkeep*>(userdata);
  try {
    self->apply_retention();
    self->d_.manager.schedule_commit();
  } catch (...) {
    MFA_LOG_ERROR("audit retention failed");
  }
  (void)sd_event_source_set_time(source, usec + kRetentionPeriodUsec);
  return 0;
}

int AuditUpkeep::on_head_log(sd_event_source* source, uint64_t usec, void* userdata) {
  try {
    static_cast<AuditUpkeep*>(userdata)->log_head("periodic");
  } catch (...) {
    MFA_LOG_ERROR("cannot log the audit head");
  }
  (void)sd_event_source_set_time(source, usec + kHeadLogPeriodUsec);
  return 0;
}

Result<EventSourcePtr> AuditUpkeep::add_timer(const char* name, uint64_t period,
                                              sd_event_time_handler_t handler) {
  uint64_t now = 0;
  int r = sd_event_now(d_.event, CLOCK_MONOTONIC, &now);
  sd_event_source* source = nullptr;
  if (r >= 0) {
    r = sd_event_add_time(d_.event, &source, CLOCK_MONOTONIC, now + period, 1000000, handler, this);
  }
  EventSourcePtr owned(source);
  if (r >= 0)
    r = sd_event_source_set_enabled(source, SD_EVENT_ON);
  if (r < 0) {
    return make_error(Errc::kInternal,
                      std::string("cannot add the ") + name + " timer: " + strerror(-r));
  }
  (void)sd_event_source_set_description(source, name);
  return owned;
}

Status AuditUpkeep::start() {
  apply_retention();
  MFA_TRY(retention, add_timer("audit-retention", kRetentionPeriodUsec, on_retention));
  MFA_TRY(head_log, add_timer("audit-head-log", kHeadLogPeriodUsec, on_head_log));
  retention_ = std::move(retention);
  head_log_ = std::move(head_log);
  return {};
}

}  // namespace mfa

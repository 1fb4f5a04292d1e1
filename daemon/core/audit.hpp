// The audit trail (DESIGN §9): every decision goes to the hash-chained table in the store and to
// journald with structured fields and one MESSAGE_ID per event kind (docs/audit-events.md).
#pragma once

#include <functional>
#include <map>
#include <string>
#include <string_view>

#include "core/clock.hpp"
#include "core/store.hpp"

namespace mfa {

struct AuditEvent {
  std::string kind;  // see kAuditKinds in audit.cpp and docs/audit-events.md
  std::string user;
  std::string outcome;  // "success", "failure", "denied", "error", "info"
  std::string reason;
  std::string caller;
  std::map<std::string, std::string> details;  // never a secret, code or full phone number
};

class AuditLog {
 public:
  AuditLog(Store& store, const Clock& clock) : store_(store), clock_(clock) {}
  // Appends to the store (inside the current transaction) and logs to journald (stderr when
  // there is no journal). A store failure is returned; the journald entry is written regardless,
  // at priority LOG_ALERT for a storage failure.
  Status record(const AuditEvent& event);
  // The journald MESSAGE_ID (32 hex digits) of an event kind; a fixed fallback id for unknown ones.
  static const char* message_id(std::string_view kind);
  // Called with every event after it was recorded (the session registry watches successes and
  // failures); may record events of its own.
  void set_observer(std::function<void(const AuditEvent&)> observer) {
    observer_ = std::move(observer);
  }

 private:
  std::function<void(const AuditEvent&)> observer_;
  Store& store_;
  const Clock& clock_;
};

}  // namespace mfa

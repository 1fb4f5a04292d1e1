// [Metrics] TextfilePath= (docs/operations.md, "Metrics"): counters fed by the audit trail as it
// is written, and the text node_exporter's textfile collector reads (Prometheus text format
// 0.0.4, which OpenMetrics parsers accept). Counters start at zero when mfad starts, as every
// exporter's do; Prometheus's rate() and increase() take the restart in their stride.
#pragma once

#include <array>
#include <cstdint>
#include <string>

#include "core/audit.hpp"

namespace mfa {

// What is read when the file is written, not counted.
struct MetricsGauges {
  uint64_t users_enrolled = 0;
  uint64_t sessions_open = 0;
  bool degraded = false;
  bool store_ok = true;  // false: the two counts above could not be read (left out)
};

class MetricsCounters {
 public:
  // Counts the logins (auth.success, auth.failure of a BeginAuthentication's challenge), lockouts
  // and texts among the audit events.
  void observe(const AuditEvent& event);
  // The whole file's text.
  std::string format(const MetricsGauges& gauges) const;

  // label values, in the order the file lists them
  static constexpr std::array<const char*, 4> kMethods{"totp", "sms", "backup", "none"};
  static constexpr std::array<const char*, 3> kOutcomes{"success", "failure", "denied"};
  static constexpr std::array<const char*, 2> kSmsOutcomes{"sent", "failed"};

 private:
  std::array<std::array<uint64_t, kOutcomes.size()>, kMethods.size()> logins_{};
  uint64_t lockouts_ = 0;
  std::array<uint64_t, kSmsOutcomes.size()> sms_{};
};

}  // namespace mfa

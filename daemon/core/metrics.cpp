#include "core/metrics.hpp"

#include <string_view>

namespace mfa {

namespace {

template <size_t N>
size_t index_of(const std::array<const char*, N>& names, std::string_view name, size_t fallback) {
  for (size_t i = 0; i < N; ++i) {
    if (name == names[i])
      return i;
  }
  return fallback;
}

void family(std::string& out, const char* name, const char* type, const char* help) {
  out += "# HELP ";
  out += name;
  out += ' ';
  out += help;
  out += "\n# TYPE ";
  out += name;
  out += ' ';
  out += type;
  out += '\n';
}

}  // namespace

void MetricsCounters::observe(const AuditEvent& event) {
  switch (event.kind) {
    case AuditKind::kAuthSuccess:
    case AuditKind::kAuthFailure: {
      // Step-ups (a user changing their own account) are not logins.
      if (!event.detail("purpose").empty())
        return;
      const size_t none = kMethods.size() - 1;
      const size_t method = event.kind == AuditKind::kAuthSuccess
                                ? index_of(kMethods, event.detail("method"), none)
                                : none;
      const size_t outcome = event.kind == AuditKind::kAuthSuccess    ? 0
                             : event.outcome == AuditOutcome::kDenied ? 2
                                                                      : 1;
      ++logins_[method][outcome];
      return;
    }
    case AuditKind::kAuthLockout:
      ++lockouts_;
      return;
    case AuditKind::kSmsSent:
      ++sms_[0];
      return;
    case AuditKind::kSmsFailed:
      ++sms_[1];
      return;
    default:
      return;
  }
}

std::string MetricsCounters::format(const MetricsGauges& g) const {
  std::string out;
  family(out, "mfad_logins_total", "counter",
         "Second-factor verifications of logins since mfad started, by factor and outcome.");
  for (size_t m = 0; m < kMethods.size(); ++m) {
    for (size_t o = 0; o < kOutcomes.size(); ++o) {
      out += std::string("mfad_logins_total{method=\"") + kMethods[m] + "\",outcome=\"" +
             kOutcomes[o] + "\"} " + std::to_string(logins_[m][o]) + "\n";
    }
  }
  family(out, "mfad_lockouts_total", "counter", "Lockouts since mfad started.");
  out += "mfad_lockouts_total " + std::to_string(lockouts_) + "\n";
  family(out, "mfad_sms_sent_total", "counter",
         "Texts handed to the SMS provider since mfad started, by outcome.");
  for (size_t o = 0; o < kSmsOutcomes.size(); ++o) {
    out += std::string("mfad_sms_sent_total{outcome=\"") + kSmsOutcomes[o] + "\"} " +
           std::to_string(sms_[o]) + "\n";
  }
  if (g.store_ok) {
    family(out, "mfad_users_enrolled", "gauge", "Users with at least one active second factor.");
    out += "mfad_users_enrolled " + std::to_string(g.users_enrolled) + "\n";
    family(out, "mfad_sessions_open", "gauge", "Login sessions registered on this host.");
    out += "mfad_sessions_open " + std::to_string(g.sessions_open) + "\n";
  }
  family(out, "mfad_degraded", "gauge",
         "1 while fleet mode runs without Redis (degraded mode), else 0.");
  out += std::string("mfad_degraded ") + (g.degraded ? "1" : "0") + "\n";
  family(out, "mfad_metrics_store_ok", "gauge",
         "0 when the last write of this file could not read the state store.");
  out += std::string("mfad_metrics_store_ok ") + (g.store_ok ? "1" : "0") + "\n";
  return out;
}

}  // namespace mfa

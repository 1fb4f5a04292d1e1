// mfad's own diagnostics (not the audit trail): one line per message on stderr. Under systemd
// (JOURNAL_STREAM set) each line starts with a "<N>" priority prefix that journald parses, the way
// systemd's own daemons log; otherwise with "mfad: ". Never a secret, code or full phone number.
#pragma once

#include <syslog.h>

namespace mfa {

void log_message(int priority, const char* format, ...) __attribute__((format(printf, 2, 3)));

}  // namespace mfa

#define MFA_LOG_ERROR(...) ::mfa::log_message(LOG_ERR, __VA_ARGS__)
#define MFA_LOG_WARNING(...) ::mfa::log_message(LOG_WARNING, __VA_ARGS__)
#define MFA_LOG_INFO(...) ::mfa::log_message(LOG_INFO, __VA_ARGS__)

// `fresh=SECONDS` (docs/sudo.md): a sudo inside a login session whose own login passed a second
// factor moments ago asks for no code. The binding is the kernel's audit session: pam_loginuid
// gives every login its own (/proc/self/sessionid, inherited by every process of the session and
// immutable to them), and mfad recorded it at OpenSession from the PAM host's credentials. No
// name, file or string a user controls takes part.
#include <algorithm>
#include <charconv>

#include "common/dbus_names.hpp"

#include "core/rate_limiter.hpp"
#include "core/sessions.hpp"
#include "core/validation.hpp"

namespace mfa {

namespace {

constexpr uint32_t kMaxFreshSeconds = 86400;

bool passed_a_factor(const SessionRecord& s) {
  return parse_method(s.factor).has_value();  // "totp", "sms", "backup"; never "none"
}

}  // namespace

Result<std::optional<std::string>> SessionRegistry::fresh_session(const Caller& caller,
                                                                  std::string_view user,
                                                                  const StringMap& context) {
  if (caller.uid != 0)
    return make_error(Errc::kNotAllowed, "Only root may ask for a fresh session.");
  if (context.size() > dbus::kMaxContextEntries)
    return invalid_argument("Too many context entries.");
  uint32_t max_age_seconds = 0;
  const auto fresh = context.find("fresh");
  if (fresh != context.end()) {
    const std::string& text = fresh->second;
    auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), max_age_seconds);
    if (ec != std::errc() || end != text.data() + text.size())
      max_age_seconds = 0;
  }
  if (max_age_seconds == 0 || max_age_seconds > kMaxFreshSeconds)
    return invalid_argument("fresh= takes 1 to " + std::to_string(kMaxFreshSeconds) + " seconds.");
  const auto uid = d_.users.uid_of(user);
  if (!uid)
    return make_error(Errc::kNoSuchUser, "No such user: " + std::string(user));
  // Unset ids (a process pam_loginuid never saw, or a kernel without audit) bind nothing.
  if (caller.audit_session == Caller::kUnsetAuditId ||
      caller.audit_login_uid == Caller::kUnsetAuditId || caller.audit_login_uid != *uid)
    return std::optional<std::string>();

  // Dead leaders and sessions past their lifetime or idle time end first: they bind nothing.
  MFA_TRY(next, expire());
  (void)next;
  const std::string account = d_.users.name_of(*uid).value_or(std::string(user));
  MFA_TRY(sessions, d_.store.list_sessions(account));
  const int64_t now = d_.clock.realtime_usec();
  const int64_t max_age = int64_t{max_age_seconds} * kUsecPerSecond;
  // The newest matching session (a shell's audit session has one login, but be exact anyway).
  const SessionRecord* best = nullptr;
  for (const auto& s : sessions) {
    if (s.audit_session != caller.audit_session || s.audit_login_uid != caller.audit_login_uid ||
        s.user != account || !passed_a_factor(s) || s.started_usec > now ||
        now - s.started_usec >= max_age)
      continue;
    if (!best || s.started_usec > best->started_usec)
      best = &s;
  }
  if (!best)
    return std::optional<std::string>();
  StringMap details;
  for (const char* key : {"service", "rhost", "tty", "ruser"}) {
    if (auto it = context.find(key); it != context.end() && !it->second.empty())
      details[std::string("fresh_") + key] = it->second.substr(0, dbus::kMaxContextValueLength);
  }
  details["audit_session"] = std::to_string(caller.audit_session);
  details["factor"] = best->factor;
  details["age"] = std::to_string((now - best->started_usec) / kUsecPerSecond);
  details["max_age"] = std::to_string(max_age_seconds);
  MFA_CHECK(audit(AuditKind::kFreshSession, *best, AuditOutcome::kSuccess, AuditReason::kNone,
                  caller.describe(), details));
  return std::optional<std::string>(best->id);
}

}  // namespace mfa

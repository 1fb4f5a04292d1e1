// Who may call what (docs/security-model.md): root for the PAM side; the user on their own account,
// with step-up once a factor is active; admins (root, AdminGroup, or the caller's admin authority:
// polkit's org.mfad1.manage).
#include <sys/types.h>

#include <algorithm>
#include <optional>
#include <string>

#include "core/authenticator_impl.hpp"
#include "core/validation.hpp"

namespace mfa {

std::string Caller::describe() const {
  std::string s = "uid=" + std::to_string(uid) + " pid=" + std::to_string(pid);
  if (!bus_name.empty())
    s += " " + bus_name;
  if (admin_authority && admin_authority->answer() == AdminAuthority::Answer::kYes)
    s += std::string(" via ") + admin_authority->name();
  return s;
}

namespace {

// A refusal for want of the admin tier that the caller's admin authority may still turn around:
// the authority learns that it is wanted.
bool admin_not_asked(const Caller& caller) {
  if (!caller.admin_authority ||
      caller.admin_authority->answer() != AdminAuthority::Answer::kNotAsked)
    return false;
  caller.admin_authority->wanted();
  return true;
}

}  // namespace

Error admin_refusal(const Caller& caller, Error denial) {
  (void)admin_not_asked(caller);
  return denial;
}

bool Authenticator::Impl::is_admin(const Caller& caller) const {
  if (caller.uid == 0)
    return true;
  if (caller.uid == static_cast<uid_t>(-1))
    return false;
  if (!d_.config.admin_group.empty() && d_.users.in_group(caller.uid, d_.config.admin_group))
    return true;
  return caller.admin_authority && caller.admin_authority->answer() == AdminAuthority::Answer::kYes;
}

Status Authenticator::Impl::audit_denial(const Caller& caller, std::string_view user,
                                         AuditKind kind, AuditReason reason, StringMap details) {
  DenialCoalescer::Denial denial{caller.uid, details["action"], kind, reason, ""};
  return audit_denial(caller, user, denial, std::move(details));
}

Status Authenticator::Impl::audit_denial(const Caller& caller, std::string_view user,
                                         const DenialCoalescer::Denial& denial, StringMap details) {
  MFA_CHECK(flush_denials(false));
  if (!denials.first(denial, user, caller.describe(), d_.clock.monotonic_usec(), details))
    return {};
  return audit(denial.kind, user, AuditOutcome::kDenied, denial.reason, caller, std::move(details));
}

Status Authenticator::Impl::flush_denials(bool all) {
  for (auto& r : denials.take(d_.clock.monotonic_usec(), all)) {
    AuditEvent ev;
    ev.kind = r.denial.kind;
    ev.user = std::move(r.user);
    ev.outcome = AuditOutcome::kDenied;
    ev.reason = r.denial.reason;
    ev.caller = std::move(r.caller);
    ev.details = std::move(r.details);
    ev.details["count"] = std::to_string(r.count);
    ev.details["window_seconds"] = std::to_string(DenialCoalescer::kWindowUsec / 1000000);
    MFA_STORE_CHECK(d_.audit.record(ev));
  }
  return {};
}

Status Authenticator::call_limited(const Caller& caller, std::string_view action) {
  return impl_->audit_denial(caller, "", AuditKind::kAccessDenied, AuditReason::kRateLimited,
                             {{"action", std::string(action)}});
}

Status Authenticator::flush_denials(bool all) {
  return impl_->flush_denials(all);
}

bool Authenticator::counting_denials() const {
  return impl_->denials.counting();
}

Error Authenticator::Impl::deny(const Caller& caller, std::string_view user,
                                std::string_view action, std::string message) {
  auto st = audit_denial(caller, user, AuditKind::kAccessDenied, AuditReason::kNotAllowed,
                         {{"action", std::string(action)}});
  if (!st.ok())
    return std::move(st).error();
  return make_error(Errc::kNotAllowed, std::move(message));
}

Status Authenticator::Impl::require_root(const Caller& caller, std::string_view action) {
  if (caller.uid == 0)
    return {};
  return deny(caller, "", action, "Only root may call " + std::string(action));
}

// A refusal for want of the admin tier: audited only once the admin authority had its say, so
// that a call it then allows leaves no denial behind.
Error Authenticator::Impl::deny_admin(const Caller& caller, std::string_view user,
                                      std::string_view action, std::string message) {
  if (admin_not_asked(caller))
    return make_error(Errc::kNotAllowed, std::move(message));
  return deny(caller, user, action, std::move(message));
}

Status Authenticator::Impl::require_admin(const Caller& caller, std::string_view action) {
  if (is_admin(caller))
    return {};
  return deny_admin(caller, "", action, "Only an administrator may call " + std::string(action));
}

// Self-service (own account) or admin, on a user NSS knows.
Result<Authenticator::Impl::Access> Authenticator::Impl::authorize(const Caller& caller,
                                                                   std::string_view user,
                                                                   std::string_view action) {
  MFA_CHECK(validate_user_name(user));
  const auto uid = d_.users.uid_of(user);
  if (!uid)
    return make_error(Errc::kNoSuchUser, "No such user '" + std::string(user) + "'");
  Access a;
  a.account = account_key(*uid);
  a.self = *uid == caller.uid;
  a.admin = is_admin(caller);
  if (!a.self && !a.admin)
    return deny_admin(caller, user, action, "You may only manage your own account");
  return a;
}

namespace {

// "#<uid>", how people see an account NSS no longer names (account_display_name): its key.
std::optional<std::string> hash_uid_key(std::string_view user) {
  if (user.size() < 2 || user.front() != '#')
    return std::nullopt;
  std::string key = "uid/" + std::string(user.substr(1));
  if (!account_key_uid(key))
    return std::nullopt;
  return key;
}

}  // namespace

std::string Authenticator::records_key(std::string_view user) const {
  if (!validate_user_name(user).ok())
    return std::string(user);
  if (const auto uid = impl_->d_.users.uid_of(user))
    return account_key(*uid);
  if (auto key = hash_uid_key(user))
    return std::move(*key);
  return std::string(user);
}

std::string Authenticator::shown_name(std::string_view key) const {
  return account_display_name(impl_->d_.users, key);
}

Result<std::string> Authenticator::Impl::account_of(std::string_view user) {
  MFA_CHECK(validate_user_name(user));
  const auto uid = d_.users.uid_of(user);
  if (!uid)
    return make_error(Errc::kNoSuchUser, "No such user '" + std::string(user) + "'");
  return account_key(*uid);
}

// Admin-only methods that name a user. An account deleted from NSS may still have state here
// (factors, codes, a lockout): admins can still clear it, by the "#<uid>" ListUsers shows for
// it, or by a name whose records were kept under it (sqlite_schema.cpp, migration 6).
Result<std::string> Authenticator::Impl::admin_on_user(const Caller& caller, std::string_view user,
                                                       std::string_view action) {
  MFA_CHECK(require_admin(caller, action));
  MFA_CHECK(validate_user_name(user));
  if (const auto uid = d_.users.uid_of(user))
    return account_key(*uid);
  if (const auto key = hash_uid_key(user)) {
    MFA_TRY(known, has_state(*key));
    if (known)
      return *key;
  }
  MFA_TRY(known, has_state(user));
  if (!known)
    return make_error(Errc::kNoSuchUser, "No such user '" + std::string(user) + "'");
  return std::string(user);
}

// Whoever holds an admin's password holds the admin tier too: AdminGroup needs nothing more, and
// polkit's auth_admin_keep asks for that same password. On their own account such an admin is a
// user like any other: ResetUser would drop the factor a guesser lacks (step-up is due, and the
// call carries no code: DisableMethod does), and Unlock would lift the lockout that stops the
// guessing (no code can be checked while it holds). Root, and other admins, may do both.
Status Authenticator::Impl::admin_on_own_account(const Caller& caller, std::string_view user,
                                                 OwnAccountChange what) {
  if (caller.uid == 0)
    return {};
  const auto uid = d_.users.uid_of(user);
  if (!uid || *uid != caller.uid)
    return {};
  MFA_TRY(f, load_factors(account_key(*uid)));
  if (!f.any_active())
    return {};
  if (what == OwnAccountChange::kUnlock) {
    return deny(caller, user, "Unlock",
                "You cannot lift your own lockout: it stops whoever knows your password from "
                "guessing codes. Wait until it ends, or ask root or another administrator");
  }
  MFA_CHECK(audit(AuditKind::kAuthFailure, user, AuditOutcome::kDenied,
                  AuditReason::kStepUpRequired, caller,
                  {{"purpose", "step-up"}, {"action", "reset"}}));
  return make_error(Errc::kStepUpRequired,
                    "Resetting your own account needs a current code, which ResetUser cannot "
                    "carry: remove each factor with DisableMethod and a current code (mfactl "
                    "disable USER METHOD), or ask root or another administrator");
}

Result<bool> Authenticator::Impl::has_state(std::string_view user) {
  MFA_TRY(enrolled, d_.store.list_users());
  if (std::binary_search(enrolled.begin(), enrolled.end(), user))
    return true;
  MFA_TRY(limits, d_.store.get_limits(user));
  return limits.consecutive_failures > 0 || limits.locked_until_usec > 0 ||
         limits.day_failures > 0 || limits.lockout_count > 0;
}

}  // namespace mfa

// What mfad shows about users (GetUser, ListUsers) and the admin-only operations: ResetUser,
// Unlock, ListAuditEvents, VerifyAuditTrail.
#include <algorithm>

#include "common/dbus_names.hpp"
#include "core/authenticator_impl.hpp"
#include "core/rate_limiter.hpp"
#include "core/validation.hpp"

namespace mfa {

Result<UserInfo> Authenticator::Impl::user_info(std::string_view user) {
  MFA_TRY(f, load_factors(user));
  MFA_STORE_TRY(limits, d_.store.get_limits(user));
  UserInfo info;
  info.user = account_display_name(d_.users, user);
  if (f.totp)
    info.methods.push_back(method_name(Method::kTotp));
  if (f.sms)
    info.methods.push_back(method_name(Method::kSms));
  if (f.backup_left > 0)
    info.methods.push_back(method_name(Method::kBackup));
  if (f.totp_pending)
    info.pending.push_back(method_name(Method::kTotp));
  if (f.sms_pending)
    info.pending.push_back(method_name(Method::kSms));
  info.backup_codes_left = static_cast<uint32_t>(f.backup_left);
  const int64_t now = d_.clock.realtime_usec();
  if (lock_remaining_usec(limits, now) > 0)
    info.locked_until =
        static_cast<uint64_t>((limits.locked_until_usec + kUsecPerSecond - 1) / kUsecPerSecond);
  info.failures = static_cast<uint32_t>(std::max(0, limits.consecutive_failures));
  // Only another host writes a foreign change: a single host skips the audit trail's search.
  // The trail names the account by its name (AuditLog::record), as info.user does.
  if (d_.config.fleet_mode()) {
    MFA_STORE_TRY(foreign, d_.store.last_foreign_change(info.user));
    info.foreign_change = std::move(foreign);
  }
  if (f.sms)
    info.masked_phone = f.sms->params;
  if (f.totp) {
    MFA_TRY(params, record_params(*f.totp));
    info.totp = params;
  }
  for (const auto& d : f.totp_devices) {
    TotpDeviceInfo device;
    device.name = d.device;
    device.created = static_cast<uint64_t>(std::max<int64_t>(0, d.created_usec / kUsecPerSecond));
    MFA_TRY(params, record_params(d));
    MFA_STORE_TRY(watermark, d_.store.get_totp_watermark(user, d.device));
    // The watermark is the step of the last code accepted: the time it was used, to the period.
    if (watermark)
      device.last_used = *watermark * static_cast<uint64_t>(params.period);
    info.totp_devices.push_back(std::move(device));
  }
  return info;
}

Result<UserInfo> Authenticator::get_user(const Caller& caller, std::string_view user) {
  MFA_TRY(access, impl_->authorize(caller, user, "GetUser"));
  return impl_->user_info(access.account);
}

Result<std::vector<UserInfo>> Authenticator::list_users(const Caller& caller) {
  Impl& m = *impl_;
  MFA_CHECK(m.require_admin(caller, "ListUsers"));
  MFA_STORE_TRY(names, m.d_.store.list_users());
  std::vector<UserInfo> out;
  out.reserve(names.size());
  for (const auto& name : names) {
    MFA_TRY(info, m.user_info(name));
    out.push_back(std::move(info));
  }
  return out;
}

Status Authenticator::reset_user(const Caller& caller, std::string_view user) {
  Impl& m = *impl_;
  MFA_TRY(account, m.admin_on_user(caller, user, "ResetUser"));
  MFA_CHECK(m.admin_on_own_account(caller, user, Impl::OwnAccountChange::kReset));
  MFA_STORE_CHECK(m.d_.store.delete_user(account));
  // Records an older database kept under this spelling of the account (sqlite_schema.cpp).
  if (account != user)
    MFA_STORE_CHECK(m.d_.store.delete_user(user));
  m.challenges.drop_user(account);
  MFA_CHECK(m.audit_success(AuditKind::kAdminReset, account, caller));
  return {};
}

Status Authenticator::unlock(const Caller& caller, std::string_view user) {
  Impl& m = *impl_;
  MFA_TRY(account, m.admin_on_user(caller, user, "Unlock"));
  MFA_CHECK(m.admin_on_own_account(caller, user, Impl::OwnAccountChange::kUnlock));
  MFA_STORE_CHECK(m.d_.store.put_limits(account, LimitState{}));
  MFA_CHECK(m.audit_success(AuditKind::kAdminUnlock, account, caller));
  return {};
}

Result<std::vector<AuditRecord>> Authenticator::list_audit_events(const Caller& caller,
                                                                  const AuditFilter& filter) {
  Impl& m = *impl_;
  MFA_CHECK(m.require_admin(caller, "ListAuditEvents"));
  if (filter.limit > dbus::kMaxAuditQueryLimit)
    return invalid_argument("The limit must be at most " +
                            std::to_string(dbus::kMaxAuditQueryLimit));
  if (filter.since_usec < 0)
    return invalid_argument("The start time must not be negative");
  if (!filter.user.empty())
    MFA_CHECK(validate_user_name(filter.user));
  MFA_STORE_TRY(rows, m.d_.store.query_audit(filter));
  return rows;
}

Result<AuditVerification> Authenticator::verify_audit_trail(const Caller& caller) {
  Impl& m = *impl_;
  MFA_CHECK(m.require_admin(caller, "VerifyAuditTrail"));
  MFA_STORE_TRY(v, m.d_.store.verify_audit_chain());
  return v;
}

}  // namespace mfa

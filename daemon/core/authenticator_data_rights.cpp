// Data rights (docs/security-model.md, "Data rights"): what mfad holds about a person, shown to
// them (ExportUser) or erased (ForgetUser, crypto-shredding through their data key); the devices
// they logged in from (ListDevices, ForgetDevice); and the notice shown before an enrollment,
// whose acceptance is audited with its SHA-256 (GetEnrollmentNotice, AcceptEnrollmentNotice).
#include <algorithm>

#include <nlohmann/json.hpp>

#include "common/crypto.hpp"
#include "core/authenticator_impl.hpp"
#include "core/enrollment_notice.hpp"
#include "core/log.hpp"
#include "core/rate_limiter.hpp"
#include "core/sms_codes.hpp"
#include "core/validation.hpp"

namespace mfa {
namespace {

using Json = nlohmann::json;

constexpr size_t kMaxExportAuditRows = 10000;
// An acceptance opens one enrollment begun within this time (mfactl and the PAM module begin
// right after it, or after a token prompt); then the notice is shown again.
constexpr uint64_t kNoticeAcceptanceUsec = 15ULL * 60 * kUsecPerSecond;
// Acceptances not yet used, at most (one per account).
constexpr size_t kMaxAcceptedNotices = 4096;

int64_t seconds(int64_t usec) {
  return usec / kUsecPerSecond;
}

std::string dump(const Json& doc) {
  return doc.dump(2, ' ', false, Json::error_handler_t::replace);
}

// The names a person's records carry: sessions, devices and the audit trail keep the name a
// login used (the account's NSS name); the user argument too when it is another spelling.
std::vector<std::string> names_of(const std::string& shown, std::string_view user) {
  std::vector<std::string> names{shown};
  if (user != shown && !user.empty() && user.front() != '#')
    names.emplace_back(user);
  return names;
}

// The notice as configured now (NoticeFile= is read again: an edit needs no restart).
Result<EnrollmentNotice> current_notice(const Config& config) {
  EnrollmentNotice notice;
  if (!config.enrollment_notice_file.empty()) {
    auto text = read_notice_file(config.enrollment_notice_file);
    if (!text.ok()) {
      // Fail closed: no enrollment goes on without the notice it must show.
      MFA_LOG_ERROR("%s", text.error().message.c_str());
      return make_error(Errc::kInternal, "The enrollment notice cannot be read; ask an admin");
    }
    notice.text = std::move(text).value();
  } else {
    notice.text = config.enrollment_notice;
  }
  if (!notice.text.empty()) {
    notice.sha256_hex = to_hex(sha256(std::span<const uint8_t>(
        reinterpret_cast<const uint8_t*>(notice.text.data()), notice.text.size())));
  }
  return notice;
}

}  // namespace

Result<std::string> Authenticator::export_user(const Caller& caller, std::string_view user) {
  Impl& m = *impl_;
  MFA_TRY(access, m.authorize(caller, user, "ExportUser"));
  const std::string& key = access.account;
  const std::string shown = account_display_name(m.d_.users, key);
  MFA_TRY(f, m.load_factors(key));
  MFA_STORE_TRY(limits, m.d_.store.get_limits(key));

  Json doc = Json::object();
  doc["user"] = shown;
  if (auto uid = account_key_uid(key))
    doc["uid"] = *uid;
  doc["exported"] = seconds(m.d_.clock.realtime_usec());

  Json factors = Json::array();
  auto factor = [&](const FactorRecord& r) -> Status {
    Json j = {{"method", method_name(r.method)},
              {"state", r.pending ? "pending" : "active"},
              {"enrolled", seconds(r.created_usec)}};
    if (r.method == Method::kTotp) {
      j["device"] = r.device;
      MFA_STORE_TRY(watermark, m.d_.store.get_totp_watermark(key, r.device));
      auto params = parse_totp_params(r.params);
      if (params) {
        j["algorithm"] = otp_algorithm_name(params->algorithm);
        j["digits"] = params->digits;
        j["period"] = params->period;
        // The last code accepted: its time step.
        if (!r.pending && watermark)
          j["last_used"] = static_cast<int64_t>(*watermark) * params->period;
      }
    } else if (r.method == Method::kSms) {
      // The person's own number: shown to them (or an admin acting for them), never logged.
      j["masked_phone"] = r.params;
      auto phone = m.sms.open_phone(r, key, r.pending ? kSealSmsPending : kSealSms);
      if (phone.ok())
        j["phone"] = std::string(phone->view());
      else
        j["phone_unreadable"] = true;
    }
    factors.push_back(std::move(j));
    return {};
  };
  for (const FactorRecord& device : f.totp_devices)  // every named TOTP device (issue 19)
    MFA_CHECK(factor(device));
  for (const auto* r : {&f.totp_pending, &f.sms, &f.sms_pending}) {
    if (*r)
      MFA_CHECK(factor(**r));
  }
  doc["factors"] = std::move(factors);
  doc["backup_codes_left"] = f.backup_left;

  const int64_t now = m.d_.clock.realtime_usec();
  doc["lockout"] = {
      {"locked_until",
       lock_remaining_usec(limits, now) > 0 ? seconds(limits.locked_until_usec) : int64_t{0}},
      {"consecutive_failures", limits.consecutive_failures},
      {"lockouts", limits.lockout_count},
      {"failures_today", limits.day_failures}};

  const std::vector<std::string> names = names_of(shown, user);
  Json sessions = Json::array();
  Json devices = Json::array();
  Json audit = Json::array();
  for (const std::string& name : names) {
    auto listed = m.d_.store.list_sessions(name);
    // A store without sessions has none to show.
    if (listed.ok()) {
      for (const SessionRecord& s : *listed) {
        sessions.push_back({{"id", s.id},
                            {"service", s.service},
                            {"rhost", s.rhost},
                            {"tty", s.tty},
                            {"ruser", s.ruser},
                            {"factor", s.factor},
                            {"device", s.device},
                            {"started", seconds(s.started_usec)},
                            {"last_seen", seconds(s.last_seen_usec)}});
      }
    }
    auto seen = m.d_.store.list_devices(name);
    if (seen.ok()) {
      for (const DeviceRecord& d : *seen) {
        devices.push_back({{"device", d.fingerprint},
                           {"rhost", d.rhost},
                           {"client", d.client},
                           {"first_seen", seconds(d.first_seen_usec)},
                           {"last_seen", seconds(d.last_seen_usec)}});
      }
    }
    AuditFilter filter;
    filter.user = name;
    filter.limit = kMaxExportAuditRows;
    MFA_STORE_TRY(rows, m.d_.store.query_audit(filter));
    for (const AuditRecord& r : rows) {
      Json details = Json::parse(r.details_json, nullptr, /*allow_exceptions=*/false);
      audit.push_back({{"id", r.id},
                       {"time", seconds(r.time_usec)},
                       {"kind", r.kind},
                       {"outcome", r.outcome},
                       {"reason", r.reason},
                       {"caller", r.caller},
                       {"details", details.is_object() ? details : Json::object()}});
    }
  }
  doc["sessions"] = std::move(sessions);
  doc["devices"] = std::move(devices);
  doc["audit"] = std::move(audit);
  MFA_CHECK(m.audit_success(AuditKind::kDataExport, key, caller));
  return dump(doc);
}

Result<ForgetReport> Authenticator::forget_user(const Caller& caller, std::string_view user) {
  Impl& m = *impl_;
  MFA_TRY(account, m.admin_on_user(caller, user, "ForgetUser"));
  return forget_account(account, user, caller, {});
}

Result<ForgetReport> Authenticator::apply_fleet_forget(std::string_view account,
                                                       std::string_view from_host) {
  // Only a key of an account: a tombstone names nothing else (fleet/data_key_records.hpp).
  if (!account_key_uid(account))
    return invalid_argument("A fleet forget names an account key");
  Caller fleet;
  fleet.bus_name = "fleet:" + std::string(from_host);
  return forget_account(std::string(account), account, fleet,
                        {{"fleet_host", std::string(from_host)}});
}

Result<ForgetReport> Authenticator::forget_account(const std::string& account,
                                                   std::string_view user, const Caller& caller,
                                                   StringMap details) {
  Impl& m = *impl_;
  const std::string shown = account_display_name(m.d_.users, account);
  // The shared records first: in fleet mode this is what Redis deletes on every host (the
  // FleetRecorder notes it, as for ResetUser).
  MFA_STORE_CHECK(m.d_.store.delete_user(account));
  if (account != user)
    MFA_STORE_CHECK(m.d_.store.delete_user(user));
  ForgetRequest request{account, names_of(shown, user)};
  MFA_STORE_TRY(report, m.d_.store.forget_user(request));
  // The data key goes with the records: every copy of them (a backup of the database) stops
  // opening. Should the batch fail after this, the records left are unreadable: the person was
  // being forgotten anyway.
  const DataKeys keys = m.data_keys();
  for (const std::string& owner : {account, std::string(user)}) {
    MFA_STORE_TRY(destroyed, keys.destroy(owner));
    report.data_key = report.data_key || destroyed;
  }
  m.challenges.drop_user(account);
  // Recorded under the pseudonym: the trail does not learn the name again.
  details["audit_rows"] = std::to_string(report.audit_rows);
  details["audit_rows_kept"] = std::to_string(report.audit_rows_kept);
  details["sessions"] = std::to_string(report.sessions);
  details["devices"] = std::to_string(report.devices);
  details["data_key"] = report.data_key ? "destroyed" : "none";
  MFA_CHECK(m.audit_success(AuditKind::kDataForget, report.pseudonym, caller, std::move(details)));
  return report;
}

Result<std::vector<DeviceRecord>> Authenticator::list_devices(const Caller& caller,
                                                              std::string_view user) {
  Impl& m = *impl_;
  if (user.empty()) {
    MFA_CHECK(m.require_admin(caller, "ListDevices"));
    MFA_STORE_TRY(all, m.d_.store.list_devices(""));
    return all;
  }
  MFA_TRY(access, m.authorize(caller, user, "ListDevices"));
  std::vector<DeviceRecord> out;
  for (const std::string& name : names_of(account_display_name(m.d_.users, access.account), user)) {
    MFA_STORE_TRY(seen, m.d_.store.list_devices(name));
    out.insert(out.end(), seen.begin(), seen.end());
  }
  return out;
}

Status Authenticator::forget_device(const Caller& caller, std::string_view user,
                                    std::string_view device) {
  Impl& m = *impl_;
  MFA_TRY(access, m.authorize(caller, user, "ForgetDevice"));
  if (device.empty() || device.size() > 128 ||
      !std::all_of(device.begin(), device.end(),
                   [](char c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'); }))
    return invalid_argument("The device id must be the hex id mfactl devices shows");
  bool gone = false;
  for (const std::string& name : names_of(account_display_name(m.d_.users, access.account), user)) {
    MFA_STORE_TRY(deleted, m.d_.store.delete_device(name, device));
    gone = gone || deleted;
  }
  if (!gone)
    return invalid_argument("No such device for this user");
  MFA_CHECK(m.audit_success(AuditKind::kDataForgetDevice, access.account, caller,
                            {{"device", std::string(device)}}));
  return {};
}

Result<EnrollmentNotice> Authenticator::enrollment_notice() const {
  return current_notice(impl_->d_.config);
}

Status Authenticator::accept_enrollment_notice(const Caller& caller, std::string_view user,
                                               std::string_view sha256_hex, std::string_view via) {
  Impl& m = *impl_;
  MFA_TRY(access, m.authorize(caller, user, "AcceptEnrollmentNotice"));
  if (via != "mfactl" && via != "login")
    return invalid_argument("via must be \"mfactl\" or \"login\"");
  MFA_TRY(notice, enrollment_notice());
  if (notice.text.empty())
    return invalid_argument("There is no enrollment notice to accept");
  if (!ct_equal(notice.sha256_hex, sha256_hex))
    return invalid_argument("The enrollment notice changed; show the current one and ask again");
  // Room for the acceptance first: one of each account's at most, those past their time go.
  const uint64_t now = m.d_.clock.monotonic_usec();
  if (m.accepted_notices.size() >= kMaxAcceptedNotices &&
      !m.accepted_notices.contains(access.account)) {
    std::erase_if(m.accepted_notices,
                  [&](const auto& entry) { return entry.second.until_usec <= now; });
    if (m.accepted_notices.size() >= kMaxAcceptedNotices)
      return make_error(Errc::kLimitExceeded, "Too many enrollments are in progress");
  }
  MFA_CHECK(m.audit_success(AuditKind::kEnrollNotice, access.account, caller,
                            {{"notice_sha256", notice.sha256_hex}, {"via", std::string(via)}}));
  m.accepted_notices[access.account] = {notice.sha256_hex, now + kNoticeAcceptanceUsec};
  return {};
}

Status Authenticator::Impl::require_notice_acceptance(const Caller& caller, const std::string& user,
                                                      StringMap details) {
  MFA_TRY(notice, current_notice(d_.config));
  if (notice.text.empty())
    return {};
  const auto it = accepted_notices.find(user);
  if (it != accepted_notices.end() && d_.clock.monotonic_usec() < it->second.until_usec &&
      ct_equal(it->second.sha256_hex, notice.sha256_hex))
    return {};
  // An acceptance of another text, or one too old, is no acceptance: the notice is shown again.
  if (it != accepted_notices.end())
    accepted_notices.erase(it);
  details["notice_sha256"] = notice.sha256_hex;
  MFA_CHECK(audit(AuditKind::kEnrollBegin, user, AuditOutcome::kDenied,
                  AuditReason::kNoticeNotAccepted, caller, std::move(details)));
  return make_error(Errc::kNoticeNotAccepted,
                    "Enrolling needs the enrollment notice accepted first (show it, then "
                    "AcceptEnrollmentNotice with its hash)");
}

void Authenticator::Impl::use_notice_acceptance(const std::string& user) {
  accepted_notices.erase(user);
}

}  // namespace mfa

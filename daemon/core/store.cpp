#include "core/store.hpp"

namespace mfa {

const char* method_name(Method m) {
  switch (m) {
    case Method::kTotp:
      return "totp";
    case Method::kSms:
      return "sms";
    case Method::kBackup:
      return "backup";
  }
  return "unknown";
}

std::optional<Method> parse_method(std::string_view name) {
  if (name == "totp")
    return Method::kTotp;
  if (name == "sms")
    return Method::kSms;
  if (name == "backup")
    return Method::kBackup;
  return std::nullopt;
}

// Stores without sessions (test doubles) refuse them.
namespace {
Error no_sessions() {
  return make_error(Errc::kStorage, "this store keeps no sessions");
}
}  // namespace

Status Store::put_session(const SessionRecord&) {
  return no_sessions();
}
Result<std::optional<SessionRecord>> Store::get_session(std::string_view) {
  return no_sessions();
}
Result<std::vector<SessionRecord>> Store::list_sessions(std::string_view) {
  return no_sessions();
}
Result<bool> Store::delete_session(std::string_view) {
  return no_sessions();
}
Result<bool> Store::note_device(std::string_view, std::string_view, int64_t, std::string_view,
                                std::string_view) {
  return no_sessions();
}
Result<std::vector<DeviceRecord>> Store::list_devices(std::string_view) {
  return no_sessions();
}
Result<bool> Store::delete_device(std::string_view, std::string_view) {
  return no_sessions();
}

Result<ForgetReport> Store::forget_user(const ForgetRequest&) {
  return make_error(Errc::kStorage, "this store cannot forget a person");
}

namespace {
Error no_token_support() {
  return make_error(Errc::kStorage, "this state store does not keep enrollment tokens");
}
}  // namespace

Status Store::put_enrollment_token(std::string_view, const CodeHash&, int64_t, int64_t) {
  return no_token_support();
}
Result<bool> Store::spend_enrollment_token(std::string_view, const CodeHash&, int64_t) {
  return no_token_support();
}

namespace {
Error no_sms_support() {
  return make_error(Errc::kStorage, "this state store does not keep SMS codes");
}
}  // namespace

Result<std::optional<SmsCode>> Store::get_sms_code(std::string_view, std::string_view) {
  return no_sms_support();
}
Status Store::put_sms_code(std::string_view, std::string_view, const SmsCode&) {
  return no_sms_support();
}
Status Store::delete_sms_code(std::string_view, std::string_view) {
  return no_sms_support();
}
Status Store::drop_sms_codes(std::string_view user) {
  for (std::string_view purpose : kSmsPurposes)
    MFA_CHECK(delete_sms_code(user, purpose));
  return {};
}
Status Store::record_sms_send(std::string_view, std::string_view, int64_t, int64_t) {
  return no_sms_support();
}
Result<SmsSendCounts> Store::count_sms_sends(std::string_view, std::string_view, int64_t) {
  return no_sms_support();
}
Result<int> Store::count_other_sms_phones(std::string_view, std::string_view, int64_t) {
  return no_sms_support();
}

namespace {
Error no_report() {
  return make_error(Errc::kStorage,
                    "this state store cannot count its audit trail or check itself");
}
}  // namespace

Result<std::vector<AuditCount>> Store::count_audit(int64_t, const std::vector<std::string>&) {
  return no_report();
}
Result<DegradedTally> Store::tally_degraded(int64_t, bool) {
  return no_report();
}
Result<std::optional<ForeignChange>> Store::last_foreign_change(const std::string&) {
  return std::optional<ForeignChange>();
}
Result<std::string> Store::check_integrity() {
  return no_report();
}

namespace {
Error no_fleet_cache() {
  return make_error(Errc::kStorage, "this state store cannot be fleet mode's cache");
}
}  // namespace

Result<std::vector<CodeHash>> Store::unused_backup_codes(std::string_view) {
  return no_fleet_cache();
}
Status Store::replace_sms_sends(std::string_view, int64_t,
                                const std::vector<std::pair<std::string, int64_t>>&) {
  return no_fleet_cache();
}
Status Store::queue_reconcile(const ReconcileItem&) {
  return no_fleet_cache();
}
Result<std::vector<ReconcileItem>> Store::list_reconcile(size_t) {
  return no_fleet_cache();
}
Status Store::delete_reconcile(int64_t) {
  return no_fleet_cache();
}
Result<std::vector<ReconcileItem>> Store::list_unreplicated(std::string_view, uint64_t, size_t) {
  return no_fleet_cache();
}
Result<uint64_t> Store::get_fleet_highwater(std::string_view) {
  return no_fleet_cache();
}
Status Store::raise_fleet_highwater(std::string_view, uint64_t) {
  return no_fleet_cache();
}
Status Store::delete_fleet_highwater(std::string_view) {
  return no_fleet_cache();
}

}  // namespace mfa

#include "fleet/recorder.hpp"

namespace mfa {

Status FleetRecorder::put_factor(std::string_view user, const FactorRecord& record) {
  Status st = inner_.put_factor(user, record);
  if (st.ok() && recording_)
    changes_.factors_changed = true;
  return st;
}

Status FleetRecorder::delete_factor(std::string_view user, Method method, bool pending) {
  Status st = inner_.delete_factor(user, method, pending);
  if (st.ok() && recording_)
    changes_.factors_changed = true;
  return st;
}

Status FleetRecorder::delete_totp_device(std::string_view user, std::string_view device,
                                         bool pending) {
  Status st = inner_.delete_totp_device(user, device, pending);
  if (st.ok() && recording_)
    changes_.factors_changed = true;
  return st;
}

Status FleetRecorder::delete_user(std::string_view user) {
  Status st = inner_.delete_user(user);
  if (st.ok() && recording_)
    changes_.user_deleted = true;
  return st;
}

// Every named device has its own watermark in the state record (issue 19).
Result<bool> FleetRecorder::advance_totp_watermark(std::string_view user, std::string_view device,
                                                   uint64_t step) {
  auto r = inner_.advance_totp_watermark(user, device, step);
  if (r.ok() && *r && recording_) {
    changes_.watermark_advanced = step;
    changes_.watermark_device = std::string(device);
  }
  return r;
}

Status FleetRecorder::set_totp_watermark(std::string_view user, std::string_view device,
                                         std::optional<uint64_t> step) {
  Status st = inner_.set_totp_watermark(user, device, step);
  if (st.ok() && recording_ && step) {
    changes_.watermark_set = *step;
    changes_.watermark_set_device = std::string(device);
  }
  return st;
}

Result<ForgetReport> FleetRecorder::forget_user(const ForgetRequest& request) {
  auto r = inner_.forget_user(request);
  if (r.ok() && recording_)
    changes_.user_forgotten = true;
  return r;
}

Status FleetRecorder::replace_backup_codes(std::string_view user,
                                           const std::vector<CodeHash>& hashes) {
  Status st = inner_.replace_backup_codes(user, hashes);
  if (st.ok() && recording_)
    changes_.backup_replaced = true;
  return st;
}

Result<bool> FleetRecorder::consume_backup_code(std::string_view user, const CodeHash& hash) {
  auto r = inner_.consume_backup_code(user, hash);
  if (r.ok() && *r && recording_)
    changes_.backup_consumed = hash;
  return r;
}

Status FleetRecorder::delete_backup_codes(std::string_view user) {
  Status st = inner_.delete_backup_codes(user);
  if (st.ok() && recording_)
    changes_.backup_replaced = true;
  return st;
}

Status FleetRecorder::put_limits(std::string_view user, const LimitState& state) {
  Status st = inner_.put_limits(user, state);
  if (st.ok() && recording_)
    changes_.limits_written = true;
  return st;
}

// A fresh code (attempts 0) reaches Redis through FleetSms::gate before its text leaves; a
// stored code with attempts is a wrong try, which Redis must add to the code's shared count.
Status FleetRecorder::put_sms_code(std::string_view user, std::string_view purpose,
                                   const SmsCode& code) {
  Status st = inner_.put_sms_code(user, purpose, code);
  if (st.ok() && recording_ && code.attempts > 0)
    changes_.sms_failed = SmsCodeChange{std::string(purpose), code.hash};
  return st;
}

Status FleetRecorder::use_sms_code(std::string_view user, std::string_view purpose) {
  MFA_TRY(live, inner_.get_sms_code(user, purpose));
  Status st = inner_.use_sms_code(user, purpose);
  if (st.ok() && recording_ && live)
    changes_.sms_used = SmsCodeChange{std::string(purpose), live->hash};
  return st;
}

Status FleetRecorder::drop_sms_codes(std::string_view user) {
  Status st = inner_.drop_sms_codes(user);
  if (st.ok() && recording_)
    changes_.sms_codes_dropped = true;
  return st;
}

}  // namespace mfa

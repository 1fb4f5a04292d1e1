#include "daemon/fleet_recorder.hpp"

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

Status FleetRecorder::delete_user(std::string_view user) {
  Status st = inner_.delete_user(user);
  if (st.ok() && recording_)
    changes_.user_deleted = true;
  return st;
}

Result<bool> FleetRecorder::advance_totp_watermark(std::string_view user, uint64_t step) {
  auto r = inner_.advance_totp_watermark(user, step);
  if (r.ok() && *r && recording_)
    changes_.watermark_advanced = step;
  return r;
}

Status FleetRecorder::set_totp_watermark(std::string_view user, std::optional<uint64_t> step) {
  Status st = inner_.set_totp_watermark(user, step);
  if (st.ok() && recording_ && step)
    changes_.watermark_set = *step;
  return st;
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

}  // namespace mfa

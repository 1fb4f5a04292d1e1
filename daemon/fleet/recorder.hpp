// Fleet mode: a Store in front of the local SQLite store that notes what one synchronous
// Authenticator call consumed or changed, so that FleetCoordinator can make the same change
// atomically in Redis before the reply leaves (the CONFIRM step, docs/fleet.md).
#pragma once

#include <optional>
#include <string>

#include "core/store.hpp"

namespace mfa {

// An SMS code of (user, purpose) that a decision used up or tried (sms.hpp).
struct SmsCodeChange {
  std::string purpose;  // "login", "enroll" or "step-up"
  CodeHash hash{};
};

struct FleetChanges {
  std::optional<uint64_t> watermark_advanced;  // a TOTP step accepted
  std::string watermark_device;                // of this TOTP device (issue 19)
  std::optional<CodeHash> backup_consumed;     // a backup code used
  bool limits_written = false;                 // an attempt was counted
  bool factors_changed = false;
  bool backup_replaced = false;           // new set or removed
  std::optional<uint64_t> watermark_set;  // enrollment confirmed at this step
  std::string watermark_set_device;       // of this TOTP device
  bool user_deleted = false;
  bool user_forgotten = false;              // ForgetUser: nothing of the person may stay in Redis
  std::optional<SmsCodeChange> sms_used;    // the live SMS code was typed right: used up
  std::optional<SmsCodeChange> sms_failed;  // a wrong try at it was counted
  bool sms_codes_dropped = false;           // every pending code died with the phone
  bool enrollment_changed() const {
    return factors_changed || backup_replaced || watermark_set.has_value() || user_deleted ||
           sms_codes_dropped;
  }
};

class FleetRecorder final : public Store {
 public:
  explicit FleetRecorder(Store& inner) : inner_(inner) {}

  void start() {
    changes_ = FleetChanges{};
    recording_ = true;
  }
  FleetChanges stop() {
    recording_ = false;
    return changes_;
  }

  Result<std::vector<FactorRecord>> get_factors(std::string_view user) override {
    return inner_.get_factors(user);
  }
  Status put_factor(std::string_view user, const FactorRecord& record) override;
  Status delete_factor(std::string_view user, Method method, bool pending) override;
  Status delete_totp_device(std::string_view user, std::string_view device, bool pending) override;
  Result<std::vector<std::string>> list_users() override { return inner_.list_users(); }
  Status delete_user(std::string_view user) override;

  Result<std::optional<uint64_t>> get_totp_watermark(std::string_view user,
                                                     std::string_view device) override {
    return inner_.get_totp_watermark(user, device);
  }
  Result<bool> advance_totp_watermark(std::string_view user, std::string_view device,
                                      uint64_t step) override;
  Status set_totp_watermark(std::string_view user, std::string_view device,
                            std::optional<uint64_t> step) override;

  Status replace_backup_codes(std::string_view user, const std::vector<CodeHash>& hashes) override;
  Result<bool> consume_backup_code(std::string_view user, const CodeHash& hash) override;
  Result<int> count_backup_codes(std::string_view user) override {
    return inner_.count_backup_codes(user);
  }
  Status delete_backup_codes(std::string_view user) override;

  Result<LimitState> get_limits(std::string_view user) override { return inner_.get_limits(user); }
  // Enrollment tokens are this host's (docs/rollout.md, "Fleet mode").
  Status put_enrollment_token(std::string_view user, const CodeHash& hash, int64_t created_usec,
                              int64_t expires_usec) override {
    return inner_.put_enrollment_token(user, hash, created_usec, expires_usec);
  }
  Result<bool> spend_enrollment_token(std::string_view user, const CodeHash& hash,
                                      int64_t now_usec) override {
    return inner_.spend_enrollment_token(user, hash, now_usec);
  }
  Status put_limits(std::string_view user, const LimitState& state) override;

  Result<std::optional<SmsCode>> get_sms_code(std::string_view user,
                                              std::string_view purpose) override {
    return inner_.get_sms_code(user, purpose);
  }
  Status put_sms_code(std::string_view user, std::string_view purpose,
                      const SmsCode& code) override;
  Status delete_sms_code(std::string_view user, std::string_view purpose) override {
    return inner_.delete_sms_code(user, purpose);
  }
  Status use_sms_code(std::string_view user, std::string_view purpose) override;
  Status drop_sms_codes(std::string_view user) override;
  Status record_sms_send(std::string_view user, std::string_view phone_key, int64_t time_usec,
                         int64_t forget_before_usec) override {
    return inner_.record_sms_send(user, phone_key, time_usec, forget_before_usec);
  }
  Result<SmsSendCounts> count_sms_sends(std::string_view user, std::string_view phone_key,
                                        int64_t since_usec) override {
    return inner_.count_sms_sends(user, phone_key, since_usec);
  }
  Result<int> count_other_sms_phones(std::string_view user, std::string_view phone_key,
                                     int64_t since_usec) override {
    return inner_.count_other_sms_phones(user, phone_key, since_usec);
  }

  Status append_audit(AuditRecord& record) override { return inner_.append_audit(record); }
  Result<std::vector<AuditRecord>> query_audit(const AuditFilter& filter) override {
    return inner_.query_audit(filter);
  }
  Result<AuditVerification> verify_audit_chain() override { return inner_.verify_audit_chain(); }
  Result<std::vector<AuditCount>> count_audit(int64_t since_usec,
                                              const std::vector<std::string>& kinds) override {
    return inner_.count_audit(since_usec, kinds);
  }
  Result<DegradedTally> tally_degraded(int64_t since_usec, bool current_period) override {
    return inner_.tally_degraded(since_usec, current_period);
  }
  Result<std::optional<ForeignChange>> last_foreign_change(const std::string& user) override {
    return inner_.last_foreign_change(user);
  }
  Result<std::string> check_integrity() override { return inner_.check_integrity(); }
  Status prune_audit(int64_t cutoff_usec) override { return inner_.prune_audit(cutoff_usec); }

  Status put_session(const SessionRecord& session) override { return inner_.put_session(session); }
  Result<std::optional<SessionRecord>> get_session(std::string_view id) override {
    return inner_.get_session(id);
  }
  Result<std::vector<SessionRecord>> list_sessions(std::string_view user) override {
    return inner_.list_sessions(user);
  }
  Result<bool> delete_session(std::string_view id) override { return inner_.delete_session(id); }
  Result<bool> note_device(std::string_view user, std::string_view fingerprint, int64_t now_usec,
                           std::string_view rhost, std::string_view client) override {
    return inner_.note_device(user, fingerprint, now_usec, rhost, client);
  }
  Result<std::vector<DeviceRecord>> list_devices(std::string_view user) override {
    return inner_.list_devices(user);
  }
  Result<bool> delete_device(std::string_view user, std::string_view fingerprint) override {
    return inner_.delete_device(user, fingerprint);
  }
  // The shared records go through delete_user (recorded: Redis deletes them fleet-wide); the
  // rest is this host's.
  Result<ForgetReport> forget_user(const ForgetRequest& request) override;

  // The fleet's own writes to the cache: passed through, never recorded.
  Result<std::vector<CodeHash>> unused_backup_codes(std::string_view user) override {
    return inner_.unused_backup_codes(user);
  }
  Status replace_sms_sends(std::string_view user, int64_t since_usec,
                           const std::vector<std::pair<std::string, int64_t>>& sends) override {
    return inner_.replace_sms_sends(user, since_usec, sends);
  }
  Status queue_reconcile(const ReconcileItem& item) override {
    return inner_.queue_reconcile(item);
  }
  Result<std::vector<ReconcileItem>> list_reconcile(size_t limit) override {
    return inner_.list_reconcile(limit);
  }
  Status delete_reconcile(int64_t id) override { return inner_.delete_reconcile(id); }
  Result<std::vector<ReconcileItem>> list_unreplicated(std::string_view user, uint64_t above,
                                                       size_t limit) override {
    return inner_.list_unreplicated(user, above, limit);
  }
  Result<uint64_t> get_fleet_highwater(std::string_view user) override {
    return inner_.get_fleet_highwater(user);
  }
  Status raise_fleet_highwater(std::string_view user, uint64_t counter) override {
    return inner_.raise_fleet_highwater(user, counter);
  }
  Status delete_fleet_highwater(std::string_view user) override {
    return inner_.delete_fleet_highwater(user);
  }

  Status flush() override { return inner_.flush(); }
  Status commit() override { return inner_.commit(); }
  Status sync() override { return inner_.sync(); }
  bool in_transaction() const override { return inner_.in_transaction(); }

 private:
  Store& inner_;
  bool recording_ = false;
  FleetChanges changes_;
};

}  // namespace mfa

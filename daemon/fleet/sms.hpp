// Fleet mode's SMS (docs/fleet.md, "SMS"): the send limits and the pending codes that every mfad
// of a fleet shares through Redis (sms_keys.hpp). The Authenticator decides against the
// local cache as always; around its decisions:
//  - gate(): before a text leaves, one script checks the user's, the phone's and the fleet's
//    send limits and counts the text (a login or step-up text: unless the user is locked out
//    fleet-wide); then the code's keyed hash is stored, its expiry as TTL. Refused:
//    SmsRateLimited (locked: RateLimited), and the cache is put back as Redis has it;
//  - load_code(): ConfirmSmsEnrollment (and a change carrying a step-up code) reads the pending
//    code into the cache first, so that the code texted by one host can be typed on another;
//  - confirm(): a code typed right is used up exactly once fleet-wide (refused: the success
//    becomes BadCode); a wrong try is added to the code's shared count of tries;
//  - discard(): a code whose text did not go out dies everywhere.
// Degraded (Redis away): login texts go out on local limits, each decision is audited and queued
// in fleet_reconcile; FleetCoordinator replays the queue (sends added to the shared counters,
// used codes deleted) before it leaves degraded mode. Enrollment and step-up texts wait for Redis.
#pragma once

#include <functional>
#include <memory>
#include <string>

#include "core/audit.hpp"
#include "core/clock.hpp"
#include "core/config.hpp"
#include "fleet/coordinator.hpp"
#include "fleet/recorder.hpp"
#include "fleet/refusal.hpp"
#include "core/sms_codes.hpp"
#include "core/store.hpp"

namespace mfa {

class FleetSms {
 public:
  struct Deps {
    FleetCoordinator& fleet;
    Store& cache;  // the local store: Redis's cache
    AuditLog& audit;
    const Config& config;
    const Clock& clock;
  };
  enum class Gate {
    kSend,          // counted and stored fleet-wide: send it
    kSendDegraded,  // Redis is away: a login text goes out on local limits (audited, queued)
    kRateLimited,   // a shared limit says no (audited as sms.failed)
    kLocked,        // a login text of a user locked out fleet-wide (audited as sms.failed)
    kUnavailable,   // Redis is away and this text is for an enrollment: not sent
  };
  struct GateResult {
    Gate gate = Gate::kUnavailable;
    SmsSendLimit limit = SmsSendLimit::kNone;  // kRateLimited: which one
    int64_t locked_usec = 0;                   // kLocked: how long the lockout lasts still
  };
  struct ConfirmResult {
    // kConsumedElsewhere: the code was no longer live fleet-wide
    FleetRefusal refused = FleetRefusal::kNone;
    bool unavailable = false;
  };
  // The cache was written outside a D-Bus call: a commit must be scheduled.
  using WriteCallback = std::function<void()>;

  FleetSms(Deps deps, WriteCallback on_write);
  ~FleetSms();
  FleetSms(const FleetSms&) = delete;
  FleetSms& operator=(const FleetSms&) = delete;

  // done never runs later than the Redis timeout (twice: counters, then the code).
  void gate(const SmsMessage& message, std::function<void(GateResult)> done);
  // The text of message did not go out (provider failure, or refused after the decision): its
  // code dies here and fleet-wide.
  void discard(const SmsMessage& message);
  // done(false): Redis is away (degraded now).
  void load_code(const std::string& user, const std::string& purpose,
                 std::function<void(bool online)> done);
  // What a decision did to SMS codes (FleetChanges::sms_used, sms_failed), made fleet-wide. When
  // Redis fails meanwhile, the change is queued for reconciliation.
  void confirm(const std::string& user, const FleetChanges& changes,
               std::function<void(ConfirmResult)> done);

 private:
  struct Text;  // what the fleet needs of a text: never the number or the code
  using TextPtr = std::shared_ptr<const Text>;
  static TextPtr text_of(const SmsMessage& message);

  void store_code(TextPtr text, std::function<void(GateResult)> done);
  void refused(TextPtr text, const std::string& reason, const StringMap& details, GateResult result,
               std::function<void(GateResult)> done);
  void locked(TextPtr text, const LimitState& shared, std::function<void(GateResult)> done);
  void send_degraded(const Text& text, bool counted, const std::string& why);
  void unavailable(TextPtr text, const std::string& why, bool counted,
                   std::function<void(GateResult)> done);
  void write_code(const std::string& user, const std::string& purpose,
                  const std::optional<SmsCode>& code);
  void forget_local_code(const std::string& user, const std::string& purpose, const CodeHash& hash);
  void queue(const ReconcileItem& item);
  void wrote();

  Deps d_;
  WriteCallback on_write_;
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
};

}  // namespace mfa

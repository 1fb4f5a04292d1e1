// The D-Bus face of mfad: org.mfad1.Manager at /org/mfad1 (daemon/bus/org.mfad1.Manager.xml).
// Each handler reads and bounds its arguments, opens a PendingCall (the caller, from the bus's own
// credentials) and hands a decision to run(): a function of the call that asks the Authenticator
// (which authorizes and decides) and builds the reply (bus/reply.hpp). run() takes the decision
// to its answer, through what it waits for: polkit when it was refused for want of the admin tier,
// Redis in fleet mode (before: the user's shared state; after: the confirm), the SMS provider for a
// text, the disk for what it wrote. Each wait resumes through PendingCall::then(). The logic lives
// in the Authenticator, as homed-manager-bus.c sits in front of homed-manager.c.
//
// The files: manager.cpp (set-up, shutdown, timers, the way to an answer), manager_calls.cpp (the
// handlers), manager_vtable.cpp (the vtable), sms_calls.cpp (texts), fleet_calls.cpp (fleet mode's
// prefetch and confirm), fleet_session_calls.cpp (fleet mode's sessions).
#pragma once

#include <systemd/sd-bus.h>
#include <systemd/sd-event.h>

#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <unordered_map>
#include <string_view>
#include <vector>

#include "bus/call_throttle.hpp"
#include "bus/held_replies.hpp"
#include "bus/caller.hpp"
#include "bus/fleet_begin_reads.hpp"
#include "bus/pending_call.hpp"
#include "bus/polkit.hpp"
#include "bus/reply.hpp"
#include "common/handles.hpp"
#include "common/result.hpp"
#include "core/authenticator.hpp"
#include "core/config.hpp"
#include "core/sessions.hpp"
#include "core/sms_codes.hpp"
#include "core/store.hpp"
#include "sms/sender.hpp"
#include "storage/group_commit.hpp"

namespace mfa {

class FleetCoordinator;
class FleetRecorder;
class FleetSessions;
class FleetSms;
struct FleetChanges;
struct FleetConfirmResult;
enum class FleetCallKind;

// Emits org.mfad1.Manager.SecurityEvent for the Authenticator.
class SecurityEventEmitter final : public EventSink {
 public:
  explicit SecurityEventEmitter(sd_bus* bus) : bus_(bus) {}
  void security_event(const std::string& user, const std::string& kind,
                      const StringMap& details) override;

 private:
  sd_bus* bus_;
};

class ManagerBus {
 public:
  // Registers the object, the peer-tracking match and the challenge-expiry timer. The caller then
  // requests the bus name.
  static Result<std::unique_ptr<ManagerBus>> create(sd_event* event, sd_bus* bus,
                                                    Authenticator& authenticator, Store& store,
                                                    const Config& config);
  ~ManagerBus();
  ManagerBus(const ManagerBus&) = delete;
  ManagerBus& operator=(const ManagerBus&) = delete;

  // Shutdown: refuse further calls, answer those waiting for polkit (NoServer) and the SMS
  // provider (the sends are cancelled); once every call waiting on Redis is answered (Redis's
  // answer within [Redis] Timeout, else NoServer), commit, send every pending reply and run
  // stopped.
  void stop(std::function<void()> stopped);
  GroupCommit& group_commit() { return *commit_; }
  // Session methods go to registry (until set: NotSupported).
  void set_sessions(SessionRegistry* registry) { sessions_ = registry; }

  // Fleet mode (fleet_calls.cpp): calls about a user prefetch and confirm through fleet.
  void set_fleet(FleetCoordinator* fleet, FleetRecorder* recorder);
  // Fleet mode: SMS send limits and codes shared through Redis (fleet/sms.hpp).
  void set_fleet_sms(FleetSms* sms) { fleet_sms_ = sms; }
  bool degraded() const;
  void emit_degraded_changed();
  void schedule_commit() { after_write(); }
  // Fleet mode's sessions (fleet_session_calls.cpp): OpenSession, ListSessions and
  // TerminateSession are decided by FleetSessions, through Redis.
  void set_fleet_sessions(FleetSessions* sessions) { fleet_sessions_ = sessions; }

  // The PAM-side methods' gate, run before their handlers: > 0 when m was refused (replied to),
  // 0 when its sender is root. See main.cpp's sd_bus_set_trusted.
  int refuse_unless_root(sd_bus_message* m);

  // The open methods' gate (manager_admission.cpp, docs/security-model.md "Floods"): 0 when m
  // comes from root and its handler runs now; > 0 when m was refused (over its caller's rate
  // limit, or the queue is full: LimitExceeded) or parked: the handler of a caller that is not
  // root runs later, from a source below the bus's, so that every call of root's that the bus
  // holds is taken first.
  using Handler = int (ManagerBus::*)(sd_bus_message*);
  int admit_open_call(sd_bus_message* m, Handler handler);
  // Runs handler on m as sd-bus runs a vtable handler: nothing thrown, the errors in ret_error
  // or the result (manager_vtable.cpp).
  int handle(sd_bus_message* m, Handler handler, sd_bus_error* ret_error);
  // The most calls parked at once.
  static constexpr size_t kMaxParkedCalls = 256;
  // Before either gate: > 0 when m's sender is not known yet and m waits for its credentials
  // (caller_lookup.cpp); 0 when it is known (or too many lookups are under way: then the gates
  // ask synchronously).
  int identify_first(sd_bus_message* m, Handler handler, bool root_only);
  // The gate and the handler, for a call whose sender just became known.
  int dispatch_identified(sd_bus_message* m, Handler handler, bool root_only,
                          sd_bus_error* ret_error);
  // Senders whose credentials are being asked at once, and calls waiting for them per sender.
  static constexpr size_t kMaxLookups = 1024;
  static constexpr size_t kMaxCallsPerLookup = 64;

  // The vtable's handlers (manager_calls.cpp; manager_vtable.cpp's trampolines call these).
  int begin_authentication(sd_bus_message* m);
  int send_sms_code(sd_bus_message* m);
  int send_step_up_code(sd_bus_message* m);
  int verify(sd_bus_message* m);
  int end_authentication(sd_bus_message* m);
  int open_session(sd_bus_message* m);
  int close_session(sd_bus_message* m);
  int check_fresh_session(sd_bus_message* m);  // fresh_calls.cpp
  int get_user(sd_bus_message* m);
  int begin_totp_enrollment(sd_bus_message* m);
  int confirm_totp_enrollment(sd_bus_message* m);
  int begin_sms_enrollment(sd_bus_message* m);
  int confirm_sms_enrollment(sd_bus_message* m);
  int generate_backup_codes(sd_bus_message* m);
  int disable_method(sd_bus_message* m);
  int list_sessions(sd_bus_message* m);
  int terminate_session(sd_bus_message* m);
  int list_users(sd_bus_message* m);
  int reset_user(sd_bus_message* m);
  int unlock(sd_bus_message* m);
  int list_audit_events(sd_bus_message* m);
  int verify_audit_trail(sd_bus_message* m);
  // rollout_calls.cpp
  int import_totp(sd_bus_message* m);
  int get_report(sd_bus_message* m);
  int check_health(sd_bus_message* m);
  // Rollout (login_enrollment_calls.cpp).
  int get_login_enrollment(sd_bus_message* m);
  int begin_login_enrollment(sd_bus_message* m);
  int confirm_login_enrollment(sd_bus_message* m);
  int skip_enrollment(sd_bus_message* m);
  int create_enrollment_token(sd_bus_message* m);
  // Data rights (data_rights_calls.cpp).
  int export_user(sd_bus_message* m);
  int forget_user(sd_bus_message* m);
  int list_devices(sd_bus_message* m);
  int forget_device(sd_bus_message* m);
  int get_enrollment_notice(sd_bus_message* m);
  int accept_enrollment_notice(sd_bus_message* m);

 private:
  // A call's decision: asks the Authenticator and builds the reply. It may run more than once for
  // one call (again with polkit's answer), each time from the call's own state alone.
  using Decide = std::function<Outcome(PendingCall& call)>;
  // Takes a call back to the start of its way to a decision (after polkit answered).
  using Restart = std::function<void(const CallPtr& call)>;

  // Fleet mode: the user whose shared state a call reads and changes (fleet_calls.cpp).
  struct FleetScope {
    std::string user;
    FleetCallKind kind;
    const char* sms_purpose = nullptr;  // the pending SMS code of this purpose is read too
    bool fresh = false;  // the cache already holds what BeginAuthentication read: no prefetch
  };

  ManagerBus(sd_event* event, sd_bus* bus, Authenticator& authenticator, Store& store,
             const Config& config);
  static const sd_bus_vtable* vtable();
  static int on_name_owner_changed(sd_bus_message* m, void* userdata, sd_bus_error* ret_error);
  static int on_expiry_timer(sd_event_source* s, uint64_t usec, void* userdata);
  static int on_drain_timer(sd_event_source* s, uint64_t usec, void* userdata);
  static int on_parked(sd_event_source* s, void* userdata);
  static int on_denial_timer(sd_event_source* s, uint64_t usec, void* userdata);
  Status add_admission_sources();
  // Refuses m (LimitExceeded with message), audited as its caller's.
  int refuse_limited(sd_bus_message* m, const Caller& caller, const char* message);
  void answer_parked(const char* name, const char* message);
  // The timer that writes the counts of repeated denials, armed while there are some.
  void arm_denial_timer();
  void arm_expiry_timer(uint64_t at_usec);
  void after_write();
  void after_step();
  void finish_stop();

  // --- The way from a handler to the answer (manager.cpp). ---
  // The call of m, once its caller is known; nullptr when m was answered already (the caller
  // cannot be identified, mfad is shutting down, bad: an argument was refused).
  CallPtr open_call(sd_bus_message* m, const std::optional<Error>& bad);
  std::optional<FleetScope> fleet_scope(const std::string& user, FleetCallKind kind,
                                        const char* sms_purpose = nullptr) const;
  // Decides call (after scope's prefetch in fleet mode) and answers it. Returns 1 for sd-bus.
  int run(const CallPtr& call, std::optional<FleetScope> scope, Decide decide);
  // The calls that name a user (manager_calls.cpp): read and bound the user name (and, with
  // code_name, then a code), open the call and run decide in the user's fleet scope of kind.
  using UserDecide = std::function<Outcome(PendingCall& call, const std::string& user)>;
  using UserCodeDecide =
      std::function<Outcome(PendingCall& call, const std::string& user, std::string_view code)>;
  int user_call(sd_bus_message* m, FleetCallKind kind, UserDecide decide);
  // The rollout calls on a challenge (and, with second, one more string read as a secret of at
  // most second_limit bytes), run in the fleet scope of the challenge's user.
  using RolloutDecide =
      std::function<Outcome(PendingCall& call, const std::string& challenge, std::string_view arg)>;
  int rollout_call(sd_bus_message* m, const char* second, size_t second_limit, FleetCallKind kind,
                   RolloutDecide decide);
  int user_code_call(sd_bus_message* m, const char* code_name, FleetCallKind kind,
                     const char* sms_purpose, UserCodeDecide decide);
  // Answers call NotSupported and returns false while no session registry is set.
  bool sessions_supported(const CallPtr& call);
  void proceed(const CallPtr& call, std::optional<FleetScope> scope, Decide decide);
  // A decision is in: polkit is asked first when it was refused for want of the admin tier.
  void decided(const CallPtr& call, Outcome outcome, Restart restart);
  bool ask_polkit(const CallPtr& call, const Outcome& outcome, Restart restart);
  // Sends the outcome's reply, after the commit when the store holds uncommitted writes, or
  // sends its text.
  void answer(const CallPtr& call, Outcome outcome);
  void answer_error(const CallPtr& call, const Error& error);
  // The reply leaves once the writes made so far are on disk; a success or a counted failure
  // that could not be saved becomes StorageFailure.
  void answer_durable(const CallPtr& call, BusMessagePtr reply, Durability durability);

  // --- SendSmsCode and BeginSmsEnrollment (sms_calls.cpp): answered when the provider took
  // the text (or failed), while the loop goes on serving every other call.
  void send_text(const CallPtr& call, SmsMessage message);
  void deliver_text(const CallPtr& call, std::shared_ptr<SmsMessage> text);

  // --- Fleet mode (fleet_calls.cpp, fleet_session_calls.cpp). ---
  void fleet_proceed(const CallPtr& call, FleetScope scope, Decide decide);
  void fleet_decide(const CallPtr& call, const FleetScope& scope, const Decide& decide,
                    bool online);
  // Makes the decision fleet-wide, then answers (or sends the text it decided).
  void fleet_confirm(const CallPtr& call, const FleetScope& scope, const FleetChanges& changes,
                     std::shared_ptr<Outcome> outcome);
  void answer_confirmed(const CallPtr& call, const FleetScope& scope, Outcome outcome,
                        const FleetConfirmResult& res);
  void fleet_open_session(const CallPtr& call, const std::string& user, const StringMap& context);
  void fleet_list_sessions(const CallPtr& call, const std::string& user);
  void fleet_terminate_session(const CallPtr& call, const std::string& session_id);
  uint64_t now_usec() const;  // CLOCK_MONOTONIC

  // Declared first, destroyed last: whatever holds a call (the commit queue, a send, a question
  // to polkit) is destroyed before it.
  CallRegistry calls_;
  sd_event* event_;
  sd_bus* bus_;
  Authenticator& auth_;
  Store& store_;
  const Config& config_;
  std::unique_ptr<GroupCommit> commit_;
  std::unique_ptr<SmsSender> sms_;
  std::unique_ptr<PolkitAuthority> polkit_;
  CallerCache callers_;
  BusSlotPtr object_slot_;
  BusSlotPtr match_slot_;
  EventSourcePtr expiry_timer_;
  bool stopping_ = false;
  EventSourcePtr drain_timer_;
  std::function<void()> on_stopped_;
  SessionRegistry* sessions_ = nullptr;

  FleetCoordinator* fleet_ = nullptr;
  FleetRecorder* recorder_ = nullptr;
  FleetSessions* fleet_sessions_ = nullptr;
  FleetSms* fleet_sms_ = nullptr;
  FleetBeginReads begin_reads_;

  // Unprivileged calls (manager_admission.cpp).
  struct ParkedCall {
    BusMessagePtr message;  // a reference of its own
    Handler handler;
  };
  // Calls whose sender's credentials are being asked (caller_lookup.cpp).
  struct Lookup {
    struct Waiting {
      BusMessagePtr message;  // a reference of its own
      Handler handler;
      bool root_only;
    };
    ManagerBus* self = nullptr;
    std::string sender;
    BusSlotPtr slot;  // the GetConnectionCredentials call; dropping it cancels the callback
    std::vector<Waiting> calls;
  };
  static int on_credentials(sd_bus_message* reply, void* userdata, sd_bus_error* ret_error);
  void answer_lookups(const char* name, const char* message);
  std::unordered_map<std::string, std::unique_ptr<Lookup>> lookups_;
  CallThrottle throttle_;
  HeldReplies held_refusals_;  // LimitExceeded, sent late
  std::deque<ParkedCall> parked_;
  EventSourcePtr parked_source_;
  EventSourcePtr denial_timer_;
};

}  // namespace mfa

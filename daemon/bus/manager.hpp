// The D-Bus face of mfad: org.mfad1.Manager at /org/mfad1 (daemon/bus/org.mfad1.Manager.xml).
// Each handler reads and bounds its arguments, identifies the caller from the bus's own
// credentials, hands over to the Authenticator (which authorizes and decides) and replies;
// replies of calls that wrote to the store go through GroupCommit. The logic lives in
// authenticator.cpp, as homed-manager-bus.c sits in front of homed-manager.c.
#pragma once

#include <systemd/sd-bus.h>
#include <systemd/sd-event.h>

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>

#include "common/handles.hpp"
#include "common/result.hpp"
#include "core/authenticator.hpp"
#include "bus/caller.hpp"
#include "core/config.hpp"
#include "storage/group_commit.hpp"
#include "bus/polkit.hpp"
#include "core/sessions.hpp"
#include "core/sms_codes.hpp"
#include "sms/sender.hpp"
#include "core/store.hpp"

namespace mfa {

class FleetCoordinator;
class FleetRecorder;
class FleetSessions;
class FleetSms;
struct FleetChanges;
struct FleetConfirmResult;
enum class FleetCallKind;

// A call or reply kept by the closures of a deferred answer (std::function copies them).
using SharedMessage = std::shared_ptr<sd_bus_message>;
// Takes a reference of its own on m.
SharedMessage share_message(sd_bus_message* m);
// Takes over m's reference.
SharedMessage share_message(BusMessagePtr m);

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

  // Shutdown: refuse further calls; once every call waiting on Redis is answered (Redis's
  // answer within [Redis] Timeout, else NoServer), commit, send every pending reply and run
  // stopped.
  void stop(std::function<void()> stopped);
  GroupCommit& group_commit() { return *commit_; }
  // Session methods go to registry (until set: NotSupported).
  void set_sessions(SessionRegistry* registry) { sessions_ = registry; }

  // Fleet mode (fleet_bus.cpp): calls about a user prefetch and confirm through fleet.
  void set_fleet(FleetCoordinator* fleet, FleetRecorder* recorder);
  // Fleet mode: SMS send limits and codes shared through Redis (fleet_sms.hpp).
  void set_fleet_sms(FleetSms* sms) { fleet_sms_ = sms; }
  bool degraded() const;
  void emit_degraded_changed();
  void schedule_commit() { after_write(); }
  // Fleet mode's sessions (fleet_sessions_bus.cpp): OpenSession, ListSessions and
  // TerminateSession become deferred replies through Redis.
  void set_fleet_sessions(FleetSessions* sessions) { fleet_sessions_ = sessions; }

  // The PAM-side methods' gate, run before their handlers: > 0 when m was refused (replied to),
  // 0 when its sender is root. See main.cpp's sd_bus_set_trusted.
  int refuse_unless_root(sd_bus_message* m);

  // The vtable's handlers (static trampolines in manager_bus.cpp call these).
  int begin_authentication(sd_bus_message* m);
  int send_sms_code(sd_bus_message* m);
  int verify(sd_bus_message* m);
  int end_authentication(sd_bus_message* m);
  int open_session(sd_bus_message* m);
  int close_session(sd_bus_message* m);
  int session_id_call(sd_bus_message* m,
                      Status (SessionRegistry::*action)(const Caller&, std::string_view));
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

 private:
  ManagerBus(sd_event* event, sd_bus* bus, Authenticator& authenticator, Store& store,
             const Config& config)
      : event_(event), bus_(bus), auth_(authenticator), store_(store), config_(config) {}

  static int on_name_owner_changed(sd_bus_message* m, void* userdata, sd_bus_error* ret_error);
  static int on_expiry_timer(sd_event_source* s, uint64_t usec, void* userdata);
  void arm_expiry_timer(uint64_t at_usec);
  void after_write();
  // SendSmsCode and BeginSmsEnrollment: deferred replies, answered when the provider took the
  // text (or failed), while the loop goes on serving every other call.
  int send_text(sd_bus_message* call, SmsMessage message);
  struct PendingText;
  void deliver_text(std::shared_ptr<PendingText> pending);

  // Sends reply now, or after the commit when the store holds uncommitted writes.
  int finish(sd_bus_message* call, BusMessagePtr reply, bool success);
  int finish_unsynced(sd_bus_message* call, BusMessagePtr reply);
  int reply_error(sd_bus_message* call, const Error& error);
  int reply_empty(sd_bus_message* call);
  int reply_status(sd_bus_message* call, const Status& status);
  // A call refused for want of the admin tier while polkit may still be asked: ask it (once),
  // then run the call again from its vtable entry with polkit's answer in polkit_grant_.
  int ask_polkit(sd_bus_message* call);
  void polkit_answered(sd_bus_message* call, bool granted);

  // Fleet mode: runs handler for user once fleet_ has prefetched (fleet_bus.cpp); with
  // sms_purpose, once the pending SMS code of that purpose is in the cache too; fresh: the cache
  // already holds what BeginAuthentication read for this challenge, no prefetch.
  int fleet_defer(sd_bus_message* m, const std::string& user, FleetCallKind kind,
                  int (ManagerBus::*handler)(sd_bus_message*), const char* sms_purpose = nullptr,
                  bool fresh = false);
  // Fleet mode's session calls, after their arguments were read and the caller identified.
  int fleet_open_session(sd_bus_message* m, const Caller& caller, const std::string& user,
                         const StringMap& context);
  int fleet_list_sessions(sd_bus_message* m, const Caller& caller, const std::string& user);
  int fleet_terminate_session(sd_bus_message* m, const Caller& caller,
                              const std::string& session_id);
  // Makes a deferred call's decision fleet-wide, then replies (or sends its text).
  void fleet_confirm(SharedMessage call, uint64_t id, const std::string& user, FleetCallKind kind,
                     const FleetChanges& changes, bool success, bool failure,
                     std::optional<Method> verified, SharedMessage reply,
                     std::shared_ptr<SmsMessage> text, const std::string& caller);
  void answer_confirmed(sd_bus_message* call, sd_bus_message* reply, bool success, bool failure,
                        const std::string& user, FleetCallKind kind, const std::string& who,
                        const FleetConfirmResult& res, std::shared_ptr<SmsMessage> text);
  // A deferred fleet call was answered; the last one during shutdown finishes it.
  void fleet_call_done(uint64_t id);
  static int on_drain_timer(sd_event_source* s, uint64_t usec, void* userdata);
  void finish_stop();

  FleetCoordinator* fleet_ = nullptr;
  FleetRecorder* recorder_ = nullptr;
  FleetSessions* fleet_sessions_ = nullptr;
  bool fleet_pass_ = false;               // the handler runs after its prefetch
  bool fleet_online_ = false;             // ... and that prefetch read Redis
  std::optional<Method> fleet_verified_;  // the factor Verify accepted, for the confirm
  bool capturing_ = false;                // finish() keeps the reply in captured_
  BusMessagePtr captured_;
  bool captured_success_ = false;
  std::optional<SmsMessage> captured_text_;  // a text decided by a deferred call, not sent yet
  FleetSms* fleet_sms_ = nullptr;
  // Deferred fleet calls not answered yet: the shutdown answers what Redis did not in time.
  std::map<uint64_t, SharedMessage> fleet_calls_;
  uint64_t next_fleet_call_ = 1;
  EventSourcePtr drain_timer_;
  std::function<void()> on_stopped_;

  sd_event* event_;
  sd_bus* bus_;
  Authenticator& auth_;
  Store& store_;
  const Config& config_;
  std::unique_ptr<GroupCommit> commit_;
  std::unique_ptr<SmsSender> sms_;
  CallerCache callers_;
  BusSlotPtr object_slot_;
  BusSlotPtr match_slot_;
  EventSourcePtr expiry_timer_;
  bool stopping_ = false;
  SessionRegistry* sessions_ = nullptr;
  std::unique_ptr<PolkitAuthority> polkit_;
  // What MFA_CALLER puts in Caller::polkit: kAskable, or polkit's answer while a call runs again.
  PolkitGrant polkit_grant_ = PolkitGrant::kAskable;
};

}  // namespace mfa

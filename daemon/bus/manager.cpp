#include "bus/manager.hpp"

#include <cerrno>
#include <cstring>
#include <exception>
#include <new>
#include <string_view>
#include <vector>

#include "common/dbus_names.hpp"
#include "bus/args.hpp"
#include "bus/caller.hpp"
#include "core/log.hpp"
#include "bus/sessions.hpp"
#include "fleet/coordinator.hpp"
#include "fleet/sms.hpp"
#include "core/rate_limiter.hpp"
#include "core/sms_delivery.hpp"

namespace mfa {

using bus::kMaxChallengeLength;
using bus::kMaxMethodNameLength;
using bus::kMaxPhoneLength;
using bus::kMaxSessionIdLength;
using bus::read_secret;
using bus::read_string;
using bus::read_string_map;

namespace {

BusMessagePtr new_return(sd_bus_message* call, int* ret_r) {
  sd_bus_message* reply = nullptr;
  *ret_r = sd_bus_message_new_method_return(call, &reply);
  return BusMessagePtr(reply);
}

int reply_refusal(sd_bus_message* call, const BusRefusal& refusal) {
  return sd_bus_reply_method_errorf(call, refusal.name, "%s", refusal.message.c_str());
}

}  // namespace

// ---------------------------------------------------------------------------------------------

void SecurityEventEmitter::security_event(const std::string& user, const std::string& kind,
                                          const StringMap& details) {
  sd_bus_message* raw = nullptr;
  int r =
      sd_bus_message_new_signal(bus_, &raw, dbus::kObjectPath, dbus::kInterface, "SecurityEvent");
  BusMessagePtr m(raw);
  if (r >= 0)
    r = sd_bus_message_append(m.get(), "ss", user.c_str(), kind.c_str());
  if (r >= 0)
    r = sd_bus_message_open_container(m.get(), 'a', "{ss}");
  for (auto it = details.begin(); r >= 0 && it != details.end(); ++it) {
    r = sd_bus_message_append(m.get(), "{ss}", it->first.c_str(), it->second.c_str());
  }
  if (r >= 0)
    r = sd_bus_message_close_container(m.get());
  if (r >= 0)
    r = sd_bus_send(bus_, m.get(), nullptr);
  if (r < 0)
    MFA_LOG_WARNING("cannot emit SecurityEvent %s: %s", kind.c_str(), strerror(-r));
}

// ---------------------------------------------------------------------------------------------

int ManagerBus::finish(sd_bus_message* call, BusMessagePtr reply, bool success) {
  if (capturing_) {
    captured_ = std::move(reply);
    captured_success_ = success;
    return 1;
  }
  if (store_.in_transaction()) {
    commit_->queue(call, std::move(reply), success);
    return 1;
  }
  int r = sd_bus_send(bus_, reply.get(), nullptr);
  return r < 0 ? r : 1;
}

// For replies that report no decision a crash could undo (a new challenge): its only write, the
// audit row, is in the journal already and commits with the next batch. Waiting for that fsync
// would put a disk flush in front of every login's first round trip.
int ManagerBus::finish_unsynced(sd_bus_message* /*call*/, BusMessagePtr reply) {
  after_write();
  int r = sd_bus_send(bus_, reply.get(), nullptr);
  return r < 0 ? r : 1;
}

int ManagerBus::refuse_unless_root(sd_bus_message* m) {
  Caller caller;
  int r = 0;
  if (auto denied = callers_.identify(m, &caller); denied) {
    r = reply_refusal(m, *denied);
  } else if (caller.uid != 0) {
    r = sd_bus_reply_method_errorf(m, SD_BUS_ERROR_ACCESS_DENIED,
                                   "Access denied: %s is for root (the PAM module) only.",
                                   sd_bus_message_get_member(m));
  } else {
    return 0;
  }
  return r < 0 ? r : 1;  // refused, whether or not the error reply could be sent
}

int ManagerBus::reply_error(sd_bus_message* call, const Error& error) {
  if (error.code == Errc::kAdminCheckPending)
    return ask_polkit(call);
  sd_bus_message* raw = nullptr;
  int r = sd_bus_message_new_method_errorf(call, &raw, errc_dbus_name(error.code), "%s",
                                           error.message.c_str());
  if (r < 0)
    return r;
  return finish(call, BusMessagePtr(raw), false);
}

int ManagerBus::reply_empty(sd_bus_message* call) {
  int r = 0;
  BusMessagePtr reply = new_return(call, &r);
  if (r < 0)
    return r;
  return finish(call, std::move(reply), true);
}

int ManagerBus::reply_status(sd_bus_message* call, const Status& status) {
  if (!status.ok())
    return reply_error(call, status.error());
  return reply_empty(call);
}

void ManagerBus::after_write() {
  if (store_.in_transaction())
    commit_->schedule();
}

// Each handler: read and bound the arguments, identify the caller, ask the logic, reply.
#define MFA_READ(expr) \
  do {                 \
    int r_ = (expr);   \
    if (r_ < 0)        \
      return r_;       \
  } while (0)

#define MFA_CALLER(m, caller)                                                                 \
  Caller caller;                                                                              \
  if (auto denied_ = callers_.identify((m), &caller); denied_) {                              \
    return reply_refusal((m), *denied_);                                                      \
  }                                                                                           \
  caller.polkit = polkit_grant_;                                                              \
  if (stopping_) {                                                                            \
    return sd_bus_reply_method_errorf((m), SD_BUS_ERROR_NO_SERVER, "mfad is shutting down."); \
  }

#define MFA_BAD_INPUT(m, input_error) \
  if (input_error)                    \
  return reply_error((m), *input_error)

// Fleet mode: the handler runs again once the user's shared state is in the cache.
#define MFA_FLEET(m, user, kind, handler) \
  if (fleet_ && !fleet_pass_)             \
  return fleet_defer((m), (user), FleetCallKind::kind, &ManagerBus::handler)
// ... and once the pending SMS code of purpose is in the cache too.
#define MFA_FLEET_SMS(m, user, kind, handler, purpose) \
  if (fleet_ && !fleet_pass_)                          \
  return fleet_defer((m), (user), FleetCallKind::kind, &ManagerBus::handler, (purpose))

int ManagerBus::begin_authentication(sd_bus_message* m) {
  std::optional<Error> bad;
  std::string user;
  StringMap context;
  MFA_READ(read_string(m, "user name", dbus::kMaxUserNameLength, &user, &bad));
  MFA_READ(read_string_map(m, &context, &bad));
  MFA_CALLER(m, caller);
  MFA_BAD_INPUT(m, bad);
  if (fleet_ && !fleet_pass_) {
    // From the read cache when it is current and the answer offers a factor: the Verify that
    // follows is checked against Redis by its confirm (fleet_read_cache.hpp).
    const bool fresh = fleet_->cache_current(user) && auth_.offers_factor(user, context);
    return fleet_defer(m, user, FleetCallKind::kLogin, &ManagerBus::begin_authentication, nullptr,
                       fresh);
  }
  auto result = auth_.begin_authentication(caller, user, context);
  if (!result.ok())
    return reply_error(m, result.error());
  // Fleet mode: the shared state just read serves this challenge's first Verify.
  if (fleet_online_)
    auth_.note_shared_state(caller, result->challenge);
  // Challenges expire: make sure the timer fires by then.
  arm_expiry_timer(0);
  int r = 0;
  BusMessagePtr reply = new_return(m, &r);
  if (r >= 0)
    r = sd_bus_message_append(reply.get(), "s", result->challenge.c_str());
  if (r >= 0)
    r = sd_bus_message_open_container(reply.get(), 'a', "s");
  for (size_t i = 0; r >= 0 && i < result->methods.size(); ++i) {
    r = sd_bus_message_append(reply.get(), "s", result->methods[i].c_str());
  }
  if (r >= 0)
    r = sd_bus_message_close_container(reply.get());
  if (r < 0)
    return r;
  return finish_unsynced(m, std::move(reply));
}

int ManagerBus::send_sms_code(sd_bus_message* m) {
  std::optional<Error> bad;
  std::string challenge;
  MFA_READ(read_string(m, "challenge", kMaxChallengeLength, &challenge, &bad));
  MFA_CALLER(m, caller);
  MFA_BAD_INPUT(m, bad);
  // Fleet mode: the challenge's prefetch brought the user's state; the shared send limits are
  // checked before the text leaves (send_text).
  const std::string user = fleet_ ? auth_.challenge_user(caller, challenge) : std::string();
  auto result = auth_.send_sms_code(caller, challenge);
  if (!result.ok()) {
    if (fleet_ && fleet_->degraded() && !user.empty())
      fleet_->note_degraded(user, "SendSmsCode", FleetChanges{}, false, false, caller.describe());
    return reply_error(m, result.error());
  }
  return send_text(m, std::move(result).value());
}

struct ManagerBus::PendingText {
  BusMessagePtr call;
  SmsMessage message;
};

int ManagerBus::send_text(sd_bus_message* call, SmsMessage message) {
  // Fleet mode, inside a deferred call: the text leaves once Redis confirmed the decision
  // (fleet_bus.cpp).
  if (capturing_) {
    captured_text_ = std::move(message);
    return 1;
  }
  // The code's hash and the counted send are written now; they commit while the text travels.
  after_write();
  auto pending = std::make_shared<PendingText>();
  pending->call.reset(sd_bus_message_ref(call));
  pending->message = std::move(message);
  if (!fleet_sms_) {
    deliver_text(std::move(pending));
    return 1;
  }
  // Fleet mode: the shared send limits say yes, and the code is stored fleet-wide, first.
  fleet_sms_->gate(pending->message, [this, pending](FleetSms::GateResult gate) {
    try {
      sd_bus_message* m = pending->call.get();
      switch (gate.gate) {
        case FleetSms::Gate::kSend:
        case FleetSms::Gate::kSendDegraded:
          deliver_text(pending);
          break;
        case FleetSms::Gate::kRateLimited:
          (void)reply_error(m, sms_rate_limited_error(config_));
          break;
        case FleetSms::Gate::kLocked:
          (void)reply_error(m, make_error(Errc::kRateLimited, lockout_message(gate.locked_usec)));
          break;
        case FleetSms::Gate::kUnavailable:
          (void)reply_error(m, make_error(Errc::kStorage,
                                          "The fleet's shared store (Redis) is unreachable; "
                                          "enrollment changes wait until it is back."));
          break;
      }
      after_write();
    } catch (...) {
      MFA_LOG_ERROR("internal error while answering an SMS request");
    }
  });
  return 1;
}

void ManagerBus::deliver_text(std::shared_ptr<PendingText> pending) {
  SecureString to = pending->message.to.clone();
  SecureString body = std::move(pending->message.body);
  sms_->send(std::move(to), std::move(body), [this, pending](const SmsDelivery& delivery) {
    sd_bus_message* m = pending->call.get();
    auto result = auth_.sms_sent(pending->message, delivery);
    // Fleet mode: the code of a text that did not go out dies on every host.
    if (fleet_sms_ && delivery.status != SmsDeliveryStatus::kAccepted)
      fleet_sms_->discard(pending->message);
    int r = 0;
    if (!result.ok()) {
      r = reply_error(m, result.error());
    } else {
      BusMessagePtr reply = new_return(m, &r);
      if (r >= 0)
        r = sd_bus_message_append(reply.get(), "s", result->c_str());
      if (r >= 0)
        r = finish(m, std::move(reply), true);
    }
    if (r < 0)
      MFA_LOG_WARNING("cannot answer an SMS request: %s", strerror(-r));
    after_write();
  });
}

int ManagerBus::verify(sd_bus_message* m) {
  std::optional<Error> bad;
  std::string challenge;
  SecureString code;
  MFA_READ(read_string(m, "challenge", kMaxChallengeLength, &challenge, &bad));
  MFA_READ(read_secret(m, "code", dbus::kMaxCodeLength, &code, &bad));
  MFA_CALLER(m, caller);
  MFA_BAD_INPUT(m, bad);
  if (fleet_ && !fleet_pass_) {
    // The first Verify soon after BeginAuthentication decides from what Begin read; the confirm
    // script checks lockout, factor, watermark and backup code against Redis (fleet_keys.cpp).
    const bool fresh = auth_.take_shared_state(caller, challenge, kFleetStateReuseUsec);
    return fleet_defer(m, auth_.challenge_user(caller, challenge), FleetCallKind::kLogin,
                       &ManagerBus::verify, nullptr, fresh);
  }
  auto result = auth_.verify(caller, challenge, code.view());
  if (!result.ok())
    return reply_error(m, result.error());
  if (fleet_pass_)
    fleet_verified_ = parse_method(*result);
  int r = 0;
  BusMessagePtr reply = new_return(m, &r);
  if (r >= 0)
    r = sd_bus_message_append(reply.get(), "s", result->c_str());
  if (r < 0)
    return r;
  return finish(m, std::move(reply), true);
}

int ManagerBus::end_authentication(sd_bus_message* m) {
  std::optional<Error> bad;
  std::string challenge;
  MFA_READ(read_string(m, "challenge", kMaxChallengeLength, &challenge, &bad));
  MFA_CALLER(m, caller);
  MFA_BAD_INPUT(m, bad);
  // Like BeginAuthentication's, this reply reports no decision: the login's outcome was Verify's
  // (committed before it was answered). An "abandoned" audit row commits with the next batch.
  Status status = auth_.end_authentication(caller, challenge);
  if (!status.ok())
    return reply_error(m, status.error());
  int r = 0;
  BusMessagePtr reply = new_return(m, &r);
  if (r < 0)
    return r;
  return finish_unsynced(m, std::move(reply));
}

int ManagerBus::open_session(sd_bus_message* m) {
  std::optional<Error> bad;
  std::string user;
  StringMap context;
  MFA_READ(read_string(m, "user name", dbus::kMaxUserNameLength, &user, &bad));
  MFA_READ(read_string_map(m, &context, &bad));
  MFA_CALLER(m, caller);
  MFA_BAD_INPUT(m, bad);
  if (!sessions_) {
    return sd_bus_reply_method_errorf(m, SD_BUS_ERROR_NOT_SUPPORTED,
                                      "Sessions are not implemented yet.");
  }
  if (fleet_sessions_)
    return fleet_open_session(m, caller, user, context);
  auto result = sessions_->open(caller, user, context);
  if (!result.ok())
    return reply_error(m, result.error());
  int r = 0;
  BusMessagePtr reply = new_return(m, &r);
  if (r >= 0)
    r = sd_bus_message_append(reply.get(), "s", result->c_str());
  if (r < 0)
    return r;
  return finish(m, std::move(reply), true);
}

// CloseSession and TerminateSession: one session id in, nothing out.
int ManagerBus::session_id_call(sd_bus_message* m,
                                Status (SessionRegistry::*action)(const Caller&,
                                                                  std::string_view)) {
  std::optional<Error> bad;
  std::string session_id;
  MFA_READ(read_string(m, "session id", kMaxSessionIdLength, &session_id, &bad));
  MFA_CALLER(m, caller);
  MFA_BAD_INPUT(m, bad);
  if (!sessions_) {
    return sd_bus_reply_method_errorf(m, SD_BUS_ERROR_NOT_SUPPORTED,
                                      "Sessions are not implemented yet.");
  }
  if (fleet_sessions_ && action == &SessionRegistry::terminate)
    return fleet_terminate_session(m, caller, session_id);
  return reply_status(m, (sessions_->*action)(caller, session_id));
}

int ManagerBus::close_session(sd_bus_message* m) {
  return session_id_call(m, &SessionRegistry::close);
}

int ManagerBus::get_user(sd_bus_message* m) {
  std::optional<Error> bad;
  std::string user;
  MFA_READ(read_string(m, "user name", dbus::kMaxUserNameLength, &user, &bad));
  MFA_CALLER(m, caller);
  MFA_BAD_INPUT(m, bad);
  MFA_FLEET(m, user, kRead, get_user);
  auto result = auth_.get_user(caller, user);
  if (!result.ok())
    return reply_error(m, result.error());
  int r = 0;
  BusMessagePtr reply = new_return(m, &r);
  if (r >= 0)
    r = bus::append_user_info(reply.get(), *result);
  if (r < 0)
    return r;
  return finish(m, std::move(reply), true);
}

int ManagerBus::begin_totp_enrollment(sd_bus_message* m) {
  std::optional<Error> bad;
  std::string user;
  TotpEnrollmentOptions options;
  MFA_READ(read_string(m, "user name", dbus::kMaxUserNameLength, &user, &bad));
  MFA_READ(bus::read_totp_options(m, &options, &bad));
  MFA_CALLER(m, caller);
  MFA_BAD_INPUT(m, bad);
  MFA_FLEET(m, user, kChange, begin_totp_enrollment);
  auto result = auth_.begin_totp_enrollment(caller, user, options);
  if (!result.ok())
    return reply_error(m, result.error());
  int r = 0;
  BusMessagePtr reply = new_return(m, &r);
  // The reply carries the seed: sd-bus erases it when the message is freed.
  if (r >= 0)
    r = sd_bus_message_sensitive(reply.get());
  if (r >= 0) {
    r = sd_bus_message_append(reply.get(), "ss", result->secret_base32.c_str(),
                              result->otpauth_uri.c_str());
  }
  if (r < 0)
    return r;
  return finish(m, std::move(reply), true);
}

int ManagerBus::confirm_totp_enrollment(sd_bus_message* m) {
  std::optional<Error> bad;
  std::string user;
  SecureString code;
  MFA_READ(read_string(m, "user name", dbus::kMaxUserNameLength, &user, &bad));
  MFA_READ(read_secret(m, "code", dbus::kMaxCodeLength, &code, &bad));
  MFA_CALLER(m, caller);
  MFA_BAD_INPUT(m, bad);
  MFA_FLEET(m, user, kChange, confirm_totp_enrollment);
  return reply_status(m, auth_.confirm_totp_enrollment(caller, user, code.view()));
}

int ManagerBus::begin_sms_enrollment(sd_bus_message* m) {
  std::optional<Error> bad;
  std::string user;
  SecureString phone;
  SecureString current_code;
  MFA_READ(read_string(m, "user name", dbus::kMaxUserNameLength, &user, &bad));
  MFA_READ(read_secret(m, "phone number", kMaxPhoneLength, &phone, &bad));
  MFA_READ(read_secret(m, "current_code", dbus::kMaxCodeLength, &current_code, &bad));
  MFA_CALLER(m, caller);
  MFA_BAD_INPUT(m, bad);
  MFA_FLEET(m, user, kChange, begin_sms_enrollment);
  auto result = auth_.begin_sms_enrollment(caller, user, phone.view(), current_code.view());
  if (!result.ok())
    return reply_error(m, result.error());
  return send_text(m, std::move(result).value());
}

int ManagerBus::confirm_sms_enrollment(sd_bus_message* m) {
  std::optional<Error> bad;
  std::string user;
  SecureString code;
  MFA_READ(read_string(m, "user name", dbus::kMaxUserNameLength, &user, &bad));
  MFA_READ(read_secret(m, "code", dbus::kMaxCodeLength, &code, &bad));
  MFA_CALLER(m, caller);
  MFA_BAD_INPUT(m, bad);
  // The code may have been texted by another host: its state comes from Redis first.
  MFA_FLEET_SMS(m, user, kChange, confirm_sms_enrollment, kSmsPurposeEnroll);
  return reply_status(m, auth_.confirm_sms_enrollment(caller, user, code.view()));
}

int ManagerBus::generate_backup_codes(sd_bus_message* m) {
  std::optional<Error> bad;
  std::string user;
  SecureString current_code;
  MFA_READ(read_string(m, "user name", dbus::kMaxUserNameLength, &user, &bad));
  MFA_READ(read_secret(m, "current_code", dbus::kMaxCodeLength, &current_code, &bad));
  MFA_CALLER(m, caller);
  MFA_BAD_INPUT(m, bad);
  MFA_FLEET(m, user, kChange, generate_backup_codes);
  auto result = auth_.generate_backup_codes(caller, user, current_code.view());
  if (!result.ok())
    return reply_error(m, result.error());
  int r = 0;
  BusMessagePtr reply = new_return(m, &r);
  if (r >= 0)
    r = sd_bus_message_sensitive(reply.get());
  if (r >= 0)
    r = sd_bus_message_open_container(reply.get(), 'a', "s");
  for (size_t i = 0; r >= 0 && i < result->size(); ++i) {
    r = sd_bus_message_append(reply.get(), "s", (*result)[i].c_str());
  }
  if (r >= 0)
    r = sd_bus_message_close_container(reply.get());
  if (r < 0)
    return r;
  return finish(m, std::move(reply), true);
}

int ManagerBus::disable_method(sd_bus_message* m) {
  std::optional<Error> bad;
  std::string user;
  std::string method;
  SecureString current_code;
  MFA_READ(read_string(m, "user name", dbus::kMaxUserNameLength, &user, &bad));
  MFA_READ(read_string(m, "method", kMaxMethodNameLength, &method, &bad));
  MFA_READ(read_secret(m, "current_code", dbus::kMaxCodeLength, &current_code, &bad));
  MFA_CALLER(m, caller);
  MFA_BAD_INPUT(m, bad);
  MFA_FLEET(m, user, kChange, disable_method);
  return reply_status(m, auth_.disable_method(caller, user, method, current_code.view()));
}

// Sessions arrive with their own issue: the authorization is already GetUser's, the list empty.
int ManagerBus::list_sessions(sd_bus_message* m) {
  std::optional<Error> bad;
  std::string user;
  MFA_READ(read_string(m, "user name", dbus::kMaxUserNameLength, &user, &bad));
  MFA_CALLER(m, caller);
  MFA_BAD_INPUT(m, bad);
  if (sessions_ && fleet_sessions_)
    return fleet_list_sessions(m, caller, user);
  if (sessions_) {
    auto result = sessions_->list(caller, user);
    if (!result.ok())
      return reply_error(m, result.error());
    int r = 0;
    BusMessagePtr reply = new_return(m, &r);
    if (r >= 0)
      r = sd_bus_message_open_container(reply.get(), 'a', "a{sv}");
    for (size_t i = 0; r >= 0 && i < result->size(); ++i)
      r = append_session_record(reply.get(), (*result)[i]);
    if (r >= 0)
      r = sd_bus_message_close_container(reply.get());
    if (r < 0)
      return r;
    return finish(m, std::move(reply), true);
  }
  if (user.empty()) {
    if (!auth_.is_admin(caller)) {
      return reply_error(
          m,
          admin_refusal(caller, make_error(Errc::kNotAllowed,
                                           "Only an administrator may list everyone's sessions.")));
    }
  } else {
    auto allowed = auth_.get_user(caller, user);
    if (!allowed.ok())
      return reply_error(m, allowed.error());
  }
  int r = 0;
  BusMessagePtr reply = new_return(m, &r);
  if (r >= 0)
    r = sd_bus_message_open_container(reply.get(), 'a', "a{sv}");
  if (r >= 0)
    r = sd_bus_message_close_container(reply.get());
  if (r < 0)
    return r;
  return finish(m, std::move(reply), true);
}

int ManagerBus::terminate_session(sd_bus_message* m) {
  return session_id_call(m, &SessionRegistry::terminate);
}

int ManagerBus::list_users(sd_bus_message* m) {
  MFA_CALLER(m, caller);
  auto result = auth_.list_users(caller);
  if (!result.ok())
    return reply_error(m, result.error());
  int r = 0;
  BusMessagePtr reply = new_return(m, &r);
  if (r >= 0)
    r = sd_bus_message_open_container(reply.get(), 'a', "a{sv}");
  for (size_t i = 0; r >= 0 && i < result->size(); ++i) {
    r = bus::append_user_info(reply.get(), (*result)[i]);
  }
  if (r >= 0)
    r = sd_bus_message_close_container(reply.get());
  if (r < 0)
    return r;
  return finish(m, std::move(reply), true);
}

int ManagerBus::reset_user(sd_bus_message* m) {
  std::optional<Error> bad;
  std::string user;
  MFA_READ(read_string(m, "user name", dbus::kMaxUserNameLength, &user, &bad));
  MFA_CALLER(m, caller);
  MFA_BAD_INPUT(m, bad);
  MFA_FLEET(m, user, kAdmin, reset_user);
  return reply_status(m, auth_.reset_user(caller, user));
}

int ManagerBus::unlock(sd_bus_message* m) {
  std::optional<Error> bad;
  std::string user;
  MFA_READ(read_string(m, "user name", dbus::kMaxUserNameLength, &user, &bad));
  MFA_CALLER(m, caller);
  MFA_BAD_INPUT(m, bad);
  MFA_FLEET(m, user, kAdmin, unlock);
  return reply_status(m, auth_.unlock(caller, user));
}

int ManagerBus::list_audit_events(sd_bus_message* m) {
  std::optional<Error> bad;
  AuditFilter filter;
  MFA_READ(bus::read_audit_filter(m, &filter, &bad));
  MFA_CALLER(m, caller);
  MFA_BAD_INPUT(m, bad);
  auto result = auth_.list_audit_events(caller, filter);
  if (!result.ok())
    return reply_error(m, result.error());
  int r = 0;
  BusMessagePtr reply = new_return(m, &r);
  if (r >= 0)
    r = sd_bus_message_open_container(reply.get(), 'a', "a{sv}");
  for (size_t i = 0; r >= 0 && i < result->size(); ++i) {
    r = bus::append_audit_record(reply.get(), (*result)[i]);
  }
  if (r >= 0)
    r = sd_bus_message_close_container(reply.get());
  if (r < 0)
    return r;
  return finish(m, std::move(reply), true);
}

int ManagerBus::verify_audit_trail(sd_bus_message* m) {
  MFA_CALLER(m, caller);
  auto result = auth_.verify_audit_trail(caller);
  if (!result.ok())
    return reply_error(m, result.error());
  int r = 0;
  BusMessagePtr reply = new_return(m, &r);
  if (r >= 0) {
    r = sd_bus_message_append(reply.get(), "bts", static_cast<int>(result->intact), result->rows,
                              result->message.c_str());
  }
  if (r < 0)
    return r;
  return finish(m, std::move(reply), true);
}

// ---------------------------------------------------------------------------------------------

namespace {

// sd-bus callbacks are C: nothing may be thrown through them.
// Access is decided here, per method, and not by sd-bus's own check (the bus is trusted, see
// main.cpp): kRoot methods are refused to every sender but root before their handler runs; the
// others authorize in the Authenticator.
enum class Access { kRoot, kOpen };

template <int (ManagerBus::*Handler)(sd_bus_message*), Access kAccess>
int dispatch(sd_bus_message* m, void* userdata, sd_bus_error* ret_error) {
  try {
    auto* mb = static_cast<ManagerBus*>(userdata);
    if constexpr (kAccess == Access::kRoot) {
      if (int r = mb->refuse_unless_root(m); r != 0)
        return r;
    }
    return (mb->*Handler)(m);
  } catch (const std::bad_alloc&) {
    return -ENOMEM;
  } catch (const std::exception& e) {
    MFA_LOG_ERROR("%s failed: %s", sd_bus_message_get_member(m), e.what());
  } catch (...) {
    MFA_LOG_ERROR("%s failed", sd_bus_message_get_member(m));
  }
  return sd_bus_error_set(ret_error, dbus::kErrorInternal, "Internal error in mfad.");
}

int get_degraded(sd_bus* /*bus*/, const char* /*path*/, const char* /*interface*/,
                 const char* /*property*/, sd_bus_message* reply, void* userdata,
                 sd_bus_error* /*ret_error*/) {
  return sd_bus_message_append(reply, "b",
                               static_cast<int>(static_cast<ManagerBus*>(userdata)->degraded()));
}

int get_version(sd_bus* /*bus*/, const char* /*path*/, const char* /*interface*/,
                const char* /*property*/, sd_bus_message* reply, void* /*userdata*/,
                sd_bus_error* /*ret_error*/) {
  return sd_bus_message_append(reply, "s", MFA_VERSION);
}

// PAM side: root only (no SD_BUS_VTABLE_UNPRIVILEGED, so the introspection says so; the bus policy
// and dispatch<..., Access::kRoot> enforce it). Everything else is open to unprivileged callers
// and authorized by the Authenticator. Calls carrying codes or returning secrets are SENSITIVE:
// sd-bus erases them when freed.
constexpr uint64_t kRootOnly = 0;
constexpr uint64_t kRootOnlySensitive = SD_BUS_VTABLE_SENSITIVE;
constexpr uint64_t kOpen = SD_BUS_VTABLE_UNPRIVILEGED;
constexpr uint64_t kOpenSensitive = SD_BUS_VTABLE_UNPRIVILEGED | SD_BUS_VTABLE_SENSITIVE;

const sd_bus_vtable kManagerVtable[] = {
    SD_BUS_VTABLE_START(0),
    SD_BUS_PROPERTY("Version", "s", get_version, 0, SD_BUS_VTABLE_PROPERTY_CONST),
    SD_BUS_PROPERTY("Degraded", "b", get_degraded, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
    SD_BUS_METHOD_WITH_ARGS("BeginAuthentication", SD_BUS_ARGS("s", user, "a{ss}", context),
                            SD_BUS_RESULT("s", challenge, "as", methods),
                            (dispatch<&ManagerBus::begin_authentication, Access::kRoot>),
                            kRootOnly),
    SD_BUS_METHOD_WITH_ARGS("SendSmsCode", SD_BUS_ARGS("s", challenge),
                            SD_BUS_RESULT("s", masked_phone),
                            (dispatch<&ManagerBus::send_sms_code, Access::kRoot>), kRootOnly),
    SD_BUS_METHOD_WITH_ARGS("Verify", SD_BUS_ARGS("s", challenge, "s", code),
                            SD_BUS_RESULT("s", method),
                            (dispatch<&ManagerBus::verify, Access::kRoot>), kRootOnlySensitive),
    SD_BUS_METHOD_WITH_ARGS("EndAuthentication", SD_BUS_ARGS("s", challenge), SD_BUS_NO_RESULT,
                            (dispatch<&ManagerBus::end_authentication, Access::kRoot>), kRootOnly),
    SD_BUS_METHOD_WITH_ARGS("OpenSession", SD_BUS_ARGS("s", user, "a{ss}", context),
                            SD_BUS_RESULT("s", session_id),
                            (dispatch<&ManagerBus::open_session, Access::kRoot>), kRootOnly),
    SD_BUS_METHOD_WITH_ARGS("CloseSession", SD_BUS_ARGS("s", session_id), SD_BUS_NO_RESULT,
                            (dispatch<&ManagerBus::close_session, Access::kRoot>), kRootOnly),
    SD_BUS_METHOD_WITH_ARGS("GetUser", SD_BUS_ARGS("s", user), SD_BUS_RESULT("a{sv}", info),
                            (dispatch<&ManagerBus::get_user, Access::kOpen>), kOpen),
    SD_BUS_METHOD_WITH_ARGS("BeginTotpEnrollment", SD_BUS_ARGS("s", user, "a{sv}", options),
                            SD_BUS_RESULT("s", secret_base32, "s", otpauth_uri),
                            (dispatch<&ManagerBus::begin_totp_enrollment, Access::kOpen>),
                            kOpenSensitive),
    SD_BUS_METHOD_WITH_ARGS(
        "ConfirmTotpEnrollment", SD_BUS_ARGS("s", user, "s", code), SD_BUS_NO_RESULT,
        (dispatch<&ManagerBus::confirm_totp_enrollment, Access::kOpen>), kOpenSensitive),
    SD_BUS_METHOD_WITH_ARGS(
        "BeginSmsEnrollment", SD_BUS_ARGS("s", user, "s", phone_e164, "s", current_code),
        SD_BUS_RESULT("s", masked_phone),
        (dispatch<&ManagerBus::begin_sms_enrollment, Access::kOpen>), kOpenSensitive),
    SD_BUS_METHOD_WITH_ARGS(
        "ConfirmSmsEnrollment", SD_BUS_ARGS("s", user, "s", code), SD_BUS_NO_RESULT,
        (dispatch<&ManagerBus::confirm_sms_enrollment, Access::kOpen>), kOpenSensitive),
    SD_BUS_METHOD_WITH_ARGS("GenerateBackupCodes", SD_BUS_ARGS("s", user, "s", current_code),
                            SD_BUS_RESULT("as", codes),
                            (dispatch<&ManagerBus::generate_backup_codes, Access::kOpen>),
                            kOpenSensitive),
    SD_BUS_METHOD_WITH_ARGS("DisableMethod", SD_BUS_ARGS("s", user, "s", method, "s", current_code),
                            SD_BUS_NO_RESULT,
                            (dispatch<&ManagerBus::disable_method, Access::kOpen>), kOpenSensitive),
    SD_BUS_METHOD_WITH_ARGS("ListSessions", SD_BUS_ARGS("s", user),
                            SD_BUS_RESULT("aa{sv}", sessions),
                            (dispatch<&ManagerBus::list_sessions, Access::kOpen>), kOpen),
    SD_BUS_METHOD_WITH_ARGS("TerminateSession", SD_BUS_ARGS("s", session_id), SD_BUS_NO_RESULT,
                            (dispatch<&ManagerBus::terminate_session, Access::kOpen>), kOpen),
    SD_BUS_METHOD_WITH_ARGS("ListUsers", SD_BUS_NO_ARGS, SD_BUS_RESULT("aa{sv}", users),
                            (dispatch<&ManagerBus::list_users, Access::kOpen>), kOpen),
    SD_BUS_METHOD_WITH_ARGS("ResetUser", SD_BUS_ARGS("s", user), SD_BUS_NO_RESULT,
                            (dispatch<&ManagerBus::reset_user, Access::kOpen>), kOpen),
    SD_BUS_METHOD_WITH_ARGS("Unlock", SD_BUS_ARGS("s", user), SD_BUS_NO_RESULT,
                            (dispatch<&ManagerBus::unlock, Access::kOpen>), kOpen),
    SD_BUS_METHOD_WITH_ARGS("ListAuditEvents", SD_BUS_ARGS("a{sv}", filter),
                            SD_BUS_RESULT("aa{sv}", events),
                            (dispatch<&ManagerBus::list_audit_events, Access::kOpen>), kOpen),
    SD_BUS_METHOD_WITH_ARGS("VerifyAuditTrail", SD_BUS_NO_ARGS,
                            SD_BUS_RESULT("b", intact, "t", rows, "s", message),
                            (dispatch<&ManagerBus::verify_audit_trail, Access::kOpen>), kOpen),
    SD_BUS_SIGNAL_WITH_ARGS("SessionOpened", SD_BUS_ARGS("s", session_id, "s", user), 0),
    SD_BUS_SIGNAL_WITH_ARGS("SessionClosed", SD_BUS_ARGS("s", session_id, "s", user, "s", reason),
                            0),
    SD_BUS_SIGNAL_WITH_ARGS("SecurityEvent", SD_BUS_ARGS("s", user, "s", kind, "a{ss}", details),
                            0),
    SD_BUS_VTABLE_END,
};

}  // namespace

SharedMessage share_message(sd_bus_message* m) {
  return share_message(BusMessagePtr(sd_bus_message_ref(m)));
}

SharedMessage share_message(BusMessagePtr m) {
  return SharedMessage(m.release(), [](sd_bus_message* p) { sd_bus_message_unref(p); });
}

int ManagerBus::ask_polkit(sd_bus_message* call) {
  polkit_->check(call,
                 [this](sd_bus_message* held, bool granted) { polkit_answered(held, granted); });
  return 1;
}

void ManagerBus::polkit_answered(sd_bus_message* call, bool granted) {
  if (stopping_) {
    (void)sd_bus_reply_method_errorf(call, SD_BUS_ERROR_NO_SERVER, "mfad is shutting down.");
    return;
  }
  const char* member = sd_bus_message_get_member(call);
  sd_bus_message_handler_t handler = nullptr;
  for (const sd_bus_vtable* v = kManagerVtable; member && v->type != _SD_BUS_VTABLE_END; ++v) {
    if (v->type == _SD_BUS_VTABLE_METHOD && strcmp(v->x.method.member, member) == 0)
      handler = v->x.method.handler;
  }
  int r = sd_bus_message_rewind(call, 1);
  if (handler == nullptr || r < 0) {
    (void)sd_bus_reply_method_errorf(call, dbus::kErrorInternal, "Internal error in mfad.");
    return;
  }
  // The same entry sd-bus ran (dispatch<>: exceptions caught), now with polkit's answer; a
  // refusal is audited by the Authenticator as any other.
  sd_bus_error error = SD_BUS_ERROR_NULL;
  polkit_grant_ = granted ? PolkitGrant::kGranted : PolkitGrant::kRefused;
  r = handler(call, this, &error);
  polkit_grant_ = PolkitGrant::kAskable;
  if (sd_bus_error_is_set(&error))
    (void)sd_bus_reply_method_error(call, &error);
  else if (r < 0)
    (void)sd_bus_reply_method_errno(call, r, nullptr);
  sd_bus_error_free(&error);
  after_write();
}

Result<std::unique_ptr<ManagerBus>> ManagerBus::create(sd_event* event, sd_bus* bus,
                                                       Authenticator& authenticator, Store& store,
                                                       const Config& config) {
  std::unique_ptr<ManagerBus> mb(new ManagerBus(event, bus, authenticator, store, config));
  MFA_TRY(commit, GroupCommit::create(event, bus, store));
  mb->commit_ = std::move(commit);
  MFA_TRY(sms, SmsSender::create(event, config));
  mb->sms_ = std::move(sms);
  mb->polkit_ = std::make_unique<PolkitAuthority>(event, bus);

  sd_bus_slot* slot = nullptr;
  int r = sd_bus_add_object_vtable(bus, &slot, dbus::kObjectPath, dbus::kInterface, kManagerVtable,
                                   mb.get());
  if (r < 0) {
    return make_error(Errc::kInternal,
                      std::string("cannot register the D-Bus object: ") + strerror(-r));
  }
  mb->object_slot_.reset(slot);

  // A peer that leaves takes its open challenges with it. Departures only (new owner ''): a
  // login process connects and leaves once per login, and its arrival is of no interest.
  slot = nullptr;
  r = sd_bus_add_match_async(bus, &slot,
                             "type='signal',sender='org.freedesktop.DBus',"
                             "path='/org/freedesktop/DBus',interface='org.freedesktop.DBus',"
                             "member='NameOwnerChanged',arg2=''",
                             &ManagerBus::on_name_owner_changed, nullptr, mb.get());
  if (r < 0) {
    return make_error(Errc::kInternal, std::string("cannot watch bus peers: ") + strerror(-r));
  }
  mb->match_slot_.reset(slot);

  sd_event_source* timer = nullptr;
  r = sd_event_add_time(event, &timer, CLOCK_MONOTONIC, UINT64_MAX, 100 * 1000,
                        &ManagerBus::on_expiry_timer, mb.get());
  if (r < 0) {
    return make_error(Errc::kInternal, std::string("cannot add the expiry timer: ") + strerror(-r));
  }
  mb->expiry_timer_.reset(timer);
  (void)sd_event_source_set_enabled(timer, SD_EVENT_OFF);
  (void)sd_event_source_set_description(timer, "challenge-expiry");
  return mb;
}

ManagerBus::~ManagerBus() = default;

void ManagerBus::stop(std::function<void()> stopped) {
  if (stopping_)
    return;
  stopping_ = true;
  on_stopped_ = std::move(stopped);
  sms_->cancel_all();
  polkit_->abandon_all();
  if (fleet_ == nullptr || fleet_calls_.empty()) {
    finish_stop();
    return;
  }
  // Calls waiting on Redis get its answer if it comes within the timeout, then NoServer.
  fleet_->begin_shutdown();
  uint64_t now = 0;
  (void)sd_event_now(event_, CLOCK_MONOTONIC, &now);
  sd_event_source* timer = nullptr;
  int r = sd_event_add_time(event_, &timer, CLOCK_MONOTONIC,
                            now + static_cast<uint64_t>(config_.redis_timeout_ms) * 1000, 1000,
                            &ManagerBus::on_drain_timer, this);
  if (r < 0) {
    MFA_LOG_ERROR("cannot arm the shutdown timer: %s", strerror(-r));
    (void)on_drain_timer(nullptr, 0, this);
    return;
  }
  drain_timer_.reset(timer);
  (void)sd_event_source_set_description(timer, "shutdown-drain");
  MFA_LOG_INFO("waiting up to %d ms for %zu calls waiting on Redis", config_.redis_timeout_ms,
               fleet_calls_.size());
}

void ManagerBus::finish_stop() {
  drain_timer_.reset();
  commit_->finish();
  MFA_LOG_INFO("group commit: %llu commits and %llu disk syncs for %llu replies",
               static_cast<unsigned long long>(commit_->commits()),
               static_cast<unsigned long long>(commit_->syncs()),
               static_cast<unsigned long long>(commit_->replies()));
  auto stopped = std::move(on_stopped_);
  on_stopped_ = nullptr;
  if (stopped)
    stopped();
}

// at_usec == 0: "a challenge was just created": fire no later than its expiry.
void ManagerBus::arm_expiry_timer(uint64_t at_usec) {
  sd_event_source* timer = expiry_timer_.get();
  if (at_usec == 0) {
    uint64_t now = 0;
    if (sd_event_now(event_, CLOCK_MONOTONIC, &now) < 0)
      return;
    at_usec = now + static_cast<uint64_t>(config_.challenge_timeout_seconds + 1) * 1000000;
    int enabled = SD_EVENT_OFF;
    uint64_t current = 0;
    if (sd_event_source_get_enabled(timer, &enabled) >= 0 && enabled != SD_EVENT_OFF &&
        sd_event_source_get_time(timer, &current) >= 0 && current <= at_usec) {
      return;  // already due earlier
    }
  }
  int r = sd_event_source_set_time(timer, at_usec);
  if (r >= 0)
    r = sd_event_source_set_enabled(timer, SD_EVENT_ONESHOT);
  if (r < 0)
    MFA_LOG_WARNING("cannot arm the challenge expiry timer: %s", strerror(-r));
}

int ManagerBus::on_expiry_timer(sd_event_source* /*s*/, uint64_t /*usec*/, void* userdata) {
  auto* self = static_cast<ManagerBus*>(userdata);
  try {
    uint64_t next = self->auth_.expire_challenges();
    if (next != 0)
      self->arm_expiry_timer(next);
    self->after_write();
  } catch (...) {
    MFA_LOG_ERROR("challenge expiry failed");
  }
  return 0;
}

int ManagerBus::on_name_owner_changed(sd_bus_message* m, void* userdata,
                                      sd_bus_error* /*ret_error*/) {
  auto* self = static_cast<ManagerBus*>(userdata);
  const char* name = nullptr;
  const char* old_owner = nullptr;
  const char* new_owner = nullptr;
  if (sd_bus_message_read(m, "sss", &name, &old_owner, &new_owner) < 0)
    return 0;
  if (name[0] != ':' || new_owner[0] != '\0')
    return 0;
  try {
    self->callers_.forget(name);
    self->auth_.drop_caller(name);
    self->after_write();
  } catch (...) {
    MFA_LOG_ERROR("dropping the challenges of a departed peer failed");
  }
  return 0;
}

}  // namespace mfa

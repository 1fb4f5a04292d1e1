// org.mfad1.Manager's handlers. Each one reads and bounds its arguments, opens the call (the
// caller identified, a refused argument answered), and runs its decision: a function of the call
// that asks the Authenticator and builds the reply (manager.hpp).
#include <memory>
#include <optional>
#include <string>
#include <utility>

#include "bus/call_macros.hpp"
#include "bus/args.hpp"
#include "bus/manager.hpp"
#include "bus/sessions.hpp"
#include "common/dbus_names.hpp"
#include "fleet/coordinator.hpp"

namespace mfa {

using bus::kMaxChallengeLength;
using bus::kMaxMethodNameLength;
using bus::kMaxPhoneLength;
using bus::kMaxSessionIdLength;
using bus::read_secret;
using bus::read_string;
using bus::read_string_map;

namespace {

// Fleet mode: a change carrying a current code reads the user's step-up code from Redis first,
// as SendStepUpCode may have texted it from another host.
const char* step_up_purpose(const SecureString& current_code) {
  return current_code.empty() ? nullptr : kSmsPurposeStepUp;
}

// A secret (a code, a phone number) kept for a decision that may run again, erased with it.
template <typename T>
std::shared_ptr<const T> keep(T secret) {
  return std::make_shared<const T>(std::move(secret));
}

}  // namespace

int ManagerBus::begin_authentication(sd_bus_message* m) {
  std::optional<Error> bad;
  std::string user;
  StringMap context;
  MFA_READ(read_string(m, "user name", dbus::kMaxUserNameLength, &user, &bad));
  MFA_READ(read_string_map(m, &context, &bad));
  MFA_CALL(call, m, bad);
  std::optional<FleetScope> scope = fleet_scope(user, FleetCallKind::kLogin);
  // From the read cache when it is current and the answer offers a factor: the Verify that
  // follows is checked against Redis by its confirm (fleet/read_cache.hpp).
  if (scope)
    scope->fresh = fleet_->cache_current(scope->user) && auth_.offers_factor(user, context);
  return run(call, std::move(scope), [this, user, context](PendingCall& c) {
    auto begun = auth_.begin_authentication(c.caller(), user, context);
    if (!begun.ok()) {
      Outcome o = error_reply(c.message(), begun.error());
      // A lockout in force (no attempt is counted here: Verify counts them): the refusal changes
      // nothing a crash could undo, and its audit row, coalesced, commits with the next batch. A
      // guesser's flood on locked accounts thus adds no disk flush in front of real logins, and
      // gets its refusals late: its calls in flight, not mfad and the bus, set its pace. In fleet
      // mode the refusal still goes by Redis.
      o.unsynced = fleet_ == nullptr && begun.error().code == Errc::kRateLimited;
      o.late = o.unsynced;
      return o;
    }
    // Fleet mode: the shared state just read serves this challenge's first Verify.
    if (c.read_shared_state())
      begin_reads_.note(c.caller(), begun->challenge, now_usec());
    // Challenges expire: make sure the timer fires by then.
    arm_expiry_timer(0);
    Outcome o = method_return(c.message(), [&](sd_bus_message* reply) {
      int r = append_string(reply, begun->challenge);
      return r < 0 ? r : append_strings(reply, begun->methods);
    });
    o.unsynced = true;
    return o;
  });
}

int ManagerBus::send_sms_code(sd_bus_message* m) {
  std::optional<Error> bad;
  std::string challenge;
  MFA_READ(read_string(m, "challenge", kMaxChallengeLength, &challenge, &bad));
  MFA_CALL(call, m, bad);
  // Fleet mode: the challenge's prefetch brought the user's state; the shared send limits are
  // checked before the text leaves (send_text).
  const std::string user = fleet_ ? auth_.challenge_user(call->caller(), challenge) : "";
  return run(call, std::nullopt, [this, challenge, user](PendingCall& c) {
    auto text = auth_.send_sms_code(c.caller(), challenge);
    if (!text.ok()) {
      if (fleet_ && fleet_->degraded() && !user.empty()) {
        fleet_->note_degraded(user, "SendSmsCode", FleetChanges{}, false, false,
                              c.caller().describe());
      }
      return error_reply(c.message(), text.error());
    }
    return Outcome::of_text(std::move(text).value());
  });
}

int ManagerBus::verify(sd_bus_message* m) {
  std::optional<Error> bad;
  std::string challenge;
  SecureString code;
  MFA_READ(read_string(m, "challenge", kMaxChallengeLength, &challenge, &bad));
  MFA_READ(read_secret(m, "code", dbus::kMaxCodeLength, &code, &bad));
  MFA_CALL(call, m, bad);
  const Caller& caller = call->caller();
  std::optional<FleetScope> scope =
      fleet_scope(fleet_ ? auth_.challenge_user(caller, challenge) : "", FleetCallKind::kLogin);
  // The first Verify soon after BeginAuthentication decides from what Begin read; the confirm
  // script checks lockout, factor, watermark and backup code against Redis (fleet/keys.cpp).
  if (scope)
    scope->fresh = begin_reads_.take(caller, challenge, now_usec());
  return run(call, std::move(scope),
             [this, challenge, code = keep(std::move(code))](PendingCall& c) {
               auto method = auth_.verify(c.caller(), challenge, code->view());
               Outcome o = reply_to(c.message(), method, append_string);
               if (method.ok())
                 o.verified = parse_method(*method);
               return o;
             });
}

int ManagerBus::end_authentication(sd_bus_message* m) {
  std::optional<Error> bad;
  std::string challenge;
  MFA_READ(read_string(m, "challenge", kMaxChallengeLength, &challenge, &bad));
  MFA_CALL(call, m, bad);
  // Like BeginAuthentication's, this reply reports no decision: the login's outcome was Verify's
  // (committed before it was answered). An "abandoned" audit row commits with the next batch.
  return run(call, std::nullopt, [this, challenge](PendingCall& c) {
    Status status = auth_.end_authentication(c.caller(), challenge);
    if (!status.ok())
      return error_reply(c.message(), status.error());
    Outcome o = method_return(c.message());
    o.unsynced = true;
    return o;
  });
}

int ManagerBus::open_session(sd_bus_message* m) {
  std::optional<Error> bad;
  std::string user;
  StringMap context;
  MFA_READ(read_string(m, "user name", dbus::kMaxUserNameLength, &user, &bad));
  MFA_READ(read_string_map(m, &context, &bad));
  MFA_CALL(call, m, bad);
  if (!sessions_supported(call))
    return 1;
  uint32_t audit_session = Caller::kUnsetAuditId;
  uint32_t audit_login_uid = Caller::kUnsetAuditId;
  read_audit_ids(call->caller().pid, &audit_session, &audit_login_uid);
  call->set_audit_ids(audit_session, audit_login_uid);
  if (fleet_sessions_) {
    fleet_open_session(call, user, context);
    return 1;
  }
  return run(call, std::nullopt, [this, user, context](PendingCall& c) {
    return reply_to(c.message(), sessions_->open(c.caller(), user, context), append_string);
  });
}

// CloseSession and TerminateSession: one session id in, nothing out.
int ManagerBus::close_session(sd_bus_message* m) {
  std::optional<Error> bad;
  std::string session_id;
  MFA_READ(read_string(m, "session id", kMaxSessionIdLength, &session_id, &bad));
  MFA_CALL(call, m, bad);
  if (!sessions_supported(call))
    return 1;
  return run(call, std::nullopt, [this, session_id](PendingCall& c) {
    return reply_to(c.message(), sessions_->close(c.caller(), session_id));
  });
}

int ManagerBus::terminate_session(sd_bus_message* m) {
  std::optional<Error> bad;
  std::string session_id;
  MFA_READ(read_string(m, "session id", kMaxSessionIdLength, &session_id, &bad));
  MFA_CALL(call, m, bad);
  if (!sessions_supported(call))
    return 1;
  if (fleet_sessions_) {
    fleet_terminate_session(call, session_id);
    return 1;
  }
  return run(call, std::nullopt, [this, session_id](PendingCall& c) {
    return reply_to(c.message(), sessions_->terminate(c.caller(), session_id));
  });
}

int ManagerBus::get_user(sd_bus_message* m) {
  return user_call(m, FleetCallKind::kRead, [this](PendingCall& c, const std::string& user) {
    return reply_to(c.message(), auth_.get_user(c.caller(), user), bus::append_user_info);
  });
}

int ManagerBus::begin_totp_enrollment(sd_bus_message* m) {
  std::optional<Error> bad;
  std::string user;
  TotpEnrollmentOptions options;
  MFA_READ(read_string(m, "user name", dbus::kMaxUserNameLength, &user, &bad));
  MFA_READ(bus::read_totp_options(m, &options, &bad));
  MFA_CALL(call, m, bad);
  return run(call, fleet_scope(user, FleetCallKind::kChange, step_up_purpose(options.current_code)),
             [this, user, options = keep(std::move(options))](PendingCall& c) {
               // The reply carries the seed: sensitive.
               return reply_to(
                   c.message(), auth_.begin_totp_enrollment(c.caller(), user, *options),
                   [](sd_bus_message* reply, const TotpEnrollment& e) {
                     return sd_bus_message_append(reply, "ss", e.secret_base32.c_str(),
                                                  e.otpauth_uri.c_str());
                   },
                   Secrecy::kSensitive);
             });
}

int ManagerBus::confirm_totp_enrollment(sd_bus_message* m) {
  return user_code_call(m, "code", FleetCallKind::kChange, nullptr,
                        [this](PendingCall& c, const std::string& user, std::string_view code) {
                          return reply_to(c.message(),
                                          auth_.confirm_totp_enrollment(c.caller(), user, code));
                        });
}

int ManagerBus::begin_sms_enrollment(sd_bus_message* m) {
  std::optional<Error> bad;
  std::string user;
  SecureString phone;
  SecureString current_code;
  MFA_READ(read_string(m, "user name", dbus::kMaxUserNameLength, &user, &bad));
  MFA_READ(read_secret(m, "phone number", kMaxPhoneLength, &phone, &bad));
  MFA_READ(read_secret(m, "current_code", dbus::kMaxCodeLength, &current_code, &bad));
  MFA_CALL(call, m, bad);
  return run(call, fleet_scope(user, FleetCallKind::kChange, step_up_purpose(current_code)),
             [this, user, phone = keep(std::move(phone)),
              current_code = keep(std::move(current_code))](PendingCall& c) {
               auto text = auth_.begin_sms_enrollment(c.caller(), user, phone->view(),
                                                      current_code->view());
               if (!text.ok())
                 return error_reply(c.message(), text.error());
               return Outcome::of_text(std::move(text).value());
             });
}

int ManagerBus::confirm_sms_enrollment(sd_bus_message* m) {
  // The code may have been texted by another host: its state comes from Redis first.
  return user_code_call(m, "code", FleetCallKind::kChange, kSmsPurposeEnroll,
                        [this](PendingCall& c, const std::string& user, std::string_view code) {
                          return reply_to(c.message(),
                                          auth_.confirm_sms_enrollment(c.caller(), user, code));
                        });
}

int ManagerBus::generate_backup_codes(sd_bus_message* m) {
  return user_code_call(
      m, "current_code", FleetCallKind::kChange, kSmsPurposeStepUp,
      [this](PendingCall& c, const std::string& user, std::string_view current_code) {
        return reply_to(
            c.message(), auth_.generate_backup_codes(c.caller(), user, current_code),
            [](sd_bus_message* reply, const std::vector<SecureString>& codes) {
              return append_array(reply, "s", codes, [](sd_bus_message* r, const SecureString& s) {
                return sd_bus_message_append(r, "s", s.c_str());
              });
            },
            Secrecy::kSensitive);
      });
}

int ManagerBus::disable_method(sd_bus_message* m) {
  std::optional<Error> bad;
  std::string user;
  std::string method;
  SecureString current_code;
  MFA_READ(read_string(m, "user name", dbus::kMaxUserNameLength, &user, &bad));
  MFA_READ(read_string(m, "method", kMaxMethodNameLength, &method, &bad));
  MFA_READ(read_secret(m, "current_code", dbus::kMaxCodeLength, &current_code, &bad));
  MFA_CALL(call, m, bad);
  return run(call, fleet_scope(user, FleetCallKind::kChange, step_up_purpose(current_code)),
             [this, user, method, current_code = keep(std::move(current_code))](PendingCall& c) {
               return reply_to(c.message(), auth_.disable_method(c.caller(), user, method,
                                                                 current_code->view()));
             });
}

int ManagerBus::list_sessions(sd_bus_message* m) {
  std::optional<Error> bad;
  std::string user;
  MFA_READ(read_string(m, "user name", dbus::kMaxUserNameLength, &user, &bad));
  MFA_CALL(call, m, bad);
  if (sessions_ && fleet_sessions_) {
    fleet_list_sessions(call, user);
    return 1;
  }
  return run(call, std::nullopt, [this, user](PendingCall& c) {
    if (sessions_) {
      return reply_to(c.message(), sessions_->list(c.caller(), user),
                      [](sd_bus_message* reply, const std::vector<SessionRecord>& list) {
                        return append_array(reply, "a{sv}", list,
                                            [](sd_bus_message* r, const SessionRecord& s) {
                                              return append_session_record(r, s);
                                            });
                      });
    }
    // No sessions here: the authorization is GetUser's, the list empty.
    if (user.empty() && !auth_.is_admin(c.caller())) {
      return error_reply(
          c.message(),
          admin_refusal(c.caller(), make_error(Errc::kNotAllowed,
                                               "Only an administrator may list everyone's "
                                               "sessions.")));
    }
    if (!user.empty()) {
      auto allowed = auth_.get_user(c.caller(), user);
      if (!allowed.ok())
        return error_reply(c.message(), allowed.error());
    }
    return method_return(c.message(), [](sd_bus_message* reply) {
      return append_array(
          reply, "a{sv}", std::vector<SessionRecord>{},
          [](sd_bus_message* r, const SessionRecord& s) { return append_session_record(r, s); });
    });
  });
}

int ManagerBus::list_users(sd_bus_message* m) {
  MFA_CALL(call, m, std::nullopt);
  return run(call, std::nullopt, [this](PendingCall& c) {
    return reply_to(c.message(), auth_.list_users(c.caller()),
                    [](sd_bus_message* reply, const std::vector<UserInfo>& users) {
                      return append_array(reply, "a{sv}", users, bus::append_user_info);
                    });
  });
}

int ManagerBus::reset_user(sd_bus_message* m) {
  return user_call(m, FleetCallKind::kAdmin, [this](PendingCall& c, const std::string& user) {
    return reply_to(c.message(), auth_.reset_user(c.caller(), user));
  });
}

int ManagerBus::unlock(sd_bus_message* m) {
  return user_call(m, FleetCallKind::kAdmin, [this](PendingCall& c, const std::string& user) {
    return reply_to(c.message(), auth_.unlock(c.caller(), user));
  });
}

int ManagerBus::list_audit_events(sd_bus_message* m) {
  std::optional<Error> bad;
  AuditFilter filter;
  MFA_READ(bus::read_audit_filter(m, &filter, &bad));
  MFA_CALL(call, m, bad);
  return run(call, std::nullopt, [this, filter](PendingCall& c) {
    return reply_to(c.message(), auth_.list_audit_events(c.caller(), filter),
                    [](sd_bus_message* reply, const std::vector<AuditRecord>& events) {
                      return append_array(reply, "a{sv}", events, bus::append_audit_record);
                    });
  });
}

int ManagerBus::verify_audit_trail(sd_bus_message* m) {
  MFA_CALL(call, m, std::nullopt);
  return run(call, std::nullopt, [this](PendingCall& c) {
    return reply_to(c.message(), auth_.verify_audit_trail(c.caller()),
                    [](sd_bus_message* reply, const AuditVerification& v) {
                      return sd_bus_message_append(reply, "bts", static_cast<int>(v.intact), v.rows,
                                                   v.message.c_str());
                    });
  });
}

int ManagerBus::user_call(sd_bus_message* m, FleetCallKind kind, UserDecide decide) {
  std::optional<Error> bad;
  std::string user;
  MFA_READ(read_string(m, "user name", dbus::kMaxUserNameLength, &user, &bad));
  MFA_CALL(call, m, bad);
  return run(call, fleet_scope(user, kind),
             [user, decide = std::move(decide)](PendingCall& c) { return decide(c, user); });
}

int ManagerBus::user_code_call(sd_bus_message* m, const char* code_name, FleetCallKind kind,
                               const char* sms_purpose, UserCodeDecide decide) {
  std::optional<Error> bad;
  std::string user;
  SecureString code;
  MFA_READ(read_string(m, "user name", dbus::kMaxUserNameLength, &user, &bad));
  MFA_READ(read_secret(m, code_name, dbus::kMaxCodeLength, &code, &bad));
  MFA_CALL(call, m, bad);
  return run(call, fleet_scope(user, kind, sms_purpose),
             [user, code = keep(std::move(code)), decide = std::move(decide)](PendingCall& c) {
               return decide(c, user, code->view());
             });
}

bool ManagerBus::sessions_supported(const CallPtr& call) {
  if (sessions_)
    return true;
  call->send_error(SD_BUS_ERROR_NOT_SUPPORTED, "Sessions are not implemented yet.");
  return false;
}

std::optional<ManagerBus::FleetScope> ManagerBus::fleet_scope(const std::string& user,
                                                              FleetCallKind kind,
                                                              const char* sms_purpose) const {
  if (fleet_ == nullptr)
    return std::nullopt;
  // The shared state is the account's, as the Authenticator keys it (a challenge's user is
  // already that key).
  return FleetScope{auth_.records_key(user), kind, sms_purpose, false};
}

}  // namespace mfa

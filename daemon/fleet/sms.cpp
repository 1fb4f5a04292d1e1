#include "fleet/sms.hpp"

#include <cstdint>

#include "common/crypto.hpp"
#include "core/log.hpp"
#include "fleet/sms_keys.hpp"
#include "core/rate_limiter.hpp"

namespace mfa {

namespace {

std::string why_failed(const Result<RedisReply>& reply) {
  if (!reply.ok())
    return reply.error().message;
  if (reply->is_error())
    return "Redis refused an SMS script: " + reply->str;
  return "unexpected Redis reply to an SMS script";
}

}  // namespace

struct FleetSms::Text {
  std::string user;
  std::string purpose;
  Caller caller;
  StringMap details;  // audit context; the phone masked
  std::string phone_key;
  int64_t sent_usec = 0;
  uint32_t nonce = 0;  // the text's member in the counters: a replay counts it once
  SmsCode code;        // keyed hash and expiry
  bool login() const { return purpose == kSmsPurposeLogin; }
  // A step-up proves who is typing, like a login: none while the user is locked out.
  bool proves_identity() const { return login() || purpose == kSmsPurposeStepUp; }
};

FleetSms::TextPtr FleetSms::text_of(const SmsMessage& m) {
  auto t = std::make_shared<Text>();
  t->user = m.user;
  t->purpose = m.purpose;
  t->caller = m.caller;
  t->details = m.details;
  t->phone_key = m.phone_key;
  t->sent_usec = m.sent_usec;
  t->nonce = random_uniform(UINT32_MAX);
  t->code = m.code;
  return t;
}

FleetSms::FleetSms(Deps deps, WriteCallback on_write) : d_(deps), on_write_(std::move(on_write)) {}

FleetSms::~FleetSms() {
  *alive_ = false;
}

void FleetSms::wrote() {
  if (on_write_)
    on_write_();
}

void FleetSms::queue(const ReconcileItem& item) {
  if (Status st = d_.cache.queue_reconcile(item); !st.ok()) {
    MFA_LOG_ERROR("cannot queue a %s for reconciliation: %s", item.kind.c_str(),
                  st.error().message.c_str());
  }
}

void FleetSms::write_code(const std::string& user, const std::string& purpose,
                          const std::optional<SmsCode>& code) {
  Status st =
      code ? d_.cache.put_sms_code(user, purpose, *code) : d_.cache.delete_sms_code(user, purpose);
  if (!st.ok()) {
    MFA_LOG_ERROR("fleet: cannot cache %s's %s SMS code: %s", user.c_str(), purpose.c_str(),
                  st.error().message.c_str());
  }
}

// The code of a text that will not go out must not stay usable here.
void FleetSms::forget_local_code(const std::string& user, const std::string& purpose,
                                 const CodeHash& hash) {
  auto live = d_.cache.get_sms_code(user, purpose);
  if (live.ok() && *live &&
      ct_equal(std::span<const uint8_t>((*live)->hash), std::span<const uint8_t>(hash)))
    write_code(user, purpose, std::nullopt);
  wrote();
}

// --- Before a text leaves ---

void FleetSms::gate(const SmsMessage& message, std::function<void(GateResult)> done) {
  TextPtr text = text_of(message);
  if (d_.fleet.degraded()) {
    unavailable(text, "", /*counted=*/false, std::move(done));
    return;
  }
  const fleet::SmsSend send{text->phone_key, text->sent_usec, text->nonce};
  const auto limits = fleet::sms_limits(d_.config);
  const auto keys = fleet::sms_send_keys(d_.config.redis_key_prefix, text->user, send.phone_key);
  const int64_t since = text->sent_usec - limits.window_usec;
  auto alive = alive_;
  d_.fleet.client().eval(
      fleet::sms_send_script(), {keys.user, keys.phone, keys.all, keys.limits},
      fleet::sms_send_args(send, limits, text->sent_usec, /*check=*/true,
                           /*check_lock=*/text->proves_identity()),
      [this, alive, text, since, done = std::move(done)](Result<RedisReply> reply) mutable {
        if (!*alive)
          return;
        auto outcome =
            reply.ok() && !reply->is_error()
                ? fleet::parse_sms_send_reply(*reply)
                : Result<fleet::SmsSendOutcome>(make_error(Errc::kIo, why_failed(reply)));
        if (!outcome.ok()) {
          unavailable(text, outcome.error().message, /*counted=*/false, std::move(done));
          return;
        }
        // The user's texts as the fleet counts them (without this one, when refused).
        if (Status st = d_.cache.replace_sms_sends(text->user, since, outcome->user_sends);
            !st.ok()) {
          MFA_LOG_ERROR("fleet: cannot cache %s's SMS sends: %s", text->user.c_str(),
                        st.error().message.c_str());
        }
        wrote();
        if (outcome->refused == FleetRefusal::kLocked) {
          locked(text, *outcome->limits, std::move(done));
          return;
        }
        if (outcome->limit != SmsSendLimit::kNone) {
          refused(text, "rate-limited",
                  {{"limit", sms_send_limit_name(outcome->limit)}, {"fleet", "shared"}},
                  {Gate::kRateLimited, outcome->limit, 0}, std::move(done));
          return;
        }
        store_code(text, std::move(done));
      });
}

// Locked out fleet-wide since this host last read the user's counters (failures on other hosts):
// refused as the local limiter refuses a locked user's text (sms.failed / locked), and the cache
// takes the lockout, so that this host refuses the user's next calls by itself.
void FleetSms::locked(TextPtr text, const LimitState& shared,
                      std::function<void(GateResult)> done) {
  d_.fleet.follow_limits(text->user, shared);
  MFA_LOG_WARNING("%s: SMS code refused, locked out fleet-wide", text->user.c_str());
  refused(text, fleet_refusal_name(FleetRefusal::kLocked), {{"fleet", "refused"}},
          {Gate::kLocked, SmsSendLimit::kNone, lock_remaining_usec(shared, text->sent_usec)},
          std::move(done));
}

void FleetSms::store_code(TextPtr text, std::function<void(GateResult)> done) {
  auto alive = alive_;
  d_.fleet.client().eval(
      fleet::sms_code_put_script(),
      {fleet::sms_code_key(d_.config.redis_key_prefix, text->user, text->purpose)},
      fleet::sms_code_put_args(text->code, /*merge=*/false),
      [this, alive, text, done = std::move(done)](Result<RedisReply> reply) mutable {
        if (!*alive)
          return;
        if (reply.ok() && !reply->is_error()) {
          done({Gate::kSend});
          return;
        }
        // Counted in Redis already; the code follows on reconciliation.
        unavailable(text, why_failed(reply), /*counted=*/true, std::move(done));
      });
}

// Redis is away (why == "": it was before this text). A login text goes out on local limits;
// an enrollment or a step-up waits for Redis, like every enrollment change.
void FleetSms::unavailable(TextPtr text, const std::string& why, bool counted,
                           std::function<void(GateResult)> done) {
  if (!why.empty()) {
    MFA_LOG_ERROR("fleet: SMS state: %s", why.c_str());
    d_.fleet.report_unavailable(why);
  }
  if (!text->login()) {
    forget_local_code(text->user, text->purpose, text->code.hash);
    done({Gate::kUnavailable});
    return;
  }
  send_degraded(*text, counted, why);
  done({Gate::kSendDegraded});
}

// Audited as sms.failed (denied, reason) with details beside the text's own.
void FleetSms::refused(TextPtr text, const std::string& reason, const StringMap& details,
                       GateResult result, std::function<void(GateResult)> done) {
  AuditEvent event;
  event.kind = AuditKind::kSmsFailed;
  event.user = text->user;
  event.outcome = AuditOutcome::kDenied;
  event.reason = audit_reason_from_name(reason).value_or(AuditReason::kUnrecognisedRefusal);
  event.caller = text->caller.describe();
  event.details = text->details;
  for (const auto& [k, v] : details)
    event.details[k] = v;
  if (Status st = d_.audit.record(event); !st.ok())
    MFA_LOG_ERROR("cannot audit an SMS refusal: %s", st.error().message.c_str());
  // The code stored here for this text was never texted: the cache takes Redis's live code back
  // (the one texted before, which must keep working).
  auto alive = alive_;
  load_code(text->user, text->purpose,
            [this, alive, text, result, done = std::move(done)](bool online) {
              if (!*alive)
                return;
              if (!online)
                forget_local_code(text->user, text->purpose, text->code.hash);
              done(result);
            });
}

// Degraded: the text goes out on local limits; Redis learns of it on reconciliation.
void FleetSms::send_degraded(const Text& text, bool counted, const std::string& why) {
  AuditEvent event;
  event.kind = AuditKind::kDegraded;
  event.user = text.user;
  event.outcome = AuditOutcome::kSuccess;
  event.reason = AuditReason::kRedisUnavailable;
  event.caller = text.caller.describe();
  event.details = text.details;
  event.details["call"] = text.login() ? "SendSmsCode" : "BeginSmsEnrollment";
  event.details["method"] = "sms";
  if (!why.empty())
    event.details["why"] = why;
  if (Status st = d_.audit.record(event); !st.ok())
    MFA_LOG_ERROR("cannot audit a degraded decision: %s", st.error().message.c_str());
  // A send script that timed out may have counted the text: the same nonce counts it once.
  if (!counted) {
    if (auto item = fleet::sms_send_item(text.user, {text.phone_key, text.sent_usec, text.nonce}))
      queue(*item);
  }
  queue(fleet::sms_code_item(text.user, text.purpose, text.code));
  wrote();
}

// --- After the text ---

void FleetSms::discard(const SmsMessage& message) {
  forget_local_code(message.user, message.purpose, message.code.hash);
  const ReconcileItem dead = fleet::sms_dead_item(message.user, message.purpose, message.code.hash);
  if (d_.fleet.degraded()) {
    queue(dead);
    wrote();
    return;
  }
  auto alive = alive_;
  d_.fleet.client().eval(
      fleet::sms_code_use_script(),
      {fleet::sms_code_key(d_.config.redis_key_prefix, message.user, message.purpose)},
      fleet::sms_code_kill_args(message.code.hash), [this, alive, dead](Result<RedisReply> reply) {
        if (!*alive || (reply.ok() && !reply->is_error()))
          return;
        d_.fleet.report_unavailable(why_failed(reply));
        queue(dead);
        wrote();
      });
}

// --- Around a decision ---

void FleetSms::load_code(const std::string& user, const std::string& purpose,
                         std::function<void(bool online)> done) {
  if (d_.fleet.degraded()) {
    done(false);
    return;
  }
  auto alive = alive_;
  d_.fleet.client().command(
      {"HGETALL", fleet::sms_code_key(d_.config.redis_key_prefix, user, purpose)},
      [this, alive, user, purpose, done = std::move(done)](Result<RedisReply> reply) {
        if (!*alive)
          return;
        auto code = reply.ok() && !reply->is_error()
                        ? fleet::parse_sms_code_hash(*reply)
                        : Result<std::optional<SmsCode>>(make_error(Errc::kIo, why_failed(reply)));
        if (!code.ok()) {
          d_.fleet.report_unavailable(code.error().message);
          done(false);
          return;
        }
        write_code(user, purpose, *code);
        wrote();
        done(true);
      });
}

void FleetSms::confirm(const std::string& user, const FleetChanges& changes,
                       std::function<void(ConfirmResult)> done) {
  if (!changes.sms_used && !changes.sms_failed) {
    done({});
    return;
  }
  // One check per call: a code is either used or tried, never both.
  const bool used = changes.sms_used.has_value();
  const SmsCodeChange& change = used ? *changes.sms_used : *changes.sms_failed;
  const int max_attempts = d_.config.sms_max_attempts_per_code;
  auto items = fleet::sms_change_items(user, changes);
  auto alive = alive_;
  d_.fleet.client().eval(used ? fleet::sms_code_use_script() : fleet::sms_code_try_script(),
                         {fleet::sms_code_key(d_.config.redis_key_prefix, user, change.purpose)},
                         used ? fleet::sms_code_use_args(change.hash, max_attempts)
                              : fleet::sms_code_try_args(change.hash, 1, max_attempts),
                         [this, alive, user, purpose = change.purpose, items,
                          done = std::move(done)](Result<RedisReply> reply) {
                           if (!*alive)
                             return;
                           auto outcome = reply.ok() && !reply->is_error()
                                              ? fleet::parse_sms_code_reply(*reply)
                                              : Result<fleet::SmsCodeOutcome>(
                                                    make_error(Errc::kIo, why_failed(reply)));
                           ConfirmResult r;
                           if (!outcome.ok()) {
                             // What this host decided stays decided: Redis learns it on
                             // reconciliation.
                             d_.fleet.report_unavailable(outcome.error().message);
                             for (const auto& item : items)
                               queue(item);
                             wrote();
                             r.unavailable = true;
                             done(std::move(r));
                             return;
                           }
                           // The shared code is the truth: the cache follows it.
                           write_code(user, purpose, outcome->code);
                           wrote();
                           r.refused = outcome->refused;
                           done(std::move(r));
                         });
}

}  // namespace mfa

#include "pam_module/dialogue.hpp"

#include <errno.h>
#include <security/pam_ext.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>

#include <iterator>
#include <string_view>

#include "common/dbus_names.hpp"
#include "pam_module/bus_client.hpp"
#include "pam_module/pam_answer.hpp"
#include "pam_module/rollout_dialogue.hpp"
#include "pam_module/session_hook.hpp"
#include "pam_module/shown_text.hpp"

namespace mfa::pam {
namespace {

static_assert(Answer::kCapacity == PAM_MAX_RESP_SIZE);

constexpr char kCombinedPrompt[] = "Password & verification code: ";
constexpr char kSmsPrompt[] = "SMS code: ";
constexpr char kNotEnrolledMessage[] =
    "Multi-factor authentication is required but not set up for this account; ask your "
    "administrator";
constexpr char kSmsUnavailableMessage[] = "SMS is not available";
// MethodNotAccepted: the person is told what would work here, indexed by the methods= bits (0:
// every method).
constexpr const char* kNotAcceptedMessages[] = {
    "None of your second factors is accepted by this service. This service accepts: totp, sms, "
    "backup",
    "None of your second factors is accepted by this service. This service accepts: totp",
    "None of your second factors is accepted by this service. This service accepts: sms",
    "None of your second factors is accepted by this service. This service accepts: totp, sms",
    "None of your second factors is accepted by this service. This service accepts: backup",
    "None of your second factors is accepted by this service. This service accepts: totp, backup",
    "None of your second factors is accepted by this service. This service accepts: sms, backup",
    "None of your second factors is accepted by this service. This service accepts: totp, sms, "
    "backup",
};
// "sms" answers per authentication: each may send a text, so they are bounded on our side too.
constexpr int kMaxSmsRequests = 3;
constexpr size_t kMaxChallengeLength = 256;
// Not a PAM result: the dialogue goes on.
constexpr int kGoOn = -1;

class Dialogue {
 public:
  Dialogue(HookContext& hook, MfadClient& client) : hook_(hook), client_(client) {}
  Dialogue(const Dialogue&) = delete;
  Dialogue& operator=(const Dialogue&) = delete;

  int begin_authentication(const char* user);
  int run();
  // EndAuthentication, on every path once a challenge was opened: the daemon also drops it at its
  // expiry, or once this process has exited and the user's cap needs the room.
  void end_authentication();

 private:
  // One echo-off prompt. *ret_too_long is set (and the answer left empty) for answers over
  // limit bytes, which are never sent.
  int prompt(const char* text, size_t limit, Answer* ret_answer, bool* ret_too_long);
  // The first answer from PAM_AUTHTOK (use_first_pass/try_first_pass); false when there is none
  // that looks like a code.
  bool first_pass_answer(Answer* ret_code);
  // Splits "password + 6 digits"; forwards the password as PAM_AUTHTOK when forward_pass is set.
  void take_combined(std::string_view combined, Answer* ret_code);
  // SendSmsCode for an "sms" answer: kGoOn (*ret_sent when a text went out), or the PAM result
  // that ends the dialogue.
  int request_sms(bool* ret_sent);

  // The rollout's offers ("enroll", "skip") among BeginAuthentication's methods.
  int read_offers(const CallResult& res);

  HookContext& hook_;
  MfadClient& client_;
  const PamArgs& args_ = hook_.args();
  const char* user_ = nullptr;                    // begin_authentication's, the hook's
  char challenge_[kMaxChallengeLength + 1] = {};  // not a secret: tied to this process
  bool offers_enroll_ = false;
  bool offers_skip_ = false;
};

int Dialogue::read_offers(const CallResult& res) {
  sd_bus_message* m = res.reply();
  if (m == nullptr)
    return -EBADMSG;
  int r = sd_bus_message_enter_container(m, 'a', "s");
  while (r > 0) {
    const char* method = nullptr;
    r = sd_bus_message_read(m, "s", &method);
    if (r <= 0)
      break;
    if (strcmp(method, dbus::kOfferEnroll) == 0)
      offers_enroll_ = true;
    else if (strcmp(method, dbus::kOfferSkip) == 0)
      offers_skip_ = true;
  }
  return r < 0 ? r : 0;
}

int Dialogue::begin_authentication(const char* user) {
  user_ = user;
  BusContext context = login_context(hook_);
  if (args_.methods != 0)
    context.add("methods", methods_text(args_.methods));
  // What a user with no factor can be offered here (docs/rollout.md): mfad decides.
  context.add(dbus::kContextRollout, args_.enroll ? dbus::kOfferEnroll : dbus::kOfferSkip);
  context.add("nullok", args_.nullok ? "yes" : "no");
  CallResult res = client_.call("BeginAuthentication", false, user, nullptr, &context);
  if (res.status() == CallStatus::kOk) {
    const char* challenge = nullptr;
    int r = res.read_string(&challenge);
    if (hook_.failed_allocation(r))
      return PAM_BUF_ERR;
    if (r < 0 || challenge[0] == '\0' || strlen(challenge) > kMaxChallengeLength) {
      pam_syslog(hook_.pamh(), LOG_ERR, "malformed BeginAuthentication reply");
      return PAM_AUTHINFO_UNAVAIL;
    }
    memcpy(challenge_, challenge, strlen(challenge) + 1);
    // The methods are for logging only (the daemon decides what an answer is), except the
    // rollout's offers, which take the login another way.
    r = read_offers(res);
    if (hook_.failed_allocation(r))
      return PAM_BUF_ERR;
    if (r < 0) {
      pam_syslog(hook_.pamh(), LOG_ERR, "malformed BeginAuthentication reply");
      return PAM_AUTHINFO_UNAVAIL;
    }
    hook_.debug("challenge opened for %s%s", user,
                offers_enroll_ || offers_skip_ ? " (no factor yet: rollout)" : "");
    return PAM_SUCCESS;
  }
  if (res.is(dbus::kErrorNotRequired)) {
    hook_.debug("%s has no factor and needs none ([Rollout] Groups=)", user);
    return PAM_IGNORE;
  }
  if (res.is(dbus::kErrorEnrollmentRequired)) {
    // Past the deadline: nullok no longer applies (docs/rollout.md).
    hook_.show(PAM_ERROR_MSG, res.message(kNotEnrolledMessage).c_str());
    pam_syslog(hook_.pamh(), LOG_NOTICE,
               "%s has no second factor and the rollout deadline has "
               "passed: denied",
               user);
    return PAM_AUTH_ERR;
  }
  if (res.is(dbus::kErrorNotEnrolled)) {
    if (args_.nullok) {
      hook_.debug("%s has no factor: nullok", user);
      return PAM_IGNORE;
    }
    hook_.show(PAM_ERROR_MSG, kNotEnrolledMessage);
    pam_syslog(hook_.pamh(), LOG_NOTICE, "%s has no second factor: denied", user);
    return PAM_AUTH_ERR;
  }
  if (res.is(dbus::kErrorMethodNotAccepted)) {
    // Enrolled, only not for this service's methods=: denied even under nullok (issue 17).
    hook_.show(PAM_ERROR_MSG, args_.methods < std::size(kNotAcceptedMessages)
                                  ? kNotAcceptedMessages[args_.methods]
                                  : kNotAcceptedMessages[0]);
    pam_syslog(hook_.pamh(), LOG_NOTICE, "%s has no factor this service accepts (%s): denied", user,
               args_.methods != 0 ? methods_text(args_.methods) : "all");
    return PAM_AUTH_ERR;
  }
  if (res.is(dbus::kErrorNoSuchUser))
    return PAM_USER_UNKNOWN;
  if (res.is(dbus::kErrorInvalidArgument)) {
    pam_syslog(hook_.pamh(), LOG_ERR, "mfad refused the request: %s", res.message().c_str());
    return PAM_AUTH_ERR;
  }
  if (res.is(dbus::kErrorLimitExceeded)) {
    hook_.show(PAM_ERROR_MSG, "Too many logins in progress; try again later");
    return PAM_AUTH_ERR;
  }
  return client_.failure(res, "BeginAuthentication");
}

void Dialogue::end_authentication() {
  if (challenge_[0] == '\0')
    return;
  client_.send_without_reply("EndAuthentication", challenge_);
  challenge_[0] = '\0';
}

int Dialogue::prompt(const char* text, size_t limit, Answer* ret_answer, bool* ret_too_long) {
  // The person may take minutes: no bus connection is held meanwhile (bus_client.hpp).
  client_.release();
  const void* item = nullptr;
  if (pam_get_item(hook_.pamh(), PAM_CONV, &item) != PAM_SUCCESS || item == nullptr)
    return PAM_CONV_ERR;
  const auto* conv = static_cast<const struct pam_conv*>(item);
  if (conv->conv == nullptr)
    return PAM_CONV_ERR;

  struct pam_message msg = {PAM_PROMPT_ECHO_OFF, text};
  const struct pam_message* msgp = &msg;
  struct pam_response* resp = nullptr;
  int r = conv->conv(1, &msgp, &resp, conv->appdata_ptr);
  if (r != PAM_SUCCESS || resp == nullptr || resp->resp == nullptr) {
    if (resp) {
      if (resp->resp) {
        explicit_bzero(resp->resp, strlen(resp->resp));
        free(resp->resp);
      }
      free(resp);
    }
    // An application out of memory says so.
    return r == PAM_BUF_ERR ? hook_.out_of_memory() : PAM_CONV_ERR;
  }
  size_t len = strlen(resp->resp);
  *ret_too_long = len > limit || !ret_answer->assign(std::string_view(resp->resp, len));
  if (*ret_too_long)
    ret_answer->clear();
  explicit_bzero(resp->resp, len);
  free(resp->resp);
  free(resp);
  return PAM_SUCCESS;
}

void Dialogue::take_combined(std::string_view combined, Answer* ret_code) {
  CombinedAnswer split = split_combined(combined);
  // Both views may point into PAM_AUTHTOK's own memory, which pam_set_item frees: copy first.
  Answer password;
  if (split.code.empty() || !ret_code->assign(split.code))
    ret_code->clear();
  if (split.password.empty() || !password.assign(split.password))
    return;
  // With forward_pass the password goes on to the next module; without, PAM_AUTHTOK is left as
  // it was.
  if (args_.forward_pass &&
      hook_.checked(pam_set_item(hook_.pamh(), PAM_AUTHTOK, password.c_str())) != PAM_SUCCESS)
    pam_syslog(hook_.pamh(), LOG_ERR, "cannot forward the password");
}

bool Dialogue::first_pass_answer(Answer* ret_code) {
  const char* authtok = hook_.item(PAM_AUTHTOK);
  if (authtok == nullptr)
    return false;
  size_t len = strnlen(authtok, Answer::kCapacity + 1);
  if (len > Answer::kCapacity)
    return false;
  take_combined(std::string_view(authtok, len), ret_code);
  return !ret_code->empty();
}

int Dialogue::request_sms(bool* ret_sent) {
  CallResult res = client_.call("SendSmsCode", false, challenge_, nullptr, nullptr);
  if (res.status() == CallStatus::kOk) {
    const char* masked = nullptr;
    int r = res.read_string(&masked);
    if (hook_.failed_allocation(r))
      return PAM_BUF_ERR;
    hook_.show(PAM_TEXT_INFO, code_sent_message(r < 0 ? nullptr : masked).c_str());
    *ret_sent = true;
    return kGoOn;
  }
  if (res.is(dbus::kErrorSmsUnavailable) || res.is(dbus::kErrorNotEnrolled) ||
      res.is(dbus::kErrorInvalidArgument)) {
    hook_.show(PAM_ERROR_MSG, kSmsUnavailableMessage);
    return kGoOn;
  }
  if (res.is(dbus::kErrorSmsRateLimited)) {
    hook_.show(PAM_ERROR_MSG, res.message("Too many SMS codes; try again later").c_str());
    return kGoOn;
  }
  return client_.failure(res, "SendSmsCode");
}

int Dialogue::run() {
  if (offers_enroll_ || offers_skip_)
    return run_rollout(hook_, client_, user_, challenge_, offers_enroll_, offers_skip_);
  int ret = PAM_MAXTRIES;
  int tries = 0;
  int sms_requests = 0;
  bool first = true;
  bool sms_sent = false;
  while (tries < args_.max_tries) {
    Answer answer;
    bool too_long = false;
    bool have_answer = false;
    if (first && args_.pass_mode != PassMode::kPrompt) {
      have_answer = first_pass_answer(&answer);
      if (!have_answer && args_.pass_mode == PassMode::kUseFirstPass) {
        hook_.debug("use_first_pass: no code in PAM_AUTHTOK");
        return PAM_AUTH_ERR;
      }
    }
    if (!have_answer) {
      const bool combined = first && args_.forward_pass;
      const char* text = sms_sent       ? kSmsPrompt
                         : args_.prompt ? args_.prompt
                         : combined     ? kCombinedPrompt
                                        : kDefaultPrompt;
      // A combined answer holds a password too: it may be as long as PAM allows.
      Answer typed;
      int r = prompt(text, combined ? Answer::kCapacity : dbus::kMaxCodeLength, &typed, &too_long);
      if (r != PAM_SUCCESS) {
        pam_syslog(hook_.pamh(), LOG_ERR, "conversation failed");
        return r;
      }
      if (combined && !too_long) {
        take_combined(typed.view(), &answer);
      } else {
        (void)answer.assign(trim_answer(typed.view()));
      }
    }
    const bool from_first_pass = first && have_answer;
    first = false;
    sms_sent = false;

    if (is_sms_request(answer.view())) {
      if (sms_requests >= kMaxSmsRequests) {
        hook_.show(PAM_ERROR_MSG, "No more SMS codes can be sent during this login");
        ++tries;
        continue;
      }
      ++sms_requests;
      int r = request_sms(&sms_sent);
      if (r != kGoOn)
        return r;
      continue;
    }

    if (too_long || answer.empty()) {
      ++tries;
      hook_.show(PAM_ERROR_MSG, bad_code_message(args_.max_tries - tries).c_str());
      continue;
    }

    CallResult res = client_.call("Verify", true, challenge_, answer.c_str(), nullptr);
    answer.clear();
    if (res.status() == CallStatus::kOk) {
      const char* method = nullptr;
      int r = res.read_string(&method);
      if (hook_.failed_allocation(r))
        return PAM_BUF_ERR;
      if (r < 0) {
        pam_syslog(hook_.pamh(), LOG_ERR, "malformed Verify reply");
        return PAM_AUTHINFO_UNAVAIL;
      }
      if (!method_allowed(args_, method)) {
        pam_syslog(hook_.pamh(), LOG_ERR,
                   "mfad accepted a %s code, which this service does not allow",
                   printable(method).c_str());
        return PAM_AUTH_ERR;
      }
      hook_.debug("verified by %s", printable(method).c_str());
      remember_factor(hook_, method);
      ret = PAM_SUCCESS;
      break;
    }
    if (res.is(dbus::kErrorBadCode) || res.is(dbus::kErrorInvalidArgument)) {
      ++tries;
      pam_syslog(hook_.pamh(), LOG_NOTICE, "invalid code (attempt %d of %d)", tries,
                 args_.max_tries);
      if (from_first_pass && args_.pass_mode == PassMode::kUseFirstPass)
        return PAM_AUTH_ERR;
      hook_.show(PAM_ERROR_MSG, bad_code_message(args_.max_tries - tries).c_str());
      continue;
    }
    if (res.is(dbus::kErrorClockDrift) || res.is(dbus::kErrorCodeExpired)) {
      // Refused and counted like a wrong code, but the person is told why: the daemon's message
      // says how far the authenticator's clock is off, or that the text came too late.
      ++tries;
      pam_syslog(hook_.pamh(), LOG_NOTICE, "%s (attempt %d of %d)",
                 res.is(dbus::kErrorClockDrift) ? "code of a drifting clock" : "expired SMS code",
                 tries, args_.max_tries);
      if (from_first_pass && args_.pass_mode == PassMode::kUseFirstPass)
        return PAM_AUTH_ERR;
      hook_.show(PAM_ERROR_MSG, res.message().c_str());
      continue;
    }
    return client_.failure(res, "Verify");
  }
  return ret;
}

}  // namespace

namespace {

// fresh=SECONDS (docs/sudo.md): true only when mfad answered that this process's own login
// session passed a second factor less than SECONDS ago. mfad makes the binding from the kernel's
// audit session of this process; every other answer, an error included, means the usual prompt.
bool fresh_session(HookContext& hook, MfadClient& client, const char* user) {
  const int seconds = hook.args().fresh_seconds;
  if (seconds <= 0)
    return false;
  char text[16];
  const int n = snprintf(text, sizeof text, "%d", seconds);
  if (n <= 0 || static_cast<size_t>(n) >= sizeof text)
    return false;
  BusContext context = login_context(hook);
  context.add("fresh", text);
  CallResult res = client.call("CheckFreshSession", false, user, nullptr, &context);
  if (res.status() != CallStatus::kOk) {
    hook.debug("no fresh session for %s: %s", user, res.error_name());
    return false;
  }
  bool fresh = false;
  const char* session = nullptr;
  if (res.read_bool(&fresh) < 0 || res.read_string(&session) < 0 || !fresh)
    return false;
  pam_syslog(hook.pamh(), LOG_INFO, "%s passed by its fresh session %s (fresh=%d)", user,
             printable(session).c_str(), seconds);
  return true;
}

}  // namespace

int authenticate_user(HookContext& hook, const char* user) {
  MfadClient client(hook);
  int r = client.open();
  if (r != PAM_SUCCESS)
    return r;
  if (fresh_session(hook, client, user))
    return PAM_SUCCESS;
  Dialogue dialogue(hook, client);
  r = dialogue.begin_authentication(user);
  if (r == PAM_SUCCESS)
    r = dialogue.run();
  dialogue.end_authentication();
  return r;
}

}  // namespace mfa::pam

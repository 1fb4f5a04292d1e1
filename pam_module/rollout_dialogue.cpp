#include "pam_module/rollout_dialogue.hpp"

#include <security/pam_ext.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <syslog.h>

#include <string_view>

#include "common/dbus_names.hpp"
#include "pam_module/pam_answer.hpp"
#include "pam_module/session_hook.hpp"
#include "pam_module/shown_text.hpp"

namespace mfa::pam {
namespace {

constexpr char kTokenPrompt[] = "Enrollment token: ";
constexpr char kCannotShow[] =
    "This login cannot show the enrollment (the application shows no messages); set up "
    "multi-factor authentication with mfactl enroll totp on a terminal";
constexpr char kConfirmHint[] = "Type the code your app shows now to confirm.";
constexpr char kConfirmOrSkipHint[] =
    "Type the code your app shows now to confirm, or press Enter to skip for now.";
constexpr char kBackupHeader[] =
    "Enrolled. Your backup codes (each works once; keep them somewhere safe, they are not "
    "shown again):";
constexpr char kSavedPrompt[] = "Press Enter once you have saved them: ";
constexpr char kNoticePrompt[] = "Type yes to accept: ";
constexpr char kNoticeDeclined[] = "Enrollment needs the notice accepted; login denied.";
// The notice's text comes in lines of at most this many bytes (longer ones are cut, at a
// character boundary), as the QR code's.
constexpr size_t kNoticeLineLength = dbus::kMaxEnrollmentLineLength;
constexpr size_t kNoticeHashLength = 64;  // SHA-256, hex
// sshd refuses a conversation call of more messages (PAM_MAX_NUM_MSG).
constexpr size_t kMessagesPerCall = 32;
constexpr int kGoOn = -1;

struct Offer {
  bool enroll = false;
  bool skip = false;
  bool token_required = false;
  const char* message = nullptr;  // into the reply
};

class Rollout {
 public:
  Rollout(HookContext& hook, MfadClient& client, const char* user, const char* challenge)
      : hook_(hook), client_(client), user_(user), challenge_(challenge) {}

  int run(bool offers_enroll, bool offers_skip);

 private:
  int read_offer(const CallResult& res, Offer* ret);
  // Info messages that must reach the person: PAM_SUCCESS, or the conversation's failure.
  int show_all(const char* const* lines, size_t n);
  int prompt(const char* text, Answer* ret_answer, bool* ret_too_long);
  int prompt_echo(const char* text, Answer* ret_answer, bool* ret_too_long);
  int ask(int style, const char* text, Answer* ret_answer, bool* ret_too_long);
  int skip();
  // The enrollment notice, when mfad has one: shown, and accepted or not. kGoOn (none, or
  // accepted), or the PAM result that ends the login.
  int notice(const Offer& offer);
  // text's lines as info messages: PAM_SUCCESS, or the conversation's failure.
  int show_notice(std::string_view text);
  // BeginLoginEnrollment (after the token, when one is asked for) and its lines shown: kGoOn,
  // or the PAM result that ends the login.
  int begin(const Offer& offer);
  int enroll(const Offer& offer);
  // The lines of an "as" reply, shown; kGoOn, or the PAM result that ends the login.
  int show_lines(const CallResult& res, const char* header);

  HookContext& hook_;
  MfadClient& client_;
  const char* user_;
  const char* challenge_;
  const PamArgs& args_ = hook_.args();
};

int Rollout::read_offer(const CallResult& res, Offer* ret) {
  sd_bus_message* m = res.reply();
  if (m == nullptr)
    return -EBADMSG;
  int r = sd_bus_message_enter_container(m, 'a', "{sv}");
  while (r > 0) {
    r = sd_bus_message_enter_container(m, 'e', "sv");
    if (r <= 0)
      break;
    const char* key = nullptr;
    r = sd_bus_message_read(m, "s", &key);
    if (r < 0)
      break;
    const std::string_view k(key);
    if (k == "enroll" || k == "skip" || k == "token_required") {
      int b = 0;
      r = sd_bus_message_read(m, "v", "b", &b);
      if (k == "enroll")
        ret->enroll = b;
      else if (k == "skip")
        ret->skip = b;
      else
        ret->token_required = b;
    } else if (k == "message") {
      r = sd_bus_message_read(m, "v", "s", &ret->message);
    } else {
      r = sd_bus_message_skip(m, "v");
    }
    if (r < 0)
      break;
    r = sd_bus_message_exit_container(m);
    if (r < 0)
      break;
    r = 1;
  }
  return r < 0 ? r : 0;
}

// PAM_SILENT does not stop these: they are the enrollment itself, not chatter (sudo passes
// PAM_SILENT to every authentication). Whether they can be shown is the conversation's answer.
int Rollout::show_all(const char* const* lines, size_t n) {
  const void* item = nullptr;
  if (pam_get_item(hook_.pamh(), PAM_CONV, &item) != PAM_SUCCESS || item == nullptr)
    return PAM_CONV_ERR;
  const auto* conv = static_cast<const struct pam_conv*>(item);
  if (conv->conv == nullptr)
    return PAM_CONV_ERR;
  for (size_t start = 0; start < n; start += kMessagesPerCall) {
    const size_t count = n - start < kMessagesPerCall ? n - start : kMessagesPerCall;
    struct pam_message msgs[kMessagesPerCall];
    const struct pam_message* ptrs[kMessagesPerCall];
    for (size_t i = 0; i < count; ++i) {
      msgs[i].msg_style = PAM_TEXT_INFO;
      msgs[i].msg = lines[start + i];
      ptrs[i] = &msgs[i];
    }
    struct pam_response* resp = nullptr;
    int r = conv->conv(static_cast<int>(count), ptrs, &resp, conv->appdata_ptr);
    if (resp) {
      for (size_t i = 0; i < count; ++i) {
        if (resp[i].resp) {
          explicit_bzero(resp[i].resp, strlen(resp[i].resp));
          free(resp[i].resp);
        }
      }
      free(resp);
    }
    if (r != PAM_SUCCESS)
      return r == PAM_BUF_ERR ? hook_.out_of_memory() : PAM_CONV_ERR;
  }
  return PAM_SUCCESS;
}

int Rollout::prompt(const char* text, Answer* ret_answer, bool* ret_too_long) {
  return ask(PAM_PROMPT_ECHO_OFF, text, ret_answer, ret_too_long);
}

int Rollout::prompt_echo(const char* text, Answer* ret_answer, bool* ret_too_long) {
  return ask(PAM_PROMPT_ECHO_ON, text, ret_answer, ret_too_long);
}

int Rollout::ask(int style, const char* text, Answer* ret_answer, bool* ret_too_long) {
  // A person at a prompt holds no connection (bus_client.hpp): the next call makes a new one.
  client_.release();
  const char* typed = nullptr;
  char* resp = nullptr;
  int r = pam_prompt(hook_.pamh(), style, &resp, "%s", text);
  if (r != PAM_SUCCESS || resp == nullptr) {
    if (resp) {
      explicit_bzero(resp, strlen(resp));
      free(resp);
    }
    return r == PAM_BUF_ERR ? hook_.out_of_memory() : PAM_CONV_ERR;
  }
  typed = resp;
  const size_t len = strlen(typed);
  *ret_too_long = len > dbus::kMaxCodeLength || !ret_answer->assign(trim_answer({typed, len}));
  if (*ret_too_long)
    ret_answer->clear();
  explicit_bzero(resp, len);
  free(resp);
  return PAM_SUCCESS;
}

int Rollout::skip() {
  CallResult res = client_.call("SkipEnrollment", false, challenge_, nullptr, nullptr);
  if (res.status() == CallStatus::kOk) {
    pam_syslog(hook_.pamh(), LOG_NOTICE, "enrollment skipped (rollout deadline not reached)");
    // A login without a factor: the module vouches for nothing (as with nullok).
    return PAM_IGNORE;
  }
  if (res.is(dbus::kErrorNotAllowed) || res.is(dbus::kErrorAlreadyEnrolled)) {
    hook_.show(PAM_ERROR_MSG, res.message("Skipping is no longer allowed").c_str());
    pam_syslog(hook_.pamh(), LOG_NOTICE, "skip refused: %s", res.error_name());
    return PAM_AUTH_ERR;
  }
  return client_.failure(res, "SkipEnrollment");
}

int Rollout::show_lines(const CallResult& res, const char* header) {
  sd_bus_message* m = res.reply();
  const char* lines[dbus::kMaxEnrollmentLines + 1];
  size_t n = 0;
  if (header)
    lines[n++] = header;
  int r = m ? sd_bus_message_enter_container(m, 'a', "s") : -EBADMSG;
  while (r > 0) {
    const char* s = nullptr;
    r = sd_bus_message_read(m, "s", &s);
    if (r <= 0)
      break;
    // The daemon's own lines, bounded and without control characters (UTF-8 is fine).
    const size_t len = strnlen(s, dbus::kMaxEnrollmentLineLength + 1);
    bool clean = len <= dbus::kMaxEnrollmentLineLength && n < dbus::kMaxEnrollmentLines + 1;
    for (size_t i = 0; clean && i < len; ++i) {
      const auto c = static_cast<unsigned char>(s[i]);
      clean = c >= 0x20 && c != 0x7f;
    }
    if (!clean) {
      r = -EBADMSG;
      break;
    }
    lines[n++] = s;
  }
  if (hook_.failed_allocation(r))
    return PAM_BUF_ERR;
  if (r < 0) {
    pam_syslog(hook_.pamh(), LOG_ERR, "malformed enrollment reply");
    return PAM_AUTHINFO_UNAVAIL;
  }
  r = show_all(lines, n);
  if (r != PAM_SUCCESS) {
    pam_syslog(hook_.pamh(), LOG_ERR,
               "the application cannot show info messages (PAM_TEXT_INFO failed): enrollment "
               "during login is impossible here");
    return r == PAM_BUF_ERR ? r : PAM_AUTH_ERR;
  }
  return kGoOn;
}

int Rollout::show_notice(std::string_view text) {
  // A batch of lines at a time, in fixed buffers (nothing to allocate).
  char buf[kMessagesPerCall][kNoticeLineLength + 1];
  const char* lines[kMessagesPerCall];
  size_t n = 0;
  if (!text.empty() && text.back() == '\n')
    text.remove_suffix(1);
  size_t pos = 0;
  bool done = false;
  while (!done) {
    size_t end = text.find('\n', pos);
    if (end == std::string_view::npos)
      end = text.size();
    size_t len = end - pos;
    const bool cut = len > kNoticeLineLength;
    if (cut) {
      len = kNoticeLineLength;
      while (len > 0 && (static_cast<unsigned char>(text[pos + len]) & 0xC0) == 0x80)
        --len;
      if (len == 0)
        len = kNoticeLineLength;
    }
    for (size_t i = 0; i < len; ++i) {
      // mfad sends no control characters but newlines and tabs: a tab shows as a space.
      const auto u = static_cast<unsigned char>(text[pos + i]);
      buf[n][i] = (u < 0x20 || u == 0x7f) ? ' ' : text[pos + i];
    }
    buf[n][len] = '\0';
    lines[n] = buf[n];
    ++n;
    pos += cut ? len : len + 1;
    done = pos > text.size();
    if (n == kMessagesPerCall || done) {
      const int r = show_all(lines, n);
      if (r != PAM_SUCCESS)
        return r;
      n = 0;
    }
  }
  return PAM_SUCCESS;
}

int Rollout::notice(const Offer& offer) {
  CallResult res = client_.call("GetEnrollmentNotice", false, nullptr, nullptr, nullptr);
  if (res.status() != CallStatus::kOk)
    return client_.failure(res, "GetEnrollmentNotice");
  const char* text = nullptr;
  const char* hash = nullptr;
  int r = res.read_string(&text);
  if (r >= 0)
    r = res.read_string(&hash);
  if (hook_.failed_allocation(r))
    return PAM_BUF_ERR;
  bool well_formed = r >= 0 && strnlen(text, dbus::kMaxEnrollmentNoticeLength + 1) <=
                                   dbus::kMaxEnrollmentNoticeLength;
  if (well_formed && text[0] == '\0')
    return kGoOn;  // no notice
  // The hash is sent back as it came: 64 hex digits, nothing else.
  char digest[kNoticeHashLength + 1] = {};
  well_formed = well_formed && strnlen(hash, kNoticeHashLength + 1) == kNoticeHashLength;
  for (size_t i = 0; well_formed && i < kNoticeHashLength; ++i) {
    const char c = hash[i];
    well_formed = (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
    digest[i] = c;
  }
  if (!user_ || !well_formed) {
    pam_syslog(hook_.pamh(), LOG_ERR, "malformed GetEnrollmentNotice reply");
    return PAM_AUTHINFO_UNAVAIL;
  }
  r = show_notice(text);
  if (r != PAM_SUCCESS) {
    pam_syslog(hook_.pamh(), LOG_ERR,
               "the application cannot show info messages (PAM_TEXT_INFO failed): the enrollment "
               "notice cannot be shown; denied");
    return r == PAM_BUF_ERR ? r : PAM_AUTH_ERR;
  }
  Answer answer;
  bool too_long = false;
  r = prompt_echo(kNoticePrompt, &answer, &too_long);
  if (r != PAM_SUCCESS) {
    pam_syslog(hook_.pamh(), LOG_ERR, "conversation failed");
    return r;
  }
  if (answer.empty() && !too_long && offer.skip)
    return skip();
  if (!too_long && strcasecmp(answer.c_str(), "yes") == 0) {
    CallResult accepted = client_.call3("AcceptEnrollmentNotice", user_, digest, "login");
    if (accepted.status() == CallStatus::kOk) {
      pam_syslog(hook_.pamh(), LOG_NOTICE, "enrollment notice accepted");
      return kGoOn;
    }
    if (accepted.is(dbus::kErrorInvalidArgument) || accepted.is(dbus::kErrorNotAllowed)) {
      // The notice changed while it was shown: this login cannot tell which text was accepted.
      pam_syslog(hook_.pamh(), LOG_NOTICE, "enrollment notice not recorded: %s",
                 accepted.error_name());
      hook_.show(PAM_ERROR_MSG, accepted.message(kNoticeDeclined).c_str());
      return PAM_AUTH_ERR;
    }
    return client_.failure(accepted, "AcceptEnrollmentNotice");
  }
  // Declined. Asked to begin anyway, mfad refuses an enrollment whose notice was not accepted
  // and audits the refusal (enroll.begin, notice-not-accepted); whatever it answers, nothing is
  // shown and the login is denied.
  CallResult refused = client_.call("BeginLoginEnrollment", true, challenge_, "", nullptr);
  if (!refused.is(dbus::kErrorNoticeNotAccepted))
    pam_syslog(hook_.pamh(), LOG_ERR, "mfad did not refuse an enrollment without its notice (%s)",
               refused.status() == CallStatus::kOk ? "it began" : refused.error_name());
  pam_syslog(hook_.pamh(), LOG_NOTICE, "enrollment notice declined: denied");
  hook_.show(PAM_ERROR_MSG, kNoticeDeclined);
  return PAM_AUTH_ERR;
}

int Rollout::begin(const Offer& offer) {
  int tries = 0;
  // The token first (RequireToken=yes), then the QR code.
  for (;;) {
    Answer token;
    if (offer.token_required) {
      if (tries >= args_.max_tries)
        return PAM_MAXTRIES;
      bool too_long = false;
      int r = prompt(kTokenPrompt, &token, &too_long);
      if (r != PAM_SUCCESS) {
        pam_syslog(hook_.pamh(), LOG_ERR, "conversation failed");
        return r;
      }
      if (token.empty() && !too_long && offer.skip)
        return skip();
      if (token.empty() || too_long) {
        ++tries;
        hook_.show(PAM_ERROR_MSG, "An enrollment token is needed (ask your administrator)");
        continue;
      }
    }
    CallResult res = client_.call("BeginLoginEnrollment", true, challenge_, token.c_str(), nullptr);
    token.clear();
    if (res.status() == CallStatus::kOk)
      return show_lines(res, nullptr);
    if (offer.token_required &&
        (res.is(dbus::kErrorNotAllowed) || res.is(dbus::kErrorEnrollmentTokenRequired))) {
      ++tries;
      pam_syslog(hook_.pamh(), LOG_NOTICE, "enrollment token refused (attempt %d of %d)", tries,
                 args_.max_tries);
      hook_.show(PAM_ERROR_MSG, res.message("That enrollment token is not valid").c_str());
      continue;
    }
    if (res.is(dbus::kErrorAlreadyEnrolled) || res.is(dbus::kErrorNotAllowed)) {
      hook_.show(PAM_ERROR_MSG, res.message().c_str());
      return PAM_AUTH_ERR;
    }
    return client_.failure(res, "BeginLoginEnrollment");
  }
}

int Rollout::enroll(const Offer& offer) {
  int r = notice(offer);
  if (r != kGoOn)
    return r;
  r = begin(offer);
  if (r != kGoOn)
    return r;
  {
    const char* hint = offer.skip ? kConfirmOrSkipHint : kConfirmHint;
    r = show_all(&hint, 1);
    if (r != PAM_SUCCESS)
      return r == PAM_BUF_ERR ? r : PAM_AUTH_ERR;
  }

  int tries = 0;
  while (tries < args_.max_tries) {
    Answer code;
    bool too_long = false;
    r = prompt(args_.prompt ? args_.prompt : kDefaultPrompt, &code, &too_long);
    if (r != PAM_SUCCESS) {
      pam_syslog(hook_.pamh(), LOG_ERR, "conversation failed");
      return r;
    }
    if (code.empty() && !too_long && offer.skip)
      return skip();
    if (code.empty() || too_long) {
      ++tries;
      hook_.show(PAM_ERROR_MSG, bad_code_message(args_.max_tries - tries).c_str());
      continue;
    }
    CallResult res =
        client_.call("ConfirmLoginEnrollment", true, challenge_, code.c_str(), nullptr);
    code.clear();
    if (res.status() == CallStatus::kOk) {
      pam_syslog(hook_.pamh(), LOG_NOTICE, "enrolled a TOTP factor during login");
      remember_factor(hook_, dbus::kMethodTotp);
      // The factor is the user's now: the codes are shown best effort (the login succeeded).
      if (show_lines(res, kBackupHeader) != kGoOn) {
        pam_syslog(hook_.pamh(), LOG_ERR, "the backup codes could not be shown");
      } else {
        // sshd shows messages only with the next prompt: one more, whose answer is ignored, so
        // that the codes reach the person before the login goes on.
        Answer ignored;
        bool ignored_too_long = false;
        (void)prompt_echo(kSavedPrompt, &ignored, &ignored_too_long);
      }
      return PAM_SUCCESS;
    }
    if (res.is(dbus::kErrorBadCode) || res.is(dbus::kErrorInvalidArgument)) {
      ++tries;
      pam_syslog(hook_.pamh(), LOG_NOTICE, "invalid enrollment code (attempt %d of %d)", tries,
                 args_.max_tries);
      hook_.show(PAM_ERROR_MSG, bad_code_message(args_.max_tries - tries).c_str());
      continue;
    }
    if (res.is(dbus::kErrorAlreadyEnrolled) || res.is(dbus::kErrorNoPendingEnrollment)) {
      hook_.show(PAM_ERROR_MSG, res.message().c_str());
      return PAM_AUTH_ERR;
    }
    return client_.failure(res, "ConfirmLoginEnrollment");
  }
  return PAM_MAXTRIES;
}

int Rollout::run(bool offers_enroll, bool offers_skip) {
  CallResult res = client_.call("GetLoginEnrollment", false, challenge_, nullptr, nullptr);
  if (res.status() != CallStatus::kOk)
    return client_.failure(res, "GetLoginEnrollment");
  Offer offer;
  int r = read_offer(res, &offer);
  if (hook_.failed_allocation(r))
    return PAM_BUF_ERR;
  // What BeginAuthentication offered bounds what is done: both must agree.
  offer.enroll = offer.enroll && offers_enroll && args_.enroll;
  offer.skip = offer.skip && offers_skip;
  if (r < 0 || offer.message == nullptr || (!offer.enroll && !offer.skip)) {
    pam_syslog(hook_.pamh(), LOG_ERR, "malformed GetLoginEnrollment reply");
    return PAM_AUTHINFO_UNAVAIL;
  }
  const ShownText message = printable(offer.message);
  if (!offer.enroll) {
    // Nothing to answer: told (best effort), and the login goes on without a factor.
    hook_.show(PAM_TEXT_INFO, message.c_str());
    return skip();
  }
  const char* first = message.c_str();
  r = show_all(&first, 1);
  if (r != PAM_SUCCESS) {
    pam_syslog(hook_.pamh(), LOG_ERR,
               "the application cannot show info messages (PAM_TEXT_INFO failed): enrollment "
               "during login is impossible here; denied");
    hook_.show(PAM_ERROR_MSG, kCannotShow);
    return r == PAM_BUF_ERR ? r : PAM_AUTH_ERR;
  }
  return enroll(offer);
}

}  // namespace

int run_rollout(HookContext& hook, MfadClient& client, const char* user, const char* challenge,
                bool offers_enroll, bool offers_skip) {
  Rollout rollout(hook, client, user, challenge);
  return rollout.run(offers_enroll, offers_skip);
}

}  // namespace mfa::pam

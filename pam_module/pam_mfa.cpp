// pam_mfa.so: a thin, synchronous sd-bus client of mfad (DESIGN.md §3, §4, §7). It holds no
// secret beyond the answer being sent, and every decision is the daemon's. The shape follows
// systemd's pam_systemd_home.c (one private connection per hook) and fprintd's pam_fprintd.c (a
// multi-step dialogue that survives the daemon going away), with SSSD's rule of checking who the
// daemon is before sending it anything secret.
//
// Return contract: PAM_SUCCESS only right after a successful Verify reply (see `ret =
// PAM_SUCCESS` in run_dialogue, the only place it is produced); PAM_IGNORE only for nullok and
// failmode=ignore.
#include <errno.h>
#include <pwd.h>
#include <security/pam_appl.h>
#include <security/pam_ext.h>
#include <security/pam_modules.h>
#include <string.h>
#include <syslog.h>
#include <time.h>
#include <systemd/sd-bus.h>
#include <unistd.h>

#include <cstdarg>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

#include "common/dbus_names.hpp"
#include "common/handles.hpp"
#include "pam_module/pam_answer.hpp"
#include "pam_module/pam_args.hpp"

namespace mfa::pam {
namespace {

constexpr char kMfadUserName[] = "mfad";
constexpr char kCombinedPrompt[] = "Password & verification code: ";
constexpr char kSmsPrompt[] = "SMS code: ";
constexpr char kNotEnrolledMessage[] =
    "Multi-factor authentication is required but not set up for this account; ask your "
    "administrator";
constexpr char kSmsUnavailableMessage[] = "SMS is not available";
constexpr char kTooSlowMessage[] = "The login took too long; please start again";
// "sms" answers per authentication: each may send a text, so they are bounded on our side too.
constexpr int kMaxSmsRequests = 3;
// Daemon messages shown to the user are cut to this length.
constexpr size_t kMaxShownMessage = 256;

// What was typed at a prompt, or a code or password cut out of it: a fixed buffer (so no heap
// copy is left behind by a reallocation), erased with explicit_bzero on clear and destruction.
// Not mfa::SecureString, which erases with OPENSSL_cleanse: that would load libcrypto into every
// login process for this alone (about 2.5 ms of CPU per process start, measured).
class Answer {
 public:
  static constexpr size_t kCapacity = PAM_MAX_RESP_SIZE;

  Answer() = default;
  Answer(const Answer&) = delete;
  Answer& operator=(const Answer&) = delete;
  ~Answer() { clear(); }

  // s may point into this buffer. False (and left empty) when s does not fit.
  bool assign(std::string_view s) {
    if (s.size() > kCapacity) {
      clear();
      return false;
    }
    memmove(buf_, s.data(), s.size());
    explicit_bzero(buf_ + s.size(), sizeof(buf_) - s.size());
    len_ = s.size();
    return true;
  }
  std::string_view view() const { return {buf_, len_}; }
  const char* c_str() const { return buf_; }
  size_t size() const { return len_; }
  bool empty() const { return len_ == 0; }
  void clear() {
    explicit_bzero(buf_, sizeof(buf_));
    len_ = 0;
  }

 private:
  char buf_[kCapacity + 1] = {};
  size_t len_ = 0;
};

// A daemon message fit to show: bounded and without control characters.
std::string printable(std::string_view s) {
  std::string out;
  for (char c : s.substr(0, kMaxShownMessage)) {
    unsigned char u = static_cast<unsigned char>(c);
    out += (u < 0x20 || u == 0x7f) ? ' ' : c;
  }
  return out;
}

const char* get_string_item(pam_handle_t* pamh, int item) {
  const void* value = nullptr;
  if (pam_get_item(pamh, item, &value) != PAM_SUCCESS || value == nullptr)
    return nullptr;
  return static_cast<const char*>(value);
}

// The outcome of one bus call, classified once so that every caller maps it the same way.
enum class CallStatus {
  kOk,
  kUnreachable,  // no bus, name gone, timeout, disconnected: failmode decides
  kDenied,       // the bus or the daemon refused us (not root, policy): never ignorable
  kDaemonError,  // an org.mfad1.Error.* reply: see error_name
  kLocal,        // could not even build the message: internal error
};

struct CallResult {
  CallStatus status = CallStatus::kLocal;
  int r = 0;
  std::string error_name;
  std::string error_message;
  BusMessagePtr reply;
  bool is(const char* name) const { return error_name == name; }
};

CallStatus classify(int r, const sd_bus_error& error) {
  if (r >= 0)
    return CallStatus::kOk;
  if (sd_bus_error_is_set(&error)) {
    std::string_view name(error.name);
    if (name.starts_with(dbus::kErrorPrefix)) {
      return name == dbus::kErrorNotAllowed ? CallStatus::kDenied : CallStatus::kDaemonError;
    }
    if (name == SD_BUS_ERROR_ACCESS_DENIED || name == SD_BUS_ERROR_AUTH_FAILED)
      return CallStatus::kDenied;
    if (name == SD_BUS_ERROR_NO_MEMORY)
      return CallStatus::kLocal;
    // ServiceUnknown, NameHasNoOwner, NoReply, Timeout, Disconnected, UnknownMethod (a daemon of
    // another version): the daemon is not there to decide.
    return CallStatus::kUnreachable;
  }
  if (r == -ENOMEM || r == -EINVAL)
    return CallStatus::kLocal;
  if (r == -EACCES || r == -EPERM)
    return CallStatus::kDenied;
  // Anything else from the transport (ETIMEDOUT, ECONNRESET, ENOTCONN, EIO, ...): no answer.
  return CallStatus::kUnreachable;
}

uint64_t monotonic_usec() {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<uint64_t>(ts.tv_sec) * 1000000 + static_cast<uint64_t>(ts.tv_nsec) / 1000;
}

// A GetNameOwner reply, gathered asynchronously.
struct OwnerReply {
  bool done = false;
  BusMessagePtr reply;
};

int on_owner_reply(sd_bus_message* m, void* userdata, sd_bus_error* /*ret_error*/) {
  auto* owner = static_cast<OwnerReply*>(userdata);
  owner->reply.reset(sd_bus_message_ref(m));
  owner->done = true;
  return 1;
}

class Dialogue {
 public:
  Dialogue(pam_handle_t* pamh, int flags, const PamArgs& args)
      : pamh_(pamh), flags_(flags), args_(args) {}
  Dialogue(const Dialogue&) = delete;
  Dialogue& operator=(const Dialogue&) = delete;
  ~Dialogue() { end_authentication(); }

  int run(const char* user);
  // pam_sm_open_session / pam_sm_close_session (DESIGN.md §8).
  int open_session(const char* user);
  int close_session();

 private:
  void debug(const char* fmt, ...) const __attribute__((format(printf, 2, 3)));
  int unavailable() const {
    return args_.failmode == FailMode::kIgnore ? PAM_IGNORE : PAM_AUTHINFO_UNAVAIL;
  }
  // The PAM result for a call that failed in a way common to every method.
  int common_failure(const CallResult& res, const char* method);

  int connect();
  int check_daemon_identity();
  // Whether a connection of this uid may be sent codes: root or the mfad user.
  bool trusted_owner(uid_t uid) const;
  // The unique name owning org.mfad1, or "" when it is not owned (or the bus failed).
  std::string name_owner();
  // For pam_sm_open_session in the same process: which factor this authentication used.
  void remember_factor(const char* method);
  int begin_authentication(const char* user);
  // A method call of org.mfad1.Manager with up to two strings and a context; null (and *ret_r
  // set) when it cannot be built.
  BusMessagePtr build(const char* destination, const char* member, bool sensitive, const char* a,
                      const char* b,
                      const std::vector<std::pair<const char*, std::string>>* context, int* ret_r);
  std::vector<std::pair<const char*, std::string>> login_context() const;
  int run_dialogue();
  void end_authentication();

  CallResult call(const char* member, bool sensitive, const char* a, const char* b,
                  const std::vector<std::pair<const char*, std::string>>* context);

  // One echo-off prompt. *ret_too_long is set (and the answer left empty) for answers over
  // limit bytes, which are never sent.
  int prompt(const char* text, size_t limit, Answer* ret_answer, bool* ret_too_long);
  void show(int style, const std::string& text);
  void show_bad_code(int tries_left);
  // The first answer from PAM_AUTHTOK (use_first_pass/try_first_pass); false when there is none
  // that looks like a code.
  bool first_pass_answer(Answer* ret_code);
  // Splits "password + 6 digits"; forwards the password as PAM_AUTHTOK when forward_pass is set.
  void take_combined(std::string_view combined, Answer* ret_code);

  pam_handle_t* pamh_;
  int flags_;
  const PamArgs& args_;
  BusPtr bus_;
  std::string daemon_;     // the unique name that owned org.mfad1 when it was checked
  std::string challenge_;  // not a secret: tied to our connection by the daemon
};

void Dialogue::debug(const char* fmt, ...) const {
  if (!args_.debug)
    return;
  va_list ap;
  va_start(ap, fmt);
  pam_vsyslog(pamh_, LOG_DEBUG, fmt, ap);
  va_end(ap);
}

BusMessagePtr Dialogue::build(const char* destination, const char* member, bool sensitive,
                              const char* a, const char* b,
                              const std::vector<std::pair<const char*, std::string>>* context,
                              int* ret_r) {
  sd_bus_message* raw = nullptr;
  int r = sd_bus_message_new_method_call(bus_.get(), &raw, destination, dbus::kObjectPath,
                                         dbus::kInterface, member);
  BusMessagePtr m(raw);
  if (r >= 0 && sensitive)
    r = sd_bus_message_sensitive(m.get());
  if (r >= 0 && a)
    r = sd_bus_message_append(m.get(), "s", a);
  if (r >= 0 && b)
    r = sd_bus_message_append(m.get(), "s", b);
  if (r >= 0 && context) {
    r = sd_bus_message_open_container(m.get(), 'a', "{ss}");
    for (const auto& [key, value] : *context) {
      if (r < 0)
        break;
      r = sd_bus_message_append(m.get(), "{ss}", key, value.c_str());
    }
    if (r >= 0)
      r = sd_bus_message_close_container(m.get());
  }
  *ret_r = r;
  if (r < 0)
    m.reset();
  return m;
}

CallResult Dialogue::call(const char* member, bool sensitive, const char* a, const char* b,
                          const std::vector<std::pair<const char*, std::string>>* context) {
  CallResult res;
  BusMessagePtr m = build(daemon_.c_str(), member, sensitive, a, b, context, &res.r);
  if (!m) {
    res.status = CallStatus::kLocal;
    return res;
  }
  sd_bus_error error = SD_BUS_ERROR_NULL;
  sd_bus_message* reply = nullptr;
  uint64_t timeout_usec = static_cast<uint64_t>(args_.timeout_seconds) * 1000000;
  res.r = sd_bus_call(bus_.get(), m.get(), timeout_usec, &error, &reply);
  res.reply.reset(reply);
  res.status = classify(res.r, error);
  if (sd_bus_error_is_set(&error)) {
    res.error_name = error.name;
    if (error.message)
      res.error_message = printable(error.message);
  }
  sd_bus_error_free(&error);
  return res;
}

int Dialogue::common_failure(const CallResult& res, const char* method) {
  switch (res.status) {
    case CallStatus::kUnreachable:
      pam_syslog(pamh_, LOG_ERR, "mfad did not answer %s: %s%s", method,
                 res.error_name.empty() ? strerror(-res.r) : res.error_name.c_str(),
                 args_.failmode == FailMode::kIgnore ? " (failmode=ignore)" : "");
      return unavailable();
    case CallStatus::kDenied:
      pam_syslog(pamh_, LOG_ERR, "mfad refused %s: %s", method,
                 res.error_name.empty() ? strerror(-res.r) : res.error_name.c_str());
      return PAM_AUTHINFO_UNAVAIL;
    case CallStatus::kLocal:
      pam_syslog(pamh_, LOG_ERR, "cannot call %s: %s", method, strerror(-res.r));
      return PAM_SYSTEM_ERR;
    case CallStatus::kDaemonError:
    case CallStatus::kOk:
      break;
  }
  if (res.is(dbus::kErrorRateLimited)) {
    show(PAM_ERROR_MSG, res.error_message.empty() ? "Too many failed attempts; try again later"
                                                  : res.error_message);
    pam_syslog(pamh_, LOG_NOTICE, "%s: rate limited", method);
    return PAM_MAXTRIES;
  }
  if (res.is(dbus::kErrorNoSuchChallenge) || res.is(dbus::kErrorChallengeExpired)) {
    show(PAM_ERROR_MSG, kTooSlowMessage);
    return PAM_AUTH_ERR;
  }
  // StorageFailure, Internal, LimitExceeded and anything newer: the daemon could not decide.
  pam_syslog(pamh_, LOG_ERR, "mfad failed %s: %s: %s", method, res.error_name.c_str(),
             res.error_message.c_str());
  return PAM_AUTHINFO_UNAVAIL;
}

int Dialogue::connect() {
  sd_bus* raw = nullptr;
  int r;
  if (args_.bus_address.empty()) {
    // sd-bus reads DBUS_SYSTEM_BUS_ADDRESS with secure_getenv: setuid hosts ignore it.
    r = sd_bus_open_system(&raw);
    bus_.reset(raw);
  } else {
    r = sd_bus_new(&raw);
    bus_.reset(raw);
    if (r >= 0)
      r = sd_bus_set_address(bus_.get(), args_.bus_address.c_str());
    if (r >= 0)
      r = sd_bus_set_bus_client(bus_.get(), 1);
    if (r >= 0)
      r = sd_bus_start(bus_.get());
  }
  // Also bounds the calls sd-bus makes on our behalf (Hello, GetNameOwner, credentials).
  if (r >= 0)
    r = sd_bus_set_method_call_timeout(bus_.get(),
                                       static_cast<uint64_t>(args_.timeout_seconds) * 1000000);
  if (r < 0) {
    pam_syslog(pamh_, LOG_ERR, "cannot connect to the %s bus: %s",
               args_.bus_address.empty() ? "system" : "configured", strerror(-r));
    bus_.reset();
    return unavailable();
  }
  return PAM_SUCCESS;
}

// Who owns org.mfad1 must be root or the mfad user before any code goes out (SSSD's
// check_server_cred in pam_sss.c); later calls go to that unique name only, so that a new owner
// mid-dialogue makes them fail instead of receiving the code.
int Dialogue::check_daemon_identity() {
  std::string owner = name_owner();
  if (owner.empty()) {
    // Not running: ask the bus to activate it (a no-op error where there is no activation
    // file), then look once more.
    sd_bus_error error = SD_BUS_ERROR_NULL;
    int s = sd_bus_call_method(bus_.get(), "org.freedesktop.DBus", "/org/freedesktop/DBus",
                               "org.freedesktop.DBus", "StartServiceByName", &error, nullptr, "su",
                               dbus::kBusName, 0u);
    sd_bus_error_free(&error);
    if (s >= 0)
      owner = name_owner();
  }
  if (owner.empty()) {
    pam_syslog(pamh_, LOG_ERR, "mfad is not running (%s is not owned)", dbus::kBusName);
    return unavailable();
  }
  // A unique name: one GetConnectionCredentials.
  sd_bus_creds* raw = nullptr;
  int r =
      sd_bus_get_name_creds(bus_.get(), owner.c_str(), SD_BUS_CREDS_EUID | SD_BUS_CREDS_UID, &raw);
  BusCredsPtr creds(raw);
  uid_t uid = static_cast<uid_t>(-1);
  if (r < 0 || (sd_bus_creds_get_euid(creds.get(), &uid) < 0 &&
                sd_bus_creds_get_uid(creds.get(), &uid) < 0)) {
    pam_syslog(pamh_, LOG_ERR, "cannot tell who owns %s", dbus::kBusName);
    return unavailable();
  }
  if (!trusted_owner(uid))
    return unavailable();
  daemon_ = std::move(owner);
  debug("mfad is %s (uid %u)", daemon_.c_str(), static_cast<unsigned>(uid));
  return PAM_SUCCESS;
}

// Sent with sd_bus_call_method_async, GetNameOwner leaves in the same write as the connection's
// Hello (sd_bus_call would first wait for Hello's reply): one round trip less per login.
std::string Dialogue::name_owner() {
  OwnerReply owner;
  sd_bus_slot* raw = nullptr;
  int r = sd_bus_call_method_async(bus_.get(), &raw, "org.freedesktop.DBus",
                                   "/org/freedesktop/DBus", "org.freedesktop.DBus", "GetNameOwner",
                                   on_owner_reply, &owner, "s", dbus::kBusName);
  BusSlotPtr slot(raw);
  // Our own deadline too: while the connection authenticates, sd-bus waits on its 90 s
  // handshake timeout, not on the call's.
  const uint64_t timeout_usec = static_cast<uint64_t>(args_.timeout_seconds) * 1000000;
  const uint64_t deadline = monotonic_usec() + timeout_usec;
  while (r >= 0 && !owner.done) {
    r = sd_bus_process(bus_.get(), nullptr);
    if (r == 0) {
      const uint64_t now = monotonic_usec();
      if (now >= deadline)
        r = -ETIMEDOUT;
      else
        r = sd_bus_wait(bus_.get(), deadline - now);
    }
    if (r == -EINTR)
      r = 0;
  }
  const char* unique = nullptr;
  if (r < 0 || !owner.reply || sd_bus_message_is_method_error(owner.reply.get(), nullptr) ||
      sd_bus_message_read(owner.reply.get(), "s", &unique) <= 0 || unique == nullptr ||
      unique[0] != ':')
    return {};
  return unique;
}

bool Dialogue::trusted_owner(uid_t uid) const {
  bool trusted = uid == 0;
  if (!trusted) {
    struct passwd pw;
    struct passwd* found = nullptr;
    std::vector<char> buf(16384);
    if (getpwnam_r(kMfadUserName, &pw, buf.data(), buf.size(), &found) == 0 && found != nullptr)
      trusted = found->pw_uid == uid;
  }
  if (!trusted) {
    pam_syslog(pamh_, LOG_ERR, "%s is owned by uid %u, not root or %s: not sending codes",
               dbus::kBusName, static_cast<unsigned>(uid), kMfadUserName);
  }
  return trusted;
}

std::vector<std::pair<const char*, std::string>> Dialogue::login_context() const {
  std::vector<std::pair<const char*, std::string>> context;
  const std::pair<const char*, int> items[] = {
      {"service", PAM_SERVICE}, {"rhost", PAM_RHOST}, {"tty", PAM_TTY}, {"ruser", PAM_RUSER}};
  for (const auto& [key, item] : items) {
    const char* value = get_string_item(pamh_, item);
    std::string_view v = value ? value : "";
    if (v.size() > dbus::kMaxContextValueLength) {
      debug("PAM item %s is too long; sent empty", key);
      v = "";
    }
    context.emplace_back(key, std::string(v));
  }
  return context;
}

int Dialogue::begin_authentication(const char* user) {
  std::vector<std::pair<const char*, std::string>> context = login_context();
  if (!args_.methods.empty())
    context.emplace_back("methods", args_.methods);
  CallResult res = call("BeginAuthentication", false, user, nullptr, &context);
  if (res.status == CallStatus::kOk) {
    const char* challenge = nullptr;
    int r = sd_bus_message_read(res.reply.get(), "s", &challenge);
    if (r < 0 || challenge == nullptr || challenge[0] == '\0' || strlen(challenge) > 256) {
      pam_syslog(pamh_, LOG_ERR, "malformed BeginAuthentication reply");
      return PAM_AUTHINFO_UNAVAIL;
    }
    challenge_ = challenge;
    // The methods are for logging only: the daemon decides what an answer is.
    debug("challenge opened for %s", user);
    return PAM_SUCCESS;
  }
  if (res.is(dbus::kErrorNotEnrolled)) {
    if (args_.nullok) {
      debug("%s has no factor: nullok", user);
      return PAM_IGNORE;
    }
    show(PAM_ERROR_MSG, kNotEnrolledMessage);
    pam_syslog(pamh_, LOG_NOTICE, "%s has no second factor: denied", user);
    return PAM_AUTH_ERR;
  }
  if (res.is(dbus::kErrorNoSuchUser))
    return PAM_USER_UNKNOWN;
  if (res.is(dbus::kErrorInvalidArgument)) {
    pam_syslog(pamh_, LOG_ERR, "mfad refused the request: %s", res.error_message.c_str());
    return PAM_AUTH_ERR;
  }
  if (res.is(dbus::kErrorLimitExceeded)) {
    show(PAM_ERROR_MSG, "Too many logins in progress; try again later");
    return PAM_AUTH_ERR;
  }
  return common_failure(res, "BeginAuthentication");
}

// EndAuthentication on every path, best effort and without waiting: no reply is expected, so a
// frozen daemon cannot hold the login; the daemon also drops our challenges when we disconnect.
void Dialogue::end_authentication() {
  if (!bus_ || challenge_.empty())
    return;
  sd_bus_message* raw = nullptr;
  if (sd_bus_message_new_method_call(bus_.get(), &raw, daemon_.c_str(), dbus::kObjectPath,
                                     dbus::kInterface, "EndAuthentication") < 0)
    return;
  BusMessagePtr m(raw);
  if (sd_bus_message_append(m.get(), "s", challenge_.c_str()) < 0)
    return;
  if (sd_bus_message_set_expect_reply(m.get(), 0) < 0)
    return;
  (void)sd_bus_send(bus_.get(), m.get(), nullptr);
  challenge_.clear();
}

void Dialogue::show(int style, const std::string& text) {
  if (style == PAM_TEXT_INFO && (flags_ & PAM_SILENT))
    return;
  (void)pam_prompt(pamh_, style, nullptr, "%s", text.c_str());
}

void Dialogue::show_bad_code(int tries_left) {
  if (tries_left <= 0) {
    show(PAM_ERROR_MSG, "Invalid code");
  } else {
    show(PAM_ERROR_MSG, "Invalid code, " + std::to_string(tries_left) +
                            (tries_left == 1 ? " try left" : " tries left"));
  }
}

int Dialogue::prompt(const char* text, size_t limit, Answer* ret_answer, bool* ret_too_long) {
  const void* item = nullptr;
  if (pam_get_item(pamh_, PAM_CONV, &item) != PAM_SUCCESS || item == nullptr)
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
    return PAM_CONV_ERR;
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
  if (args_.forward_pass && pam_set_item(pamh_, PAM_AUTHTOK, password.c_str()) != PAM_SUCCESS)
    pam_syslog(pamh_, LOG_ERR, "cannot forward the password");
}

bool Dialogue::first_pass_answer(Answer* ret_code) {
  const char* authtok = get_string_item(pamh_, PAM_AUTHTOK);
  if (authtok == nullptr)
    return false;
  size_t len = strnlen(authtok, Answer::kCapacity + 1);
  if (len > Answer::kCapacity)
    return false;
  take_combined(std::string_view(authtok, len), ret_code);
  return !ret_code->empty();
}

int Dialogue::run_dialogue() {
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
        debug("use_first_pass: no code in PAM_AUTHTOK");
        return PAM_AUTH_ERR;
      }
    }
    if (!have_answer) {
      const bool combined = first && args_.forward_pass;
      const char* text = sms_sent                ? kSmsPrompt
                         : !args_.prompt.empty() ? args_.prompt.c_str()
                         : combined              ? kCombinedPrompt
                                                 : kDefaultPrompt;
      // A combined answer holds a password too: it may be as long as PAM allows.
      Answer typed;
      int r = prompt(text, combined ? Answer::kCapacity : dbus::kMaxCodeLength, &typed, &too_long);
      if (r != PAM_SUCCESS) {
        pam_syslog(pamh_, LOG_ERR, "conversation failed");
        return PAM_CONV_ERR;
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
        show(PAM_ERROR_MSG, "No more SMS codes can be sent during this login");
        ++tries;
        continue;
      }
      ++sms_requests;
      CallResult res = call("SendSmsCode", false, challenge_.c_str(), nullptr, nullptr);
      if (res.status == CallStatus::kOk) {
        const char* masked = nullptr;
        if (sd_bus_message_read(res.reply.get(), "s", &masked) >= 0 && masked && masked[0])
          show(PAM_TEXT_INFO, "A code was sent to " + printable(masked));
        else
          show(PAM_TEXT_INFO, "A code was sent by SMS");
        sms_sent = true;
        continue;
      }
      if (res.is(dbus::kErrorSmsUnavailable) || res.is(dbus::kErrorNotEnrolled) ||
          res.is(dbus::kErrorInvalidArgument)) {
        show(PAM_ERROR_MSG, kSmsUnavailableMessage);
        continue;
      }
      if (res.is(dbus::kErrorSmsRateLimited)) {
        show(PAM_ERROR_MSG,
             res.error_message.empty() ? "Too many SMS codes; try again later" : res.error_message);
        continue;
      }
      return common_failure(res, "SendSmsCode");
    }

    if (too_long || answer.empty()) {
      ++tries;
      show_bad_code(args_.max_tries - tries);
      continue;
    }

    CallResult res = call("Verify", true, challenge_.c_str(), answer.c_str(), nullptr);
    answer.clear();
    if (res.status == CallStatus::kOk) {
      const char* method = nullptr;
      if (sd_bus_message_read(res.reply.get(), "s", &method) < 0 || method == nullptr) {
        pam_syslog(pamh_, LOG_ERR, "malformed Verify reply");
        return PAM_AUTHINFO_UNAVAIL;
      }
      if (!method_allowed(args_, method)) {
        pam_syslog(pamh_, LOG_ERR, "mfad accepted a %s code, which this service does not allow",
                   printable(method).c_str());
        return PAM_AUTH_ERR;
      }
      debug("verified by %s", printable(method).c_str());
      remember_factor(method);
      ret = PAM_SUCCESS;
      break;
    }
    if (res.is(dbus::kErrorBadCode) || res.is(dbus::kErrorInvalidArgument)) {
      ++tries;
      pam_syslog(pamh_, LOG_NOTICE, "invalid code (attempt %d of %d)", tries, args_.max_tries);
      if (from_first_pass && args_.pass_mode == PassMode::kUseFirstPass)
        return PAM_AUTH_ERR;
      show_bad_code(args_.max_tries - tries);
      continue;
    }
    return common_failure(res, "Verify");
  }
  return ret;
}

int Dialogue::run(const char* user) {
  int r = connect();
  if (r != PAM_SUCCESS)
    return r;
  r = check_daemon_identity();
  if (r != PAM_SUCCESS)
    return r;
  r = begin_authentication(user);
  if (r != PAM_SUCCESS)
    return r;
  return run_dialogue();
}

constexpr char kFactorData[] = "pam_mfa_factor";
constexpr char kSessionData[] = "pam_mfa_session_id";
constexpr char kSessionEnv[] = "MFA_SESSION_ID";
constexpr size_t kMaxSessionId = 128;

void free_data(pam_handle_t* /*pamh*/, void* data, int /*error_status*/) {
  free(data);
}

void Dialogue::remember_factor(const char* method) {
  char* copy = strdup(method);
  if (copy == nullptr || pam_set_data(pamh_, kFactorData, copy, free_data) != PAM_SUCCESS) {
    free(copy);
    debug("cannot remember the factor for the session");
  }
}

int Dialogue::open_session(const char* user) {
  int r = connect();
  if (r != PAM_SUCCESS)
    return r;
  r = check_daemon_identity();
  if (r != PAM_SUCCESS)
    return r;

  std::vector<std::pair<const char*, std::string>> context = login_context();
  // pam_systemd, earlier in the stack, exports the logind session id.
  const char* logind = pam_getenv(pamh_, "XDG_SESSION_ID");
  if (logind != nullptr && strlen(logind) <= 64)
    context.emplace_back("logind_session", logind);
  context.emplace_back("leader_pid", std::to_string(getpid()));
  const void* factor = nullptr;
  if (pam_get_data(pamh_, kFactorData, &factor) == PAM_SUCCESS && factor != nullptr)
    context.emplace_back("factor", static_cast<const char*>(factor));

  CallResult res = call("OpenSession", false, user, nullptr, &context);
  if (res.status == CallStatus::kOk) {
    const char* id = nullptr;
    r = sd_bus_message_read(res.reply.get(), "s", &id);
    if (r < 0 || id == nullptr || id[0] == '\0' || strlen(id) > kMaxSessionId) {
      pam_syslog(pamh_, LOG_ERR, "malformed OpenSession reply");
      return PAM_SESSION_ERR;
    }
    char* copy = strdup(id);
    if (copy == nullptr || pam_set_data(pamh_, kSessionData, copy, free_data) != PAM_SUCCESS) {
      free(copy);
      return PAM_BUF_ERR;
    }
    std::string env = std::string(kSessionEnv) + "=" + id;
    if (pam_putenv(pamh_, env.c_str()) != PAM_SUCCESS)
      pam_syslog(pamh_, LOG_WARNING, "cannot export %s", kSessionEnv);
    debug("session %s registered for %s", id, user);
    return PAM_SUCCESS;
  }
  if (res.is(dbus::kErrorSessionLimit)) {
    show(PAM_ERROR_MSG, res.error_message.empty() ? "Too many sessions; log out of another first"
                                                  : res.error_message);
    pam_syslog(pamh_, LOG_NOTICE, "%s has too many sessions: denied", user);
    return PAM_PERM_DENIED;
  }
  if (res.is(dbus::kErrorNoSuchUser))
    return PAM_USER_UNKNOWN;
  if (res.is(dbus::kErrorInvalidArgument)) {
    pam_syslog(pamh_, LOG_ERR, "mfad refused the session: %s", res.error_message.c_str());
    return PAM_SESSION_ERR;
  }
  return common_failure(res, "OpenSession");
}

int Dialogue::close_session() {
  const void* data = nullptr;
  const char* id = nullptr;
  if (pam_get_data(pamh_, kSessionData, &data) == PAM_SUCCESS && data != nullptr)
    id = static_cast<const char*>(data);
  else
    id = pam_getenv(pamh_, kSessionEnv);
  if (id == nullptr || id[0] == '\0' || strlen(id) > kMaxSessionId) {
    debug("no session was registered: nothing to close");
    return PAM_IGNORE;
  }
  int r = connect();
  if (r != PAM_SUCCESS)
    return r;
  r = check_daemon_identity();
  if (r != PAM_SUCCESS)
    return r;
  CallResult res = call("CloseSession", false, id, nullptr, nullptr);
  if (res.status == CallStatus::kOk || res.is(dbus::kErrorNoSuchSession)) {
    // NoSuchSession: it was already ended (terminated, expired): nothing left to close.
    debug("session %s closed", id);
    return PAM_SUCCESS;
  }
  return common_failure(res, "CloseSession");
}

// Parses the arguments and the user for a session hook; PAM_SUCCESS with *ret_args set.
int session_setup(pam_handle_t* pamh, int argc, const char** argv, Result<PamArgs>* ret_args,
                  const char** ret_user) {
  *ret_args = parse_pam_args(argc, argv);
  if (!ret_args->ok()) {
    pam_syslog(pamh, LOG_ERR, "%s", ret_args->error().message.c_str());
    return PAM_SERVICE_ERR;
  }
  const char* user = nullptr;
  int r = pam_get_item(pamh, PAM_USER, reinterpret_cast<const void**>(&user));
  if (r != PAM_SUCCESS || user == nullptr || user[0] == '\0' ||
      strnlen(user, dbus::kMaxUserNameLength + 1) > dbus::kMaxUserNameLength)
    return PAM_SESSION_ERR;
  *ret_user = user;
  return PAM_SUCCESS;
}

int open_session(pam_handle_t* pamh, int flags, int argc, const char** argv) {
  Result<PamArgs> args = make_error(Errc::kInternal, "");
  const char* user = nullptr;
  int r = session_setup(pamh, argc, argv, &args, &user);
  if (r != PAM_SUCCESS)
    return r;
  Dialogue dialogue(pamh, flags, args.value());
  return dialogue.open_session(user);
}

int close_session(pam_handle_t* pamh, int flags, int argc, const char** argv) {
  Result<PamArgs> args = make_error(Errc::kInternal, "");
  const char* user = nullptr;
  int r = session_setup(pamh, argc, argv, &args, &user);
  if (r != PAM_SUCCESS)
    return r;
  Dialogue dialogue(pamh, flags, args.value());
  return dialogue.close_session();
}

int authenticate(pam_handle_t* pamh, int flags, int argc, const char** argv) {
  Result<PamArgs> parsed = parse_pam_args(argc, argv);
  if (!parsed.ok()) {
    pam_syslog(pamh, LOG_ERR, "%s", parsed.error().message.c_str());
    return PAM_SERVICE_ERR;
  }
  const PamArgs& args = parsed.value();
  for (const std::string& name : args.unknown)
    pam_syslog(pamh, LOG_WARNING, "unknown module argument ignored: %s", name.c_str());

  const char* user = nullptr;
  int r = pam_get_user(pamh, &user, nullptr);
  if (r == PAM_CONV_ERR || r == PAM_CONV_AGAIN)
    return PAM_CONV_ERR;
  if (r == PAM_BUF_ERR || r == PAM_SYSTEM_ERR)
    return PAM_SYSTEM_ERR;
  if (r != PAM_SUCCESS || user == nullptr || user[0] == '\0' ||
      strnlen(user, dbus::kMaxUserNameLength + 1) > dbus::kMaxUserNameLength)
    return PAM_USER_UNKNOWN;

  Dialogue dialogue(pamh, flags, args);
  return dialogue.run(user);
}

}  // namespace
}  // namespace mfa::pam

// The only symbols exported (pam_mfa.map). The module is built without exceptions, so none can
// cross into the C host; running out of memory aborts the host (pam_runtime.cpp): fail closed.
extern "C" {

PAM_EXTERN __attribute__((visibility("default"))) int pam_sm_authenticate(pam_handle_t* pamh,
                                                                          int flags, int argc,
                                                                          const char** argv) {
  return mfa::pam::authenticate(pamh, flags, argc, argv);
}

PAM_EXTERN __attribute__((visibility("default"))) int pam_sm_setcred(pam_handle_t*, int, int,
                                                                     const char**) {
  return PAM_SUCCESS;
}

// Session registration (DESIGN.md §8): the same failure rules as authentication.
PAM_EXTERN __attribute__((visibility("default"))) int pam_sm_open_session(pam_handle_t* pamh,
                                                                          int flags, int argc,
                                                                          const char** argv) {
  return mfa::pam::open_session(pamh, flags, argc, argv);
}

PAM_EXTERN __attribute__((visibility("default"))) int pam_sm_close_session(pam_handle_t* pamh,
                                                                           int flags, int argc,
                                                                           const char** argv) {
  return mfa::pam::close_session(pamh, flags, argc, argv);
}

}  // extern "C"

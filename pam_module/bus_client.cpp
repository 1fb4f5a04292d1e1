#include "pam_module/bus_client.hpp"

#include <assert.h>
#include <errno.h>
#include <pwd.h>
#include <security/pam_ext.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <time.h>

#include "common/dbus_names.hpp"

namespace mfa::pam {
namespace {

constexpr char kMfadUserName[] = "mfad";
constexpr char kTooSlowMessage[] = "The login took too long; please start again";
// getpwnam_r's buffer for the mfad user's entry.
constexpr size_t kPasswdBufferSize = 16384;

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

const char* describe(int r, const CallResult& res) {
  return res.error_name()[0] != '\0' ? res.error_name() : strerror(-r);
}

}  // namespace

void BusContext::add(const char* key, const char* value) {
  assert(size_ < kCapacity);
  if (size_ < kCapacity)
    entries_[size_++] = {key, value};
}

BusContext login_context(const HookContext& hook) {
  BusContext context;
  const std::pair<const char*, int> items[] = {
      {"service", PAM_SERVICE}, {"rhost", PAM_RHOST}, {"tty", PAM_TTY}, {"ruser", PAM_RUSER}};
  for (const auto& [key, item] : items) {
    const char* value = hook.item(item);
    if (value == nullptr) {
      value = "";
    } else if (strnlen(value, dbus::kMaxContextValueLength + 1) > dbus::kMaxContextValueLength) {
      hook.debug("PAM item %s is too long; sent empty", key);
      value = "";
    }
    context.add(key, value);
  }
  return context;
}

CallResult::CallResult(CallResult&& other) noexcept
    : status_(other.status_), r_(other.r_), reply_(std::move(other.reply_)), error_(other.error_) {
  other.error_ = SD_BUS_ERROR_NULL;
}

int CallResult::read_string(const char** ret) const {
  if (!reply_)
    return -ENOMSG;
  const char* s = nullptr;
  int r = sd_bus_message_read(reply_.get(), "s", &s);
  if (r < 0)
    return r;
  if (r == 0 || s == nullptr)
    return -EBADMSG;
  *ret = s;
  return 0;
}

int MfadClient::open() {
  int r = connect();
  if (r != PAM_SUCCESS)
    return r;
  return check_daemon_identity();
}

int MfadClient::connect() {
  sd_bus* raw = nullptr;
  int r;
  const char* address = hook_.args().bus_address;
  if (address == nullptr) {
    // sd-bus reads DBUS_SYSTEM_BUS_ADDRESS with secure_getenv: setuid hosts ignore it.
    r = sd_bus_open_system(&raw);
    bus_.reset(raw);
  } else {
    r = sd_bus_new(&raw);
    bus_.reset(raw);
    if (r >= 0)
      r = sd_bus_set_address(bus_.get(), address);
    if (r >= 0)
      r = sd_bus_set_bus_client(bus_.get(), 1);
    if (r >= 0)
      r = sd_bus_start(bus_.get());
  }
  // Also bounds the calls sd-bus makes on our behalf (Hello, GetNameOwner, credentials).
  if (r >= 0)
    r = sd_bus_set_method_call_timeout(bus_.get(), hook_.timeout_usec());
  if (r < 0) {
    drop_if_not_ready();
    bus_.reset();
    if (hook_.failed_allocation(r))
      return PAM_BUF_ERR;
    pam_syslog(hook_.pamh(), LOG_ERR, "cannot connect to the %s bus: %s",
               address == nullptr ? "system" : "configured", strerror(-r));
    return hook_.unavailable();
  }
  return PAM_SUCCESS;
}

void MfadClient::drop_if_not_ready() {
  if (bus_ && sd_bus_is_ready(bus_.get()) <= 0)
    sd_bus_close_unref(bus_.release());
}

// Who owns org.mfad1 must be root or the mfad user before any code goes out; later calls go to
// that unique name only, so that a new owner mid-dialogue makes them fail instead of receiving
// the code.
int MfadClient::check_daemon_identity() {
  char owner[kBusNameCapacity] = {};
  int r = name_owner(owner);
  if (r == 0) {
    // Not running: ask the bus to activate it (a no-op error where there is no activation
    // file), then look once more.
    sd_bus_error error = SD_BUS_ERROR_NULL;
    int s = sd_bus_call_method(bus_.get(), "org.freedesktop.DBus", "/org/freedesktop/DBus",
                               "org.freedesktop.DBus", "StartServiceByName", &error, nullptr, "su",
                               dbus::kBusName, 0u);
    sd_bus_error_free(&error);
    if (hook_.failed_allocation(s))
      return PAM_BUF_ERR;
    if (s >= 0)
      r = name_owner(owner);
  }
  if (hook_.failed_allocation(r))
    return PAM_BUF_ERR;
  if (r <= 0) {
    pam_syslog(hook_.pamh(), LOG_ERR, "mfad is not running (%s is not owned)", dbus::kBusName);
    return hook_.unavailable();
  }
  // A unique name: one GetConnectionCredentials.
  sd_bus_creds* raw = nullptr;
  r = sd_bus_get_name_creds(bus_.get(), owner, SD_BUS_CREDS_EUID | SD_BUS_CREDS_UID, &raw);
  BusCredsPtr creds(raw);
  if (hook_.failed_allocation(r))
    return PAM_BUF_ERR;
  uid_t uid = static_cast<uid_t>(-1);
  if (r < 0 || (sd_bus_creds_get_euid(creds.get(), &uid) < 0 &&
                sd_bus_creds_get_uid(creds.get(), &uid) < 0)) {
    pam_syslog(hook_.pamh(), LOG_ERR, "cannot tell who owns %s", dbus::kBusName);
    return hook_.unavailable();
  }
  r = check_trusted_owner(uid);
  if (r != PAM_SUCCESS)
    return r;
  memcpy(daemon_, owner, sizeof(daemon_));
  hook_.debug("mfad is %s (uid %u)", daemon_, static_cast<unsigned>(uid));
  return PAM_SUCCESS;
}

// Sent with sd_bus_call_method_async, GetNameOwner leaves in the same write as the connection's
// Hello (sd_bus_call would first wait for Hello's reply): one round trip less per login.
int MfadClient::name_owner(char (&ret_owner)[kBusNameCapacity]) {
  OwnerReply owner;
  sd_bus_slot* raw = nullptr;
  int r = sd_bus_call_method_async(bus_.get(), &raw, "org.freedesktop.DBus",
                                   "/org/freedesktop/DBus", "org.freedesktop.DBus", "GetNameOwner",
                                   on_owner_reply, &owner, "s", dbus::kBusName);
  BusSlotPtr slot(raw);
  // Our own deadline too: while the connection authenticates, sd-bus waits on its 90 s
  // handshake timeout, not on the call's.
  const uint64_t deadline = monotonic_usec() + hook_.timeout_usec();
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
  if (r < 0)
    return r;
  if (sd_bus_message_is_method_error(owner.reply.get(), nullptr)) {
    // NameHasNoOwner; or NoMemory, from the bus or made up by sd-bus for a local failure.
    int e = sd_bus_message_get_errno(owner.reply.get());
    return e == ENOMEM ? -ENOMEM : 0;
  }
  const char* unique = nullptr;
  r = sd_bus_message_read(owner.reply.get(), "s", &unique);
  if (r < 0)
    return r;
  if (r == 0 || unique == nullptr || unique[0] != ':' || strlen(unique) >= sizeof(ret_owner))
    return 0;
  memcpy(ret_owner, unique, strlen(unique) + 1);
  return 1;
}

int MfadClient::check_trusted_owner(uid_t uid) {
  if (uid == 0)
    return PAM_SUCCESS;
  char* buf = static_cast<char*>(malloc(kPasswdBufferSize));
  if (buf == nullptr)
    return hook_.out_of_memory();
  struct passwd pw;
  struct passwd* found = nullptr;
  int r = getpwnam_r(kMfadUserName, &pw, buf, kPasswdBufferSize, &found);
  bool trusted = r == 0 && found != nullptr && found->pw_uid == uid;
  free(buf);
  if (r == ENOMEM)
    return hook_.out_of_memory();
  if (!trusted) {
    pam_syslog(hook_.pamh(), LOG_ERR, "%s is owned by uid %u, not root or %s: not sending codes",
               dbus::kBusName, static_cast<unsigned>(uid), kMfadUserName);
    return hook_.unavailable();
  }
  return PAM_SUCCESS;
}

int MfadClient::build(const char* member, bool sensitive, const char* a, const char* b,
                      const BusContext* context, BusMessagePtr* ret_message) {
  sd_bus_message* raw = nullptr;
  int r = sd_bus_message_new_method_call(bus_.get(), &raw, daemon_, dbus::kObjectPath,
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
      r = sd_bus_message_append(m.get(), "{ss}", key, value);
    }
    if (r >= 0)
      r = sd_bus_message_close_container(m.get());
  }
  if (r >= 0)
    *ret_message = std::move(m);
  return r;
}

CallResult MfadClient::call(const char* member, bool sensitive, const char* a, const char* b,
                            const BusContext* context) {
  CallResult res;
  BusMessagePtr m;
  res.r_ = build(member, sensitive, a, b, context, &m);
  if (res.r_ < 0) {
    res.status_ = classify_call(res.r_, nullptr);
    return res;
  }
  sd_bus_message* reply = nullptr;
  res.r_ = sd_bus_call(bus_.get(), m.get(), hook_.timeout_usec(), &res.error_, &reply);
  res.reply_.reset(reply);
  res.status_ = classify_call(res.r_, sd_bus_error_is_set(&res.error_) ? res.error_.name : nullptr);
  return res;
}

// Best effort and without waiting: no reply is expected, so a frozen daemon cannot hold the login.
void MfadClient::send_without_reply(const char* member, const char* a) {
  if (!bus_)
    return;
  BusMessagePtr m;
  int r = build(member, false, a, nullptr, nullptr, &m);
  if (r >= 0)
    r = sd_bus_message_set_expect_reply(m.get(), 0);
  if (r >= 0)
    r = sd_bus_send(bus_.get(), m.get(), nullptr);
  (void)hook_.failed_allocation(r);
}

int MfadClient::failure(const CallResult& res, const char* method) {
  switch (res.status()) {
    case CallStatus::kUnreachable:
      pam_syslog(hook_.pamh(), LOG_ERR, "mfad did not answer %s: %s%s", method,
                 describe(res.r_, res),
                 hook_.args().failmode == FailMode::kIgnore ? " (failmode=ignore)" : "");
      return hook_.unavailable();
    case CallStatus::kDenied:
      pam_syslog(hook_.pamh(), LOG_ERR, "mfad refused %s: %s", method, describe(res.r_, res));
      return PAM_AUTHINFO_UNAVAIL;
    case CallStatus::kNoMemory:
      pam_syslog(hook_.pamh(), LOG_ERR, "cannot call %s: out of memory", method);
      return hook_.out_of_memory();
    case CallStatus::kLocal:
      pam_syslog(hook_.pamh(), LOG_ERR, "cannot call %s: %s", method, strerror(-res.r_));
      return PAM_SYSTEM_ERR;
    case CallStatus::kDaemonError:
    case CallStatus::kOk:
      break;
  }
  if (res.is(dbus::kErrorRateLimited)) {
    hook_.show(PAM_ERROR_MSG, res.message("Too many failed attempts; try again later").c_str());
    pam_syslog(hook_.pamh(), LOG_NOTICE, "%s: rate limited", method);
    return PAM_MAXTRIES;
  }
  if (res.is(dbus::kErrorNoSuchChallenge) || res.is(dbus::kErrorChallengeExpired)) {
    hook_.show(PAM_ERROR_MSG, kTooSlowMessage);
    return PAM_AUTH_ERR;
  }
  // StorageFailure, Internal, LimitExceeded and anything newer: the daemon could not decide.
  pam_syslog(hook_.pamh(), LOG_ERR, "mfad failed %s: %s: %s", method, res.error_name(),
             res.message().c_str());
  return PAM_AUTHINFO_UNAVAIL;
}

}  // namespace mfa::pam

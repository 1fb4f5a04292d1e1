#include "pam_module/bus_client.hpp"

#include <assert.h>
#include <errno.h>
#include <pwd.h>
#include <security/pam_ext.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

#include "common/dbus_names.hpp"

namespace mfa::pam {
namespace {

constexpr char kMfadUserName[] = "mfad";
constexpr char kTooSlowMessage[] = "The login took too long; please start again";
constexpr char kBusyMessage[] = "The login service is busy; please try again in a moment";
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
    : status_(other.status_),
      r_(other.r_),
      no_connection_(other.no_connection_),
      reply_(std::move(other.reply_)),
      error_(other.error_) {
  other.error_ = SD_BUS_ERROR_NULL;
}

int CallResult::read_bool(bool* ret) const {
  if (!reply_)
    return -ENOMSG;
  int b = 0;
  int r = sd_bus_message_read(reply_.get(), "b", &b);
  if (r < 0)
    return r;
  if (r == 0)
    return -EBADMSG;
  *ret = b != 0;
  return 0;
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
  const uint64_t deadline = monotonic_usec() + hook_.timeout_usec();
  char owner[kBusNameCapacity] = {};
  int r = 0;
  for (int attempt = 0;; ++attempt) {
    r = start();
    if (r >= 0)
      r = name_owner(owner, deadline);
    if (r >= 0 || !retry_connection(r, attempt, deadline))
      break;
  }
  if (r < 0)
    return connection_failure(r);
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
      r = name_owner(owner, monotonic_usec() + hook_.timeout_usec());
    if (r < 0)
      return connection_failure(r);
  }
  if (r == 0) {
    pam_syslog(hook_.pamh(), LOG_ERR, "mfad is not running (%s is not owned)", dbus::kBusName);
    return hook_.unavailable();
  }
  return check_daemon_identity(owner);
}

int MfadClient::start() {
  sd_bus* raw = nullptr;
  int r;
  const char* address = hook_.args().bus_address;
  ++connections_;
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
  }
  return r;
}

void MfadClient::release() {
  // Flushed first: an EndAuthentication sent without a reply leaves before the close.
  bus_.reset();
}

int MfadClient::pump(uint64_t deadline_usec) {
  int r = sd_bus_process(bus_.get(), nullptr);
  if (r == 0) {
    const uint64_t now = monotonic_usec();
    if (now >= deadline_usec)
      return -ETIMEDOUT;
    r = sd_bus_wait(bus_.get(), deadline_usec - now);
  }
  return r == -EINTR ? 0 : r;
}

int MfadClient::reconnect(uint64_t deadline_usec) {
  int r = 0;
  for (int attempt = 0;; ++attempt) {
    r = start();
    // Ready before anything is sent: a connection the bus drops before then never carried a
    // call, so making it again cannot send a code twice.
    while (r >= 0 && sd_bus_is_ready(bus_.get()) <= 0)
      r = pump(deadline_usec);
    if (r >= 0 || !retry_connection(r, attempt, deadline_usec))
      break;
  }
  if (r < 0)
    return r;
  sd_id128_t id = {};
  if (sd_bus_get_bus_id(bus_.get(), &id) < 0 || !sd_id128_equal(id, bus_id_)) {
    // Another bus instance: daemon_ may name another peer there.
    bus_.reset();
    return -ESTALE;
  }
  return 0;
}

bool MfadClient::retry_connection(int r, int attempt, uint64_t deadline_usec) {
  switch (r) {
    case -ENOBUFS:       // Hello refused with LimitsExceeded (max_connections_per_user)
    case -ECONNRESET:    // dropped during the handshake (max_incomplete_connections)
    case -EPIPE:         // ... while we were writing
    case -ENOTCONN:      // ... before we noticed
    case -ECONNABORTED:  //
    case -EAGAIN:        // the listening socket's backlog is full
      break;
    default:
      return false;
  }
  drop_if_not_ready();
  bus_.reset();
  // 4, 8, 16 ... 256 ms, each between half and one and a half of that at random: logins
  // refused together do not come back together, and a burst of them (every person at a prompt
  // answering at once) is not turned into a storm of handshakes the bus must refuse again.
  const uint64_t base = 4000ULL << (attempt < 6 ? attempt : 6);
  const uint64_t jitter = (static_cast<uint64_t>(getpid()) * 2654435761ULL +
                           connections_ * 40503ULL + monotonic_usec() * 11ULL) %
                          (base + 1);
  const uint64_t pause_half = base / 2;
  const uint64_t pause = pause_half + jitter;
  if (monotonic_usec() + pause >= deadline_usec)
    return false;
  struct timespec ts = {static_cast<time_t>(pause / 1000000),
                        static_cast<long>((pause % 1000000) * 1000)};
  while (nanosleep(&ts, &ts) < 0 && errno == EINTR) {
  }
  return true;
}

int MfadClient::connection_failure(int r) {
  if (hook_.failed_allocation(r))
    return PAM_BUF_ERR;
  const char* bus = hook_.args().bus_address == nullptr ? "the system bus" : "the configured bus";
  bool busy = false;
  switch (r) {
    case -ENOENT:
    case -ECONNREFUSED:
      pam_syslog(hook_.pamh(), LOG_ERR, "cannot connect to %s: %s (is dbus-daemon running?)", bus,
                 strerror(-r));
      break;
    case -ENOBUFS:
      pam_syslog(hook_.pamh(), LOG_ERR,
                 "%s refused the connection: its connection limit is reached (LimitsExceeded; "
                 "max_connections_per_user of the bus's configuration)",
                 bus);
      busy = true;
      break;
    case -ECONNRESET:
    case -EPIPE:
    case -ENOTCONN:
    case -ECONNABORTED:
      pam_syslog(hook_.pamh(), LOG_ERR,
                 "%s dropped the connection during its handshake (its limits on connections: "
                 "max_incomplete_connections, auth_timeout): %s",
                 bus, strerror(-r));
      busy = true;
      break;
    case -EAGAIN:
      pam_syslog(hook_.pamh(), LOG_ERR, "%s is not accepting connections (its backlog is full)",
                 bus);
      busy = true;
      break;
    case -ETIMEDOUT:
      pam_syslog(hook_.pamh(), LOG_ERR, "%s did not complete the connection within timeout=%d s",
                 bus, hook_.args().timeout_seconds);
      busy = true;
      break;
    case -ESTALE:
      pam_syslog(hook_.pamh(), LOG_ERR, "%s was restarted during the login", bus);
      break;
    default:
      pam_syslog(hook_.pamh(), LOG_ERR, "cannot connect to %s: %s", bus, strerror(-r));
      break;
  }
  const int result = hook_.unavailable();
  if (busy && result != PAM_IGNORE)
    hook_.show(PAM_ERROR_MSG, kBusyMessage);
  return result;
}

void MfadClient::drop_if_not_ready() {
  if (bus_ && sd_bus_is_ready(bus_.get()) <= 0)
    sd_bus_close_unref(bus_.release());
}

// Who owns org.mfad1 must be root or the mfad user before any code goes out; later calls go to
// that unique name only, so that a new owner mid-dialogue makes them fail instead of receiving
// the code.
int MfadClient::check_daemon_identity(const char* owner) {
  // A unique name: one GetConnectionCredentials.
  sd_bus_creds* raw = nullptr;
  int r = sd_bus_get_name_creds(bus_.get(), owner, SD_BUS_CREDS_EUID | SD_BUS_CREDS_UID, &raw);
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
  r = sd_bus_get_bus_id(bus_.get(), &bus_id_);
  if (r < 0) {
    if (hook_.failed_allocation(r))
      return PAM_BUF_ERR;
    pam_syslog(hook_.pamh(), LOG_ERR, "cannot read the bus's id: %s", strerror(-r));
    return hook_.unavailable();
  }
  memcpy(daemon_, owner, sizeof(daemon_));
  hook_.debug("mfad is %s (uid %u)", daemon_, static_cast<unsigned>(uid));
  return PAM_SUCCESS;
}

// Sent with sd_bus_call_method_async, GetNameOwner leaves in the same write as the connection's
// Hello (sd_bus_call would first wait for Hello's reply): one round trip less per login.
int MfadClient::name_owner(char (&ret_owner)[kBusNameCapacity], uint64_t deadline_usec) {
  OwnerReply owner;
  sd_bus_slot* raw = nullptr;
  int r = sd_bus_call_method_async(bus_.get(), &raw, "org.freedesktop.DBus",
                                   "/org/freedesktop/DBus", "org.freedesktop.DBus", "GetNameOwner",
                                   on_owner_reply, &owner, "s", dbus::kBusName);
  BusSlotPtr slot(raw);
  // Our own deadline too: while the connection authenticates, sd-bus waits on its 90 s
  // handshake timeout, not on the call's.
  while (r >= 0 && !owner.done)
    r = pump(deadline_usec);
  if (r < 0)
    return r;
  if (sd_bus_message_is_method_error(owner.reply.get(), nullptr)) {
    // NameHasNoOwner: 0. NoMemory, from the bus or made up by sd-bus for a local failure; NoReply
    // (sd-bus's own timeout); anything else: the cause.
    const sd_bus_error* e = sd_bus_message_get_error(owner.reply.get());
    if (e != nullptr && sd_bus_error_has_name(e, SD_BUS_ERROR_NAME_HAS_NO_OWNER))
      return 0;
    int errnum = sd_bus_message_get_errno(owner.reply.get());
    return errnum > 0 ? -errnum : -EIO;
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
                      const char* c, const BusContext* context, BusMessagePtr* ret_message) {
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
  if (r >= 0 && c)
    r = sd_bus_message_append(m.get(), "s", c);
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
  return call_with(member, sensitive, a, b, nullptr, context);
}

CallResult MfadClient::call3(const char* member, const char* a, const char* b, const char* c) {
  return call_with(member, false, a, b, c, nullptr);
}

CallResult MfadClient::call_with(const char* member, bool sensitive, const char* a, const char* b,
                                 const char* c, const BusContext* context) {
  CallResult res;
  if (!bus_) {
    res.r_ = reconnect(monotonic_usec() + hook_.timeout_usec());
    if (res.r_ < 0) {
      res.no_connection_ = true;
      res.status_ = res.r_ == -ENOMEM ? CallStatus::kNoMemory : CallStatus::kUnreachable;
      return res;
    }
  }
  BusMessagePtr m;
  res.r_ = build(member, sensitive, a, b, c, context, &m);
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
  int r = bus_ ? 0 : reconnect(monotonic_usec() + hook_.timeout_usec());
  if (r < 0) {
    (void)hook_.failed_allocation(r);
    return;
  }
  BusMessagePtr m;
  r = build(member, false, a, nullptr, nullptr, nullptr, &m);
  if (r >= 0)
    r = sd_bus_message_set_expect_reply(m.get(), 0);
  if (r >= 0)
    r = sd_bus_send(bus_.get(), m.get(), nullptr);
  (void)hook_.failed_allocation(r);
}

int MfadClient::failure(const CallResult& res, const char* method) {
  if (res.no_connection_)
    return connection_failure(res.r_);
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

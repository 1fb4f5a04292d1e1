// The module's side of the bus: a private connection to mfad (systemd's pam_systemd_home.c), its
// owner checked before anything is sent (SSSD's check_server_cred in pam_sss.c), every call
// bounded by timeout=, and each outcome mapped to a PAM result in one place.
//
// A login waiting at its prompt holds no connection: dbus-daemon limits the connections of a uid
// (max_connections_per_user, 256 on Debian's system bus, shared by everything running as root),
// so release() closes it before each prompt and the next call makes a new one (mfad ties the
// challenge to this process, not to the connection: daemon/core/challenges.hpp). A new connection
// is made ready before anything is sent on it; one the bus refuses or drops before it is ready
// (its connection limits under a burst of logins) is made again, with a short random backoff,
// until timeout=.
#pragma once

#include <systemd/sd-bus.h>

#include <array>
#include <cstddef>
#include <utility>

#include "common/handles.hpp"
#include "pam_module/call_status.hpp"
#include "pam_module/hook_context.hpp"
#include "pam_module/shown_text.hpp"

namespace mfa::pam {

// The a{ss} context of BeginAuthentication and OpenSession. The strings are not copied: each
// must outlive the call it is sent with.
class BusContext {
 public:
  static constexpr size_t kCapacity = 10;

  void add(const char* key, const char* value);
  const std::pair<const char*, const char*>* begin() const { return entries_.data(); }
  const std::pair<const char*, const char*>* end() const { return entries_.data() + size_; }

 private:
  std::array<std::pair<const char*, const char*>, kCapacity> entries_{};
  size_t size_ = 0;
};

// service, rhost, tty and ruser, as PAM has them (an item over the bus's limit is sent empty).
BusContext login_context(const HookContext& hook);

// The outcome of one method call: its classification, the reply or the error.
class CallResult {
 public:
  CallResult() = default;
  CallResult(CallResult&& other) noexcept;
  CallResult& operator=(CallResult&&) = delete;
  ~CallResult() { sd_bus_error_free(&error_); }

  CallStatus status() const { return status_; }
  bool is(const char* error_name) const { return sd_bus_error_has_name(&error_, error_name); }
  // The error's name, for logs; "" when there is none.
  const char* error_name() const { return error_.name ? error_.name : ""; }
  // The error's message, fit to show; fallback when there is none.
  ShownText message(const char* fallback = "") const {
    return printable(error_.message && error_.message[0] ? error_.message : fallback);
  }
  // The reply's next argument, a string; a negative errno when there is none.
  int read_string(const char** ret) const;
  // The reply, to read further (null when there is none); it lives as long as this result.
  sd_bus_message* reply() const { return reply_.get(); }
  // The reply's next argument, a boolean; a negative errno when there is none.
  int read_bool(bool* ret) const;

 private:
  friend class MfadClient;

  CallStatus status_ = CallStatus::kLocal;
  int r_ = 0;
  bool no_connection_ = false;  // the call never left: no connection could be made
  BusMessagePtr reply_;
  sd_bus_error error_ = SD_BUS_ERROR_NULL;
};

class MfadClient {
 public:
  // A D-Bus name is at most 255 bytes.
  static constexpr size_t kBusNameCapacity = 256;

  explicit MfadClient(HookContext& hook) : hook_(hook) {}
  ~MfadClient() { drop_if_not_ready(); }
  MfadClient(const MfadClient&) = delete;
  MfadClient& operator=(const MfadClient&) = delete;

  // Connects and checks who owns org.mfad1: PAM_SUCCESS, PAM_BUF_ERR, or failmode's answer.
  int open();
  // Closes the connection (before a prompt, which may last minutes); the next call connects again.
  void release();
  // A method of org.mfad1.Manager with up to two strings and a context, sent to the owner that
  // open() checked and marked sensitive when it carries a code; on a new connection when
  // release() closed the last one.
  CallResult call(const char* member, bool sensitive, const char* a, const char* b,
                  const BusContext* context);
  // A method of three strings (AcceptEnrollmentNotice), not sensitive.
  CallResult call3(const char* member, const char* a, const char* b, const char* c);
  // A call with one string whose reply nobody waits for; best effort.
  void send_without_reply(const char* member, const char* a);
  // The PAM result of a call that failed in a way common to every method; logged, and shown
  // where the user can act on it.
  int failure(const CallResult& res, const char* method);

 private:
  // Starts a new connection (its handshake is driven by what follows): 0 or a negative errno.
  int start();
  // A new connection to the bus open() checked, ready (authenticated, Hello answered) by deadline:
  // 0 or a negative errno.
  int reconnect(uint64_t deadline_usec);
  // One step of the connection: 1 when something was processed, 0 after waiting, a negative
  // errno (-ETIMEDOUT at deadline_usec).
  int pump(uint64_t deadline_usec);
  // Whether a connection that failed with r before it was ready is to be made again (the bus
  // refused or dropped it: its limits); waits the backoff of attempt first.
  bool retry_connection(int r, int attempt, uint64_t deadline_usec);
  // Logs why no connection to mfad could be made and, where the person can act on it (the service
  // is busy), tells them; returns failmode's answer (PAM_BUF_ERR for a failed allocation).
  int connection_failure(int r);
  // Closes a connection that never got through its handshake without flushing it: sd_bus_flush
  // would wait for the handshake, bounded only by sd-bus's own 90 s (a bus daemon that is slow,
  // or a reply lost to a failed allocation). A ready one is flushed on close, so that
  // EndAuthentication leaves.
  void drop_if_not_ready();
  int check_daemon_identity(const char* owner);
  // The unique name owning org.mfad1 into ret_owner: 1, 0 when the name is not owned, or a
  // negative errno.
  int name_owner(char (&ret_owner)[kBusNameCapacity], uint64_t deadline_usec);
  // Whether a connection of this uid may be sent codes (root or the mfad user): PAM_SUCCESS, or
  // the PAM result of refusing it.
  int check_trusted_owner(uid_t uid);
  CallResult call_with(const char* member, bool sensitive, const char* a, const char* b,
                       const char* c, const BusContext* context);
  int build(const char* member, bool sensitive, const char* a, const char* b, const char* c,
            const BusContext* context, BusMessagePtr* ret_message);

  HookContext& hook_;
  BusPtr bus_;
  char daemon_[kBusNameCapacity] = {};  // the unique name that owned org.mfad1 when it was checked
  // The bus instance daemon_ was checked on (the server's GUID): a new connection to another one
  // (dbus-daemon restarted) could find daemon_ given to someone else.
  sd_id128_t bus_id_ = {};
  // Connections made to the bus by this client, for the backoff's jitter.
  unsigned connections_ = 0;
};

}  // namespace mfa::pam

// The module's side of the bus: one private connection to mfad per hook (systemd's
// pam_systemd_home.c), its owner checked before anything is sent (SSSD's check_server_cred in
// pam_sss.c), every call bounded by timeout=, and each outcome mapped to a PAM result in one place.
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
  // The reply's first argument, a string; a negative errno when there is none.
  int read_string(const char** ret) const;

 private:
  friend class MfadClient;

  CallStatus status_ = CallStatus::kLocal;
  int r_ = 0;
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
  // A method of org.mfad1.Manager with up to two strings and a context, sent to the owner that
  // open() checked and marked sensitive when it carries a code.
  CallResult call(const char* member, bool sensitive, const char* a, const char* b,
                  const BusContext* context);
  // A call with one string whose reply nobody waits for; best effort.
  void send_without_reply(const char* member, const char* a);
  // The PAM result of a call that failed in a way common to every method; logged, and shown
  // where the user can act on it.
  int failure(const CallResult& res, const char* method);

 private:
  int connect();
  // Closes a connection that never got through its handshake without flushing it: sd_bus_flush
  // would wait for the handshake, bounded only by sd-bus's own 90 s (a bus daemon that is slow,
  // or a reply lost to a failed allocation). A ready one is flushed on close, so that
  // EndAuthentication leaves.
  void drop_if_not_ready();
  int check_daemon_identity();
  // The unique name owning org.mfad1 into ret_owner: 1, 0 when the name is not owned, or a
  // negative errno.
  int name_owner(char (&ret_owner)[kBusNameCapacity]);
  // Whether a connection of this uid may be sent codes (root or the mfad user): PAM_SUCCESS, or
  // the PAM result of refusing it.
  int check_trusted_owner(uid_t uid);
  int build(const char* member, bool sensitive, const char* a, const char* b,
            const BusContext* context, BusMessagePtr* ret_message);

  HookContext& hook_;
  BusPtr bus_;
  char daemon_[kBusNameCapacity] = {};  // the unique name that owned org.mfad1 when it was checked
};

}  // namespace mfa::pam

// Who is calling: the effective uid and pid the bus daemon recorded when the peer connected
// (SO_PEERCRED), fetched with sd_bus_query_sender_creds. Fields sd-bus would fill in from /proc
// (racy, changed by exec) are never used for a decision: an augmented euid is refused.
//
// On a dbus-daemon bus each query is a round trip to the bus driver. A connection's credentials
// never change and unique names are never reused, so they are cached per unique name and
// forgotten when the peer leaves (NameOwnerChanged). A call from a sender not in the cache waits
// for an asynchronous GetConnectionCredentials (ManagerBus::identify_first, caller_lookup.cpp):
// pam_mfa.so makes a connection per call, and a synchronous query would hold the event loop for a
// round trip through a bus busy with everyone's handshakes.
#pragma once

#include <systemd/sd-bus.h>
#include <sys/types.h>

#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>

#include "core/authenticator.hpp"

namespace mfa {

struct BusRefusal {
  const char* name;  // org.freedesktop.DBus.Error.AccessDenied
  std::string message;
};

// The kernel audit session id and login uid (/proc/PID/sessionid, loginuid) of the caller whose
// bus-recorded pid (SO_PEERCRED at connect, Caller::pid) is pid; Caller::kUnsetAuditId when unset
// or unknown. For OpenSession and CheckFreshSession. Read per call, never cached: pam_loginuid
// sets them during the very session stack that calls OpenSession. dbus-daemon does not pass them
// on, so they come from /proc, with the pid pinned by a pidfd while it is read: a caller that
// exited meanwhile gives nothing. The callers are root PAM hosts blocked in this synchronous
// call; a pid reused between a caller's death and this read would need that caller to die in the
// middle of its own call.
void read_audit_ids(pid_t pid, uint32_t* ret_session, uint32_t* ret_login_uid);

class CallerCache {
 public:
  static constexpr size_t kMaxPeers = 4096;

  // Fills *ret from the message's sender; a refusal when the bus cannot vouch for it.
  std::optional<BusRefusal> identify(sd_bus_message* m, Caller* ret);
  // Whether m's sender is in the cache.
  bool known(sd_bus_message* m) const;
  // The bus driver's GetConnectionCredentials answer for unique_name (UnixUserID: the uid the
  // bus read with SO_PEERCRED, the effective one; ProcessID).
  void learn(const char* unique_name, uid_t euid, pid_t pid);
  void forget(std::string_view unique_name);
  size_t size() const { return peers_.size(); }

 private:
  struct Peer {
    uid_t euid;
    pid_t pid;
  };
  std::unordered_map<std::string, Peer> peers_;
};

}  // namespace mfa

// How the module reads the outcome of one bus call: classified once, so that every caller maps
// it to a PAM result the same way (docs/pam_mfa.md "Return codes").
#pragma once

namespace mfa::pam {

enum class CallStatus {
  kOk,
  kUnreachable,  // no bus, name gone, timeout, disconnected: failmode decides
  kDenied,       // the bus or the daemon refused us (not root, policy): never ignorable
  kDaemonError,  // an org.mfad1.Error.* reply: the caller looks at its name
  kNoMemory,     // an allocation failed, here or in the daemon: PAM_BUF_ERR
  kLocal,        // the message could not even be built: internal error
};

// r: what sd_bus_call (or the building of its message) returned; error_name: the name of the
// error it set, or null when it set none.
CallStatus classify_call(int r, const char* error_name);

}  // namespace mfa::pam

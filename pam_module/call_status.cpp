#include "pam_module/call_status.hpp"

#include <errno.h>
#include <systemd/sd-bus.h>

#include <string_view>

#include "common/dbus_names.hpp"

namespace mfa::pam {

CallStatus classify_call(int r, const char* error_name) {
  if (r >= 0)
    return CallStatus::kOk;
  if (error_name != nullptr) {
    std::string_view name(error_name);
    if (name.starts_with(dbus::kErrorPrefix))
      return name == dbus::kErrorNotAllowed ? CallStatus::kDenied : CallStatus::kDaemonError;
    if (name == SD_BUS_ERROR_ACCESS_DENIED || name == SD_BUS_ERROR_AUTH_FAILED)
      return CallStatus::kDenied;
    // sd-bus sets this one for a local -ENOMEM too.
    if (name == SD_BUS_ERROR_NO_MEMORY)
      return CallStatus::kNoMemory;
    // ServiceUnknown, NameHasNoOwner, NoReply, Timeout, Disconnected, UnknownMethod (a daemon of
    // another version): the daemon is not there to decide.
    return CallStatus::kUnreachable;
  }
  if (r == -ENOMEM)
    return CallStatus::kNoMemory;
  if (r == -EINVAL)
    return CallStatus::kLocal;
  if (r == -EACCES || r == -EPERM)
    return CallStatus::kDenied;
  // Anything else from the transport (ETIMEDOUT, ECONNRESET, ENOTCONN, EIO, ...): no answer.
  return CallStatus::kUnreachable;
}

}  // namespace mfa::pam

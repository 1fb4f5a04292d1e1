#include "pam_module/hook_context.hpp"

#include <errno.h>
#include <security/pam_ext.h>
#include <syslog.h>

#include <cstdarg>

namespace mfa::pam {

const char* HookContext::item(int item_type) const {
  const void* value = nullptr;
  if (pam_get_item(pamh_, item_type, &value) != PAM_SUCCESS || value == nullptr)
    return nullptr;
  return static_cast<const char*>(value);
}

void HookContext::debug(const char* fmt, ...) const {
  if (!args_.debug)
    return;
  va_list ap;
  va_start(ap, fmt);
  pam_vsyslog(pamh_, LOG_DEBUG, fmt, ap);
  va_end(ap);
}

int HookContext::unavailable() const {
  return args_.failmode == FailMode::kIgnore ? PAM_IGNORE : PAM_AUTHINFO_UNAVAIL;
}

void HookContext::show(int style, const char* text) {
  if (style == PAM_TEXT_INFO && (flags_ & PAM_SILENT))
    return;
  (void)checked(pam_prompt(pamh_, style, nullptr, "%s", text));
}

int HookContext::out_of_memory() {
  out_of_memory_ = true;
  return PAM_BUF_ERR;
}

bool HookContext::failed_allocation(int r) {
  if (r != -ENOMEM)
    return false;
  out_of_memory_ = true;
  return true;
}

int HookContext::checked(int pam_result) {
  if (pam_result == PAM_BUF_ERR)
    out_of_memory_ = true;
  return pam_result;
}

int HookContext::finish(int result) const {
  if (!out_of_memory_)
    return result;
  // Best effort: pam_syslog allocates too.
  pam_syslog(pamh_, LOG_ERR, "out of memory");
  return PAM_BUF_ERR;
}

}  // namespace mfa::pam

// One call of one of the module's hooks: the PAM handle, the flags and the arguments it came
// with, what the user is shown, and whether an allocation failed on the way.
//
// Out of memory. The module never aborts its host (sshd, sudo) and never lets an allocation
// failure end in PAM_SUCCESS:
// - its own code allocates nothing through operator new: no std::string, no container; every
//   buffer is fixed and bounded by a limit the module already enforces (code that would
//   allocate needs libstdc++'s operator new, which CTest pam_module_exports refuses);
// - what libpam, libsystemd and libc allocate for it fails as a return value (-ENOMEM,
//   PAM_BUF_ERR, a null pointer); every such failure is noted here, also in the steps that are
//   otherwise best effort (a message, EndAuthentication, the factor kept for the session hook);
// - the hook then unwinds to its entry point by its ordinary error paths, and finish() turns
//   whatever it ended with into PAM_BUF_ERR.
#pragma once

#include <security/pam_modules.h>

#include <cstdint>

#include "common/pam_args.hpp"

namespace mfa::pam {

class HookContext {
 public:
  HookContext(pam_handle_t* pamh, int flags, const PamArgs& args)
      : pamh_(pamh), flags_(flags), args_(args) {}
  HookContext(const HookContext&) = delete;
  HookContext& operator=(const HookContext&) = delete;

  pam_handle_t* pamh() const { return pamh_; }
  const PamArgs& args() const { return args_; }
  // Each bus call waits at most this long (timeout=).
  uint64_t timeout_usec() const { return static_cast<uint64_t>(args_.timeout_seconds) * 1000000; }
  // A string PAM item (PAM_SERVICE, PAM_RHOST, PAM_AUTHTOK, ...), or null.
  const char* item(int item_type) const;

  void debug(const char* fmt, ...) const __attribute__((format(printf, 2, 3)));
  // failmode's answer for a daemon that is not there to decide.
  int unavailable() const;
  // A message for the user (PAM_ERROR_MSG, or PAM_TEXT_INFO unless PAM_SILENT); best effort.
  void show(int style, const char* text);

  // Notes a failed allocation; returns PAM_BUF_ERR.
  int out_of_memory();
  // Notes r when it says an allocation failed (-ENOMEM); returns whether it did.
  bool failed_allocation(int r);
  // Notes a libpam result when it is PAM_BUF_ERR; returns it.
  int checked(int pam_result);
  // What the hook returns for result: PAM_BUF_ERR once an allocation failed, else result.
  int finish(int result) const;

 private:
  pam_handle_t* pamh_;
  int flags_;
  const PamArgs& args_;
  bool out_of_memory_ = false;
};

}  // namespace mfa::pam

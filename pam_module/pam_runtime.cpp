// The few pieces of the C++ runtime pam_mfa.so uses, defined here so that the module needs
// neither libstdc++.so (loading and relocating it was most of what a fresh sshd child or sudo paid
// for the module: tests/bench/pam) nor a static copy of it (whose exception-allocation pool is a
// static constructor, which a module must not have: docs/pam_mfa.md).
//
// What is not here: operator new and delete, and the hooks through which containers report a
// failed allocation (__throw_bad_alloc, __throw_length_error). The module allocates nothing
// through them (hook_context.hpp, "Out of memory"); code that would needs libstdc++ and fails
// CTest pam_module_exports.
//
// The module is compiled with -fno-exceptions: the library templates it instantiates report
// misuse (std::string_view::substr past the end) through the std::__throw_* functions below.
// Those are programming errors with no sound way to go on: each aborts the host process, which
// ends the login attempt without success.
//
// Everything here has hidden visibility (-fvisibility=hidden and the version script): the
// definitions bind only inside the module.
#include <cstdlib>

namespace std {

void __throw_out_of_range_fmt(const char*, ...) {
  abort();
}

}  // namespace std

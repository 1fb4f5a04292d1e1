// The few pieces of the C++ runtime pam_mfa.so uses, defined here so that the module needs
// neither libstdc++.so (loading and relocating it was most of what a fresh sshd child or sudo paid
// for the module: tests/bench/pam) nor a static copy of it (whose exception-allocation pool is a
// static constructor, which a module must not have: DESIGN.md §3).
//
// The module is compiled with -fno-exceptions: the library templates it instantiates report
// errors through the std::__throw_* functions below, and a module that cannot allocate a few
// bytes has no sound way to go on. Each of them aborts the host process, which ends the login
// attempt without success (a PAM error code here would need a recovery path through every
// container operation; pam_unix and pam_sss also give up on such failures).
//
// Everything here has hidden visibility (-fvisibility=hidden and the version script): the
// definitions bind only inside the module and never replace the host's operator new.
#include <cstdlib>
#include <new>

void* operator new(std::size_t size) {
  if (void* p = std::malloc(size == 0 ? 1 : size))
    return p;
  std::abort();
}

void* operator new[](std::size_t size) {
  return ::operator new(size);
}

void operator delete(void* p) noexcept {
  std::free(p);
}

void operator delete(void* p, std::size_t) noexcept {
  std::free(p);
}

void operator delete[](void* p) noexcept {
  std::free(p);
}

void operator delete[](void* p, std::size_t) noexcept {
  std::free(p);
}

namespace std {

void __throw_bad_alloc() {
  abort();
}

void __throw_bad_array_new_length() {
  abort();
}

void __throw_length_error(const char*) {
  abort();
}

void __throw_logic_error(const char*) {
  abort();
}

void __throw_out_of_range(const char*) {
  abort();
}

void __throw_out_of_range_fmt(const char*, ...) {
  abort();
}

void __throw_invalid_argument(const char*) {
  abort();
}

}  // namespace std

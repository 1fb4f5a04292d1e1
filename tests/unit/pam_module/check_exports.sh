#!/bin/sh
# pam_mfa.so exports the PAM entry points and nothing else (docs/pam_mfa.md, "Build and
# hygiene"), links no static
# constructor of its own beyond the toolchain's, and has no undefined symbol that its
# dependencies do not provide.
set -eu
so=$1
# "sanitized": ASan/UBSan add their own module constructors; the .init_array check is skipped.
build=${2:-plain}
exports=$(nm -D --defined-only "$so" | awk '{print $3}' | sort)
expected=$(printf '%s\n' pam_sm_authenticate pam_sm_close_session pam_sm_open_session \
  pam_sm_setcred | sort)
if [ "$exports" != "$expected" ]; then
  echo "unexpected exports:"; echo "$exports"; exit 1
fi
# No textrel, and the PAM and sd-bus libraries are dynamic dependencies.
needed=$(readelf -d "$so" | awk '/NEEDED/ {print $5}')
for lib in '[libpam.so.0]' '[libsystemd.so.0]'; do
  echo "$needed" | grep -qF "$lib" || { echo "not linked dynamically: $lib"; exit 1; }
done
# The module erases answers itself (explicit_bzero) so that libcrypto is not loaded into every
# login process.
if echo "$needed" | grep -qF libcrypto; then echo "libcrypto is linked"; exit 1; fi
# Nor libstdc++ (pam_runtime.cpp): loading it cost every fresh login process more than the rest of
# the module. Sanitizer runtimes bring it back, so only the plain build is held to this.
if [ "$build" = plain ] && echo "$needed" | grep -qF libstdc++; then
  echo "libstdc++ is linked"; exit 1
fi
# Nothing allocates through operator new, whose failure could only abort the host: out of memory
# must come back as PAM_BUF_ERR (pam_module/hook_context.hpp). Checked in every build.
allocating=$(nm -u "$so" | awk '{print $2}' |
  grep -E '^(_Znwm|_Znam|_ZnwmRKSt9nothrow_t|_ZnamRKSt9nothrow_t|_ZSt17__throw_bad_allocv|_ZSt20__throw_length_errorPKc)(@|$)' || true)
if [ -n "$allocating" ]; then
  echo "operator new or a container's allocation is used:"; echo "$allocating"; exit 1
fi
if readelf -d "$so" | grep -q TEXTREL; then echo "text relocations"; exit 1; fi
echo "exports: $(echo $exports)"
# No static constructors (docs/pam_mfa.md, "Build and hygiene"): .init_array holds only the
# toolchain's frame_dummy.
init_size=$(readelf -SW "$so" | awk '$2 == ".init_array" {print $6}')
if [ "$build" = plain ] && [ -n "$init_size" ] && [ $((0x$init_size)) -gt 8 ]; then
  echo "static constructors in .init_array (size 0x$init_size)"; exit 1
fi

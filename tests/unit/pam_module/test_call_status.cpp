// How pam_mfa.so classifies the outcome of a bus call (docs/pam_mfa.md "Return codes"): what
// failmode may ignore, what it may not, and out of memory.
#include <errno.h>
#include <systemd/sd-bus.h>

#include "cmocka_cpp.hpp"
#include "common/dbus_names.hpp"
#include "pam_module/call_status.hpp"

using mfa::pam::CallStatus;
using mfa::pam::classify_call;

namespace {

void expect(int r, const char* name, CallStatus want) {
  assert_int_equal(static_cast<int>(classify_call(r, name)), static_cast<int>(want));
}

void test_success(void**) {
  expect(0, nullptr, CallStatus::kOk);
  expect(1, nullptr, CallStatus::kOk);
}

void test_daemon_errors(void**) {
  expect(-EIO, mfa::dbus::kErrorBadCode, CallStatus::kDaemonError);
  expect(-EIO, mfa::dbus::kErrorStorageFailure, CallStatus::kDaemonError);
  expect(-EIO, "org.mfad1.Error.SomethingNewer", CallStatus::kDaemonError);
  // NotAllowed is a refusal, never "not there": failmode=ignore does not apply.
  expect(-EACCES, mfa::dbus::kErrorNotAllowed, CallStatus::kDenied);
}

void test_refusals(void**) {
  expect(-EACCES, SD_BUS_ERROR_ACCESS_DENIED, CallStatus::kDenied);
  expect(-EACCES, SD_BUS_ERROR_AUTH_FAILED, CallStatus::kDenied);
  expect(-EACCES, nullptr, CallStatus::kDenied);
  expect(-EPERM, nullptr, CallStatus::kDenied);
}

void test_unreachable(void**) {
  expect(-EHOSTUNREACH, SD_BUS_ERROR_SERVICE_UNKNOWN, CallStatus::kUnreachable);
  expect(-ENXIO, SD_BUS_ERROR_NAME_HAS_NO_OWNER, CallStatus::kUnreachable);
  expect(-ETIMEDOUT, SD_BUS_ERROR_NO_REPLY, CallStatus::kUnreachable);
  expect(-ECONNRESET, SD_BUS_ERROR_DISCONNECTED, CallStatus::kUnreachable);
  expect(-EBADR, SD_BUS_ERROR_UNKNOWN_METHOD, CallStatus::kUnreachable);
  expect(-ETIMEDOUT, nullptr, CallStatus::kUnreachable);
  expect(-ECONNRESET, nullptr, CallStatus::kUnreachable);
  expect(-ENOTCONN, nullptr, CallStatus::kUnreachable);
}

void test_out_of_memory(void**) {
  // sd-bus names a local -ENOMEM NoMemory; either way it is PAM_BUF_ERR, never "unreachable"
  // (which failmode=ignore would turn into PAM_IGNORE).
  expect(-ENOMEM, nullptr, CallStatus::kNoMemory);
  expect(-ENOMEM, SD_BUS_ERROR_NO_MEMORY, CallStatus::kNoMemory);
}

void test_local(void**) {
  expect(-EINVAL, nullptr, CallStatus::kLocal);
}

}  // namespace

int main() {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_success),       cmocka_unit_test(test_daemon_errors),
      cmocka_unit_test(test_refusals),      cmocka_unit_test(test_unreachable),
      cmocka_unit_test(test_out_of_memory), cmocka_unit_test(test_local),
  };
  return cmocka_run_group_tests(tests, nullptr, nullptr);
}

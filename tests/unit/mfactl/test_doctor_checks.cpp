// mfactl doctor's file checks (mfactl/doctor_checks.hpp): what a pam.d line is, and which stacks
// and sshd settings pass. The integration tests drive the same through `mfactl doctor`.
#include "cmocka_cpp.hpp"

#include <cstring>
#include <map>
#include <string>

#include "mfactl/doctor_checks.hpp"

namespace {

using mfa::ctl::CheckStatus;

std::string include_reader(const std::string& /*dir*/, const std::string& name) {
  if (name == "common-auth") {
    return "auth [success=1 default=ignore] pam_unix.so nullok\n"
           "auth requisite pam_deny.so\nauth required pam_permit.so\n";
  }
  return "";
}

mfa::ctl::CheckResult stack(const char* text) {
  mfa::ctl::PamStackContext ctx{"/etc/pam.d", include_reader, false};
  return mfa::ctl::check_pam_stack("sshd", text, ctx);
}

void test_parse_lines(void**) {
  auto lines = mfa::ctl::parse_pam_file(
      "# comment\n-auth [success=ok  default=die] /lib/security/pam_mfa.so [prompt=Code: x] \\\n"
      "  max_tries=2 # trailing\n@include common-auth\n\nauth\n",
      "f");
  assert_int_equal(lines.size(), 2);
  assert_string_equal(lines[0].type.c_str(), "auth");
  assert_string_equal(lines[0].control.c_str(), "[success=ok  default=die]");
  assert_string_equal(mfa::ctl::pam_module_name(lines[0].module).c_str(), "pam_mfa.so");
  assert_int_equal(lines[0].args.size(), 2);
  assert_string_equal(lines[0].args[0].c_str(), "prompt=Code: x");
  assert_string_equal(lines[0].args[1].c_str(), "max_tries=2");
  assert_int_equal(lines[0].line, 2);
  assert_string_equal(lines[1].type.c_str(), "@include");
  assert_string_equal(lines[1].module.c_str(), "common-auth");
}

void test_stacks(void**) {
  assert_int_equal(stack("@include common-auth\nauth required pam_mfa.so\n").status,
                   CheckStatus::kOk);
  assert_int_equal(stack("@include common-auth\nauth requisite pam_mfa.so debug\n").status,
                   CheckStatus::kOk);
  assert_int_equal(stack("auth required pam_mfa.so\n@include common-auth\n").status,
                   CheckStatus::kFail);
  assert_int_equal(stack("@include common-auth\nauth optional pam_mfa.so\n").status,
                   CheckStatus::kFail);
  assert_int_equal(stack("auth sufficient pam_sss.so\n@include common-auth\n"
                         "auth required pam_mfa.so\n")
                       .status,
                   CheckStatus::kFail);
  // su's pam_rootok is sufficient by design.
  assert_int_equal(
      stack("auth sufficient pam_rootok.so\n@include common-auth\nauth required pam_mfa.so\n")
          .status,
      CheckStatus::kOk);
  // A failure that goes on to pam_deny.so is denied.
  assert_int_equal(stack("@include common-auth\nauth [success=1 default=ignore] pam_mfa.so\n"
                         "auth requisite pam_deny.so\nauth required pam_permit.so\n")
                       .status,
                   CheckStatus::kOk);
  assert_int_equal(stack("@include common-auth\nauth [success=ok default=bad] pam_mfa.so\n"
                         "auth [auth_err=ok] pam_permit.so\n")
                       .status,
                   CheckStatus::kOk);
  assert_int_equal(
      stack("@include common-auth\nauth [default=bad auth_err=done] pam_mfa.so\n").status,
      CheckStatus::kFail);
  auto r = stack("@include common-auth\nauth required pam_mfa.so timeout=0\n");
  assert_int_equal(r.status, CheckStatus::kFail);
  assert_non_null(strstr(r.message.c_str(), "/etc/pam.d/sshd: argument timeout"));
}

void test_uses(void**) {
  assert_true(mfa::ctl::uses_pam_mfa("session optional pam_mfa.so\n"));
  assert_false(mfa::ctl::uses_pam_mfa("# auth required pam_mfa.so\n@include common-auth\n"));
  mfa::ctl::PamStackContext ctx{"/etc/pam.d", include_reader, false};
  assert_false(mfa::ctl::auth_runs_pam_mfa("sudo", "@include common-auth\n", ctx));
}

void test_sshd(void**) {
  auto s = mfa::ctl::parse_sshd_settings(
      "UsePAM yes\nusepam no\nKbdInteractiveAuthentication=yes\n"
      "AuthenticationMethods publickey,keyboard-interactive:pam\nMatch User x\n"
      "AuthenticationMethods publickey\n",
      false);
  assert_string_equal(s["usepam"].c_str(), "yes");  // the first value wins
  assert_string_equal(s["kbdinteractiveauthentication"].c_str(), "yes");
  assert_string_equal(s["authenticationmethods"].c_str(), "publickey,keyboard-interactive:pam");
  assert_int_equal(mfa::ctl::check_sshd(s, "t").status, CheckStatus::kOk);
  auto t = mfa::ctl::parse_sshd_settings(
      "usepam yes\nkbdinteractiveauthentication yes\nauthenticationmethods any\n"
      "pubkeyauthentication no\n",
      true);
  assert_int_equal(mfa::ctl::check_sshd(t, "sshd -T").status, CheckStatus::kOk);
  t["pubkeyauthentication"] = "yes";
  assert_int_equal(mfa::ctl::check_sshd(t, "sshd -T").status, CheckStatus::kFail);
}

}  // namespace

int main() {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_parse_lines),
      cmocka_unit_test(test_stacks),
      cmocka_unit_test(test_uses),
      cmocka_unit_test(test_sshd),
  };
  return cmocka_run_group_tests(tests, nullptr, nullptr);
}

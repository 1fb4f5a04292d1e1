// `mfactl doctor`'s checks of files (docs/mfactl.md, "doctor"): the PAM stacks that use
// pam_mfa.so and sshd's settings, from text, so that they are tested on crafted trees. Each
// finding says what is wrong and how to fix it.
#pragma once

#include <map>
#include <string>
#include <string_view>
#include <vector>

namespace mfa::ctl {

enum class CheckStatus { kOk, kWarn, kFail };
const char* check_status_name(CheckStatus status);  // "ok", "warn", "fail"

struct CheckResult {
  std::string id;  // "daemon", "pam-stack", "sshd", "sudo", "clock", "key-file", "redis", ...
  CheckStatus status = CheckStatus::kOk;
  std::string message;
};

// One line of a PAM configuration file (pam.conf(5)): "auth", "[success=1 default=ignore]",
// "pam_unix.so", {"nullok"}. An "@include FILE" line has type "@include" and module FILE.
struct PamLine {
  std::string type;  // without a leading '-'
  std::string control;
  std::string module;  // as written (a path or a name)
  std::vector<std::string> args;
  int line = 0;
  std::string file;  // the file it came from (for @include'd lines)
};

// Reads pam.d text: comments, blank lines and continuation lines handled; at most 1000 lines.
std::vector<PamLine> parse_pam_file(std::string_view text, const std::string& file);
// The module's base name: "pam_unix.so" for "/lib/x86_64-linux-gnu/security/pam_unix.so".
std::string pam_module_name(std::string_view module);

// What the pam-stack check needs beyond the file: reads an @include'd file of the same
// directory ("" when it cannot).
using PamFileReader = std::string (*)(const std::string& dir, const std::string& name);
struct PamStackContext {
  std::string dir;
  PamFileReader read = nullptr;
  bool rollout_deadline = false;  // [Rollout] Deadline= is set (from mfad's CheckHealth)
};
// The check of one pam.d file that uses pam_mfa.so; id "pam-stack", message names the file.
CheckResult check_pam_stack(const std::string& name, std::string_view text,
                            const PamStackContext& ctx);
// Whether a pam.d file's text uses pam_mfa.so (its own lines, not its includes).
bool uses_pam_mfa(std::string_view text);
// Whether the auth stack of a file (with its @include's) runs pam_mfa.so.
bool auth_runs_pam_mfa(const std::string& name, std::string_view text, const PamStackContext& ctx);

// sshd's effective settings, lower-case keys: from `sshd -T` output, or from sshd_config text
// (first value wins, as sshd reads it; Match blocks are not applied).
std::map<std::string, std::string> parse_sshd_settings(std::string_view text, bool from_dash_t);
// The sshd check from its settings; source says where they came from.
CheckResult check_sshd(const std::map<std::string, std::string>& settings,
                       const std::string& source);

}  // namespace mfa::ctl

// mfactl's verbs: one function per verb of docs/mfactl.md, given the parsed command line.
// Each returns the exit status (kExitOk, kExitFailed, kExitUsage) after printing its output.
// They live by job: account_verbs.cpp (status, users, reset, unlock), enrollment_verbs.cpp (enroll,
// confirm, backup-codes, disable), session_verbs.cpp (sessions, terminate), audit_verbs.cpp
// (audit), doctor_verb.cpp, import_verbs.cpp, report_verb.cpp (a rollout's tools); verbs.cpp holds
// what they share.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/result.hpp"
#include "common/secure_buffer.hpp"
#include "mfactl/client.hpp"

namespace mfa::ctl {

inline constexpr int kExitOk = 0;
inline constexpr int kExitFailed = 1;
inline constexpr int kExitUsage = 2;

enum VerbOption : unsigned {
  kVoIssuer = 1u << 0,
  kVoAlgorithm = 1u << 1,
  kVoDigits = 1u << 2,
  kVoPhone = 1u << 3,
  kVoUser = 1u << 4,
  kVoSince = 1u << 5,
  kVoLimit = 1u << 6,
  kVoAll = 1u << 7,
  kVoPamDir = 1u << 8,
  kVoSshdConfig = 1u << 9,
  kVoRemove = 1u << 10,
  kVoAllHomes = 1u << 11,
  kVoForce = 1u << 12,
  kVoName = 1u << 13,
  kVoValid = 1u << 14,
  kVoSvg = 1u << 15,
  kVoAcceptNotice = 1u << 16,
  kVoLast = kVoAcceptNotice,
};

struct Options {
  bool json = false;
  bool help = false;
  bool version = false;
  std::string bus_address;
  bool have_current_code = false;
  SecureString current_code;
  bool send_sms = false;  // --send-sms: a step-up by a code texted for it
  unsigned given = 0;     // VerbOption bits
  std::string issuer;
  std::string algorithm;
  std::string digits;
  SecureString phone;
  std::string user_filter;
  std::string since;
  std::string limit;
  std::string pam_dir;            // doctor --pam-dir
  std::string sshd_config;        // doctor --sshd-config
  std::string name;               // import --name, enroll totp --name, disable --name
  std::string valid;              // enrollment-token --valid HOURS
  std::string svg_path;           // enroll totp --svg
  std::vector<char*> positional;  // the verb and its arguments, pointing into argv
};

struct Context {
  Options& opt;
  std::string self;          // the caller's user name
  bool interactive = false;  // stdin is a terminal
  std::optional<ManagerClient> client;

  // Connects on first use, so that usage errors never wait for a bus.
  Result<ManagerClient*> bus();
};

// Print "mfactl: MESSAGE" (and a hint for usage errors) on stderr; return the exit status.
int usage_error(const std::string& message);
int fail(const std::string& message);
int fail(const Error& error);
// Copies a secret argument and wipes it from argv (and so from /proc/PID/cmdline).
SecureString take_secret_arg(char* arg);

// Checks the number of arguments after the verb and the verb-specific options given (allowed:
// VerbOption bits): kExitOk, or kExitUsage after saying why.
int check_args(const Context& ctx, const std::vector<char*>& args, size_t min, size_t max,
               unsigned allowed, const char* verb);
// A decimal number in [min, max]; nullopt for anything else.
std::optional<uint64_t> parse_number(std::string_view s, uint64_t min, uint64_t max);
// The USER argument when there is one, else the caller.
std::string user_or_self(const Context& ctx, const std::vector<char*>& args);
int64_t now_seconds();

// account_verbs.cpp
int cmd_status(Context& ctx, const std::vector<char*>& args);
int cmd_users(Context& ctx, const std::vector<char*>& args);
int cmd_reset_or_unlock(Context& ctx, const std::vector<char*>& args, bool reset);
// enrollment-token USER [--valid HOURS] (admin; docs/rollout.md).
int cmd_enrollment_token(Context& ctx, const std::vector<char*>& args);

// enrollment_verbs.cpp
int cmd_enroll_totp(Context& ctx, const std::vector<char*>& args);
int cmd_enroll_sms(Context& ctx, const std::vector<char*>& args);
// method: "totp" or "sms".
int cmd_confirm(Context& ctx, const std::vector<char*>& args, const char* method);
int cmd_backup_codes(Context& ctx, const std::vector<char*>& args);
int cmd_disable(Context& ctx, const std::vector<char*>& args);

// session_verbs.cpp
int cmd_sessions(Context& ctx, const std::vector<char*>& args);
int cmd_terminate(Context& ctx, const std::vector<char*>& args);

// audit_verbs.cpp: audit, and audit verify.
int cmd_audit(Context& ctx, const std::vector<char*>& args);

// doctor_verb.cpp, import_verbs.cpp, report_verb.cpp: a rollout's tools (admin).
int cmd_doctor(Context& ctx, const std::vector<char*>& args);
int cmd_import(Context& ctx, const std::vector<char*>& args);
int cmd_report(Context& ctx, const std::vector<char*>& args);
// data_rights_verbs.cpp: export, forget, devices, forget-device; and the enrollment notice
// (shown before enroll totp/sms, accepted on the terminal or with --accept-notice, recorded by
// mfad): kExitOk when there is none or it was accepted.
int cmd_export(Context& ctx, const std::vector<char*>& args);
int cmd_forget(Context& ctx, const std::vector<char*>& args);
int cmd_devices(Context& ctx, const std::vector<char*>& args);
int cmd_forget_device(Context& ctx, const std::vector<char*>& args);
int show_enrollment_notice(Context& ctx, const std::string& user);

}  // namespace mfa::ctl

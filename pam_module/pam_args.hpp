// pam_mfa.so's module arguments (CONTRACT.md "pam_mfa.so arguments"), parsed per call: no state
// survives between hooks. Kept apart from the module so that it is unit-tested without PAM.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "common/result.hpp"

namespace mfa::pam {

enum class FailMode { kSecure, kIgnore };

// Where the first answer comes from (google-authenticator's use_first_pass/try_first_pass).
enum class PassMode { kPrompt, kTryFirstPass, kUseFirstPass };

inline constexpr int kDefaultMaxTries = 3;
inline constexpr int kMinMaxTries = 1;
inline constexpr int kMaxMaxTries = 10;
inline constexpr int kDefaultTimeoutSeconds = 10;
inline constexpr int kMinTimeoutSeconds = 1;
inline constexpr int kMaxTimeoutSeconds = 300;
inline constexpr size_t kMaxPromptLength = 256;
inline constexpr size_t kMaxBusAddressLength = 1024;
inline constexpr size_t kMaxArgumentLength = 4096;
inline constexpr size_t kMaxArguments = 64;
inline constexpr char kDefaultPrompt[] = "Verification code: ";

struct PamArgs {
  bool debug = false;
  bool nullok = false;
  FailMode failmode = FailMode::kSecure;
  int max_tries = kDefaultMaxTries;
  int timeout_seconds = kDefaultTimeoutSeconds;
  std::string prompt;  // empty: kDefaultPrompt (or the combined prompt with forward_pass)
  // Canonical "totp,sms,backup" subset in that order; empty: every method.
  std::string methods;
  PassMode pass_mode = PassMode::kPrompt;
  bool forward_pass = false;
  std::string bus_address;  // empty: the system bus
  // Arguments that are not ours: logged and ignored.
  std::vector<std::string> unknown;
};

// Every argument is NAME or NAME=VALUE; the last occurrence wins. An argument we know with an
// invalid value (out of range, not a number, unknown method, control characters, too long) is an
// error: kInvalidArgument whose message names the argument but never echoes more than its name.
Result<PamArgs> parse_pam_args(int argc, const char** argv);

// True when method ("totp", "sms", "backup") is accepted under args.methods.
bool method_allowed(const PamArgs& args, std::string_view method);

}  // namespace mfa::pam

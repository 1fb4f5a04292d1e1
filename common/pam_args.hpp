// pam_mfa.so's module arguments (docs/pam_mfa.md, "Arguments"), parsed per call: no state
// survives between hooks. Kept apart from the module so that it is unit-tested without PAM, and in
// common/ so that `mfactl doctor` checks pam.d lines with the very parser the module runs.
//
// The parser allocates nothing (hook_context.hpp, "Out of memory"): texts are views into argv,
// which libpam keeps for as long as the module is loaded.
#pragma once

#include <array>
#include <cstddef>
#include <string_view>

namespace mfa::pam {

enum class FailMode { kSecure, kIgnore };

// Where the first answer comes from (google-authenticator's use_first_pass/try_first_pass).
enum class PassMode { kPrompt, kTryFirstPass, kUseFirstPass };

// The methods of methods=, as a set of bits.
enum MethodBit : unsigned {
  kMethodBitTotp = 1u << 0,
  kMethodBitSms = 1u << 1,
  kMethodBitBackup = 1u << 2,
};

inline constexpr int kDefaultMaxTries = 3;
inline constexpr int kMinMaxTries = 1;
inline constexpr int kMaxMaxTries = 10;
inline constexpr int kDefaultTimeoutSeconds = 10;
inline constexpr int kMinTimeoutSeconds = 1;
inline constexpr int kMaxTimeoutSeconds = 300;
inline constexpr size_t kMaxPromptLength = 256;
inline constexpr int kMaxFreshSeconds = 86400;
inline constexpr size_t kMaxBusAddressLength = 1024;
inline constexpr size_t kMaxArgumentLength = 4096;
inline constexpr size_t kMaxArguments = 64;
// An unknown argument is logged by its name, cut to this length.
inline constexpr size_t kMaxUnknownNameShown = 64;
inline constexpr char kDefaultPrompt[] = "Verification code: ";

struct PamArgs {
  bool debug = false;
  bool nullok = false;
  // A user with no factor enrolls one during the login, when mfad's rollout allows it
  // (docs/rollout.md).
  bool enroll = false;
  FailMode failmode = FailMode::kSecure;
  int max_tries = kDefaultMaxTries;
  int timeout_seconds = kDefaultTimeoutSeconds;
  // The end of an argv string, so NUL-terminated; null: kDefaultPrompt (or the combined prompt
  // with forward_pass).
  const char* prompt = nullptr;
  unsigned methods = 0;  // MethodBit set; 0: every method
  PassMode pass_mode = PassMode::kPrompt;
  bool forward_pass = false;
  // fresh=SECONDS: no code when mfad finds that this process's own login session passed a second
  // factor less than SECONDS ago (docs/sudo.md); 0: off.
  int fresh_seconds = 0;
  const char* bus_address = nullptr;  // the end of an argv string; null: the system bus
  // The names of the arguments that are not ours, logged and ignored: at most
  // kMaxUnknownNameShown bytes each, "?" for a name with control characters.
  std::array<std::string_view, kMaxArguments> unknown{};
  size_t unknown_count = 0;
};

// Why an argument line was refused: logged as "invalid module argument ARGUMENT: REASON".
struct PamArgsError {
  std::string_view argument;  // the argument's name (never its value), or "list"
  const char* reason = "";
};

// Every argument is NAME or NAME=VALUE; the last occurrence wins. An argument we know with an
// invalid value (out of range, not a number, unknown method, control characters, too long) is an
// error that names the argument but never echoes more than its name. True with *ret_args set;
// false with *ret_error set (and *ret_args untouched).
[[nodiscard]] bool parse_pam_args(int argc, const char** argv, PamArgs* ret_args,
                                  PamArgsError* ret_error);

// True when method ("totp", "sms", "backup") is accepted under args.methods.
bool method_allowed(const PamArgs& args, std::string_view method);

// The canonical list of a methods= set, in the order "totp,sms,backup" (as sent in
// BeginAuthentication's context); "" for every method.
const char* methods_text(unsigned methods);

}  // namespace mfa::pam

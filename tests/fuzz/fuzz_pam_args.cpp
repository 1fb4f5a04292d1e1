// pam_mfa.so's module arguments (pam_module/pam_args.hpp) and the answers typed at its prompt
// (pam_answer.hpp, shown_text.hpp), as the module parses them at every hook. The input is split at
// NUL bytes into argv strings (a pam.d line gives any bytes but NUL); each string is also an
// answer. Whatever is accepted is in range; a refusal names a known argument or "list", never
// the value; an answer's code is a code and both halves lie inside it; shown text is printable.
#include <cstdlib>
#include <cstring>
#include <string>
#include <string_view>
#include <vector>

#include "pam_module/pam_answer.hpp"
#include "common/pam_args.hpp"
#include "pam_module/shown_text.hpp"

namespace {

using namespace mfa::pam;

constexpr std::string_view kKnown[] = {
    "debug",          "nullok",   "enroll",      "forward_pass", "use_first_pass",
    "try_first_pass", "failmode", "max_tries",   "timeout",      "fresh",
    "methods",        "prompt",   "bus_address", "list"};

bool inside(std::string_view part, std::string_view whole) {
  return part.empty() ||
         (part.data() >= whole.data() && part.data() + part.size() <= whole.data() + whole.size());
}

bool printable_text(std::string_view s, size_t max) {
  if (s.size() > max)
    return false;
  for (unsigned char c : s)
    if (c < 0x20 || c == 0x7f)
      return false;
  return true;
}

void check_args(std::vector<const char*>& argv) {
  PamArgs args;
  PamArgsError error;
  if (parse_pam_args(static_cast<int>(argv.size()), argv.data(), &args, &error)) {
    if (argv.size() > kMaxArguments)
      abort();
    if (args.max_tries < kMinMaxTries || args.max_tries > kMaxMaxTries)
      abort();
    if (args.timeout_seconds < kMinTimeoutSeconds || args.timeout_seconds > kMaxTimeoutSeconds)
      abort();
    if (args.methods > (kMethodBitTotp | kMethodBitSms | kMethodBitBackup))
      abort();
    if (args.fresh_seconds < 0 || args.fresh_seconds > kMaxFreshSeconds)
      abort();
    if (args.prompt && (args.prompt[0] == '\0' || !printable_text(args.prompt, kMaxPromptLength)))
      abort();
    if (args.bus_address &&
        (args.bus_address[0] == '\0' || !printable_text(args.bus_address, kMaxBusAddressLength)))
      abort();
    if (args.unknown_count > argv.size())
      abort();
    for (size_t i = 0; i < args.unknown_count; ++i) {
      if (args.unknown[i].size() > kMaxUnknownNameShown ||
          !printable_text(args.unknown[i], kMaxUnknownNameShown))
        abort();
    }
    if (std::strlen(methods_text(args.methods)) == 0 && args.methods != 0)
      abort();
    for (const char* m : {"totp", "sms", "backup"})
      (void)method_allowed(args, m);
  } else {
    bool known = false;
    for (std::string_view k : kKnown)
      known = known || error.argument == k;
    if (!known || error.reason == nullptr || error.reason[0] == '\0')
      abort();
  }
}

void check_answer(const char* text) {
  const std::string_view s(text);
  const std::string_view trimmed = trim_answer(s);
  if (!inside(trimmed, s))
    abort();
  (void)is_sms_request(s);
  const CombinedAnswer split = split_combined(s);
  if (!inside(split.password, s) || !inside(split.code, s))
    abort();
  if (!split.code.empty() && !looks_like_code(split.code))
    abort();
  if (split.password.size() + split.code.size() > trimmed.size())
    abort();
  Answer answer;
  if (answer.assign(s) != (s.size() <= Answer::kCapacity))
    abort();
  if (!printable_text(printable(s).c_str(), kMaxShownMessage))
    abort();
  if (!printable_text(code_sent_message(text).c_str(), ShownText::kCapacity))
    abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  // Each NUL-terminated piece is an argv string; the last one ends at the end of the input.
  const std::string text(reinterpret_cast<const char*>(data), size);
  std::vector<const char*> argv;
  for (size_t pos = 0; pos <= text.size();) {
    argv.push_back(text.c_str() + pos);
    pos += std::strlen(text.c_str() + pos) + 1;
  }
  if (size == 0)
    argv.clear();
  check_args(argv);
  for (const char* a : argv)
    check_answer(a);
  return 0;
}

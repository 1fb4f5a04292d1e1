#include "common/pam_args.hpp"

#include <charconv>
#include <iterator>

namespace mfa::pam {
namespace {

struct MethodName {
  std::string_view name;
  unsigned bit;
};

constexpr MethodName kMethods[] = {
    {"totp", kMethodBitTotp}, {"sms", kMethodBitSms}, {"backup", kMethodBitBackup}};

// methods_text's answers, indexed by the set of bits.
constexpr const char* kMethodsTexts[] = {"",       "totp",        "sms",        "totp,sms",
                                         "backup", "totp,backup", "sms,backup", "totp,sms,backup"};

unsigned method_bit(std::string_view name) {
  for (const MethodName& m : kMethods) {
    if (m.name == name)
      return m.bit;
  }
  return 0;
}

// A decimal integer in [lo, hi]: digits only (no sign, no spaces, no trailing characters).
bool parse_bounded_int(std::string_view text, int lo, int hi, int* ret) {
  if (text.empty() || text.size() > 9)
    return false;
  for (char c : text)
    if (c < '0' || c > '9')
      return false;
  int value = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec != std::errc() || end != text.data() + text.size())
    return false;
  if (value < lo || value > hi)
    return false;
  *ret = value;
  return true;
}

bool has_control_chars(std::string_view text) {
  for (unsigned char c : text)
    if (c < 0x20 || c == 0x7f)
      return true;
  return false;
}

// "sms,totp" → the bits of totp and sms; false on an unknown or empty item.
bool parse_methods(std::string_view text, unsigned* ret) {
  unsigned bits = 0;
  size_t pos = 0;
  while (true) {
    size_t comma = text.find(',', pos);
    size_t end = comma == std::string_view::npos ? text.size() : comma;
    unsigned bit = method_bit(text.substr(pos, end - pos));
    if (bit == 0)
      return false;
    bits |= bit;
    if (comma == std::string_view::npos)
      break;
    pos = comma + 1;
  }
  *ret = bits;
  return true;
}

// A text argument (prompt=, bus_address=): present, not empty, bounded, printable.
const char* check_text(bool has_value, std::string_view value, size_t max) {
  if (!has_value || value.empty())
    return "must not be empty";
  if (value.size() > max)
    return max == kMaxPromptLength ? "longer than 256 bytes" : "too long";
  if (has_control_chars(value))
    return "contains control characters";
  return nullptr;
}

// One NAME or NAME=VALUE into *args; the reason it is invalid, or null.
const char* apply(std::string_view name, bool has_value, std::string_view value, PamArgs* args) {
  auto flag = [&](bool* ret_flag) -> const char* {
    if (has_value)
      return "takes no value";
    *ret_flag = true;
    return nullptr;
  };
  if (name == "debug")
    return flag(&args->debug);
  if (name == "nullok")
    return flag(&args->nullok);
  if (name == "enroll")
    return flag(&args->enroll);
  if (name == "forward_pass")
    return flag(&args->forward_pass);
  if (name == "use_first_pass" || name == "try_first_pass") {
    if (has_value)
      return "takes no value";
    args->pass_mode = name == "use_first_pass" ? PassMode::kUseFirstPass : PassMode::kTryFirstPass;
    return nullptr;
  }
  if (name == "failmode") {
    if (has_value && value == "secure") {
      args->failmode = FailMode::kSecure;
    } else if (value == "ignore") {
      args->failmode = FailMode::kIgnore;
    } else {
      return "expected secure or ignore";
    }
    return nullptr;
  }
  if (name == "max_tries") {
    if (!parse_bounded_int(value, kMinMaxTries, kMaxMaxTries, &args->max_tries))
      return "expected a number from 1 to 10";
    return nullptr;
  }
  if (name == "timeout") {
    if (!parse_bounded_int(value, kMinTimeoutSeconds, kMaxTimeoutSeconds, &args->timeout_seconds))
      return "expected seconds from 1 to 300";
    return nullptr;
  }
  if (name == "fresh") {
    if (!parse_bounded_int(value, 1, kMaxFreshSeconds, &args->fresh_seconds))
      return "expected seconds from 1 to 86400";
    return nullptr;
  }
  if (name == "methods") {
    if (!parse_methods(value, &args->methods))
      return "expected a comma-separated list of totp, sms, backup";
    return nullptr;
  }
  // The value is the end of the argv string: NUL-terminated where it is kept.
  if (name == "prompt") {
    const char* why = check_text(has_value, value, kMaxPromptLength);
    if (why == nullptr)
      args->prompt = value.data();
    return why;
  }
  if (name == "bus_address") {
    const char* why = check_text(has_value, value, kMaxBusAddressLength);
    if (why == nullptr)
      args->bus_address = value.data();
    return why;
  }
  // Only the name: an unknown argument's value may be anything. There is room for every
  // argument (argc <= kMaxArguments).
  std::string_view shown = name.substr(0, kMaxUnknownNameShown);
  args->unknown[args->unknown_count++] = has_control_chars(shown) ? std::string_view("?") : shown;
  return nullptr;
}

}  // namespace

bool parse_pam_args(int argc, const char** argv, PamArgs* ret_args, PamArgsError* ret_error) {
  auto refuse = [&](std::string_view argument, const char* reason) {
    *ret_error = PamArgsError{argument, reason};
    return false;
  };
  if (argc < 0 || (argc > 0 && argv == nullptr))
    return refuse("list", "malformed");
  if (static_cast<size_t>(argc) > kMaxArguments)
    return refuse("list", "too many arguments");
  PamArgs args;
  for (int i = 0; i < argc; ++i) {
    if (argv[i] == nullptr)
      return refuse("list", "malformed");
    std::string_view arg(argv[i]);
    if (arg.size() > kMaxArgumentLength)
      return refuse("list", "argument too long");
    size_t eq = arg.find('=');
    std::string_view name = arg.substr(0, eq);
    bool has_value = eq != std::string_view::npos;
    std::string_view value = has_value ? arg.substr(eq + 1) : std::string_view();
    if (const char* why = apply(name, has_value, value, &args))
      return refuse(name, why);
  }
  *ret_args = args;
  return true;
}

bool method_allowed(const PamArgs& args, std::string_view method) {
  return args.methods == 0 || (args.methods & method_bit(method)) != 0;
}

const char* methods_text(unsigned methods) {
  return methods < std::size(kMethodsTexts) ? kMethodsTexts[methods] : "";
}

}  // namespace mfa::pam

#include "pam_module/pam_args.hpp"

#include <array>
#include <charconv>
#include <string>

namespace mfa::pam {
namespace {

constexpr std::array<std::string_view, 3> kAllMethods = {"totp", "sms", "backup"};

Error invalid(std::string_view name, std::string_view why) {
  return make_error(Errc::kInvalidArgument,
                    "invalid module argument " + std::string(name) + ": " + std::string(why));
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

// "sms,totp" → "totp,sms": canonical order, duplicates folded; false on an unknown or empty item.
bool parse_methods(std::string_view text, std::string* ret) {
  std::array<bool, kAllMethods.size()> seen{};
  if (text.empty())
    return false;
  size_t pos = 0;
  while (true) {
    size_t comma = text.find(',', pos);
    std::string_view item =
        text.substr(pos, comma == std::string_view::npos ? std::string_view::npos : comma - pos);
    bool known = false;
    for (size_t i = 0; i < kAllMethods.size(); ++i) {
      if (item == kAllMethods[i]) {
        seen[i] = true;
        known = true;
      }
    }
    if (!known)
      return false;
    if (comma == std::string_view::npos)
      break;
    pos = comma + 1;
  }
  std::string out;
  for (size_t i = 0; i < kAllMethods.size(); ++i) {
    if (!seen[i])
      continue;
    if (!out.empty())
      out += ',';
    out += kAllMethods[i];
  }
  *ret = std::move(out);
  return true;
}

}  // namespace

Result<PamArgs> parse_pam_args(int argc, const char** argv) {
  PamArgs args;
  if (argc < 0 || (argc > 0 && argv == nullptr))
    return invalid("list", "malformed");
  if (static_cast<size_t>(argc) > kMaxArguments)
    return invalid("list", "too many arguments");
  for (int i = 0; i < argc; ++i) {
    if (argv[i] == nullptr)
      return invalid("list", "malformed");
    std::string_view arg(argv[i]);
    if (arg.size() > kMaxArgumentLength)
      return invalid("list", "argument too long");
    size_t eq = arg.find('=');
    std::string_view name = arg.substr(0, eq);
    bool has_value = eq != std::string_view::npos;
    std::string_view value = has_value ? arg.substr(eq + 1) : std::string_view();

    auto flag = [&](bool* ret_flag) -> bool {
      if (has_value)
        return false;
      *ret_flag = true;
      return true;
    };

    if (name == "debug") {
      if (!flag(&args.debug))
        return invalid(name, "takes no value");
    } else if (name == "nullok") {
      if (!flag(&args.nullok))
        return invalid(name, "takes no value");
    } else if (name == "forward_pass") {
      if (!flag(&args.forward_pass))
        return invalid(name, "takes no value");
    } else if (name == "use_first_pass" || name == "try_first_pass") {
      if (has_value)
        return invalid(name, "takes no value");
      args.pass_mode = name == "use_first_pass" ? PassMode::kUseFirstPass : PassMode::kTryFirstPass;
    } else if (name == "failmode") {
      if (value == "secure" && has_value) {
        args.failmode = FailMode::kSecure;
      } else if (value == "ignore") {
        args.failmode = FailMode::kIgnore;
      } else {
        return invalid(name, "expected secure or ignore");
      }
    } else if (name == "max_tries") {
      if (!parse_bounded_int(value, kMinMaxTries, kMaxMaxTries, &args.max_tries))
        return invalid(name, "expected a number from 1 to 10");
    } else if (name == "timeout") {
      if (!parse_bounded_int(value, kMinTimeoutSeconds, kMaxTimeoutSeconds, &args.timeout_seconds))
        return invalid(name, "expected seconds from 1 to 300");
    } else if (name == "prompt") {
      if (!has_value || value.empty())
        return invalid(name, "must not be empty");
      if (value.size() > kMaxPromptLength)
        return invalid(name, "longer than 256 bytes");
      if (has_control_chars(value))
        return invalid(name, "contains control characters");
      args.prompt = std::string(value);
    } else if (name == "methods") {
      if (!parse_methods(value, &args.methods))
        return invalid(name, "expected a comma-separated list of totp, sms, backup");
    } else if (name == "bus_address") {
      if (!has_value || value.empty())
        return invalid(name, "must not be empty");
      if (value.size() > kMaxBusAddressLength)
        return invalid(name, "too long");
      if (has_control_chars(value))
        return invalid(name, "contains control characters");
      args.bus_address = std::string(value);
    } else {
      // Only the name: an unknown argument's value may be anything.
      std::string_view shown = name.substr(0, 64);
      args.unknown.emplace_back(has_control_chars(shown) ? std::string_view("?") : shown);
    }
  }
  return args;
}

bool method_allowed(const PamArgs& args, std::string_view method) {
  if (args.methods.empty())
    return true;
  std::string_view list(args.methods);
  size_t pos = 0;
  while (pos <= list.size()) {
    size_t comma = list.find(',', pos);
    if (comma == std::string_view::npos)
      comma = list.size();
    if (list.substr(pos, comma - pos) == method)
      return true;
    pos = comma + 1;
  }
  return false;
}

}  // namespace mfa::pam

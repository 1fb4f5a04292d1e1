#include "mfactl/verbs.hpp"

#include <charconv>
#include <cstdio>
#include <cstring>
#include <ctime>

#include "common/dbus_names.hpp"

namespace mfa::ctl {
namespace {

const char* verb_option_name(unsigned bit) {
  switch (bit) {
    case kVoIssuer:
      return "--issuer";
    case kVoAlgorithm:
      return "--algorithm";
    case kVoDigits:
      return "--digits";
    case kVoPhone:
      return "--phone";
    case kVoUser:
      return "--user";
    case kVoSince:
      return "--since";
    case kVoLimit:
      return "--limit";
    case kVoAll:
      return "--all";
    case kVoAcceptNotice:
      return "--accept-notice";
    case kVoPamDir:
      return "--pam-dir";
    case kVoSshdConfig:
      return "--sshd-config";
    case kVoRemove:
      return "--remove";
    case kVoAllHomes:
      return "--all-homes";
    case kVoForce:
      return "--force";
    case kVoSvg:
      return "--svg";
    case kVoName:
      return "--name";
    case kVoValid:
      return "--valid";
    default:
      return "?";
  }
}

}  // namespace

Result<ManagerClient*> Context::bus() {
  if (!client) {
    auto c = ManagerClient::connect(opt.bus_address, interactive);
    if (!c.ok())
      return std::move(c).error();
    client.emplace(std::move(c).value());
  }
  return &*client;
}

int usage_error(const std::string& message) {
  (void)fprintf(stderr, "mfactl: %s\nTry 'mfactl --help' for more information.\n", message.c_str());
  return kExitUsage;
}

int fail(const std::string& message) {
  (void)fprintf(stderr, "mfactl: %s\n", message.c_str());
  return kExitFailed;
}

int fail(const Error& error) {
  return fail(error.message);
}

// Copies a secret argument and wipes it from argv (and so from /proc/PID/cmdline).
SecureString take_secret_arg(char* arg) {
  SecureString s(arg);
  secure_erase(arg, std::strlen(arg));
  return s;
}

int check_args(const Context& ctx, const std::vector<char*>& args, size_t min, size_t max,
               unsigned allowed, const char* verb) {
  unsigned extra = ctx.opt.given & ~allowed;
  if (extra) {
    for (unsigned bit = 1; bit <= kVoLast; bit <<= 1) {
      if (extra & bit) {
        return usage_error(std::string(verb_option_name(bit)) + " does not apply to '" + verb +
                           "'");
      }
    }
  }
  if (args.size() < min)
    return usage_error(std::string("'") + verb + "' needs more arguments");
  if (args.size() > max) {
    return usage_error(std::string("too many arguments for '") + verb + "'");
  }
  for (const char* a : args) {
    if (std::strlen(a) == 0 || std::strlen(a) > dbus::kMaxUserNameLength) {
      return usage_error(std::string("invalid argument for '") + verb + "'");
    }
  }
  return kExitOk;
}

std::optional<uint64_t> parse_number(std::string_view s, uint64_t min, uint64_t max) {
  uint64_t v = 0;
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (s.empty() || ec != std::errc() || p != s.data() + s.size() || v < min || v > max) {
    return std::nullopt;
  }
  return v;
}

std::string user_or_self(const Context& ctx, const std::vector<char*>& args) {
  return args.empty() ? ctx.self : std::string(args[0]);
}

int64_t now_seconds() {
  return static_cast<int64_t>(time(nullptr));
}

}  // namespace mfa::ctl

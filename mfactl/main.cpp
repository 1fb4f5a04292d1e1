// mfactl: the command-line client of org.mfad1 (docs/mfactl.md). It decides nothing: every
// check happens in mfad; mfactl parses, asks for codes on the terminal, and shows the answers.
//
// Exit status: 0 done, 1 refused or failed (message on stderr), 2 usage error.
#include <getopt.h>
#include <pwd.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <exception>
#include <optional>
#include <string>
#include <vector>

#include "common/dbus_names.hpp"
#include "common/secure_buffer.hpp"
#include "mfactl/tty.hpp"
#include "mfactl/fleet_acl.hpp"
#include "mfactl/verbs.hpp"

namespace mfa::ctl {
namespace {

constexpr size_t kMaxAlgorithmLength = 16;
constexpr size_t kMaxPhoneLength = 32;  // E.164 is at most 15 digits; room for spaces
constexpr size_t kMaxBusAddressLength = 4096;

constexpr char kUsage[] =
    "Usage: mfactl [--json] [--bus-address ADDRESS] [--current-code CODE] VERB ...\n"
    "\n"
    "Manage multi-factor authentication (mfad). USER defaults to you.\n"
    "\n"
    "Verbs:\n"
    "  status [USER]                          factors, lockout, backup codes left, sessions\n"
    "  enroll totp [USER] [--name NAME] [--issuer X] [--algorithm SHA1|SHA256|SHA512]\n"
    "              [--digits N] [--svg FILE]  new authenticator app (QR code; --svg: also as an\n"
    "                                         SVG file, mode 0600), then confirm; up to 5 named\n"
    "                                         devices (default name: default)\n"
    "  confirm totp USER CODE                 activate a pending TOTP enrollment (CODE - : stdin)\n"
    "  enroll sms [USER] --phone +E164        new phone number; a code is sent to it\n"
    "  confirm sms USER CODE                  activate a pending phone number\n"
    "  backup-codes [USER]                    new set of 10 one-time codes (old set stops)\n"
    "  disable USER totp|sms|backup [--name NAME]\n"
    "                                         remove one factor (totp --name: one device)\n"
    "  reset USER                             remove every factor and lockout (admin)\n"
    "  unlock USER                            clear a lockout (admin)\n"
    "  enrollment-token USER [--valid HOURS]  one-time token for USER's first enrollment\n"
    "                                         ([Rollout] RequireToken=yes; default 72 h; admin)\n"
    "  users                                  everyone enrolled (admin)\n"
    "  sessions [USER] [--all]                open sessions (--all: everyone's, admin)\n"
    "  terminate SESSION_ID                   end a session now\n"
    "  audit [--user USER] [--since TIME] [--limit N]\n"
    "                                         the audit trail, newest last (admin)\n"
    "  audit verify                           check the audit trail's hash chain (admin)\n"
    "  doctor [--pam-dir DIR] [--sshd-config FILE]\n"
    "                                         check the installation, say how to fix it (admin)\n"
    "  import google-authenticator USER [FILE] | import google-authenticator --all-homes\n"
    "  import oath FILE                       keep users' authenticator apps: import their\n"
    "                                         secrets [--remove] [--force] [--name NAME] (admin)\n"
    "  report [--since TIME]                  adoption and login outcomes (admin)\n"
    "  fleet acl HOSTID [KEYPREFIX]           the Redis ACL line for one host of a fleet\n"
    "  export [USER]                          everything mfad holds about USER, secrets excepted\n"
    "  forget USER                            erase USER, destroy their data key (admin)\n"
    "  devices [USER] [--all]                 the devices USER logged in from\n"
    "  forget-device USER DEVICE_ID           forget one of them\n"
    "\n"
    "Options:\n"
    "  --json                  print one JSON document on stdout\n"
    "  --bus-address ADDRESS   talk to mfad on this bus instead of the system bus\n"
    "  --accept-notice         accept the enrollment notice without asking (enroll)\n"
    "  --current-code CODE     a current code, for changes that need one (step-up);\n"
    "                          - reads it from standard input\n"
    "  --send-sms              step-up by SMS: mfad texts a code to your phone, which is\n"
    "                          then read from the terminal or standard input\n"
    "  -h, --help              show this help\n"
    "  --version               show the version\n"
    "\n"
    "TIME: unix seconds, 2026-11-24T10:00:00Z, 2026-11-24, or an age such as 30m, 1h, 7d.\n"
    "Exit status: 0 done, 1 refused or failed, 2 usage error.\n";

enum OptionId : int {
  kOptHelp = 'h',
  kOptJson = 1000,
  kOptBusAddress,
  kOptCurrentCode,
  kOptVersion,
  kOptIssuer,
  kOptAlgorithm,
  kOptDigits,
  kOptPhone,
  kOptUser,
  kOptSince,
  kOptLimit,
  kOptAll,
  kOptPamDir,
  kOptSshdConfig,
  kOptRemove,
  kOptAllHomes,
  kOptForce,
  kOptSvg,
  kOptName,
  kOptValid,
  kOptAcceptNotice,
  kOptSendSms,
};

constexpr size_t kMaxPathLength = 4096;

// Verb-specific options, as bits, so that each verb can refuse those it does not take.

// Parses the whole command line at once: options may come before or after the verb.
// Returns kExitOk, or kExitUsage after printing why.
int parse_command_line(int argc, char** argv, Options& opt) {
  static const struct option kLongOptions[] = {
      {"help", no_argument, nullptr, kOptHelp},
      {"json", no_argument, nullptr, kOptJson},
      {"bus-address", required_argument, nullptr, kOptBusAddress},
      {"current-code", required_argument, nullptr, kOptCurrentCode},
      {"version", no_argument, nullptr, kOptVersion},
      {"issuer", required_argument, nullptr, kOptIssuer},
      {"algorithm", required_argument, nullptr, kOptAlgorithm},
      {"digits", required_argument, nullptr, kOptDigits},
      {"phone", required_argument, nullptr, kOptPhone},
      {"user", required_argument, nullptr, kOptUser},
      {"since", required_argument, nullptr, kOptSince},
      {"limit", required_argument, nullptr, kOptLimit},
      {"all", no_argument, nullptr, kOptAll},
      {"pam-dir", required_argument, nullptr, kOptPamDir},
      {"sshd-config", required_argument, nullptr, kOptSshdConfig},
      {"remove", no_argument, nullptr, kOptRemove},
      {"all-homes", no_argument, nullptr, kOptAllHomes},
      {"force", no_argument, nullptr, kOptForce},
      {"svg", required_argument, nullptr, kOptSvg},
      {"name", required_argument, nullptr, kOptName},
      {"valid", required_argument, nullptr, kOptValid},
      {"accept-notice", no_argument, nullptr, kOptAcceptNotice},
      {"send-sms", no_argument, nullptr, kOptSendSms},
      {nullptr, 0, nullptr, 0},
  };
  opterr = 0;  // our own messages, with exit status 2
  optind = 0;
  int c = 0;
  while ((c = getopt_long(argc, argv, ":h", kLongOptions, nullptr)) != -1) {
    switch (c) {
      case kOptHelp:
        opt.help = true;
        break;
      case kOptJson:
        opt.json = true;
        break;
      case kOptVersion:
        opt.version = true;
        break;
      case kOptBusAddress:
        if (std::strlen(optarg) == 0 || std::strlen(optarg) > kMaxBusAddressLength) {
          return usage_error("--bus-address needs a D-Bus address");
        }
        opt.bus_address = optarg;
        break;
      case kOptCurrentCode:
        if (std::strlen(optarg) > dbus::kMaxCodeLength) {
          secure_erase(optarg, std::strlen(optarg));
          return usage_error("--current-code is too long to be a code");
        }
        if (std::strcmp(optarg, "-") == 0) {
          auto code = read_code_from_stdin();
          if (!code.ok())
            return usage_error("--current-code -: " + code.error().message);
          opt.current_code = std::move(code).value();
        } else {
          opt.current_code = take_secret_arg(optarg);
        }
        opt.have_current_code = true;
        break;
      case kOptIssuer:
        opt.given |= kVoIssuer;
        if (std::strlen(optarg) > dbus::kMaxIssuerLength) {
          return usage_error("--issuer is longer than " + std::to_string(dbus::kMaxIssuerLength) +
                             " characters");
        }
        opt.issuer = optarg;
        break;
      case kOptAlgorithm:
        opt.given |= kVoAlgorithm;
        if (std::strlen(optarg) == 0 || std::strlen(optarg) > kMaxAlgorithmLength) {
          return usage_error("--algorithm takes SHA1, SHA256 or SHA512");
        }
        opt.algorithm = optarg;
        break;
      case kOptDigits:
        opt.given |= kVoDigits;
        opt.digits = optarg;
        break;
      case kOptPhone:
        opt.given |= kVoPhone;
        if (std::strlen(optarg) == 0 || std::strlen(optarg) > kMaxPhoneLength) {
          secure_erase(optarg, std::strlen(optarg));
          return usage_error("--phone takes a number in E.164 form, like +14155550100");
        }
        opt.phone = take_secret_arg(optarg);
        break;
      case kOptUser:
        opt.given |= kVoUser;
        opt.user_filter = optarg;
        break;
      case kOptSince:
        opt.given |= kVoSince;
        opt.since = optarg;
        break;
      case kOptLimit:
        opt.given |= kVoLimit;
        opt.limit = optarg;
        break;
      case kOptAll:
        opt.given |= kVoAll;
        break;
      case kOptSvg:
        opt.given |= kVoSvg;
        if (std::strlen(optarg) == 0 || std::strlen(optarg) > kMaxPathLength)
          return usage_error("--svg needs a file name");
        opt.svg_path = optarg;
        break;
      case kOptPamDir:
      case kOptSshdConfig:
        if (std::strlen(optarg) == 0 || std::strlen(optarg) > kMaxPathLength)
          return usage_error(std::string(argv[optind - 1]) + " needs a path");
        opt.given |= c == kOptPamDir ? kVoPamDir : kVoSshdConfig;
        (c == kOptPamDir ? opt.pam_dir : opt.sshd_config) = optarg;
        break;
      case kOptRemove:
        opt.given |= kVoRemove;
        break;
      case kOptAllHomes:
        opt.given |= kVoAllHomes;
        break;
      case kOptForce:
        opt.given |= kVoForce;
        break;
      case kOptName:
        opt.given |= kVoName;
        opt.name = optarg;
        break;
      case kOptValid:
        opt.given |= kVoValid;
        opt.valid = optarg;
        break;
      case kOptAcceptNotice:
        opt.given |= kVoAcceptNotice;
        break;
      case kOptSendSms:
        opt.send_sms = true;
        break;
      case ':':
        return usage_error(std::string("option ") + argv[optind - 1] + " needs a value");
      case '?':
      default:
        if (optopt && optopt < 256) {
          return usage_error(std::string("unknown option -") + static_cast<char>(optopt));
        }
        return usage_error(std::string("unknown option ") + argv[optind - 1]);
    }
  }
  for (int i = optind; i < argc; ++i)
    opt.positional.push_back(argv[i]);
  if (opt.send_sms && opt.have_current_code)
    return usage_error("--send-sms asks for a texted code: it does not go with --current-code");
  return kExitOk;
}

std::optional<std::string> caller_name() {
  struct passwd pw_buf;
  struct passwd* pw = nullptr;
  std::vector<char> buf(16384);
  if (getpwuid_r(getuid(), &pw_buf, buf.data(), buf.size(), &pw) != 0 || !pw)
    return std::nullopt;
  return std::string(pw->pw_name);
}

int run(int argc, char** argv) {
  Options opt;
  if (int r = parse_command_line(argc, argv, opt))
    return r;
  if (opt.help) {
    (void)fputs(kUsage, stdout);
    return kExitOk;
  }
  if (opt.version) {
    printf("mfactl %s\n", MFA_VERSION);
    return kExitOk;
  }
  if (opt.positional.empty())
    return usage_error("which verb? (status, enroll, users, ...)");
  Context ctx{opt, {}, stdin_is_terminal(), std::nullopt};
  auto self = caller_name();
  if (!self)
    return fail("cannot find your user name (uid " + std::to_string(getuid()) + ")");
  ctx.self = *self;

  const std::string verb = opt.positional[0];
  std::vector<char*> args(opt.positional.begin() + 1, opt.positional.end());
  if (verb == "enroll" || verb == "confirm") {
    if (args.empty())
      return usage_error(verb + " needs a method: totp or sms");
    const std::string method = args[0];
    args.erase(args.begin());
    if (method != "totp" && method != "sms") {
      return usage_error(verb + " takes totp or sms, not '" + method.substr(0, 32) + "'");
    }
    if (verb == "confirm")
      return cmd_confirm(ctx, args, method == "totp" ? "totp" : "sms");
    return method == "totp" ? cmd_enroll_totp(ctx, args) : cmd_enroll_sms(ctx, args);
  }
  if (verb == "status")
    return cmd_status(ctx, args);
  if (verb == "backup-codes")
    return cmd_backup_codes(ctx, args);
  if (verb == "disable")
    return cmd_disable(ctx, args);
  if (verb == "reset")
    return cmd_reset_or_unlock(ctx, args, true);
  if (verb == "unlock")
    return cmd_reset_or_unlock(ctx, args, false);
  if (verb == "users")
    return cmd_users(ctx, args);
  if (verb == "enrollment-token")
    return cmd_enrollment_token(ctx, args);
  if (verb == "sessions")
    return cmd_sessions(ctx, args);
  if (verb == "terminate")
    return cmd_terminate(ctx, args);
  if (verb == "audit")
    return cmd_audit(ctx, args);
  if (verb == "doctor")
    return cmd_doctor(ctx, args);
  if (verb == "import")
    return cmd_import(ctx, args);
  if (verb == "report")
    return cmd_report(ctx, args);
  if (verb == "fleet") {
    // fleet acl HOSTID [PREFIX]: needs no daemon (docs/fleet.md, "One Redis user per host").
    if (args.empty() || std::string_view(args[0]) != "acl" || args.size() < 2 || args.size() > 3)
      return usage_error("usage: mfactl fleet acl HOSTID [KEYPREFIX]");
    auto line = fleet_acl_line(args[1], args.size() == 3 ? args[2] : "mfad:");
    if (!line)
      return usage_error(
          "HOSTID must be 1 to 64 letters, digits, '.', '_' or '-' (and KEYPREFIX "
          "letters, digits, ':', '.', '_' or '-')");
    printf("%s\n", line->c_str());
    return kExitOk;
  }
  if (verb == "export")
    return cmd_export(ctx, args);
  if (verb == "forget")
    return cmd_forget(ctx, args);
  if (verb == "devices")
    return cmd_devices(ctx, args);
  if (verb == "forget-device")
    return cmd_forget_device(ctx, args);
  if (verb == "help") {
    (void)fputs(kUsage, stdout);
    return kExitOk;
  }
  return usage_error("unknown verb '" + verb.substr(0, 64) + "'");
}

}  // namespace
}  // namespace mfa::ctl

int main(int argc, char** argv) {
  int status = mfa::ctl::kExitFailed;
  try {
    status = mfa::ctl::run(argc, argv);
  } catch (const std::exception& e) {
    (void)fprintf(stderr, "mfactl: internal error: %s\n", e.what());
    return mfa::ctl::kExitFailed;
  }
  if (fflush(stdout) != 0 || ferror(stdout)) {
    (void)fprintf(stderr, "mfactl: cannot write the output\n");
    return mfa::ctl::kExitFailed;
  }
  return status;
}

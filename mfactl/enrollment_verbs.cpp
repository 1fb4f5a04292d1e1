// The verbs that change a user's factors: enroll totp|sms, confirm totp|sms, backup-codes,
// disable. A change to an account that already has an active factor needs a current code
// (step-up): --current-code, or asked on the terminal.
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "common/backup_codes.hpp"
#include "common/dbus_names.hpp"
#include "common/qr.hpp"
#include "mfactl/format.hpp"
#include "mfactl/qr_file.hpp"
#include "mfactl/reply_json.hpp"
#include "mfactl/tty.hpp"
#include "mfactl/verbs.hpp"

namespace mfa::ctl {

using nlohmann::json;

namespace {

constexpr int kMaxConfirmAttempts = 3;

// GetUser's masked phone when SMS is one of user's active factors, else "".
std::string sms_phone_of(ManagerClient& bus, const std::string& user) {
  auto info = bus.get_user(user);
  if (!info.ok() || !info->contains("methods") || !info->contains("masked_phone"))
    return "";
  const json& methods = (*info)["methods"];
  const json& masked = (*info)["masked_phone"];
  if (!methods.is_array() || !masked.is_string() ||
      std::find(methods.begin(), methods.end(), "sms") == methods.end())
    return "";
  // A user with an authenticator app is asked for its code, as ever.
  if (std::find(methods.begin(), methods.end(), "totp") != methods.end())
    return "";
  return masked.get<std::string>();
}

// SendStepUpCode, then the texted code: asked on the terminal, or one line of standard input
// (--send-sms off a terminal).
Result<SecureString> texted_code(Context& ctx, ManagerClient& bus, const std::string& user) {
  MFA_TRY(masked, bus.send_step_up_code(user));
  // With --json, stdout holds one JSON document.
  FILE* out = ctx.opt.json ? stderr : stdout;
  (void)fprintf(out, "A code was sent to %s.\n", masked.c_str());
  (void)fflush(out);
  MFA_TRY(code, ctx.interactive ? read_hidden_line("SMS code: ") : read_code_from_stdin());
  if (code.empty())
    return make_error(Errc::kStepUpRequired, "no SMS code entered: nothing was changed");
  return code;
}

// The current code a change asks for (StepUpRequired came back without --current-code):
// --send-sms texts one; on a terminal, a user whose second factor is SMS (and no authenticator
// app) is offered a text, and anyone else asked for a code.
Result<SecureString> step_up_code(Context& ctx, const std::string& user) {
  MFA_TRY(bus, ctx.bus());
  if (ctx.opt.send_sms)
    return texted_code(ctx, *bus, user);
  const std::string masked = sms_phone_of(*bus, user);
  if (!ctx.interactive) {
    std::string message =
        "this change needs a current verification code: pass --current-code - and the code on "
        "standard input";
    if (!masked.empty())
      message += ", or --send-sms to have one texted to " + masked;
    return make_error(Errc::kStepUpRequired, std::move(message));
  }
  if (!masked.empty()) {
    FILE* out = ctx.opt.json ? stderr : stdout;
    (void)fprintf(out, "Send a code by SMS to %s? [y/N] ", masked.c_str());
    (void)fflush(out);
    char answer[16] = {};
    if (fgets(answer, sizeof answer, stdin) &&
        (std::strcmp(answer, "y\n") == 0 || std::strcmp(answer, "yes\n") == 0 ||
         std::strcmp(answer, "Y\n") == 0))
      return texted_code(ctx, *bus, user);
  }
  return read_hidden_line("Current verification code: ");
}

// Runs fn with --current-code; when mfad asks for a step-up and there was none, gets one
// (step_up_code) and runs fn again.
template <typename Fn>
auto with_step_up(Context& ctx, const std::string& user, Fn&& fn)
    -> decltype(fn(std::string_view())) {
  auto result = fn(ctx.opt.current_code.view());
  // [Rollout] RequireToken=yes: a first enrollment of one's own carries the enrollment token
  // where a current code would go (docs/rollout.md).
  if (!result.ok() && result.error().code == Errc::kEnrollmentTokenRequired &&
      !ctx.opt.have_current_code) {
    if (!ctx.interactive) {
      return make_error(Errc::kEnrollmentTokenRequired,
                        "a first enrollment on this host needs the enrollment token from your "
                        "administrator: pass --current-code - and the token on standard input");
    }
    auto token = read_hidden_line("Enrollment token (from your administrator): ");
    if (!token.ok())
      return std::move(token).error();
    return fn(token->view());
  }
  if (result.ok() || result.error().code != Errc::kStepUpRequired || ctx.opt.have_current_code) {
    return result;
  }
  auto code = step_up_code(ctx, user);
  if (!code.ok())
    return std::move(code).error();
  return fn(code->view());
}

// method: "totp" or "sms".
Status confirm_enrollment(ManagerClient& bus, const char* method, const std::string& user,
                          std::string_view code) {
  return std::strcmp(method, "totp") == 0 ? bus.confirm_totp_enrollment(user, code)
                                          : bus.confirm_sms_enrollment(user, code);
}

void print_active(const char* method, const std::string& user) {
  printf("%s for %s is active.\n", std::strcmp(method, "totp") == 0 ? "TOTP" : "SMS", user.c_str());
}

// After a code was sent or a QR code shown: asks for the code (up to kMaxConfirmAttempts on a
// wrong one) and activates the factor.
int confirm_on_terminal(Context& ctx, const std::string& user, const char* method,
                        const char* prompt) {
  auto bus = ctx.bus();
  if (!bus.ok())
    return fail(bus.error());
  const std::string hint = std::string("the enrollment is still pending: run `mfactl confirm ") +
                           method + " " + user + " CODE` to activate it";
  for (int attempt = 1;; ++attempt) {
    auto code = read_hidden_line(prompt);
    if (!code.ok())
      return fail(code.error().message + "; " + hint);
    if (code->empty())
      return fail("no code entered; " + hint);
    Status st = confirm_enrollment(**bus, method, user, code->view());
    if (st.ok()) {
      print_active(method, user);
      return kExitOk;
    }
    if (st.error().code != Errc::kBadCode || attempt >= kMaxConfirmAttempts) {
      fail(st.error());
      return fail(hint);
    }
    fail(st.error());
  }
}

}  // namespace

int cmd_enroll_totp(Context& ctx, const std::vector<char*>& args) {
  if (int r = check_args(ctx, args, 0, 1,
                         kVoIssuer | kVoAlgorithm | kVoDigits | kVoSvg | kVoName | kVoAcceptNotice,
                         "enroll totp")) {
    return r;
  }
  uint32_t digits = 0;
  if (ctx.opt.given & kVoDigits) {
    auto d = parse_number(ctx.opt.digits, 1, 10);
    if (!d)
      return usage_error("--digits takes a number of digits, like 6 or 8");
    digits = static_cast<uint32_t>(*d);
  }
  const std::string user = user_or_self(ctx, args);
  if (int r = show_enrollment_notice(ctx, user))
    return r;
  auto bus = ctx.bus();
  if (!bus.ok())
    return fail(bus.error());
  auto enrollment = with_step_up(ctx, user, [&](std::string_view current_code) {
    return (*bus)->begin_totp_enrollment(user, ctx.opt.name, ctx.opt.issuer, ctx.opt.algorithm,
                                         digits, current_code);
  });
  if (!enrollment.ok())
    return fail(enrollment.error());
  if (ctx.opt.given & kVoSvg) {
    Status written = write_qr_svg_file(ctx.opt.svg_path, enrollment->otpauth_uri.view());
    if (!written.ok()) {
      fail(written.error());
      return fail(
          "the enrollment is still pending: run `mfactl enroll totp` again for a new "
          "secret, or `mfactl confirm totp " +
          user + " CODE` with this one");
    }
  }
  if (ctx.opt.json) {
    json j = {{"secret", std::string(enrollment->secret_base32.view())},
              {"uri", std::string(enrollment->otpauth_uri.view())}};
    if (ctx.opt.given & kVoSvg)
      j["svg"] = ctx.opt.svg_path;
    print_secret_json(j);
    return kExitOk;
  }
  if (ctx.opt.given & kVoSvg) {
    printf("Wrote the QR code to %s (mode 0600; it holds the secret: delete it once scanned).\n\n",
           ctx.opt.svg_path.c_str());
  }
  // On a terminal, explicit colours make the code scan on light and dark themes alike; a pipe or
  // file gets plain half blocks (correct on dark backgrounds, and free of escape sequences).
  auto qr = isatty(STDOUT_FILENO) ? qr_utf8_ansi(enrollment->otpauth_uri.view())
                                  : qr_utf8(enrollment->otpauth_uri.view());
  if (qr.ok()) {
    printf("Scan this QR code with your authenticator app:\n\n%s\n", qr->c_str());
    secure_erase(qr->data(), qr->size());
  } else {
    printf("(no QR code: %s)\n\n", qr.error().message.c_str());
  }
  SecureString grouped = group_in_fours(enrollment->secret_base32.view());
  printf("Or enter this secret by hand: %s\n", grouped.c_str());
  printf("URI: %s\n\n", enrollment->otpauth_uri.c_str());
  (void)fflush(stdout);
  if (!ctx.interactive) {
    printf("Run `mfactl confirm totp %s CODE` to activate it.\n", user.c_str());
    return kExitOk;
  }
  return confirm_on_terminal(ctx, user, "totp", "Verification code: ");
}

int cmd_enroll_sms(Context& ctx, const std::vector<char*>& args) {
  if (int r = check_args(ctx, args, 0, 1, kVoPhone | kVoAcceptNotice, "enroll sms"))
    return r;
  if (!(ctx.opt.given & kVoPhone))
    return usage_error("enroll sms needs --phone +E164");
  const std::string user = user_or_self(ctx, args);
  if (int r = show_enrollment_notice(ctx, user)) {
    ctx.opt.phone.clear();
    return r;
  }
  auto bus = ctx.bus();
  if (!bus.ok())
    return fail(bus.error());
  auto masked = with_step_up(ctx, user, [&](std::string_view current_code) {
    return (*bus)->begin_sms_enrollment(user, ctx.opt.phone.view(), current_code);
  });
  ctx.opt.phone.clear();
  if (!masked.ok())
    return fail(masked.error());
  if (ctx.opt.json) {
    print_json(json{{"masked_phone", *masked}});
    return kExitOk;
  }
  printf("A code was sent to %s.\n", masked->c_str());
  (void)fflush(stdout);
  if (!ctx.interactive) {
    printf("Run `mfactl confirm sms %s CODE` to activate it.\n", user.c_str());
    return kExitOk;
  }
  return confirm_on_terminal(ctx, user, "sms", "SMS code: ");
}

int cmd_confirm(Context& ctx, const std::vector<char*>& args, const char* method) {
  const std::string verb = std::string("confirm ") + method;
  if (int r = check_args(ctx, args, 2, 2, 0, verb.c_str()))
    return r;
  SecureString code;
  if (std::strcmp(args[1], "-") == 0) {
    auto line = read_code_from_stdin();
    if (!line.ok())
      return usage_error(verb + ": " + line.error().message);
    code = std::move(line).value();
  } else {
    code = take_secret_arg(args[1]);
  }
  if (code.size() > dbus::kMaxCodeLength)
    return usage_error("that is too long to be a code");
  const std::string user = args[0];
  auto bus = ctx.bus();
  if (!bus.ok())
    return fail(bus.error());
  Status st = confirm_enrollment(**bus, method, user, code.view());
  if (!st.ok())
    return fail(st.error());
  if (ctx.opt.json) {
    print_ok_json();
  } else {
    print_active(method, user);
  }
  return kExitOk;
}

int cmd_backup_codes(Context& ctx, const std::vector<char*>& args) {
  if (int r = check_args(ctx, args, 0, 1, 0, "backup-codes"))
    return r;
  const std::string user = user_or_self(ctx, args);
  auto bus = ctx.bus();
  if (!bus.ok())
    return fail(bus.error());
  auto codes = with_step_up(ctx, user, [&](std::string_view current_code) {
    return (*bus)->generate_backup_codes(user, current_code);
  });
  if (!codes.ok())
    return fail(codes.error());
  if (ctx.opt.json) {
    json j = {{"codes", json::array()}};
    for (const auto& c : *codes)
      j["codes"].push_back(std::string(c.view()));
    print_secret_json(j);
    return kExitOk;
  }
  printf("New backup codes for %s. Each works once; any earlier set no longer works.\n\n",
         user.c_str());
  for (size_t i = 0; i < codes->size(); i += 2) {
    std::string line = "  " + format_backup_code((*codes)[i].view());
    if (i + 1 < codes->size())
      line += "    " + format_backup_code((*codes)[i + 1].view());
    line += '\n';
    (void)fputs(line.c_str(), stdout);
    secure_erase(line.data(), line.size());
  }
  puts("\nKeep them somewhere safe: they are not shown again.");
  return kExitOk;
}

int cmd_disable(Context& ctx, const std::vector<char*>& args) {
  if (int r = check_args(ctx, args, 2, 2, kVoName, "disable"))
    return r;
  const std::string user = args[0];
  std::string method = args[1];
  if (method != dbus::kMethodTotp && method != dbus::kMethodSms && method != dbus::kMethodBackup) {
    return usage_error("disable takes totp, sms or backup, not '" + method.substr(0, 32) + "'");
  }
  std::string shown = method;
  if (ctx.opt.given & kVoName) {
    if (method != dbus::kMethodTotp)
      return usage_error("--name applies to totp only");
    // One device: DisableMethod's "totp:NAME" (docs/mfactl.md).
    method += ":" + ctx.opt.name;
    shown = "TOTP device " + ctx.opt.name;
  }
  auto bus = ctx.bus();
  if (!bus.ok())
    return fail(bus.error());
  Status st = with_step_up(ctx, user, [&](std::string_view current_code) {
    return (*bus)->disable_method(user, method, current_code);
  });
  if (!st.ok())
    return fail(st.error());
  if (ctx.opt.json) {
    print_ok_json();
  } else {
    printf("Disabled %s for %s.\n", shown.c_str(), user.c_str());
  }
  return kExitOk;
}

}  // namespace mfa::ctl

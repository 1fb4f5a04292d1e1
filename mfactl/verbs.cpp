#include "mfactl/verbs.hpp"

#include <unistd.h>

#include <algorithm>
#include <charconv>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <map>
#include <string_view>

#include <nlohmann/json.hpp>

#include "common/backup_codes.hpp"
#include "common/dbus_names.hpp"
#include "common/qr.hpp"
#include "mfactl/format.hpp"
#include "mfactl/tty.hpp"

namespace mfa::ctl {
namespace {

using nlohmann::json;

constexpr int kMaxConfirmAttempts = 3;
constexpr size_t kMaxSessionIdLength = 128;

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
    default:
      return "?";
  }
}

std::optional<uint64_t> parse_number(std::string_view s, uint64_t min, uint64_t max) {
  uint64_t v = 0;
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (s.empty() || ec != std::errc() || p != s.data() + s.size() || v < min || v > max) {
    return std::nullopt;
  }
  return v;
}

// --- JSON field access that never throws on a daemon's missing or mistyped key. ---

std::string str_field(const json& o, const char* key) {
  auto it = o.find(key);
  return it != o.end() && it->is_string() ? it->get<std::string>() : std::string();
}

uint64_t num_field(const json& o, const char* key) {
  auto it = o.find(key);
  if (it == o.end())
    return 0;
  if (it->is_number_unsigned())
    return it->get<uint64_t>();
  if (it->is_number_integer())
    return static_cast<uint64_t>(std::max<int64_t>(0, it->get<int64_t>()));
  return 0;
}

std::vector<std::string> list_field(const json& o, const char* key) {
  std::vector<std::string> out;
  auto it = o.find(key);
  if (it == o.end() || !it->is_array())
    return out;
  for (const auto& v : *it) {
    if (v.is_string())
      out.push_back(v.get<std::string>());
  }
  return out;
}

// The first of several candidate keys that is present, as display text.
std::string display_field(const json& o, std::initializer_list<const char*> keys) {
  for (const char* k : keys) {
    auto it = o.find(k);
    if (it == o.end())
      continue;
    if (it->is_string())
      return it->get<std::string>().empty() ? "-" : it->get<std::string>();
    if (it->is_number())
      return it->dump();
    if (it->is_boolean())
      return it->get<bool>() ? "yes" : "no";
  }
  return "-";
}

std::string time_field(const json& o, std::initializer_list<const char*> keys) {
  for (const char* k : keys) {
    auto it = o.find(k);
    if (it == o.end() || !it->is_number())
      continue;
    uint64_t v = num_field(o, k);
    if (v == 0)
      return "-";
    // Session times may be seconds or microseconds: no plausible second count is this large.
    return v > 100000000000ULL ? format_unix_time_usec(static_cast<int64_t>(v))
                               : format_unix_time(static_cast<int64_t>(v));
  }
  return "-";
}

int64_t now_seconds() {
  return static_cast<int64_t>(time(nullptr));
}

// Recursively erases every string in j (the JSON copies of secrets) before it is freed.
void erase_strings(json& j) {
  if (j.is_string()) {
    auto& s = j.get_ref<std::string&>();
    secure_erase(s.data(), s.size());
  } else if (j.is_structured()) {
    for (auto& v : j)
      erase_strings(v);
  }
}

void print_json(const json& j) {
  std::string out = j.dump(2, ' ', false, json::error_handler_t::replace);
  out += '\n';
  (void)fwrite(out.data(), 1, out.size(), stdout);
}

void print_secret_json(json& j) {
  std::string out = j.dump(2, ' ', false, json::error_handler_t::replace);
  out += '\n';
  (void)fwrite(out.data(), 1, out.size(), stdout);
  (void)fflush(stdout);
  secure_erase(out.data(), out.size());
  erase_strings(j);
}

void print_ok_json() {
  print_json(json{{"ok", true}});
}

// The object of `status --json` and of each element of `users --json`.
json user_object(const json& info, const json& sessions) {
  return json{
      {"user", str_field(info, "user")},
      {"methods", list_field(info, "methods")},
      {"pending", list_field(info, "pending")},
      {"backup_codes_left", num_field(info, "backup_codes_left")},
      {"locked_until", num_field(info, "locked_until")},
      {"failures", num_field(info, "failures")},
      {"masked_phone", str_field(info, "masked_phone")},
      {"sessions", sessions},
  };
}

std::string locked_text(uint64_t locked_until) {
  if (locked_until == 0 || static_cast<int64_t>(locked_until) <= now_seconds())
    return "no";
  return "until " + format_unix_time(static_cast<int64_t>(locked_until));
}

std::string sessions_text(const json& sessions) {
  return sessions.is_number() ? sessions.dump() : std::string("unknown");
}

// --- Running verbs. ---

// The verbs' own helpers and the verbs. Helpers stay file-local; cmd_* are the interface.
template <typename Fn>
auto with_step_up(Context& ctx, Fn&& fn) -> decltype(fn(std::string_view())) {
  auto result = fn(ctx.opt.current_code.view());
  if (result.ok() || result.error().code != Errc::kStepUpRequired || ctx.opt.have_current_code) {
    return result;
  }
  if (!ctx.interactive) {
    return make_error(Errc::kStepUpRequired,
                      "this change needs a current verification code: pass --current-code CODE");
  }
  auto code = read_hidden_line("Current verification code: ");
  if (!code.ok())
    return std::move(code).error();
  return fn(code->view());
}

// Checks the number of arguments after the verb and the verb-specific options given.
int check_args(const Context& ctx, const std::vector<char*>& args, size_t min, size_t max,
               unsigned allowed, const char* verb) {
  unsigned extra = ctx.opt.given & ~allowed;
  if (extra) {
    for (unsigned bit = 1; bit <= kVoAll; bit <<= 1) {
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

int cmd_status(Context& ctx, const std::vector<char*>& args) {
  if (int r = check_args(ctx, args, 0, 1, 0, "status"))
    return r;
  const std::string user = args.empty() ? ctx.self : args[0];
  auto bus = ctx.bus();
  if (!bus.ok())
    return fail(bus.error());
  auto info = (*bus)->get_user(user);
  if (!info.ok())
    return fail(info.error());
  auto sessions = (*bus)->list_sessions(user);
  json count = sessions.ok() ? json(sessions->size()) : json(nullptr);
  json obj = user_object(*info, count);
  if (ctx.opt.json) {
    print_json(obj);
    return kExitOk;
  }
  std::vector<TableRow> rows = {
      {"User:", str_field(obj, "user")},
      {"Methods:", join_or_dash(list_field(obj, "methods"))},
      {"Pending:", join_or_dash(list_field(obj, "pending"))},
      {"Backup codes left:", std::to_string(num_field(obj, "backup_codes_left"))},
      {"Locked:", locked_text(num_field(obj, "locked_until"))},
      {"Failures:", std::to_string(num_field(obj, "failures"))},
      {"Phone:", str_field(obj, "masked_phone").empty() ? "-" : str_field(obj, "masked_phone")},
      {"Sessions:", sessions_text(count)},
  };
  if (info->contains("totp_algorithm")) {
    rows.insert(rows.begin() + 2,
                {"TOTP:", str_field(*info, "totp_algorithm") + ", " +
                              std::to_string(num_field(*info, "totp_digits")) + " digits, " +
                              std::to_string(num_field(*info, "totp_period")) + " s"});
  }
  // Two columns with no header: a key/value list.
  std::string text = format_table(rows.front(), {rows.begin() + 1, rows.end()});
  (void)fputs(text.c_str(), stdout);
  return kExitOk;
}

int cmd_users(Context& ctx, const std::vector<char*>& args) {
  if (int r = check_args(ctx, args, 0, 0, 0, "users"))
    return r;
  auto bus = ctx.bus();
  if (!bus.ok())
    return fail(bus.error());
  auto users = (*bus)->list_users();
  if (!users.ok())
    return fail(users.error());
  // One ListSessions for everyone; counts per user. Unknown when it fails.
  auto sessions = (*bus)->list_sessions("");
  std::map<std::string, uint64_t> counts;
  if (sessions.ok()) {
    for (const auto& s : *sessions)
      ++counts[str_field(s, "user")];
  }
  json list = json::array();
  for (const auto& info : *users) {
    const std::string name = str_field(info, "user");
    json count = sessions.ok() ? json(counts.count(name) ? counts[name] : 0) : json(nullptr);
    list.push_back(user_object(info, count));
  }
  if (ctx.opt.json) {
    print_json(list);
    return kExitOk;
  }
  if (list.empty()) {
    puts("No users are enrolled.");
    return kExitOk;
  }
  std::vector<TableRow> rows;
  for (const auto& u : list) {
    const std::string phone = str_field(u, "masked_phone");
    rows.push_back(
        {str_field(u, "user"), join_or_dash(list_field(u, "methods")),
         join_or_dash(list_field(u, "pending")), std::to_string(num_field(u, "backup_codes_left")),
         locked_text(num_field(u, "locked_until")), std::to_string(num_field(u, "failures")),
         phone.empty() ? "-" : phone, sessions_text(u["sessions"])});
  }
  (void)fputs(format_table({"USER", "METHODS", "PENDING", "BACKUP CODES", "LOCKED", "FAILURES",
                            "PHONE", "SESSIONS"},
                           rows)
                  .c_str(),
              stdout);
  return kExitOk;
}

namespace {

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
    Status st = std::strcmp(method, "totp") == 0
                    ? (*bus)->confirm_totp_enrollment(user, code->view())
                    : (*bus)->confirm_sms_enrollment(user, code->view());
    if (st.ok()) {
      printf("%s for %s is active.\n", std::strcmp(method, "totp") == 0 ? "TOTP" : "SMS",
             user.c_str());
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
  if (int r = check_args(ctx, args, 0, 1, kVoIssuer | kVoAlgorithm | kVoDigits, "enroll totp")) {
    return r;
  }
  uint32_t digits = 0;
  if (ctx.opt.given & kVoDigits) {
    auto d = parse_number(ctx.opt.digits, 1, 10);
    if (!d)
      return usage_error("--digits takes a number of digits, like 6 or 8");
    digits = static_cast<uint32_t>(*d);
  }
  const std::string user = args.empty() ? ctx.self : args[0];
  auto bus = ctx.bus();
  if (!bus.ok())
    return fail(bus.error());
  auto enrollment = with_step_up(ctx, [&](std::string_view current_code) {
    return (*bus)->begin_totp_enrollment(user, ctx.opt.issuer, ctx.opt.algorithm, digits,
                                         current_code);
  });
  if (!enrollment.ok())
    return fail(enrollment.error());
  if (ctx.opt.json) {
    json j = {{"secret", std::string(enrollment->secret_base32.view())},
              {"uri", std::string(enrollment->otpauth_uri.view())}};
    print_secret_json(j);
    return kExitOk;
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
  if (int r = check_args(ctx, args, 0, 1, kVoPhone, "enroll sms"))
    return r;
  if (!(ctx.opt.given & kVoPhone))
    return usage_error("enroll sms needs --phone +E164");
  const std::string user = args.empty() ? ctx.self : args[0];
  auto bus = ctx.bus();
  if (!bus.ok())
    return fail(bus.error());
  auto masked = with_step_up(ctx, [&](std::string_view current_code) {
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
  SecureString code = take_secret_arg(args[1]);
  if (code.size() > dbus::kMaxCodeLength)
    return usage_error("that is too long to be a code");
  const std::string user = args[0];
  auto bus = ctx.bus();
  if (!bus.ok())
    return fail(bus.error());
  Status st = std::strcmp(method, "totp") == 0 ? (*bus)->confirm_totp_enrollment(user, code.view())
                                               : (*bus)->confirm_sms_enrollment(user, code.view());
  if (!st.ok())
    return fail(st.error());
  if (ctx.opt.json) {
    print_ok_json();
  } else {
    printf("%s for %s is active.\n", std::strcmp(method, "totp") == 0 ? "TOTP" : "SMS",
           user.c_str());
  }
  return kExitOk;
}

int cmd_backup_codes(Context& ctx, const std::vector<char*>& args) {
  if (int r = check_args(ctx, args, 0, 1, 0, "backup-codes"))
    return r;
  const std::string user = args.empty() ? ctx.self : args[0];
  auto bus = ctx.bus();
  if (!bus.ok())
    return fail(bus.error());
  auto codes = with_step_up(ctx, [&](std::string_view current_code) {
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
  if (int r = check_args(ctx, args, 2, 2, 0, "disable"))
    return r;
  const std::string user = args[0];
  const std::string method = args[1];
  if (method != dbus::kMethodTotp && method != dbus::kMethodSms && method != dbus::kMethodBackup) {
    return usage_error("disable takes totp, sms or backup, not '" + method.substr(0, 32) + "'");
  }
  auto bus = ctx.bus();
  if (!bus.ok())
    return fail(bus.error());
  Status st = with_step_up(ctx, [&](std::string_view current_code) {
    return (*bus)->disable_method(user, method, current_code);
  });
  if (!st.ok())
    return fail(st.error());
  if (ctx.opt.json) {
    print_ok_json();
  } else {
    printf("Disabled %s for %s.\n", method.c_str(), user.c_str());
  }
  return kExitOk;
}

int cmd_reset_or_unlock(Context& ctx, const std::vector<char*>& args, bool reset) {
  if (int r = check_args(ctx, args, 1, 1, 0, reset ? "reset" : "unlock"))
    return r;
  const std::string user = args[0];
  auto bus = ctx.bus();
  if (!bus.ok())
    return fail(bus.error());
  Status st = reset ? (*bus)->reset_user(user) : (*bus)->unlock(user);
  if (!st.ok())
    return fail(st.error());
  if (ctx.opt.json) {
    print_ok_json();
  } else if (reset) {
    printf("Removed every factor and lockout of %s.\n", user.c_str());
  } else {
    printf("Unlocked %s.\n", user.c_str());
  }
  return kExitOk;
}

int cmd_sessions(Context& ctx, const std::vector<char*>& args) {
  if (int r = check_args(ctx, args, 0, 1, kVoAll, "sessions"))
    return r;
  const bool all = ctx.opt.given & kVoAll;
  if (all && !args.empty())
    return usage_error("sessions takes a USER or --all, not both");
  const std::string user = all ? std::string() : args.empty() ? ctx.self : args[0];
  auto bus = ctx.bus();
  if (!bus.ok())
    return fail(bus.error());
  auto sessions = (*bus)->list_sessions(user);
  if (!sessions.ok())
    return fail(sessions.error());
  if (ctx.opt.json) {
    print_json(*sessions);
    return kExitOk;
  }
  if (sessions->empty()) {
    puts("No open sessions.");
    return kExitOk;
  }
  // Fleet mode names the host that owns each session.
  const bool hosts = std::any_of(sessions->begin(), sessions->end(),
                                 [](const json& s) { return s.contains("host"); });
  std::vector<TableRow> rows;
  for (const auto& s : *sessions) {
    rows.push_back(
        {display_field(s, {"id", "session_id"}), display_field(s, {"user"}),
         display_field(s, {"service"}), display_field(s, {"rhost"}), display_field(s, {"tty"}),
         time_field(s, {"start", "started", "opened", "created"}),
         time_field(s, {"last_seen", "last_activity"}), display_field(s, {"factor", "method"})});
    if (hosts)
      rows.back().push_back(display_field(s, {"host"}));
  }
  TableRow header{"ID", "USER", "SERVICE", "RHOST", "TTY", "START", "LAST SEEN", "FACTOR"};
  if (hosts)
    header.push_back("HOST");
  (void)fputs(format_table(header, rows).c_str(), stdout);
  return kExitOk;
}

int cmd_terminate(Context& ctx, const std::vector<char*>& args) {
  if (int r = check_args(ctx, args, 1, 1, 0, "terminate"))
    return r;
  if (std::strlen(args[0]) > kMaxSessionIdLength)
    return usage_error("that is not a session id");
  const std::string id = args[0];
  auto bus = ctx.bus();
  if (!bus.ok())
    return fail(bus.error());
  Status st = (*bus)->terminate_session(id);
  if (!st.ok())
    return fail(st.error());
  if (ctx.opt.json) {
    print_ok_json();
  } else {
    printf("Terminated session %s.\n", id.c_str());
  }
  return kExitOk;
}

namespace {

int cmd_audit_verify(Context& ctx) {
  auto bus = ctx.bus();
  if (!bus.ok())
    return fail(bus.error());
  auto state = (*bus)->verify_audit_trail();
  if (!state.ok())
    return fail(state.error());
  if (ctx.opt.json) {
    print_json(json{{"intact", state->intact}, {"rows", state->rows}, {"message", state->message}});
    return state->intact ? kExitOk : kExitFailed;
  }
  if (!state->intact)
    return fail("audit trail broken: " + state->message);
  printf("audit trail intact: %llu rows\n", static_cast<unsigned long long>(state->rows));
  return kExitOk;
}

}  // namespace

int cmd_audit(Context& ctx, const std::vector<char*>& args) {
  if (!args.empty() && std::strcmp(args[0], "verify") == 0) {
    if (int r = check_args(ctx, {args.begin() + 1, args.end()}, 0, 0, 0, "audit verify"))
      return r;
    return cmd_audit_verify(ctx);
  }
  if (int r = check_args(ctx, args, 0, 0, kVoUser | kVoSince | kVoLimit, "audit"))
    return r;
  AuditQuery query;
  if (ctx.opt.given & kVoUser) {
    if (ctx.opt.user_filter.empty() || ctx.opt.user_filter.size() > dbus::kMaxUserNameLength) {
      return usage_error("--user needs a user name");
    }
    query.user = ctx.opt.user_filter;
  }
  if (ctx.opt.given & kVoSince) {
    auto since = parse_since(ctx.opt.since, now_seconds());
    if (!since.ok())
      return usage_error(since.error().message);
    query.since = static_cast<uint64_t>(*since);
  }
  if (ctx.opt.given & kVoLimit) {
    auto limit = parse_number(ctx.opt.limit, 1, dbus::kMaxAuditQueryLimit);
    if (!limit) {
      return usage_error("--limit takes a number from 1 to " +
                         std::to_string(dbus::kMaxAuditQueryLimit));
    }
    query.limit = static_cast<uint32_t>(*limit);
  }
  auto bus = ctx.bus();
  if (!bus.ok())
    return fail(bus.error());
  auto events = (*bus)->list_audit_events(query);
  if (!events.ok())
    return fail(events.error());
  std::vector<json> rows(events->begin(), events->end());
  std::stable_sort(rows.begin(), rows.end(), [](const json& a, const json& b) {
    return num_field(a, "id") < num_field(b, "id");
  });
  if (ctx.opt.json) {
    json list = json::array();
    for (auto& row : rows) {
      // details is a JSON object sent as text: hand it on as an object.
      auto it = row.find("details");
      if (it != row.end() && it->is_string()) {
        json parsed = json::parse(it->get<std::string>(), nullptr, false);
        if (!parsed.is_discarded() && parsed.is_object())
          *it = std::move(parsed);
      }
      list.push_back(std::move(row));
    }
    print_json(list);
    return kExitOk;
  }
  if (rows.empty()) {
    puts("No audit events.");
    return kExitOk;
  }
  std::vector<TableRow> table;
  for (const auto& row : rows) {
    std::string details = str_field(row, "details");
    if (details == "{}")
      details.clear();
    table.push_back({format_unix_time_usec(static_cast<int64_t>(num_field(row, "time"))),
                     display_field(row, {"kind"}), display_field(row, {"user"}),
                     display_field(row, {"outcome"}), display_field(row, {"reason"}),
                     display_field(row, {"caller"}), details.empty() ? "-" : details});
  }
  (void)fputs(
      format_table({"TIME", "KIND", "USER", "OUTCOME", "REASON", "CALLER", "DETAILS"}, table)
          .c_str(),
      stdout);
  return kExitOk;
}

}  // namespace mfa::ctl

// The verbs about accounts: status, users (admin), reset and unlock (admin).
#include <cstdio>
#include <map>
#include <string>

#include <nlohmann/json.hpp>

#include "mfactl/format.hpp"
#include "mfactl/reply_json.hpp"
#include "mfactl/verbs.hpp"

namespace mfa::ctl {

using nlohmann::json;

namespace {

// GetUser's "totp_devices" as [{"name", "created", "last_used"}] (an older mfad: []).
json devices_field(const json& info) {
  json out = json::array();
  auto it = info.find("totp_devices");
  if (it == info.end() || !it->is_array())
    return out;
  for (const auto& d : *it) {
    out.push_back(json{{"name", str_field(d, "name")},
                       {"created", num_field(d, "created")},
                       {"last_used", num_field(d, "last_used")}});
  }
  return out;
}

// Fleet mode: GetUser's last change another host made, as {"host", "kind", "factor", "at"};
// null when there is none (or an older mfad).
json foreign_change_field(const json& info) {
  if (!info.contains("foreign_change_host"))
    return nullptr;
  return json{{"host", str_field(info, "foreign_change_host")},
              {"kind", str_field(info, "foreign_change_kind")},
              {"factor", str_field(info, "foreign_change_factor")},
              {"at", num_field(info, "foreign_change_at")}};
}

// "enrollment of totp by host host-b at TIME", "reset by host host-b at TIME".
std::string foreign_change_text(const json& c) {
  const std::string factor = str_field(c, "factor");
  return str_field(c, "kind") + (factor.empty() ? "" : " of " + factor) + " by host " +
         str_field(c, "host") + " at " + format_unix_time(static_cast<int64_t>(num_field(c, "at")));
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
      {"totp_devices", devices_field(info)},
      {"sessions", sessions},
      {"foreign_change", foreign_change_field(info)},
  };
}

// "name (enrolled TIME, last used TIME|never)", one per device, joined by "; ".
std::string devices_text(const json& devices) {
  std::string out;
  for (const auto& d : devices) {
    const uint64_t used = num_field(d, "last_used");
    out += (out.empty() ? "" : "; ") + str_field(d, "name") + " (enrolled " +
           format_unix_time(static_cast<int64_t>(num_field(d, "created"))) + ", last used " +
           (used ? format_unix_time(static_cast<int64_t>(used)) : std::string("never")) + ")";
  }
  return out.empty() ? "-" : out;
}

// The device names alone, for the users table.
std::string device_names(const json& devices) {
  std::string out;
  for (const auto& d : devices)
    out += (out.empty() ? "" : ", ") + str_field(d, "name");
  return out.empty() ? "-" : out;
}

std::string locked_text(uint64_t locked_until) {
  if (locked_until == 0 || static_cast<int64_t>(locked_until) <= now_seconds())
    return "no";
  return "until " + format_unix_time(static_cast<int64_t>(locked_until));
}

std::string sessions_text(const json& sessions) {
  return sessions.is_number() ? sessions.dump() : std::string("unknown");
}

}  // namespace

int cmd_status(Context& ctx, const std::vector<char*>& args) {
  if (int r = check_args(ctx, args, 0, 1, 0, "status"))
    return r;
  const std::string user = user_or_self(ctx, args);
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
      {"TOTP devices:", devices_text(obj["totp_devices"])},
      {"Backup codes left:", std::to_string(num_field(obj, "backup_codes_left"))},
      {"Locked:", locked_text(num_field(obj, "locked_until"))},
      {"Failures:", std::to_string(num_field(obj, "failures"))},
      {"Phone:", str_field(obj, "masked_phone").empty() ? "-" : str_field(obj, "masked_phone")},
      {"Sessions:", sessions_text(count)},
  };
  if (obj["foreign_change"].is_object())
    rows.push_back({"Changed elsewhere:", foreign_change_text(obj["foreign_change"])});
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
    rows.push_back({str_field(u, "user"), join_or_dash(list_field(u, "methods")),
                    join_or_dash(list_field(u, "pending")),
                    std::to_string(num_field(u, "backup_codes_left")),
                    locked_text(num_field(u, "locked_until")),
                    std::to_string(num_field(u, "failures")), phone.empty() ? "-" : phone,
                    sessions_text(u["sessions"]), device_names(u["totp_devices"])});
  }
  (void)fputs(format_table({"USER", "METHODS", "PENDING", "BACKUP CODES", "LOCKED", "FAILURES",
                            "PHONE", "SESSIONS", "TOTP DEVICES"},
                           rows)
                  .c_str(),
              stdout);
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
  // An admin's own account: ResetUser carries no code; the factors go one by one, each with one.
  if (!st.ok() && st.error().code == Errc::kStepUpRequired) {
    return fail("resetting your own account needs a current code: run `mfactl disable " + user +
                " METHOD` for each factor (it asks for the code), or ask root or another "
                "administrator");
  }
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

int cmd_enrollment_token(Context& ctx, const std::vector<char*>& args) {
  if (int r = check_args(ctx, args, 1, 1, kVoValid, "enrollment-token"))
    return r;
  const std::string user = args[0];
  uint64_t hours = 72;
  if (ctx.opt.given & kVoValid) {
    auto parsed = parse_number(ctx.opt.valid, 1, 8760);
    if (!parsed)
      return usage_error("--valid takes hours, from 1 to 8760");
    hours = *parsed;
  }
  auto bus = ctx.bus();
  if (!bus.ok())
    return fail(bus.error());
  auto token = (*bus)->create_enrollment_token(user, static_cast<uint32_t>(hours));
  if (!token.ok())
    return fail(token.error());
  if (ctx.opt.json) {
    print_json(json{
        {"user", user}, {"token", std::string(token->first.view())}, {"expires", token->second}});
    return kExitOk;
  }
  printf(
      "Enrollment token for %s (one use, valid until %s):\n\n  %s\n\n"
      "Give it to %s by a channel you trust; it is not shown again.\n",
      user.c_str(), format_unix_time(static_cast<int64_t>(token->second)).c_str(),
      token->first.c_str(), user.c_str());
  return kExitOk;
}

}  // namespace mfa::ctl

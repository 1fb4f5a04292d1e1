// `mfactl report [--since TIME] [--json]` (docs/mfactl.md, "report"): adoption and login outcomes,
// computed by mfad (GetReport, admin only) from its store and audit trail.
#include <cstdio>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "mfactl/format.hpp"
#include "mfactl/reply_json.hpp"
#include "mfactl/verbs.hpp"

namespace mfa::ctl {

using nlohmann::json;

namespace {

constexpr int kBarWidth = 30;

// A percentage with one decimal; 0 when there is nothing to divide.
double percent(uint64_t part, uint64_t whole) {
  if (whole == 0)
    return 0.0;
  return static_cast<double>(static_cast<uint64_t>(
             1000.0 * static_cast<double>(part) / static_cast<double>(whole) + 0.5)) /
         10.0;
}

std::string percent_text(double p) {
  char buf[16];
  (void)snprintf(buf, sizeof buf, "%.1f %%", p);
  return buf;
}

// "████████░░░░" enrolled vs not.
std::string bar(uint64_t enrolled, uint64_t total) {
  const int full = total == 0 ? 0 : static_cast<int>((enrolled * kBarWidth + total / 2) / total);
  std::string out;
  for (int i = 0; i < kBarWidth; ++i)
    out += i < full ? "\u2588" : "\u2591";
  return out;
}

}  // namespace

int cmd_report(Context& ctx, const std::vector<char*>& args) {
  if (int r = check_args(ctx, args, 0, 0, kVoSince, "report"))
    return r;
  uint64_t since = 0;
  if (!ctx.opt.since.empty()) {
    auto t = parse_since(ctx.opt.since, now_seconds());
    if (!t.ok())
      return usage_error("--since: " + t.error().message);
    since = static_cast<uint64_t>(*t);
  }
  auto bus = ctx.bus();
  if (!bus.ok())
    return fail(bus.error());
  auto rep = (*bus)->get_report(since);
  if (!rep.ok())
    return fail(rep.error());
  const json& r = *rep;
  const uint64_t total = num_field(r, "users_total");
  const uint64_t enrolled = num_field(r, "users_enrolled");
  const uint64_t ok = num_field(r, "logins_success");
  const uint64_t bad = num_field(r, "logins_failure");
  json out{
      {"users_total", total},
      {"users_enrolled", enrolled},
      {"enrolled_percent", percent(enrolled, total)},
      {"methods",
       {{"totp", num_field(r, "totp")},
        {"sms", num_field(r, "sms")},
        {"backup", num_field(r, "backup")}}},
      {"logins", {{"success", ok}, {"failure", bad}}},
      {"verification_success_percent", percent(ok, ok + bad)},
      {"lockouts", num_field(r, "lockouts")},
      {"sms", {{"sent", num_field(r, "sms_sent")}, {"failed", num_field(r, "sms_failed")}}},
      {"sessions_open", num_field(r, "sessions_open")},
      {"degraded",
       {{"decisions", num_field(r, "degraded_decisions")},
        {"logins_allowed", num_field(r, "degraded_logins_allowed")},
        {"logins_denied", num_field(r, "degraded_logins_denied")},
        {"consumed", num_field(r, "degraded_consumed")},
        {"unreplicated", num_field(r, "degraded_unreplicated")},
        {"periods", num_field(r, "degraded_periods")},
        {"reconciled", num_field(r, "degraded_reconciled")},
        {"refused", num_field(r, "degraded_refused")}}},
  };
  if (ctx.opt.json) {
    print_json(out);
    return kExitOk;
  }
  const std::string period = since == 0 ? "the whole audit trail"
                                        : "since " + format_unix_time(static_cast<int64_t>(since));
  std::vector<TableRow> rows = {
      {"Users enrolled:", std::to_string(enrolled) + " of " + std::to_string(total) + " (" +
                              percent_text(out["enrolled_percent"].get<double>()) + ")"},
      {"  TOTP / SMS / backup:", std::to_string(num_field(r, "totp")) + " / " +
                                     std::to_string(num_field(r, "sms")) + " / " +
                                     std::to_string(num_field(r, "backup"))},
      {"Logins (" + period + "):",
       std::to_string(ok) + " passed, " + std::to_string(bad) + " failed (" +
           percent_text(out["verification_success_percent"].get<double>()) + " passed)"},
      {"Lockouts:", std::to_string(num_field(r, "lockouts"))},
      {"Texts:", std::to_string(num_field(r, "sms_sent")) + " sent, " +
                     std::to_string(num_field(r, "sms_failed")) + " failed"},
      {"Sessions open:", std::to_string(num_field(r, "sessions_open"))},
  };
  // Fleet mode: decisions taken without Redis stood on this host alone (fleet.md).
  const json& dg = out["degraded"];
  if (num_field(dg, "decisions") != 0 || num_field(dg, "unreplicated") != 0 ||
      num_field(dg, "periods") != 0) {
    rows.push_back({"Decided without Redis:",
                    std::to_string(num_field(dg, "decisions")) + " calls: " +
                        std::to_string(num_field(dg, "logins_allowed")) + " logins passed, " +
                        std::to_string(num_field(dg, "logins_denied")) + " refused, " +
                        std::to_string(num_field(dg, "consumed")) + " codes consumed"});
    rows.push_back({"  Reconciled:", std::to_string(num_field(dg, "reconciled")) + " items, " +
                                         std::to_string(num_field(dg, "refused")) +
                                         " refused by Redis; Redis lost " +
                                         std::to_string(num_field(dg, "periods")) + " times"});
    rows.push_back({"  Unreplicated writes:", std::to_string(num_field(dg, "unreplicated"))});
  }
  (void)fputs(format_table(rows.front(), {rows.begin() + 1, rows.end()}).c_str(), stdout);
  const json groups = r.contains("groups") && r["groups"].is_array() ? r["groups"] : json::array();
  if (!groups.empty()) {
    std::vector<TableRow> grows;
    for (const auto& g : groups) {
      const uint64_t gt = num_field(g, "total");
      const uint64_t ge = num_field(g, "enrolled");
      grows.push_back(
          {str_field(g, "group"), bar(ge, gt), std::to_string(ge) + "/" + std::to_string(gt)});
    }
    puts("");
    (void)fputs(format_table({"GROUP", "ENROLLED (\u2588) / NOT (\u2591)", "USERS"}, grows).c_str(),
                stdout);
  }
  return kExitOk;
}

}  // namespace mfa::ctl

// The audit trail: audit [--user USER] [--since TIME] [--limit N] (newest last), and audit verify
// (its hash chain).
#include <algorithm>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "common/dbus_names.hpp"
#include "mfactl/format.hpp"
#include "mfactl/reply_json.hpp"
#include "mfactl/verbs.hpp"

namespace mfa::ctl {

using nlohmann::json;

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
  // How far the trail is proven, and whether the head file agrees (docs/mfactl.md).
  if (!state->message.empty())
    printf("%s\n", state->message.c_str());
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

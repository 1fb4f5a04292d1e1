// The verbs about sessions: sessions [USER|--all], terminate SESSION_ID.
#include <algorithm>
#include <cstdio>
#include <cstring>
#include <string>

#include <nlohmann/json.hpp>

#include "mfactl/format.hpp"
#include "mfactl/reply_json.hpp"
#include "mfactl/verbs.hpp"

namespace mfa::ctl {

using nlohmann::json;

constexpr size_t kMaxSessionIdLength = 128;

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

}  // namespace mfa::ctl

// The verbs about a person's data (docs/mfactl.md, "Data rights"): export USER, forget USER,
// devices [USER], forget-device USER DEVICE_ID; and the enrollment notice the enroll verbs show.
#include <cstdio>
#include <cstring>
#include <string>

#include <nlohmann/json.hpp>

#include "mfactl/format.hpp"
#include "mfactl/reply_json.hpp"
#include "mfactl/verbs.hpp"

namespace mfa::ctl {

using nlohmann::json;

namespace {

constexpr size_t kMaxDeviceIdLength = 128;

std::string text_of(const json& o, const char* key) {
  auto it = o.find(key);
  if (it == o.end() || it->is_null())
    return "-";
  return it->is_string() ? it->get<std::string>() : it->dump();
}

std::string when(const json& o, const char* key) {
  return time_field(o, {key});
}

// The export for people: one section per kind of record.
void print_export(const json& doc) {
  printf("Everything mfad holds about %s", text_of(doc, "user").c_str());
  if (doc.contains("uid"))
    printf(" (uid %s)", text_of(doc, "uid").c_str());
  printf(", secrets excepted:\n\nFactors:\n");
  const json& factors = doc.value("factors", json::array());
  if (factors.empty())
    printf("  none\n");
  for (const json& f : factors) {
    printf("  %s (%s), enrolled %s", text_of(f, "method").c_str(), text_of(f, "state").c_str(),
           when(f, "enrolled").c_str());
    if (f.contains("last_used"))
      printf(", last used %s", when(f, "last_used").c_str());
    if (f.contains("algorithm"))
      printf(", %s %s digits every %ss", text_of(f, "algorithm").c_str(),
             text_of(f, "digits").c_str(), text_of(f, "period").c_str());
    if (f.contains("phone"))
      printf(", phone %s (shown as %s)", text_of(f, "phone").c_str(),
             text_of(f, "masked_phone").c_str());
    if (f.contains("phone_unreadable"))
      printf(", phone unreadable (shown as %s)", text_of(f, "masked_phone").c_str());
    printf("\n");
  }
  printf("Backup codes left: %s\n", text_of(doc, "backup_codes_left").c_str());
  const json& lockout = doc.value("lockout", json::object());
  printf("Lockout: %s consecutive failures, %s lockouts so far, %s failures today",
         text_of(lockout, "consecutive_failures").c_str(), text_of(lockout, "lockouts").c_str(),
         text_of(lockout, "failures_today").c_str());
  if (lockout.value("locked_until", 0) != 0)
    printf(", locked until %s", when(lockout, "locked_until").c_str());
  printf("\n\nSessions:\n");
  const json& sessions = doc.value("sessions", json::array());
  if (sessions.empty())
    printf("  none\n");
  for (const json& s : sessions) {
    printf("  %s %s from %s on %s, started %s, last seen %s\n", text_of(s, "id").c_str(),
           text_of(s, "service").c_str(), text_of(s, "rhost").c_str(), text_of(s, "tty").c_str(),
           when(s, "started").c_str(), when(s, "last_seen").c_str());
  }
  printf("\nDevices:\n");
  const json& devices = doc.value("devices", json::array());
  if (devices.empty())
    printf("  none\n");
  for (const json& d : devices) {
    printf("  %s from %s (%s), first seen %s, last seen %s\n", text_of(d, "device").c_str(),
           text_of(d, "rhost").c_str(), text_of(d, "client").c_str(), when(d, "first_seen").c_str(),
           when(d, "last_seen").c_str());
  }
  printf("\nAudit trail:\n");
  const json& audit = doc.value("audit", json::array());
  if (audit.empty())
    printf("  none\n");
  for (const json& r : audit) {
    printf("  %s %s %s %s %s %s\n", text_of(r, "id").c_str(), when(r, "time").c_str(),
           text_of(r, "kind").c_str(), text_of(r, "outcome").c_str(), text_of(r, "reason").c_str(),
           r.value("details", json::object()).dump().c_str());
  }
}

}  // namespace

int show_enrollment_notice(Context& ctx, const std::string& user) {
  auto bus = ctx.bus();
  if (!bus.ok())
    return fail(bus.error());
  auto notice = (*bus)->enrollment_notice();
  if (!notice.ok())
    return fail(notice.error());
  const auto& [text, hash] = *notice;
  if (text.empty())
    return kExitOk;
  // On stderr with --json: stdout holds one JSON document.
  FILE* out = ctx.opt.json ? stderr : stdout;
  (void)fprintf(out, "%s%s\n", text.c_str(), text.ends_with('\n') ? "" : "\n");
  if (ctx.opt.given & kVoAcceptNotice) {
    (void)fprintf(out, "Accepted with --accept-notice.\n");
  } else {
    if (!ctx.interactive)
      return fail(
          "enrolling needs the notice above accepted: run on a terminal, or add "
          "--accept-notice");
    (void)fprintf(out, "Do you accept this notice? [y/N] ");
    (void)fflush(out);
    char answer[16] = {};
    if (!fgets(answer, sizeof answer, stdin) ||
        (std::strcmp(answer, "y\n") != 0 && std::strcmp(answer, "yes\n") != 0 &&
         std::strcmp(answer, "Y\n") != 0))
      return fail("the notice was not accepted: nothing was enrolled");
  }
  Status accepted = (*bus)->accept_enrollment_notice(user, hash);
  if (!accepted.ok())
    return fail(accepted.error());
  return kExitOk;
}

int cmd_export(Context& ctx, const std::vector<char*>& args) {
  if (int r = check_args(ctx, args, 0, 1, 0, "export"))
    return r;
  const std::string user = user_or_self(ctx, args);
  auto bus = ctx.bus();
  if (!bus.ok())
    return fail(bus.error());
  auto doc = (*bus)->export_user(user);
  if (!doc.ok())
    return fail(doc.error());
  if (ctx.opt.json)
    print_json(*doc);
  else
    print_export(*doc);
  return kExitOk;
}

int cmd_forget(Context& ctx, const std::vector<char*>& args) {
  if (int r = check_args(ctx, args, 1, 1, 0, "forget"))
    return r;
  const std::string user = args[0];
  auto bus = ctx.bus();
  if (!bus.ok())
    return fail(bus.error());
  auto report = (*bus)->forget_user(user);
  if (!report.ok())
    return fail(report.error());
  if (ctx.opt.json) {
    print_json(*report);
    return kExitOk;
  }
  printf(
      "Forgot %s: factors, phone, backup codes, lockouts, %s sessions and %s devices erased; "
      "data key %s. %s audit rows now name %s.\n",
      user.c_str(), text_of(*report, "sessions").c_str(), text_of(*report, "devices").c_str(),
      text_of(*report, "data_key").c_str(), text_of(*report, "audit_rows").c_str(),
      text_of(*report, "pseudonym").c_str());
  if (text_of(*report, "audit_rows_kept") != "0") {
    printf(
        "%s audit rows written before the audit chain had commitments keep the name (see "
        "mfactl audit verify).\n",
        text_of(*report, "audit_rows_kept").c_str());
  }
  return kExitOk;
}

int cmd_devices(Context& ctx, const std::vector<char*>& args) {
  if (int r = check_args(ctx, args, 0, 1, kVoAll, "devices"))
    return r;
  const bool all = ctx.opt.given & kVoAll;
  if (all && !args.empty())
    return usage_error("devices takes a USER or --all, not both");
  const std::string user = all ? std::string() : user_or_self(ctx, args);
  auto bus = ctx.bus();
  if (!bus.ok())
    return fail(bus.error());
  auto devices = (*bus)->list_devices(user);
  if (!devices.ok())
    return fail(devices.error());
  if (ctx.opt.json) {
    print_json(*devices);
    return kExitOk;
  }
  if (devices->empty()) {
    puts("No devices.");
    return kExitOk;
  }
  std::vector<TableRow> rows;
  for (const auto& d : *devices) {
    rows.push_back({display_field(d, {"device"}), display_field(d, {"user"}),
                    display_field(d, {"rhost"}), display_field(d, {"client"}),
                    time_field(d, {"first_seen"}), time_field(d, {"last_seen"})});
  }
  (void)fputs(
      format_table({"DEVICE", "USER", "RHOST", "CLIENT", "FIRST SEEN", "LAST SEEN"}, rows).c_str(),
      stdout);
  return kExitOk;
}

int cmd_forget_device(Context& ctx, const std::vector<char*>& args) {
  if (int r = check_args(ctx, args, 2, 2, 0, "forget-device"))
    return r;
  if (std::strlen(args[1]) > kMaxDeviceIdLength)
    return usage_error("that is not a device id (mfactl devices shows them)");
  const std::string user = args[0];
  const std::string device = args[1];
  auto bus = ctx.bus();
  if (!bus.ok())
    return fail(bus.error());
  Status st = (*bus)->forget_device(user, device);
  if (!st.ok())
    return fail(st.error());
  if (ctx.opt.json)
    print_ok_json();
  else
    printf("Forgot device %s of %s.\n", device.c_str(), user.c_str());
  return kExitOk;
}

}  // namespace mfa::ctl

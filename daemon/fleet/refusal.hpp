// What Redis refuses of a decision this host took from its cache (docs/fleet.md, "How a login
// runs" and "SMS"). The names are what the Lua scripts answer (keys.cpp, sms_keys.cpp) and
// what the audit rows carry as reason or detail; they are spelled once, in refusal.cpp's tables,
// and a unit test checks that the scripts answer with exactly these.
#pragma once

#include <optional>
#include <string_view>

namespace mfa {

enum class FleetRefusal {
  kNone,               // ""
  kReplay,             // "replay-fleet": the TOTP step was accepted on another host
  kConsumedElsewhere,  // "consumed-elsewhere": the backup or SMS code was used on another host
                       // (or the SMS code was replaced by a newer text, or its tries spent)
  kFactorChanged,      // "factor-changed": the TOTP secret or phone the success rests on was
                       // removed or replaced meanwhile
  kLocked,             // "locked": the user is locked out fleet-wide
  // "unrecognised-refusal": the confirm script refused for a reason this build does not know
  // (its own scripts never do): a refusal all the same, so that the decision fails closed.
  kUnrecognised,
};
const char* fleet_refusal_name(FleetRefusal refusal);
// nullopt for a name no script answers.
std::optional<FleetRefusal> parse_fleet_refusal(std::string_view name);

// The shared SMS send limit that refused a text ([SMS] MaxSendsPerWindow, MaxSendsPerPhone,
// MaxSendsGlobal): the send script's answer and the sms.failed row's "limit" detail.
enum class SmsSendLimit {
  kNone,    // ""
  kUser,    // "user"
  kPhone,   // "phone"
  kGlobal,  // "global"
};
const char* sms_send_limit_name(SmsSendLimit limit);
std::optional<SmsSendLimit> parse_sms_send_limit(std::string_view name);

}  // namespace mfa

#include "fleet/refusal.hpp"

#include <array>
#include <cstddef>
#include <utility>

namespace mfa {

namespace {

constexpr std::array<std::pair<FleetRefusal, const char*>, 6> kFleetRefusalNames{{
    {FleetRefusal::kNone, ""},
    {FleetRefusal::kReplay, "replay-fleet"},
    {FleetRefusal::kConsumedElsewhere, "consumed-elsewhere"},
    {FleetRefusal::kFactorChanged, "factor-changed"},
    {FleetRefusal::kLocked, "locked"},
    {FleetRefusal::kUnrecognised, "unrecognised-refusal"},
}};

constexpr std::array<std::pair<SmsSendLimit, const char*>, 4> kSmsSendLimitNames{{
    {SmsSendLimit::kNone, ""},
    {SmsSendLimit::kUser, "user"},
    {SmsSendLimit::kPhone, "phone"},
    {SmsSendLimit::kGlobal, "global"},
}};

template <typename Enum, size_t N>
const char* name_of(const std::array<std::pair<Enum, const char*>, N>& table, Enum value) {
  for (const auto& [v, name] : table) {
    if (v == value)
      return name;
  }
  return "unknown";
}

template <typename Enum, size_t N>
std::optional<Enum> parse(const std::array<std::pair<Enum, const char*>, N>& table,
                          std::string_view name) {
  for (const auto& [v, n] : table) {
    if (name == n)
      return v;
  }
  return std::nullopt;
}

}  // namespace

const char* fleet_refusal_name(FleetRefusal refusal) {
  return name_of(kFleetRefusalNames, refusal);
}

std::optional<FleetRefusal> parse_fleet_refusal(std::string_view name) {
  return parse(kFleetRefusalNames, name);
}

const char* sms_send_limit_name(SmsSendLimit limit) {
  return name_of(kSmsSendLimitNames, limit);
}

std::optional<SmsSendLimit> parse_sms_send_limit(std::string_view name) {
  return parse(kSmsSendLimitNames, name);
}

}  // namespace mfa

#include "fleet/user_state.hpp"

#include <algorithm>
#include <charconv>

#include <openssl/sha.h>

#include "common/crypto.hpp"
#include "core/validation.hpp"
#include "fleet/keys.hpp"

namespace mfa::fleet {

namespace {

template <typename T>
std::optional<T> to_number(std::string_view s) {
  T v{};
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (s.empty() || ec != std::errc() || p != s.data() + s.size())
    return std::nullopt;
  return v;
}

std::vector<std::string_view> split(std::string_view s, char sep) {
  std::vector<std::string_view> out;
  size_t start = 0;
  while (true) {
    const size_t end = s.find(sep, start);
    out.push_back(s.substr(start, end == std::string_view::npos ? end : end - start));
    if (end == std::string_view::npos)
      return out;
    start = end + 1;
  }
}

bool same_limits(const LimitState& a, const LimitState& b) {
  return a.consecutive_failures == b.consecutive_failures && a.lockout_count == b.lockout_count &&
         a.locked_until_usec == b.locked_until_usec && a.day == b.day &&
         a.day_failures == b.day_failures;
}

}  // namespace

std::string encode_state(const UserState& s) {
  std::string out = s.watermark ? std::to_string(*s.watermark) : std::string();
  out += "|";
  for (size_t i = 0; i < s.backup.size(); ++i)
    out += (i ? "," : "") + hash_hex(s.backup[i]);
  const LimitState& l = s.limits;
  out += "|" + std::to_string(l.consecutive_failures) + "|" + std::to_string(l.lockout_count) +
         "|" + std::to_string(l.locked_until_usec) + "|" + std::to_string(l.day) + "|" +
         std::to_string(l.day_failures) + "|";
  bool first = true;
  for (const auto& [field, sha1] : s.factors) {
    out += (first ? "" : ",") + field + "=" + sha1;
    first = false;
  }
  if (!s.device_watermarks.empty()) {
    out += "|";
    first = true;
    for (const auto& [device, step] : s.device_watermarks) {
      out += (first ? "" : ",") + device + "=" + std::to_string(step);
      first = false;
    }
  }
  return out;
}

std::optional<UserState> decode_state(std::string_view payload) {
  const auto parts = split(payload, '|');
  if (parts.size() != 8 && parts.size() != 9)
    return std::nullopt;
  UserState s;
  if (!parts[0].empty()) {
    s.watermark = to_number<uint64_t>(parts[0]);
    if (!s.watermark)
      return std::nullopt;
  }
  if (!parts[1].empty()) {
    for (auto hex : split(parts[1], ',')) {
      auto h = parse_hash_hex(hex);
      if (!h || s.backup.size() >= kMaxStateBackupCodes)
        return std::nullopt;
      s.backup.push_back(*h);
    }
  }
  const auto cf = to_number<int>(parts[2]);
  const auto lc = to_number<int>(parts[3]);
  const auto lu = to_number<int64_t>(parts[4]);
  const auto day = to_number<int64_t>(parts[5]);
  const auto df = to_number<int>(parts[6]);
  if (!cf || !lc || !lu || !day || !df || *cf < 0 || *lc < 0 || *df < 0)
    return std::nullopt;
  s.limits = LimitState{*cf, *lc, *lu, *day, *df};
  if (!parts[7].empty()) {
    for (auto entry : split(parts[7], ',')) {
      const size_t eq = entry.find('=');
      if (eq == std::string_view::npos || eq == 0 || entry.size() - eq - 1 != 40 ||
          s.factors.size() >= kMaxStateFactors)
        return std::nullopt;
      s.factors[std::string(entry.substr(0, eq))] = std::string(entry.substr(eq + 1));
    }
  }
  if (parts.size() == 9) {
    // Written only when a named device has a watermark: present, it is never empty.
    for (auto entry : split(parts[8], ',')) {
      const size_t eq = entry.find('=');
      if (eq == std::string_view::npos || s.device_watermarks.size() >= kMaxStateDevices)
        return std::nullopt;
      const std::string_view device = entry.substr(0, eq);
      const auto step = to_number<uint64_t>(entry.substr(eq + 1));
      if (!step || device == kDefaultTotpDevice || !validate_device_name(device).ok() ||
          !s.device_watermarks.emplace(std::string(device), *step).second)
        return std::nullopt;
    }
  }
  return s;
}

std::optional<uint64_t> device_watermark(const UserState& state, std::string_view device) {
  if (device.empty() || device == kDefaultTotpDevice)
    return state.watermark;
  auto it = state.device_watermarks.find(std::string(device));
  if (it == state.device_watermarks.end())
    return std::nullopt;
  return it->second;
}

void set_device_watermark(UserState& state, std::string_view device, uint64_t step) {
  if (device.empty() || device == kDefaultTotpDevice)
    state.watermark = step;
  else
    state.device_watermarks[std::string(device)] = step;
}

bool same_state(const UserState& a, const UserState& b) {
  return a.watermark == b.watermark && a.device_watermarks == b.device_watermarks &&
         a.backup == b.backup && same_limits(a.limits, b.limits) && a.factors == b.factors;
}

StateOutcome apply_change(const UserState& state, const StateChange& change,
                          const RatePolicy& policy, int64_t now_usec) {
  StateOutcome out;
  out.next = state;
  UserState& n = out.next;
  if (change.check_lock && lock_remaining_usec(state.limits, now_usec) > 0) {
    out.refused = FleetRefusal::kLocked;
    return out;
  }
  if (change.factor_changed)
    out.refused = FleetRefusal::kFactorChanged;
  if (out.refused == FleetRefusal::kNone && change.step) {
    // Each device its own watermark (issue 19): a step used on one device is not used on another.
    const auto current = device_watermark(n, change.device);
    if (current && *current >= *change.step)
      out.refused = FleetRefusal::kReplay;
    else
      set_device_watermark(n, change.device, *change.step);
  }
  if (out.refused == FleetRefusal::kNone && change.backup) {
    auto it = std::find(n.backup.begin(), n.backup.end(), *change.backup);
    if (it == n.backup.end()) {
      out.refused = FleetRefusal::kConsumedElsewhere;
    } else {
      n.backup.erase(it);
      out.backup_emptied = n.backup.empty();
    }
  }
  if (out.refused != FleetRefusal::kNone && out.refused != FleetRefusal::kLocked) {
    // A refused success is a failure, as in the scripts before: nothing it rested on is used.
    n.watermark = state.watermark;
    n.device_watermarks = state.device_watermarks;
    n.backup = state.backup;
    out.backup_emptied = false;
  }
  const std::string action = out.refused != FleetRefusal::kNone ? "fail" : change.action;
  const int64_t lu_before = n.limits.locked_until_usec;
  if (action == "fail") {
    for (int i = 0; i < std::max(1, change.fail_count); ++i) {
      count_attempt(n.limits, now_usec);
      (void)apply_failure(n.limits, policy, now_usec);
    }
  } else if (action == "success") {
    roll_day(n.limits, now_usec);
    n.limits.consecutive_failures = 0;
    n.limits.lockout_count = 0;
  } else if (action == "clear") {
    n.limits = LimitState{};
  }
  out.lock_changed = n.limits.locked_until_usec != lu_before;
  return out;
}

}  // namespace mfa::fleet

namespace mfa::fleet {

std::string sha1_hex(std::string_view data) {
  unsigned char digest[SHA_DIGEST_LENGTH];
  SHA1(reinterpret_cast<const unsigned char*>(data.data()), data.size(), digest);
  return to_hex(digest);
}

RecordProblem verify_state(const RecordMac& mac, const UserKeys& keys, std::string_view value,
                           VerifiedUser* ret) {
  if (value.empty()) {
    *ret = VerifiedUser{};
    return RecordProblem::kNone;
  }
  SignedRecord rec;
  if (RecordProblem p = mac.open(keys.state, value, &rec); p != RecordProblem::kNone)
    return p;
  auto state = decode_state(rec.payload);
  if (!state)
    return RecordProblem::kMalformed;
  VerifiedUser u;
  u.state = std::move(*state);
  u.counter = rec.counter;
  u.writer = rec.host;
  *ret = std::move(u);
  return RecordProblem::kNone;
}

RecordProblem verify_user(const RecordMac& mac, const UserKeys& keys, const RawUser& raw,
                          VerifiedUser* ret, std::string* ret_key) {
  VerifiedUser u;
  *ret_key = keys.state;
  if (raw.state.empty() && (raw.legacy || !raw.factors.empty())) {
    // Records and no state: the release before authenticated records wrote them (or someone
    // wrote them by hand). Never read as "absent".
    if (!raw.factors.empty())
      *ret_key = keys.factors;
    return RecordProblem::kLegacy;
  }
  if (RecordProblem p = verify_state(mac, keys, raw.state, &u); p != RecordProblem::kNone)
    return p;
  if (raw.factors.size() != u.state.factors.size()) {
    *ret_key = keys.factors;
    return RecordProblem::kBadMac;  // a record removed or added behind the state's back
  }
  for (const auto& [field, value] : raw.factors) {
    *ret_key = field_key_name(keys.factors, field);
    auto vouched = u.state.factors.find(field);
    if (vouched == u.state.factors.end() || !ct_equal(vouched->second, sha1_hex(value))) {
      SignedRecord probe;
      RecordProblem p = mac.open(*ret_key, value, &probe);
      return p == RecordProblem::kNone ? RecordProblem::kBadMac : p;
    }
    SignedRecord rec;
    if (RecordProblem p = mac.open(*ret_key, value, &rec); p != RecordProblem::kNone)
      return p;
    auto factor = decode_factor(field, rec.payload);
    if (!factor)
      return RecordProblem::kMalformed;
    u.factor_writers[field] = rec.host;
    u.factors.push_back(std::move(*factor));
  }
  *ret = std::move(u);
  return RecordProblem::kNone;
}

}  // namespace mfa::fleet

// Authenticated records in Redis (fleet/record_mac.hpp, fleet/user_state.hpp; issue 16): the
// codec, the state record, the arithmetic the hosts now do, and what verification refuses.
#include <cstring>
#include <string>

#include "common/crypto.hpp"
#include "fleet/data_key_records.hpp"
#include "fleet/keys.hpp"
#include "fleet/record_mac.hpp"
#include "fleet/user_state.hpp"
// cmocka last: its fail() macro must not meet a standard header.
#include "cmocka_cpp.hpp"

namespace mfa {
namespace {

SecureBytes master(uint8_t fill) {
  SecureBytes k(32);
  std::memset(k.data(), fill, k.size());
  return k;
}

fleet::RecordMac mac_of(uint8_t fill, const char* host) {
  auto m = fleet::RecordMac::derive(master(fill).span(), host);
  assert_true(m.ok());
  return std::move(m).value();
}

CodeHash code(uint8_t fill) {
  CodeHash h;
  h.fill(fill);
  return h;
}

void test_seal_and_open(void** /*state*/) {
  const auto a = mac_of(1, "host-a");
  const std::string key = "mfad:user:{alice}:state";
  const std::string v = a.seal(key, 7, "12|ab|x|y");  // the payload may hold '|'
  assert_true(v.starts_with("m1|host-a|7|12|ab|x|y|"));
  fleet::SignedRecord r;
  assert_true(a.open(key, v, &r) == fleet::RecordProblem::kNone);
  assert_string_equal(r.host.c_str(), "host-a");
  assert_int_equal(r.counter, 7);
  assert_string_equal(r.payload.c_str(), "12|ab|x|y");
  // Another host of the fleet (same master key) opens it; another fleet does not.
  const auto b = mac_of(1, "host-b");
  assert_true(b.open(key, v, &r) == fleet::RecordProblem::kNone);
  assert_true(mac_of(2, "host-a").open(key, v, &r) == fleet::RecordProblem::kBadMac);
  // Bound to its key: a copy under another user's key does not open.
  assert_true(a.open("mfad:user:{bob}:state", v, &r) == fleet::RecordProblem::kBadMac);
  // Any change of host, counter, payload or MAC is refused.
  auto changed = [&](std::string from, std::string to) {
    std::string w = v;
    w.replace(w.find(from), from.size(), to);
    return a.open(key, w, &r);
  };
  assert_true(changed("host-a", "host-b") == fleet::RecordProblem::kBadMac);
  assert_true(changed("|7|", "|8|") == fleet::RecordProblem::kBadMac);
  assert_true(changed("|x|", "|z|") == fleet::RecordProblem::kBadMac);
  std::string flipped = v;
  flipped.back() = flipped.back() == '0' ? '1' : '0';
  assert_true(a.open(key, flipped, &r) == fleet::RecordProblem::kBadMac);
  // Not of this format.
  assert_true(a.open(key, "1|0|00|00", &r) == fleet::RecordProblem::kLegacy);
  assert_true(a.open(key, "0", &r) == fleet::RecordProblem::kLegacy);
  assert_true(a.open(key, "m1|", &r) == fleet::RecordProblem::kMalformed);
  assert_true(a.open(key, "m1|h|07|p|" + std::string(64, 'a'), &r) ==
              fleet::RecordProblem::kMalformed);  // a counter has one spelling
  assert_true(a.open(key, "m1|h|x|p|" + std::string(64, 'a'), &r) ==
              fleet::RecordProblem::kMalformed);
  assert_true(a.open(key, "m1|h|1|p|" + std::string(64, 'A'), &r) ==
              fleet::RecordProblem::kMalformed);
  assert_true(a.open(key, "m1|h|1|" + std::string(64, 'a'), &r) ==
              fleet::RecordProblem::kMalformed);  // no payload separator
  assert_true(a.open(key, std::string(fleet::kMaxRecordValue + 1, 'm'), &r) ==
              fleet::RecordProblem::kMalformed);
  assert_string_equal(fleet::record_problem_name(fleet::RecordProblem::kBadMac), "bad-mac");
  assert_string_equal(fleet::record_problem_name(fleet::RecordProblem::kLegacy), "legacy-record");
}

void test_state_codec(void** /*state*/) {
  fleet::UserState s;
  s.watermark = 58800000;
  s.backup = {code(1), code(2)};
  s.limits = LimitState{2, 1, 1766000000000000, 20432, 4};
  s.factors["totp"] = std::string(40, 'c');
  const std::string p = fleet::encode_state(s);
  auto back = fleet::decode_state(p);
  assert_true(back.has_value() && fleet::same_state(*back, s));
  auto empty = fleet::decode_state(fleet::encode_state(fleet::UserState{}));
  assert_true(empty.has_value() && !empty->watermark && empty->backup.empty());
  for (const char* bad :
       {"", "1|", "x||0|0|0|0|0|", "|zz|0|0|0|0|0|", "||-1|0|0|0|0|", "||0|0|0|0|0|totp=abc",
        "||0|0|0|0|0|=" /* no field */, "||0|0|0|0|0||extra"})
    assert_false(fleet::decode_state(bad).has_value());
}

// Named TOTP devices (issue 19): each device's watermark in the record; a state of the default
// device alone reads and writes as the release before (8 fields), which still reads it.
void test_state_codec_named_devices(void** /*state*/) {
  const std::string old_format = "58800000||0|0|0|0|0|totp=" + std::string(40, 'c');
  auto old = fleet::decode_state(old_format);
  assert_true(old.has_value() && *old->watermark == 58800000 && old->device_watermarks.empty());
  assert_string_equal(fleet::encode_state(*old).c_str(), old_format.c_str());
  fleet::UserState s = *old;
  s.device_watermarks["laptop"] = 58800001;
  s.factors["totp/laptop"] = std::string(40, 'd');
  const std::string p = fleet::encode_state(s);
  assert_true(p.ends_with("|laptop=58800001"));
  auto back = fleet::decode_state(p);
  assert_true(back.has_value() && fleet::same_state(*back, s));
  assert_true(fleet::device_watermark(*back, "laptop") == 58800001u);
  assert_true(fleet::device_watermark(*back, "default") == 58800000u);
  assert_false(fleet::device_watermark(*back, "phone").has_value());
  for (const char* bad : {"||0|0|0|0|0||laptop=", "||0|0|0|0|0||default=5", "||0|0|0|0|0||a/b=5",
                          "||0|0|0|0|0||x=1,x=2", "||0|0|0|0|0||=1"})
    assert_false(fleet::decode_state(bad).has_value());
}

void test_apply_change_per_device(void** /*state*/) {
  const RatePolicy policy{3, 60, 3600, 50};
  const int64_t now = 1766000000000000;
  fleet::UserState s;
  s.watermark = 100;
  s.device_watermarks["laptop"] = 100;
  // A step used on one device is still free on another (each device its own watermark)...
  fleet::StateChange phone;
  phone.step = 101;
  phone.device = "phone";
  phone.action = "success";
  auto o = fleet::apply_change(s, phone, policy, now);
  assert_true(o.refused == FleetRefusal::kNone && o.next.device_watermarks.at("phone") == 101);
  assert_int_equal(*o.next.watermark, 100);
  assert_int_equal(o.next.device_watermarks.at("laptop"), 100);
  fleet::StateChange laptop = phone;
  laptop.device = "laptop";
  auto o2 = fleet::apply_change(o.next, laptop, policy, now);
  assert_true(o2.refused == FleetRefusal::kNone && o2.next.device_watermarks.at("laptop") == 101);
  // ...and used twice on the same device, a replay.
  auto o3 = fleet::apply_change(o2.next, laptop, policy, now);
  assert_true(o3.refused == FleetRefusal::kReplay);
  assert_int_equal(o3.next.device_watermarks.at("laptop"), 101);
  fleet::StateChange by_default = phone;
  by_default.device = "";
  by_default.step = 100;
  assert_true(fleet::apply_change(s, by_default, policy, now).refused == FleetRefusal::kReplay);
}

// The data key in Redis (data_key_records.hpp) opens only for the fleet, the account and the key
// name it was wrapped for.
void test_data_key_wrap_is_bound(void** /*state*/) {
  auto wrap = fleet::DataKeyWrap::derive(master(1).span());
  auto other = fleet::DataKeyWrap::derive(master(2).span());
  assert_true(wrap.ok() && other.ok());
  const SecureBytes key = master(7);
  const std::string record = "mfad:user:{alice}:datakey";
  auto hex = wrap->wrap("uid/1001", record, key.span());
  assert_true(hex.ok());
  auto back = wrap->unwrap("uid/1001", record, *hex);
  assert_true(back.ok() && ct_equal(back->span(), key.span()));
  assert_false(wrap->unwrap("uid/1002", record, *hex).ok());                     // another person
  assert_false(wrap->unwrap("uid/1001", "mfad:user:{bob}:datakey", *hex).ok());  // moved
  assert_false(other->unwrap("uid/1001", record, *hex).ok());                    // another fleet
  std::string flipped = *hex;
  flipped[40] = flipped[40] == '0' ? '1' : '0';
  assert_false(wrap->unwrap("uid/1001", record, flipped).ok());
  assert_false(wrap->unwrap("uid/1001", record, "zz").ok());
}

// Tombstones name no one, and only the fleet's open.
void test_tombstones(void** /*state*/) {
  const auto a = mac_of(1, "host-a");
  const std::string stone = fleet::seal_tombstone(a, "mfad:", "uid/1001", 1766000000000000);
  assert_true(stone.find("uid/") == std::string::npos);
  const auto forged = mac_of(2, "host-a");
  size_t rejected = 0;
  auto open = fleet::open_tombstones(
      a, "mfad:", {stone, fleet::seal_tombstone(forged, "mfad:", "uid/1002", 1), "garbage"},
      &rejected);
  assert_int_equal(rejected, 2);
  assert_int_equal(open.size(), 1);
  const auto& t = open.begin()->second;
  assert_true(t.id == fleet::tombstone_id(a, "uid/1001") && t.host == "host-a" &&
              t.time_usec == 1766000000000000);
  assert_true(fleet::tombstone_id(a, "uid/1001") != fleet::tombstone_id(a, "uid/1002"));
  // Another key prefix is another record name: it does not open there.
  assert_true(fleet::open_tombstones(a, "other:", {stone}, &rejected).empty());
}

void test_apply_change(void** /*state*/) {
  const RatePolicy policy{3, 60, 3600, 50};
  const int64_t now = 1766000000000000;
  fleet::UserState s;
  s.watermark = 100;
  s.backup = {code(1), code(2)};
  // The watermark moves forward only: a step at or below it is a replay, counted as a failure.
  fleet::StateChange totp;
  totp.step = 100;
  auto o = fleet::apply_change(s, totp, policy, now);
  assert_true(o.refused == FleetRefusal::kReplay);
  assert_int_equal(*o.next.watermark, 100);
  assert_int_equal(o.next.limits.consecutive_failures, 1);
  totp.step = 101;
  totp.action = "success";
  o = fleet::apply_change(s, totp, policy, now);
  assert_true(o.refused == FleetRefusal::kNone && *o.next.watermark == 101);
  // A backup code works once; the last one tells the read caches.
  fleet::StateChange backup;
  backup.backup = code(1);
  o = fleet::apply_change(s, backup, policy, now);
  assert_true(o.refused == FleetRefusal::kNone && o.next.backup.size() == 1 && !o.backup_emptied);
  o = fleet::apply_change(o.next, backup, policy, now);
  assert_true(o.refused == FleetRefusal::kConsumedElsewhere && o.next.backup.size() == 1);
  backup.backup = code(2);
  o = fleet::apply_change(o.next, backup, policy, now);
  assert_true(o.refused == FleetRefusal::kNone && o.backup_emptied);
  // Failures: rate_limiter.cpp's arithmetic; the third locks.
  fleet::StateChange failures;
  failures.action = "fail";
  failures.fail_count = 3;
  o = fleet::apply_change(s, failures, policy, now);
  assert_true(o.lock_changed && o.next.limits.locked_until_usec == now + 60 * kUsecPerSecond);
  // Locked: a login decided from a stale cache is refused, nothing counted or consumed.
  fleet::StateChange login;
  login.check_lock = true;
  login.backup = code(1);
  auto locked = fleet::apply_change(o.next, login, policy, now + 1);
  assert_true(locked.refused == FleetRefusal::kLocked);
  assert_true(fleet::same_state(locked.next, o.next));
  // The factor a success rests on changed: refused and counted, nothing consumed.
  fleet::StateChange changed;
  changed.step = 200;
  changed.factor_changed = true;
  changed.action = "success";
  o = fleet::apply_change(s, changed, policy, now);
  assert_true(o.refused == FleetRefusal::kFactorChanged && *o.next.watermark == 100);
  assert_int_equal(o.next.limits.consecutive_failures, 1);
  // An admin's clear.
  fleet::StateChange clear;
  clear.action = "clear";
  o = fleet::apply_change(locked.next, clear, policy, now);
  assert_int_equal(o.next.limits.locked_until_usec, 0);
}

void test_verify_user(void** /*state*/) {
  const auto mac = mac_of(3, "host-a");
  const auto keys = fleet::user_keys("mfad:", "nobody-here");
  FactorRecord f;
  f.method = Method::kTotp;
  f.sealed = {1, 2, 3};
  f.params = "SHA1:6:30";
  const std::string factor =
      mac.seal(fleet::field_key_name(keys.factors, "totp"), 4, fleet::encode_factor(f));
  fleet::UserState s;
  s.factors["totp"] = fleet::sha1_hex(factor);
  fleet::RawUser raw;
  raw.factors = {{"totp", factor}};
  raw.state = mac.seal(keys.state, 4, fleet::encode_state(s));
  fleet::VerifiedUser u;
  std::string at;
  assert_true(fleet::verify_user(mac, keys, raw, &u, &at) == fleet::RecordProblem::kNone);
  assert_int_equal(u.counter, 4);
  assert_int_equal(u.factors.size(), 1);
  assert_string_equal(u.factor_writers["totp"].c_str(), "host-a");
  // A factor record the state does not vouch for (added, or put back from an old copy).
  auto extra = raw;
  extra.factors.push_back({"sms", factor});
  assert_true(fleet::verify_user(mac, keys, extra, &u, &at) == fleet::RecordProblem::kBadMac);
  // One removed behind the state's back: not "no factor".
  auto removed = raw;
  removed.factors.clear();
  assert_true(fleet::verify_user(mac, keys, removed, &u, &at) == fleet::RecordProblem::kBadMac);
  // Records of the release before (no state, no MAC): refused, never absent.
  fleet::RawUser legacy;
  legacy.factors = {{"totp", fleet::encode_factor(f)}};
  assert_true(fleet::verify_user(mac, keys, legacy, &u, &at) == fleet::RecordProblem::kLegacy);
  legacy.factors.clear();
  legacy.legacy = true;
  assert_true(fleet::verify_user(mac, keys, legacy, &u, &at) == fleet::RecordProblem::kLegacy);
  // Nothing at all: a user Redis has never held.
  assert_true(fleet::verify_user(mac, keys, fleet::RawUser{}, &u, &at) ==
              fleet::RecordProblem::kNone);
  assert_int_equal(u.counter, 0);
}

}  // namespace
}  // namespace mfa

int main() {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(mfa::test_seal_and_open),
      cmocka_unit_test(mfa::test_state_codec),
      cmocka_unit_test(mfa::test_apply_change),
      cmocka_unit_test(mfa::test_state_codec_named_devices),
      cmocka_unit_test(mfa::test_apply_change_per_device),
      cmocka_unit_test(mfa::test_data_key_wrap_is_bound),
      cmocka_unit_test(mfa::test_tombstones),
      cmocka_unit_test(mfa::test_verify_user),
  };
  return cmocka_run_group_tests_name("record-mac", tests, nullptr, nullptr);
}

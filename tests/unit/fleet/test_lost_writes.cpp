// A state older than this host's high-water mark, merged with what this host knows
// (fleet/lost_writes.hpp; docs/fleet.md, "High availability"): no code this host saw used
// reopens, whether the queue or the cache is what knew it.
#include <string>

#include "fleet/keys.hpp"
#include "fleet/lost_writes.hpp"
// cmocka last: its fail() macro must not meet a standard header.
#include "cmocka_cpp.hpp"

namespace mfa {
namespace {

CodeHash code(uint8_t fill) {
  CodeHash h;
  h.fill(fill);
  return h;
}

ReconcileItem backup_item(uint8_t fill, uint64_t counter) {
  return {0, "alice", "backup", 0, code(fill), 0, counter};
}

ReconcileItem step_item(const std::string& kind, uint64_t step, uint64_t counter) {
  return {0, "alice", kind, step, std::nullopt, 0, counter};
}

fleet::UserState remote_state() {
  fleet::UserState s;
  s.backup = {code(1), code(2), code(3), code(4)};
  s.watermark = 100;
  s.device_watermarks["phone"] = 50;
  s.factors[fleet::factor_field(Method::kTotp, false, "default")] = "aa";
  s.factors[fleet::factor_field(Method::kTotp, false, "phone")] = "bb";
  s.limits.consecutive_failures = 1;
  s.limits.day = 20000;
  s.limits.day_failures = 1;
  return s;
}

void test_queued_consumptions_are_applied(void** /*state*/) {
  fleet::LocalKnowledge local;
  local.unused_backup = {code(1), code(2), code(3), code(4)};
  local.unreplicated = {backup_item(2, 9), step_item("watermark", 130, 9),
                        step_item("watermark/phone", 60, 10)};
  const auto merged = fleet::merge_lost_writes(remote_state(), local);
  assert_int_equal(merged.backup.size(), 3);
  assert_true(merged.backup[0] == code(1) && merged.backup[1] == code(3) &&
              merged.backup[2] == code(4));
  assert_int_equal(*merged.watermark, 130);
  assert_int_equal(merged.device_watermarks.at("phone"), 60);
  // The factors are Redis's, untouched.
  assert_true(merged.factors == remote_state().factors);
}

void test_the_cache_knows_more_than_the_queue(void** /*state*/) {
  // An attacker rolled Redis further back than the lost write: codes this host saw used before
  // it (gone from the cache's set), watermarks the cache holds, stay used.
  fleet::LocalKnowledge local;
  local.unused_backup = {code(3), code(4)};
  local.watermarks["default"] = 200;
  local.watermarks["phone"] = 40;  // below Redis's: the larger stays
  local.unreplicated = {backup_item(4, 9)};
  const auto merged = fleet::merge_lost_writes(remote_state(), local);
  assert_int_equal(merged.backup.size(), 1);
  assert_true(merged.backup[0] == code(3));
  assert_int_equal(*merged.watermark, 200);
  assert_int_equal(merged.device_watermarks.at("phone"), 50);
}

void test_no_code_is_added(void** /*state*/) {
  // A code the cache has and Redis's state lacks does not come back from the cache.
  fleet::LocalKnowledge local;
  local.unused_backup = {code(1), code(9)};
  const auto merged = fleet::merge_lost_writes(remote_state(), local);
  assert_int_equal(merged.backup.size(), 1);
  assert_true(merged.backup[0] == code(1));
}

void test_removed_device_stays_removed(void** /*state*/) {
  fleet::LocalKnowledge local;
  local.unused_backup = remote_state().backup;
  local.unreplicated = {step_item("watermark/tablet", 70, 9)};
  local.watermarks["laptop"] = 80;
  const auto merged = fleet::merge_lost_writes(remote_state(), local);
  assert_int_equal(merged.device_watermarks.size(), 1);
  assert_int_equal(merged.device_watermarks.count("tablet"), 0);
}

void test_limits_take_the_larger(void** /*state*/) {
  fleet::LocalKnowledge local;
  local.unused_backup = remote_state().backup;
  local.limits.consecutive_failures = 0;  // a success here reset them: the larger stays
  local.limits.lockout_count = 2;
  local.limits.locked_until_usec = 5000;
  local.limits.day = 20000;
  local.limits.day_failures = 4;
  auto merged = fleet::merge_lost_writes(remote_state(), local);
  assert_int_equal(merged.limits.consecutive_failures, 1);
  assert_int_equal(merged.limits.lockout_count, 2);
  assert_int_equal(merged.limits.locked_until_usec, 5000);
  assert_int_equal(merged.limits.day_failures, 4);
  // Another day's count: the later day's.
  local.limits.day = 19999;
  local.limits.day_failures = 9;
  merged = fleet::merge_lost_writes(remote_state(), local);
  assert_int_equal(merged.limits.day, 20000);
  assert_int_equal(merged.limits.day_failures, 1);
}

}  // namespace
}  // namespace mfa

int main() {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(mfa::test_queued_consumptions_are_applied),
      cmocka_unit_test(mfa::test_the_cache_knows_more_than_the_queue),
      cmocka_unit_test(mfa::test_no_code_is_added),
      cmocka_unit_test(mfa::test_removed_device_stays_removed),
      cmocka_unit_test(mfa::test_limits_take_the_larger),
  };
  return cmocka_run_group_tests_name("lost-writes", tests, nullptr, nullptr);
}

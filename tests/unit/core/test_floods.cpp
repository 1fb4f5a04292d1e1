// What keeps an unprivileged flood cheap in the core (docs/security-model.md, "Floods"): the
// short memory of NSS answers (CachedUserDirectory) and the coalescing of repeated denials
// (DenialCoalescer), with a FakeClock.
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <map>
#include <optional>
#include <string>
#include <string_view>

#include "core/clock.hpp"
#include "core/denial_coalescer.hpp"
#include "core/user_directory.hpp"
#include "core_fakes.hpp"

extern "C" {
#include <cmocka.h>
}

using namespace mfa;
using namespace mfa::test;

namespace {

// FakeUsers, counting the lookups that reach it.
class CountingUsers final : public UserDirectory {
 public:
  std::optional<uid_t> uid_of(std::string_view user) const override {
    ++lookups;
    return users.uid_of(user);
  }
  std::optional<std::string> name_of(uid_t uid) const override {
    ++lookups;
    return users.name_of(uid);
  }
  bool in_group(uid_t uid, std::string_view group) const override {
    ++lookups;
    return users.in_group(uid, group);
  }
  FakeUsers users;
  mutable int lookups = 0;
};

void test_cache_answers_within_its_ttl(void**) {
  FakeClock clock;
  CountingUsers nss;
  CachedUserDirectory cache(nss, clock);
  for (int i = 0; i < 10; ++i) {
    assert_true(cache.uid_of("alice") == std::optional<uid_t>(kAlice));
    assert_true(cache.name_of(kBob) == std::optional<std::string>("bob"));
    assert_true(cache.in_group(kCarol, "mfa-admin"));
    assert_false(cache.in_group(kAlice, "mfa-admin"));
    assert_false(cache.uid_of("nobody-ever").has_value());
  }
  assert_int_equal(nss.lookups, 5);
  // Absences are forgotten first, then what was found.
  clock.advance_usec(static_cast<int64_t>(CachedUserDirectory::kAbsentTtlUsec));
  assert_false(cache.uid_of("nobody-ever").has_value());
  assert_false(cache.in_group(kAlice, "mfa-admin"));
  assert_true(cache.uid_of("alice") == std::optional<uid_t>(kAlice));
  assert_int_equal(nss.lookups, 7);
  nss.users.deleted.insert("alice");
  clock.advance_usec(static_cast<int64_t>(CachedUserDirectory::kFoundTtlUsec));
  assert_false(cache.uid_of("alice").has_value());
  assert_int_equal(nss.lookups, 8);
  // Names NSS is never asked about.
  assert_false(cache.uid_of("").has_value());
  assert_false(cache.uid_of(std::string(300, 'a')).has_value());
  assert_int_equal(nss.lookups, 8);
}

// A flood of distinct names costs one lookup each and never more than kMaxEntries of memory.
void test_cache_is_bounded(void**) {
  FakeClock clock;
  CountingUsers nss;
  CachedUserDirectory cache(nss, clock);
  const int n = static_cast<int>(CachedUserDirectory::kMaxEntries) * 2 + 10;
  for (int i = 0; i < n; ++i)
    assert_false(cache.uid_of("flood-" + std::to_string(i)).has_value());
  assert_int_equal(nss.lookups, n);
  // Still a cache: the last names are remembered.
  assert_false(cache.uid_of("flood-" + std::to_string(n - 1)).has_value());
  assert_int_equal(nss.lookups, n);
}

DenialCoalescer::Denial denial(uid_t uid, const char* action) {
  return DenialCoalescer::Denial{uid, action, AuditKind::kAccessDenied, AuditReason::kNotAllowed};
}

void test_coalescer_counts_repeats_per_window(void**) {
  DenialCoalescer c;
  uint64_t now = 1000000;
  assert_true(c.first(denial(kBob, "GetUser"), "alice", "uid=1001", now));
  assert_false(c.counting());  // a first row alone: nothing to write later
  for (int i = 0; i < 9; ++i)
    assert_false(c.first(denial(kBob, "GetUser"), "alice", "uid=1001 pid=2", now + 1000));
  assert_true(c.first(denial(kBob, "ListUsers"), "", "uid=1001", now));
  assert_true(c.first(denial(kAlice, "GetUser"), "bob", "uid=1000", now));
  assert_true(c.counting());
  assert_true(c.take(now + DenialCoalescer::kWindowUsec - 1, false).empty());
  auto due = c.take(now + DenialCoalescer::kWindowUsec, false);
  assert_false(c.counting());
  assert_int_equal(due.size(), 1);  // only kinds with repeats have a count to write
  assert_int_equal(due[0].count, 9);
  assert_string_equal(due[0].user.c_str(), "alice");
  assert_string_equal(due[0].caller.c_str(), "uid=1001 pid=2");
  assert_int_equal(c.kinds(), 0);
  // A repeat after its window opens a new one: its row is written at once.
  assert_true(c.first(denial(kBob, "GetUser"), "alice", "uid=1001", now + 61000000));
}

// Refusals about one account (a locked account's logins) are counted apart from another's, and
// apart from the kinds that name no account.
void test_coalescer_counts_accounts_apart(void**) {
  DenialCoalescer c;
  const uint64_t now = 1000000;
  auto locked = [](const char* account) {
    return DenialCoalescer::Denial{0, "BeginAuthentication", AuditKind::kAuthRateLimited,
                                   AuditReason::kLocked, account};
  };
  assert_true(c.first(locked("uid/1000"), "uid/1000", "uid=0 pid=1", now));
  assert_true(c.first(locked("uid/1001"), "uid/1001", "uid=0 pid=1", now));
  for (int i = 0; i < 5; ++i) {
    assert_false(c.first(locked("uid/1000"), "uid/1000", "uid=0 pid=2", now + 1));
    assert_false(c.first(locked("uid/1001"), "uid/1001", "uid=0 pid=2", now + 1));
  }
  assert_int_equal(c.kinds(), 2);
  auto due = c.take(now, true);
  assert_int_equal(due.size(), 2);
  for (const auto& r : due)
    assert_int_equal(r.count, 5);
  assert_true((due[0].user == "uid/1000" && due[1].user == "uid/1001") ||
              (due[0].user == "uid/1001" && due[1].user == "uid/1000"));
}

// A full table hands over its counts (written with the next take) and starts again.
void test_coalescer_is_bounded(void**) {
  DenialCoalescer c;
  const uint64_t now = 1000000;
  for (uid_t u = 0; u < DenialCoalescer::kMaxKinds; ++u) {
    assert_true(c.first(denial(2000 + u, "GetUser"), "", "", now));
    assert_false(c.first(denial(2000 + u, "GetUser"), "", "", now));
  }
  assert_int_equal(c.kinds(), DenialCoalescer::kMaxKinds);
  assert_true(c.first(denial(9, "GetUser"), "", "", now));
  assert_int_equal(c.kinds(), 1);
  assert_true(c.counting());  // what the full table handed over
  auto handed = c.take(now, false);
  assert_false(c.counting());
  assert_int_equal(handed.size(), DenialCoalescer::kMaxKinds);
  assert_int_equal(handed[0].count, 1);
  // Shutdown: everything, window ended or not.
  assert_false(c.first(denial(9, "GetUser"), "", "", now));
  assert_int_equal(c.take(now, true).size(), 1);
  assert_int_equal(c.kinds(), 0);
}

}  // namespace

int main() {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_cache_answers_within_its_ttl),
      cmocka_unit_test(test_cache_is_bounded),
      cmocka_unit_test(test_coalescer_counts_repeats_per_window),
      cmocka_unit_test(test_coalescer_counts_accounts_apart),
      cmocka_unit_test(test_coalescer_is_bounded),
  };
  return cmocka_run_group_tests(tests, nullptr, nullptr);
}

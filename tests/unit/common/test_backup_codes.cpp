// Backup codes: alphabet, uniqueness, uniformity, what a person may type, display format.
#include <array>
#include <map>
#include <set>
#include <string>

#include "common/backup_codes.hpp"
#include "cmocka_cpp.hpp"

namespace {

void test_alphabet_has_no_lookalikes(void**) {
  const std::string_view a = mfa::kBackupCodeAlphabet;
  for (char c : std::string_view("0O1IL5S2Z8B"))
    assert_true(a.find(c) == std::string_view::npos);
  std::set<char> unique(a.begin(), a.end());
  assert_int_equal(unique.size(), a.size());
  for (char c : a)
    assert_true((c >= 'A' && c <= 'Z') || (c >= '3' && c <= '9'));
  assert_true(a.size() >= 20);  // 8 characters carry at least 34 bits
}

void test_generate(void**) {
  auto codes = mfa::generate_backup_codes();
  assert_int_equal(codes.size(), mfa::kBackupCodeCount);
  std::set<std::string> seen;
  for (const auto& c : codes) {
    assert_int_equal(c.size(), mfa::kBackupCodeLength);
    for (char ch : c.view())
      assert_true(mfa::kBackupCodeAlphabet.find(ch) != std::string_view::npos);
    assert_true(mfa::looks_like_backup_code(c.view()));
    seen.insert(std::string(c.view()));
  }
  assert_int_equal(seen.size(), codes.size());
  assert_int_equal(mfa::generate_backup_codes(3).size(), 3);
  assert_int_equal(mfa::generate_backup_codes(0).size(), 0);
  assert_int_equal(mfa::generate_backup_codes(-1).size(), 0);
  // Two sets share nothing (2^-300 odds otherwise).
  auto other = mfa::generate_backup_codes();
  for (const auto& c : other)
    assert_true(seen.count(std::string(c.view())) == 0);
}

void test_uniform(void**) {
  // 2000 codes × 8 = 16000 characters over 25 symbols: 640 each, sigma ~25.
  std::map<char, int> counts;
  for (int i = 0; i < 200; ++i)
    for (const auto& c : mfa::generate_backup_codes())
      for (char ch : c.view())
        ++counts[ch];
  assert_int_equal(counts.size(), mfa::kBackupCodeAlphabet.size());
  for (const auto& [ch, n] : counts)
    assert_in_range(n, 640 - 200, 640 + 200);
}

void test_normalize(void**) {
  auto n = mfa::normalize_backup_code("acde-fghj");
  assert_true(n.has_value());
  assert_string_equal(n->c_str(), "ACDEFGHJ");
  n = mfa::normalize_backup_code("  AcDe FgHj ");
  assert_true(n.has_value());
  assert_string_equal(n->c_str(), "ACDEFGHJ");
  n = mfa::normalize_backup_code("ACDEFGHJ");
  assert_string_equal(n->c_str(), "ACDEFGHJ");
  n = mfa::normalize_backup_code("34-67-9A-CD");
  assert_string_equal(n->c_str(), "34679ACD");
  assert_false(mfa::normalize_backup_code("ACDEFGH").has_value());    // 7
  assert_false(mfa::normalize_backup_code("ACDEFGHJK").has_value());  // 9
  assert_false(mfa::normalize_backup_code("ACDEFGH0").has_value());   // look-alike not in alphabet
  assert_false(mfa::normalize_backup_code("ACDEFGHO").has_value());
  assert_false(mfa::normalize_backup_code("ACDE_FGH").has_value());
  assert_false(mfa::normalize_backup_code("").has_value());
  assert_false(mfa::normalize_backup_code(std::string(1000, '-') + "ACDEFGHJ").has_value());
  // Every generated code survives display formatting and retyping.
  for (const auto& c : mfa::generate_backup_codes()) {
    std::string typed = mfa::format_backup_code(c.view());
    for (char& ch : typed)
      ch = static_cast<char>(ch | 0x20);  // lower case ('-' unchanged)
    auto back = mfa::normalize_backup_code(typed);
    assert_true(back.has_value());
    assert_true(back->view() == c.view());
  }
}

void test_looks_like(void**) {
  assert_true(mfa::looks_like_backup_code("ACDE-FGHJ"));
  assert_true(mfa::looks_like_backup_code("acdefghj"));
  assert_false(mfa::looks_like_backup_code("123456"));    // a TOTP code
  assert_false(mfa::looks_like_backup_code("12345678"));  // an 8-digit TOTP code
  assert_false(mfa::looks_like_backup_code("33446677"));  // all digits reads as TOTP too
  assert_false(mfa::looks_like_backup_code("sms"));
  assert_false(mfa::looks_like_backup_code(""));
}

void test_format(void**) {
  assert_string_equal(mfa::format_backup_code("ACDEFGHJ").c_str(), "ACDE-FGHJ");
  assert_string_equal(mfa::format_backup_code("ACD").c_str(), "ACD");
}

// google-authenticator's scratch codes (8 digits, `mfactl import`) are backup codes as typed;
// mfad's own codes keep their canonical form; nothing else is one.
void test_canonical(void**) {
  auto scratch = mfa::canonical_backup_code("79108513");
  assert_true(scratch.has_value());
  assert_string_equal(scratch->c_str(), "79108513");
  auto own = mfa::canonical_backup_code("acde-fghj");
  assert_true(own.has_value());
  assert_string_equal(own->c_str(), "ACDEFGHJ");
  assert_false(mfa::canonical_backup_code("7910851").has_value());
  assert_false(mfa::canonical_backup_code("791085130").has_value());
  assert_false(mfa::canonical_backup_code("7910 8513").has_value());
  assert_false(mfa::canonical_backup_code("ACDEFGH0").has_value());
}

}  // namespace

int main() {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_alphabet_has_no_lookalikes),
      cmocka_unit_test(test_generate),
      cmocka_unit_test(test_uniform),
      cmocka_unit_test(test_normalize),
      cmocka_unit_test(test_looks_like),
      cmocka_unit_test(test_format),
      cmocka_unit_test(test_canonical),
  };
  return cmocka_run_group_tests(tests, nullptr, nullptr);
}

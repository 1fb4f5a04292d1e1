// UTF-8 (RFC 3629 §3-4 and its Table 3-7 of well-formed sequences): what decodes, what is refused
// (overlong forms, surrogates, beyond U+10FFFF, cut sequences), and what counts as a control.
#include <string>
#include <string_view>

#include "common/utf8.hpp"
#include "cmocka_cpp.hpp"

namespace {

void test_decodes_each_length(void**) {
  const struct {
    std::string_view text;
    char32_t cp;
  } kCases[] = {{"A", U'A'},
                {"\xC3\xA9", U'\u00E9'},
                {"\xE2\x9C\x93", U'\u2713'},
                {"\xF0\x9F\x94\x91", U'\U0001F511'},
                {"\xF4\x8F\xBF\xBF", U'\U0010FFFF'}};
  for (const auto& c : kCases) {
    size_t i = 0;
    const auto cp = mfa::decode_utf8(c.text, i);
    assert_true(cp.has_value());
    assert_int_equal(*cp, c.cp);
    assert_int_equal(i, c.text.size());
  }
}

void test_refuses_malformed(void**) {
  const std::string_view kBad[] = {
      "\x80",              // a lone continuation byte
      "\xC0\xAF",          // overlong '/'
      "\xE0\x80\xAF",      // overlong '/'
      "\xF0\x80\x80\xAF",  // overlong '/'
      "\xED\xA0\x80",      // U+D800, a surrogate
      "\xF4\x90\x80\x80",  // U+110000
      "\xF8\x88\x80\x80",  // a 5-byte form
      "\xC3",              // cut short
      "\xE2\x9C",          // cut short
      "\xC3\x28",          // a continuation byte missing
      "\xFF",
  };
  for (std::string_view s : kBad) {
    size_t i = 0;
    assert_false(mfa::decode_utf8(s, i).has_value());
    assert_int_equal(i, 0);  // untouched
    assert_false(mfa::is_valid_utf8(s));
    assert_int_equal(mfa::first_invalid_utf8(s), 0);
  }
}

void test_first_invalid_offset(void**) {
  assert_int_equal(mfa::first_invalid_utf8(""), std::string_view::npos);
  assert_int_equal(mfa::first_invalid_utf8("Caf\xC3\xA9"), std::string_view::npos);
  assert_int_equal(mfa::first_invalid_utf8("Caf\xE9 au lait"), 3);  // Latin-1
  assert_int_equal(mfa::first_invalid_utf8("ok\xE2\x9C\x93\xC3"), 5);
  assert_true(mfa::is_valid_utf8(std::string_view("nul\0inside", 10)));
}

void test_printable(void**) {
  assert_true(mfa::is_printable_utf8(""));
  assert_true(mfa::is_printable_utf8("Example Corp \xE2\x9C\x93"));
  assert_false(mfa::is_printable_utf8("tab\there"));
  assert_false(mfa::is_printable_utf8("new\nline"));
  assert_false(mfa::is_printable_utf8("esc\x1b[31m"));
  assert_false(mfa::is_printable_utf8("del\x7f"));
  assert_false(mfa::is_printable_utf8("c1\xC2\x85"));  // U+0085 NEXT LINE
  assert_true(mfa::is_printable_utf8("nbsp\xC2\xA0"));
  assert_false(mfa::is_printable_utf8("bad\xFF"));
  assert_true(mfa::is_control_code_point(0x00));
  assert_true(mfa::is_control_code_point(0x9F));
  assert_false(mfa::is_control_code_point(0xA0));
  assert_false(mfa::is_control_code_point(U' '));
}

}  // namespace

int main() {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_decodes_each_length),
      cmocka_unit_test(test_refuses_malformed),
      cmocka_unit_test(test_first_invalid_offset),
      cmocka_unit_test(test_printable),
  };
  return cmocka_run_group_tests(tests, nullptr, nullptr);
}

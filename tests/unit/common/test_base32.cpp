// Base32 (RFC 4648 §10 vectors, tolerance, refusals).
#include <string>
#include <vector>

#include "common/base32.hpp"
#include "common/crypto.hpp"
#include "cmocka_cpp.hpp"

using mfa::test::bytes_of;

namespace {

std::string decode_to_string(std::string_view text) {
  auto r = mfa::base32_decode(text);
  assert_true(r.ok());
  return std::string(reinterpret_cast<const char*>(r->data()), r->size());
}

void expect_invalid(std::string_view text) {
  auto r = mfa::base32_decode(text);
  assert_false(r.ok());
  assert_int_equal(static_cast<int>(r.error().code), static_cast<int>(mfa::Errc::kInvalidArgument));
  assert_true(r.error().message.find("base32") != std::string::npos);
}

void test_rfc4648_vectors(void**) {
  const struct {
    const char* plain;
    const char* encoded;
  } kVectors[] = {{"", ""},
                  {"f", "MY"},
                  {"fo", "MZXQ"},
                  {"foo", "MZXW6"},
                  {"foob", "MZXW6YQ"},
                  {"fooba", "MZXW6YTB"},
                  {"foobar", "MZXW6YTBOI"}};
  for (const auto& v : kVectors) {
    assert_string_equal(mfa::base32_encode(bytes_of(v.plain)).c_str(), v.encoded);
    assert_string_equal(decode_to_string(v.encoded).c_str(), v.plain);
  }
  // The RFC 6238 seed as authenticator apps get it.
  assert_string_equal(mfa::base32_encode(bytes_of("12345678901234567890")).c_str(),
                      "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ");
}

void test_tolerated_forms(void**) {
  assert_string_equal(decode_to_string("MZXW6YTBOI======").c_str(), "foobar");
  assert_string_equal(decode_to_string("MY======").c_str(), "f");
  assert_string_equal(decode_to_string("mzxw6ytboi").c_str(), "foobar");
  assert_string_equal(decode_to_string("MzXw 6yTb oI").c_str(), "foobar");
  assert_string_equal(decode_to_string("GEZD GNBV GY3T QOJQ GEZD GNBV GY3T QOJQ").c_str(),
                      "12345678901234567890");
  assert_string_equal(decode_to_string("MZXW6YQ= ").c_str(), "foob");
}

void test_invalid_input(void**) {
  expect_invalid("MZXW1");     // '1' is not base32
  expect_invalid("MZXW0");     // nor '0'
  expect_invalid("MZXW8YTB");  // nor '8'
  expect_invalid("MZ@W6");
  expect_invalid("MZXW6\n");
  expect_invalid("MZXW-6YTB");
  expect_invalid("M");  // 1, 3, 6 symbols cannot encode whole bytes
  expect_invalid("MZX");
  expect_invalid("MZXW6Y");
  expect_invalid("MZXW6YTBO");  // 9 = 8 + 1
  expect_invalid("MZ==XW6Y");   // data after padding
  expect_invalid(std::string("MZ\0XW", 5));
  expect_invalid(std::string(1025, 'A'));
  // 1 KiB exactly is accepted.
  auto max = mfa::base32_decode(std::string(1024, 'A'));
  assert_true(max.ok());
  assert_int_equal(max->size(), 640);
}

void test_round_trip(void**) {
  for (size_t len = 0; len <= 100; ++len) {
    std::vector<uint8_t> data(len);
    assert_true(mfa::random_bytes(data).ok());
    const std::string encoded = mfa::base32_encode(data);
    assert_int_equal(encoded.size(), (len * 8 + 4) / 5);
    for (char c : encoded)
      assert_true((c >= 'A' && c <= 'Z') || (c >= '2' && c <= '7'));
    auto decoded = mfa::base32_decode(encoded);
    assert_true(decoded.ok());
    assert_int_equal(decoded->size(), len);
    if (len)
      assert_memory_equal(decoded->data(), data.data(), len);
  }
}

}  // namespace

int main() {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_rfc4648_vectors),
      cmocka_unit_test(test_tolerated_forms),
      cmocka_unit_test(test_invalid_input),
      cmocka_unit_test(test_round_trip),
  };
  return cmocka_run_group_tests(tests, nullptr, nullptr);
}

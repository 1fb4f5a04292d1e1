// Randomness, constant-time comparison, HKDF/HMAC/SHA-256 against RFC vectors, secure buffers,
// and the Errc ↔ D-Bus error name mapping.
#include <array>
#include <string>
#include <vector>

#include "common/crypto.hpp"
#include "common/dbus_names.hpp"
#include "common/result.hpp"
#include "common/secure_buffer.hpp"
#include "cmocka_cpp.hpp"

using mfa::test::bytes_of;

namespace {

std::vector<uint8_t> from_hex(std::string_view hex) {
  std::vector<uint8_t> out;
  for (size_t i = 0; i + 1 < hex.size(); i += 2)
    out.push_back(static_cast<uint8_t>(std::stoi(std::string(hex.substr(i, 2)), nullptr, 16)));
  return out;
}

void test_ct_equal(void**) {
  assert_true(mfa::ct_equal(std::string_view("123456"), std::string_view("123456")));
  assert_false(mfa::ct_equal(std::string_view("123456"), std::string_view("123457")));
  assert_false(mfa::ct_equal(std::string_view("023456"), std::string_view("123456")));
  assert_false(mfa::ct_equal(std::string_view("12345"), std::string_view("123456")));
  assert_false(mfa::ct_equal(std::string_view("1234567"), std::string_view("123456")));
  assert_false(mfa::ct_equal(std::string_view(""), std::string_view("1")));
  assert_true(mfa::ct_equal(std::string_view(""), std::string_view("")));
  const std::array<uint8_t, 3> a{1, 2, 3}, b{1, 2, 3}, c{1, 2, 4};
  assert_true(mfa::ct_equal(std::span<const uint8_t>(a), std::span<const uint8_t>(b)));
  assert_false(mfa::ct_equal(std::span<const uint8_t>(a), std::span<const uint8_t>(c)));
  // A prefix is not equal.
  assert_false(mfa::ct_equal(std::span<const uint8_t>(a).first(2), std::span<const uint8_t>(b)));
}

void test_random_bytes(void**) {
  std::array<uint8_t, 64> a{}, b{};
  assert_true(mfa::random_bytes(a).ok());
  assert_true(mfa::random_bytes(b).ok());
  assert_false(a == b);
  // More than getrandom's 256-byte single-call guarantee: the loop fills all of it.
  std::vector<uint8_t> big(100000, 0);
  assert_true(mfa::random_bytes(big).ok());
  size_t zeros_at_end = 0;
  for (size_t i = big.size() - 64; i < big.size(); ++i)
    zeros_at_end += big[i] == 0;
  assert_true(zeros_at_end < 16);
  assert_true(mfa::random_bytes(std::span<uint8_t>()).ok());
}

void test_random_uniform(void**) {
  assert_int_equal(mfa::random_uniform(1), 0);
  constexpr uint32_t kBound = 25;
  constexpr int kSamples = 250000;
  std::array<int, kBound> counts{};
  for (int i = 0; i < kSamples; ++i) {
    uint32_t v = mfa::random_uniform(kBound);
    assert_true(v < kBound);
    ++counts[v];
  }
  // Expected 10000 each, sigma ~98: ±800 is over 8 sigma, so this only fails on real bias.
  for (int c : counts)
    assert_in_range(c, 9200, 10800);
  // A bound near 2^32 still stays in range (rejection sampling, not modulo).
  for (int i = 0; i < 1000; ++i)
    assert_true(mfa::random_uniform(0x80000001u) < 0x80000001u);
}

void test_hkdf_rfc5869(void**) {
  // RFC 5869 test case 3: SHA-256, no salt, no info.
  const std::vector<uint8_t> ikm(22, 0x0b);
  auto okm = mfa::hkdf_sha256(ikm, "", 42);
  assert_true(okm.ok());
  assert_string_equal(mfa::to_hex(okm->span()).c_str(),
                      "8da4e775a563c18f715f802a063c5a31b8a11f5c5ee1879ec3454e5f3c738d2d"
                      "9d201395faa4b61a96c8");
  // Different info, different key.
  auto a = mfa::hkdf_sha256(ikm, "mfad seal v1", 32);
  auto b = mfa::hkdf_sha256(ikm, "mfad hash v1", 32);
  assert_true(a.ok() && b.ok());
  assert_false(mfa::ct_equal(a->span(), b->span()));
  auto bad = mfa::hkdf_sha256(ikm, "x", 0);
  assert_false(bad.ok());
  assert_int_equal(static_cast<int>(bad.error().code),
                   static_cast<int>(mfa::Errc::kInvalidArgument));
}

void test_hmac_rfc4231(void**) {
  // RFC 4231 test case 2.
  auto mac = mfa::hmac_sha256(bytes_of("Jefe"), bytes_of("what do ya want for nothing?"));
  assert_true(mac.ok());
  assert_string_equal(mfa::to_hex(mac->span()).c_str(),
                      "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
  // Test case 1.
  const auto key = from_hex("0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b");
  auto mac1 = mfa::hmac_sha256(key, bytes_of("Hi There"));
  assert_true(mac1.ok());
  assert_string_equal(mfa::to_hex(mac1->span()).c_str(),
                      "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7");
  // Empty key and empty message are legal HMAC inputs.
  auto empty = mfa::hmac_sha256({}, {});
  assert_true(empty.ok());
  assert_string_equal(mfa::to_hex(empty->span()).c_str(),
                      "b613679a0814d9ec772f95d778c35fc5ff1697c493715653c6c712144292c5ad");
}

// A key made ready once gives, message after message, what a fresh HMAC of each gives; without a
// key it fails rather than answering a MAC of nothing.
void test_hmac_key_reused(void**) {
  const auto key = from_hex("0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b");
  mfa::HmacSha256Key keyed(key);
  for (const char* message : {"Hi There", "", "Hi There",
                              "a longer message than one block of SHA-256 "
                              "takes, to cross its 64-byte boundary"}) {
    auto reused = keyed.mac(bytes_of(message));
    auto fresh = mfa::hmac_sha256(key, bytes_of(message));
    assert_true(reused.ok() && fresh.ok());
    assert_true(mfa::ct_equal(reused->span(), fresh->span()));
  }
  assert_string_equal(mfa::to_hex(keyed.mac(bytes_of("Hi There"))->span()).c_str(),
                      "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7");
  mfa::HmacSha256Key none;
  auto failed = none.mac(bytes_of("x"));
  assert_false(failed.ok());
  assert_int_equal(static_cast<int>(failed.error().code), static_cast<int>(mfa::Errc::kCrypto));
}

void test_sha256_and_hex(void**) {
  assert_string_equal(mfa::to_hex(mfa::sha256(bytes_of("abc"))).c_str(),
                      "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  assert_string_equal(mfa::to_hex(mfa::sha256({})).c_str(),
                      "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  const std::array<uint8_t, 4> raw{0x00, 0x0f, 0xa0, 0xff};
  assert_string_equal(mfa::to_hex(raw).c_str(), "000fa0ff");
  assert_string_equal(mfa::to_hex({}).c_str(), "");
}

void test_secure_string(void**) {
  mfa::SecureString s("abc");
  for (int i = 0; i < 100; ++i)
    s.append("0123456789");
  assert_int_equal(s.size(), 3 + 1000);
  assert_true(s.view().substr(0, 13) == "abc0123456789");
  assert_true(s.view().substr(993) == "0123456789");
  mfa::SecureString moved(std::move(s));
  assert_int_equal(moved.size(), 1003);
  assert_true(s.empty());  // NOLINT(bugprone-use-after-move): moved-from state is specified
  mfa::SecureString small("123456");
  mfa::SecureString other;
  other = std::move(small);
  assert_true(other.view() == "123456");
  assert_true(small.empty());  // NOLINT
  mfa::SecureString copy = other.clone();
  assert_true(copy.view() == "123456");
  assert_string_equal(copy.c_str(), "123456");
  copy.clear();
  assert_true(copy.empty());
}

void test_secure_bytes(void**) {
  const std::array<uint8_t, 3> raw{7, 8, 9};
  mfa::SecureBytes b(raw);
  assert_int_equal(b.size(), 3);
  mfa::SecureBytes c = b.clone();
  assert_memory_equal(c.data(), raw.data(), 3);
  mfa::SecureBytes d(std::move(b));
  assert_true(b.empty());  // NOLINT
  assert_int_equal(d.size(), 3);
  mfa::SecureBytes e(5);
  e = std::move(d);
  assert_int_equal(e.size(), 3);
  assert_true(d.empty());  // NOLINT
  e.clear();
  assert_true(e.empty());
  std::array<uint8_t, 4> wipe{1, 2, 3, 4};
  mfa::secure_erase(wipe.data(), wipe.size());
  assert_true((wipe == std::array<uint8_t, 4>{}));
}

void test_dbus_error_names(void**) {
  using mfa::Errc;
  assert_string_equal(mfa::errc_dbus_name(Errc::kBadCode), "org.mfad1.Error.BadCode");
  assert_string_equal(mfa::errc_dbus_name(Errc::kStepUpRequired), "org.mfad1.Error.StepUpRequired");
  assert_string_equal(mfa::errc_dbus_name(Errc::kStorage), "org.mfad1.Error.StorageFailure");
  assert_string_equal(mfa::errc_dbus_name(Errc::kLimitExceeded), "org.mfad1.Error.LimitExceeded");
  assert_string_equal(mfa::errc_dbus_name(Errc::kIo), "org.mfad1.Error.Internal");
  assert_string_equal(mfa::errc_dbus_name(Errc::kCrypto), "org.mfad1.Error.Internal");
  assert_string_equal(mfa::errc_dbus_name(Errc::kInternal), "org.mfad1.Error.Internal");
  // Every contract kind survives a round trip through its name.
  for (int i = 0; i <= static_cast<int>(Errc::kLimitExceeded); ++i) {
    const auto code = static_cast<Errc>(i);
    const char* name = mfa::errc_dbus_name(code);
    assert_true(std::string_view(name).starts_with(mfa::dbus::kErrorPrefix));
    assert_int_equal(static_cast<int>(mfa::errc_from_dbus_name(name)), i);
  }
  assert_int_equal(static_cast<int>(mfa::errc_from_dbus_name("org.mfad1.Error.Internal")),
                   static_cast<int>(Errc::kInternal));
  assert_int_equal(static_cast<int>(mfa::errc_from_dbus_name("org.freedesktop.DBus.Error.NoReply")),
                   static_cast<int>(Errc::kInternal));
}

}  // namespace

int main() {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_ct_equal),       cmocka_unit_test(test_random_bytes),
      cmocka_unit_test(test_random_uniform), cmocka_unit_test(test_hkdf_rfc5869),
      cmocka_unit_test(test_hmac_rfc4231),   cmocka_unit_test(test_hmac_key_reused),
      cmocka_unit_test(test_sha256_and_hex), cmocka_unit_test(test_secure_string),
      cmocka_unit_test(test_secure_bytes),   cmocka_unit_test(test_dbus_error_names),
  };
  return cmocka_run_group_tests(tests, nullptr, nullptr);
}

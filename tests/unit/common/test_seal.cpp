// Sealing: round trip, and every way a record must fail to open (flipped bits in each byte,
// another owner or kind, another master key, truncation, wrong magic or key id).
#include <array>
#include <string>
#include <vector>

#include "common/seal.hpp"
#include "cmocka_cpp.hpp"

using mfa::test::bytes_of;

namespace {

std::array<uint8_t, 32> key_of(uint8_t fill) {
  std::array<uint8_t, 32> k{};
  k.fill(fill);
  return k;
}

mfa::Sealer sealer_for(uint8_t fill) {
  auto s = mfa::Sealer::create(key_of(fill));
  assert_true(s.ok());
  return std::move(s).value();
}

void expect_crypto_error(const mfa::Result<mfa::SecureBytes>& r) {
  assert_false(r.ok());
  assert_int_equal(static_cast<int>(r.error().code), static_cast<int>(mfa::Errc::kCrypto));
}

constexpr std::string_view kSeed = "12345678901234567890";

void test_round_trip(void**) {
  const auto sealer = sealer_for(1);
  auto sealed = sealer.seal(bytes_of(kSeed), "alice", "totp");
  assert_true(sealed.ok());
  assert_int_equal(sealed->size(), 4 + 8 + 12 + kSeed.size() + 16);
  assert_memory_equal(sealed->data(), "MFS1", 4);
  assert_memory_equal(sealed->data() + 4, sealer.key_id().data(), 8);
  // The plaintext does not appear in the sealed record.
  const std::string blob(sealed->begin(), sealed->end());
  assert_true(blob.find(kSeed) == std::string::npos);
  auto opened = sealer.open(*sealed, "alice", "totp");
  assert_true(opened.ok());
  assert_int_equal(opened->size(), kSeed.size());
  assert_memory_equal(opened->data(), kSeed.data(), kSeed.size());
  // Fresh nonce each time.
  auto again = sealer.seal(bytes_of(kSeed), "alice", "totp");
  assert_true(again.ok());
  assert_false(*again == *sealed);
  // Empty plaintext seals and opens too.
  auto empty = sealer.seal({}, "alice", "phone");
  assert_true(empty.ok());
  auto empty_open = sealer.open(*empty, "alice", "phone");
  assert_true(empty_open.ok());
  assert_true(empty_open->empty());
}

void test_flip_every_byte(void**) {
  const auto sealer = sealer_for(2);
  auto sealed = sealer.seal(bytes_of(kSeed), "alice", "totp");
  assert_true(sealed.ok());
  for (size_t i = 0; i < sealed->size(); ++i) {
    for (uint8_t bit : {0x01, 0x80}) {
      std::vector<uint8_t> tampered = *sealed;
      tampered[i] ^= bit;
      expect_crypto_error(sealer.open(tampered, "alice", "totp"));
    }
  }
  // Truncated at every length, and extended.
  for (size_t len = 0; len < sealed->size(); ++len)
    expect_crypto_error(sealer.open(std::span(sealed->data(), len), "alice", "totp"));
  std::vector<uint8_t> longer = *sealed;
  longer.push_back(0);
  expect_crypto_error(sealer.open(longer, "alice", "totp"));
}

void test_wrong_associated_data(void**) {
  const auto sealer = sealer_for(3);
  auto sealed = sealer.seal(bytes_of(kSeed), "alice", "totp");
  assert_true(sealed.ok());
  expect_crypto_error(sealer.open(*sealed, "bob", "totp"));
  expect_crypto_error(sealer.open(*sealed, "alice", "phone"));
  expect_crypto_error(sealer.open(*sealed, "Alice", "totp"));
  expect_crypto_error(sealer.open(*sealed, "", "totp"));
  expect_crypto_error(sealer.open(*sealed, "alice", ""));
  // The separator keeps owner and kind apart: ("alic", "etotp") is not ("alice", "totp").
  expect_crypto_error(sealer.open(*sealed, "alic", "etotp"));
  expect_crypto_error(sealer.open(*sealed, "alicet", "otp"));
  expect_crypto_error(sealer.open(*sealed, std::string_view("alice\0totp", 10), ""));
}

void test_wrong_key(void**) {
  const auto a = sealer_for(4);
  const auto b = sealer_for(5);
  assert_false(a.key_id() == b.key_id());
  assert_true(a.key_id() == sealer_for(4).key_id());  // stable for the same master key
  auto sealed = a.seal(bytes_of(kSeed), "alice", "totp");
  assert_true(sealed.ok());
  auto r = b.open(*sealed, "alice", "totp");
  expect_crypto_error(r);
  assert_true(r.error().message.find("different master key") != std::string::npos);
  // Same key id forged onto a record from another key: the tag still fails.
  std::vector<uint8_t> forged = *sealed;
  std::copy(b.key_id().begin(), b.key_id().end(), forged.begin() + 4);
  expect_crypto_error(b.open(forged, "alice", "totp"));
  // Wrong magic.
  std::vector<uint8_t> magic = *sealed;
  magic[3] = '2';
  auto m = a.open(magic, "alice", "totp");
  expect_crypto_error(m);
  assert_true(m.error().message.find("format") != std::string::npos);
}

void test_create_checks_key_size(void**) {
  std::array<uint8_t, 31> short_key{};
  auto r = mfa::Sealer::create(short_key);
  assert_false(r.ok());
  assert_int_equal(static_cast<int>(r.error().code), static_cast<int>(mfa::Errc::kInvalidArgument));
  std::array<uint8_t, 33> long_key{};
  assert_false(mfa::Sealer::create(long_key).ok());
  // A default-constructed Sealer has no key and refuses to work rather than use a zero key.
  const mfa::Sealer unkeyed;
  auto sealed = unkeyed.seal(bytes_of(kSeed), "alice", "totp");
  assert_false(sealed.ok());
  assert_int_equal(static_cast<int>(sealed.error().code), static_cast<int>(mfa::Errc::kInternal));
  auto good = sealer_for(6).seal(bytes_of(kSeed), "alice", "totp");
  assert_true(good.ok());
  assert_false(unkeyed.open(*good, "alice", "totp").ok());
}

}  // namespace

int main() {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_round_trip),
      cmocka_unit_test(test_flip_every_byte),
      cmocka_unit_test(test_wrong_associated_data),
      cmocka_unit_test(test_wrong_key),
      cmocka_unit_test(test_create_checks_key_size),
  };
  return cmocka_run_group_tests(tests, nullptr, nullptr);
}

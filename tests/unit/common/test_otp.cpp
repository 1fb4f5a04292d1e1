// HOTP/TOTP against every RFC 4226 and RFC 6238 vector, totp_verify's window and replay
// watermark, and a cross-check against oathtool (an independent implementation).
#include <cstdio>
#include <ctime>
#include <limits>
#include <string>

#include "common/base32.hpp"
#include "common/otp.hpp"
#include "cmocka_cpp.hpp"

using mfa::OtpAlgorithm;
using mfa::test::bytes_of;

namespace {

constexpr std::string_view kSeed1 = "12345678901234567890";
constexpr std::string_view kSeed256 = "12345678901234567890123456789012";
constexpr std::string_view kSeed512 =
    "1234567890123456789012345678901234567890123456789012345678901234";

void test_hotp_rfc4226(void**) {
  const char* kExpected[] = {"755224", "287082", "359152", "969429", "338314",
                             "254676", "287922", "162583", "399871", "520489"};
  for (uint64_t count = 0; count < 10; ++count) {
    auto code = mfa::hotp(bytes_of(kSeed1), count, OtpAlgorithm::kSha1, 6);
    assert_string_equal(code.c_str(), kExpected[count]);
  }
}

void test_totp_rfc6238(void**) {
  const struct {
    int64_t time;
    const char* sha1;
    const char* sha256;
    const char* sha512;
  } kVectors[] = {
      {59, "94287082", "46119246", "90693936"},
      {1111111109, "07081804", "68084774", "25091201"},
      {1111111111, "14050471", "67062674", "99943326"},
      {1234567890, "89005924", "91819424", "93441116"},
      {2000000000, "69279037", "90698825", "38618901"},
      {20000000000, "65353130", "77737706", "47863826"},
  };
  for (const auto& v : kVectors) {
    mfa::TotpParams p{OtpAlgorithm::kSha1, 8, 30};
    assert_string_equal(mfa::totp(bytes_of(kSeed1), v.time, p).c_str(), v.sha1);
    p.algorithm = OtpAlgorithm::kSha256;
    assert_string_equal(mfa::totp(bytes_of(kSeed256), v.time, p).c_str(), v.sha256);
    p.algorithm = OtpAlgorithm::kSha512;
    assert_string_equal(mfa::totp(bytes_of(kSeed512), v.time, p).c_str(), v.sha512);
    // And each verifies at its own time with no window.
    assert_true(mfa::totp_verify(bytes_of(kSeed512), v.sha512, p, v.time, 0, std::nullopt) ==
                mfa::totp_step(v.time, 30));
  }
}

void test_digits_and_steps(void**) {
  // 7 digits is the low 7 digits of the same truncated value.
  mfa::TotpParams p{OtpAlgorithm::kSha1, 7, 30};
  assert_string_equal(mfa::totp(bytes_of(kSeed1), 59, p).c_str(), "4287082");
  // Digits outside 6..8 produce nothing (never a matchable code).
  assert_true(mfa::hotp(bytes_of(kSeed1), 0, OtpAlgorithm::kSha1, 5).empty());
  assert_true(mfa::hotp(bytes_of(kSeed1), 0, OtpAlgorithm::kSha1, 9).empty());
  assert_int_equal(mfa::totp_step(59, 30), 1);
  assert_int_equal(mfa::totp_step(60, 30), 2);
  assert_int_equal(mfa::totp_step(0, 30), 0);
  assert_int_equal(mfa::totp_step(-1, 30), 0);
  assert_int_equal(mfa::totp_step(std::numeric_limits<int64_t>::min(), 30), 0);
  assert_true(mfa::totp_step(std::numeric_limits<int64_t>::max(), 1) ==
              static_cast<uint64_t>(std::numeric_limits<int64_t>::max()));
  assert_int_equal(mfa::totp_step(100, 0), 0);
  // 64-bit counters: the counter's high bytes reach the HMAC.
  auto high = mfa::hotp(bytes_of(kSeed1), 1ULL << 40, OtpAlgorithm::kSha1, 6);
  auto low = mfa::hotp(bytes_of(kSeed1), 0, OtpAlgorithm::kSha1, 6);
  assert_int_equal(high.size(), 6);
  assert_false(high.view() == low.view());
}

void test_algorithm_names(void**) {
  assert_string_equal(mfa::otp_algorithm_name(OtpAlgorithm::kSha1), "SHA1");
  assert_string_equal(mfa::otp_algorithm_name(OtpAlgorithm::kSha256), "SHA256");
  assert_string_equal(mfa::otp_algorithm_name(OtpAlgorithm::kSha512), "SHA512");
  assert_true(mfa::parse_otp_algorithm("sha256") == OtpAlgorithm::kSha256);
  assert_true(mfa::parse_otp_algorithm("SHA1") == OtpAlgorithm::kSha1);
  assert_true(mfa::parse_otp_algorithm("Sha512") == OtpAlgorithm::kSha512);
  assert_false(mfa::parse_otp_algorithm("MD5").has_value());
  assert_false(mfa::parse_otp_algorithm("SHA-1").has_value());
  assert_false(mfa::parse_otp_algorithm("").has_value());
}

// Codes at step offsets from "now" (step 1000, time 30000 + 15).
constexpr int64_t kNow = 30015;
std::string code_at_step(uint64_t step, const mfa::TotpParams& p) {
  return std::string(mfa::totp(bytes_of(kSeed1), static_cast<int64_t>(step) * p.period, p).view());
}

void test_verify_window(void**) {
  const mfa::TotpParams p;  // SHA1, 6 digits, 30 s
  const auto key = bytes_of(kSeed1);
  assert_true(mfa::totp_verify(key, code_at_step(1000, p), p, kNow, 1, std::nullopt) == 1000u);
  assert_true(mfa::totp_verify(key, code_at_step(999, p), p, kNow, 1, std::nullopt) == 999u);
  assert_true(mfa::totp_verify(key, code_at_step(1001, p), p, kNow, 1, std::nullopt) == 1001u);
  // Outside the window.
  assert_false(mfa::totp_verify(key, code_at_step(998, p), p, kNow, 1, std::nullopt).has_value());
  assert_false(mfa::totp_verify(key, code_at_step(1002, p), p, kNow, 1, std::nullopt).has_value());
  // Window 0: only the current step.
  assert_false(mfa::totp_verify(key, code_at_step(999, p), p, kNow, 0, std::nullopt).has_value());
  assert_true(mfa::totp_verify(key, code_at_step(1000, p), p, kNow, 0, std::nullopt) == 1000u);
  // Window 2 reaches two steps; a negative window acts as 0.
  assert_true(mfa::totp_verify(key, code_at_step(998, p), p, kNow, 2, std::nullopt) == 998u);
  assert_false(mfa::totp_verify(key, code_at_step(999, p), p, kNow, -5, std::nullopt).has_value());
  // Wrong code, wrong length, non-digits.
  std::string wrong = code_at_step(1000, p);
  wrong[0] = wrong[0] == '9' ? '0' : static_cast<char>(wrong[0] + 1);
  assert_false(mfa::totp_verify(key, wrong, p, kNow, 1, std::nullopt).has_value());
  assert_false(
      mfa::totp_verify(key, code_at_step(1000, p) + "0", p, kNow, 1, std::nullopt).has_value());
  assert_false(
      mfa::totp_verify(key, code_at_step(1000, p).substr(1), p, kNow, 1, std::nullopt).has_value());
  assert_false(mfa::totp_verify(key, "", p, kNow, 1, std::nullopt).has_value());
  assert_false(mfa::totp_verify(key, "12a456", p, kNow, 1, std::nullopt).has_value());
  assert_false(mfa::totp_verify(key, " 12345", p, kNow, 1, std::nullopt).has_value());
  // Bad parameters never match.
  mfa::TotpParams bad = p;
  bad.digits = 5;
  assert_false(mfa::totp_verify(key, code_at_step(1000, p).substr(1), bad, kNow, 1, std::nullopt)
                   .has_value());
  bad = p;
  bad.period = 0;
  assert_false(
      mfa::totp_verify(key, code_at_step(1000, p), bad, kNow, 1, std::nullopt).has_value());
}

void test_verify_watermark(void**) {
  const mfa::TotpParams p;
  const auto key = bytes_of(kSeed1);
  // A code at or below the watermark is a replay, also inside the window.
  assert_false(mfa::totp_verify(key, code_at_step(1000, p), p, kNow, 1, 1000u).has_value());
  assert_false(mfa::totp_verify(key, code_at_step(999, p), p, kNow, 1, 1000u).has_value());
  assert_false(mfa::totp_verify(key, code_at_step(999, p), p, kNow, 1, 999u).has_value());
  assert_true(mfa::totp_verify(key, code_at_step(1001, p), p, kNow, 1, 1000u) == 1001u);
  assert_true(mfa::totp_verify(key, code_at_step(1000, p), p, kNow, 1, 999u) == 1000u);
  assert_true(mfa::totp_verify(key, code_at_step(999, p), p, kNow, 1, 998u) == 999u);
  // A watermark of 0 still lets step 1 in; a watermark far ahead (clock went back) refuses all.
  assert_true(mfa::totp_verify(key, code_at_step(1, p), p, 45, 0, 0u) == 1u);
  assert_false(mfa::totp_verify(key, code_at_step(1001, p), p, kNow, 1, 5000u).has_value());
}

void test_verify_extreme_times(void**) {
  const mfa::TotpParams p;
  const auto key = bytes_of(kSeed1);
  // Before the epoch everything is step 0; the window does not wrap below 0.
  assert_true(mfa::totp_verify(key, code_at_step(0, p), p, -1000000, 1, std::nullopt) == 0u);
  assert_true(mfa::totp_verify(key, code_at_step(0, p), p, std::numeric_limits<int64_t>::min(), 1,
                               std::nullopt) == 0u);
  assert_true(mfa::totp_verify(key, code_at_step(1, p), p, 0, 1, std::nullopt) == 1u);
  // The far future does not overflow.
  const int64_t max = std::numeric_limits<int64_t>::max();
  const uint64_t step = mfa::totp_step(max, 30);
  auto code = mfa::hotp(key, step + 1, mfa::OtpAlgorithm::kSha1, 6);
  assert_true(mfa::totp_verify(key, code.view(), p, max, 1, std::nullopt) == step + 1);
  // A huge window is bounded, not a denial of service.
  assert_true(mfa::totp_verify(key, code_at_step(1000, p), p, kNow, std::numeric_limits<int>::max(),
                               std::nullopt) == 1000u);
}

std::string run(const std::string& command) {
  std::string out;
  FILE* f = popen(command.c_str(), "r");
  assert_non_null(f);
  char buf[256];
  while (fgets(buf, sizeof buf, f))
    out += buf;
  assert_int_equal(pclose(f), 0);
  while (!out.empty() && (out.back() == '\n' || out.back() == '\r'))
    out.pop_back();
  return out;
}

void test_oathtool_cross_check(void**) {
  // Skips nothing: without oathtool this fails, as it should.
  const char* secret = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP";
  auto key = mfa::base32_decode(secret);
  assert_true(key.ok());
  const struct {
    const char* when;
    int64_t unix_time;
  } kTimes[] = {{"2026-11-24 00:05:00 UTC", 1795478700},
                {"1970-01-01 00:00:59 UTC", 59},
                {"2033-05-18 03:33:20 UTC", 2000000000}};
  for (const auto& t : kTimes) {
    const std::string args = std::string(" -b ") + secret + " --now '" + t.when + "'";
    mfa::TotpParams p;
    assert_string_equal(run("oathtool --totp" + args).c_str(),
                        mfa::totp(key->span(), t.unix_time, p).c_str());
    p = {OtpAlgorithm::kSha256, 8, 30};
    assert_string_equal(run("oathtool --totp=sha256 -d 8" + args).c_str(),
                        mfa::totp(key->span(), t.unix_time, p).c_str());
    p = {OtpAlgorithm::kSha512, 7, 60};
    assert_string_equal(run("oathtool --totp=sha512 -d 7 -s 60" + args).c_str(),
                        mfa::totp(key->span(), t.unix_time, p).c_str());
  }
  // And at the real current time, which the daemon uses: oathtool and we agree on "now" unless
  // a step boundary falls between the two calls, so accept the next step too.
  const int64_t now = time(nullptr);
  const std::string theirs = run(std::string("oathtool --totp -b ") + secret);
  const mfa::TotpParams p;
  assert_true(mfa::totp_verify(key->span(), theirs, p, now, 1, std::nullopt).has_value());
}

}  // namespace

int main() {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_hotp_rfc4226),         cmocka_unit_test(test_totp_rfc6238),
      cmocka_unit_test(test_digits_and_steps),     cmocka_unit_test(test_algorithm_names),
      cmocka_unit_test(test_verify_window),        cmocka_unit_test(test_verify_watermark),
      cmocka_unit_test(test_verify_extreme_times), cmocka_unit_test(test_oathtool_cross_check),
  };
  return cmocka_run_group_tests(tests, nullptr, nullptr);
}

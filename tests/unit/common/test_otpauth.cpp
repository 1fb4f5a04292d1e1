// otpauth:// URIs: the exact text authenticator apps read, round trips, percent-encoding, and
// every refusal with the message a person sees.
#include <string>

#include "common/base32.hpp"
#include "common/otpauth.hpp"
#include "cmocka_cpp.hpp"

using mfa::test::bytes_of;

namespace {

constexpr char kSecret[] = "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ";  // "12345678901234567890"

mfa::OtpauthUri make(std::string issuer, std::string account) {
  mfa::OtpauthUri u;
  u.issuer = std::move(issuer);
  u.account = std::move(account);
  u.secret = mfa::SecureBytes(bytes_of("12345678901234567890"));
  return u;
}

void expect_refused(std::string_view uri, const char* word) {
  auto r = mfa::parse_otpauth_uri(uri);
  assert_false(r.ok());
  assert_int_equal(static_cast<int>(r.error().code), static_cast<int>(mfa::Errc::kInvalidArgument));
  if (r.error().message.find(word) == std::string::npos) {
    print_error("message \"%s\" does not mention \"%s\"\n", r.error().message.c_str(), word);
    fail();
  }
  // The secret never appears in a message.
  assert_true(r.error().message.find(kSecret) == std::string::npos);
  assert_true(r.error().message.find("GEZDGNBV") == std::string::npos);
}

void test_build_exact(void**) {
  auto u = make("ACME", "alice");
  assert_string_equal(build_otpauth_uri(u).c_str(),
                      "otpauth://totp/ACME:alice?secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ"
                      "&issuer=ACME&algorithm=SHA1&digits=6&period=30");
  u.params = {mfa::OtpAlgorithm::kSha512, 8, 60};
  assert_string_equal(build_otpauth_uri(u).c_str(),
                      "otpauth://totp/ACME:alice?secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ"
                      "&issuer=ACME&algorithm=SHA512&digits=8&period=60");
  // No issuer: the label is the account alone and there is no issuer parameter.
  auto bare = make("", "bob");
  assert_string_equal(build_otpauth_uri(bare).c_str(),
                      "otpauth://totp/bob?secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ"
                      "&algorithm=SHA1&digits=6&period=30");
}

void test_build_percent_encodes(void**) {
  auto u = make("ACME Co: Ops & Dev", "alice@example.com");
  assert_string_equal(build_otpauth_uri(u).c_str(),
                      "otpauth://totp/ACME%20Co%3A%20Ops%20%26%20Dev:alice%40example.com"
                      "?secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ"
                      "&issuer=ACME%20Co%3A%20Ops%20%26%20Dev&algorithm=SHA1&digits=6&period=30");
}

void test_percent_coding(void**) {
  assert_string_equal(mfa::percent_encode("a-b.c_d~e").c_str(), "a-b.c_d~e");
  assert_string_equal(mfa::percent_encode("a b/c?d=e&f:g").c_str(), "a%20b%2Fc%3Fd%3De%26f%3Ag");
  assert_string_equal(mfa::percent_encode("\xc3\xa9").c_str(), "%C3%A9");  // é
  assert_string_equal(mfa::percent_encode("100%").c_str(), "100%25");
  auto d = mfa::percent_decode("a%20b%2fc%C3%A9+x");
  assert_true(d.ok());
  assert_string_equal(d->c_str(), "a b/c\xc3\xa9+x");
  assert_false(mfa::percent_decode("%").ok());
  assert_false(mfa::percent_decode("abc%4").ok());
  assert_false(mfa::percent_decode("%zz").ok());
  assert_false(mfa::percent_decode("%G0").ok());
  assert_false(mfa::percent_decode("a%00b").ok());
  for (const char* s : {"", "plain", "with space", "ü:@/?#[]!$&'()*+,;=%", "\x01\x7f\xff"}) {
    auto back = mfa::percent_decode(mfa::percent_encode(s));
    assert_true(back.ok());
    assert_string_equal(back->c_str(), s);
  }
}

void test_round_trip(void**) {
  for (auto alg :
       {mfa::OtpAlgorithm::kSha1, mfa::OtpAlgorithm::kSha256, mfa::OtpAlgorithm::kSha512}) {
    for (int digits = 6; digits <= 8; ++digits) {
      for (const char* issuer : {"", "ACME", "ACME Co: Ops", "Ünïcode"}) {
        auto u = make(issuer, "alice@example.com");
        u.params = {alg, digits, digits * 10};
        auto parsed = mfa::parse_otpauth_uri(build_otpauth_uri(u).view());
        assert_true(parsed.ok());
        assert_string_equal(parsed->issuer.c_str(), issuer);
        assert_string_equal(parsed->account.c_str(), "alice@example.com");
        assert_int_equal(parsed->secret.size(), 20);
        assert_memory_equal(parsed->secret.data(), "12345678901234567890", 20);
        assert_true(parsed->params.algorithm == alg);
        assert_int_equal(parsed->params.digits, digits);
        assert_int_equal(parsed->params.period, digits * 10);
      }
    }
  }
}

void test_parse_lenient_forms(void**) {
  // Defaults when only the secret is given; lower-case secret and algorithm; %3A colon; spaces
  // after the colon; unknown parameters ignored; issuer only in the parameter.
  auto a = mfa::parse_otpauth_uri("otpauth://totp/alice?secret=gezdgnbvgy3tqojq");
  assert_true(a.ok());
  assert_string_equal(a->issuer.c_str(), "");
  assert_string_equal(a->account.c_str(), "alice");
  assert_true(a->params.algorithm == mfa::OtpAlgorithm::kSha1);
  assert_int_equal(a->params.digits, 6);
  assert_int_equal(a->params.period, 30);
  auto b = mfa::parse_otpauth_uri(
      "OTPAUTH://TOTP/ACME%3A%20%20alice?image=https%3A%2F%2Fx&algorithm=sha256&secret=GEZDGNBV");
  assert_true(b.ok());
  assert_string_equal(b->issuer.c_str(), "ACME");
  assert_string_equal(b->account.c_str(), "alice");
  assert_true(b->params.algorithm == mfa::OtpAlgorithm::kSha256);
  auto c = mfa::parse_otpauth_uri("otpauth://totp/alice?secret=GEZDGNBV&issuer=ACME");
  assert_true(c.ok());
  assert_string_equal(c->issuer.c_str(), "ACME");
}

void test_parse_refusals(void**) {
  expect_refused("otpauth://totp/ACME:alice?issuer=ACME&digits=6", "missing secret");
  expect_refused("otpauth://totp/ACME:alice", "secret");
  expect_refused("otpauth://totp/alice?secret=", "secret is empty");
  expect_refused("otpauth://totp/alice?secret=GEZDGNB1", "secret is not valid base32");
  expect_refused("otpauth://totp/alice?secret=GEZ", "secret is not valid base32");
  expect_refused("otpauth://totp/alice?secret=GEZDGNBV&secret=GEZDGNBV", "twice");
  expect_refused("otpauth://totp/alice?secret=GEZDGNBV&period=0", "period");
  expect_refused("otpauth://totp/alice?secret=GEZDGNBV&period=-30", "period");
  expect_refused("otpauth://totp/alice?secret=GEZDGNBV&period=30s", "period");
  expect_refused("otpauth://totp/alice?secret=GEZDGNBV&period=99999999999", "period");
  expect_refused("otpauth://totp/alice?secret=GEZDGNBV&digits=5", "digits");
  expect_refused("otpauth://totp/alice?secret=GEZDGNBV&digits=9", "digits");
  expect_refused("otpauth://totp/alice?secret=GEZDGNBV&digits=", "digits");
  expect_refused("otpauth://totp/alice?secret=GEZDGNBV&algorithm=MD5", "algorithm");
  expect_refused("otpauth://totp/alice?secret=GEZDGNBV&algorithm=SHA-1", "algorithm");
  expect_refused("http://totp/alice?secret=GEZDGNBV", "scheme");
  expect_refused("otpauth:totp/alice?secret=GEZDGNBV", "scheme");
  expect_refused("", "scheme");
  expect_refused("otpauth://hotp/alice?secret=GEZDGNBV&counter=0", "hotp");
  expect_refused("otpauth://hotp/alice?secret=GEZDGNBV&counter=0", "type");
  expect_refused("otpauth://xotp/alice?secret=GEZDGNBV", "type");
  expect_refused("otpauth://totp", "type");
  expect_refused("otpauth://totp/ACME:alice?secret=GEZDGNBV&issuer=Evil", "issuer");
  expect_refused("otpauth://totp/?secret=GEZDGNBV", "account");
  expect_refused("otpauth://totp/ACME:?secret=GEZDGNBV", "account");
  expect_refused("otpauth://totp/:alice?secret=GEZDGNBV", "issuer");
  expect_refused("otpauth://totp/al%zzice?secret=GEZDGNBV", "label");
  expect_refused("otpauth://totp/alice?secret=GEZDGNBV&issuer=%00", "issuer");
  // Control characters would reach terminals and logs: refused.
  expect_refused("otpauth://totp/al%0Aice?secret=GEZDGNBV", "control");
  expect_refused("otpauth://totp/A%1Bx:alice?secret=GEZDGNBV", "control");
  expect_refused("otpauth://totp/alice?secret=GEZDGNBV&issuer=A%7F", "control");
  std::string huge = "otpauth://totp/alice?secret=GEZDGNBV&x=" + std::string(4096, 'a');
  expect_refused(huge, "4096");
  // Every message starts the same way, so a log reader knows what was refused.
  auto r = mfa::parse_otpauth_uri("otpauth://totp/alice?secret=GEZDGNBV&digits=5");
  assert_true(r.error().message.starts_with("otpauth URI: "));
}

}  // namespace

int main() {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_build_exact),         cmocka_unit_test(test_build_percent_encodes),
      cmocka_unit_test(test_percent_coding),      cmocka_unit_test(test_round_trip),
      cmocka_unit_test(test_parse_lenient_forms), cmocka_unit_test(test_parse_refusals),
  };
  return cmocka_run_group_tests(tests, nullptr, nullptr);
}

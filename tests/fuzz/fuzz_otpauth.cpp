// parse_otpauth_uri on arbitrary input must never crash; whatever it accepts must survive
// build → parse unchanged. percent_decode(percent_encode(x)) == x for NUL-free x.
#include <cstdlib>
#include <cstring>
#include <string>
#include <string_view>

#include "common/otpauth.hpp"

namespace {

bool same(const mfa::OtpauthUri& a, const mfa::OtpauthUri& b) {
  return a.issuer == b.issuer && a.account == b.account && a.secret.size() == b.secret.size() &&
         std::memcmp(a.secret.data(), b.secret.data(), a.secret.size()) == 0 &&
         a.params.algorithm == b.params.algorithm && a.params.digits == b.params.digits &&
         a.params.period == b.params.period;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  auto parsed = mfa::parse_otpauth_uri(text);
  if (parsed.ok()) {
    const auto& u = *parsed;
    if (u.secret.empty() || u.account.empty() || u.params.digits < 6 || u.params.digits > 8 ||
        u.params.period <= 0)
      std::abort();
    const mfa::SecureString built = mfa::build_otpauth_uri(u);
    auto reparsed = mfa::parse_otpauth_uri(built.view());
    if (!reparsed.ok() || !same(u, *reparsed))
      std::abort();
  } else if (parsed.error().code != mfa::Errc::kInvalidArgument ||
             parsed.error().message.rfind("otpauth URI: ", 0) != 0) {
    std::abort();
  }

  if (std::memchr(data, 0, size) == nullptr) {
    auto back = mfa::percent_decode(mfa::percent_encode(text));
    if (!back.ok() || *back != text)
      std::abort();
  }
  return 0;
}

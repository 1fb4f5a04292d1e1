// parse_otpauth_uri on arbitrary input must never crash; whatever it accepts must survive
// build → parse unchanged. percent_decode(percent_encode(x)) == x for NUL-free x.
//
// mfad's own path (BeginTotpEnrollment, core/authenticator_enrollment.cpp): build_otpauth_uri of
// an issuer that passed check_totp_issuer and a user name. Input "ISSUER\0ACCOUNT" builds that URI
// and an app's reading of it (parse_otpauth_uri, the strict reader the import will use) must
// give back exactly what mfad meant. No import format exists yet (google-authenticator, oath
// usersfile): their targets come with them.
#include <cstdlib>
#include <cstring>
#include <string>
#include <string_view>

#include "common/otpauth.hpp"
#include "common/totp_issuer.hpp"
#include "core/validation.hpp"

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

  // The enrollment's URI: what mfad builds, an app reads back unchanged.
  if (const auto nul = text.find('\0'); nul != std::string_view::npos) {
    mfa::OtpauthUri u;
    u.issuer = std::string(text.substr(0, nul));
    u.account = std::string(text.substr(nul + 1));
    // The bus's rule, and a name NSS can give: passwd's fields are ':'-separated. (A ':' would
    // make the label "ISSUER:ACCOUNT" ambiguous, and apps drop the spaces that lead an account:
    // validate_user_name alone lets both through.)
    const bool user_name = mfa::validate_user_name(u.account).ok() &&
                           u.account.find(':') == std::string::npos && u.account[0] != ' ';
    if (user_name && mfa::check_totp_issuer(u.issuer) == mfa::IssuerProblem::kNone) {
      static const uint8_t kSecret[20] = {1,  2,  3,  4,  5,  6,  7,  8,  9,  10,
                                          11, 12, 13, 14, 15, 16, 17, 18, 19, 20};
      u.secret = mfa::SecureBytes(std::span<const uint8_t>(kSecret));
      u.params.digits = 6 + (size % 3);
      u.params.period = 30;
      const mfa::SecureString built = mfa::build_otpauth_uri(u);
      auto read = mfa::parse_otpauth_uri(built.view());
      if (!read.ok() || !same(u, *read))
        std::abort();
    }
  }

  if (std::memchr(data, 0, size) == nullptr) {
    auto back = mfa::percent_decode(mfa::percent_encode(text));
    if (!back.ok() || *back != text)
      std::abort();
  }
  return 0;
}

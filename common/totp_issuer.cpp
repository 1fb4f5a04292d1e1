#include "common/totp_issuer.hpp"

#include "common/dbus_names.hpp"
#include "common/utf8.hpp"

namespace mfa {

IssuerProblem check_totp_issuer(std::string_view issuer) {
  if (issuer.size() > dbus::kMaxIssuerLength)
    return IssuerProblem::kTooLong;
  if (issuer.find(':') != std::string_view::npos)
    return IssuerProblem::kColon;
  if (!is_printable_utf8(issuer))
    return IssuerProblem::kNotPrintable;
  return IssuerProblem::kNone;
}

}  // namespace mfa

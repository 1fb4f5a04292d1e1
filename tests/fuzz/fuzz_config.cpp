// libFuzzer target for the mfad.conf parser (daemon/config.cpp): any text must give either a
// config whose every value is in range, or problems that name a real line, never a crash.
#include <fuzzer/FuzzedDataProvider.h>

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <vector>

#include "common/totp_issuer.hpp"
#include "core/config.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  FuzzedDataProvider fdp(data, size);
  bool strict = fdp.ConsumeBool();
  std::string text = fdp.ConsumeRemainingBytesAsString();

  std::vector<mfa::ConfigProblem> problems;
  auto config = mfa::parse_config(text, "fuzz.conf", strict, &problems);

  int lines = static_cast<int>(std::count(text.begin(), text.end(), '\n')) + 1;
  bool any_fatal = false;
  for (const auto& p : problems) {
    if (p.line < 0 || p.line > lines)
      abort();
    if (p.to_string().empty())
      abort();
    any_fatal = any_fatal || p.fatal;
  }
  if (config.ok() == any_fatal)
    abort();  // an error exactly when a problem is fatal
  if (config.ok()) {
    const auto& c = *config;
    if (c.totp.digits < 6 || c.totp.digits > 8)
      abort();
    if (c.totp.period < 10 || c.totp.period > 120)
      abort();
    if (c.window < 0 || c.window > 10)
      abort();
    if (c.max_failures < 1 || c.max_failures > 100)
      abort();
    if (c.lockout_seconds <= 0 || c.max_lockout_seconds < c.lockout_seconds)
      abort();
    if (c.sessions_max_per_user < 1 || c.sms_code_lifetime_seconds <= 0)
      abort();
    if (c.state_directory.empty() || c.state_directory[0] != '/')
      abort();
    if (c.twilio_account_sid.size() > 4096 || c.issuer.size() > 4096)
      abort();
    // What reaches otpauth URIs passes the one issuer rule (common/totp_issuer.hpp).
    if (mfa::check_totp_issuer(c.issuer) != mfa::IssuerProblem::kNone)
      abort();
  }
  return 0;
}

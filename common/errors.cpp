// Errc ↔ org.mfad1.Error.<Name> (docs/architecture.md, "The bus API's errors").
#include <iterator>

#include "common/dbus_names.hpp"
#include "common/result.hpp"

namespace mfa {

namespace {

struct ErrcName {
  Errc code;
  const char* name;
};

// Order matters for errc_from_dbus_name: the first entry with a name wins (kIo, kCrypto and
// kInternal all go out as Internal; Internal comes back as kInternal).
constexpr ErrcName kErrcNames[] = {
    {Errc::kBadCode, dbus::kErrorBadCode},
    {Errc::kRateLimited, dbus::kErrorRateLimited},
    {Errc::kNotEnrolled, dbus::kErrorNotEnrolled},
    {Errc::kNoSuchUser, dbus::kErrorNoSuchUser},
    {Errc::kNoSuchChallenge, dbus::kErrorNoSuchChallenge},
    {Errc::kChallengeExpired, dbus::kErrorChallengeExpired},
    {Errc::kAlreadyEnrolled, dbus::kErrorAlreadyEnrolled},
    {Errc::kNoPendingEnrollment, dbus::kErrorNoPendingEnrollment},
    {Errc::kNoSuchSession, dbus::kErrorNoSuchSession},
    {Errc::kSessionLimit, dbus::kErrorSessionLimit},
    {Errc::kSmsUnavailable, dbus::kErrorSmsUnavailable},
    {Errc::kSmsRateLimited, dbus::kErrorSmsRateLimited},
    {Errc::kNotAllowed, dbus::kErrorNotAllowed},
    {Errc::kStepUpRequired, dbus::kErrorStepUpRequired},
    {Errc::kInvalidArgument, dbus::kErrorInvalidArgument},
    {Errc::kMethodNotAccepted, dbus::kErrorMethodNotAccepted},
    {Errc::kStorage, dbus::kErrorStorageFailure},
    {Errc::kLimitExceeded, dbus::kErrorLimitExceeded},
    {Errc::kNotRequired, dbus::kErrorNotRequired},
    {Errc::kEnrollmentRequired, dbus::kErrorEnrollmentRequired},
    {Errc::kEnrollmentTokenRequired, dbus::kErrorEnrollmentTokenRequired},
    {Errc::kClockDrift, dbus::kErrorClockDrift},
    {Errc::kCodeExpired, dbus::kErrorCodeExpired},
    {Errc::kNoticeNotAccepted, dbus::kErrorNoticeNotAccepted},
    {Errc::kInternal, dbus::kErrorInternal},
    {Errc::kIo, dbus::kErrorInternal},
    {Errc::kCrypto, dbus::kErrorInternal},
};

}  // namespace

const char* errc_dbus_name(Errc code) {
  for (const auto& e : kErrcNames)
    if (e.code == code)
      return e.name;
  return dbus::kErrorInternal;
}

Errc errc_from_dbus_name(std::string_view name) {
  for (const auto& e : kErrcNames)
    if (name == e.name)
      return e.code;
  return Errc::kInternal;
}

}  // namespace mfa

// Errors as values (abseil's Status, systemd's negative errno): every fallible internal API returns
// a Result<T>; the error carries a kind that maps 1:1 to a D-Bus error name and a message a person
// understands. Messages never contain a secret, a code or a full phone number.
#pragma once

#include <cassert>
#include <string>
#include <string_view>
#include <utility>
#include <variant>

namespace mfa {

enum class Errc {
  // The error names (org.mfad1.Error.<Name>, docs/architecture.md).
  kBadCode,
  kRateLimited,
  kNotEnrolled,
  kNoSuchUser,
  kNoSuchChallenge,
  kChallengeExpired,
  kAlreadyEnrolled,
  kNoPendingEnrollment,
  kNoSuchSession,
  kSessionLimit,
  kSmsUnavailable,
  kSmsRateLimited,
  kNotAllowed,
  kStepUpRequired,
  kInvalidArgument,
  // Beyond the contract's minimum.
  kMethodNotAccepted,  // org.mfad1.Error.MethodNotAccepted: enrolled, but not for this service
  kStorage,            // org.mfad1.Error.StorageFailure: database unreadable/unwritable, disk full
  kLimitExceeded,      // org.mfad1.Error.LimitExceeded: too many open challenges and the like
  // Rollout (docs/rollout.md).
  kNotRequired,  // org.mfad1.Error.NotRequired: no factor, and none required ([Rollout] Groups=)
  kEnrollmentRequired,       // org.mfad1.Error.EnrollmentRequired: no factor, past the deadline
  kEnrollmentTokenRequired,  // org.mfad1.Error.EnrollmentTokenRequired: [Rollout] RequireToken=yes
  kClockDrift,   // org.mfad1.Error.ClockDrift: a TOTP code of a clock that is off (a failure)
  kCodeExpired,  // org.mfad1.Error.CodeExpired: the SMS code was right but typed too late
  // Data rights (docs/security-model.md).
  kNoticeNotAccepted,  // org.mfad1.Error.NoticeNotAccepted: [Enrollment] Notice= not accepted
  kIo,        // files, sockets (not sent over the bus as such: maps to StorageFailure/Internal)
  kCrypto,    // sealing/opening failed: tampered record, wrong key
  kInternal,  // org.mfad1.Error.Internal
};

struct Error {
  Errc code;
  std::string message;
};

// The D-Bus error name for an error kind ("org.mfad1.Error.BadCode").
const char* errc_dbus_name(Errc code);
// The kind for a D-Bus error name; kInternal when unknown.
Errc errc_from_dbus_name(std::string_view name);

inline Error make_error(Errc code, std::string message) {
  return Error{code, std::move(message)};
}

template <typename T>
class [[nodiscard]] Result {
 public:
  Result(T value) : v_(std::move(value)) {}      // NOLINT: implicit by design
  Result(Error error) : v_(std::move(error)) {}  // NOLINT
  bool ok() const { return v_.index() == 0; }
  explicit operator bool() const { return ok(); }
  T& value() & {
    assert(ok());
    return std::get<0>(v_);
  }
  const T& value() const& {
    assert(ok());
    return std::get<0>(v_);
  }
  T&& value() && {
    assert(ok());
    return std::get<0>(std::move(v_));
  }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }
  const Error& error() const& {
    assert(!ok());
    return std::get<1>(v_);
  }
  Error&& error() && {
    assert(!ok());
    return std::get<1>(std::move(v_));
  }

 private:
  std::variant<T, Error> v_;
};

template <>
class [[nodiscard]] Result<void> {
 public:
  Result() = default;
  Result(Error error) : error_(std::move(error)), ok_(false) {}  // NOLINT
  bool ok() const { return ok_; }
  explicit operator bool() const { return ok_; }
  const Error& error() const& {
    assert(!ok_);
    return error_;
  }
  Error&& error() && {
    assert(!ok_);
    return std::move(error_);
  }

 private:
  Error error_{Errc::kInternal, {}};
  bool ok_ = true;
};

using Status = Result<void>;

}  // namespace mfa

// Propagates an error: MFA_TRY(x, expr) declares x from a successful Result or returns the error.
#define MFA_CONCAT_INNER(a, b) a##b
#define MFA_CONCAT(a, b) MFA_CONCAT_INNER(a, b)
#define MFA_TRY(var, expr)                                    \
  auto MFA_CONCAT(mfa_try_, __LINE__) = (expr);               \
  if (!MFA_CONCAT(mfa_try_, __LINE__).ok())                   \
    return std::move(MFA_CONCAT(mfa_try_, __LINE__)).error(); \
  auto var = std::move(MFA_CONCAT(mfa_try_, __LINE__)).value()
#define MFA_CHECK(expr)                     \
  do {                                      \
    auto mfa_check_ = (expr);               \
    if (!mfa_check_.ok())                   \
      return std::move(mfa_check_).error(); \
  } while (0)

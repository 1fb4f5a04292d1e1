// The D-Bus names (daemon/bus/org.mfad1.Manager.xml), in one place for mfad, mfactl and pam_mfa.so.
#pragma once

#include <cstddef>

namespace mfa::dbus {

inline constexpr char kBusName[] = "org.mfad1";
inline constexpr char kObjectPath[] = "/org/mfad1";
inline constexpr char kInterface[] = "org.mfad1.Manager";
inline constexpr char kErrorPrefix[] = "org.mfad1.Error.";

// Error names (docs/architecture.md, "The bus API's errors"), plus StorageFailure, LimitExceeded,
// Internal and MethodNotAccepted.
inline constexpr char kErrorBadCode[] = "org.mfad1.Error.BadCode";
inline constexpr char kErrorRateLimited[] = "org.mfad1.Error.RateLimited";
inline constexpr char kErrorNotEnrolled[] = "org.mfad1.Error.NotEnrolled";
inline constexpr char kErrorNoSuchUser[] = "org.mfad1.Error.NoSuchUser";
inline constexpr char kErrorNoSuchChallenge[] = "org.mfad1.Error.NoSuchChallenge";
inline constexpr char kErrorChallengeExpired[] = "org.mfad1.Error.ChallengeExpired";
inline constexpr char kErrorAlreadyEnrolled[] = "org.mfad1.Error.AlreadyEnrolled";
inline constexpr char kErrorNoPendingEnrollment[] = "org.mfad1.Error.NoPendingEnrollment";
inline constexpr char kErrorNoSuchSession[] = "org.mfad1.Error.NoSuchSession";
inline constexpr char kErrorSessionLimit[] = "org.mfad1.Error.SessionLimit";
inline constexpr char kErrorSmsUnavailable[] = "org.mfad1.Error.SmsUnavailable";
inline constexpr char kErrorSmsRateLimited[] = "org.mfad1.Error.SmsRateLimited";
inline constexpr char kErrorNotAllowed[] = "org.mfad1.Error.NotAllowed";
inline constexpr char kErrorStepUpRequired[] = "org.mfad1.Error.StepUpRequired";
inline constexpr char kErrorInvalidArgument[] = "org.mfad1.Error.InvalidArgument";
inline constexpr char kErrorMethodNotAccepted[] = "org.mfad1.Error.MethodNotAccepted";
inline constexpr char kErrorStorageFailure[] = "org.mfad1.Error.StorageFailure";
inline constexpr char kErrorLimitExceeded[] = "org.mfad1.Error.LimitExceeded";
inline constexpr char kErrorInternal[] = "org.mfad1.Error.Internal";
// Rollout (docs/rollout.md).
inline constexpr char kErrorNotRequired[] = "org.mfad1.Error.NotRequired";
inline constexpr char kErrorEnrollmentRequired[] = "org.mfad1.Error.EnrollmentRequired";
inline constexpr char kErrorEnrollmentTokenRequired[] = "org.mfad1.Error.EnrollmentTokenRequired";
// Verify's refusals that say more than BadCode (both count as a failed attempt).
inline constexpr char kErrorClockDrift[] = "org.mfad1.Error.ClockDrift";
inline constexpr char kErrorCodeExpired[] = "org.mfad1.Error.CodeExpired";
inline constexpr char kErrorNoticeNotAccepted[] = "org.mfad1.Error.NoticeNotAccepted";

// BeginAuthentication's answer for a user with no factor whom the rollout lets enroll or skip
// (never a factor: Verify refuses such a challenge).
inline constexpr char kOfferEnroll[] = "enroll";
inline constexpr char kOfferSkip[] = "skip";
// The context key by which pam_mfa.so says what it can offer: "enroll" (argument enroll) or
// "skip". An older module sends none and gets NotEnrolled as before.
inline constexpr char kContextRollout[] = "rollout";
// The lines of a login enrollment (QR code, secret, URI) and of its backup codes: how many and
// how long each, so that the module shows them without allocating and every PAM application
// (sshd's PAM_MAX_NUM_MSG, PAM_MAX_MSG_SIZE) takes them.
inline constexpr size_t kMaxEnrollmentLines = 64;
inline constexpr size_t kMaxEnrollmentLineLength = 480;
inline constexpr size_t kMaxTokenLength = 64;
// The enrollment notice's text ([Enrollment] Notice=/NoticeFile=, GetEnrollmentNotice).
inline constexpr size_t kMaxEnrollmentNoticeLength = 16 * 1024;

// Method names in codes and in BeginAuthentication's answer.
inline constexpr char kMethodTotp[] = "totp";
inline constexpr char kMethodSms[] = "sms";
inline constexpr char kMethodBackup[] = "backup";

// Bounds shared by both ends of the bus. The daemon enforces them; clients may check early.
inline constexpr size_t kMaxUserNameLength = 256;
inline constexpr size_t kMaxCodeLength = 64;  // longer answers are refused unread
inline constexpr size_t kMaxContextEntries = 16;
inline constexpr size_t kMaxContextValueLength = 1024;
inline constexpr size_t kMaxIssuerLength = 128;
inline constexpr size_t kMaxAuditQueryLimit = 10000;
// TOTP device names (`enroll totp --name`): [A-Za-z0-9._-], 1..32 characters.
inline constexpr size_t kMaxDeviceNameLength = 32;
inline constexpr char kDefaultDeviceName[] = "default";

}  // namespace mfa::dbus

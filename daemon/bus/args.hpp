// Reading mfad's D-Bus arguments with bounds, and writing its a{sv} answers.
//
// Readers return a negative errno only for a malformed message (sd-bus answers InvalidArgs).
// A well-formed but unacceptable value (too long, too many entries, unknown key, wrong variant
// type) is consumed and recorded in *ret_error (the first one wins) as an InvalidArgument that
// names the argument or key, so that the handler replies with a message a person understands.
#pragma once

#include <systemd/sd-bus.h>

#include <cstddef>
#include <optional>
#include <string>

#include "common/result.hpp"
#include "common/secure_buffer.hpp"
#include "core/authenticator.hpp"
#include "core/store.hpp"

namespace mfa::bus {

inline constexpr size_t kMaxChallengeLength = 128;
inline constexpr size_t kMaxPhoneLength = 32;
inline constexpr size_t kMaxMethodNameLength = 32;
inline constexpr size_t kMaxSessionIdLength = 128;

// One entry of an a{sv} whose value the reader reads: the key and the variant's signature.
// Returns 1 when it read the value, 0 when it refused the entry (*ret_error set; the value is
// skipped), negative errno for a malformed message.
using VariantReader = int (*)(sd_bus_message* m, const std::string& key, const char* contents,
                              void* userdata, std::optional<Error>* ret_error);
// An a{sv} of at most 16 entries with bounded, distinct keys, each handed to reader.
int read_variant_map(sd_bus_message* m, VariantReader reader, void* userdata,
                     std::optional<Error>* ret_error);

// One "s"; a longer string is refused without being kept.
int read_string(sd_bus_message* m, const char* what, size_t max_length, std::string* ret,
                std::optional<Error>* ret_error);
// The same for a secret: it goes straight into a self-erasing buffer.
int read_secret(sd_bus_message* m, const char* what, size_t max_length, SecureString* ret,
                std::optional<Error>* ret_error);
// a{ss}: at most dbus::kMaxContextEntries entries, bounded keys and values, no duplicates.
int read_string_map(sd_bus_message* m, StringMap* ret, std::optional<Error>* ret_error);
// BeginTotpEnrollment options (a{sv}): issuer s, algorithm s, digits u, current_code s.
int read_totp_options(sd_bus_message* m, TotpEnrollmentOptions* ret,
                      std::optional<Error>* ret_error);
// ListAuditEvents filter (a{sv}): user s, since t (unix seconds), limit u.
int read_audit_filter(sd_bus_message* m, AuditFilter* ret, std::optional<Error>* ret_error);

// GetUser/ListUsers and ListAuditEvents entries (keys documented in authenticator.hpp).
int append_user_info(sd_bus_message* m, const UserInfo& info);
int append_audit_record(sd_bus_message* m, const AuditRecord& record);

}  // namespace mfa::bus

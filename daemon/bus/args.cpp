#include "bus/args.hpp"

#include <algorithm>
#include <cstring>
#include <string_view>

#include "common/dbus_names.hpp"

namespace mfa::bus {
namespace {

constexpr size_t kMaxMapKeyLength = 64;
constexpr size_t kMaxOptionEntries = 16;
Error invalid(std::string message) {
  return make_error(Errc::kInvalidArgument, std::move(message));
}

}  // namespace

int read_variant_map(sd_bus_message* m, VariantReader reader, void* userdata,
                     std::optional<Error>* ret_error) {
  int r = sd_bus_message_enter_container(m, 'a', "{sv}");
  if (r < 0)
    return r;
  size_t entries = 0;
  std::vector<std::string> seen;
  for (;;) {
    r = sd_bus_message_enter_container(m, 'e', "sv");
    if (r < 0)
      return r;
    if (r == 0)
      break;
    const char* key = nullptr;
    r = sd_bus_message_read(m, "s", &key);
    if (r < 0)
      return r;
    const char* contents = nullptr;
    r = sd_bus_message_peek_type(m, nullptr, &contents);
    if (r < 0)
      return r;
    bool skip = *ret_error || ++entries > kMaxOptionEntries ||
                strnlen(key, kMaxMapKeyLength + 1) > kMaxMapKeyLength;
    if (!*ret_error && entries > kMaxOptionEntries) {
      *ret_error = invalid("too many entries (at most " + std::to_string(kMaxOptionEntries) + ")");
    } else if (!*ret_error && strnlen(key, kMaxMapKeyLength + 1) > kMaxMapKeyLength) {
      *ret_error = invalid("key is too long");
    }
    if (!skip) {
      std::string k(key);
      for (const auto& s : seen) {
        if (s == k) {
          *ret_error = invalid("key '" + k + "' appears twice");
          skip = true;
        }
      }
      seen.push_back(k);
    }
    if (skip) {
      r = sd_bus_message_skip(m, "v");
      if (r < 0)
        return r;
    } else {
      r = sd_bus_message_enter_container(m, 'v', contents);
      if (r < 0)
        return r;
      r = reader(m, key, contents, userdata, ret_error);
      if (r < 0)
        return r;
      if (r == 0) {
        // Not read by the reader (a refused entry): skip its value.
        r = sd_bus_message_skip(m, contents);
        if (r < 0)
          return r;
      }
      r = sd_bus_message_exit_container(m);
      if (r < 0)
        return r;
    }
    r = sd_bus_message_exit_container(m);
    if (r < 0)
      return r;
  }
  return sd_bus_message_exit_container(m);
}

namespace {

Error wrong_type(const std::string& key, const char* expected, const char* got) {
  return invalid("option '" + key + "' must be of type '" + expected + "', not '" + got + "'");
}

// BeginTotpEnrollment options: name s, issuer s, algorithm s, digits u, current_code s.
int read_totp_option_entry(sd_bus_message* m, const std::string& key, const char* contents,
                           void* userdata, std::optional<Error>* ret_error) {
  auto* options = static_cast<TotpEnrollmentOptions*>(userdata);
  const char* expected = key == "digits" ? "u" : "s";
  if (key != "name" && key != "issuer" && key != "algorithm" && key != "digits" &&
      key != "current_code") {
    *ret_error = invalid("unknown option '" + key +
                         "' (known: name, issuer, algorithm, digits, current_code)");
    return 0;
  }
  if (strcmp(contents, expected) != 0) {
    *ret_error = wrong_type(key, expected, contents);
    return 0;
  }
  if (key == "digits") {
    uint32_t digits = 0;
    int r = sd_bus_message_read(m, "u", &digits);
    if (r < 0)
      return r;
    if (digits < 6 || digits > 8) {
      *ret_error = invalid("digits must be 6, 7 or 8");
    } else {
      options->digits = static_cast<int>(digits);
    }
    return 1;
  }
  if (key == "current_code") {
    int r = read_secret(m, "current_code", dbus::kMaxCodeLength, &options->current_code, ret_error);
    return r < 0 ? r : 1;
  }
  if (key == "name") {
    int r = read_string(m, "name", dbus::kMaxDeviceNameLength, &options->device, ret_error);
    return r < 0 ? r : 1;
  }
  std::string* target = key == "issuer" ? &options->issuer : &options->algorithm;
  int r =
      read_string(m, key.c_str(), key == "issuer" ? dbus::kMaxIssuerLength : 16, target, ret_error);
  return r < 0 ? r : 1;
}

// ListAuditEvents filter: user s, since t (unix seconds), limit u.
int read_audit_filter_entry(sd_bus_message* m, const std::string& key, const char* contents,
                            void* userdata, std::optional<Error>* ret_error) {
  auto* filter = static_cast<AuditFilter*>(userdata);
  const char* expected = key == "user" ? "s" : key == "since" ? "t" : "u";
  if (key != "user" && key != "since" && key != "limit") {
    *ret_error = invalid("unknown filter '" + key + "' (known: user, since, limit)");
    return 0;
  }
  if (strcmp(contents, expected) != 0) {
    *ret_error = wrong_type(key, expected, contents);
    return 0;
  }
  int r = 0;
  if (key == "user") {
    r = read_string(m, "user", dbus::kMaxUserNameLength, &filter->user, ret_error);
  } else if (key == "since") {
    uint64_t since = 0;
    r = sd_bus_message_read(m, "t", &since);
    if (r >= 0 && since > static_cast<uint64_t>(INT64_MAX / 1000000)) {
      *ret_error = invalid("since is out of range");
    } else if (r >= 0) {
      filter->since_usec = static_cast<int64_t>(since) * 1000000;
    }
  } else {
    uint32_t limit = 0;
    r = sd_bus_message_read(m, "u", &limit);
    if (r >= 0 && (limit == 0 || limit > dbus::kMaxAuditQueryLimit)) {
      *ret_error =
          invalid("limit must be between 1 and " + std::to_string(dbus::kMaxAuditQueryLimit));
    } else if (r >= 0) {
      filter->limit = limit;
    }
  }
  return r < 0 ? r : 1;
}

// --- a{sv} writers ---

int append_sv_string(sd_bus_message* m, const char* key, const std::string& value) {
  return sd_bus_message_append(m, "{sv}", key, "s", value.c_str());
}
int append_sv_u32(sd_bus_message* m, const char* key, uint32_t value) {
  return sd_bus_message_append(m, "{sv}", key, "u", value);
}
int append_sv_u64(sd_bus_message* m, const char* key, uint64_t value) {
  return sd_bus_message_append(m, "{sv}", key, "t", value);
}
int append_sv_strv(sd_bus_message* m, const char* key, const std::vector<std::string>& values) {
  int r = sd_bus_message_open_container(m, 'e', "sv");
  if (r >= 0)
    r = sd_bus_message_append(m, "s", key);
  if (r >= 0)
    r = sd_bus_message_open_container(m, 'v', "as");
  if (r >= 0)
    r = sd_bus_message_open_container(m, 'a', "s");
  for (size_t i = 0; r >= 0 && i < values.size(); ++i) {
    r = sd_bus_message_append(m, "s", values[i].c_str());
  }
  if (r >= 0)
    r = sd_bus_message_close_container(m);
  if (r >= 0)
    r = sd_bus_message_close_container(m);
  if (r >= 0)
    r = sd_bus_message_close_container(m);
  return r;
}

}  // namespace

namespace {

// Reads one "s" argument into *ret, refusing through *ret_error (without keeping it) a string
// longer than max_length; the refusal counts the bound in unit. *ret is unset when refused.
int read_bounded(sd_bus_message* m, const char* what, size_t max_length, const char* unit,
                 std::optional<std::string_view>* ret, std::optional<Error>* ret_error) {
  const char* s = nullptr;
  int r = sd_bus_message_read(m, "s", &s);
  if (r < 0)
    return r;
  size_t length = strnlen(s, max_length + 1);
  if (length > max_length) {
    if (!*ret_error) {
      *ret_error = invalid(std::string(what) + " is too long (at most " +
                           std::to_string(max_length) + " " + unit + ")");
    }
    return 0;
  }
  *ret = std::string_view(s, length);
  return 0;
}

}  // namespace

// Reads one "s" argument, refusing (without keeping it) a string longer than max_length.
int read_string(sd_bus_message* m, const char* what, size_t max_length, std::string* ret,
                std::optional<Error>* ret_error) {
  std::optional<std::string_view> s;
  int r = read_bounded(m, what, max_length, "bytes", &s, ret_error);
  if (s)
    ret->assign(*s);
  return r;
}

// Same for secrets: the copy goes straight into a self-erasing buffer.
int read_secret(sd_bus_message* m, const char* what, size_t max_length, SecureString* ret,
                std::optional<Error>* ret_error) {
  std::optional<std::string_view> s;
  int r = read_bounded(m, what, max_length, "characters", &s, ret_error);
  if (s)
    *ret = SecureString(*s);
  return r;
}

// a{ss}, at most kMaxContextEntries entries with bounded keys and values, no duplicates.
int read_string_map(sd_bus_message* m, StringMap* ret, std::optional<Error>* ret_error) {
  int r = sd_bus_message_enter_container(m, 'a', "{ss}");
  if (r < 0)
    return r;
  size_t entries = 0;
  for (;;) {
    const char* key = nullptr;
    const char* value = nullptr;
    r = sd_bus_message_read(m, "{ss}", &key, &value);
    if (r < 0)
      return r;
    if (r == 0)
      break;
    if (*ret_error)
      continue;
    if (++entries > dbus::kMaxContextEntries) {
      *ret_error = invalid("too many context entries (at most " +
                           std::to_string(dbus::kMaxContextEntries) + ")");
    } else if (strnlen(key, kMaxMapKeyLength + 1) > kMaxMapKeyLength) {
      *ret_error = invalid("context key is too long");
    } else if (strnlen(value, dbus::kMaxContextValueLength + 1) > dbus::kMaxContextValueLength) {
      *ret_error = invalid(std::string("context value of '") + key + "' is too long (at most " +
                           std::to_string(dbus::kMaxContextValueLength) + " bytes)");
    } else if (!ret->emplace(key, value).second) {
      *ret_error = invalid(std::string("context key '") + key + "' appears twice");
    }
  }
  return sd_bus_message_exit_container(m);
}

int read_totp_options(sd_bus_message* m, TotpEnrollmentOptions* ret,
                      std::optional<Error>* ret_error) {
  return read_variant_map(m, read_totp_option_entry, ret, ret_error);
}

int read_audit_filter(sd_bus_message* m, AuditFilter* ret, std::optional<Error>* ret_error) {
  return read_variant_map(m, read_audit_filter_entry, ret, ret_error);
}

namespace {

// "totp_devices" aa{sv}: one {"name" s, "created" t, "last_used" t} per device.
int append_sv_totp_devices(sd_bus_message* m, const std::vector<TotpDeviceInfo>& devices) {
  int r = sd_bus_message_open_container(m, 'e', "sv");
  if (r >= 0)
    r = sd_bus_message_append(m, "s", "totp_devices");
  if (r >= 0)
    r = sd_bus_message_open_container(m, 'v', "aa{sv}");
  if (r >= 0)
    r = sd_bus_message_open_container(m, 'a', "a{sv}");
  for (const auto& d : devices) {
    if (r >= 0)
      r = sd_bus_message_append(m, "a{sv}", 3, "name", "s", d.name.c_str(), "created", "t",
                                d.created, "last_used", "t", d.last_used);
  }
  if (r >= 0)
    r = sd_bus_message_close_container(m);
  if (r >= 0)
    r = sd_bus_message_close_container(m);
  if (r >= 0)
    r = sd_bus_message_close_container(m);
  return r;
}

}  // namespace

int append_user_info(sd_bus_message* m, const UserInfo& info) {
  int r = sd_bus_message_open_container(m, 'a', "{sv}");
  if (r >= 0)
    r = append_sv_string(m, "user", info.user);
  if (r >= 0)
    r = append_sv_strv(m, "methods", info.methods);
  if (r >= 0)
    r = append_sv_strv(m, "pending", info.pending);
  if (r >= 0)
    r = append_sv_u32(m, "backup_codes_left", info.backup_codes_left);
  if (r >= 0)
    r = append_sv_u64(m, "locked_until", info.locked_until);
  if (r >= 0)
    r = append_sv_u32(m, "failures", info.failures);
  if (r >= 0)
    r = append_sv_string(m, "masked_phone", info.masked_phone);
  if (r >= 0 && info.totp) {
    r = append_sv_string(m, "totp_algorithm", otp_algorithm_name(info.totp->algorithm));
    if (r >= 0)
      r = append_sv_u32(m, "totp_digits", static_cast<uint32_t>(info.totp->digits));
    if (r >= 0)
      r = append_sv_u32(m, "totp_period", static_cast<uint32_t>(info.totp->period));
  }
  if (r >= 0)
    r = append_sv_totp_devices(m, info.totp_devices);
  if (r >= 0 && info.foreign_change) {
    const ForeignChange& c = *info.foreign_change;
    r = append_sv_string(m, "foreign_change_host", c.host);
    if (r >= 0)
      r = append_sv_string(m, "foreign_change_kind", c.change);
    if (r >= 0)
      r = append_sv_string(m, "foreign_change_factor", c.factor);
    if (r >= 0)
      r = append_sv_u64(m, "foreign_change_at",
                        static_cast<uint64_t>(std::max<int64_t>(0, c.time_usec / 1000000)));
  }
  if (r >= 0)
    r = sd_bus_message_close_container(m);
  return r;
}

int append_audit_record(sd_bus_message* m, const AuditRecord& rec) {
  int r = sd_bus_message_open_container(m, 'a', "{sv}");
  if (r >= 0)
    r = append_sv_u64(m, "id", static_cast<uint64_t>(rec.id));
  if (r >= 0)
    r = append_sv_u64(m, "time", static_cast<uint64_t>(rec.time_usec));
  if (r >= 0)
    r = append_sv_string(m, "kind", rec.kind);
  if (r >= 0)
    r = append_sv_string(m, "user", rec.user);
  if (r >= 0)
    r = append_sv_string(m, "outcome", rec.outcome);
  if (r >= 0)
    r = append_sv_string(m, "reason", rec.reason);
  if (r >= 0)
    r = append_sv_string(m, "caller", rec.caller);
  if (r >= 0)
    r = append_sv_string(m, "details", rec.details_json);
  if (r >= 0)
    r = append_sv_string(m, "hash", rec.hash_hex);
  if (r >= 0)
    r = sd_bus_message_close_container(m);
  return r;
}

}  // namespace mfa::bus

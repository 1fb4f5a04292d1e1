// The admin-only methods of a rollout (docs/admin-guide.md, "Rolling out"): ImportTotp, GetReport
// and CheckHealth, with the reading of their arguments. The logic is the Authenticator's
// (core/authenticator_rollout.cpp).
#include <cstring>
#include <memory>
#include <optional>
#include <string>

#include "bus/args.hpp"
#include "bus/manager.hpp"
#include "common/base32.hpp"
#include "common/dbus_names.hpp"
#include "core/rollout.hpp"
#include "fleet/coordinator.hpp"

namespace mfa {

namespace {

constexpr size_t kMaxSecretLength = 128;  // base32 of 64 bytes is 104 characters
constexpr size_t kMaxImportCodes = 20;
constexpr size_t kMaxNameLength = 32;

Error invalid(std::string message) {
  return make_error(Errc::kInvalidArgument, std::move(message));
}

// ImportTotp options: secret s (base32), algorithm s, digits u, period u, name s, source s,
// backup_codes as, force b.
int read_import_entry(sd_bus_message* m, const std::string& key, const char* contents,
                      void* userdata, std::optional<Error>* ret_error) {
  auto* import = static_cast<TotpImport*>(userdata);
  const char* expected = key == "digits" || key == "period" ? "u"
                         : key == "backup_codes"            ? "as"
                         : key == "force"                   ? "b"
                                                            : "s";
  if (key != "secret" && key != "algorithm" && key != "digits" && key != "period" &&
      key != "name" && key != "source" && key != "backup_codes" && key != "force") {
    *ret_error = invalid("unknown option '" + key +
                         "' (known: secret, algorithm, digits, period, name, source, "
                         "backup_codes, force)");
    return 0;
  }
  if (std::strcmp(contents, expected) != 0) {
    *ret_error = invalid("option '" + key + "' must be of type '" + expected + "'");
    return 0;
  }
  int r = 0;
  if (key == "secret") {
    SecureString text;
    r = bus::read_secret(m, "secret", kMaxSecretLength, &text, ret_error);
    if (r >= 0 && !*ret_error) {
      auto secret = base32_decode(text.view());
      if (!secret.ok()) {
        *ret_error = invalid("the secret is not valid base32");
      } else {
        import->secret = std::move(secret).value();
      }
    }
  } else if (key == "algorithm") {
    std::string name;
    r = bus::read_string(m, "algorithm", 16, &name, ret_error);
    if (r >= 0 && !*ret_error) {
      auto alg = parse_otp_algorithm(name);
      if (!alg) {
        *ret_error = invalid("algorithm must be SHA1, SHA256 or SHA512");
      } else {
        import->params.algorithm = *alg;
      }
    }
  } else if (key == "digits" || key == "period") {
    uint32_t n = 0;
    r = sd_bus_message_read(m, "u", &n);
    if (r >= 0 && n > 1000)
      *ret_error = invalid(key + " is out of range");
    else if (r >= 0)
      (key == "digits" ? import->params.digits : import->params.period) = static_cast<int>(n);
  } else if (key == "name" || key == "source") {
    r = bus::read_string(m, key.c_str(), kMaxNameLength,
                         key == "name" ? &import->name : &import->source, ret_error);
  } else if (key == "force") {
    int b = 0;
    r = sd_bus_message_read(m, "b", &b);
    import->force = b != 0;
  } else {
    r = sd_bus_message_enter_container(m, 'a', "s");
    while (r >= 0) {
      const char* s = nullptr;
      r = sd_bus_message_read_basic(m, 's', &s);
      if (r <= 0)
        break;
      if (import->backup_codes.size() >= kMaxImportCodes ||
          strnlen(s, dbus::kMaxCodeLength + 1) > dbus::kMaxCodeLength) {
        if (!*ret_error)
          *ret_error = invalid("at most 20 backup codes, each at most 64 characters");
        continue;
      }
      import->backup_codes.emplace_back(s);
    }
    if (r >= 0)
      r = sd_bus_message_exit_container(m);
  }
  return r < 0 ? r : 1;
}

int read_report_entry(sd_bus_message* m, const std::string& key, const char* contents,
                      void* userdata, std::optional<Error>* ret_error) {
  auto* since_usec = static_cast<int64_t*>(userdata);
  if (key != "since" || std::strcmp(contents, "t") != 0) {
    *ret_error = invalid("the report takes one option: since (t, unix seconds)");
    return 0;
  }
  uint64_t since = 0;
  int r = sd_bus_message_read(m, "t", &since);
  if (r >= 0 && since > static_cast<uint64_t>(INT64_MAX / 1000000))
    *ret_error = invalid("since is out of range");
  else if (r >= 0)
    *since_usec = static_cast<int64_t>(since) * 1000000;
  return r < 0 ? r : 1;
}

int append_u64(sd_bus_message* m, const char* key, uint64_t value) {
  return sd_bus_message_append(m, "{sv}", key, "t", value);
}

int append_report(sd_bus_message* m, const AdoptionReport& rep) {
  int r = sd_bus_message_open_container(m, 'a', "{sv}");
  const std::pair<const char*, uint64_t> numbers[] = {
      {"since", static_cast<uint64_t>(rep.since_usec / 1000000)},
      {"users_total", rep.users_total},
      {"users_enrolled", rep.users_enrolled},
      {"totp", rep.totp},
      {"sms", rep.sms},
      {"backup", rep.backup},
      {"logins_success", rep.logins_success},
      {"logins_failure", rep.logins_failure},
      {"lockouts", rep.lockouts},
      {"sms_sent", rep.sms_sent},
      {"sms_failed", rep.sms_failed},
      {"sessions_open", rep.sessions_open},
      {"degraded_decisions", rep.degraded.decisions},
      {"degraded_logins_allowed", rep.degraded.logins_allowed},
      {"degraded_logins_denied", rep.degraded.logins_denied},
      {"degraded_consumed", rep.degraded.consumed},
      {"degraded_unreplicated", rep.degraded.unreplicated},
      {"degraded_periods", rep.degraded.periods},
      {"degraded_reconciled", rep.degraded.reconciled},
      {"degraded_refused", rep.degraded.refused},
  };
  for (const auto& [key, value] : numbers) {
    if (r >= 0)
      r = append_u64(m, key, value);
  }
  if (r >= 0)
    r = sd_bus_message_open_container(m, 'e', "sv");
  if (r >= 0)
    r = sd_bus_message_append(m, "s", "groups");
  if (r >= 0)
    r = sd_bus_message_open_container(m, 'v', "aa{sv}");
  if (r >= 0)
    r = append_array(m, "a{sv}", rep.groups, [](sd_bus_message* g, const GroupAdoption& ga) {
      int q = sd_bus_message_open_container(g, 'a', "{sv}");
      if (q >= 0)
        q = sd_bus_message_append(g, "{sv}", "group", "s", ga.group.c_str());
      if (q >= 0)
        q = append_u64(g, "total", ga.total);
      if (q >= 0)
        q = append_u64(g, "enrolled", ga.enrolled);
      if (q >= 0)
        q = sd_bus_message_close_container(g);
      return q;
    });
  for (int i = 0; i < 3 && r >= 0; ++i)
    r = sd_bus_message_close_container(m);
  return r;
}

// The scheme of [Redis] Address= (never the address itself: it may name a password).
std::string redis_scheme(const Config& config) {
  if (!config.redis_sentinels.empty())  // Sentinels: TLS unless AllowPlaintext=yes
    return config.redis_allow_plaintext ? "redis" : "rediss";
  const std::string& address = config.redis_address;
  if (address.empty())
    return "";
  const size_t colon = address.find(':');
  return colon == std::string::npos ? "" : address.substr(0, colon);
}

}  // namespace

int ManagerBus::import_totp(sd_bus_message* m) {
  std::optional<Error> bad;
  std::string user;
  auto import = std::make_shared<TotpImport>();
  int r = bus::read_string(m, "user name", dbus::kMaxUserNameLength, &user, &bad);
  if (r < 0)
    return r;
  r = bus::read_variant_map(m, read_import_entry, import.get(), &bad);
  if (r < 0)
    return r;
  if (!bad && import->secret.empty())
    bad = invalid("the secret is missing");
  CallPtr call = open_call(m, bad);
  if (!call)
    return 1;
  return run(call, fleet_scope(user, FleetCallKind::kChange),
             [this, user, import = std::shared_ptr<const TotpImport>(import)](PendingCall& c) {
               return reply_to(c.message(), auth_.import_totp(c.caller(), user, *import),
                               [](sd_bus_message* reply, const TotpImportResult& res) {
                                 int q = sd_bus_message_open_container(reply, 'a', "{sv}");
                                 if (q >= 0)
                                   q = sd_bus_message_append(reply, "{sv}", "backup_codes", "u",
                                                             res.backup_codes);
                                 if (q >= 0)
                                   q = sd_bus_message_append(reply, "{sv}", "replaced", "b",
                                                             static_cast<int>(res.replaced));
                                 if (q >= 0)
                                   q = sd_bus_message_close_container(reply);
                                 return q;
                               });
             });
}

int ManagerBus::get_report(sd_bus_message* m) {
  std::optional<Error> bad;
  int64_t since_usec = 0;
  int r = bus::read_variant_map(m, read_report_entry, &since_usec, &bad);
  if (r < 0)
    return r;
  CallPtr call = open_call(m, bad);
  if (!call)
    return 1;
  return run(call, std::nullopt, [this, since_usec](PendingCall& c) {
    return reply_to(c.message(), auth_.adoption_report(c.caller(), since_usec), append_report);
  });
}

int ManagerBus::check_health(sd_bus_message* m) {
  CallPtr call = open_call(m, std::nullopt);
  if (!call)
    return 1;
  return run(call, std::nullopt, [this](PendingCall& c) {
    return reply_to(
        c.message(), auth_.check_health(c.caller()),
        [this](sd_bus_message* reply, const HealthReport& h) {
          int q = sd_bus_message_open_container(reply, 'a', "{sv}");
          if (q >= 0)
            q = sd_bus_message_append(reply, "{sv}", "version", "s", MFA_VERSION);
          if (q >= 0)
            q = sd_bus_message_append(reply, "{sv}", "database", "s", h.database_problem.c_str());
          if (q >= 0)
            q = sd_bus_message_append(reply, "{sv}", "fleet", "b",
                                      static_cast<int>(fleet_ != nullptr));
          if (q >= 0)
            q = sd_bus_message_append(reply, "{sv}", "redis_scheme", "s",
                                      redis_scheme(config_).c_str());
          if (q >= 0)
            q = sd_bus_message_append(reply, "{sv}", "degraded", "b", static_cast<int>(degraded()));
          if (q >= 0)
            q = sd_bus_message_append(reply, "{sv}", "key_file", "s", config_.key_file.c_str());
          if (q >= 0)
            q = sd_bus_message_append(reply, "{sv}", "metrics_path", "s",
                                      config_.metrics_textfile_path.c_str());
          // [Rollout] Deadline= ("2027-01-31 00:00 UTC", "" for none): doctor warns about
          // nullok without one.
          if (q >= 0)
            q = sd_bus_message_append(
                reply, "{sv}", "rollout_deadline", "s",
                config_.rollout_deadline ? format_utc(*config_.rollout_deadline).c_str() : "");
          if (q >= 0)
            q = sd_bus_message_close_container(reply);
          return q;
        });
  });
}

}  // namespace mfa

// mfad: the daemon. Loads the configuration and the master key, opens the store, and serves
// org.mfad1 on the system bus (or --bus-address) from one sd-event loop.
#include <getopt.h>
#include <limits.h>
#include <pwd.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <systemd/sd-bus.h>
#include <systemd/sd-daemon.h>
#include <systemd/sd-event.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "common/crypto.hpp"
#include "common/dbus_names.hpp"
#include "common/handles.hpp"
#include "common/host_name.hpp"
#include "common/master_key.hpp"
#include "common/seal.hpp"
#include "fleet/coordinator.hpp"
#include "fleet/client_options.hpp"
#include "fleet/data_key_records.hpp"
#include "fleet/record_mac.hpp"
#include "fleet/recorder.hpp"
#include "fleet/sessions.hpp"
#include "fleet/sms.hpp"
#include "fleet/redis_client.hpp"
#include "fleet/sentinel.hpp"
#include "fleet/tls_stream.hpp"
#include "fleet/unix_socket_check.hpp"
#include "core/transport_warnings.hpp"
#include "core/audit.hpp"
#include "core/authenticator.hpp"
#include "core/clock.hpp"
#include "core/config.hpp"
#include "core/data_keys.hpp"
#include "core/log.hpp"
#include "bus/manager.hpp"
#include "bus/metrics_file.hpp"
#include "core/sessions.hpp"
#include "bus/sessions.hpp"
#include "bus/audit_upkeep.hpp"
#include "storage/sqlite_store.hpp"
#include "core/user_directory.hpp"

namespace mfa {
namespace {

constexpr int kExitUsage = 2;

struct Options {
  std::string config_path = MFA_DEFAULT_CONFIG;
  bool config_given = false;
  std::optional<std::string> state_dir;
  std::optional<std::string> bus_address;
  bool check_config = false;
};

void print_help() {
  printf(
      "Usage: mfad [OPTIONS]\n"
      "\n"
      "Multi-factor authentication daemon: serves org.mfad1 on the system bus.\n"
      "\n"
      "  --config FILE          configuration file (default %s)\n"
      "  --state-dir DIR        state directory (overrides [Daemon] StateDirectory)\n"
      "  --bus-address ADDRESS  connect to this bus instead of the system bus\n"
      "  --check-config         validate the configuration and the key file, then exit\n"
      "  --version              print the version and exit\n"
      "  --help                 print this help and exit\n",
      MFA_DEFAULT_CONFIG);
}

// Returns -1 to go on, or an exit status.
int parse_options(int argc, char** argv, Options* ret) {
  enum { kConfig = 0x100, kStateDir, kBusAddress, kCheckConfig, kVersion, kHelp };
  static const struct option kLongOptions[] = {
      {"config", required_argument, nullptr, kConfig},
      {"state-dir", required_argument, nullptr, kStateDir},
      {"bus-address", required_argument, nullptr, kBusAddress},
      {"check-config", no_argument, nullptr, kCheckConfig},
      {"version", no_argument, nullptr, kVersion},
      {"help", no_argument, nullptr, kHelp},
      {nullptr, 0, nullptr, 0},
  };
  int c;
  while ((c = getopt_long(argc, argv, "", kLongOptions, nullptr)) != -1) {
    switch (c) {
      case kConfig:
        ret->config_path = optarg;
        ret->config_given = true;
        break;
      case kStateDir:
        ret->state_dir = optarg;
        break;
      case kBusAddress:
        ret->bus_address = optarg;
        break;
      case kCheckConfig:
        ret->check_config = true;
        break;
      case kVersion:
        printf("mfad %s\n", MFA_VERSION);
        return 0;
      case kHelp:
        print_help();
        return 0;
      default:
        fprintf(stderr, "Try 'mfad --help' for more information.\n");
        return kExitUsage;
    }
  }
  if (optind < argc) {
    fprintf(stderr, "mfad: unexpected argument '%s'\nTry 'mfad --help' for more information.\n",
            argv[optind]);
    return kExitUsage;
  }
  if (ret->state_dir && (*ret->state_dir).empty()) {
    fprintf(stderr, "mfad: --state-dir needs a directory\n");
    return kExitUsage;
  }
  return -1;
}

MasterKeyOptions key_options(const Config& config, bool create) {
  MasterKeyOptions options;
  options.path = config.key_file;
  options.create_if_missing = create;
  options.allowed_owner = 0;
  if (geteuid() != 0) {
    options.extra_owner = geteuid();
  } else {
    // The key may belong to the mfad system user, if there is one.
    struct passwd pw;
    struct passwd* found = nullptr;
    char buf[4096];
    if (getpwnam_r("mfad", &pw, buf, sizeof buf, &found) == 0 && found != nullptr) {
      options.extra_owner = found->pw_uid;
    }
  }
  return options;
}

// No systemd credential and no key file: mfad would create the key.
bool key_missing(const Config& config) {
  const char* credentials = getenv("CREDENTIALS_DIRECTORY");
  if (credentials != nullptr) {
    const std::string credential = std::string(credentials) + "/mfad.key";
    if (access(credential.c_str(), F_OK) == 0)
      return false;
  }
  struct stat st;
  return lstat(config.key_file.c_str(), &st) < 0 && errno == ENOENT;
}

// A missing key may be created only for a database that holds nothing made with the lost one: a
// new key would open none of its sealed secrets or code hashes, and every enrolled user would be
// locked out without a word (issue 17).
Status may_create_key(const Config& config, const std::string& state_directory) {
  // In fleet mode Redis holds records sealed with the fleet's one key, which this host's empty
  // database knows nothing of: a key made here would open none of them.
  if (config.fleet_mode()) {
    return make_error(Errc::kIo, config.key_file +
                                     " is missing: in fleet mode every host needs the fleet's "
                                     "master key, and mfad never creates one. Copy it from "
                                     "another host of the fleet (owner root, mode 0600); for "
                                     "the first host of a new fleet, create it with "
                                     "'head -c 32 /dev/urandom > KEYFILE' under umask 077.");
  }
  const std::string db = state_directory + "/mfad.db";
  auto rows = SqliteStore::count_keyed_rows(db);
  if (!rows.ok()) {
    return make_error(Errc::kIo, config.key_file + " is missing and " + db +
                                     " cannot be examined (" + rows.error().message +
                                     "): not creating a new key");
  }
  if (*rows == 0)
    return {};
  return make_error(Errc::kIo,
                    config.key_file + " is missing but " + db + " holds " + std::to_string(*rows) +
                        " records made with the lost key (sealed factors, code hashes, the audit "
                        "trail): restore the key from your backup (owner root, mode 0600). A new "
                        "key would lock every enrolled user out, so mfad creates one only for an "
                        "empty database.");
}

int check_config(const Options& options) {
  std::vector<ConfigProblem> problems;
  auto config = load_config(options.config_path, options.config_given, /*strict=*/true, &problems);
  for (const auto& p : problems)
    fprintf(stderr, "%s\n", p.to_string().c_str());
  if (!config.ok()) {
    if (problems.empty())
      fprintf(stderr, "%s\n", config.error().message.c_str());
    return EXIT_FAILURE;
  }
  if (config->fleet_mode()) {
    auto host_id = fleet_host_id(*config);
    if (!host_id.ok()) {
      fprintf(stderr, "%s\n", host_id.error().message.c_str());
      return EXIT_FAILURE;
    }
    if (Status transport = check_fleet_transport(*config); !transport.ok()) {
      fprintf(stderr, "%s\n", transport.error().message.c_str());
      return EXIT_FAILURE;
    }
  }
  for (const auto& warning : transport_warnings(*config))
    fprintf(stderr, "warning: %s\n", warning.c_str());
  // A missing key is created on first start, for an empty database only.
  if (key_missing(*config)) {
    Status creatable =
        may_create_key(*config, options.state_dir ? *options.state_dir : config->state_directory);
    if (!creatable.ok()) {
      fprintf(stderr, "%s\n", creatable.error().message.c_str());
      return EXIT_FAILURE;
    }
    printf("%s: key file does not exist yet; mfad creates it on first start\n",
           config->key_file.c_str());
  } else {
    auto key = load_master_key(key_options(*config, /*create=*/false));
    if (!key.ok()) {
      fprintf(stderr, "%s\n", key.error().message.c_str());
      return EXIT_FAILURE;
    }
  }
  printf("configuration OK\n");
  return EXIT_SUCCESS;
}

// Creates dir (mode 0700) and any missing parents (0755).
Status make_state_directory(const std::string& dir) {
  if (dir.empty() || dir[0] != '/') {
    return make_error(Errc::kIo, "state directory '" + dir + "' is not an absolute path");
  }
  for (size_t pos = dir.find('/', 1); pos != std::string::npos; pos = dir.find('/', pos + 1)) {
    std::string parent = dir.substr(0, pos);
    if (mkdir(parent.c_str(), 0755) < 0 && errno != EEXIST) {
      return make_error(Errc::kIo, "cannot create " + parent + ": " + strerror(errno));
    }
  }
  if (mkdir(dir.c_str(), 0700) < 0 && errno != EEXIST) {
    return make_error(Errc::kIo, "cannot create " + dir + ": " + strerror(errno));
  }
  struct stat st;
  if (stat(dir.c_str(), &st) < 0 || !S_ISDIR(st.st_mode)) {
    return make_error(Errc::kIo, "state directory " + dir + " is not a directory");
  }
  if (st.st_mode & 0077) {
    MFA_LOG_WARNING("state directory %s is accessible to other users (mode %04o)", dir.c_str(),
                    st.st_mode & 07777);
  }
  return {};
}

// sd-bus's own access check of methods without SD_BUS_VTABLE_UNPRIVILEGED asks dbus-daemon for
// the caller's uid on every call, synchronously (GetConnectionUnixUser: a blocking round trip in
// the event loop, three per login). bus/manager_vtable.cpp's dispatch makes the same decision, root
// only, from credentials cached per connection (CallerCache), so the bus is marked trusted to skip
// the repeat; sd_bus_set_trusted must come before the connection starts, hence no
// sd_bus_open_system.
Result<BusPtr> connect_bus(const Options& options) {
  std::string address;
  if (options.bus_address) {
    address = *options.bus_address;
  } else {
    const char* env = secure_getenv("DBUS_SYSTEM_BUS_ADDRESS");
    address = env && *env ? env : "unix:path=/run/dbus/system_bus_socket";
  }
  sd_bus* raw = nullptr;
  int r = sd_bus_new(&raw);
  BusPtr bus(raw);
  if (r >= 0)
    r = sd_bus_set_address(raw, address.c_str());
  if (r >= 0)
    r = sd_bus_set_bus_client(raw, 1);
  if (r >= 0)
    r = sd_bus_set_trusted(raw, 1);
  if (r >= 0)
    r = sd_bus_start(raw);
  if (r < 0)
    return make_error(Errc::kIo, "cannot connect to the bus at " + address + ": " + strerror(-r));
  return bus;
}

struct Daemon {
  EventPtr event;
  BusPtr bus;
  Store* store = nullptr;
  AuditLog* audit = nullptr;
  ManagerBus* manager = nullptr;
  int exit_status = EXIT_SUCCESS;
  bool stopping = false;
};

void record(AuditLog& audit, AuditKind kind, AuditReason reason) {
  AuditEvent event;
  event.kind = kind;
  event.outcome = AuditOutcome::kInfo;
  event.reason = reason;
  event.caller = "mfad";
  event.details["version"] = MFA_VERSION;
  Status st = audit.record(event);
  if (!st.ok())
    MFA_LOG_ERROR("cannot record %s: %s", audit_kind_name(kind), st.error().message.c_str());
}

int on_signal(sd_event_source* /*s*/, const struct signalfd_siginfo* si, void* userdata) {
  auto* d = static_cast<Daemon*>(userdata);
  if (d->stopping)
    return 0;
  d->stopping = true;
  (void)sd_notify(0, "STOPPING=1\nSTATUS=Shutting down");
  MFA_LOG_INFO("received %s, shutting down", strsignal(static_cast<int>(si->ssi_signo)));
  try {
    // Stop taking requests; let daemon.stop share the last commit with pending replies. Calls
    // waiting on Redis are answered first (within [Redis] Timeout), while the loop runs on.
    (void)sd_bus_release_name(d->bus.get(), dbus::kBusName);
    record(*d->audit, AuditKind::kDaemonStop, AuditReason::kSignal);
    d->manager->stop([d] {
      (void)sd_bus_flush(d->bus.get());
      (void)sd_event_exit(d->event.get(), d->exit_status);
    });
  } catch (...) {
    MFA_LOG_ERROR("error during shutdown");
    d->exit_status = EXIT_FAILURE;
    return sd_event_exit(d->event.get(), d->exit_status);
  }
  return 0;
}

int run(const Options& options) {
  // Signals are handled by the loop (signalfd): block them before anything else.
  sigset_t mask;
  sigemptyset(&mask);
  sigaddset(&mask, SIGTERM);
  sigaddset(&mask, SIGINT);
  if (sigprocmask(SIG_BLOCK, &mask, nullptr) < 0) {
    MFA_LOG_ERROR("cannot block signals: %s", strerror(errno));
    return EXIT_FAILURE;
  }
  // A peer that closed its end (Redis restarting, an SMS provider) is an EPIPE to handle, not a
  // signal that ends mfad: hiredis writes with write(2), which raises SIGPIPE.
  struct sigaction ignore = {};
  ignore.sa_handler = SIG_IGN;
  if (sigaction(SIGPIPE, &ignore, nullptr) < 0) {
    MFA_LOG_ERROR("cannot ignore SIGPIPE: %s", strerror(errno));
    return EXIT_FAILURE;
  }

  std::vector<ConfigProblem> problems;
  auto loaded = load_config(options.config_path, options.config_given, /*strict=*/false, &problems);
  for (const auto& p : problems) {
    MFA_LOG_WARNING("%s%s", p.to_string().c_str(), p.fatal ? "" : " (ignored)");
  }
  if (!loaded.ok()) {
    MFA_LOG_ERROR("cannot load the configuration: %s", loaded.error().message.c_str());
    return EXIT_FAILURE;
  }
  Config config = std::move(loaded).value();
  if (options.state_dir)
    config.state_directory = *options.state_dir;
  for (const auto& warning : transport_warnings(config))
    MFA_LOG_WARNING("%s", warning.c_str());

  if (Status st = make_state_directory(config.state_directory); !st.ok()) {
    MFA_LOG_ERROR("%s", st.error().message.c_str());
    return EXIT_FAILURE;
  }
  if (key_missing(config)) {
    if (Status creatable = may_create_key(config, config.state_directory); !creatable.ok()) {
      MFA_LOG_ERROR("cannot start: %s", creatable.error().message.c_str());
      return EXIT_FAILURE;
    }
  }
  auto master_key = load_master_key(key_options(config, /*create=*/true));
  if (!master_key.ok()) {
    MFA_LOG_ERROR("cannot load the master key: %s", master_key.error().message.c_str());
    return EXIT_FAILURE;
  }
  auto sealer = Sealer::create(master_key->span());
  auto code_hash_key = hkdf_sha256(master_key->span(), "mfad code hash v1", 32);
  auto audit_chain_key = hkdf_sha256(master_key->span(), "mfad audit chain v1", 32);
  // Fleet mode: the key of the records in Redis (fleet/record_mac.hpp), of its own label, and the
  // wrapping of the per-person data keys there (fleet/data_key_records.hpp).
  auto fleet_record_key = hkdf_sha256(master_key->span(), fleet::kRecordMacLabel, 32);
  auto data_key_wrap = fleet::DataKeyWrap::derive(master_key->span());
  if (!sealer.ok() || !code_hash_key.ok() || !audit_chain_key.ok() || !data_key_wrap.ok()) {
    MFA_LOG_ERROR("cannot derive keys from the master key");
    return EXIT_FAILURE;
  }
  master_key->clear();

  SystemClock clock;
  SystemUserDirectory system_users;
  // Every call asks NSS who its caller and its user are: a short memory keeps a flood of calls
  // from becoming a flood of directory round trips on the event loop.
  CachedUserDirectory users(system_users, clock);
  // Opening migrates an older database, whose records were keyed by name, to account keys.
  auto opened = SqliteStore::open(config.state_directory + "/mfad.db", clock, system_users);
  if (!opened.ok()) {
    MFA_LOG_ERROR("cannot open the database: %s", opened.error().message.c_str());
    return EXIT_FAILURE;
  }
  SqliteStore* sqlite = opened->get();
  if (Status st = sqlite->set_audit_chain(std::move(audit_chain_key).value(),
                                          config.state_directory + "/audit.head", &*sealer);
      !st.ok()) {
    MFA_LOG_ERROR("cannot key the audit trail: %s", st.error().message.c_str());
    return EXIT_FAILURE;
  }
  // The one place that knows the store is SQLite: every layer, fleet mode's included, gets a Store.
  std::unique_ptr<Store> store = std::move(opened).value();
  // Standalone: records sealed under the master key move under their person's data key
  // (core/data_keys.hpp), so that forgetting a person leaves no copy that opens. Fleet mode keeps
  // the fleet key (docs/security-model.md, "Data rights").
  if (!config.fleet_mode()) {
    DataKeys keys(data_key_directory(config), *sealer, true);
    Status prepared = keys.prepare();
    auto moved =
        prepared.ok() ? keys.seal_all(*store, system_users) : Result<int>(prepared.error());
    Status flushed = moved.ok() ? store->flush() : Status(moved.error());
    if (!flushed.ok()) {
      MFA_LOG_ERROR("cannot move sealed records under data keys: %s",
                    flushed.error().message.c_str());
      return EXIT_FAILURE;
    }
    if (*moved > 0)
      MFA_LOG_INFO("%d sealed records moved under their person's data key", *moved);
  }
  AuditLog audit(*store, clock);
  audit.set_user_directory(&users);

  Daemon d;
  sd_event* event = nullptr;
  int r = sd_event_default(&event);
  d.event.reset(event);
  if (r < 0) {
    MFA_LOG_ERROR("cannot create the event loop: %s", strerror(-r));
    return EXIT_FAILURE;
  }
  auto bus = connect_bus(options);
  if (!bus.ok()) {
    MFA_LOG_ERROR("%s", bus.error().message.c_str());
    return EXIT_FAILURE;
  }
  d.bus = std::move(bus).value();
  // The bus going away ends the loop: there is nothing left to serve.
  (void)sd_bus_set_exit_on_disconnect(d.bus.get(), 1);
  r = sd_bus_attach_event(d.bus.get(), event, SD_EVENT_PRIORITY_NORMAL);
  if (r < 0) {
    MFA_LOG_ERROR("cannot attach the bus to the event loop: %s", strerror(-r));
    return EXIT_FAILURE;
  }

  SecurityEventEmitter emitter(d.bus.get());
  // Fleet mode: the Authenticator's writes are noted, for Redis to confirm (docs/fleet.md).
  std::unique_ptr<FleetRecorder> recorder;
  if (config.fleet_mode())
    recorder = std::make_unique<FleetRecorder>(*store);
  Store& auth_store = recorder ? static_cast<Store&>(*recorder) : *store;
  // Fleet mode starts degraded, until Redis answered and the queue is replayed.
  bool fleet_degraded = true;
  Authenticator authenticator(AuthenticatorDeps{config, auth_store, audit, *sealer, *code_hash_key,
                                                clock, users, &emitter,
                                                recorder ? &fleet_degraded : nullptr});
  auto manager = ManagerBus::create(event, d.bus.get(), authenticator, *store, config);
  if (!manager.ok()) {
    MFA_LOG_ERROR("%s", manager.error().message.c_str());
    return EXIT_FAILURE;
  }
  d.store = store.get();
  d.audit = &audit;
  d.manager = manager->get();

  // [Metrics] TextfilePath=: counters fed by the audit trail, the file rewritten on a timer.
  std::unique_ptr<MetricsFile> metrics;
  if (!config.metrics_textfile_path.empty()) {
    auto started = MetricsFile::start(
        MetricsFile::Deps{event, *store, *manager->get(), config.metrics_textfile_path,
                          static_cast<uint64_t>(config.metrics_interval_seconds) * 1000000});
    if (!started.ok()) {
      MFA_LOG_ERROR("%s", started.error().message.c_str());
      return EXIT_FAILURE;
    }
    metrics = std::move(started).value();
  }
  // Sessions: the registry, its effects on the world, and the expiry timer (which first reaps
  // sessions whose leader went away while mfad was down).
  auto session_bus = SessionBus::create(event, d.bus.get(), manager->get()->group_commit());
  if (!session_bus.ok()) {
    MFA_LOG_ERROR("%s", session_bus.error().message.c_str());
    return EXIT_FAILURE;
  }
  SessionRegistry sessions(
      SessionDeps{config, *store, audit, clock, users, authenticator, **session_bus, &emitter});
  audit.set_observer([&sessions, &metrics](const AuditEvent& e) {
    sessions.observe(e);
    if (metrics)
      metrics->observe(e);
  });
  manager->get()->set_sessions(&sessions);
  (*session_bus)
      ->attach(&sessions, int64_t{config.sessions_max_lifetime_seconds} * 1000000,
               int64_t{config.sessions_idle_timeout_seconds} * 1000000);
  FleetSessions* fleet_sessions_online = nullptr;      // set once both exist
  std::unique_ptr<fleet::RecordMac> fleet_record_mac;  // outlives the coordinator
  std::unique_ptr<SentinelDiscovery> sentinel;         // outlives the clients it directs
  std::unique_ptr<FleetCoordinator> fleet;
  std::unique_ptr<FleetSessions> fleet_sessions;
  std::unique_ptr<FleetSms> fleet_sms;
  if (recorder) {
    auto redis_options = fleet_options(config);
    if (!redis_options.ok()) {
      MFA_LOG_ERROR("fleet mode: %s", redis_options.error().message.c_str());
      return EXIT_FAILURE;
    }
    auto subscriber_options = fleet_options(config);
    auto watcher_options = fleet_options(config);
    auto host_id = fleet_host_id(config);
    if (!config.redis_sentinels.empty()) {
      auto created = make_sentinel_discovery(event, config);
      if (!created.ok()) {
        MFA_LOG_ERROR("fleet mode: %s", created.error().message.c_str());
        return EXIT_FAILURE;
      }
      sentinel = std::move(created).value();
      for (auto* o : {&redis_options, &subscriber_options, &watcher_options}) {
        if (o->ok())
          (*o)->primary = sentinel.get();
      }
    }
    if (!subscriber_options.ok() || !watcher_options.ok() || !host_id.ok()) {
      MFA_LOG_ERROR("fleet mode: %s",
                    host_id.ok() ? (subscriber_options.ok() ? watcher_options : subscriber_options)
                                       .error()
                                       .message.c_str()
                                 : host_id.error().message.c_str());
      return EXIT_FAILURE;
    }
    if (!fleet_record_key.ok()) {
      MFA_LOG_ERROR("fleet mode: %s", fleet_record_key.error().message.c_str());
      return EXIT_FAILURE;
    }
    fleet_record_mac =
        std::make_unique<fleet::RecordMac>(std::move(fleet_record_key).value(), *host_id);
    ManagerBus* mb = manager->get();
    auto created = FleetCoordinator::create(
        FleetCoordinator::Deps{event, config, *store, audit, clock, *fleet_record_mac, &emitter,
                               &*sealer, &*data_key_wrap},
        std::move(redis_options).value(), std::move(watcher_options).value(),
        [mb, &fleet_sessions_online, &fleet_degraded](bool degraded) {
          fleet_degraded = degraded;
          mb->emit_degraded_changed();
          if (!degraded && fleet_sessions_online)
            fleet_sessions_online->online();
        },
        [mb] { mb->schedule_commit(); });
    if (!created.ok()) {
      MFA_LOG_ERROR("fleet mode: %s", created.error().message.c_str());
      return EXIT_FAILURE;
    }
    fleet = std::move(created).value();
    mb->set_fleet(fleet.get(), recorder.get());
    auto fleet_sessions_created = FleetSessions::create(
        FleetSessions::Deps{event, config, *store, clock, sessions, *fleet, *host_id},
        std::move(subscriber_options).value(), [mb] { mb->schedule_commit(); });
    if (!fleet_sessions_created.ok()) {
      MFA_LOG_ERROR("fleet mode: %s", fleet_sessions_created.error().message.c_str());
      return EXIT_FAILURE;
    }
    fleet_sessions = std::move(fleet_sessions_created).value();
    fleet_sessions_online = fleet_sessions.get();
    sessions.set_listener(fleet_sessions.get());
    mb->set_fleet_sessions(fleet_sessions.get());
    fleet_sms = std::make_unique<FleetSms>(FleetSms::Deps{*fleet, *store, audit, config, clock},
                                           [mb] { mb->schedule_commit(); });
    mb->set_fleet_sms(fleet_sms.get());
    MFA_LOG_INFO(
        "fleet mode: Redis at %s, key prefix %s, host id %s",
        config.redis_sentinels.empty()
            ? config.redis_address.c_str()
            : ("the primary of " + config.redis_master_name + " per Redis Sentinel").c_str(),
        config.redis_key_prefix.c_str(), host_id->c_str());
  }

  for (int sig : {SIGTERM, SIGINT}) {
    r = sd_event_add_signal(event, nullptr, sig, on_signal, &d);
    if (r < 0) {
      MFA_LOG_ERROR("cannot watch signal %d: %s", sig, strerror(-r));
      return EXIT_FAILURE;
    }
  }

  r = sd_bus_request_name(d.bus.get(), dbus::kBusName, 0);
  if (r < 0) {
    const char* why = r == -EEXIST ? "another process owns it"
                      : r == -EACCES || r == -EPERM
                          ? "the bus policy does not allow this user to own it"
                          : strerror(-r);
    MFA_LOG_ERROR("cannot own the bus name %s: %s", dbus::kBusName, why);
    return EXIT_FAILURE;
  }

  AuditUpkeep upkeep(
      AuditUpkeep::Deps{event, *sqlite, audit, *manager->get(), emitter, config, clock});
  upkeep.report_head_problem();
  record(audit, AuditKind::kDaemonStart, AuditReason::kStart);
  if (Status st = upkeep.start(); !st.ok()) {
    MFA_LOG_ERROR("%s", st.error().message.c_str());
    return EXIT_FAILURE;
  }
  if (Status st = store->flush(); !st.ok()) {
    MFA_LOG_ERROR("cannot write to the database: %s", st.error().message.c_str());
    return EXIT_FAILURE;
  }
  (void)sd_event_set_watchdog(event, 1);
  (void)sd_notify(0, "READY=1\nSTATUS=Serving org.mfad1");
  MFA_LOG_INFO("mfad %s serving %s", MFA_VERSION, dbus::kBusName);

  r = sd_event_loop(event);
  if (r < 0) {
    MFA_LOG_ERROR("event loop failed: %s", strerror(-r));
    return EXIT_FAILURE;
  }
  // The loop also ends when the bus goes away: commit whatever is pending.
  manager->get()->group_commit().finish();
  upkeep.log_head("shutdown");
  return r;
}

}  // namespace
}  // namespace mfa

int main(int argc, char** argv) {
  // mfad holds the master key and the keys derived from it: no core dump of it, and no ptrace or
  // /proc/PID/mem by another process of its user (mfad.service also sets LimitCORE=0).
  if (prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) < 0) {
    fprintf(stderr, "mfad: cannot turn off core dumps: %s\n", strerror(errno));
    return EXIT_FAILURE;
  }
  try {
    mfa::Options options;
    int status = mfa::parse_options(argc, argv, &options);
    if (status >= 0)
      return status;
    if (options.check_config)
      return mfa::check_config(options);
    return mfa::run(options);
  } catch (const std::exception& e) {
    fprintf(stderr, "mfad: fatal: %s\n", e.what());
  } catch (...) {
    fprintf(stderr, "mfad: fatal error\n");
  }
  return EXIT_FAILURE;
}

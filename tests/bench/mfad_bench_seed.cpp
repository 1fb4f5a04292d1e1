// Writes N TOTP enrollments straight into a (new) mfad database, sealed under the master key, so
// that the login benchmark has enough users: each user can log in once per TOTP step.
//   mfad-bench-seed --state-dir DIR --key-file FILE --users N [--uid-base UID]
// --uid-base: user i is the account of uid UID+i, without asking NSS (the memory bench enrolls
// 100,000 accounts that need not all exist).
#include <getopt.h>
#include <sys/stat.h>

#include <cstdio>
#include <cstdlib>
#include <optional>
#include <string>

#include "common/master_key.hpp"
#include "common/seal.hpp"
#include "core/clock.hpp"
#include "core/user_directory.hpp"
#include "storage/sqlite_store.hpp"
#include "core/validation.hpp"
#include "bench_seed.hpp"

int main(int argc, char** argv) {
  std::string state_dir;
  std::string key_file;
  int users = 20000;
  long uid_base = -1;
  static const struct option kOptions[] = {
      {"state-dir", required_argument, nullptr, 's'},
      {"key-file", required_argument, nullptr, 'k'},
      {"users", required_argument, nullptr, 'n'},
      {"uid-base", required_argument, nullptr, 'u'},
      {nullptr, 0, nullptr, 0},
  };
  int c;
  while ((c = getopt_long(argc, argv, "", kOptions, nullptr)) != -1) {
    switch (c) {
      case 's':
        state_dir = optarg;
        break;
      case 'k':
        key_file = optarg;
        break;
      case 'n':
        users = atoi(optarg);
        break;
      case 'u':
        uid_base = atol(optarg);
        break;
      default:
        return 2;
    }
  }
  if (state_dir.empty() || key_file.empty() || users <= 0) {
    fprintf(stderr, "usage: mfad-bench-seed --state-dir DIR --key-file FILE --users N\n");
    return 2;
  }
  (void)mkdir(state_dir.c_str(), 0700);
  mfa::MasterKeyOptions key_options;
  key_options.path = key_file;
  key_options.extra_owner = geteuid();
  auto key = mfa::load_master_key(key_options);
  if (!key.ok()) {
    fprintf(stderr, "master key: %s\n", key.error().message.c_str());
    return 1;
  }
  auto sealer = mfa::Sealer::create(key->span());
  if (!sealer.ok())
    return 1;
  mfa::SystemClock clock;
  auto store = mfa::SqliteStore::open(state_dir + "/mfad.db", clock);
  if (!store.ok()) {
    fprintf(stderr, "database: %s\n", store.error().message.c_str());
    return 1;
  }
  const std::string params = mfa::format_totp_params(mfa::TotpParams{});
  const mfa::SystemUserDirectory directory;
  for (int i = 0; i < users; ++i) {
    const std::string name = mfa::bench::bench_user(i);
    auto seed = mfa::bench::bench_seed(name);
    // mfad keys records by account (docs/security-model.md, "Accounts, not names").
    const auto uid = uid_base >= 0 ? std::optional<uid_t>(static_cast<uid_t>(uid_base + i))
                                   : directory.uid_of(name);
    if (!uid) {
      fprintf(stderr, "%s is not a user NSS knows (run-daemon-bench.sh creates them)\n",
              name.c_str());
      return 1;
    }
    const std::string user = mfa::account_key(*uid);
    auto sealed = sealer->seal(seed, user, "totp");
    if (!sealed.ok())
      return 1;
    mfa::FactorRecord record;
    record.method = mfa::Method::kTotp;
    record.sealed = std::move(sealed).value();
    record.params = params;
    record.created_usec = clock.realtime_usec();
    if (auto st = (*store)->put_factor(user, record); !st.ok()) {
      fprintf(stderr, "put_factor: %s\n", st.error().message.c_str());
      return 1;
    }
    if (i % 5000 == 4999) {
      if (auto st = (*store)->flush(); !st.ok())
        return 1;
    }
  }
  if (auto st = (*store)->flush(); !st.ok()) {
    fprintf(stderr, "flush: %s\n", st.error().message.c_str());
    return 1;
  }
  printf("seeded %d users\n", users);
  return 0;
}

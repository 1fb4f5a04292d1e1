// Login load against a running mfad: each client (a thread with its own bus connection, as a PAM
// stack would have) runs BeginAuthentication + Verify + EndAuthentication with a valid TOTP code
// for its share of the seeded users, one login per user. Prints logins/s, p50 and p99.
//   mfad-bench-login --bus-address ADDRESS --users N [--clients 16] [--ping] [--first K]
// --ping replaces the three calls by three org.freedesktop.DBus.Peer.Ping round trips to mfad
// (answered by sd-bus itself): the floor that the bus and the client impose on a login, the anchor
// the login figures are read against.
//   [--first K]: start at seeded user K, so that runs in one time step use disjoint users.
//   [--rounds R]: each user logs in R times, with the codes of R successive steps ending at the
//   current one (mfad's TOTP Window must reach R - 1 steps back): after the first round, the
//   user database answers from mfad's cache, as on a host whose users log in again and again.
#include <getopt.h>
#include <systemd/sd-bus.h>
#include <time.h>

#include <algorithm>
#include <cstdarg>
#include <cstring>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <thread>
#include <vector>

#include "common/dbus_names.hpp"
#include "common/otp.hpp"
#include "bench_client.hpp"
#include "bench_seed.hpp"

namespace {

using mfa::bench::now_usec;

struct ClientResult {
  std::vector<uint32_t> latencies_usec;
  int failures = 0;
  std::string first_error;
};

bool call(sd_bus* bus, const char* member, sd_bus_message** reply, ClientResult* out,
          const char* types, ...) {
  sd_bus_message* m = nullptr;
  int r = sd_bus_message_new_method_call(bus, &m, mfa::dbus::kBusName, mfa::dbus::kObjectPath,
                                         mfa::dbus::kInterface, member);
  if (r >= 0) {
    va_list ap;
    va_start(ap, types);
    r = sd_bus_message_appendv(m, types, ap);
    va_end(ap);
  }
  sd_bus_error error = SD_BUS_ERROR_NULL;
  if (r >= 0)
    r = sd_bus_call(bus, m, 10 * 1000000, &error, reply);
  sd_bus_message_unref(m);
  if (r < 0) {
    if (out->first_error.empty())
      out->first_error = mfa::bench::call_error(member, r, error);
    sd_bus_error_free(&error);
    return false;
  }
  sd_bus_error_free(&error);
  return true;
}

bool ping(sd_bus* bus, ClientResult* out) {
  sd_bus_error error = SD_BUS_ERROR_NULL;
  int r = sd_bus_call_method(bus, mfa::dbus::kBusName, mfa::dbus::kObjectPath,
                             "org.freedesktop.DBus.Peer", "Ping", &error, nullptr, "");
  if (r < 0 && out->first_error.empty())
    out->first_error = std::string("Ping: ") + (error.name ? error.name : strerror(-r));
  sd_bus_error_free(&error);
  return r >= 0;
}

void run_client(const std::string& address, int first, int last, bool ping_only, int rounds,
                int64_t first_step, ClientResult* out) {
  sd_bus* bus = nullptr;
  if (int r = mfa::bench::connect_bus(address, &bus); r < 0) {
    out->first_error = std::string("connect: ") + strerror(-r);
    out->failures = last - first;
    return;
  }
  if (last <= first) {
    sd_bus_flush_close_unref(bus);
    return;
  }
  out->latencies_usec.reserve(static_cast<size_t>(last - first) * static_cast<size_t>(rounds));
  for (int n = 0; n < (last - first) * rounds; ++n) {
    const int i = first + n % (last - first);
    const int64_t step = first_step + n / (last - first);
    const std::string user = mfa::bench::bench_user(i);
    const auto seed = mfa::bench::bench_seed(user);
    const uint64_t t0 = now_usec();
    if (ping_only) {
      if (ping(bus, out) && ping(bus, out) && ping(bus, out))
        out->latencies_usec.push_back(static_cast<uint32_t>(now_usec() - t0));
      else
        ++out->failures;
      continue;
    }
    sd_bus_message* reply = nullptr;
    bool ok = call(bus, "BeginAuthentication", &reply, out, "sa{ss}", user.c_str(), 2, "service",
                   "bench", "rhost", "127.0.0.1");
    const char* challenge = nullptr;
    std::string challenge_copy;
    if (ok && sd_bus_message_read(reply, "s", &challenge) >= 0)
      challenge_copy = challenge;
    sd_bus_message_unref(reply);
    reply = nullptr;
    if (ok) {
      const mfa::TotpParams params;
      auto code = mfa::totp(seed, rounds > 1 ? step * params.period : time(nullptr), params);
      ok = call(bus, "Verify", &reply, out, "ss", challenge_copy.c_str(), code.c_str());
      sd_bus_message_unref(reply);
      reply = nullptr;
    }
    if (ok) {
      ok = call(bus, "EndAuthentication", &reply, out, "s", challenge_copy.c_str());
      sd_bus_message_unref(reply);
    }
    if (ok) {
      out->latencies_usec.push_back(static_cast<uint32_t>(now_usec() - t0));
    } else {
      ++out->failures;
    }
  }
  sd_bus_flush_close_unref(bus);
}

}  // namespace

int main(int argc, char** argv) {
  std::string address;
  int users = 20000;
  int clients = 16;
  bool ping_only = false;
  int first_user = 0;
  int rounds = 1;
  static const struct option kOptions[] = {
      {"rounds", required_argument, nullptr, 'r'},
      {"ping", no_argument, nullptr, 'p'},
      {"first", required_argument, nullptr, 'f'},
      {"bus-address", required_argument, nullptr, 'a'},
      {"users", required_argument, nullptr, 'n'},
      {"clients", required_argument, nullptr, 'c'},
      {nullptr, 0, nullptr, 0},
  };
  int c;
  while ((c = getopt_long(argc, argv, "", kOptions, nullptr)) != -1) {
    switch (c) {
      case 'a':
        address = optarg;
        break;
      case 'n':
        users = atoi(optarg);
        break;
      case 'c':
        clients = atoi(optarg);
        break;
      case 'p':
        ping_only = true;
        break;
      case 'f':
        first_user = atoi(optarg);
        break;
      case 'r':
        rounds = atoi(optarg);
        break;
      default:
        return 2;
    }
  }
  if (address.empty() || users <= 0 || clients <= 0 || clients > 1024 || first_user < 0 ||
      rounds <= 0 || rounds > 100) {
    fprintf(stderr, "usage: mfad-bench-login --bus-address ADDRESS --users N [--clients C]\n");
    return 2;
  }
  std::vector<ClientResult> results(static_cast<size_t>(clients));
  std::vector<std::thread> threads;
  const int64_t first_step =
      static_cast<int64_t>(time(nullptr)) / mfa::TotpParams{}.period - (rounds - 1);
  const uint64_t start = now_usec();
  for (int i = 0; i < clients; ++i) {
    int first = first_user + static_cast<int>(static_cast<int64_t>(users) * i / clients);
    int last = first_user + static_cast<int>(static_cast<int64_t>(users) * (i + 1) / clients);
    threads.emplace_back(run_client, address, first, last, ping_only, rounds, first_step,
                         &results[static_cast<size_t>(i)]);
  }
  for (auto& t : threads)
    t.join();
  const double seconds = static_cast<double>(now_usec() - start) / 1e6;

  std::vector<uint32_t> all;
  int failures = 0;
  std::string first_error;
  for (auto& r : results) {
    all.insert(all.end(), r.latencies_usec.begin(), r.latencies_usec.end());
    failures += r.failures;
    if (first_error.empty())
      first_error = r.first_error;
  }
  std::sort(all.begin(), all.end());
  auto pct = [&](double p) -> double {
    if (all.empty())
      return 0;
    size_t idx = std::min(all.size() - 1, static_cast<size_t>(p * static_cast<double>(all.size())));
    return all[idx] / 1000.0;
  };
  const char* what = ping_only ? "pings" : "logins";
  printf("clients=%d %s=%zu failures=%d seconds=%.2f\n", clients, what, all.size(), failures,
         seconds);
  printf("%s/s=%.0f p50=%.2fms p99=%.2fms max=%.2fms\n", what,
         static_cast<double>(all.size()) / seconds, pct(0.50), pct(0.99), pct(1.0));
  if (failures)
    fprintf(stderr, "first failure: %s\n", first_error.c_str());
  return failures ? 1 : 0;
}

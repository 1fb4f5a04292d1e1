// Session load against a running mfad: each client (a thread with its own bus connection, as a
// PAM stack would have) runs OpenSession + CloseSession for USER with itself as the leader, and
// times each call separately. Prints the p50, p99 and max of each method.
//   mfad-bench-sessions --bus-address ADDRESS [--user root] [--sessions N] [--clients C]
#include <getopt.h>
#include <systemd/sd-bus.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include "common/dbus_names.hpp"
#include "bench_client.hpp"

namespace {

using mfa::bench::now_usec;

struct ClientResult {
  std::vector<uint32_t> open_usec;
  std::vector<uint32_t> close_usec;
  int failures = 0;
  std::string first_error;
};

void fail(ClientResult* out, const char* member, int r, const sd_bus_error& error) {
  ++out->failures;
  if (out->first_error.empty())
    out->first_error = mfa::bench::call_error(member, r, error);
}

void run_client(const std::string& address, const std::string& user, int sessions,
                ClientResult* out) {
  sd_bus* bus = nullptr;
  int r = mfa::bench::connect_bus(address, &bus);
  if (r < 0) {
    out->failures = sessions;
    out->first_error = std::string("connect: ") + strerror(-r);
    return;
  }
  const std::string pid = std::to_string(getpid());
  for (int i = 0; i < sessions; ++i) {
    sd_bus_error error = SD_BUS_ERROR_NULL;
    sd_bus_message* reply = nullptr;
    uint64_t t0 = now_usec();
    r = sd_bus_call_method(bus, mfa::dbus::kBusName, mfa::dbus::kObjectPath, mfa::dbus::kInterface,
                           "OpenSession", &error, &reply, "sa{ss}", user.c_str(), 5, "service",
                           "bench", "rhost", "192.0.2.1", "tty", "pts/0", "ruser", "", "leader_pid",
                           pid.c_str());
    uint64_t t1 = now_usec();
    const char* id = nullptr;
    if (r >= 0)
      r = sd_bus_message_read(reply, "s", &id);
    if (r < 0) {
      fail(out, "OpenSession", r, error);
      sd_bus_error_free(&error);
      sd_bus_message_unref(reply);
      continue;
    }
    out->open_usec.push_back(static_cast<uint32_t>(t1 - t0));
    std::string session_id = id;
    sd_bus_message_unref(reply);
    reply = nullptr;
    t0 = now_usec();
    r = sd_bus_call_method(bus, mfa::dbus::kBusName, mfa::dbus::kObjectPath, mfa::dbus::kInterface,
                           "CloseSession", &error, &reply, "s", session_id.c_str());
    t1 = now_usec();
    if (r < 0)
      fail(out, "CloseSession", r, error);
    else
      out->close_usec.push_back(static_cast<uint32_t>(t1 - t0));
    sd_bus_error_free(&error);
    sd_bus_message_unref(reply);
  }
  sd_bus_flush_close_unref(bus);
}

void report(const char* name, std::vector<uint32_t> v) {
  if (v.empty()) {
    printf("%s: no calls\n", name);
    return;
  }
  std::sort(v.begin(), v.end());
  auto at = [&](double q) { return v[std::min(v.size() - 1, static_cast<size_t>(q * v.size()))]; };
  printf("%s: calls=%zu p50=%.3fms p99=%.3fms max=%.3fms\n", name, v.size(), at(0.50) / 1000.0,
         at(0.99) / 1000.0, v.back() / 1000.0);
}

}  // namespace

int main(int argc, char** argv) {
  std::string address;
  std::string user = "root";
  int sessions = 1000;
  int clients = 1;
  static const struct option kOptions[] = {{"bus-address", required_argument, nullptr, 'a'},
                                           {"user", required_argument, nullptr, 'u'},
                                           {"sessions", required_argument, nullptr, 'n'},
                                           {"clients", required_argument, nullptr, 'c'},
                                           {nullptr, 0, nullptr, 0}};
  int c;
  while ((c = getopt_long(argc, argv, "", kOptions, nullptr)) != -1) {
    switch (c) {
      case 'a':
        address = optarg;
        break;
      case 'u':
        user = optarg;
        break;
      case 'n':
        sessions = atoi(optarg);
        break;
      case 'c':
        clients = atoi(optarg);
        break;
      default:
        return 2;
    }
  }
  if (address.empty() || sessions <= 0 || clients <= 0) {
    fprintf(stderr,
            "usage: mfad-bench-sessions --bus-address ADDRESS [--user U] [--sessions N] "
            "[--clients C]\n");
    return 2;
  }
  std::vector<ClientResult> results(static_cast<size_t>(clients));
  std::vector<std::thread> threads;
  const int per_client = std::max(1, sessions / clients);
  uint64_t start = now_usec();
  for (int i = 0; i < clients; ++i)
    threads.emplace_back(run_client, address, user, per_client, &results[static_cast<size_t>(i)]);
  for (auto& t : threads)
    t.join();
  double seconds = static_cast<double>(now_usec() - start) / 1e6;
  std::vector<uint32_t> opens;
  std::vector<uint32_t> closes;
  int failures = 0;
  std::string first_error;
  for (const auto& r : results) {
    opens.insert(opens.end(), r.open_usec.begin(), r.open_usec.end());
    closes.insert(closes.end(), r.close_usec.begin(), r.close_usec.end());
    failures += r.failures;
    if (first_error.empty())
      first_error = r.first_error;
  }
  printf("clients=%d sessions=%zu failures=%d seconds=%.2f\n", clients, opens.size(), failures,
         seconds);
  report("OpenSession", opens);
  report("CloseSession", closes);
  if (failures)
    fprintf(stderr, "first failure: %s\n", first_error.c_str());
  return failures ? 1 : 0;
}

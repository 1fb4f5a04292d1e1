// What the load generators (mfad-bench-login, mfad-bench-sessions) share: a monotonic clock in
// microseconds, a client connection to the benchmark's bus, and how a failed call is described.
#pragma once

#include <systemd/sd-bus.h>
#include <time.h>

#include <cstdint>
#include <cstring>
#include <string>

namespace mfa::bench {

inline uint64_t now_usec() {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<uint64_t>(ts.tv_sec) * 1000000 + static_cast<uint64_t>(ts.tv_nsec) / 1000;
}

// A started bus client connection to ADDRESS in *bus; a negative errno on failure (then *bus is
// unreferenced and null).
inline int connect_bus(const std::string& address, sd_bus** bus) {
  *bus = nullptr;
  int r = sd_bus_new(bus);
  if (r >= 0)
    r = sd_bus_set_address(*bus, address.c_str());
  if (r >= 0)
    r = sd_bus_set_bus_client(*bus, 1);
  if (r >= 0)
    r = sd_bus_start(*bus);
  if (r < 0)
    *bus = sd_bus_unref(*bus);
  return r;
}

// "Member: org.Error.Name message", or the errno's text when the call did not reach mfad.
inline std::string call_error(const char* member, int r, const sd_bus_error& error) {
  return std::string(member) + ": " + (error.name ? error.name : strerror(-r)) +
         (error.message ? std::string(" ") + error.message : "");
}

}  // namespace mfa::bench

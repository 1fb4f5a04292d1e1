// The benchmark's users and their TOTP seeds, known to the seeding tool and the load generator
// alike without a file between them. Benchmark only: these seeds are public by construction.
#pragma once

#include <array>
#include <cstdint>
#include <cstring>
#include <span>
#include <string>

#include "common/crypto.hpp"

namespace mfa::bench {

inline std::string bench_user(int i) {
  return "mfabench" + std::to_string(i);
}

// 20 bytes: the first bytes of SHA-256("mfad-bench:" + user).
inline std::array<uint8_t, 20> bench_seed(const std::string& user) {
  std::string input = "mfad-bench:" + user;
  auto digest = sha256({reinterpret_cast<const uint8_t*>(input.data()), input.size()});
  std::array<uint8_t, 20> seed{};
  std::memcpy(seed.data(), digest.data(), seed.size());
  return seed;
}

}  // namespace mfa::bench

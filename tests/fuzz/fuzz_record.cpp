// The decoder of authenticated fleet records (daemon/fleet/record_mac.cpp, user_state.cpp): what
// anyone with the Redis password can put in front of every host. Input: a key name, a NUL, the
// value. The value is opened under a fixed key (and, so that the payload parsers are reached,
// the payload of a value opened is also decoded as a state and a factor record); a value sealed
// from the input's payload must open again.
#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>

#include "fleet/keys.hpp"
#include "fleet/record_mac.hpp"
#include "fleet/user_state.hpp"

namespace {

const mfa::fleet::RecordMac& record_mac() {
  static const mfa::fleet::RecordMac mac = [] {
    uint8_t master[32];
    std::memset(master, 7, sizeof master);
    return std::move(mfa::fleet::RecordMac::derive(master, "fuzz-host")).value();
  }();
  return mac;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view input(reinterpret_cast<const char*>(data), size);
  const size_t nul = input.find('\0');
  const std::string_view key = nul == std::string_view::npos ? "k" : input.substr(0, nul);
  const std::string_view value = nul == std::string_view::npos ? input : input.substr(nul + 1);
  const auto& mac = record_mac();
  mfa::fleet::SignedRecord record;
  (void)mac.open(key, value, &record);
  // The payload parsers, on the raw value (as if its MAC had verified).
  (void)mfa::fleet::decode_state(value);
  (void)mfa::fleet::decode_factor("totp", value);
  // Round trip: whatever the payload, a sealed record opens to it.
  if (value.size() <= mfa::fleet::kMaxRecordValue / 2) {
    const std::string sealed = mac.seal(key, size, value);
    mfa::fleet::SignedRecord back;
    if (mac.open(key, sealed, &back) != mfa::fleet::RecordProblem::kNone || back.payload != value ||
        back.counter != size)
      __builtin_trap();
  }
  if (auto state = mfa::fleet::decode_state(value)) {
    const std::string again = mfa::fleet::encode_state(*state);
    auto twice = mfa::fleet::decode_state(again);
    if (!twice || !mfa::fleet::same_state(*twice, *state))
      __builtin_trap();
  }
  return 0;
}

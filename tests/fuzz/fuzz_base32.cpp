// base32_decode on arbitrary text, and encode → decode on arbitrary bytes, must never crash and
// must round-trip.
#include <cstdlib>
#include <cstring>
#include <string>
#include <string_view>

#include "common/base32.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  auto decoded = mfa::base32_decode(text);
  if (decoded.ok()) {
    // Whatever decoded re-encodes to something that decodes to the same bytes.
    const std::string again = mfa::base32_encode(decoded->span());
    auto twice = mfa::base32_decode(again);
    if (!twice.ok() || twice->size() != decoded->size() ||
        (decoded->size() && std::memcmp(twice->data(), decoded->data(), decoded->size()) != 0))
      std::abort();
  } else if (size <= 1024) {
    // Refusals are kInvalidArgument with a base32 message, never anything else.
    if (decoded.error().code != mfa::Errc::kInvalidArgument)
      std::abort();
  }
  // Bytes → text → bytes (bounded by the decoder's 1 KiB input limit).
  if (size <= 640) {
    const std::string encoded = mfa::base32_encode({data, size});
    auto back = mfa::base32_decode(encoded);
    if (!back.ok() || back->size() != size || (size && std::memcmp(back->data(), data, size) != 0))
      std::abort();
  }
  return 0;
}

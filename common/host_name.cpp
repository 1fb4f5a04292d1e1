#include "common/host_name.hpp"

#include <unistd.h>

#include <array>
#include <cerrno>
#include <cstring>

namespace mfa {

Result<std::string> host_name() {
  // Linux's limit is 64 bytes (HOST_NAME_MAX); the last byte stays NUL even if a name is cut.
  std::array<char, 256> buf{};
  if (gethostname(buf.data(), buf.size() - 1) != 0)
    return make_error(Errc::kIo, std::string("cannot read the host name: ") + std::strerror(errno));
  return std::string(buf.data());
}

}  // namespace mfa

// Whether a unix: Redis socket is Redis's own (docs/fleet.md, "Transport"): mfad sends it the
// Redis password and takes its answers as the fleet's truth, so a socket that another local user
// could have put at that path (Redis down, a writable directory, a symbolic link) is refused.
//
// The rule: every directory on the path is a real directory (no symbolic link), owned by a
// trusted owner, and not writable by group or others, except an ancestor with the sticky bit
// (/tmp); the socket itself is a socket, not a link, owned by a trusted owner, and not writable
// (connectable) by others; once connected, the process listening on it runs as a trusted owner
// (SO_PEERCRED: the check that no race between the look and the connect can fool). Trusted
// owners: root, mfad's own user and the Redis service user ("redis", when it exists).
#pragma once

#include <sys/types.h>

#include <string>
#include <vector>

#include "common/result.hpp"

namespace mfa {

// Resolved once, at start (a user lookup may go to NSS: never from the event loop).
std::vector<uid_t> redis_socket_owners();

// kIo with a message that names the path, what is wrong and the fix.
Status check_redis_socket_path(const std::string& path, const std::vector<uid_t>& owners);
Status check_redis_socket_peer(int fd, const std::string& path, const std::vector<uid_t>& owners);

}  // namespace mfa

#include "fleet/unix_socket_check.hpp"

#include <pwd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

namespace mfa {

namespace {

constexpr const char* kRedisServiceUser = "redis";  // Debian's redis-server package

bool trusted(uid_t uid, const std::vector<uid_t>& owners) {
  return std::find(owners.begin(), owners.end(), uid) != owners.end();
}

Error refuse(const std::string& path, const std::string& problem) {
  return make_error(Errc::kIo, "the Redis socket " + path + ": " + problem);
}

std::string mode_text(mode_t mode) {
  char buf[8];
  snprintf(buf, sizeof(buf), "%04o", static_cast<unsigned>(mode & 07777));
  return buf;
}

}  // namespace

std::vector<uid_t> redis_socket_owners() {
  std::vector<uid_t> owners{0};
  if (geteuid() != 0)
    owners.push_back(geteuid());
  struct passwd pw;
  struct passwd* found = nullptr;
  char buf[4096];
  if (getpwnam_r(kRedisServiceUser, &pw, buf, sizeof(buf), &found) == 0 && found != nullptr &&
      !trusted(found->pw_uid, owners))
    owners.push_back(found->pw_uid);
  return owners;
}

Status check_redis_socket_path(const std::string& path, const std::vector<uid_t>& owners) {
  if (path.empty() || path[0] != '/')
    return refuse(path, "not an absolute path");
  const size_t last = path.rfind('/');
  // Every directory from / down to the socket's own.
  for (size_t end = 0; end != std::string::npos && end <= last;
       end = end == last ? std::string::npos : path.find('/', end + 1)) {
    const std::string dir = end == 0 ? std::string("/") : path.substr(0, end);
    struct stat st;
    if (lstat(dir.c_str(), &st) < 0)
      return refuse(path, dir + " cannot be examined: " + strerror(errno));
    if (S_ISLNK(st.st_mode)) {
      return refuse(path, dir +
                              " is a symbolic link: write the path it leads to (e.g. /run, "
                              "not /var/run)");
    }
    if (!S_ISDIR(st.st_mode))
      return refuse(path, dir + " is not a directory");
    if (!trusted(st.st_uid, owners)) {
      return refuse(path, dir + " is owned by uid " + std::to_string(st.st_uid) +
                              ": its directories must belong to root or the redis user");
    }
    const bool writable = (st.st_mode & (S_IWGRP | S_IWOTH)) != 0;
    const bool own_directory = end == last;
    if (writable && (own_directory || !(st.st_mode & S_ISVTX))) {
      return refuse(path, dir + " is writable by group or others (mode " + mode_text(st.st_mode) +
                              "): another user could put a socket of their own there; "
                              "chmod go-w");
    }
  }
  struct stat st;
  if (lstat(path.c_str(), &st) < 0)
    return refuse(path, strerror(errno));
  if (S_ISLNK(st.st_mode))
    return refuse(path, "is a symbolic link: write the path of the socket itself");
  if (!S_ISSOCK(st.st_mode))
    return refuse(path, "is not a socket");
  if (!trusted(st.st_uid, owners)) {
    return refuse(path, "is owned by uid " + std::to_string(st.st_uid) +
                            ", not by root or the redis user: not Redis's socket");
  }
  if (st.st_mode & S_IWOTH) {
    return refuse(path, "any local user may connect to it (mode " + mode_text(st.st_mode) +
                            "): set unixsocketperm 700 or 770 in redis.conf");
  }
  return {};
}

Status check_redis_socket_peer(int fd, const std::string& path, const std::vector<uid_t>& owners) {
  struct ucred cred {};
  socklen_t len = sizeof(cred);
  if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) < 0)
    return refuse(path, std::string("cannot learn who listens on it: ") + strerror(errno));
  if (!trusted(cred.uid, owners)) {
    return refuse(path, "the process listening on it runs as uid " + std::to_string(cred.uid) +
                            ", not as root or the redis user: not Redis");
  }
  return {};
}

}  // namespace mfa

#include "bus/caller.hpp"

#include <fcntl.h>
#include <poll.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <charconv>
#include <string>

#include "common/handles.hpp"

namespace mfa {

std::optional<BusRefusal> CallerCache::identify(sd_bus_message* m, Caller* ret) {
  const char* sender = sd_bus_message_get_sender(m);
  if (sender == nullptr || sender[0] != ':') {
    return BusRefusal{SD_BUS_ERROR_ACCESS_DENIED, "Cannot identify the caller."};
  }
  if (auto it = peers_.find(sender); it != peers_.end()) {
    ret->uid = it->second.euid;
    ret->pid = it->second.pid;
    ret->bus_name = sender;
    return std::nullopt;
  }

  sd_bus_creds* raw = nullptr;
  int r = sd_bus_query_sender_creds(m, SD_BUS_CREDS_EUID | SD_BUS_CREDS_PID, &raw);
  BusCredsPtr creds(raw);
  if (r < 0)
    return BusRefusal{SD_BUS_ERROR_ACCESS_DENIED, "Cannot identify the caller."};
  if (sd_bus_creds_get_augmented_mask(creds.get()) & SD_BUS_CREDS_EUID) {
    return BusRefusal{SD_BUS_ERROR_ACCESS_DENIED,
                      "The caller's identity is not vouched for by the bus."};
  }
  uid_t euid = 0;
  if (sd_bus_creds_get_euid(creds.get(), &euid) < 0) {
    return BusRefusal{SD_BUS_ERROR_ACCESS_DENIED, "Cannot identify the caller."};
  }
  pid_t pid = 0;
  if (sd_bus_creds_get_pid(creds.get(), &pid) < 0)
    pid = 0;  // audit only

  // Bounded: a flood of short-lived peers empties the cache rather than growing it.
  if (peers_.size() >= kMaxPeers)
    peers_.clear();
  peers_.emplace(sender, Peer{euid, pid});
  ret->uid = euid;
  ret->pid = pid;
  ret->bus_name = sender;
  return std::nullopt;
}

bool CallerCache::known(sd_bus_message* m) const {
  const char* sender = sd_bus_message_get_sender(m);
  return sender != nullptr && peers_.count(sender) != 0;
}

void CallerCache::learn(const char* unique_name, uid_t euid, pid_t pid) {
  if (peers_.size() >= kMaxPeers)
    peers_.clear();
  peers_.insert_or_assign(unique_name, Peer{euid, pid});
}

namespace {

// /proc/PID/NAME as a decimal uint32 (sessionid, loginuid); nullopt when unreadable.
std::optional<uint32_t> read_proc_u32(pid_t pid, const char* name) {
  const std::string path = "/proc/" + std::to_string(pid) + "/" + name;
  Fd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOCTTY));
  if (!fd.valid())
    return std::nullopt;
  char buf[16] = {};
  const ssize_t n = ::read(fd.get(), buf, sizeof buf - 1);
  if (n <= 0)
    return std::nullopt;
  uint32_t value = 0;
  auto [end, ec] = std::from_chars(buf, buf + n, value);
  if (ec != std::errc() || end == buf)
    return std::nullopt;
  return value;
}

}  // namespace

void read_audit_ids(pid_t pid, uint32_t* ret_session, uint32_t* ret_login_uid) {
  *ret_session = Caller::kUnsetAuditId;
  *ret_login_uid = Caller::kUnsetAuditId;
  if (pid <= 1)
    return;
  // The pid the bus recorded at connect (SO_PEERCRED), pinned by a pidfd while /proc is read; a
  // process that exited meanwhile (its pid free for reuse) gives nothing.
  Fd pidfd(static_cast<int>(syscall(SYS_pidfd_open, pid, 0)));
  if (!pidfd.valid())
    return;
  const auto session = read_proc_u32(pid, "sessionid");
  const auto login_uid = read_proc_u32(pid, "loginuid");
  struct pollfd p = {pidfd.get(), POLLIN, 0};
  if (!session || !login_uid || poll(&p, 1, 0) != 0)
    return;
  *ret_session = *session;
  *ret_login_uid = *login_uid;
}

void CallerCache::forget(std::string_view unique_name) {
  peers_.erase(std::string(unique_name));
}

}  // namespace mfa

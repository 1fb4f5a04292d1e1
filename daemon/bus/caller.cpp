#include "bus/caller.hpp"

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

void CallerCache::forget(std::string_view unique_name) {
  peers_.erase(std::string(unique_name));
}

}  // namespace mfa

// A call from a sender mfad does not know yet waits for the bus driver's answer to an
// asynchronous GetConnectionCredentials, and then goes through its gate and handler as it would
// have at once (bus/caller.hpp). The event loop meanwhile serves everyone else: pam_mfa.so makes a
// new connection for each call after a prompt, and a thousand people answering at once would
// otherwise hold mfad for a thousand round trips through a bus busy with their handshakes.
#include <cerrno>
#include <cstring>
#include <exception>
#include <new>
#include <string>
#include <utility>
#include <vector>

#include "bus/manager.hpp"
#include "common/dbus_names.hpp"
#include "core/log.hpp"

namespace mfa {

namespace {

constexpr char kCannotIdentify[] = "Cannot identify the caller.";

// UnixUserID and ProcessID of a GetConnectionCredentials reply; false when UnixUserID is missing.
bool read_credentials(sd_bus_message* reply, uid_t* ret_uid, pid_t* ret_pid) {
  bool have_uid = false;
  *ret_pid = 0;
  if (sd_bus_message_enter_container(reply, 'a', "{sv}") <= 0)
    return false;
  for (;;) {
    int r = sd_bus_message_enter_container(reply, 'e', "sv");
    if (r <= 0)
      return r == 0 && have_uid;
    const char* key = nullptr;
    if (sd_bus_message_read(reply, "s", &key) <= 0)
      return false;
    uint32_t value = 0;
    if (strcmp(key, "UnixUserID") == 0 || strcmp(key, "ProcessID") == 0) {
      if (sd_bus_message_read(reply, "v", "u", &value) <= 0)
        return false;
      if (key[0] == 'U') {
        *ret_uid = static_cast<uid_t>(value);
        have_uid = true;
      } else {
        *ret_pid = static_cast<pid_t>(value);
      }
    } else if (sd_bus_message_skip(reply, "v") < 0) {
      return false;
    }
    if (sd_bus_message_exit_container(reply) < 0)
      return false;
  }
}

// What sd-bus does with a vtable handler's error (bus_maybe_reply_error).
void reply_outcome(sd_bus_message* m, int r, sd_bus_error* error) {
  if (sd_bus_error_is_set(error))
    (void)sd_bus_reply_method_error(m, error);
  else if (r < 0)
    (void)sd_bus_reply_method_errno(m, r, nullptr);
}

}  // namespace

int ManagerBus::identify_first(sd_bus_message* m, Handler handler, bool root_only) {
  if (stopping_ || callers_.known(m))
    return 0;
  const char* sender = sd_bus_message_get_sender(m);
  if (sender == nullptr || sender[0] != ':')
    return 0;  // the gate refuses it
  if (auto it = lookups_.find(sender); it != lookups_.end()) {
    Lookup& lookup = *it->second;
    if (lookup.calls.size() >= kMaxCallsPerLookup) {
      int r = sd_bus_reply_method_errorf(m, dbus::kErrorLimitExceeded,
                                         "Too many calls before mfad knows who is calling.");
      return r < 0 ? r : 1;
    }
    lookup.calls.push_back({BusMessagePtr(sd_bus_message_ref(m)), handler, root_only});
    return 1;
  }
  if (lookups_.size() >= kMaxLookups)
    return 0;  // asked synchronously by the gate
  auto lookup = std::make_unique<Lookup>();
  lookup->self = this;
  lookup->sender = sender;
  sd_bus_slot* slot = nullptr;
  int r = sd_bus_call_method_async(bus_, &slot, "org.freedesktop.DBus", "/org/freedesktop/DBus",
                                   "org.freedesktop.DBus", "GetConnectionCredentials",
                                   &ManagerBus::on_credentials, lookup.get(), "s", sender);
  if (r < 0)
    return 0;
  lookup->slot.reset(slot);
  lookup->calls.push_back({BusMessagePtr(sd_bus_message_ref(m)), handler, root_only});
  lookups_.emplace(lookup->sender, std::move(lookup));
  return 1;
}

int ManagerBus::on_credentials(sd_bus_message* reply, void* userdata, sd_bus_error* /*ret*/) {
  auto* lookup = static_cast<Lookup*>(userdata);
  ManagerBus* self = lookup->self;
  auto it = self->lookups_.find(lookup->sender);
  if (it == self->lookups_.end() || it->second.get() != lookup)
    return 0;
  std::unique_ptr<Lookup> done = std::move(it->second);
  self->lookups_.erase(it);
  uid_t uid = static_cast<uid_t>(-1);
  pid_t pid = 0;
  const bool known =
      !sd_bus_message_is_method_error(reply, nullptr) && read_credentials(reply, &uid, &pid);
  try {
    if (known)
      self->callers_.learn(done->sender.c_str(), uid, pid);
    for (auto& call : done->calls) {
      sd_bus_message* m = call.message.get();
      if (!known) {
        (void)sd_bus_reply_method_errorf(m, SD_BUS_ERROR_ACCESS_DENIED, "%s", kCannotIdentify);
        continue;
      }
      sd_bus_error error = SD_BUS_ERROR_NULL;
      int r = self->dispatch_identified(m, call.handler, call.root_only, &error);
      reply_outcome(m, r, &error);
      sd_bus_error_free(&error);
    }
  } catch (...) {
    MFA_LOG_ERROR("answering calls after a caller lookup failed");
  }
  return 0;
}

int ManagerBus::dispatch_identified(sd_bus_message* m, Handler handler, bool root_only,
                                    sd_bus_error* ret_error) {
  try {
    const int r = root_only ? refuse_unless_root(m) : admit_open_call(m, handler);
    if (r != 0)
      return r < 0 ? r : 0;
  } catch (const std::bad_alloc&) {
    return -ENOMEM;
  } catch (...) {
    MFA_LOG_ERROR("%s failed", sd_bus_message_get_member(m));
    return sd_bus_error_set(ret_error, dbus::kErrorInternal, "Internal error in mfad.");
  }
  return handle(m, handler, ret_error);
}

void ManagerBus::answer_lookups(const char* name, const char* message) {
  auto lookups = std::move(lookups_);
  lookups_.clear();
  for (auto& [sender, lookup] : lookups) {
    for (auto& call : lookup->calls)
      (void)sd_bus_reply_method_errorf(call.message.get(), name, "%s", message);
  }
}

}  // namespace mfa

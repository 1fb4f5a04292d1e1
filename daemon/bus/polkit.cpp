#include "bus/polkit.hpp"

#include <cerrno>
#include <cstring>
#include <utility>

#include "core/log.hpp"

namespace mfa {

namespace {

constexpr const char* kPolkitService = "org.freedesktop.PolicyKit1";
constexpr const char* kPolkitPath = "/org/freedesktop/PolicyKit1/Authority";
constexpr const char* kPolkitInterface = "org.freedesktop.PolicyKit1.Authority";
// polkit's CheckAuthorizationFlags.
constexpr uint32_t kAllowUserInteraction = 1;

}  // namespace

struct PolkitAuthority::Pending {
  PolkitAuthority* owner = nullptr;
  uint64_t id = 0;
  BusMessagePtr call;  // a reference of our own: the call stays valid until answered
  std::function<void(bool)> done;
  BusSlotPtr slot;             // the question to polkit; dropping it cancels its callback
  EventSourcePtr refused_now;  // no question could be asked: no, from the loop
};

PolkitAuthority::PolkitAuthority(sd_event* event, sd_bus* bus) : event_(event), bus_(bus) {}
PolkitAuthority::~PolkitAuthority() = default;

int PolkitAuthority::check(sd_bus_message* call, std::function<void(bool granted)> done) {
  auto owned = std::make_unique<Pending>();
  Pending& p = *owned;
  p.owner = this;
  p.id = next_id_++;
  p.call.reset(sd_bus_message_ref(call));
  p.done = std::move(done);
  pending_.emplace(p.id, std::move(owned));

  int r = -EBUSY;
  if (pending_.size() <= kMaxPending)
    r = start(p);
  if (r >= 0)
    return 0;
  note_failure(r == -EBUSY ? "too many questions pending" : strerror(-r));
  // Answered from the event loop, never from inside the handler that asked.
  sd_event_source* source = nullptr;
  r = sd_event_add_defer(event_, &source, &PolkitAuthority::on_refused_now, &p);
  if (r >= 0) {
    p.refused_now.reset(source);
    (void)sd_event_source_set_description(source, "polkit-refused");
    return 0;
  }
  pending_.erase(p.id);
  return r;
}

int PolkitAuthority::start(Pending& p) {
  const char* sender = sd_bus_message_get_sender(p.call.get());
  if (sender == nullptr)
    return -EINVAL;
  const bool interactive = sd_bus_message_get_allow_interactive_authorization(p.call.get()) > 0;
  sd_bus_message* raw = nullptr;
  int r = sd_bus_message_new_method_call(bus_, &raw, kPolkitService, kPolkitPath, kPolkitInterface,
                                         "CheckAuthorization");
  BusMessagePtr m(raw);
  if (r < 0)
    return r;
  // Subject: the caller's unique name, which polkit resolves to a uid and pid through the bus
  // itself (a pid subject would race with pid reuse, CVE-2013-4288).
  r = sd_bus_message_append(m.get(), "(sa{sv})s", "system-bus-name", 1, "name", "s", sender,
                            kPolkitActionManage);
  if (r >= 0)
    r = sd_bus_message_append(m.get(), "a{ss}", 0);
  if (r >= 0)
    r = sd_bus_message_append(m.get(), "us", interactive ? kAllowUserInteraction : 0U, "");
  if (r < 0)
    return r;
  sd_bus_slot* slot = nullptr;
  r = sd_bus_call_async(bus_, &slot, m.get(), &PolkitAuthority::on_reply, &p,
                        interactive ? kInteractiveTimeoutUsec : kTimeoutUsec);
  if (r < 0)
    return r;
  p.slot.reset(slot);
  return 0;
}

int PolkitAuthority::on_reply(sd_bus_message* reply, void* userdata, sd_bus_error* /*ret_error*/) {
  auto* p = static_cast<Pending*>(userdata);
  PolkitAuthority* self = p->owner;
  const uint64_t id = p->id;
  bool granted = false;
  try {
    if (const sd_bus_error* e = sd_bus_message_get_error(reply); e != nullptr) {
      self->note_failure(e->name);
    } else {
      int authorized = 0;
      int challenge = 0;
      int r = sd_bus_message_enter_container(reply, 'r', "bba{ss}");
      if (r >= 0)
        r = sd_bus_message_read(reply, "bb", &authorized, &challenge);
      if (r < 0) {
        self->note_failure("an answer of the wrong type");
      } else {
        granted = authorized != 0;
        self->last_failure_.clear();
      }
    }
  } catch (...) {
    granted = false;
  }
  self->complete(id, granted);
  return 0;
}

int PolkitAuthority::on_refused_now(sd_event_source* /*s*/, void* userdata) {
  auto* p = static_cast<Pending*>(userdata);
  p->owner->complete(p->id, false);
  return 0;
}

void PolkitAuthority::complete(uint64_t id, bool granted) {
  auto it = pending_.find(id);
  if (it == pending_.end())
    return;
  std::unique_ptr<Pending> p = std::move(it->second);
  pending_.erase(it);
  try {
    p->done(granted);
  } catch (...) {
    MFA_LOG_ERROR("answering a call after polkit's answer failed");
  }
}

void PolkitAuthority::abandon_all() {
  auto pending = std::exchange(pending_, {});
  for (auto& [id, p] : pending) {
    p->slot.reset();
    p->refused_now.reset();
  }
}

void PolkitAuthority::note_failure(const char* error_name) {
  if (last_failure_ == error_name)
    return;
  last_failure_ = error_name;
  if (strcmp(error_name, SD_BUS_ERROR_SERVICE_UNKNOWN) == 0 ||
      strcmp(error_name, SD_BUS_ERROR_NAME_HAS_NO_OWNER) == 0) {
    MFA_LOG_INFO("polkit is not on the bus: the admin tier is root and AdminGroup only");
    return;
  }
  MFA_LOG_WARNING("polkit did not answer (%s): the callers it would allow are refused", error_name);
}

}  // namespace mfa

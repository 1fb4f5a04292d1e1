#include "daemon/group_commit.hpp"

#include <cerrno>
#include <cstring>
#include <exception>

#include "common/dbus_names.hpp"
#include "daemon/daemon_log.hpp"

namespace mfa {

Result<std::unique_ptr<GroupCommit>> GroupCommit::create(sd_event* event, sd_bus* bus,
                                                         Store& store) {
  std::unique_ptr<GroupCommit> gc(new GroupCommit(bus, store));
  sd_event_source* source = nullptr;
  int r = sd_event_add_defer(event, &source, &GroupCommit::on_idle, gc.get());
  if (r < 0) {
    return make_error(Errc::kInternal,
                      std::string("cannot add the commit event source: ") + strerror(-r));
  }
  gc->idle_.reset(source);
  // Below the bus's I/O (normal priority): the commit waits until the loop has read every
  // request that is already there, so that they share one fsync.
  r = sd_event_source_set_priority(source, SD_EVENT_PRIORITY_IDLE);
  if (r >= 0)
    r = sd_event_source_set_enabled(source, SD_EVENT_OFF);
  if (r < 0) {
    return make_error(Errc::kInternal,
                      std::string("cannot set up the commit event source: ") + strerror(-r));
  }
  (void)sd_event_source_set_description(source, "group-commit");
  return gc;
}

GroupCommit::~GroupCommit() = default;

void GroupCommit::schedule() {
  if (idle_)
    (void)sd_event_source_set_enabled(idle_.get(), SD_EVENT_ONESHOT);
}

void GroupCommit::queue(sd_bus_message* call, BusMessagePtr reply, bool success) {
  queue_.push_back(Pending{BusMessagePtr(sd_bus_message_ref(call)), std::move(reply), success});
  schedule();
}

void GroupCommit::send(sd_bus_message* reply) {
  int r = sd_bus_send(bus_, reply, nullptr);
  // The caller may have gone away meanwhile; nothing else to do.
  if (r < 0 && r != -ENOTCONN && r != -ECONNRESET) {
    MFA_LOG_WARNING("cannot send a reply: %s", strerror(-r));
  }
}

void GroupCommit::run() {
  (void)sd_event_source_set_enabled(idle_.get(), SD_EVENT_OFF);
  Status committed = store_.flush();
  if (!queue_.empty())
    ++commits_;
  if (!committed.ok()) {
    MFA_LOG_ERROR("database commit failed, %zu replies turned into errors: %s", queue_.size(),
                  committed.error().message.c_str());
  }
  std::vector<Pending> batch;
  batch.swap(queue_);
  replies_ += batch.size();
  for (Pending& p : batch) {
    if (!committed.ok() && p.success) {
      sd_bus_message* error_reply = nullptr;
      int r = sd_bus_message_new_method_errorf(
          p.call.get(), &error_reply, dbus::kErrorStorageFailure,
          "The change could not be saved (database error); nothing was changed. Try again.");
      if (r < 0) {
        MFA_LOG_ERROR("cannot build an error reply: %s", strerror(-r));
        continue;  // the caller gets no reply (a timeout), never a false success
      }
      BusMessagePtr owned(error_reply);
      send(owned.get());
      continue;
    }
    send(p.reply.get());
  }
}

int GroupCommit::on_idle(sd_event_source* /*source*/, void* userdata) {
  try {
    static_cast<GroupCommit*>(userdata)->run();
  } catch (const std::exception& e) {
    MFA_LOG_ERROR("commit failed: %s", e.what());
  } catch (...) {
    MFA_LOG_ERROR("commit failed");
  }
  return 0;
}

}  // namespace mfa

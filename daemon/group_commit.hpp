// Group commit (DESIGN §6): replies of handlers that wrote to the store wait for the commit.
//
// A handler that leaves the store inside a transaction queues its reply here instead of sending
// it. An sd-event defer source at SD_EVENT_PRIORITY_IDLE runs once the loop has no more pending
// bus input (the bus's own sources run at normal priority first), commits once with
// Store::flush(), and then sends every queued reply. If the commit failed, each success reply is
// replaced by org.mfad1.Error.StorageFailure: no success reply ever leaves before its commit.
//
// There is no extra coalescing delay: while one commit's fsync runs, the next batch piles up in
// the socket (the daemon benchmark measured ~15 replies per commit with 16 clients, with or
// without a delay), so waiting longer would buy nothing but latency.
#pragma once

#include <systemd/sd-bus.h>
#include <systemd/sd-event.h>

#include <cstdint>
#include <memory>
#include <vector>

#include "common/handles.hpp"
#include "common/result.hpp"
#include "daemon/store.hpp"

namespace mfa {

class GroupCommit {
 public:
  static Result<std::unique_ptr<GroupCommit>> create(sd_event* event, sd_bus* bus, Store& store);
  ~GroupCommit();
  GroupCommit(const GroupCommit&) = delete;
  GroupCommit& operator=(const GroupCommit&) = delete;

  // Sends reply (a method return or an error for call) after the next commit. success: the reply
  // is a method return, to be replaced by StorageFailure if the commit fails.
  void queue(sd_bus_message* call, BusMessagePtr reply, bool success);
  // Makes sure a commit runs soon, for writes done outside a method call (timers, peers leaving).
  void schedule();
  // Commits and sends every queued reply now (the idle source, and shutdown).
  void run();
  size_t queued() const { return queue_.size(); }
  uint64_t commits() const { return commits_; }  // commits that answered at least one call
  uint64_t replies() const { return replies_; }  // replies sent after a commit

 private:
  struct Pending {
    BusMessagePtr call;
    BusMessagePtr reply;
    bool success = false;
  };

  GroupCommit(sd_bus* bus, Store& store) : bus_(bus), store_(store) {}
  static int on_idle(sd_event_source* source, void* userdata);
  void send(sd_bus_message* reply);

  sd_bus* bus_;
  Store& store_;
  EventSourcePtr idle_;
  std::vector<Pending> queue_;
  uint64_t commits_ = 0;
  uint64_t replies_ = 0;
};

}  // namespace mfa

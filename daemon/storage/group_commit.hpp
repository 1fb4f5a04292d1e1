// Group commit (DESIGN §6): replies of handlers that wrote to the store wait for the commit and
// for the disk.
//
// A handler that leaves the store inside a transaction queues its reply here instead of sending
// it. An sd-event defer source at SD_EVENT_PRIORITY_IDLE runs once the loop has no more pending
// bus input (the bus's own sources run at normal priority first) and commits once with
// Store::commit(), which writes the log without waiting for the disk. The disk flush,
// Store::sync(), runs on the commit thread; when it is done (an eventfd wakes the loop) every
// reply of the batches it covered is sent. Meanwhile the loop serves the next requests and
// commits the next batch, which the following sync covers: the loop never waits for the disk,
// and each sync makes as many batches durable as piled up during the previous one. A commit that
// no reply waits for (a challenge's audit row, a timer's cleanup) does not start a sync of its
// own: the next one covers it, within kSyncLaterUsec.
//
// No success reply ever leaves before its commit is on disk: if the commit or the sync failed,
// each success reply of the batch is replaced by org.mfad1.Error.StorageFailure. A reply waits
// for every commit made before it, and for no more: queued once those are on disk (a sync that
// ended, or the one in flight), it does not wait for another sync.
#pragma once

#include <systemd/sd-bus.h>
#include <systemd/sd-event.h>

#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "common/handles.hpp"
#include "common/result.hpp"
#include "core/store.hpp"

namespace mfa {

class GroupCommit {
 public:
  // How long a commit that no reply waits for may stay off the disk (when no other sync comes).
  static constexpr uint64_t kSyncLaterUsec = 100 * 1000;

  static Result<std::unique_ptr<GroupCommit>> create(sd_event* event, sd_bus* bus, Store& store);
  ~GroupCommit();  // stops the commit thread; call finish() first to answer what is queued
  GroupCommit(const GroupCommit&) = delete;
  GroupCommit& operator=(const GroupCommit&) = delete;

  // Sends reply (a method return or an error for call) once the current transaction is committed
  // and on disk. success: the reply is a method return, to be replaced by StorageFailure if the
  // commit fails.
  void queue(sd_bus_message* call, BusMessagePtr reply, bool success);
  // Makes sure a commit runs soon, for writes done outside a method call (timers, peers leaving).
  void schedule();
  // A reply to the writes made so far will be queued later (fleet mode: once Redis confirmed the
  // decision): their commit and sync start now, beside that wait, rather than after it.
  void prepare();
  // Shutdown: waits for the sync in flight and answers its replies, then commits, waits for the
  // disk and sends every other queued reply, on this thread. Can be called again.
  void finish();
  size_t queued() const { return queue_.size() + committed_.size() + syncing_.size(); }
  uint64_t commits() const { return commits_; }  // commits that answered at least one call
  uint64_t syncs() const { return syncs_; }      // disk flushes
  uint64_t replies() const { return replies_; }  // replies sent after a commit

 private:
  struct Pending {
    BusMessagePtr call;
    BusMessagePtr reply;
    bool success = false;
  };

  GroupCommit(sd_bus* bus, Store& store) : bus_(bus), store_(store) {}
  static void guarded(GroupCommit* gc, void (GroupCommit::*step)());
  static int on_idle(sd_event_source* source, void* userdata);
  static int on_synced(sd_event_source* source, int fd, uint32_t revents, void* userdata);
  static int on_sync_later(sd_event_source* source, uint64_t usec, void* userdata);
  void commit();
  void start_sync();
  void synced();
  void answer(std::vector<Pending>& pending, const Status& status);  // empties pending
  void send(sd_bus_message* reply);
  void sync_thread();

  sd_bus* bus_;
  Store& store_;
  EventSourcePtr idle_;
  EventSourcePtr synced_source_;
  EventSourcePtr sync_later_;       // for commits no reply waits for
  std::vector<Pending> queue_;      // waiting for the open transaction's commit
  std::vector<Pending> committed_;  // committed, waiting for the next sync to start
  std::vector<Pending> syncing_;    // waiting for the sync in flight
  bool need_sync_ = false;          // something was committed since the last sync started
  bool sync_busy_ = false;          // a sync is in flight (loop thread's view)
  bool prepared_ = false;           // prepare(): the next commit starts its sync at once
  // Commits that wrote, counted: the last one the sync in flight covers, and the last one on
  // disk (a sync that succeeded).
  uint64_t commit_seq_ = 0;
  uint64_t syncing_seq_ = 0;
  uint64_t durable_seq_ = 0;
  uint64_t commits_ = 0;
  uint64_t syncs_ = 0;
  uint64_t replies_ = 0;

  // The commit thread: runs store_.sync() when asked, then sets sync_done_, signals
  // sync_finished_ (for finish()) and writes to done_fd_ (for the loop).
  Fd done_fd_;  // eventfd
  std::mutex mutex_;
  std::condition_variable wake_;
  std::condition_variable sync_finished_;
  bool sync_requested_ = false;  // guarded by mutex_
  bool sync_done_ = true;        // guarded by mutex_; sync_result_ is the last sync's outcome
  bool stop_ = false;            // guarded by mutex_
  Status sync_result_;           // guarded by mutex_
  std::thread thread_;
};

}  // namespace mfa

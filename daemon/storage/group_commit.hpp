// Group commit (docs/operations.md, "Durability and group commit"): what depends on the writes made
// so far (in the bus layer, the reply of the call that made them) waits for their commit and for
// the disk.
//
// A caller that leaves the store inside a transaction queues a continuation here. An sd-event
// defer source at SD_EVENT_PRIORITY_IDLE runs once the loop has no more pending bus input (the
// bus's own sources run at normal priority first) and commits once with Store::commit(), which
// writes the log without waiting for the disk. The disk flush, Store::sync(), runs on the commit
// thread; when it is done (an eventfd wakes the loop) every continuation of the batches it
// covered runs. Meanwhile the loop serves the next requests and commits the next batch, which the
// following sync covers: the loop never waits for the disk, and each sync makes as many batches
// durable as piled up during the previous one. A commit that nothing waits for (a challenge's
// audit row, a timer's cleanup) does not start a sync of its own: the next one covers it, within
// kSyncLaterUsec.
//
// A continuation learns whether its writes are on disk: Status{} only once its commit is synced,
// the commit's or the sync's error otherwise (the bus layer then answers StorageFailure instead
// of a success). It waits for every commit made before it, and for no more: queued once those
// are on disk (a sync that ended, or the one in flight), it does not wait for another sync.
#pragma once

#include <systemd/sd-event.h>

#include <condition_variable>
#include <cstdint>
#include <functional>
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
  // How long a commit that nothing waits for may stay off the disk (when no other sync comes).
  static constexpr uint64_t kSyncLaterUsec = 100 * 1000;
  // How long a commit that something waits for may wait for a pause in the bus's input. Under a
  // flood the bus is never idle, and the idle source alone would hold every reply that waits for
  // the disk (a real login's success among them) until the flood paused: seconds
  // (tests/bench/pam/bench_floods.py). Past this, the commit runs beside the input.
  static constexpr uint64_t kCommitDeadlineUsec = 1000;

  // Runs on the loop thread, exactly once: Status{} when the writes made before it are on disk,
  // else the failed commit's or sync's error.
  using Durable = std::function<void(const Status& status)>;

  static Result<std::unique_ptr<GroupCommit>> create(sd_event* event, Store& store);
  ~GroupCommit();  // stops the commit thread; call finish() first to run what is queued
  GroupCommit(const GroupCommit&) = delete;
  GroupCommit& operator=(const GroupCommit&) = delete;

  // Runs done once the current transaction is committed and on disk, or failed.
  void queue(Durable done);
  // Makes sure a commit runs soon, for writes done outside a method call (timers, peers leaving).
  void schedule();
  // Something will wait for the writes made so far later (fleet mode: a reply, once Redis
  // confirmed the decision): their commit and sync start now, beside that wait, rather than
  // after it.
  void prepare();
  // Shutdown: waits for the sync in flight and runs its continuations, then commits, waits for
  // the disk and runs every other queued one, on this thread. Can be called again.
  void finish();
  size_t queued() const { return queue_.size() + committed_.size() + syncing_.size(); }
  uint64_t commits() const { return commits_; }    // commits that something waited for
  uint64_t syncs() const { return syncs_; }        // disk flushes
  uint64_t answered() const { return answered_; }  // continuations run after a commit

 private:
  explicit GroupCommit(Store& store) : store_(store) {}
  static void guarded(GroupCommit* gc, void (GroupCommit::*step)());
  static int on_idle(sd_event_source* source, void* userdata);
  static int on_synced(sd_event_source* source, int fd, uint32_t revents, void* userdata);
  static int on_sync_later(sd_event_source* source, uint64_t usec, void* userdata);
  static int on_deadline(sd_event_source* source, uint64_t usec, void* userdata);
  void arm_deadline();
  void commit();
  void start_sync();
  void synced();
  void answer(std::vector<Durable>& pending, const Status& status);  // empties pending
  void sync_thread();

  Store& store_;
  EventSourcePtr idle_;
  EventSourcePtr synced_source_;
  EventSourcePtr sync_later_;       // for commits nothing waits for
  EventSourcePtr deadline_;         // for commits something waits for, under a flood
  std::vector<Durable> queue_;      // waiting for the open transaction's commit
  std::vector<Durable> committed_;  // committed, waiting for the next sync to start
  std::vector<Durable> syncing_;    // waiting for the sync in flight
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
  uint64_t answered_ = 0;

  // The commit thread: runs store_.sync() when asked, then sets sync_done_, writes to done_fd_
  // (for the loop), runs store_.after_sync() and signals sync_finished_ (for finish()).
  Fd done_fd_;  // eventfd
  std::mutex mutex_;
  std::condition_variable wake_;
  std::condition_variable sync_finished_;
  bool sync_requested_ = false;   // guarded by mutex_
  bool sync_done_ = true;         // guarded by mutex_; sync_result_ is the last sync's outcome
  bool after_sync_busy_ = false;  // guarded by mutex_; store_.after_sync() runs (after the eventfd)
  bool stop_ = false;             // guarded by mutex_
  Status sync_result_;            // guarded by mutex_
  std::thread thread_;
};

}  // namespace mfa

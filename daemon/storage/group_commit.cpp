#include "storage/group_commit.hpp"

#include <sys/eventfd.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <exception>
#include <utility>

#include "core/log.hpp"

namespace mfa {

// The event sources' callbacks: nothing may escape into sd-event.
void GroupCommit::guarded(GroupCommit* gc, void (GroupCommit::*step)()) {
  try {
    (gc->*step)();
  } catch (const std::exception& e) {
    MFA_LOG_ERROR("commit failed: %s", e.what());
  } catch (...) {
    MFA_LOG_ERROR("commit failed");
  }
}

Result<std::unique_ptr<GroupCommit>> GroupCommit::create(sd_event* event, Store& store) {
  std::unique_ptr<GroupCommit> gc(new GroupCommit(store));
  sd_event_source* source = nullptr;
  int r = sd_event_add_defer(event, &source, &GroupCommit::on_idle, gc.get());
  if (r < 0) {
    return make_error(Errc::kInternal,
                      std::string("cannot add the commit event source: ") + strerror(-r));
  }
  gc->idle_.reset(source);
  // Below the bus's I/O (normal priority): the commit waits until the loop has read every
  // request that is already there, so that they share one commit.
  r = sd_event_source_set_priority(source, SD_EVENT_PRIORITY_IDLE);
  if (r >= 0)
    r = sd_event_source_set_enabled(source, SD_EVENT_OFF);
  if (r < 0) {
    return make_error(Errc::kInternal,
                      std::string("cannot set up the commit event source: ") + strerror(-r));
  }
  (void)sd_event_source_set_description(source, "group-commit");

  gc->done_fd_ = Fd(eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
  if (!gc->done_fd_.valid()) {
    return make_error(Errc::kInternal, std::string("cannot create an eventfd: ") + strerror(errno));
  }
  source = nullptr;
  r = sd_event_add_io(event, &source, gc->done_fd_.get(), EPOLLIN, &GroupCommit::on_synced,
                      gc.get());
  if (r < 0) {
    return make_error(Errc::kInternal,
                      std::string("cannot add the sync event source: ") + strerror(-r));
  }
  gc->synced_source_.reset(source);
  (void)sd_event_source_set_description(source, "group-commit-synced");
  source = nullptr;
  r = sd_event_add_time(event, &source, CLOCK_MONOTONIC, UINT64_MAX, 1000,
                        &GroupCommit::on_sync_later, gc.get());
  if (r < 0) {
    return make_error(Errc::kInternal, std::string("cannot add the sync timer: ") + strerror(-r));
  }
  gc->sync_later_.reset(source);
  (void)sd_event_source_set_enabled(source, SD_EVENT_OFF);
  (void)sd_event_source_set_description(source, "group-commit-sync-later");
  source = nullptr;
  r = sd_event_add_time(event, &source, CLOCK_MONOTONIC, UINT64_MAX, 100, &GroupCommit::on_deadline,
                        gc.get());
  if (r < 0) {
    return make_error(Errc::kInternal,
                      std::string("cannot add the commit deadline timer: ") + strerror(-r));
  }
  gc->deadline_.reset(source);
  (void)sd_event_source_set_enabled(source, SD_EVENT_OFF);
  (void)sd_event_source_set_description(source, "group-commit-deadline");
  gc->thread_ = std::thread([g = gc.get()] { g->sync_thread(); });
  return gc;
}

GroupCommit::~GroupCommit() {
  if (thread_.joinable()) {
    {
      std::lock_guard lock(mutex_);
      stop_ = true;
    }
    wake_.notify_one();
    thread_.join();
  }
}

void GroupCommit::schedule() {
  if (idle_)
    (void)sd_event_source_set_enabled(idle_.get(), SD_EVENT_ONESHOT);
}

void GroupCommit::prepare() {
  prepared_ = true;
  schedule();
  arm_deadline();
}

void GroupCommit::queue(Durable done) {
  queue_.push_back(std::move(done));
  schedule();
  arm_deadline();
}

void GroupCommit::arm_deadline() {
  sd_event_source* timer = deadline_.get();
  int enabled = SD_EVENT_OFF;
  if (timer == nullptr || sd_event_source_get_enabled(timer, &enabled) < 0 ||
      enabled != SD_EVENT_OFF)
    return;
  uint64_t now = 0;
  if (sd_event_now(sd_event_source_get_event(timer), CLOCK_MONOTONIC, &now) < 0 ||
      sd_event_source_set_time(timer, now + kCommitDeadlineUsec) < 0 ||
      sd_event_source_set_enabled(timer, SD_EVENT_ONESHOT) < 0)
    MFA_LOG_WARNING("cannot arm the commit deadline; the commit waits for the loop to be idle");
}

int GroupCommit::on_deadline(sd_event_source* /*source*/, uint64_t /*usec*/, void* userdata) {
  guarded(static_cast<GroupCommit*>(userdata), &GroupCommit::commit);
  return 0;
}

void GroupCommit::answer(std::vector<Durable>& pending, const Status& status) {
  // Taken out first: whatever happens below, nothing of it runs a second time.
  std::vector<Durable> batch = std::exchange(pending, {});
  if (!status.ok() && !batch.empty()) {
    MFA_LOG_ERROR("database commit failed, %zu waiting calls told so: %s", batch.size(),
                  status.error().message.c_str());
  }
  answered_ += batch.size();
  for (Durable& done : batch) {
    try {
      done(status);
    } catch (const std::exception& e) {
      MFA_LOG_ERROR("after a commit: %s", e.what());
    } catch (...) {
      MFA_LOG_ERROR("after a commit: unknown error");
    }
  }
}

// Loop thread: commits the open transaction; what waits for it waits for the next sync.
void GroupCommit::commit() {
  (void)sd_event_source_set_enabled(idle_.get(), SD_EVENT_OFF);
  (void)sd_event_source_set_enabled(deadline_.get(), SD_EVENT_OFF);
  const bool writes = store_.in_transaction();
  Status committed = store_.commit();
  if (!queue_.empty())
    ++commits_;
  if (!committed.ok()) {
    // Rolled back: nothing of this batch reached the log, so nothing needs the disk.
    answer(queue_, committed);
    return;
  }
  if (writes) {
    ++commit_seq_;
    need_sync_ = true;
  }
  // Each continuation waits for every commit so far: on disk already, it runs now; covered by the
  // sync in flight, it goes with it; else with the next one.
  if (commit_seq_ <= durable_seq_) {
    answer(queue_, Status{});
  } else if (sync_busy_ && commit_seq_ <= syncing_seq_) {
    for (Durable& d : queue_)
      syncing_.push_back(std::move(d));
    queue_.clear();
  } else if (!queue_.empty()) {
    for (Durable& d : queue_)
      committed_.push_back(std::move(d));
    queue_.clear();
    need_sync_ = true;  // a failed sync left its commits off the disk: they need another
  }
  if (std::exchange(prepared_, false) && need_sync_) {
    start_sync();
    return;
  }
  if (committed_.empty() && need_sync_) {
    // Nobody waits for this one (a new challenge's audit row, a timer's cleanup): the next
    // waiter's sync covers it, and the timer makes sure that happens soon even when none comes.
    uint64_t now = 0;
    if (sd_event_now(sd_event_source_get_event(sync_later_.get()), CLOCK_MONOTONIC, &now) >= 0 &&
        sd_event_source_get_enabled(sync_later_.get(), nullptr) == 0) {
      (void)sd_event_source_set_time(sync_later_.get(), now + kSyncLaterUsec);
      (void)sd_event_source_set_enabled(sync_later_.get(), SD_EVENT_ONESHOT);
    }
    return;
  }
  start_sync();
}

int GroupCommit::on_sync_later(sd_event_source* /*source*/, uint64_t /*usec*/, void* userdata) {
  guarded(static_cast<GroupCommit*>(userdata), &GroupCommit::start_sync);
  return 0;
}

void GroupCommit::start_sync() {
  if (sync_busy_ || !need_sync_)
    return;
  (void)sd_event_source_set_enabled(sync_later_.get(), SD_EVENT_OFF);
  syncing_.swap(committed_);
  syncing_seq_ = commit_seq_;
  need_sync_ = false;
  sync_busy_ = true;
  {
    std::lock_guard lock(mutex_);
    sync_requested_ = true;
    sync_done_ = false;
  }
  wake_.notify_one();
}

void GroupCommit::sync_thread() {
  std::unique_lock lock(mutex_);
  for (;;) {
    wake_.wait(lock, [this] { return sync_requested_ || stop_; });
    if (stop_)
      return;
    sync_requested_ = false;
    lock.unlock();
    Status result = store_.sync();
    lock.lock();
    sync_result_ = std::move(result);
    sync_done_ = true;
    after_sync_busy_ = true;
    const uint64_t one = 1;
    // The loop reads the eventfd before it looks at sync_result_ (under mutex_).
    while (write(done_fd_.get(), &one, sizeof one) < 0 && errno == EINTR) {
    }
    // The replies go now; what no reply needs follows them.
    lock.unlock();
    store_.after_sync();
    lock.lock();
    after_sync_busy_ = false;
    sync_finished_.notify_all();
  }
}

int GroupCommit::on_synced(sd_event_source* /*source*/, int fd, uint32_t /*revents*/,
                           void* userdata) {
  uint64_t count = 0;
  if (read(fd, &count, sizeof count) >= 0)
    guarded(static_cast<GroupCommit*>(userdata), &GroupCommit::synced);
  return 0;
}

// Loop thread, once the commit thread has written done_fd_: the batches it covered are on disk.
void GroupCommit::synced() {
  if (!sync_busy_)
    return;
  Status result;
  {
    std::lock_guard lock(mutex_);
    if (!sync_done_)
      return;  // a wake left from a sync that finish() already answered
    result = sync_result_;
  }
  sync_busy_ = false;
  ++syncs_;
  if (result.ok())
    durable_seq_ = std::max(durable_seq_, syncing_seq_);
  answer(syncing_, result);
  start_sync();
}

void GroupCommit::finish() {
  (void)sd_event_source_set_enabled(idle_.get(), SD_EVENT_OFF);
  (void)sd_event_source_set_enabled(deadline_.get(), SD_EVENT_OFF);
  (void)sd_event_source_set_enabled(sync_later_.get(), SD_EVENT_OFF);
  if (sync_busy_) {
    // Wait for the sync in flight on the condition variable rather than the eventfd: this wait
    // cannot fail, so its waiters get its own outcome and the commit below never runs beside it.
    Status result;
    {
      std::unique_lock lock(mutex_);
      sync_finished_.wait(lock, [this] { return sync_done_; });
      result = sync_result_;
    }
    sync_busy_ = false;
    ++syncs_;
    answer(syncing_, result);
  }
  {
    // The last sync's after_sync() may still run, after the loop saw that sync end.
    std::unique_lock lock(mutex_);
    sync_finished_.wait(lock, [this] { return !after_sync_busy_; });
  }
  // One last sync here covers what was committed before and the open transaction.
  const bool writes = store_.in_transaction();
  Status committed = store_.commit();
  if (!queue_.empty())
    ++commits_;
  if (!committed.ok())
    answer(queue_, committed);  // rolled back: the sync below does not concern it
  Status status;
  if ((committed.ok() && writes) || need_sync_ || !queue_.empty() || !committed_.empty()) {
    status = store_.sync();
    ++syncs_;
    store_.after_sync();
  }
  answer(committed_, status);
  answer(queue_, status);
  need_sync_ = false;
}

int GroupCommit::on_idle(sd_event_source* /*source*/, void* userdata) {
  guarded(static_cast<GroupCommit*>(userdata), &GroupCommit::commit);
  return 0;
}

}  // namespace mfa

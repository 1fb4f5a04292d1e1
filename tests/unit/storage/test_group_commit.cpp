// Group commit (daemon/storage/group_commit.cpp), at shutdown (finish()) and when a reply comes
// after its writes' sync (prepare()): a store whose disk flush the test holds and fails at will,
// and calls whose replies wait on GroupCommit as the bus layer's do (a failed commit or sync
// turns a success into org.mfad1.Error.StorageFailure). What a caller sees: exactly one reply per
// call, a method return only for a write whose sync succeeded, StorageFailure otherwise; and the
// final commit and sync never run beside the commit thread's sync.
#include <sys/eventfd.h>
#include <systemd/sd-event.h>

#include <condition_variable>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "common/dbus_names.hpp"
#include "common/handles.hpp"
#include "storage/group_commit.hpp"
#include "core/store.hpp"
#include "cmocka_cpp.hpp"

using namespace mfa;

namespace {

// Only the transaction calls matter; the rest is never reached from GroupCommit.
class ScriptedStore final : public Store {
 public:
  // The test's side.
  void open_transaction() { open_ = true; }
  void hold_next_sync() {
    std::lock_guard lock(mutex_);
    hold_next_ = true;
  }
  // after_sync() (the audit head file) waits, as the next sync() does, until release().
  void hold_next_after_sync() {
    std::lock_guard lock(mutex_);
    hold_after_ = true;
  }
  int after_syncs() {
    std::lock_guard lock(mutex_);
    return after_syncs_;
  }
  void wait_until_held() {
    std::unique_lock lock(mutex_);
    changed_.wait(lock, [this] { return held_; });
  }
  void release() {
    std::lock_guard lock(mutex_);
    hold_next_ = false;
    held_ = false;
    changed_.notify_all();
  }
  // The outcome of the first sync, and of every one after it.
  void sync_results(Status first, Status later) {
    std::lock_guard lock(mutex_);
    first_result_ = std::move(first);
    later_result_ = std::move(later);
  }
  // From now on (shutdown), a commit beside a sync counts as an overlap: the loop's commits run
  // beside the commit thread's sync by design, the final one must not.
  void watch_commits() {
    std::lock_guard lock(mutex_);
    watch_commits_ = true;
  }
  Status commit_result;
  int syncs() {
    std::lock_guard lock(mutex_);
    return syncs_;
  }
  bool overlapped() {
    std::lock_guard lock(mutex_);
    return overlapped_;
  }

  Status flush() override {
    MFA_CHECK(commit());
    return sync();
  }
  bool in_transaction() const override { return open_; }
  Status commit() override {
    {
      std::lock_guard lock(mutex_);
      overlapped_ = overlapped_ || (watch_commits_ && syncing_);
    }
    open_ = false;
    return commit_result;
  }
  void after_sync() override {
    std::unique_lock lock(mutex_);
    overlapped_ = overlapped_ || syncing_;
    syncing_ = true;
    if (std::exchange(hold_after_, false)) {
      held_ = true;
      changed_.notify_all();
      changed_.wait(lock, [this] { return !held_; });
    }
    ++after_syncs_;
    syncing_ = false;
  }
  Status sync() override {
    std::unique_lock lock(mutex_);
    overlapped_ = overlapped_ || syncing_;
    syncing_ = true;
    const bool first = syncs_++ == 0;
    if (hold_next_) {
      hold_next_ = false;
      held_ = true;
      changed_.notify_all();
      changed_.wait(lock, [this] { return !held_; });
    }
    syncing_ = false;
    return first ? first_result_ : later_result_;
  }

  Result<std::vector<FactorRecord>> get_factors(std::string_view) override { return unused(); }
  Status put_factor(std::string_view, const FactorRecord&) override { return unused(); }
  Status delete_factor(std::string_view, Method, bool) override { return unused(); }
  Status delete_totp_device(std::string_view, std::string_view, bool) override { return unused(); }
  Result<std::vector<std::string>> list_users() override { return unused(); }
  Status delete_user(std::string_view) override { return unused(); }
  Result<std::optional<uint64_t>> get_totp_watermark(std::string_view, std::string_view) override {
    return unused();
  }
  Result<bool> advance_totp_watermark(std::string_view, std::string_view, uint64_t) override {
    return unused();
  }
  Status set_totp_watermark(std::string_view, std::string_view, std::optional<uint64_t>) override {
    return unused();
  }
  Status replace_backup_codes(std::string_view, const std::vector<CodeHash>&) override {
    return unused();
  }
  Result<bool> consume_backup_code(std::string_view, const CodeHash&) override { return unused(); }
  Result<int> count_backup_codes(std::string_view) override { return unused(); }
  Status delete_backup_codes(std::string_view) override { return unused(); }
  Result<LimitState> get_limits(std::string_view) override { return unused(); }
  Status put_limits(std::string_view, const LimitState&) override { return unused(); }
  Status append_audit(AuditRecord&) override { return unused(); }
  Result<std::vector<AuditRecord>> query_audit(const AuditFilter&) override { return unused(); }
  Result<AuditVerification> verify_audit_chain() override { return unused(); }
  Status prune_audit(int64_t) override { return unused(); }

 private:
  static Error unused() { return make_error(Errc::kInternal, "not used by GroupCommit"); }

  bool open_ = false;  // the loop thread's only
  std::mutex mutex_;
  std::condition_variable changed_;
  bool hold_next_ = false;
  bool hold_after_ = false;
  int after_syncs_ = 0;
  bool held_ = false;
  bool syncing_ = false;
  bool watch_commits_ = false;
  bool overlapped_ = false;
  int syncs_ = 0;
  Status first_result_;
  Status later_result_;
};

Error disk_error() {
  return make_error(Errc::kStorage, "database write failed (sync): EIO");
}

// The ids of three calls that wrote, one at each stage when shutdown comes.
struct Writes {
  uint64_t in_flight = 0;  // its sync is on the commit thread
  uint64_t committed = 0;  // committed, waiting for the next sync
  uint64_t open = 0;       // in the open transaction
};

struct Fixture {
  ScriptedStore store;
  EventPtr event;
  std::unique_ptr<GroupCommit> gc;
  uint64_t next_call = 1;
  // What the callers received: call id -> "" for a method return, else the error name, one
  // entry per reply (a second reply to the same call shows as "twice").
  std::map<uint64_t, std::string> seen;

  Fixture() {
    sd_event* e = nullptr;
    assert_int_equal(sd_event_new(&e), 0);
    event.reset(e);
    auto created = GroupCommit::create(event.get(), store);
    assert_true(created.ok());
    gc = std::move(*created);
  }
  ~Fixture() {
    gc.reset();  // joins the commit thread before the store goes
  }

  // A caller's write: the handler wrote, the reply waits for the commit. Returns its id.
  uint64_t call_that_writes() {
    const uint64_t call = call_that_writes_later();
    queue_reply(call);
    return call;
  }
  // The handler wrote; its reply is queued later (fleet mode: once Redis confirmed).
  uint64_t call_that_writes_later() {
    store.open_transaction();
    return next_call++;
  }
  // The reply of a success, as the bus layer sends it: StorageFailure when the writes were lost.
  void queue_reply(uint64_t call) {
    gc->queue([this, call](const Status& status) {
      const std::string what = status.ok() ? "" : dbus::kErrorStorageFailure;
      seen[call] = seen.count(call) ? "twice" : what;
    });
  }
  // Runs the loop until the commit thread has finished n syncs and the loop has seen them.
  void wait_synced(uint64_t n) {
    for (int i = 0; i < 500 && gc->syncs() < n; ++i)
      assert_true(sd_event_run(event.get(), 10 * 1000) >= 0);
    assert_int_equal(gc->syncs(), n);
  }

  // The loop's idle pass: commits what is open and hands it to the commit thread.
  void run_idle() { assert_true(sd_event_run(event.get(), 0) > 0); }

  // One write at each stage of the pipeline, the commit thread's sync held.
  Writes writes_at_every_stage() {
    Writes w;
    store.hold_next_sync();
    w.in_flight = call_that_writes();
    run_idle();
    store.wait_until_held();
    w.committed = call_that_writes();
    run_idle();
    w.open = call_that_writes();
    return w;
  }

  // Shutdown comes while the disk is still busy with the sync in flight, which ends on another
  // thread whenever it does (before finish() waits for it, or while it does).
  void finish_while_the_disk_syncs() {
    store.watch_commits();
    std::thread disk([this] { store.release(); });
    gc->finish();
    disk.join();
  }

  // The replies sent so far.
  std::map<uint64_t, std::string> replies() const { return seen; }
};

// finish() while the commit thread is in the middle of a sync: the replies it covers wait for it,
// the final commit and sync run after it, each call is answered once (a second finish() adds
// nothing).
void test_finish_waits_for_the_sync_in_flight(void**) {
  Fixture f;
  const Writes w = f.writes_at_every_stage();
  f.finish_while_the_disk_syncs();
  f.gc->finish();

  auto seen = f.replies();
  assert_int_equal(seen.size(), 3);
  assert_string_equal(seen[w.in_flight].c_str(), "");
  assert_string_equal(seen[w.committed].c_str(), "");
  assert_string_equal(seen[w.open].c_str(), "");
  assert_false(f.store.overlapped());
  assert_int_equal(f.gc->queued(), 0);
}

// The sync in flight fails: its callers get StorageFailure even though the last sync succeeds;
// what that last sync covers gets its success.
void test_finish_reports_a_failed_sync_in_flight(void**) {
  Fixture f;
  f.store.sync_results(disk_error(), Status{});
  const Writes w = f.writes_at_every_stage();
  f.finish_while_the_disk_syncs();

  auto seen = f.replies();
  assert_int_equal(seen.size(), 3);
  assert_string_equal(seen[w.in_flight].c_str(), dbus::kErrorStorageFailure);
  assert_string_equal(seen[w.committed].c_str(), "");
  assert_string_equal(seen[w.open].c_str(), "");
  assert_false(f.store.overlapped());
}

// The syncs after the one in flight fail: every write they were to cover is answered with
// StorageFailure.
void test_finish_reports_failed_later_syncs(void**) {
  Fixture f;
  f.store.sync_results(Status{}, disk_error());
  const Writes w = f.writes_at_every_stage();
  f.finish_while_the_disk_syncs();

  auto seen = f.replies();
  assert_int_equal(seen.size(), 3);
  assert_string_equal(seen[w.in_flight].c_str(), "");
  assert_string_equal(seen[w.committed].c_str(), dbus::kErrorStorageFailure);
  assert_string_equal(seen[w.open].c_str(), dbus::kErrorStorageFailure);
}

// The last commit fails (rolled back): its callers get StorageFailure; what was committed before
// still gets the last sync's success.
void test_finish_with_a_failed_last_commit(void**) {
  Fixture f;
  const Writes w = f.writes_at_every_stage();
  f.store.commit_result = make_error(Errc::kStorage, "database write failed: disk full");
  f.finish_while_the_disk_syncs();

  auto seen = f.replies();
  assert_int_equal(seen.size(), 3);
  assert_string_equal(seen[w.in_flight].c_str(), "");
  assert_string_equal(seen[w.committed].c_str(), "");
  assert_string_equal(seen[w.open].c_str(), dbus::kErrorStorageFailure);
}

// prepare() (fleet mode: the reply waits for Redis): the sync starts at the commit; the reply
// queued once it is over goes at once, with no second sync.
void test_a_reply_queued_after_its_sync_goes_at_once(void**) {
  Fixture f;
  const uint64_t call = f.call_that_writes_later();
  f.gc->prepare();
  f.run_idle();
  f.wait_synced(1);
  assert_true(f.replies().empty());
  f.queue_reply(call);
  f.run_idle();
  auto seen = f.replies();
  assert_int_equal(seen.size(), 1);
  assert_string_equal(seen[call].c_str(), "");
  assert_int_equal(f.store.syncs(), 1);
  assert_int_equal(f.gc->queued(), 0);
}

// Queued while that sync is still on the disk: the reply goes when it ends, not before.
void test_a_reply_queued_during_its_sync_goes_with_it(void**) {
  Fixture f;
  f.store.hold_next_sync();
  const uint64_t call = f.call_that_writes_later();
  f.gc->prepare();
  f.run_idle();
  f.store.wait_until_held();
  f.queue_reply(call);
  f.run_idle();
  assert_true(f.replies().empty());
  f.store.release();
  f.wait_synced(1);
  auto seen = f.replies();
  assert_string_equal(seen[call].c_str(), "");
  assert_int_equal(f.store.syncs(), 1);
}

// Without prepare(), a commit nobody waits for yet does not start a sync: the reply's does.
void test_without_prepare_the_reply_starts_the_sync(void**) {
  Fixture f;
  const uint64_t call = f.call_that_writes_later();
  f.gc->schedule();
  f.run_idle();
  assert_int_equal(f.store.syncs(), 0);
  f.queue_reply(call);
  f.run_idle();
  f.wait_synced(1);
  assert_string_equal(f.replies()[call].c_str(), "");
}

// A sync that failed covers nothing: the reply queued after it waits for another sync, and gets
// StorageFailure when that one fails too (as every sync after a failure does, sqlite_store.cpp).
void test_a_failed_sync_is_not_taken_for_durable(void**) {
  Fixture f;
  f.store.sync_results(disk_error(), disk_error());
  const uint64_t call = f.call_that_writes_later();
  f.gc->prepare();
  f.run_idle();
  f.wait_synced(1);
  f.queue_reply(call);
  f.run_idle();
  f.wait_synced(2);
  assert_string_equal(f.replies()[call].c_str(), dbus::kErrorStorageFailure);
}

// What follows a sync and no reply needs (the audit head file) runs after the replies: a reply
// goes while it is held. finish() waits for it: the final sync never runs beside it.
void test_replies_go_before_the_work_after_their_sync(void**) {
  Fixture f;
  f.store.hold_next_after_sync();
  const uint64_t call = f.call_that_writes();
  f.run_idle();
  f.store.wait_until_held();
  f.wait_synced(1);
  assert_string_equal(f.replies()[call].c_str(), "");
  assert_int_equal(f.store.after_syncs(), 0);

  const uint64_t last = f.call_that_writes();
  f.store.watch_commits();
  std::thread disk([&f] { f.store.release(); });
  f.gc->finish();
  disk.join();
  assert_string_equal(f.replies()[last].c_str(), "");
  assert_int_equal(f.store.after_syncs(), 2);
  assert_false(f.store.overlapped());
}

}  // namespace

// Input that never pauses (a flood on the bus, here a descriptor of the bus's priority that is
// always readable): the idle pass never comes, yet a reply that waits for the disk is answered
// about kCommitDeadlineUsec plus a sync later, not whenever the flood pauses.
int busy(sd_event_source* /*s*/, int /*fd*/, uint32_t /*revents*/, void* userdata) {
  ++*static_cast<uint64_t*>(userdata);
  return 0;
}

void test_a_flood_of_input_does_not_hold_back_the_commit(void**) {
  Fixture f;
  Fd input(eventfd(1, EFD_CLOEXEC | EFD_NONBLOCK));  // never read: always readable
  assert_true(input.valid());
  uint64_t turns = 0;
  sd_event_source* raw = nullptr;
  assert_int_equal(sd_event_add_io(f.event.get(), &raw, input.get(), EPOLLIN, busy, &turns), 0);
  EventSourcePtr flood(raw);
  const uint64_t call = f.call_that_writes();
  for (int i = 0; i < 1000000 && !f.seen.count(call); ++i)
    assert_true(sd_event_run(f.event.get(), 10 * 1000) >= 0);
  assert_true(turns > 0);
  assert_true(f.seen.count(call));
  assert_string_equal(f.seen[call].c_str(), "");
  assert_int_equal(f.gc->commits(), 1);
}

int main() {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_finish_waits_for_the_sync_in_flight),
      cmocka_unit_test(test_finish_reports_a_failed_sync_in_flight),
      cmocka_unit_test(test_finish_reports_failed_later_syncs),
      cmocka_unit_test(test_finish_with_a_failed_last_commit),
      cmocka_unit_test(test_a_reply_queued_after_its_sync_goes_at_once),
      cmocka_unit_test(test_a_reply_queued_during_its_sync_goes_with_it),
      cmocka_unit_test(test_without_prepare_the_reply_starts_the_sync),
      cmocka_unit_test(test_a_failed_sync_is_not_taken_for_durable),
      cmocka_unit_test(test_a_flood_of_input_does_not_hold_back_the_commit),
      cmocka_unit_test(test_replies_go_before_the_work_after_their_sync),
  };
  return cmocka_run_group_tests(tests, nullptr, nullptr);
}

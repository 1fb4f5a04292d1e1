// SqliteStore's batch transaction (group commit, store.hpp): the first write after a commit opens
// it with BEGIN IMMEDIATE, a failed write rolls the whole batch back, commit() ends it, and sync()
// flushes the write-ahead log to the disk (docs/operations.md, "Durability and group commit").
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "core/log.hpp"
#include "storage/sqlite_store.hpp"

namespace mfa {
namespace {

// Whether the head file is fdatasync'd before its rename (docs/operations.md, "The audit trail").
// Not: it is rewritten after every disk flush of the database, which it never runs ahead of, and
// a head file that a crash left behind the database only means that the newest rows are proven
// by the chain alone until the next flush. Syncing it would add a second disk flush to every
// batch.
constexpr bool kDurableAuditHead = false;

}  // namespace

Status SqliteStore::begin_write() {
  if (batch_error_)
    return *batch_error_;
  if (in_transaction_)
    return {};
  int rc = sqlite3_exec(db_.get(), "BEGIN IMMEDIATE", nullptr, nullptr, nullptr);
  if (rc != SQLITE_OK)
    return sqlite_error(rc, "database write failed");
  in_transaction_ = true;
  return {};
}

Error SqliteStore::fail_write(Error error) {
  if (in_transaction_) {
    if (!sqlite3_get_autocommit(db_.get())) {
      sqlite3_exec(db_.get(), "ROLLBACK", nullptr, nullptr, nullptr);
    }
    in_transaction_ = false;
    batch_error_ = error;
    rollback_audit_head();
  }
  return error;
}

Status SqliteStore::flush() {
  MFA_CHECK(commit());
  MFA_CHECK(sync());
  return write_synced_head();
}

Status SqliteStore::sync() {
  // Runs on the commit thread: touches nothing but wal_, which is set before any thread starts,
  // and sync_failed_.
  //
  // Once a disk flush has failed, every later one fails too, until mfad restarts: Linux reports
  // a writeback error to fdatasync once, and the next call may succeed although the pages it
  // covered were dropped ("fsyncgate"; PostgreSQL panics for the same reason). A success reply
  // must never rest on such a sync, so mfad fails closed and says so in every reply.
  if (sync_failed_.load(std::memory_order_acquire)) {
    return make_error(Errc::kStorage,
                      "database write failed earlier (sync); restart mfad once the disk is fixed");
  }
  // The head file could not be written after the last sync: what this sync covers is not
  // answered as a success until it can (as when the head was written before the replies).
  if (head_write_error_)
    MFA_CHECK(write_synced_head());
  // The audit head as committed before this flush: every commit it covers is in the log already,
  // so once the log is on disk the head file may say so (never more than the disk holds).
  std::optional<AuditHead> head;
  {
    std::lock_guard lock(head_mutex_);
    if (committed_known_ && !head_path_.empty())
      head = committed_head_;
  }
  if (fdatasync(wal_.get()) < 0) {
    const int err = errno;
    sync_failed_.store(true, std::memory_order_release);
    return make_error(Errc::kStorage,
                      std::string("database write failed (sync): ") + std::strerror(err));
  }
  struct stat st {};
  if (fstat(wal_.get(), &st) < 0 || st.st_nlink == 0) {
    return make_error(Errc::kStorage, "database write failed: its log file was removed");
  }
  if (head)
    synced_head_ = head;
  return {};
}

void SqliteStore::after_sync() {
  if (Status written = write_synced_head(); !written.ok())
    MFA_LOG_ERROR("%s (the next disk flush fails until it can be written)",
                  written.error().message.c_str());
}

Status SqliteStore::write_synced_head() {
  if (!synced_head_ || synced_head_ == written_head_)
    return {};
  Status written = write_audit_head(head_path_, *head_sealer_, *synced_head_, kDurableAuditHead);
  if (!written.ok()) {
    head_write_error_ = written.error();
    return written;
  }
  written_head_ = synced_head_;
  head_write_error_.reset();
  return {};
}

Status SqliteStore::commit() {
  if (batch_error_) {
    Error error = std::move(*batch_error_);
    batch_error_.reset();
    error.message += " (the batch was rolled back)";
    return error;
  }
  if (!in_transaction_)
    return {};
  in_transaction_ = false;
  int rc = sqlite3_exec(db_.get(), "COMMIT", nullptr, nullptr, nullptr);
  if (rc != SQLITE_OK) {
    Error error = sqlite_error(rc, "database write failed");
    if (!sqlite3_get_autocommit(db_.get())) {
      sqlite3_exec(db_.get(), "ROLLBACK", nullptr, nullptr, nullptr);
    }
    rollback_audit_head();
    return error;
  }
  commit_audit_head();
  if (erase_log_after_commit_)
    erase_log();
  return {};
}

void SqliteStore::erase_log() {
  // TRUNCATE: every frame copied into the database (synced), then the log cut to nothing. Another
  // connection reading (sqlite3 on the file) can keep it from finishing: the next commit tries
  // again. The commit itself stands either way.
  int frames = -1;
  int copied = -1;
  const int rc =
      sqlite3_wal_checkpoint_v2(db_.get(), nullptr, SQLITE_CHECKPOINT_TRUNCATE, &frames, &copied);
  if (rc == SQLITE_OK && frames == 0) {
    erase_log_after_commit_ = false;
    return;
  }
  MFA_LOG_WARNING(
      "a forgotten person's old records are still in the database log (checkpoint: %s); "
      "trying again after the next write",
      rc == SQLITE_OK ? "readers in the way" : sqlite3_errstr(rc));
}

}  // namespace mfa

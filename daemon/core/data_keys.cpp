#include "core/data_keys.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <mutex>
#include <optional>
#include <unordered_map>

#include "common/crypto.hpp"
#include "common/handles.hpp"
#include "core/config.hpp"
#include "core/log.hpp"

namespace mfa {
namespace {

constexpr size_t kDataKeySize = 32;
// A wrapped key: the sealed layout (common/seal.hpp) around 32 bytes.
constexpr size_t kMaxWrappedSize = 256;
// The sealed layout (common/seal.hpp): "MFS1" | key id (8) | ...
constexpr size_t kKeyIdOffset = 4;
constexpr size_t kKeyIdSize = 8;

// The sealers of data keys opened lately, for every DataKeys of this process (they are made where
// they are used, over the same directory): a login opens the person's seed without reading and
// unwrapping their key file and deriving its sealer again (about a tenth of mfad's CPU per login
// in tests/bench/run-daemon-bench.sh). Keyed by the master key's id and the key file's path (a
// key file opens only under the master key that wrapped it). A write or a destroy through
// any DataKeys replaces or drops the entry first; an entry serves kCacheSeconds at most, so that a
// key file removed behind mfad's back stops opening records within that time. Bounded: when full,
// the expired entries go, then any.
class OpenedKeyCache {
 public:
  std::shared_ptr<const Sealer> find(const std::string& path) {
    std::lock_guard lock(mutex_);
    auto it = entries_.find(path);
    if (it == entries_.end())
      return nullptr;
    if (Clock::now() - it->second.opened > kCacheSeconds) {
      entries_.erase(it);
      return nullptr;
    }
    return it->second.sealer;
  }
  void put(const std::string& path, std::shared_ptr<const Sealer> sealer) {
    std::lock_guard lock(mutex_);
    if (entries_.size() >= kMaxEntries) {
      // The sweep is a walk of the whole table: once a second at most (a start that re-seals
      // 100,000 people's records puts as many keys in a row).
      const auto now = Clock::now();
      if (now >= next_sweep_) {
        std::erase_if(entries_,
                      [&](const auto& e) { return now - e.second.opened > kCacheSeconds; });
        next_sweep_ = now + std::chrono::seconds(1);
      }
      if (entries_.size() >= kMaxEntries)
        entries_.erase(entries_.begin());
    }
    entries_.insert_or_assign(path, Entry{std::move(sealer), Clock::now()});
  }
  void drop(const std::string& path) {
    std::lock_guard lock(mutex_);
    entries_.erase(path);
  }

 private:
  using Clock = std::chrono::steady_clock;
  static constexpr auto kCacheSeconds = std::chrono::seconds(60);
  static constexpr size_t kMaxEntries = 4096;
  struct Entry {
    std::shared_ptr<const Sealer> sealer;
    Clock::time_point opened;
  };
  std::mutex mutex_;
  std::unordered_map<std::string, Entry> entries_;
  Clock::time_point next_sweep_{};
};

OpenedKeyCache& opened_keys() {
  static OpenedKeyCache cache;
  return cache;
}

Error io_error(const std::string& what) {
  return make_error(Errc::kStorage, what + ": " + std::strerror(errno));
}

Status write_all(int fd, std::span<const uint8_t> data) {
  size_t done = 0;
  while (done < data.size()) {
    ssize_t n = ::write(fd, data.data() + done, data.size() - done);
    if (n < 0 && errno == EINTR)
      continue;
    if (n <= 0)
      return io_error("cannot write a data key");
    done += static_cast<size_t>(n);
  }
  return {};
}

}  // namespace

std::string data_key_directory(const Config& config) {
  return config.data_key_directory.empty() ? config.state_directory + "/data-keys"
                                           : config.data_key_directory;
}

Status DataKeys::prepare() const {
  if (!per_person_)
    return {};
  if (mkdir(directory_.c_str(), 0700) < 0 && errno != EEXIST)
    return io_error("cannot create the data key directory " + directory_);
  struct stat st {};
  if (stat(directory_.c_str(), &st) < 0 || !S_ISDIR(st.st_mode))
    return make_error(Errc::kStorage,
                      "the data key directory " + directory_ + " is not a directory");
  return {};
}

std::string DataKeys::path_of(std::string_view key_owner) const {
  // Not the name itself: a file name says nothing about whom it is for.
  const auto digest = sha256(std::span<const uint8_t>(
      reinterpret_cast<const uint8_t*>(key_owner.data()), key_owner.size()));
  return directory_ + "/" + to_hex(digest) + ".key";
}

bool DataKeys::under_master(std::span<const uint8_t> sealed) const {
  return sealed.size() >= kKeyIdOffset + kKeyIdSize &&
         std::memcmp(sealed.data() + kKeyIdOffset, master_.key_id().data(), kKeyIdSize) == 0;
}

Result<std::optional<SecureBytes>> DataKeys::read_key(std::string_view key_owner) const {
  const std::string path = path_of(key_owner);
  Fd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY));
  if (!fd.valid()) {
    if (errno == ENOENT)
      return std::optional<SecureBytes>();
    return io_error("cannot open the data key " + path);
  }
  std::vector<uint8_t> wrapped(kMaxWrappedSize + 1);
  ssize_t n = 0;
  do {
    n = ::read(fd.get(), wrapped.data(), wrapped.size());
  } while (n < 0 && errno == EINTR);
  if (n <= 0 || static_cast<size_t>(n) > kMaxWrappedSize)
    return make_error(Errc::kStorage, "a data key file is unreadable: " + path);
  wrapped.resize(static_cast<size_t>(n));
  auto key = master_.open(wrapped, key_owner, kSealDataKey);
  if (!key.ok() || key->size() != kDataKeySize)
    return make_error(Errc::kCrypto, "a data key does not open (wrong master key): " + path);
  return std::optional<SecureBytes>(std::move(key).value());
}

Status DataKeys::write_key(std::string_view key_owner, std::span<const uint8_t> key,
                           KeySync sync) const {
  if (key.size() != kDataKeySize)
    return make_error(Errc::kInvalidArgument, "a data key is 32 bytes");
  const std::string path = path_of(key_owner);
  opened_keys().drop(cache_key(key_owner));
  MFA_TRY(wrapped, master_.seal(key, key_owner, kSealDataKey));
  // Written whole and synced, then renamed into place and the directory synced: the records
  // sealed under it are committed only after it is durable.
  const std::string tmp = path + ".tmp";
  if (mkdir(directory_.c_str(), 0700) < 0 && errno != EEXIST)
    return io_error("cannot create the data key directory " + directory_);
  {
    Fd out(::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600));
    if (!out.valid())
      return io_error("cannot create the data key " + tmp);
    MFA_CHECK(write_all(out.get(), wrapped));
    if (sync == KeySync::kNow && fsync(out.get()) != 0)
      return io_error("cannot sync the data key " + tmp);
  }
  if (rename(tmp.c_str(), path.c_str()) != 0)
    return io_error("cannot put the data key in place " + path);
  if (sync == KeySync::kLater)
    return {};
  return sync_directory();
}

Status DataKeys::sync_directory() const {
  Fd dir(::open(directory_.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!dir.valid() || fsync(dir.get()) != 0)
    return io_error("cannot sync the data key directory " + directory_);
  return {};
}

Status DataKeys::sync_all() const {
  // One syncfs for every key file written since, instead of two fsyncs for each: a start that
  // moves 100,000 records under data keys made 200,000 disk flushes before it served anyone.
  Fd dir(::open(directory_.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!dir.valid() || syncfs(dir.get()) != 0 || fsync(dir.get()) != 0)
    return io_error("cannot sync the data key directory " + directory_);
  return {};
}

std::string DataKeys::cache_key(std::string_view key_owner) const {
  return to_hex(master_.key_id()) + ":" + path_of(key_owner);
}

Result<std::shared_ptr<const Sealer>> DataKeys::sealer_of(std::string_view key_owner, bool create,
                                                          KeySync sync) const {
  const std::string cached_as = cache_key(key_owner);
  if (auto cached = opened_keys().find(cached_as))
    return cached;
  MFA_TRY(existing, read_key(key_owner));
  if (!existing && !create)
    return std::shared_ptr<const Sealer>();
  if (!existing) {
    SecureBytes key(kDataKeySize);
    MFA_CHECK(random_bytes(key.span()));
    MFA_CHECK(write_key(key_owner, key.span(), sync));
    existing = std::move(key);
  }
  MFA_TRY(sealer, Sealer::create(existing->span()));
  auto shared = std::make_shared<const Sealer>(std::move(sealer));
  opened_keys().put(cached_as, shared);
  return shared;
}

Result<std::optional<SecureBytes>> DataKeys::export_key(std::string_view key_owner) const {
  return read_key(key_owner);
}

Status DataKeys::install_key(std::string_view key_owner, std::span<const uint8_t> key) const {
  return write_key(key_owner, key, KeySync::kNow);
}

Result<std::vector<uint8_t>> DataKeys::seal(std::string_view key_owner,
                                            std::span<const uint8_t> plaintext,
                                            std::string_view owner, std::string_view kind) const {
  if (!per_person_)
    return master_.seal(plaintext, owner, kind);
  MFA_TRY(sealer, sealer_of(key_owner, /*create=*/true));
  return sealer->seal(plaintext, owner, kind);
}

Result<SecureBytes> DataKeys::open(std::string_view key_owner, std::span<const uint8_t> sealed,
                                   std::string_view owner, std::string_view kind) const {
  if (under_master(sealed))
    return master_.open(sealed, owner, kind);
  MFA_TRY(sealer, sealer_of(key_owner, /*create=*/false));
  if (!sealer) {
    return make_error(Errc::kCrypto,
                      "the record's data key is gone (the person was forgotten): it cannot be "
                      "opened");
  }
  return sealer->open(sealed, owner, kind);
}

Result<bool> DataKeys::destroy(std::string_view key_owner) const {
  const std::string path = path_of(key_owner);
  opened_keys().drop(cache_key(key_owner));
  {
    Fd fd(::open(path.c_str(), O_WRONLY | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY));
    if (!fd.valid()) {
      if (errno == ENOENT)
        return false;
      return io_error("cannot open the data key " + path);
    }
    // Overwritten before it goes (on a file system that writes in place, the bytes go too).
    struct stat st {};
    if (fstat(fd.get(), &st) == 0 && st.st_size > 0) {
      std::vector<uint8_t> zeros(static_cast<size_t>(st.st_size), 0);
      MFA_CHECK(write_all(fd.get(), zeros));
      (void)fsync(fd.get());
    }
  }
  if (unlink(path.c_str()) != 0)
    return io_error("cannot delete the data key " + path);
  MFA_CHECK(sync_directory());
  return true;
}

Result<int> DataKeys::seal_all(Store& store, const UserDirectory& users) const {
  if (!per_person_)
    return 0;
  MFA_TRY(keys, store.list_users());
  int moved = 0;
  for (const std::string& key : keys) {
    MFA_TRY(factors, store.get_factors(key));
    for (FactorRecord& record : factors) {
      if (!under_master(record.sealed))
        continue;
      // The record's associated data: its kind, its owner the key or (sealed before records
      // were keyed by account) the account's name.
      std::string kind = method_name(record.method);
      if (record.pending)
        kind += "-pending";
      std::string owner = key;
      auto plain = master_.open(record.sealed, owner, kind);
      if (!plain.ok()) {
        if (auto legacy = legacy_owner(users, key)) {
          owner = *legacy;
          plain = master_.open(record.sealed, owner, kind);
        }
      }
      if (!plain.ok()) {
        MFA_LOG_WARNING(
            "data keys: a %s record of '%s' does not open under the master key; it stays as it "
            "is (it cannot be used)",
            kind.c_str(), key.c_str());
        continue;
      }
      // The keys written here are synced together at the end, before any record sealed under
      // them can be committed (the caller flushes the store after this returns).
      MFA_TRY(sealer, sealer_of(key, /*create=*/true, KeySync::kLater));
      MFA_TRY(resealed, sealer->seal(plain->span(), owner, kind));
      record.sealed = std::move(resealed);
      MFA_CHECK(store.put_factor(key, record));
      ++moved;
    }
  }
  if (moved > 0)
    MFA_CHECK(sync_all());
  return moved;
}

}  // namespace mfa

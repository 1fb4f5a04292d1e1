// Who is who: the system's user and group databases (NSS), behind an interface so that the logic
// is testable without real accounts.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <utility>

#include "core/clock.hpp"

namespace mfa {

class UserDirectory {
 public:
  virtual ~UserDirectory() = default;
  virtual std::optional<uid_t> uid_of(std::string_view user) const = 0;
  virtual std::optional<std::string> name_of(uid_t uid) const = 0;
  // Whether uid is a member of group (primary or supplementary, by getgrouplist).
  virtual bool in_group(uid_t uid, std::string_view group) const = 0;
};

class SystemUserDirectory final : public UserDirectory {
 public:
  std::optional<uid_t> uid_of(std::string_view user) const override;
  std::optional<std::string> name_of(uid_t uid) const override;
  bool in_group(uid_t uid, std::string_view group) const override;
};

// The answers of another directory, kept a short while (docs/security-model.md, "Floods"): on a
// host whose NSS asks a directory server, each lookup blocks the event loop for a round trip, and
// every call asks who its caller is. Found entries are kept kFoundTtlUsec, absences (a name nobody
// has) kAbsentTtlUsec; each table holds at most kMaxEntries (the expired go first, then all), so a
// flood of distinct names costs one lookup each, as many as the caller's rate limit lets through.
class CachedUserDirectory final : public UserDirectory {
 public:
  static constexpr uint64_t kFoundTtlUsec = 10 * 1000000ULL;
  static constexpr uint64_t kAbsentTtlUsec = 2 * 1000000ULL;
  static constexpr size_t kMaxEntries = 4096;

  CachedUserDirectory(const UserDirectory& directory, const Clock& clock)
      : directory_(directory), clock_(clock) {}
  std::optional<uid_t> uid_of(std::string_view user) const override;
  std::optional<std::string> name_of(uid_t uid) const override;
  bool in_group(uid_t uid, std::string_view group) const override;

 private:
  template <typename T>
  struct Entry {
    T value;
    uint64_t expires_usec;
  };
  template <typename Key, typename T, typename Lookup>
  T cached(std::map<Key, Entry<T>, std::less<>>& table, Key key, Lookup lookup) const;

  const UserDirectory& directory_;
  const Clock& clock_;
  mutable std::map<std::string, Entry<std::optional<uid_t>>, std::less<>> uids_;
  mutable std::map<uid_t, Entry<std::optional<std::string>>, std::less<>> names_;
  mutable std::map<std::pair<uid_t, std::string>, Entry<bool>, std::less<>> groups_;
};

}  // namespace mfa

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

// State is keyed by the account, not by the spelling of the name a login used (issue 17): two
// passwd entries with one uid, or an NSS source that folds case, are one account with one set of
// factors. The key of an account's records is "uid/<decimal uid>": a user name never contains
// '/' (validate_user_name refuses it at every edge), so no name collides with a key. Records
// kept under a name are those of a name NSS did not know when the database was migrated.
std::string account_key(uid_t uid);
// The uid of an account key; nullopt for anything else (a name).
std::optional<uid_t> account_key_uid(std::string_view key);
// How people see an account: its NSS name, "#<uid>" when the uid no longer resolves; a key that is
// a name (a record kept under a name) as it is.
std::string account_display_name(const UserDirectory& users, std::string_view key);
// The owner that records of the account key were bound to before they were keyed by account (the
// account's NSS name): sealed records and backup-code hashes of older versions name it.
std::optional<std::string> legacy_owner(const UserDirectory& users, std::string_view key);

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

// Who is who: the system's user and group databases (NSS), behind an interface so that the logic
// is testable without real accounts.
#pragma once

#include <sys/types.h>

#include <optional>
#include <string>
#include <string_view>

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

}  // namespace mfa

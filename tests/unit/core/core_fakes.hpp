// Stand-ins that the authenticator and session tests share: a user directory of root, alice, bob
// and carol (carol in mfa-admin; an account can be marked deleted from NSS), and an EventSink that
// records the security events it is handed.
#pragma once

#include <sys/types.h>

#include <optional>
#include <map>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "core/audit.hpp"
#include "core/authenticator.hpp"
#include "core/user_directory.hpp"

namespace mfa::test {

constexpr uid_t kAlice = 1000, kBob = 1001, kCarol = 1002;

class FakeUsers final : public UserDirectory {
 public:
  std::optional<uid_t> uid_of(std::string_view user) const override {
    if (deleted.count(std::string(user)))
      return std::nullopt;
    if (user == "root")
      return 0;
    if (user == "alice")
      return kAlice;
    if (user == "bob")
      return kBob;
    if (user == "carol")
      return kCarol;
    if (auto it = aliases.find(std::string(user)); it != aliases.end())
      return it->second;
    return std::nullopt;
  }
  std::optional<std::string> name_of(uid_t uid) const override {
    const char* name = uid == 0        ? "root"
                       : uid == kAlice ? "alice"
                       : uid == kBob   ? "bob"
                       : uid == kCarol ? "carol"
                                       : nullptr;
    if (name == nullptr || deleted.count(name))
      return std::nullopt;
    return name;
  }
  bool in_group(uid_t uid, std::string_view group) const override {
    return uid == kCarol && group == "mfa-admin";
  }
  std::set<std::string> deleted;  // accounts removed from NSS after they enrolled
  // Other names of an account (two passwd entries with one uid, a case-folding NSS source).
  std::map<std::string, uid_t> aliases;
};

struct SecurityEventRecord {
  std::string user, kind;
  StringMap details;
};

class RecordingSink final : public EventSink {
 public:
  void security_event(const std::string& user, const std::string& kind,
                      const StringMap& details) override {
    events.push_back({user, kind, details});
  }
  std::vector<SecurityEventRecord> events;
};

}  // namespace mfa::test

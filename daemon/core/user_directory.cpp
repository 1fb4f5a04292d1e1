#include "core/user_directory.hpp"

#include <grp.h>
#include <pwd.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <iterator>
#include <vector>

namespace mfa {
namespace {

// NSS buffers grow on ERANGE up to this much; a database entry beyond it is treated as absent.
constexpr size_t kMaxNssBuffer = 1 << 20;
constexpr size_t kInitialNssBuffer = 1024;
// Bounds getgrouplist: more supplementary groups than this is not a real account.
constexpr int kMaxGroups = 65536;
// Longer names are refused before they reach NSS (useradd allows 32; LDAP may allow more).
constexpr size_t kMaxNameLength = 256;

bool valid_name(std::string_view name) {
  return !name.empty() && name.size() <= kMaxNameLength &&
         name.find('\0') == std::string_view::npos;
}

// Calls fn(buffer, size) -> errno-style result, growing the buffer on ERANGE.
template <typename Fn>
int with_nss_buffer(std::vector<char>& buf, Fn fn) {
  size_t size = kInitialNssBuffer;
  for (;;) {
    buf.resize(size);
    int r = fn(buf.data(), buf.size());
    if (r != ERANGE)
      return r;
    if (size >= kMaxNssBuffer)
      return ERANGE;
    size *= 2;
  }
}

struct PasswdEntry {
  uid_t uid;
  gid_t gid;
  std::string name;
};

std::optional<PasswdEntry> lookup_uid(uid_t uid) {
  std::vector<char> buf;
  struct passwd pw {};
  struct passwd* result = nullptr;
  int r =
      with_nss_buffer(buf, [&](char* b, size_t n) { return getpwuid_r(uid, &pw, b, n, &result); });
  if (r != 0 || result == nullptr)
    return std::nullopt;
  return PasswdEntry{pw.pw_uid, pw.pw_gid, pw.pw_name};
}

std::optional<gid_t> lookup_group(std::string_view group) {
  if (!valid_name(group))
    return std::nullopt;
  std::string name(group);
  std::vector<char> buf;
  struct group gr {};
  struct group* result = nullptr;
  int r = with_nss_buffer(
      buf, [&](char* b, size_t n) { return getgrnam_r(name.c_str(), &gr, b, n, &result); });
  if (r != 0 || result == nullptr)
    return std::nullopt;
  return gr.gr_gid;
}

}  // namespace

namespace {
constexpr std::string_view kAccountKeyPrefix = "uid/";
}  // namespace

std::string account_key(uid_t uid) {
  return std::string(kAccountKeyPrefix) + std::to_string(uid);
}

std::optional<uid_t> account_key_uid(std::string_view key) {
  if (!key.starts_with(kAccountKeyPrefix))
    return std::nullopt;
  key.remove_prefix(kAccountKeyPrefix.size());
  uid_t uid = 0;
  auto [end, ec] = std::from_chars(key.data(), key.data() + key.size(), uid);
  if (ec != std::errc() || end != key.data() + key.size() || key.empty() ||
      (key.size() > 1 && key.front() == '0'))
    return std::nullopt;
  return uid;
}

std::string account_display_name(const UserDirectory& users, std::string_view key) {
  const auto uid = account_key_uid(key);
  if (!uid)
    return std::string(key);
  if (auto name = users.name_of(*uid))
    return std::move(*name);
  return "#" + std::to_string(*uid);
}

std::optional<std::string> legacy_owner(const UserDirectory& users, std::string_view key) {
  const auto uid = account_key_uid(key);
  if (!uid)
    return std::nullopt;
  return users.name_of(*uid);
}

std::optional<uid_t> SystemUserDirectory::uid_of(std::string_view user) const {
  if (!valid_name(user))
    return std::nullopt;
  std::string name(user);
  std::vector<char> buf;
  struct passwd pw {};
  struct passwd* result = nullptr;
  int r = with_nss_buffer(
      buf, [&](char* b, size_t n) { return getpwnam_r(name.c_str(), &pw, b, n, &result); });
  if (r != 0 || result == nullptr)
    return std::nullopt;
  return pw.pw_uid;
}

std::optional<std::string> SystemUserDirectory::name_of(uid_t uid) const {
  auto entry = lookup_uid(uid);
  if (!entry)
    return std::nullopt;
  return std::move(entry->name);
}

bool SystemUserDirectory::in_group(uid_t uid, std::string_view group) const {
  auto gid = lookup_group(group);
  if (!gid)
    return false;
  auto entry = lookup_uid(uid);
  if (!entry)
    return false;
  if (entry->gid == *gid)
    return true;

  int ngroups = 64;
  std::vector<gid_t> groups;
  for (;;) {
    groups.resize(static_cast<size_t>(ngroups));
    int n = ngroups;
    if (getgrouplist(entry->name.c_str(), entry->gid, groups.data(), &n) >= 0) {
      groups.resize(static_cast<size_t>(n));
      break;
    }
    // n now holds the number needed; grow to it (bounded).
    if (n <= ngroups)
      n = ngroups * 2;
    if (n > kMaxGroups)
      return false;
    ngroups = n;
  }
  for (gid_t g : groups) {
    if (g == *gid)
      return true;
  }
  return false;
}

namespace {

bool found(const std::optional<uid_t>& v) {
  return v.has_value();
}
bool found(const std::optional<std::string>& v) {
  return v.has_value();
}
bool found(bool member) {
  return member;
}

}  // namespace

template <typename Key, typename T, typename Lookup>
T CachedUserDirectory::cached(std::map<Key, Entry<T>, std::less<>>& table, Key key,
                              Lookup lookup) const {
  const uint64_t now = clock_.monotonic_usec();
  if (auto it = table.find(key); it != table.end()) {
    if (now < it->second.expires_usec)
      return it->second.value;
    table.erase(it);
  }
  T value = lookup();
  if (table.size() >= kMaxEntries) {
    for (auto it = table.begin(); it != table.end();)
      it = now < it->second.expires_usec ? std::next(it) : table.erase(it);
    if (table.size() >= kMaxEntries)
      table.clear();
  }
  table.emplace(std::move(key),
                Entry<T>{value, now + (found(value) ? kFoundTtlUsec : kAbsentTtlUsec)});
  return value;
}

std::optional<uid_t> CachedUserDirectory::uid_of(std::string_view user) const {
  // Names NSS is never asked about are not kept either.
  if (!valid_name(user))
    return std::nullopt;
  return cached(uids_, std::string(user), [&] { return directory_.uid_of(user); });
}

std::optional<std::string> CachedUserDirectory::name_of(uid_t uid) const {
  return cached(names_, uid, [&] { return directory_.name_of(uid); });
}

bool CachedUserDirectory::in_group(uid_t uid, std::string_view group) const {
  if (!valid_name(group))
    return false;
  return cached(groups_, std::make_pair(uid, std::string(group)),
                [&] { return directory_.in_group(uid, group); });
}

}  // namespace mfa

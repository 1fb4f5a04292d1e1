#include "core/challenges.hpp"

#include <errno.h>
#include <signal.h>

#include <array>
#include <vector>

#include "common/crypto.hpp"

namespace mfa {
namespace {

// EPERM (mfad as its own user, the login process root's): alive. A reused pid keeps the challenge
// until its expiry, which is the safe side.
bool process_alive(pid_t pid) {
  return kill(pid, 0) == 0 || errno != ESRCH;
}

}  // namespace

ChallengeTable::ChallengeTable() : alive_(process_alive) {}

void ChallengeTable::count_open(const Challenge& c, int delta) {
  auto adjust = [delta](auto& map, const auto& key) {
    auto it = map.find(key);
    if (delta > 0) {
      if (it == map.end())
        map.emplace(key, 1);
      else
        ++it->second;
    } else if (it != map.end() && --it->second == 0) {
      map.erase(it);
    }
  };
  adjust(open_per_user_, c.user);
  adjust(open_per_owner_, c.owner);
}

Result<Challenge*> ChallengeTable::create(std::string user, ChallengeOwner owner,
                                          std::set<Method> methods, StringMap context,
                                          uint64_t expires_usec) {
  std::string id;
  do {
    std::array<uint8_t, 16> raw{};
    if (!random_bytes(raw).ok())
      return make_error(Errc::kInternal, "Could not create a challenge (no randomness)");
    id = to_hex(raw);
  } while (table_.count(id) != 0);
  Challenge c;
  c.id = id;
  c.user = std::move(user);
  c.owner = owner;
  c.methods = std::move(methods);
  c.context = std::move(context);
  c.expires_usec = expires_usec;
  by_expiry_.emplace(expires_usec, id);
  auto [it, inserted] = table_.emplace(std::move(id), std::move(c));
  (void)inserted;
  count_open(it->second, +1);
  return &it->second;
}

Challenge* ChallengeTable::find(std::string_view id, const ChallengeOwner& owner) {
  auto it = table_.find(id);
  if (it == table_.end() || !(it->second.owner == owner))
    return nullptr;
  return &it->second;
}

ChallengeTable::Table::iterator ChallengeTable::erase(Table::iterator it) {
  const Challenge& c = it->second;
  if (!c.done)
    count_open(c, -1);
  by_expiry_.erase({c.expires_usec, c.id});
  return table_.erase(it);
}

void ChallengeTable::erase(std::string_view id) {
  auto it = table_.find(id);
  if (it != table_.end())
    erase(it);
}

void ChallengeTable::mark_done(Challenge* c) {
  if (c->done)
    return;
  c->done = true;
  count_open(*c, -1);
}

void ChallengeTable::drop_user(std::string_view user) {
  for (auto it = table_.begin(); it != table_.end();)
    it = it->second.user == user ? erase(it) : std::next(it);
}

void ChallengeTable::drop_exited_for_user(std::string_view user) {
  std::vector<std::string> gone;
  for (const auto& [id, c] : table_) {
    if (c.user == user && c.owner.pid > 0 && !alive_(c.owner.pid))
      gone.push_back(id);
  }
  for (const auto& id : gone)
    erase(id);
}

uint64_t ChallengeTable::expire(uint64_t now_usec) {
  while (!by_expiry_.empty() && by_expiry_.begin()->first <= now_usec) {
    auto it = table_.find(by_expiry_.begin()->second);
    if (it != table_.end())
      erase(it);
    else
      by_expiry_.erase(by_expiry_.begin());
  }
  return by_expiry_.empty() ? 0 : by_expiry_.begin()->first;
}

size_t ChallengeTable::open_for_user(std::string_view user) const {
  auto it = open_per_user_.find(user);
  return it == open_per_user_.end() ? 0 : it->second;
}

size_t ChallengeTable::open_for_caller(const ChallengeOwner& owner) const {
  auto it = open_per_owner_.find(owner);
  return it == open_per_owner_.end() ? 0 : it->second;
}

}  // namespace mfa

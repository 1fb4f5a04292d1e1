#include "core/challenges.hpp"

#include <array>

#include "common/crypto.hpp"

namespace mfa {

Result<Challenge*> ChallengeTable::create(std::string user, std::string bus_name,
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
  c.bus_name = std::move(bus_name);
  c.methods = std::move(methods);
  c.context = std::move(context);
  c.expires_usec = expires_usec;
  auto [it, inserted] = table_.emplace(id, std::move(c));
  (void)inserted;
  return &it->second;
}

Challenge* ChallengeTable::find(std::string_view id, std::string_view bus_name) {
  auto it = table_.find(id);
  if (it == table_.end() || it->second.bus_name != bus_name)
    return nullptr;
  return &it->second;
}

void ChallengeTable::erase(std::string_view id) {
  auto it = table_.find(id);
  if (it != table_.end())
    table_.erase(it);
}

void ChallengeTable::drop_caller(std::string_view bus_name) {
  std::erase_if(table_, [&](const auto& kv) { return kv.second.bus_name == bus_name; });
}

void ChallengeTable::drop_user(std::string_view user) {
  std::erase_if(table_, [&](const auto& kv) { return kv.second.user == user; });
}

uint64_t ChallengeTable::expire(uint64_t now_usec) {
  std::erase_if(table_, [&](const auto& kv) { return kv.second.expires_usec <= now_usec; });
  uint64_t next = 0;
  for (const auto& [id, c] : table_) {
    if (next == 0 || c.expires_usec < next)
      next = c.expires_usec;
  }
  return next;
}

size_t ChallengeTable::open_for_user(std::string_view user) const {
  size_t n = 0;
  for (const auto& [id, c] : table_)
    n += (!c.done && c.user == user) ? 1 : 0;
  return n;
}

size_t ChallengeTable::open_for_caller(std::string_view bus_name) const {
  size_t n = 0;
  for (const auto& [id, c] : table_)
    n += (!c.done && c.bus_name == bus_name) ? 1 : 0;
  return n;
}

}  // namespace mfa

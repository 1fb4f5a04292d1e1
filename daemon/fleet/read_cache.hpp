// Fleet mode's read cache (docs/fleet.md, "Logins from the cache"): which users' shared state in
// the local SQLite cache is known to match Redis, so that BeginAuthentication may skip its read of
// Redis (a login then costs one Redis round trip, its confirm, instead of two).
//
// A user's state is current when it was read while this host's subscription to the invalidation
// channel was live, no invalidation arrived between the read's request and its answer, and none
// since. The scripts that change what BeginAuthentication answers from (enrollment, lockout, the
// last backup code) publish the user's name on that channel (keys.hpp). Anything else
// forgets every user: the subscription lost or renewed, degraded mode entered or left. An entry
// also ages out, so that a change whose message was never sent is seen within kMaxAgeUsec.
//
// What the cache may answer is bounded by its callers (bus/manager.cpp): only a Begin that offers
// a factor, whose Verify the confirm script checks against Redis anyway. Every answer that ends a
// login without a code (not enrolled, locked) is read from Redis.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <unordered_map>

namespace mfa {

class FleetReadCache {
 public:
  static constexpr uint64_t kMaxAgeUsec = 60ull * 1000 * 1000;
  static constexpr size_t kMaxUsers = 10000;

  // A read of Redis starts: the token its answer brings to read_done().
  uint64_t read_started() const { return generation_; }
  // The read of user's state, started with token, is now in the cache (now: CLOCK_MONOTONIC).
  void read_done(const std::string& user, uint64_t token, uint64_t now_usec);
  bool current(const std::string& user, uint64_t now_usec) const;

  // The subscription to the invalidation channel is confirmed (true) or lost (false).
  void watching(bool live, uint64_t now_usec);
  // A message for user: its state changed in Redis.
  void invalidate(const std::string& user);
  void invalidate_all();

  // Degraded mode (docs/fleet.md, DegradedNullok): whether user's cached state was confirmed by
  // Redis since the last sync, i.e. read while the subscription was live with no message for the
  // user since, up to the outage. outage() freezes that knowledge when degraded mode is entered
  // (a subscription lost more than kOutageSlackUsec before it had missed messages: nobody is
  // confirmed); back_online() forgets it.
  static constexpr uint64_t kOutageSlackUsec = 5ull * 1000 * 1000;
  void outage(uint64_t now_usec);
  void back_online();
  bool confirmed(const std::string& user) const { return confirmed_.count(user) != 0; }

  bool live() const { return live_; }
  size_t size() const { return read_at_.size(); }

 private:
  bool live_ = false;
  // Moves on at every invalidation: a read in flight meanwhile may have read the state before
  // the change, and is not marked current.
  uint64_t generation_ = 0;
  std::unordered_map<std::string, uint64_t> read_at_;  // user -> when its read was answered
  std::unordered_map<std::string, bool> confirmed_;    // users confirmed since the last sync
  bool frozen_ = false;                                // degraded: confirmed_ is the outage's view
  uint64_t lost_at_usec_ = 0;                          // when the subscription was last lost
};

}  // namespace mfa

// Redis Sentinel (docs/fleet.md, "High availability"): which server is the primary, asked of the
// sentinels in turn (SENTINEL get-master-addr-by-name), and followed through failovers. The data
// clients (fleet/redis_client.hpp, PrimarySource) connect where this says, check ROLE before they
// are ready, and report a primary that proved wrong (not master, READONLY, TLS refused) or lost.
//
// A sentinel's answer is outside input: bounded, an IP literal and a port, never a host name, and
// only a hint. The server it names is trusted only once it passed TLS (unless AllowPlaintext=yes)
// and ROLE; a sentinel whose primary proved wrong is passed over for the next. `+switch-master`
// (published by any sentinel, unauthenticated) only makes mfad ask again.
#pragma once

#include <systemd/sd-event.h>

#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/handles.hpp"
#include "common/result.hpp"
#include "core/redis_address.hpp"
#include "fleet/redis_client.hpp"

namespace mfa {

namespace fleet {

// SENTINEL get-master-addr-by-name's reply: [ip, port]; nil when the sentinel knows no such
// master. tls: the primary is reached as rediss:// (every sentinel-mode connection is, unless
// AllowPlaintext=yes).
Result<RedisAddress> parse_master_address_reply(const RedisReply& reply, bool tls);
// A `+switch-master` message ("NAME OLD-IP OLD-PORT NEW-IP NEW-PORT"): whether it is about
// master_name. Its addresses are not used.
bool is_switch_master_of(std::string_view message, std::string_view master_name);

}  // namespace fleet

class SentinelDiscovery : public PrimarySource {
 public:
  struct Options {
    std::vector<RedisAddress> sentinels;  // 1 to kMaxRedisSentinels
    std::string master_name;
    // TLS, user, password and timeouts of the connections to the sentinels; its address is
    // unused. The primary is reached the same way (tls = sentinels[0].tls).
    RedisClientOptions connection;
  };

  static Result<std::unique_ptr<SentinelDiscovery>> create(sd_event* event, Options options);
  ~SentinelDiscovery() override;
  SentinelDiscovery(const SentinelDiscovery&) = delete;
  SentinelDiscovery& operator=(const SentinelDiscovery&) = delete;

  void attach(RedisClient* client) override;
  void detach(RedisClient* client) override;
  void suspect(const RedisAddress& primary, bool wrong_role, const std::string& why) override;

  const std::optional<RedisAddress>& primary() const { return primary_; }
  // Stops asking (shutdown).
  void close();

 private:
  SentinelDiscovery(sd_event* event, Options options);
  // Connects to the first sentinel from index on that is not distrusted (index itself when all
  // are).
  Status open(size_t index);
  void next_sentinel(const std::string& why);
  void ask();
  void answered(uint64_t generation, Result<RedisReply> reply);
  void schedule(uint64_t delay_usec);
  static int on_timer(sd_event_source* s, uint64_t usec, void* userdata);

  sd_event* event_;
  Options options_;
  size_t current_ = 0;                   // the sentinel asked
  std::unique_ptr<RedisClient> query_;   // to sentinels[current_]
  std::unique_ptr<RedisClient> hints_;   // subscribed to +switch-master on the same sentinel
  std::vector<RedisClient*> followers_;  // the data clients
  std::optional<RedisAddress> primary_;  // the last primary a sentinel named
  size_t named_by_ = 0;                  // the sentinel that named it (or named it last)
  // Per sentinel: until when it is passed over, having named a server that was not the primary.
  std::vector<uint64_t> distrusted_until_;
  EventSourcePtr timer_;      // the next question
  bool asking_ = false;       // a question is in flight
  bool rotate_ = false;       // the next question goes to the next sentinel
  uint64_t opened_usec_ = 0;  // when the current sentinel was connected to
  std::string last_error_;    // said once, not at every question
  uint64_t generation_ = 0;   // of the sentinel connection: late answers dropped
  uint64_t last_asked_usec_ = 0;
  bool closed_ = false;
};

}  // namespace mfa

// An asynchronous Redis client on the daemon's sd-event loop (STYLE rule 7): its own non-blocking
// socket (TCP, TLS over TCP, or a unix socket; docs/fleet.md "Transport") driven by one sd-event
// I/O source, hiredis 0.14 only for formatting commands and parsing replies (its async API has no
// TLS), per-command timeouts done by sd-event timers, AUTH with an ACL user and a password read
// from a file, and reconnection with backoff. Lua scripts go as EVALSHA with an EVAL fallback on
// NOSCRIPT.
//
// The connection (the TLS handshake included) is made in the background, never by a command: a
// command that cannot be answered in time (not connected, connection lost, timeout) completes at
// once with an error, and the caller falls back to its local state (fleet mode's degraded mode).
// A timeout also drops the connection, since its replies would arrive out of step.
#pragma once

#include <systemd/sd-event.h>

#include <sys/types.h>

#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "common/handles.hpp"
#include "common/result.hpp"
#include "common/secure_buffer.hpp"
#include "core/redis_address.hpp"

struct redisReader;
struct redisReply;
struct ssl_ctx_st;

namespace mfa {

// An owned copy of a hiredis reply.
struct RedisReply {
  enum class Type { kNil, kString, kStatus, kError, kInteger, kArray };
  Type type = Type::kNil;
  std::string str;  // string, status, error
  long long integer = 0;
  std::vector<RedisReply> elements;

  bool is_nil() const { return type == Type::kNil; }
  bool is_error() const { return type == Type::kError; }
  static RedisReply from(const redisReply* r);
};

// What one reply may declare: its arrays' elements in all, nested ones included (hiredis 0.14
// allocates an array's element pointers as soon as it reads its length: "*1700000000" alone asked
// for 13.6 GB). The largest reply mfad reads, HGETALL of the fleet's session records, has two per
// session.
inline constexpr size_t kMaxRedisReplyElements = size_t{1} << 20;
// Makes reader refuse a reply that declares more (an out-of-memory error of the reader: the
// connection is dropped). *total is the reader's count, kept by its owner for its lifetime.
void bound_redis_reader(redisReader* reader, size_t* total);

// Reads a password file: refused when it is group- or world-readable or not a regular file; one
// line, the trailing newline dropped.
Result<SecureString> read_redis_password_file(const std::string& path);

struct LuaScript {
  std::string body;
  std::string sha1_hex;  // SHA-1 of body, as SCRIPT LOAD would answer
  explicit LuaScript(std::string text);
};

class TlsStream;
class RedisClient;

// Where a client that follows failovers learns its primary (fleet/sentinel.hpp): attach() gives
// the client its primary now if known (RedisClient::set_primary) and again at every change;
// suspect() says the client found its primary wrong (ROLE is not master, a READONLY reply) or
// lost it, and asks for the primary again.
class PrimarySource {
 public:
  virtual ~PrimarySource() = default;
  virtual void attach(RedisClient* client) = 0;
  virtual void detach(RedisClient* client) = 0;
  virtual void suspect(const RedisAddress& primary, bool wrong_role, const std::string& why) = 0;
};

struct RedisClientOptions {
  RedisAddress address;  // unused when primary is set (until it names one)
  // Sentinel mode: the primary comes from there, is checked with ROLE before the client is ready,
  // and is dropped at the first READONLY reply (docs/fleet.md, "High availability"). Not owned;
  // outlives the client.
  PrimarySource* primary = nullptr;
  // rediss://: the TLS settings (fleet/tls_stream.hpp's make_redis_tls_context), shared.
  std::shared_ptr<ssl_ctx_st> tls;
  // unix:: who may own the socket and listen on it (fleet/unix_socket_check.hpp); empty = root
  // and mfad's own user.
  std::vector<uid_t> socket_owners;
  std::string user;       // "" = AUTH with the password alone (requirepass)
  SecureString password;  // "" = no AUTH
  uint64_t timeout_usec = 200 * 1000;
  uint64_t min_backoff_usec = 100 * 1000;
  uint64_t max_backoff_usec = 5 * 1000 * 1000;
  // Connecting (TCP, TLS handshake) that takes longer is given up and retried.
  uint64_t connect_timeout_usec = 2 * 1000 * 1000;
  // Of the connection's I/O source: a subscription whose messages must be seen before the calls
  // that arrive with them (the read cache's invalidations) runs before the bus.
  int64_t priority = 0;
  // Unparsed reply bytes held at most; 0 = no bound beyond kMaxRedisReplyElements.
  size_t max_reply_bytes = 0;
};

class RedisClient {
 public:
  using Callback = std::function<void(Result<RedisReply>)>;
  // Called when the client becomes ready (connected and authenticated) or stops being ready.
  using StateCallback = std::function<void(bool ready, const std::string& why)>;

  // Starts connecting at once; never fails for an unreachable server (it retries with backoff).
  static Result<std::unique_ptr<RedisClient>> create(sd_event* event, RedisClientOptions options,
                                                     StateCallback on_state);
  ~RedisClient();
  RedisClient(const RedisClient&) = delete;
  RedisClient& operator=(const RedisClient&) = delete;

  bool ready() const { return state_ == State::kReady; }
  // Sentinel mode: the primary is found (and followed) through the sentinels.
  bool follows_primary() const { return options_.primary != nullptr; }
  const std::string& last_error() const { return last_error_; }

  // Sends a command. done runs exactly once, possibly before command() returns (not ready).
  void command(std::vector<std::string> args, Callback done);
  // EVALSHA script keys args, then EVAL on NOSCRIPT.
  void eval(const LuaScript& script, std::vector<std::string> keys, std::vector<std::string> args,
            Callback done);
  // Shutdown: every command in flight completes now with an error (why), later ones at once, and
  // the client no longer reconnects. The connection is freed by the destructor.
  void close(const std::string& why);

  // Sentinel mode: the primary to connect to. A different one than the current ends the
  // connection to the old one at once (its commands fail: degraded, never a write to a primary
  // that may be demoted) and connects to the new one; the same one changes nothing.
  void set_primary(const RedisAddress& address);

  // Subscriber mode, for a client of its own (a subscribed connection takes no other command):
  // after every (re)connection the client subscribes to channel. on_subscribed runs once the
  // server confirmed (within the timeout, else the connection starts over), on_message for each
  // message published on the channel. Call once.
  void subscribe(std::string channel, std::function<void()> on_subscribed,
                 std::function<void(const std::string& message)> on_message);

 private:
  enum class State { kIdle, kConnecting, kHandshaking, kAuthenticating, kReady };
  // The request id of the subscription: its confirmation is a request like any other (with a
  // timeout); the messages after it come with no command (next_id_ starts at 1).
  static constexpr uint64_t kSubscriptionId = 0;
  struct Request {
    Callback done;
    uint64_t deadline_usec = 0;  // CLOCK_MONOTONIC
  };

  RedisClient(sd_event* event, RedisClientOptions options, StateCallback on_state);
  void connect();
  Status open_socket();
  void connected();
  void handshake();
  void authenticate();
  void check_role();
  void became_ready();
  // wrong_primary: the server is not a primary mfad may use (ROLE, READONLY, TLS refused).
  void drop(const std::string& why, bool wrong_primary = false);
  void lose(const std::string& why);
  void close_connection();
  void schedule_reconnect();
  void set_ready(bool ready, const std::string& why);
  void send(std::vector<std::string> args, Callback done, bool internal);
  void send_as(uint64_t id, std::vector<std::string> args, Callback done, bool internal);
  void send_subscribe();
  void on_published(const RedisReply& reply);
  void complete(uint64_t id, Result<RedisReply> result);
  void fail_all(const std::string& why);
  void arm_timeout();
  void append_output(const char* data, size_t size);
  void clear_output();
  bool flush();
  bool read_replies();
  void dispatch(redisReply* reply);
  void update_io();

  static int on_io(sd_event_source* s, int fd, uint32_t revents, void* userdata);
  static int on_timeout(sd_event_source* s, uint64_t usec, void* userdata);
  static int on_reconnect(sd_event_source* s, uint64_t usec, void* userdata);

  sd_event* event_;
  RedisClientOptions options_;
  StateCallback on_state_;
  Fd fd_;
  std::unique_ptr<TlsStream> tls_;
  std::unique_ptr<redisReader, void (*)(redisReader*)> reader_;
  EventSourcePtr io_;
  // Connecting: the connection's deadline; otherwise the next attempt (with backoff).
  EventSourcePtr reconnect_timer_;
  // One timer for every command: replies come in order, and the first timeout drops the
  // connection with every command on it, so only the oldest command's deadline matters. It may
  // fire early (for a command answered since) and then moves on to the oldest one left: no timer
  // to add and remove, no timerfd to re-arm, per command.
  EventSourcePtr timeout_timer_;
  // Commands formatted and not yet written; it may hold the password (AUTH): wiped once written.
  std::string out_;
  size_t out_sent_ = 0;
  bool write_blocked_ = false;         // the socket (or TLS) wants EPOLLOUT before writing more
  bool write_waits_for_read_ = false;  // TLS: the blocked write goes on once bytes come in
  bool read_wants_write_ = false;      // TLS: a read can go on once the socket is writable
  uint32_t io_events_ = 0;
  uint64_t generation_ = 0;  // of the connection: a callback that dropped it ends the I/O loop
  uint64_t connect_started_usec_ = 0;
  bool handshake_logged_ = false;  // since the client was last ready
  State state_ = State::kIdle;
  bool announced_ready_ = false;
  uint64_t backoff_usec_ = 0;
  uint64_t next_id_ = 1;
  std::map<uint64_t, Request> requests_;  // by id: the first is the oldest
  std::deque<uint64_t> in_flight_;        // ids in the order their commands were sent
  bool closed_ = false;                   // close() was called
  std::string last_error_;
  bool has_address_ = true;    // false in sentinel mode until a primary is named
  size_t reply_elements_ = 0;  // bound_redis_reader's count
  std::string channel_;        // subscriber mode
  bool subscribed_ = false;    // the server confirmed: what comes without a command is a message
  std::function<void()> on_subscribed_;
  std::function<void(const std::string&)> on_message_;
};

}  // namespace mfa

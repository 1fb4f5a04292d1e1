#include "fleet/redis_client.hpp"

#include <fcntl.h>
#include <hiredis/hiredis.h>
#include <openssl/sha.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <cstring>
#include <exception>

#include "common/crypto.hpp"
#include "common/secret_file.hpp"
#include "core/log.hpp"
#include "fleet/tls_stream.hpp"

namespace mfa {

namespace {

constexpr size_t kMaxPasswordFile = 4096;

Error redis_error(std::string message) {
  return make_error(Errc::kIo, std::move(message));
}

// hiredis's own reply functions, which bound_redis_reader's array function calls.
const redisReplyObjectFunctions* hiredis_functions = nullptr;

void* create_bounded_array(const redisReadTask* task, int elements) {
  auto* total = static_cast<size_t*>(task->privdata);
  if (task->parent == nullptr)
    *total = 0;  // a new reply
  if (elements > 0) {
    if (static_cast<size_t>(elements) > kMaxRedisReplyElements - *total)
      return nullptr;  // hiredis: an out-of-memory error
    *total += static_cast<size_t>(elements);
  }
  return hiredis_functions->createArray(task, elements);
}

}  // namespace

void bound_redis_reader(redisReader* reader, size_t* total) {
  static redisReplyObjectFunctions bounded = [reader] {
    hiredis_functions = reader->fn;  // every reader hiredis creates has its default functions
    redisReplyObjectFunctions f = *reader->fn;
    f.createArray = &create_bounded_array;
    return f;
  }();
  reader->fn = &bounded;
  reader->privdata = total;
}

RedisReply RedisReply::from(const redisReply* r) {
  RedisReply out;
  if (r == nullptr)
    return out;
  switch (r->type) {
    case REDIS_REPLY_STRING:
      out.type = Type::kString;
      out.str.assign(r->str, r->len);
      break;
    case REDIS_REPLY_STATUS:
      out.type = Type::kStatus;
      out.str.assign(r->str, r->len);
      break;
    case REDIS_REPLY_ERROR:
      out.type = Type::kError;
      out.str.assign(r->str, r->len);
      break;
    case REDIS_REPLY_INTEGER:
      out.type = Type::kInteger;
      out.integer = r->integer;
      break;
    case REDIS_REPLY_ARRAY:
      out.type = Type::kArray;
      out.elements.reserve(r->elements);
      for (size_t i = 0; i < r->elements; ++i)
        out.elements.push_back(from(r->element[i]));
      break;
    default:
      out.type = Type::kNil;
      break;
  }
  return out;
}

Result<SecureString> read_redis_password_file(const std::string& path) {
  return read_secret_file(path,
                          {"the Redis password file", SecretFormat::kFirstLine, kMaxPasswordFile});
}

LuaScript::LuaScript(std::string text) : body(std::move(text)) {
  unsigned char digest[SHA_DIGEST_LENGTH];
  SHA1(reinterpret_cast<const unsigned char*>(body.data()), body.size(), digest);
  sha1_hex = to_hex(digest);
}

// ---------------------------------------------------------------------------------------------

RedisClient::RedisClient(sd_event* event, RedisClientOptions options, StateCallback on_state)
    : event_(event),
      options_(std::move(options)),
      on_state_(std::move(on_state)),
      reader_(nullptr, &redisReaderFree) {
  has_address_ = options_.primary == nullptr;
  if (options_.socket_owners.empty()) {
    options_.socket_owners.push_back(0);
    if (geteuid() != 0)
      options_.socket_owners.push_back(geteuid());
  }
}

Result<std::unique_ptr<RedisClient>> RedisClient::create(sd_event* event,
                                                         RedisClientOptions options,
                                                         StateCallback on_state) {
  if (options.address.tls && !options.tls)
    return make_error(Errc::kInternal, "rediss:// without TLS settings");
  std::unique_ptr<RedisClient> c(new RedisClient(event, std::move(options), std::move(on_state)));
  sd_event_source* timer = nullptr;
  int r = sd_event_add_time(event, &timer, CLOCK_MONOTONIC, UINT64_MAX, 1000,
                            &RedisClient::on_reconnect, c.get());
  if (r < 0)
    return make_error(Errc::kInternal, std::string("cannot add the Redis timer: ") + strerror(-r));
  c->reconnect_timer_.reset(timer);
  (void)sd_event_source_set_enabled(timer, SD_EVENT_OFF);
  (void)sd_event_source_set_description(timer, "redis-reconnect");
  timer = nullptr;
  r = sd_event_add_time(event, &timer, CLOCK_MONOTONIC, UINT64_MAX, 1000, &RedisClient::on_timeout,
                        c.get());
  if (r < 0)
    return make_error(Errc::kInternal, std::string("cannot add the Redis timer: ") + strerror(-r));
  c->timeout_timer_.reset(timer);
  (void)sd_event_source_set_enabled(timer, SD_EVENT_OFF);
  (void)sd_event_source_set_description(timer, "redis-timeout");
  if (c->options_.primary != nullptr) {
    c->last_error_ = "no primary known yet (asking the sentinels)";
    c->options_.primary->attach(c.get());  // connects once a primary is named
  } else {
    c->connect();
  }
  return c;
}

RedisClient::~RedisClient() {
  if (options_.primary != nullptr)
    options_.primary->detach(this);
  requests_.clear();
  close_connection();
}

void RedisClient::set_primary(const RedisAddress& address) {
  if (closed_)
    return;
  // The same one again: a connection that failed is retried with its backoff, not at once (the
  // sentinels name a dead primary until they fail over).
  if (has_address_ && address.describe() == options_.address.describe())
    return;
  const bool had = has_address_;
  const std::string old = options_.address.describe();
  options_.address = address;
  has_address_ = true;
  if (had) {
    const std::string why = "the primary moved from " + old + " to " + address.describe();
    MFA_LOG_INFO("Redis: %s", why.c_str());
    last_error_ = why;
    state_ = State::kIdle;
    close_connection();
    fail_all(why);
    set_ready(false, why);
  }
  backoff_usec_ = 0;
  (void)sd_event_source_set_enabled(reconnect_timer_.get(), SD_EVENT_OFF);
  connect();
}

// The socket, the TLS session and the parser go; requests are the caller's business.
void RedisClient::close_connection() {
  ++generation_;
  io_.reset();
  io_events_ = 0;
  tls_.reset();
  fd_.reset();
  reader_.reset();
  clear_output();
  in_flight_.clear();
  subscribed_ = false;
  write_blocked_ = false;
  write_waits_for_read_ = false;
  read_wants_write_ = false;
}

void RedisClient::connect() {
  if (fd_.valid() || closed_ || !has_address_)
    return;
  // The connection (and its handshake) must be done by then, else it starts over.
  uint64_t now = 0;
  (void)sd_event_now(event_, CLOCK_MONOTONIC, &now);
  connect_started_usec_ = now;
  (void)sd_event_source_set_time(reconnect_timer_.get(), now + options_.connect_timeout_usec);
  (void)sd_event_source_set_enabled(reconnect_timer_.get(), SD_EVENT_ONESHOT);
  Status opened = open_socket();
  if (!opened.ok()) {
    const std::string why =
        "cannot connect to Redis at " + options_.address.describe() + ": " + opened.error().message;
    if (why != last_error_)  // once, not at every retry
      MFA_LOG_WARNING("%s", why.c_str());
    last_error_ = why;
    close_connection();
    schedule_reconnect();
    if (options_.primary != nullptr)
      options_.primary->suspect(options_.address, /*wrong_role=*/false, why);
    return;
  }
  update_io();
}

void RedisClient::authenticate() {
  (void)sd_event_source_set_enabled(reconnect_timer_.get(), SD_EVENT_OFF);  // connected
  state_ = State::kAuthenticating;
  update_io();
  if (options_.password.view().empty()) {
    check_role();
    return;
  }
  std::vector<std::string> args{"AUTH"};
  if (!options_.user.empty())
    args.push_back(options_.user);
  args.emplace_back(options_.password.view());
  send(
      std::move(args),
      [this](Result<RedisReply> reply) {
        if (!reply.ok())
          return;  // already dropped
        if (reply->is_error()) {
          const std::string why = "Redis refused authentication as " +
                                  (options_.user.empty() ? std::string("default") : options_.user) +
                                  ": " + reply->str;
          if (why != last_error_)  // once, not at every retry
            MFA_LOG_ERROR("%s", why.c_str());
          drop(why);
          return;
        }
        check_role();
      },
      /*internal=*/true);
}

// Sentinel mode: a server the sentinels named is used only if it says it is the primary (a
// sentinel's answer is outside input, and a demoted primary still accepts connections).
void RedisClient::check_role() {
  if (options_.primary == nullptr) {
    became_ready();
    return;
  }
  send(
      {"ROLE"},
      [this](Result<RedisReply> reply) {
        if (!reply.ok())
          return;  // already dropped
        const bool master = reply->type == RedisReply::Type::kArray && !reply->elements.empty() &&
                            reply->elements[0].str == "master";
        if (!master) {
          const std::string role =
              reply->is_error() ? reply->str
              : reply->type == RedisReply::Type::kArray && !reply->elements.empty()
                  ? reply->elements[0].str.substr(0, 32)
                  : std::string("an unexpected reply");
          const std::string why = options_.address.describe() +
                                  " is not the primary (ROLE: " + role + "); not using it";
          if (why != last_error_)
            MFA_LOG_WARNING("Redis: %s", why.c_str());
          drop(why, /*wrong_primary=*/true);
          return;
        }
        became_ready();
      },
      /*internal=*/true);
}

void RedisClient::became_ready() {
  state_ = State::kReady;
  backoff_usec_ = 0;
  set_ready(true, "connected");
}

void RedisClient::schedule_reconnect() {
  if (closed_)
    return;
  backoff_usec_ = backoff_usec_ == 0 ? options_.min_backoff_usec
                                     : std::min(backoff_usec_ * 2, options_.max_backoff_usec);
  uint64_t now = 0;
  (void)sd_event_now(event_, CLOCK_MONOTONIC, &now);
  int r = sd_event_source_set_time(reconnect_timer_.get(), now + backoff_usec_);
  if (r >= 0)
    r = sd_event_source_set_enabled(reconnect_timer_.get(), SD_EVENT_ONESHOT);
  if (r < 0)
    MFA_LOG_ERROR("cannot arm the Redis reconnect timer: %s", strerror(-r));
}

int RedisClient::on_reconnect(sd_event_source* /*s*/, uint64_t /*usec*/, void* userdata) {
  auto* self = static_cast<RedisClient*>(userdata);
  try {
    if (self->state_ == State::kConnecting || self->state_ == State::kHandshaking) {
      const std::string why =
          "cannot connect to Redis at " + self->options_.address.describe() + ": no connection " +
          (self->state_ == State::kHandshaking ? "(TLS handshake) " : "") + "within " +
          std::to_string(self->options_.connect_timeout_usec / 1000) + " ms";
      if (why != self->last_error_)
        MFA_LOG_WARNING("%s", why.c_str());
      self->drop(why);
      return 0;
    }
    self->connect();
  } catch (...) {
    MFA_LOG_ERROR("Redis reconnect failed");
  }
  return 0;
}

void RedisClient::set_ready(bool ready, const std::string& why) {
  if (ready == announced_ready_)
    return;
  announced_ready_ = ready;
  if (ready)
    handshake_logged_ = false;
  if (ready && !channel_.empty())
    send_subscribe();
  if (on_state_)
    on_state_(ready, why);
}

void RedisClient::drop(const std::string& why, bool wrong_primary) {
  last_error_ = why;
  state_ = State::kIdle;
  close_connection();
  fail_all(why);
  set_ready(false, why);
  schedule_reconnect();
  // Sentinel mode: asks again who the primary is (it may have failed over, or the one named may
  // not be the primary at all).
  if (options_.primary != nullptr && has_address_ && !closed_)
    options_.primary->suspect(options_.address, wrong_primary, why);
}

// A connection that broke under us: said once (not at every retry), then dropped.
void RedisClient::lose(const std::string& why) {
  if (why != last_error_)
    MFA_LOG_WARNING("Redis at %s: %s", options_.address.describe().c_str(), why.c_str());
  drop(why);
}

void RedisClient::fail_all(const std::string& why) {
  auto pending = std::move(requests_);
  requests_.clear();
  for (auto& [id, req] : pending) {
    if (req.done)
      req.done(redis_error("Redis unavailable: " + why));
  }
}

void RedisClient::send(std::vector<std::string> args, Callback done, bool internal) {
  send_as(next_id_++, std::move(args), std::move(done), internal);
}

void RedisClient::send_as(uint64_t id, std::vector<std::string> args, Callback done,
                          bool internal) {
  const bool usable = fd_.valid() && !closed_ &&
                      (state_ == State::kReady || (internal && state_ == State::kAuthenticating));
  if (!usable) {
    done(redis_error("Redis unavailable: " +
                     (last_error_.empty() ? std::string("not connected") : last_error_)));
    return;
  }
  std::vector<const char*> argv;
  std::vector<size_t> argvlen;
  argv.reserve(args.size());
  argvlen.reserve(args.size());
  for (const auto& a : args) {
    argv.push_back(a.data());
    argvlen.push_back(a.size());
  }
  char* formatted = nullptr;
  const int len = redisFormatCommandArgv(&formatted, static_cast<int>(args.size()), argv.data(),
                                         argvlen.data());
  for (auto& a : args)
    explicit_bzero(a.data(), a.size());
  if (len < 0 || formatted == nullptr) {
    done(redis_error("Redis command could not be sent"));
    return;
  }
  append_output(formatted, static_cast<size_t>(len));
  explicit_bzero(formatted, static_cast<size_t>(len));
  redisFreeCommand(formatted);
  Request req;
  req.done = std::move(done);
  uint64_t now = 0;
  (void)sd_event_now(event_, CLOCK_MONOTONIC, &now);
  req.deadline_usec = now + options_.timeout_usec;
  requests_.emplace(id, std::move(req));
  in_flight_.push_back(id);
  arm_timeout();
  // Written now rather than after one more loop iteration (an epoll round trip less per command).
  if (!write_blocked_ && flush())
    update_io();
}

// The output buffer may hold the password: never left behind in freed memory.
void RedisClient::append_output(const char* data, size_t size) {
  if (out_.size() + size > out_.capacity()) {
    std::string larger;
    larger.reserve(std::max(out_.capacity() * 2, out_.size() + size));
    larger.append(out_);
    explicit_bzero(out_.data(), out_.size());
    out_.swap(larger);
  }
  out_.append(data, size);
}

void RedisClient::clear_output() {
  explicit_bzero(out_.data(), out_.size());
  out_.clear();
  out_sent_ = 0;
}

// The timer is due no later than the oldest command's deadline (see timeout_timer_).
void RedisClient::arm_timeout() {
  if (requests_.empty())
    return;
  sd_event_source* t = timeout_timer_.get();
  int enabled = SD_EVENT_OFF;
  if (sd_event_source_get_enabled(t, &enabled) >= 0 && enabled != SD_EVENT_OFF)
    return;  // already due at or before the oldest command's deadline
  int r = sd_event_source_set_time(t, requests_.begin()->second.deadline_usec);
  if (r >= 0)
    r = sd_event_source_set_enabled(t, SD_EVENT_ONESHOT);
  if (r < 0)
    MFA_LOG_ERROR("cannot arm the Redis timeout: %s", strerror(-r));
}

void RedisClient::command(std::vector<std::string> args, Callback done) {
  send(std::move(args), std::move(done), /*internal=*/false);
}

void RedisClient::eval(const LuaScript& script, std::vector<std::string> keys,
                       std::vector<std::string> args, Callback done) {
  std::vector<std::string> argv{"EVALSHA", script.sha1_hex, std::to_string(keys.size())};
  for (auto& k : keys)
    argv.push_back(k);
  for (auto& a : args)
    argv.push_back(a);
  const LuaScript* s = &script;  // scripts are static objects
  send(
      std::move(argv),
      [this, s, keys = std::move(keys), args = std::move(args),
       done = std::move(done)](Result<RedisReply> reply) mutable {
        if (reply.ok() && reply->is_error() && reply->str.starts_with("NOSCRIPT")) {
          std::vector<std::string> full{"EVAL", s->body, std::to_string(keys.size())};
          for (auto& k : keys)
            full.push_back(std::move(k));
          for (auto& a : args)
            full.push_back(std::move(a));
          send(std::move(full), std::move(done), false);
          return;
        }
        done(std::move(reply));
      },
      false);
}

void RedisClient::subscribe(std::string channel, std::function<void()> on_subscribed,
                            std::function<void(const std::string& message)> on_message) {
  channel_ = std::move(channel);
  on_subscribed_ = std::move(on_subscribed);
  on_message_ = std::move(on_message);
  if (ready())
    send_subscribe();
}

void RedisClient::send_subscribe() {
  send_as(
      kSubscriptionId, {"SUBSCRIBE", channel_},
      [this](Result<RedisReply> reply) {
        if (!reply.ok())
          return;  // dropped: subscribes again once reconnected
        if (reply->type != RedisReply::Type::kArray || reply->elements.size() < 2 ||
            reply->elements[0].str != "subscribe") {
          const std::string why =
              "Redis refused the subscription to " + channel_ + ": " +
              (reply->is_error() ? reply->str : std::string("unexpected reply"));
          if (why != last_error_)
            MFA_LOG_ERROR("%s", why.c_str());
          drop(why);
          return;
        }
        if (on_subscribed_)
          on_subscribed_();
      },
      /*internal=*/false);
}

// ["message", channel, payload], after the subscription's confirmation.
void RedisClient::on_published(const RedisReply& reply) {
  if (reply.type != RedisReply::Type::kArray || reply.elements.size() != 3 ||
      reply.elements[0].str != "message" || reply.elements[1].str != channel_)
    return;
  if (on_message_)
    on_message_(reply.elements[2].str);
}

void RedisClient::close(const std::string& why) {
  closed_ = true;
  state_ = State::kIdle;
  last_error_ = why;
  (void)sd_event_source_set_enabled(reconnect_timer_.get(), SD_EVENT_OFF);
  fail_all(why);
}

void RedisClient::complete(uint64_t id, Result<RedisReply> result) {
  auto it = requests_.find(id);
  if (it == requests_.end())
    return;
  Request req = std::move(it->second);
  requests_.erase(it);
  // A primary demoted under us (a failover this host has not heard of yet) refuses writes with
  // READONLY: nothing more is sent there; the sentinels are asked for the new primary.
  const bool demoted = options_.primary != nullptr && result.ok() && result->is_error() &&
                       result->str.starts_with("READONLY");
  if (req.done)
    req.done(std::move(result));
  if (demoted && fd_.valid()) {
    const std::string why = options_.address.describe() + " answered READONLY: no longer primary";
    MFA_LOG_WARNING("Redis: %s", why.c_str());
    drop(why, /*wrong_primary=*/true);
  }
}

int RedisClient::on_timeout(sd_event_source* /*s*/, uint64_t /*usec*/, void* userdata) {
  auto* self = static_cast<RedisClient*>(userdata);
  try {
    if (self->requests_.empty())
      return 0;
    uint64_t now = 0;
    (void)sd_event_now(self->event_, CLOCK_MONOTONIC, &now);
    const auto oldest = self->requests_.begin();
    if (oldest->second.deadline_usec > now) {
      // Its command was answered: now due for the oldest one left.
      self->arm_timeout();
      return 0;
    }
    const uint64_t id = oldest->first;
    const std::string why =
        "no answer within " + std::to_string(self->options_.timeout_usec / 1000) + " ms";
    MFA_LOG_WARNING("Redis at %s: %s", self->options_.address.describe().c_str(), why.c_str());
    self->complete(id, redis_error("Redis timed out: " + why));
    // Later replies would no longer match their requests: start over.
    self->drop(why);
  } catch (...) {
    MFA_LOG_ERROR("Redis timeout handling failed");
  }
  return 0;
}

}  // namespace mfa

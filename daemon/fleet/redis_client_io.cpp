// RedisClient's connection: the socket (TCP or unix), the TLS handshake, and the I/O source that
// writes formatted commands and feeds replies to hiredis's parser (redis_client.hpp).
#include <arpa/inet.h>
#include <hiredis/hiredis.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "core/log.hpp"
#include "fleet/redis_client.hpp"
#include "fleet/tls_stream.hpp"
#include "fleet/unix_socket_check.hpp"

namespace mfa {

namespace {

constexpr size_t kReadChunk = 16 * 1024;

}  // namespace

// Starts a non-blocking connect; state_ is kConnecting (wait for EPOLLOUT) or it went on.
Status RedisClient::open_socket() {
  const RedisAddress& a = options_.address;
  reply_elements_ = 0;
  reader_.reset(redisReaderCreate());
  if (!reader_)
    return make_error(Errc::kInternal, "out of memory");
  bound_redis_reader(reader_.get(), &reply_elements_);
  if (!a.unix_path.empty()) {
    // Redis's own socket, not one another user put there (fleet/unix_socket_check.hpp).
    MFA_CHECK(check_redis_socket_path(a.unix_path, options_.socket_owners));
    struct sockaddr_un sun {};
    sun.sun_family = AF_UNIX;
    if (a.unix_path.size() >= sizeof(sun.sun_path))
      return make_error(Errc::kInvalidArgument, "the socket path is too long");
    memcpy(sun.sun_path, a.unix_path.c_str(), a.unix_path.size() + 1);
    fd_ = Fd(socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
    if (!fd_.valid())
      return make_error(Errc::kIo, strerror(errno));
    if (::connect(fd_.get(), reinterpret_cast<const sockaddr*>(&sun), sizeof(sun)) < 0)
      return make_error(Errc::kIo, strerror(errno));  // EAGAIN: backlog full, retried later
    state_ = State::kConnecting;
    connected();
    return {};
  }
  sockaddr_storage ss{};
  socklen_t len = 0;
  const bool v6 = a.host.find(':') != std::string::npos;
  if (v6) {
    auto* sin6 = reinterpret_cast<sockaddr_in6*>(&ss);
    sin6->sin6_family = AF_INET6;
    sin6->sin6_port = htons(static_cast<uint16_t>(a.port));
    if (inet_pton(AF_INET6, a.host.c_str(), &sin6->sin6_addr) != 1)
      return make_error(Errc::kInvalidArgument, "not an IP address");
    len = sizeof(*sin6);
  } else {
    auto* sin = reinterpret_cast<sockaddr_in*>(&ss);
    sin->sin_family = AF_INET;
    sin->sin_port = htons(static_cast<uint16_t>(a.port));
    if (inet_pton(AF_INET, a.host.c_str(), &sin->sin_addr) != 1)
      return make_error(Errc::kInvalidArgument, "not an IP address");
    len = sizeof(*sin);
  }
  fd_ = Fd(socket(v6 ? AF_INET6 : AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
  if (!fd_.valid())
    return make_error(Errc::kIo, strerror(errno));
  const int one = 1;
  (void)setsockopt(fd_.get(), IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
  state_ = State::kConnecting;
  if (::connect(fd_.get(), reinterpret_cast<const sockaddr*>(&ss), len) < 0) {
    if (errno != EINPROGRESS)
      return make_error(Errc::kIo, strerror(errno));
    return {};  // on_io goes on once the socket is writable
  }
  connected();
  return {};
}

// The socket is connected: check who answers (unix), start TLS, or authenticate.
void RedisClient::connected() {
  if (!options_.address.unix_path.empty()) {
    Status peer =
        check_redis_socket_peer(fd_.get(), options_.address.unix_path, options_.socket_owners);
    if (!peer.ok()) {
      if (peer.error().message != last_error_)
        MFA_LOG_ERROR("%s", peer.error().message.c_str());
      drop(peer.error().message);
      return;
    }
  }
  if (options_.address.tls) {
    auto stream = TlsStream::create(options_.tls, fd_.get(), options_.address.host);
    if (!stream.ok()) {
      drop(stream.error().message);
      return;
    }
    tls_ = std::move(stream).value();
    state_ = State::kHandshaking;
    handshake();
    return;
  }
  authenticate();
}

void RedisClient::handshake() {
  switch (tls_->handshake()) {
    case TlsIo::kDone:
      break;
    case TlsIo::kWantRead:
      write_blocked_ = false;
      update_io();
      return;
    case TlsIo::kWantWrite:
      write_blocked_ = true;
      update_io();
      return;
    case TlsIo::kClosed:
    case TlsIo::kFailed: {
      // Before any byte of AUTH: a server that cannot prove who it is learns no password.
      const std::string why =
          "TLS with Redis at " + options_.address.describe() + " failed: " + tls_->why();
      if (why != last_error_)
        MFA_LOG_ERROR("%s", why.c_str());
      drop(why, /*wrong_primary=*/true);
      return;
    }
  }
  write_blocked_ = false;
  uint64_t now = 0;
  (void)sd_event_now(event_, CLOCK_MONOTONIC, &now);
  // The cost of TLS at connection time, away from the login path (docs/fleet.md); once until
  // the connection is in use (not at every retry of one that fails after the handshake).
  if (!handshake_logged_)
    MFA_LOG_INFO("TLS with Redis at %s: %s, connected and verified in %.1f ms",
                 options_.address.describe().c_str(), tls_->version().c_str(),
                 static_cast<double>(now - connect_started_usec_) / 1000.0);
  handshake_logged_ = true;
  authenticate();
}

// Writes what it can; false when the connection was dropped.
bool RedisClient::flush() {
  while (out_sent_ < out_.size()) {
    const char* data = out_.data() + out_sent_;
    const size_t size = out_.size() - out_sent_;
    size_t written = 0;
    if (tls_) {
      switch (tls_->write(data, size, &written)) {
        case TlsIo::kDone:
          break;
        case TlsIo::kWantRead:  // EPOLLIN is always watched, and on_io flushes again
          write_blocked_ = true;
          write_waits_for_read_ = true;  // no EPOLLOUT: a writable socket would spin the loop
          return true;
        case TlsIo::kWantWrite:
          write_blocked_ = true;
          write_waits_for_read_ = false;
          return true;
        case TlsIo::kClosed:
        case TlsIo::kFailed:
          lose("connection lost: " + tls_->why());
          return false;
      }
    } else {
      const ssize_t n = ::send(fd_.get(), data, size, MSG_NOSIGNAL);
      if (n < 0) {
        if (errno == EINTR)
          continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK) {
          write_blocked_ = true;
          return true;
        }
        lose(std::string("connection lost: ") + strerror(errno));
        return false;
      }
      written = static_cast<size_t>(n);
    }
    out_sent_ += written;
  }
  write_blocked_ = false;
  write_waits_for_read_ = false;
  clear_output();
  return true;
}

// Reads what has come and hands each whole reply on; false when the connection was dropped.
bool RedisClient::read_replies() {
  const uint64_t generation = generation_;
  char buf[kReadChunk];
  for (;;) {
    size_t got = 0;
    if (tls_) {
      read_wants_write_ = false;
      switch (tls_->read(buf, sizeof(buf), &got)) {
        case TlsIo::kDone:
          break;
        case TlsIo::kWantRead:
          return true;
        case TlsIo::kWantWrite:
          read_wants_write_ = true;
          return true;
        case TlsIo::kClosed:
          lose("connection closed");
          return false;
        case TlsIo::kFailed:
          lose("connection lost: " + tls_->why());
          return false;
      }
    } else {
      const ssize_t n = ::recv(fd_.get(), buf, sizeof(buf), 0);
      if (n < 0) {
        if (errno == EINTR)
          continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK)
          return true;
        lose(std::string("connection lost: ") + strerror(errno));
        return false;
      }
      if (n == 0) {
        lose("connection closed");
        return false;
      }
      got = static_cast<size_t>(n);
    }
    if (redisReaderFeed(reader_.get(), buf, got) != REDIS_OK) {
      lose("unreadable reply");
      return false;
    }
    // hiredis buffers a reply whole, whatever length it declares: bounded for servers trusted
    // less than the primary (the sentinels).
    if (options_.max_reply_bytes != 0 && reader_->len - reader_->pos > options_.max_reply_bytes) {
      lose("a reply of more than " + std::to_string(options_.max_reply_bytes) + " bytes");
      return false;
    }
    for (;;) {
      void* reply = nullptr;
      if (redisReaderGetReply(reader_.get(), &reply) != REDIS_OK) {
        const std::string why = std::string("unreadable reply: ") + reader_->errstr;
        MFA_LOG_ERROR("Redis at %s: %s", options_.address.describe().c_str(), why.c_str());
        drop(why);
        return false;
      }
      if (reply == nullptr)
        break;
      dispatch(static_cast<redisReply*>(reply));
      if (generation != generation_)
        return false;  // a callback dropped (or closed) the connection
    }
    // A short plain read took everything there was; TLS reads until it wants more bytes.
    if (!tls_ && got < sizeof(buf))
      return true;
  }
}

// One reply: the answer to the oldest command in flight, or a message of the subscription.
void RedisClient::dispatch(redisReply* reply) {
  RedisReply owned = RedisReply::from(reply);
  freeReplyObject(reply);
  if (in_flight_.empty()) {
    if (subscribed_) {
      on_published(owned);
      return;
    }
    lose("a reply to no command");
    return;
  }
  const uint64_t id = in_flight_.front();
  in_flight_.pop_front();
  if (id == kSubscriptionId && owned.type == RedisReply::Type::kArray && !owned.elements.empty() &&
      owned.elements[0].str == "subscribe")
    subscribed_ = true;
  complete(id, std::move(owned));
}

// --- One sd-event I/O source for the connection's socket. ---

void RedisClient::update_io() {
  if (!fd_.valid())
    return;
  // Replies (and TLS records) may come at any time once connected; EPOLLOUT only when a write
  // (or the connect, or a TLS read) waits for room.
  uint32_t events = state_ == State::kConnecting ? 0u : EPOLLIN;
  if (state_ == State::kConnecting || (write_blocked_ && !write_waits_for_read_) ||
      read_wants_write_)
    events |= EPOLLOUT;
  if (io_ && events == io_events_)
    return;
  io_events_ = events;
  if (!io_) {
    sd_event_source* src = nullptr;
    int r = sd_event_add_io(event_, &src, fd_.get(), events, &RedisClient::on_io, this);
    if (r < 0) {
      MFA_LOG_ERROR("cannot watch the Redis connection: %s", strerror(-r));
      return;
    }
    io_.reset(src);
    (void)sd_event_source_set_description(src, "redis-io");
    if (options_.priority != 0)
      (void)sd_event_source_set_priority(src, options_.priority);
    return;
  }
  (void)sd_event_source_set_io_events(io_.get(), events);
}

int RedisClient::on_io(sd_event_source* /*s*/, int /*fd*/, uint32_t revents, void* userdata) {
  auto* self = static_cast<RedisClient*>(userdata);
  try {
    const uint64_t generation = self->generation_;
    switch (self->state_) {
      case State::kIdle:
        return 0;
      case State::kConnecting: {
        int error = 0;
        socklen_t len = sizeof(error);
        if (getsockopt(self->fd_.get(), SOL_SOCKET, SO_ERROR, &error, &len) < 0)
          error = errno;
        if (error != 0) {
          const std::string why = "cannot connect to Redis at " +
                                  self->options_.address.describe() + ": " + strerror(error);
          if (why != self->last_error_)
            MFA_LOG_WARNING("%s", why.c_str());
          self->drop(why);
          return 0;
        }
        self->connected();
        return 0;
      }
      case State::kHandshaking:
        self->handshake();
        return 0;
      case State::kAuthenticating:
      case State::kReady:
        break;
    }
    (void)revents;
    if (self->out_sent_ < self->out_.size() && !self->flush())
      return 0;
    if (!self->read_replies() || generation != self->generation_)
      return 0;
    // A reply's callback may have sent more: written in send(), or here once there is room.
    if (self->out_sent_ < self->out_.size() && !self->write_blocked_ && !self->flush())
      return 0;
    self->update_io();
  } catch (...) {
    MFA_LOG_ERROR("Redis I/O handling failed");
  }
  return 0;
}

}  // namespace mfa

// TLS for the Redis connection (rediss://, docs/fleet.md "Transport"): OpenSSL over a non-blocking
// socket that the Redis client drives from its sd-event source. Debian's hiredis 0.14 has no TLS,
// so the client does its own I/O and keeps only hiredis's reply parser.
//
// The server is verified against [Redis] CAFile= (else the system store) and its certificate
// must name the IP address mfad connects to (mfad never resolves names); TLS 1.2 at least; an
// optional client certificate ([Redis] CertFile=, KeyFile=, the key readable by root only).
#pragma once

#include <openssl/ssl.h>

#include <memory>
#include <string>

#include "common/handles.hpp"
#include "common/result.hpp"

namespace mfa {

struct RedisTlsFiles {
  std::string ca_file;    // "" = the system's trust store
  std::string cert_file;  // "" = no client certificate
  std::string key_file;
};

using SslCtxPtr = std::unique_ptr<SSL_CTX, Deleter<SSL_CTX_free>>;
using SslPtr = std::unique_ptr<SSL, Deleter<SSL_free>>;

// The client side's settings, made once at start (files read then, never on the login path).
// Refused when a file cannot be read or is not what it should be: the CA file and the
// certificate must be regular files nobody but root (or mfad's user) can change, the key file
// one that nobody else can even read.
Result<std::shared_ptr<SSL_CTX>> make_redis_tls_context(const RedisTlsFiles& files);

// What a non-blocking TLS call needs before it can go on.
enum class TlsIo { kDone, kWantRead, kWantWrite, kClosed, kFailed };

// One TLS connection on a connected socket (not owned).
class TlsStream {
 public:
  // ip: the address connected to, which the server's certificate must name.
  static Result<std::unique_ptr<TlsStream>> create(const std::shared_ptr<SSL_CTX>& context, int fd,
                                                   const std::string& ip);

  // Goes on with the handshake; kFailed with why() set (a verification failure says which).
  TlsIo handshake();
  // *ret_bytes is set on kDone.
  TlsIo read(char* buf, size_t size, size_t* ret_bytes);
  TlsIo write(const char* buf, size_t size, size_t* ret_bytes);

  const std::string& why() const { return why_; }
  // "TLSv1.3": once the handshake is done.
  std::string version() const;

 private:
  TlsStream(std::shared_ptr<SSL_CTX> context, SslPtr ssl)
      : context_(std::move(context)), ssl_(std::move(ssl)) {}
  TlsIo status_of(int ret, const char* doing);

  std::shared_ptr<SSL_CTX> context_;
  SslPtr ssl_;
  std::string why_;
};

}  // namespace mfa

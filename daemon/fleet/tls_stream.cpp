#include "fleet/tls_stream.hpp"

#include <fcntl.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "common/secret_file.hpp"

namespace mfa {

namespace {

constexpr size_t kMaxPemFile = 1 << 20;  // a CA bundle (Debian's is ~220 kB) or a chain
constexpr size_t kMaxKeyFile = 64 * 1024;

using BioPtr = std::unique_ptr<BIO, Deleter<BIO_free>>;
using X509Ptr = std::unique_ptr<X509, Deleter<X509_free>>;
using EvpPkeyPtr = std::unique_ptr<EVP_PKEY, Deleter<EVP_PKEY_free>>;

// OpenSSL's oldest queued error, then the queue emptied.
std::string openssl_error() {
  const unsigned long e = ERR_get_error();
  ERR_clear_error();
  if (e == 0)
    return "unknown error";
  char buf[256];
  ERR_error_string_n(e, buf, sizeof(buf));
  return buf;
}

// A file that decides whom mfad trusts (a CA bundle, its own certificate): a regular file, not a
// symbolic link, that nobody but root or mfad's own user can change. Read once, so that what was
// checked is what is used.
Result<std::string> read_trust_file(const std::string& path, const char* what) {
  const auto refuse = [&](const std::string& problem) {
    return make_error(Errc::kIo, std::string(what) + " " + path + " " + problem);
  };
  Fd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY | O_NONBLOCK));
  if (!fd.valid())
    return refuse(std::string("cannot be opened: ") + strerror(errno));
  struct stat st;
  if (fstat(fd.get(), &st) < 0)
    return refuse(std::string("cannot be examined: ") + strerror(errno));
  if (!S_ISREG(st.st_mode))
    return refuse("is not a regular file");
  if (st.st_uid != 0 && st.st_uid != geteuid())
    return refuse("must be owned by root");
  if (st.st_mode & (S_IWGRP | S_IWOTH))
    return refuse("is writable by group or others (chmod go-w)");
  if (static_cast<size_t>(st.st_size) > kMaxPemFile)
    return refuse("is too large");
  std::string text(static_cast<size_t>(st.st_size), '\0');
  size_t len = 0;
  while (len < text.size()) {
    const ssize_t n = ::read(fd.get(), text.data() + len, text.size() - len);
    if (n < 0 && errno == EINTR)
      continue;
    if (n < 0)
      return refuse(std::string("cannot be read: ") + strerror(errno));
    if (n == 0)
      break;
    len += static_cast<size_t>(n);
  }
  text.resize(len);
  return text;
}

Status load_ca_file(SSL_CTX* ctx, const std::string& path) {
  MFA_TRY(text, read_trust_file(path, "the Redis CA file"));
  BioPtr bio(BIO_new_mem_buf(text.data(), static_cast<int>(text.size())));
  if (!bio)
    return make_error(Errc::kInternal, "out of memory");
  X509_STORE* store = SSL_CTX_get_cert_store(ctx);
  int added = 0;
  for (;;) {
    X509Ptr cert(PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr));
    if (!cert)
      break;
    if (X509_STORE_add_cert(store, cert.get()) != 1) {
      return make_error(Errc::kIo, "the Redis CA file " + path +
                                       ": cannot use a certificate: " + openssl_error());
    }
    ++added;
  }
  ERR_clear_error();  // the end of the file reads as an error
  if (added == 0) {
    return make_error(Errc::kIo, "the Redis CA file " + path + " holds no PEM certificate");
  }
  return {};
}

Status load_client_certificate(SSL_CTX* ctx, const RedisTlsFiles& files) {
  MFA_TRY(chain, read_trust_file(files.cert_file, "the Redis certificate file"));
  BioPtr bio(BIO_new_mem_buf(chain.data(), static_cast<int>(chain.size())));
  if (!bio)
    return make_error(Errc::kInternal, "out of memory");
  X509Ptr leaf(PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr));
  if (!leaf || SSL_CTX_use_certificate(ctx, leaf.get()) != 1) {
    return make_error(Errc::kIo, "the Redis certificate file " + files.cert_file +
                                     " holds no usable PEM certificate: " + openssl_error());
  }
  for (;;) {  // the intermediates after it
    X509* extra = PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr);
    if (extra == nullptr)
      break;
    if (SSL_CTX_add0_chain_cert(ctx, extra) != 1) {
      X509_free(extra);
      return make_error(Errc::kIo,
                        "the Redis certificate file " + files.cert_file + ": " + openssl_error());
    }
  }
  ERR_clear_error();
  // The key: private to root (or mfad's user), as the password file and the master key are.
  MFA_TRY(key_text, read_secret_file(files.key_file, {"the Redis TLS key file",
                                                      SecretFormat::kWhole, kMaxKeyFile}));
  BioPtr key_bio(BIO_new_mem_buf(key_text.view().data(), static_cast<int>(key_text.view().size())));
  if (!key_bio)
    return make_error(Errc::kInternal, "out of memory");
  EvpPkeyPtr key(PEM_read_bio_PrivateKey(key_bio.get(), nullptr, nullptr, nullptr));
  if (!key) {
    ERR_clear_error();  // its text may quote the file
    return make_error(Errc::kIo, "the Redis TLS key file " + files.key_file +
                                     " holds no PEM private key (an encrypted key cannot be "
                                     "used: mfad starts unattended)");
  }
  if (SSL_CTX_use_PrivateKey(ctx, key.get()) != 1 || SSL_CTX_check_private_key(ctx) != 1) {
    ERR_clear_error();
    return make_error(Errc::kIo, "the Redis TLS key file " + files.key_file +
                                     " does not hold the key of " + files.cert_file);
  }
  return {};
}

}  // namespace

Result<std::shared_ptr<SSL_CTX>> make_redis_tls_context(const RedisTlsFiles& files) {
  ERR_clear_error();
  SslCtxPtr ctx(SSL_CTX_new(TLS_client_method()));
  if (!ctx)
    return make_error(Errc::kInternal, "cannot set up TLS: " + openssl_error());
  if (SSL_CTX_set_min_proto_version(ctx.get(), TLS1_2_VERSION) != 1)
    return make_error(Errc::kInternal, "cannot require TLS 1.2: " + openssl_error());
  SSL_CTX_set_verify(ctx.get(), SSL_VERIFY_PEER, nullptr);
  // Writes resume where a partial one stopped, from a buffer that may have grown meanwhile.
  SSL_CTX_set_mode(ctx.get(), SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
  SSL_CTX_set_options(ctx.get(), SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_COMPRESSION);
  if (!files.ca_file.empty()) {
    MFA_CHECK(load_ca_file(ctx.get(), files.ca_file));
  } else if (SSL_CTX_set_default_verify_paths(ctx.get()) != 1) {
    return make_error(Errc::kIo, "cannot load the system's trust store: " + openssl_error());
  }
  if (!files.cert_file.empty())
    MFA_CHECK(load_client_certificate(ctx.get(), files));
  return std::shared_ptr<SSL_CTX>(ctx.release(), SSL_CTX_free);
}

Result<std::unique_ptr<TlsStream>> TlsStream::create(const std::shared_ptr<SSL_CTX>& context,
                                                     int fd, const std::string& ip) {
  ERR_clear_error();
  SslPtr ssl(SSL_new(context.get()));
  if (!ssl || SSL_set_fd(ssl.get(), fd) != 1)
    return make_error(Errc::kInternal, "cannot set up TLS: " + openssl_error());
  // The certificate must name the address: mfad is given an IP address, never a name.
  if (X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl.get()), ip.c_str()) != 1)
    return make_error(Errc::kInternal, "cannot check the certificate for " + ip);
  SSL_set_connect_state(ssl.get());
  return std::unique_ptr<TlsStream>(new TlsStream(context, std::move(ssl)));
}

TlsIo TlsStream::status_of(int ret, const char* doing) {
  const int e = SSL_get_error(ssl_.get(), ret);
  switch (e) {
    case SSL_ERROR_WANT_READ:
      return TlsIo::kWantRead;
    case SSL_ERROR_WANT_WRITE:
      return TlsIo::kWantWrite;
    case SSL_ERROR_ZERO_RETURN:
      why_ = "closed by the server";
      return TlsIo::kClosed;
    case SSL_ERROR_SYSCALL:
      why_ = std::string(doing) + ": " +
             (ERR_peek_error() != 0 ? openssl_error()
              : errno != 0          ? std::string(strerror(errno))
                                    : std::string("connection closed"));
      return TlsIo::kFailed;
    default:
      break;
  }
  const long verify = SSL_get_verify_result(ssl_.get());
  if (verify != X509_V_OK) {
    why_ = std::string("the server's certificate is refused: ") +
           X509_verify_cert_error_string(verify);
    ERR_clear_error();
  } else {
    why_ = std::string(doing) + ": " + openssl_error();
  }
  return TlsIo::kFailed;
}

TlsIo TlsStream::handshake() {
  ERR_clear_error();
  errno = 0;
  const int r = SSL_do_handshake(ssl_.get());
  if (r == 1)
    return TlsIo::kDone;
  return status_of(r, "TLS handshake failed");
}

TlsIo TlsStream::read(char* buf, size_t size, size_t* ret_bytes) {
  ERR_clear_error();
  errno = 0;
  size_t n = 0;
  const int r = SSL_read_ex(ssl_.get(), buf, size, &n);
  if (r == 1) {
    *ret_bytes = n;
    return TlsIo::kDone;
  }
  return status_of(r, "TLS read failed");
}

TlsIo TlsStream::write(const char* buf, size_t size, size_t* ret_bytes) {
  ERR_clear_error();
  errno = 0;
  size_t n = 0;
  const int r = SSL_write_ex(ssl_.get(), buf, size, &n);
  if (r == 1) {
    *ret_bytes = n;
    return TlsIo::kDone;
  }
  return status_of(r, "TLS write failed");
}

std::string TlsStream::version() const {
  return SSL_get_version(ssl_.get());
}

}  // namespace mfa
